"""Inference speed of trained pipelines, side by side in one run.

Every pipeline processes the same pre-tokenized test docs (gold tokens, no tokenizer
cost), with the thread count fixed and printed. Pipelines are timed in interleaved
rounds (A, B, A, B, ...) so that load on a shared machine hits all of them alike; the
median words/second of the rounds is reported, and the ratio to the first pipeline.
Peak memory is measured in a fresh subprocess per pipeline (peak RSS over the RSS after the imports).

    python benchmarks/inference_speed.py --data benchmarks/work/corpus/conll03-n1/test.spacy \
        --pipeline ours=benchmarks/work/runs/conll03-n1/ours/model/model-best \
        --pipeline spacy_ner=benchmarks/work/runs/conll03-n1/spacy_ner/model/model-best \
        --threads 1 --rounds 5 --output benchmarks/results/inference_speed.json

`--torch-gemm NAME` runs the thinc layers of pipeline NAME with our `TorchGemmOps` (torch
matrix products instead of thinc's BLIS), as our component does for its own tok2vec:
e.g. spaCy ner given the same speed-up, loaded a second time under another name.
"""

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List

import bench_common


def set_threads(threads: int) -> None:
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(threads)
    import torch

    torch.set_num_threads(threads)


def load_docs(nlp, path: Path, limit: int):  # type: ignore[no-untyped-def]
    from spacy.tokens import Doc, DocBin

    docs = list(DocBin().from_disk(path).get_docs(nlp.vocab))
    if limit:
        docs = docs[:limit]
    # fresh, unannotated docs on the gold tokens
    return [Doc(nlp.vocab, words=[t.text for t in d], spaces=[bool(t.whitespace_) for t in d]) for d in docs]


def time_once(nlp, docs, batch_size: int) -> float:  # type: ignore[no-untyped-def]
    from spacy.tokens import Doc

    # on the pipeline's own vocab: a layer such as StaticVectors reads the docs' vocab
    fresh = [Doc(nlp.vocab, words=[t.text for t in d], spaces=[bool(t.whitespace_) for t in d]) for d in docs]
    start = time.perf_counter()
    for _ in nlp.pipe(fresh, batch_size=batch_size):
        pass
    return time.perf_counter() - start


def apply_torch_gemm(nlp) -> None:  # type: ignore[no-untyped-def]
    """Give every thinc model of the pipeline's components `TorchGemmOps`."""
    from thinc.api import Model

    from spacy_bilstm_crf.architectures import use_torch_gemm

    for _, pipe in nlp.pipeline:
        if isinstance(getattr(pipe, "model", None), Model):
            use_torch_gemm(pipe.model)


