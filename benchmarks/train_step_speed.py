"""Training-step speed: words per second of `nlp.update` on CoNLL-2003 training batches.

Times only the updates (no evaluation, no checkpoints) of a config's pipeline, for one or
more batchers and, optionally, for more than one source tree of this package (to compare
a change with the code before it, in the same run):

    python benchmarks/train_step_speed.py --config benchmarks/configs/ours_chars_wdrop.cfg \\
        --tree new=. --tree old=../old-checkout --batchers words,padded --rounds 4

Each (tree, batcher) runs in its own process per round, the variants alternating, so that
a noisy machine slows them alike; the medians and their ratios are printed and written to
JSON. Batchers: `words` (spacy.batch_by_words.v1, 1,000 words, tolerance 0.2: the shipped
configs) and `padded` (spacy.batch_by_padded.v1, 1,100 padded words, buffer 1,024). Needs
the DocBins that `accuracy.py` writes (benchmarks/work/corpus/conll03-n1).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Dict, List

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "benchmarks" / "work" / "corpus" / "conll03-n1"
RESULTS = ROOT / "benchmarks" / "results" / "train_step_speed"


def worker(args: argparse.Namespace) -> None:
    """One measurement in this process: print a JSON line with words/s."""
    from bench_common import fix_threads

    fix_threads(args.threads)
    import random
    import time

    from spacy.training import Corpus
    from spacy.training.batchers import minibatch_by_padded_size, minibatch_by_words
    from spacy.training.initialize import init_nlp
    from spacy.util import load_config
    from thinc.api import Adam, fix_random_seed

    import spacy_bilstm_crf

    overrides = {"paths.train": str(CORPUS / "train.spacy"), "paths.dev": str(CORPUS / "dev.spacy")}
    if args.vectors:
        overrides["paths.vectors"] = args.vectors
    config = load_config(args.config, overrides=overrides, interpolate=False)
    fix_random_seed(0)
    nlp = init_nlp(config)
    examples = list(Corpus(str(CORPUS / "train.spacy"))(nlp))
    random.Random(0).shuffle(examples)
    if args.worker_batcher == "words":
        batches = list(minibatch_by_words(examples, size=1000, tolerance=0.2))
    else:
        batches = list(minibatch_by_padded_size(examples, size=1100, buffer=1024))
    optimizer = Adam(0.001)
    for batch in batches[:3]:  # warm-up
        nlp.update(batch, sgd=optimizer, drop=0.3)
    timed = batches[3:3 + args.steps]
    words = sum(len(eg) for batch in timed for eg in batch)
    start = time.perf_counter()
    for batch in timed:
        nlp.update(batch, sgd=optimizer, drop=0.3)
    seconds = time.perf_counter() - start
    print(json.dumps({"package": str(Path(spacy_bilstm_crf.__file__).parent), "words": words,
                      "seconds": seconds, "words_per_second": words / seconds}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=str(ROOT / "benchmarks" / "configs" / "ours_chars_wdrop.cfg"))
    parser.add_argument("--vectors", default=None, help="paths.vectors for a config with static vectors")
    parser.add_argument("--tree", action="append", default=None,
                        help="NAME=DIR: a checkout of this repository whose package to time (default: this one)")
    parser.add_argument("--tree-config", action="append", default=[], metavar="NAME=CONFIG",
                        help="a config of its own for tree NAME (e.g. one naming a layer the other tree lacks)")
    parser.add_argument("--batchers", default="words")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=60, help="timed updates per measurement")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--output", default=None)
    parser.add_argument("--worker-batcher", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker_batcher:
        worker(args)
        return
    if not (CORPUS / "train.spacy").exists():
        raise SystemExit(f"{CORPUS}/train.spacy not found: run benchmarks/accuracy.py --dataset conll03 first")
    trees = dict(t.split("=", 1) for t in (args.tree or [f"this={ROOT}"]))
    configs = {name: args.config for name in trees}
    for spec in args.tree_config:
        name, _, config = spec.partition("=")
        if name not in trees:
            raise SystemExit(f"--tree-config {spec}: no --tree named {name!r}")
        configs[name] = config
    batchers = args.batchers.split(",")
    runs: Dict[str, List[float]] = {f"{t}/{b}": [] for t in trees for b in batchers}
    for round_ in range(args.rounds):
        for tree, directory in trees.items():
            for batcher in batchers:
                env = dict(os.environ, PYTHONPATH=str(Path(directory).resolve()))
                cmd = [sys.executable, __file__, "--worker-batcher", batcher, "--config", configs[tree],
                       "--steps", str(args.steps), "--threads", str(args.threads)]
                if args.vectors:
                    cmd += ["--vectors", args.vectors]
                out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
                threads_line = next(line for line in out.splitlines() if line.startswith("torch threads"))
                row = json.loads(out.strip().splitlines()[-1])
                runs[f"{tree}/{batcher}"].append(row["words_per_second"])
                print(f"round {round_}: {tree}/{batcher}: {row['words_per_second']:,.0f} words/s "
                      f"({row['package']}, {threads_line})", flush=True)
    first = next(iter(runs))
    medians = {name: statistics.median(values) for name, values in runs.items()}
    print(f"\n{'variant':24} {'median words/s':>15} {'ratio to ' + first:>24}")
    for name, median in medians.items():
        print(f"{name:24} {median:15,.0f} {median / medians[first]:24.3f}")
    from bench_common import write_result

    write_result(args.output or str(RESULTS / "train_step_speed.json"), args.threads, {
        "config": args.config, "configs": configs, "trees": trees, "steps": args.steps, "rounds": args.rounds,
        "words_per_second": runs, "median_words_per_second": medians,
    })


if __name__ == "__main__":
    main()
