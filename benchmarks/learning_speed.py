"""Learning speed: best dev F1 reached by each amount of training time (and by each step),
read from the accuracy harness's runs, and where one run leads or trails a reference.

    python benchmarks/learning_speed.py \
        --run ours=benchmarks/results/accuracy/conll03-ours_vectors_chars_wdrop_lrdecay_unk2-lspeed13-seed1.json \
        --run spacy_ner_avg=benchmarks/results/accuracy/conll03-spacy_ner_vectors-avg-lspeed13-seed1.json \
        --reference spacy_ner_avg --output benchmarks/results/learning_speed_conll03_glove.json

A run is a result JSON of `accuracy.py` (its `curve`) or a `train_log.jsonl` of the timing
logger; the step-0 evaluation of the untrained model is left out. Time is the logger's `train_seconds`: training only, without the dev evaluations
and checkpoint saves, so that evaluating more often does not count against a system.
Runs compared this way should have trained side by side (one per core, same machine,
same hour): absolute seconds from different runs of a shared machine do not compare.

For every run but the reference, the comparison walks the union of both runs' evaluation
times (up to the earlier of their last evaluations) and reports the stretches of training
time in which the run's best dev F1 so far is below the reference's, and by how much at
most. Training words per training second come from each run's last log row.
"""

import argparse
import json
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from bench_common import command_and_date, write_json

DEFAULT_TIMES = "20,30,45,60,90,120,180,240,300,360,480,600"
DEFAULT_STEPS = "100,250,500,1000,1500,2000,2500,3000"


def load_curve(path: Path) -> List[Dict[str, Any]]:
    """Evaluation rows (step, train_seconds, words, F1 in percent) of a result JSON or log."""
    if path.suffix == ".jsonl":
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    else:
        rows = json.loads(path.read_text())["curve"]
    curve = []
    for row in rows:
        f1 = row.get("ents_f", row.get("score"))
        # step 0 is spaCy's evaluation of the untrained model (F1 0): not a learning point
        if f1 is None or row.get("train_seconds") is None or int(row["step"]) == 0:
            continue
        curve.append(
            {
                "step": int(row["step"]),
                "train_seconds": float(row["train_seconds"]),
                "words": row.get("words"),
                "f1": 100 * float(f1),
            }
        )
    if not curve:
        raise SystemExit(f"{path}: no evaluation rows with train_seconds (a run before session 8?)")
    return curve


def best_by(curve: Sequence[Dict[str, Any]], key: str, limit: float) -> Optional[float]:
    """Best dev F1 among the evaluations at or before `limit` (seconds or steps)."""
    values = [row["f1"] for row in curve if row[key] <= limit]
    return round(max(values), 2) if values else None


def trailing(run: Sequence[Dict[str, Any]], reference: Sequence[Dict[str, Any]]) -> Dict[str, Any]:
    """Where `run`'s best-so-far dev F1 is below `reference`'s, by training seconds.

    Before a run's first evaluation its best so far is undefined; a stretch in which only
    the reference has evaluated counts as trailing (the reference has a model, the run
    not yet)."""
    end = min(run[-1]["train_seconds"], reference[-1]["train_seconds"])
    times = sorted({r["train_seconds"] for r in run} | {r["train_seconds"] for r in reference})
    times = [t for t in times if t <= end]
    stretches: List[Dict[str, Any]] = []
    current: Optional[Dict[str, Any]] = None
    for t in times:
        ours = best_by(run, "train_seconds", t)
        ref = best_by(reference, "train_seconds", t)
        if ref is None or (ours is not None and ours >= ref):
            current = None
            continue
        # None: the run has not evaluated yet
        gap = None if ours is None else round(ref - ours, 2)
        if current is None:
            current = {"from": t, "to": t, "max_gap": gap}
            stretches.append(current)
        else:
            current["to"] = t
            if gap is not None:
                current["max_gap"] = max(current["max_gap"] or 0.0, gap)
    gaps = [s["max_gap"] for s in stretches if s["max_gap"] is not None]
    return {
        "compared_up_to_seconds": round(end, 1),
        "first_evaluation_seconds": round(run[0]["train_seconds"], 1),
        "trailing": stretches,
        "max_gap_after_first_evaluation": max(gaps, default=0.0),
    }