def memory_child(model: str, data: str, threads: int, batch_size: int, limit: int, torch_gemm: bool) -> None:
    """Run in a subprocess: print the RSS before loading the pipeline (imports done), after
    loading it and the docs, and the peak while processing them (MiB)."""
    import spacy
    import torch  # noqa: F401  (imported before the baseline for every pipeline alike)

    set_threads(threads)
    base = bench_common.status_mib("VmRSS")
    nlp = spacy.load(model)
    if torch_gemm:
        apply_torch_gemm(nlp)
    docs = load_docs(nlp, Path(data), limit)
    loaded = bench_common.status_mib("VmRSS")
    time_once(nlp, docs, batch_size)
    peak = bench_common.status_mib("VmHWM")
    print(json.dumps({"rss_before_load_mib": round(base, 1), "rss_after_load_mib": round(loaded, 1),
                      "peak_rss_mib": round(peak, 1), "peak_over_baseline_mib": round(peak - base, 1)}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help=".spacy file with the test docs")
    parser.add_argument("--pipeline", action="append", required=True, help="NAME=PATH (first is the reference)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--limit", type=int, default=0, help="use the first N docs")
    parser.add_argument("--output", default="benchmarks/results/inference_speed.json")
    parser.add_argument("--pipeline-batch-size", action="append", default=[], metavar="NAME=N",
                        help="another batch size for pipeline NAME (e.g. its config's [nlp] batch_size)")
    parser.add_argument("--torch-gemm", action="append", default=[], metavar="NAME",
                        help="run this pipeline's thinc layers with TorchGemmOps (repeatable)")
    parser.add_argument("--memory-child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        name = args.pipeline[0].partition("=")[0]
        memory_child(args.memory_child[0], args.memory_child[1], args.threads, args.batch_size, args.limit,
                     name in args.torch_gemm)
        return
    batch_sizes = {spec.partition("=")[0]: args.batch_size for spec in args.pipeline}
    for spec in args.pipeline_batch_size:
        name, _, size = spec.partition("=")
        if name not in batch_sizes:
            parser.error(f"--pipeline-batch-size {spec}: no --pipeline named {name!r}")
        batch_sizes[name] = int(size)
    unknown = set(args.torch_gemm) - set(batch_sizes)
    if unknown:
        parser.error(f"--torch-gemm names no --pipeline: {', '.join(sorted(unknown))}")
    set_threads(args.threads)
    import spacy
    import torch

    print(f"torch threads: {torch.get_num_threads()} (OMP/MKL/OPENBLAS_NUM_THREADS={args.threads})")
    pipelines: Dict[str, object] = {}
    for spec in args.pipeline:
        name, _, path = spec.partition("=")
        pipelines[name] = spacy.load(path)
        if name in args.torch_gemm:
            apply_torch_gemm(pipelines[name])
    first = next(iter(pipelines.values()))
    docs = load_docs(first, Path(args.data), args.limit)
    n_words = sum(len(d) for d in docs)
    print(f"{len(docs)} docs, {n_words} words, batch_size {args.batch_size}")
    for name, nlp in pipelines.items():  # warm up: one whole pass each, so no timed round is a first
        time_once(nlp, docs, batch_sizes[name])
    times: Dict[str, List[float]] = {name: [] for name in pipelines}
    for r in range(args.rounds):
        for name, nlp in pipelines.items():
            times[name].append(time_once(nlp, docs, batch_sizes[name]))
        print(f"round {r + 1}: " + ", ".join(f"{n} {times[n][-1]:.2f}s" for n in pipelines), flush=True)
    results = {}
    ref = None
    for spec in args.pipeline:
        name, _, path = spec.partition("=")
        med = statistics.median(times[name])
        wps = n_words / med
        ref = ref or wps
        mem = subprocess.run(
            [sys.executable, __file__, "--data", args.data, "--pipeline", spec, "--threads", str(args.threads),
             "--batch-size", str(batch_sizes[name]), "--limit", str(args.limit), "--memory-child", path, args.data,
             *(["--torch-gemm", name] if name in args.torch_gemm else [])],
            capture_output=True, text=True, check=True,
        )
        results[name] = {
            "path": path,
            "torch_gemm": name in args.torch_gemm,
            "batch_size": batch_sizes[name],
            "median_seconds": round(med, 3),
            "all_seconds": [round(t, 3) for t in times[name]],
            "words_per_second": round(wps, 1),
            "ratio_to_first": round(wps / ref, 3),
            "memory": json.loads(mem.stdout.strip().splitlines()[-1]),
        }
    print(f"\n{'pipeline':20} {'words/s':>9} {'ratio':>6} {'peak RSS MiB':>13} {'over baseline':>14}")
    for name, r in results.items():
        m = r["memory"]
        print(f"{name:20} {r['words_per_second']:9.0f} {r['ratio_to_first']:6.2f} {m['peak_rss_mib']:13.0f} "
              f"{m['peak_over_baseline_mib']:14.0f}")
    import thinc
    import torch as _torch

    out = {
        "command": " ".join(sys.argv),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": bench_common.machine(),
        "versions": {"spacy": spacy.__version__, "thinc": thinc.__version__, "torch": _torch.__version__},
        "threads": args.threads,
        "docs": len(docs),
        "words": n_words,
        "batch_size": args.batch_size,
        "results": results,
    }
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
