"""Training memory and step time of one system under allocator settings, side by side.

Each variant trains the same system on the same data for `--steps` steps with `spacy
train` (no dev evaluation after step 0), logging every step's start time and resident
memory (`memory_probe.py`). A variant is `NAME` (nothing changed), `NAME=trim:N` (the
package's `spacy-bilstm-crf.TrimMemory.v1` every N steps) or `NAME=env:VAR=VALUE` (an
environment variable for the training process, e.g. glibc's MALLOC_MMAP_THRESHOLD_).
`--jobs` variants run at a time; compare step times only within one batch of jobs.

    python benchmarks/train_memory.py --dataset conll03 --system ours_trf_vectors_chars \
        --steps 200 --variant none --variant trim1=trim:1 --jobs 2 \
        --output benchmarks/results/train_memory_conll03_trf.json
"""

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Tuple

import accuracy
import bench_common

ROOT = Path(__file__).resolve().parents[1]


def parse_variant(spec: str) -> Tuple[str, int, Dict[str, str]]:
    """`NAME[=trim:N|=env:VAR=VALUE]` -> (name, trim_every, extra environment)."""
    name, _, how = spec.partition("=")
    if not how:
        return name, 0, {}
    kind, _, arg = how.partition(":")
    if kind == "trim" and arg.isdigit() and int(arg) > 0:
        return name, int(arg), {}
    if kind == "env" and "=" in arg:
        var, _, value = arg.partition("=")
        return name, 0, {var: value}
    raise SystemExit(f"bad --variant {spec!r}: use NAME, NAME=trim:N or NAME=env:VAR=VALUE")


def slope_mib_per_minute(rows: List[Dict[str, Any]]) -> float:
    """Least-squares slope of RSS against time over the rows, MiB per minute."""
    xs = [r["seconds"] for r in rows]
    ys = [r["rss_mib"] for r in rows]
    if len(rows) < 2 or max(xs) == min(xs):
        return 0.0
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    num = sum((x - mx) * (y - my) for x, y in zip(xs, ys))
    den = sum((x - mx) ** 2 for x in xs)
    return 60.0 * num / den