def words_per_training_second(curve: Sequence[Dict[str, Any]]) -> Optional[float]:
    last = curve[-1]
    if not last.get("words") or not last["train_seconds"]:
        return None
    return round(last["words"] / last["train_seconds"], 1)


def main(argv: Optional[List[str]] = None) -> Dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", action="append", required=True, metavar="NAME=PATH")
    parser.add_argument(
        "--reference", default=None, help="NAME of the run to compare the others with"
    )
    parser.add_argument("--times", default=DEFAULT_TIMES, help="training seconds for the table")
    parser.add_argument("--steps", default=DEFAULT_STEPS, help="steps for the table")
    parser.add_argument("--output", default=None)
    args = parser.parse_args(argv)
    curves: Dict[str, List[Dict[str, Any]]] = {}
    paths: Dict[str, str] = {}
    for item in args.run:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise SystemExit(f"--run {item!r}: expected NAME=PATH")
        if not Path(path).exists():
            raise SystemExit(f"--run {item!r}: {path} does not exist")
        curves[name] = load_curve(Path(path))
        paths[name] = path
    if args.reference is not None and args.reference not in curves:
        raise SystemExit(f"--reference {args.reference!r} is not one of the runs: {list(curves)}")
    times = [float(t) for t in args.times.split(",") if t.strip()]
    steps = [int(s) for s in args.steps.split(",") if s.strip()]
    names = list(curves)

    def cell(value: Optional[float]) -> str:
        return f"{value:.2f}" if value is not None else "-"

    by_time = {n: {str(t): best_by(curves[n], "train_seconds", t) for t in times} for n in names}
    by_step = {n: {str(s): best_by(curves[n], "step", s) for s in steps} for n in names}
    print("best dev F1 by training seconds")
    print("| train s | " + " | ".join(names) + " |")
    for t in times:
        print(f"| {t:g} | " + " | ".join(cell(by_time[n][str(t)]) for n in names) + " |")
    print("\nbest dev F1 by step")
    print("| step | " + " | ".join(names) + " |")
    for s in steps:
        print(f"| {s} | " + " | ".join(cell(by_step[n][str(s)]) for n in names) + " |")
    runs: Dict[str, Any] = {}
    print()
    for n in names:
        c = curves[n]
        runs[n] = {
            "path": paths[n],
            "best_dev_f1": round(max(r["f1"] for r in c), 2),
            "last_step": c[-1]["step"],
            "last_train_seconds": round(c[-1]["train_seconds"], 1),
            "words_per_training_second": words_per_training_second(c),
            "by_train_seconds": by_time[n],
            "by_step": by_step[n],
        }
        line = (
            f"{n}: best dev {runs[n]['best_dev_f1']:.2f}, last evaluation step {c[-1]['step']} "
            f"at {c[-1]['train_seconds']:.0f} s of training, "
            f"{runs[n]['words_per_training_second']} words per training second"
        )
        print(line)
    if args.reference is not None:
        print()
        for n in names:
            if n == args.reference:
                continue
            cmp = trailing(curves[n], curves[args.reference])
            runs[n]["against_reference"] = cmp
            if not cmp["trailing"]:
                text = "never behind"
            else:
                text = "behind " + ", ".join(
                    f"{s['from']:.0f}-{s['to']:.0f} s"
                    + (
                        f" (by up to {s['max_gap']:.2f})"
                        if s["max_gap"] is not None
                        else " (not yet evaluated)"
                    )
                    for s in cmp["trailing"]
                )
            print(
                f"{n} against {args.reference}, up to {cmp['compared_up_to_seconds']:.0f} s "
                f"of training: {text}"
            )
    out = {**command_and_date(argv), "reference": args.reference, "runs": runs}
    if args.output:
        write_json(args.output, out)
    return out


if __name__ == "__main__":
    main()
