"""Seed tables from the accuracy harness's result JSON: best dev and test F1 per seed, the
means and their spread, and each system's margin over a reference system.

    python benchmarks/seeds.py --dataset conll03 \
        --run ours=ours_vectors_chars_wdrop_lrdecay_unk2:-avg-lrd3 \
        --run spacy_ner_avg=spacy_ner_vectors_unk:-avg --reference spacy_ner_avg \
        --output benchmarks/results/seeds_conll03_glove.json

A run NAME=SYSTEM:TAG reads ``results/accuracy/{dataset}-{SYSTEM}{TAG}.json`` for seed 0
and ``...{TAG}-seed{N}.json`` for seed N (the names `accuracy.py --tag=TAG[-seedN]`
writes). A seed whose file is missing is left out and said so; the means are over the
seeds found. Each file's training schedule (step cap, patience, evaluation frequency, from
its overrides) is kept, and the table warns when the runs or seeds it compares differ in
it: a system evaluated on dev more often has more checkpoints to choose model-best from.
Nothing is trained here: it only reads what `accuracy.py` wrote.
"""

import argparse
import json
import statistics
from pathlib import Path
from typing import Any, Dict, List, Optional

from bench_common import command_and_date, write_json

RESULTS = Path(__file__).parent / "results" / "accuracy"
# the settings that decide which checkpoint a run's best dev F1 and test F1 come from
SCHEDULE = ("max_steps", "patience", "eval_frequency")


def result_path(dataset: str, system: str, tag: str, seed: int, root: Path = RESULTS) -> Path:
    suffix = "" if seed == 0 else f"-seed{seed}"
    return root / f"{dataset}-{system}{tag}{suffix}.json"


def summarize(
    dataset: str, system: str, tag: str, seeds: List[int], root: Path = RESULTS
) -> Dict[str, Any]:
    """Dev and test F1 (percent) of one system over the seeds whose result files exist."""
    per_seed: List[Dict[str, Any]] = []
    missing: List[int] = []
    for seed in seeds:
        path = result_path(dataset, system, tag, seed, root)
        if not path.exists():
            missing.append(seed)
            continue
        data = json.loads(path.read_text())
        per_seed.append(
            {
                "seed": seed,
                "file": path.name,
                "dev_f1": round(float(data["best_dev_f1"]), 2),
                "test_f1": round(100 * float(data["test"]["ents_f"]), 2),
                "steps": data.get("steps"),
                "train_wall_seconds": data.get("train_wall_seconds"),
                "schedule": schedule(data),
            }
        )
    out: Dict[str, Any] = {"system": system, "tag": tag, "seeds": per_seed, "missing": missing}
    for key in ("dev_f1", "test_f1"):
        values = [row[key] for row in per_seed]
        out[f"mean_{key}"] = round(statistics.fmean(values), 2) if values else None
        out[f"stdev_{key}"] = round(statistics.stdev(values), 2) if len(values) > 1 else None
    return out


def schedule(data: Dict[str, Any]) -> Dict[str, Any]:
    """A result's step cap, patience and evaluation frequency (None where not recorded)."""
    overrides = data.get("overrides") or {}
    return {key: overrides.get(f"training.{key}") for key in SCHEDULE}


def schedule_warning(table: Dict[str, Dict[str, Any]]) -> Optional[str]:
    """A warning naming each schedule and the run/seeds that used it, if they differ."""
    used: Dict[str, List[str]] = {}
    for name, row in table.items():
        for s in row["seeds"]:
            key = ", ".join(f"{k} {v}" for k, v in s["schedule"].items())
            used.setdefault(key, []).append(f"{name}:{s['seed']}")
    if len(used) < 2:
        return None
    parts = "; ".join(f"{key} ({' '.join(runs)})" for key, runs in used.items())
    return f"WARNING: the runs differ in their training schedule: {parts}"


def parse_run(text: str) -> Dict[str, str]:
    name, sep, rest = text.partition("=")
    system, sep2, tag = rest.partition(":")
    if not sep or not sep2 or not name or not system:
        raise SystemExit(f"--run {text!r}: expected NAME=SYSTEM:TAG, e.g. ours=ours_chars:-avg")
    return {"name": name, "system": system, "tag": tag}


def main(argv: Optional[List[str]] = None) -> Dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", required=True, help="conll03 or wnut17")
    parser.add_argument("--run", action="append", required=True, help="NAME=SYSTEM:TAG")
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated seeds")
    parser.add_argument("--reference", default=None, help="NAME of the run to take margins over")
    parser.add_argument("--results", default=str(RESULTS), help="folder of the result JSON")
    parser.add_argument("--output", default=None, help="write the table as JSON here")
    args = parser.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    runs = [parse_run(r) for r in args.run]
    names = [r["name"] for r in runs]
    if args.reference is not None and args.reference not in names:
        raise SystemExit(f"--reference {args.reference!r} is not one of the runs: {names}")
    table = {
        r["name"]: summarize(args.dataset, r["system"], r["tag"], seeds, Path(args.results))
        for r in runs
    }
    ref = table.get(args.reference) if args.reference else None
    header = f"{'run':28s} {'dev F1 per seed':24s} {'test F1 per seed':24s} {'mean dev':>8s} {'mean test':>9s}"
    if ref:
        header += f" {'dev +/-':>8s} {'test +/-':>8s}"
    print(f"{args.dataset}, seeds {seeds}")
    print(header)
    for name, row in table.items():
        dev = " / ".join(f"{s['dev_f1']:.2f}" for s in row["seeds"]) or "-"
        test = " / ".join(f"{s['test_f1']:.2f}" for s in row["seeds"]) or "-"
        md, mt = row["mean_dev_f1"], row["mean_test_f1"]
        line = f"{name:28s} {dev:24s} {test:24s} {md if md is not None else '-':>8} {mt if mt is not None else '-':>9}"
        if ref and md is not None and ref["mean_dev_f1"] is not None:
            row["margin_dev"] = round(md - ref["mean_dev_f1"], 2)
            row["margin_test"] = round(mt - ref["mean_test_f1"], 2)
            line += f" {row['margin_dev']:+8.2f} {row['margin_test']:+8.2f}"
        if row["missing"]:
            line += f"  (missing seeds {row['missing']})"
        print(line)
    warning = schedule_warning(table)
    if warning:
        print(warning)
    out = {
        **command_and_date(argv),
        "dataset": args.dataset,
        "reference": args.reference,
        "schedule_warning": warning,
        "runs": table,
    }
    if args.output:
        write_json(args.output, out)
    return out


if __name__ == "__main__":
    main()