def summarize(rows: List[Dict[str, Any]], skip: int, compare_step: int) -> Dict[str, Any]:
    """Step time and memory of one run's per-step log, leaving out the first `skip`
    steps (step 0's dev evaluation and the warm-up). `seconds_per_step_to_compare` is the
    mean step time from `skip` to `compare_step`, while every job of a batch still runs
    (a job alone on the machine after its partner ended runs faster)."""
    kept = [r for r in rows if r["step"] >= skip]
    at = {r["step"]: r["seconds"] for r in kept}
    gaps = [b["seconds"] - a["seconds"] for a, b in zip(kept, kept[1:])]
    second_half = kept[len(kept) // 2:]
    return {
        "steps_logged": len(rows),
        "seconds_per_step_mean": round(statistics.fmean(gaps), 3) if gaps else None,
        "seconds_per_step_median": round(statistics.median(gaps), 3) if gaps else None,
        "seconds_per_step_to_compare": (
            round((at[compare_step] - at[skip]) / (compare_step - skip), 3)
            if skip in at and compare_step in at and compare_step > skip else None
        ),
        "rss_mib_at_skip": kept[0]["rss_mib"] if kept else None,
        "rss_mib_last": kept[-1]["rss_mib"] if kept else None,
        "rss_mib_max": max(r["rss_mib"] for r in kept) if kept else None,
        "rss_growth_mib_per_minute_second_half": round(slope_mib_per_minute(second_half), 1),
        "trim_seconds_mean": round(statistics.fmean(r["trim_seconds"] for r in kept), 4) if kept else None,
    }


def resummarize(path: Path, skip: int, compare_step: int) -> None:
    """Recompute the summaries of a result file from its per-step logs (e.g. with another
    `compare_step`), keeping its command and date and recording the new settings."""
    data = json.loads(path.read_text())
    for result in data["variants"].values():
        rows = [{"step": step, "seconds": seconds, "rss_mib": rss, "trim_seconds": result["trim_seconds_mean"]}
                for step, seconds, rss in result["per_step"]]
        result.update(summarize(rows, skip, compare_step))
        result["per_step"] = result.pop("per_step")  # keep the long list last
    data.update({"skip": skip, "compare_step": compare_step,
                 "resummarized": " ".join(["benchmarks/train_memory.py"] + sys.argv[1:])})
    bench_common.write_json(str(path), data)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", choices=sorted(accuracy.DATASETS), default="conll03")
    parser.add_argument("--system", default="ours_trf_vectors_chars", help=", ".join(accuracy.SYSTEMS))
    parser.add_argument("--conll-dir", default=str(accuracy.DEFAULT_CONLL))
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--skip", type=int, default=5, help="steps left out of the summaries")
    parser.add_argument("--compare-step", type=int, default=100,
                        help="step times compared from --skip to this step (all jobs of a batch running)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--variant", action="append", default=[])
    parser.add_argument("--jobs", type=int, default=2, help="variants trained at a time")
    parser.add_argument("--override", action="append", help="extra config override KEY=VALUE")
    parser.add_argument("--output", required=True)
    parser.add_argument("--resummarize", action="store_true",
                        help="train nothing: recompute the summaries of --output from its per-step logs")
    args = parser.parse_args()
    if args.resummarize:
        resummarize(Path(args.output), args.skip, args.compare_step)
        return
    if not args.variant:
        parser.error("give at least one --variant")
    if args.system not in accuracy.SYSTEMS:
        parser.error(f"unknown system {args.system!r}")
    spec = accuracy.SYSTEMS[args.system]
    variants = [parse_variant(v) for v in args.variant]
    corpus = accuracy.prepare_corpus(args.dataset, Path(args.conll_dir), 1)
    overrides = accuracy.train_overrides(spec, corpus, {
        "training.max_steps": str(args.steps), "training.eval_frequency": str(10 * args.steps),
        "training.patience": str(10 * args.steps)}, args.override)
    work = accuracy.WORK / "train_memory" / f"{args.dataset}-{args.system}"
    results: Dict[str, Any] = {}
    for first in range(0, len(variants), args.jobs):
        batch = variants[first:first + args.jobs]
        procs = []
        for name, trim_every, extra_env in batch:
            run_dir = work / name
            run_dir.mkdir(parents=True, exist_ok=True)
            probe = {"@callbacks": "spacy-bilstm-crf.bench.MemoryProbe.v1",
                     "path": str(run_dir / "steps.jsonl"), "trim_every": trim_every}
            cmd = [sys.executable, "-m", "spacy", "train", str(spec["config"]), "--output", str(run_dir / "model"),
                   "--code", str(ROOT / "benchmarks" / "spacy_code.py"),
                   "--training.before_update", json.dumps(probe), *accuracy.override_args(overrides)]
            env = {**accuracy.thread_env(args.threads), **extra_env}
            print("$", " ".join(f"{k}={v}" for k, v in extra_env.items()), " ".join(cmd), flush=True)
            with (run_dir / "train.log").open("w", encoding="utf8") as log:  # the child keeps its own handle
                procs.append((name, trim_every, extra_env, run_dir, time.perf_counter(),
                              subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)))
        for name, trim_every, extra_env, run_dir, start, proc in procs:
            code = proc.wait()
            if code != 0:
                raise SystemExit(f"{name}: spacy train failed ({code}); log in {run_dir / 'train.log'}")
            rows = [json.loads(line) for line in (run_dir / "steps.jsonl").read_text().splitlines() if line]
            results[name] = {"batch": first // args.jobs, "trim_every": trim_every, "env": extra_env,
                             "wall_seconds": round(time.perf_counter() - start, 1),
                             **summarize(rows, args.skip, args.compare_step),
                             "per_step": [[r["step"], r["seconds"], r["rss_mib"]] for r in rows]}
    header = f"{'variant':10} {'batch':>5} {'s/step':>7} {'to cmp':>7} {'RSS@skip':>9} {'RSS last':>9} {'RSS max':>8} {'MiB/min':>8}"
    print(header)
    for name, r in results.items():
        cmp = r["seconds_per_step_to_compare"]
        print(f"{name:10} {r['batch']:5d} {r['seconds_per_step_mean']:7.3f} {cmp or float('nan'):7.3f} "
              f"{r['rss_mib_at_skip']:9.0f} "
              f"{r['rss_mib_last']:9.0f} {r['rss_mib_max']:8.0f} {r['rss_growth_mib_per_minute_second_half']:8.1f}")
    bench_common.write_result(args.output, args.threads, {
        "dataset": args.dataset, "system": args.system, "config": str(Path(spec["config"]).relative_to(ROOT)),
        "steps": args.steps, "skip": args.skip, "compare_step": args.compare_step, "jobs": args.jobs,
        "overrides": accuracy.recorded_overrides(overrides),
        "variants": results,
    })


if __name__ == "__main__":
    main()
