"""Accuracy harness: train and evaluate our recognizer and spaCy's `ner` side by side.

Each run trains one system on one data set with `spacy train` (one invocation gives every
system the same data, step cap, patience and evaluation frequency; runs made by separate
invocations may differ, and `seeds.py` warns when a table mixes them), keeps a per-evaluation log with
elapsed seconds (for learning curves), evaluates model-best on the test split and on dev
with `spacy evaluate` (gold tokens), and writes one JSON file per run:

    python benchmarks/accuracy.py --dataset conll03 --systems ours,spacy_ner \
        --max-steps 7000 --patience 1600 --eval-frequency 200 --threads 2

Data: CoNLL-2003 from --conll-dir (never copied into the repository; the converted
DocBins go to the ignored work directory), WNUT-17 from assets/wnut17. Select on dev,
report test. `--summary` prints the table of every JSON result present.
"""

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

import bench_common

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "benchmarks" / "work"
RESULTS = ROOT / "benchmarks" / "results" / "accuracy"
DEFAULT_CONLL = ROOT.parent / "shared" / "data" / "conll2003"

DATASETS = {
    "conll03": {
        "files": {"train": "eng.train", "dev": "eng.testa", "test": "eng.testb"},
        "format": "conll2003",
    },
    "wnut17": {
        "files": {
            "train": "wnut17train.conll",
            "dev": "emerging.dev.conll",
            "test": "emerging.test.annotated",
        },
        "format": "wnut",
    },
}

BENCH_CONFIGS = ROOT / "benchmarks" / "configs"
OURS = "components.bilstm_attn_crf.model"
# name -> (config, extra overrides, needs vectors)
SYSTEMS: Dict[str, Dict[str, Any]] = {
    "ours": {"config": ROOT / "configs" / "default.cfg", "overrides": {}, "vectors": False},
    "ours_noattn": {
        "config": ROOT / "configs" / "default.cfg",
        "overrides": {f"{OURS}.attention_heads": "0"},
        "vectors": False,
    },
    "ours_vectors": {"config": ROOT / "configs" / "vectors.cfg", "overrides": {}, "vectors": True},
    "ours_vectors_noattn": {
        "config": ROOT / "configs" / "vectors.cfg",
        "overrides": {f"{OURS}.attention_heads": "0"},
        "vectors": True,
    },
    "ours_chars": {"config": BENCH_CONFIGS / "ours_chars.cfg", "overrides": {}, "vectors": False},
    "ours_vectors_chars": {"config": BENCH_CONFIGS / "ours_vectors_chars.cfg", "overrides": {}, "vectors": True},
    # word dropout (spacy-bilstm-crf.TokenDropout.v1 around MultiHashEmbed)
    "ours_chars_wdrop": {"config": BENCH_CONFIGS / "ours_chars_wdrop.cfg", "overrides": {}, "vectors": False},
    "ours_vectors_chars_wdrop": {
        "config": BENCH_CONFIGS / "ours_vectors_chars_wdrop.cfg", "overrides": {}, "vectors": True,
    },
    # the same with spaCy ner's batch schedule: 100 words per batch, compounding to 1,000
    "ours_chars_wdrop_compound": {
        "config": BENCH_CONFIGS / "ours_chars_wdrop_compound.cfg", "overrides": {}, "vectors": False,
    },
    "ours_vectors_chars_wdrop_compound": {
        "config": BENCH_CONFIGS / "ours_vectors_chars_wdrop_compound.cfg", "overrides": {}, "vectors": True,
    },
    # the same with an inverse-time decaying learning rate, 0.003 / (1 + 0.000667 t):
    # 0.003 at the first step, 0.0015 at step 1,500, 0.001 at step 3,000
    "ours_chars_wdrop_lrdecay": {
        "config": BENCH_CONFIGS / "ours_chars_wdrop_lrdecay.cfg", "overrides": {}, "vectors": False,
    },
    "ours_vectors_chars_wdrop_lrdecay": {
        "config": BENCH_CONFIGS / "ours_vectors_chars_wdrop_lrdecay.cfg", "overrides": {}, "vectors": True,
    },
    # the same with spacy-bilstm-crf.CharacterEmbed.v1 (spaCy's character embedding with a
    # batched, cached byte lookup) and torch matrix products in the tok2vec (session 11):
    # `_fastchars` with sum_repeated_bytes = true (the exact gradient; a probe),
    # `_charembed` with spaCy's gradient (the new default)
    "ours_chars_wdrop_lrdecay_fastchars": {
        "config": BENCH_CONFIGS / "ours_chars_wdrop_lrdecay_fastchars.cfg", "overrides": {}, "vectors": False,
    },
    "ours_vectors_chars_wdrop_lrdecay_fastchars": {
        "config": BENCH_CONFIGS / "ours_vectors_chars_wdrop_lrdecay_fastchars.cfg", "overrides": {},
        "vectors": True,
    },
    "ours_chars_wdrop_lrdecay_charembed": {
        "config": BENCH_CONFIGS / "ours_chars_wdrop_lrdecay_charembed.cfg", "overrides": {}, "vectors": False,
    },
    "ours_vectors_chars_wdrop_lrdecay_charembed": {
        "config": BENCH_CONFIGS / "ours_vectors_chars_wdrop_lrdecay_charembed.cfg", "overrides": {},
        "vectors": True,
    },
    # `_unk`: the same with spacy-bilstm-crf.MultiHashEmbed.v1, an unknown-word row for
    # NORM values not in the training data (session 12)
    "ours_chars_wdrop_lrdecay_unk": {
        "config": BENCH_CONFIGS / "ours_chars_wdrop_lrdecay_unk.cfg", "overrides": {}, "vectors": False,
    },
    "ours_vectors_chars_wdrop_lrdecay_unk": {
        "config": BENCH_CONFIGS / "ours_vectors_chars_wdrop_lrdecay_unk.cfg", "overrides": {}, "vectors": True,
    },
    # `_unk2`: and an unknown-word row for the character layer's ORTH feature too
    "ours_chars_wdrop_lrdecay_unk2": {
        "config": BENCH_CONFIGS / "ours_chars_wdrop_lrdecay_unk2.cfg", "overrides": {}, "vectors": False,
    },
    "ours_vectors_chars_wdrop_lrdecay_unk2": {
        "config": BENCH_CONFIGS / "ours_vectors_chars_wdrop_lrdecay_unk2.cfg", "overrides": {}, "vectors": True,
    },
    # `_unk2` with the character CNN (spacy-bilstm-crf.CharCNN.v1) beside the character
    # embedding (`_cnnchars`) or instead of it (`_charcnn`) (session 13 probes)
    "ours_chars_cnnchars_wdrop_lrdecay_unk2": {
        "config": BENCH_CONFIGS / "ours_chars_cnnchars_wdrop_lrdecay_unk2.cfg", "overrides": {}, "vectors": False,
    },
    "ours_charcnn_wdrop_lrdecay_unk2": {
        "config": BENCH_CONFIGS / "ours_charcnn_wdrop_lrdecay_unk2.cfg", "overrides": {}, "vectors": False,
    },
    # configs/shared_tok2vec.cfg (a tok2vec component that ours listens to) as shipped up to
    # session 12, with spaCy's MultiHashEmbed, and with the unknown-word row in the shared
    # MultiHashEmbed (session 13; the shipped config since then)
    "ours_shared": {"config": BENCH_CONFIGS / "ours_shared_base.cfg", "overrides": {}, "vectors": False},
    "ours_shared_unk": {"config": BENCH_CONFIGS / "ours_shared_unk.cfg", "overrides": {}, "vectors": False},
    # the same with length-bucketed batches: spacy.batch_by_padded.v1, 1,100 padded words,
    # sorted within a buffer of 1,024 docs (padding 1.1x instead of 3.2x)
    "ours_chars_wdrop_padded": {
        "config": BENCH_CONFIGS / "ours_chars_wdrop_padded.cfg", "overrides": {}, "vectors": False,
    },
    "ours_vectors_chars_wdrop_padded": {
        "config": BENCH_CONFIGS / "ours_vectors_chars_wdrop_padded.cfg", "overrides": {}, "vectors": True,
    },
    # word dropout on the hash embeddings only; GloVe beside them, never dropped (averaging on)
    "ours_vectors_chars_wdrop_split": {
        "config": BENCH_CONFIGS / "ours_vectors_chars_wdrop_split.cfg", "overrides": {}, "vectors": True,
    },
    # the transformer config with word dropout on its hash embeddings and averaging
    "ours_trf_vectors_chars_wdrop": {
        "config": BENCH_CONFIGS / "ours_trf_vectors_chars_wdrop.cfg", "overrides": {}, "vectors": True,
        "transformer": True,
    },
    # spaCy's MaxoutWindowEncoder (depth 2) between the embeddings and the BiLSTM (averaging on)
    "ours_chars_wdrop_cnn": {"config": BENCH_CONFIGS / "ours_chars_wdrop_cnn.cfg", "overrides": {}, "vectors": False},
    "ours_vectors_chars_wdrop_cnn": {
        "config": BENCH_CONFIGS / "ours_vectors_chars_wdrop_cnn.cfg", "overrides": {}, "vectors": True,
    },
    # character CNN (spacy-bilstm-crf.CharCNN.v1) instead of spaCy's CharacterEmbed
    "ours_charcnn_wdrop": {"config": BENCH_CONFIGS / "ours_charcnn_wdrop.cfg", "overrides": {}, "vectors": False},
    "ours_vectors_charcnn_wdrop": {
        "config": BENCH_CONFIGS / "ours_vectors_charcnn_wdrop.cfg", "overrides": {}, "vectors": True,
    },
    "spacy_ner_wdrop": {"config": BENCH_CONFIGS / "spacy_ner_wdrop.cfg", "overrides": {}, "vectors": False},
    "spacy_ner_vectors_wdrop": {
        "config": BENCH_CONFIGS / "spacy_ner_vectors_wdrop.cfg", "overrides": {}, "vectors": True,
    },
    "ours_vectors_chars_sched": {
        "config": BENCH_CONFIGS / "ours_vectors_chars_sched.cfg", "overrides": {}, "vectors": True,
    },
    # MiniLM transformer (fine-tuned) + GloVe + characters; spaCy ner gets the same tok2vec
    "ours_trf_vectors_chars": {
        "config": BENCH_CONFIGS / "ours_trf_vectors_chars.cfg", "overrides": {}, "vectors": True,
        "transformer": True,
    },
    "spacy_ner_trf_vectors_chars": {
        "config": BENCH_CONFIGS / "spacy_ner_trf_vectors_chars.cfg", "overrides": {}, "vectors": True,
        "transformer": True,
    },
    # the same, with spaCy ner's own layers learning at 20x the optimizer's rate like ours
    # (`learn_rate_scale = 20`): benchmarks/lr_scale.py (session 15)
    "spacy_ner_trf_vectors_chars_lrscale": {
        "config": BENCH_CONFIGS / "spacy_ner_trf_vectors_chars.cfg",
        "overrides": {
            "initialize.after_init": json.dumps(
                {"@callbacks": "spacy-bilstm-crf.bench.LearnRateScale.v1", "scales": {"ner": 20.0}}
            ),
        },
        "vectors": True,
        "transformer": True,
    },
    "spacy_ner": {"config": BENCH_CONFIGS / "spacy_ner.cfg", "overrides": {}, "vectors": False},
    "spacy_ner_vectors": {
        "config": BENCH_CONFIGS / "spacy_ner_vectors.cfg",
        "overrides": {},
        "vectors": True,
    },
    # spaCy ner with the unknown-word row in its tok2vec's MultiHashEmbed (a control for
    # session 12's default: spacy-bilstm-crf.SetWordCounts.v1 sets the counts)
    "spacy_ner_unk": {"config": BENCH_CONFIGS / "spacy_ner_unk.cfg", "overrides": {}, "vectors": False},
    "spacy_ner_vectors_unk": {"config": BENCH_CONFIGS / "spacy_ner_vectors_unk.cfg", "overrides": {}, "vectors": True},
}


def versions() -> Dict[str, str]:
    import spacy
    import thinc
    import torch

    return {
        "python": platform.python_version(),
        "spacy": spacy.__version__,
        "thinc": thinc.__version__,
        "torch": torch.__version__,
    }


def machine() -> Dict[str, Any]:
    return {**bench_common.machine(), "processor": platform.processor()}


def corpus_name(dataset: str, n_sents: int, doc_boundaries: bool = False) -> str:
    """The work-directory name of a converted corpus: `conll03-n1` (one sentence per Doc),
    `conll03-docs` (one Doc per `-DOCSTART-` document)."""
    return f"{dataset}-docs" if doc_boundaries else f"{dataset}-n{n_sents}"


def prepare_corpus(dataset: str, conll_dir: Path, n_sents: int, doc_boundaries: bool = False) -> Dict[str, Path]:
    """Convert the data set's splits to .spacy files (gold tokens) in the work directory."""
    from spacy.tokens import DocBin

    from spacy_bilstm_crf.corpus import read_conll

    spec = DATASETS[dataset]
    src = conll_dir if dataset == "conll03" else ROOT / "assets" / "wnut17"
    if doc_boundaries and dataset != "conll03":
        sys.exit(f"--doc-boundaries needs -DOCSTART- lines; {dataset} has none")
    out_dir = WORK / "corpus" / corpus_name(dataset, n_sents, doc_boundaries)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for split, name in spec["files"].items():
        path = out_dir / f"{split}.spacy"
        if not path.exists():
            if not (src / name).exists():
                sys.exit(f"{src / name} not found: pass --conll-dir DIR with eng.train/testa/testb")
            docs = read_conll(
                src / name, n_sents=n_sents, doc_boundaries=doc_boundaries, file_format=spec["format"]
            )
            DocBin(docs=docs, store_user_data=False).to_disk(path)
        paths[split] = path
    return paths


def prepare_vectors(train: Path) -> Path:
    out = WORK / "vectors" / "glove6b50d"
    if not (out / "config.cfg").exists():
        run([sys.executable, str(ROOT / "scripts" / "build_vectors.py"), str(out), "--corpus", str(train)])
    return out


def prepare_transformer() -> Path:
    out = WORK / "vectors" / "all-minilm-l6-v2"
    if not (out / "config.json").exists():
        run([sys.executable, str(ROOT / "scripts" / "copy_transformer.py"), str(out)])
    return out


def run(cmd: List[str], log: Optional[Path] = None, env: Optional[Dict[str, str]] = None) -> None:
    print("$", " ".join(cmd), flush=True)
    if log is None:
        subprocess.run(cmd, check=True, env=env)
        return
    with log.open("w", encoding="utf8") as f:
        proc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, env=env)
    if proc.returncode != 0:
        print(log.read_text()[-4000:])
        raise SystemExit(f"command failed ({proc.returncode}); log in {log}")


def thread_env(threads: int) -> Dict[str, str]:
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[var] = str(threads)
    return env


def evaluate(model: Path, data: Path, out: Path, env: Dict[str, str]) -> Dict[str, Any]:
    run([sys.executable, "-m", "spacy", "evaluate", str(model), str(data), "--output", str(out)], env=env)
    return json.loads(out.read_text())


def train_overrides(
    spec: Dict[str, Any], corpus: Dict[str, Path], settings: Dict[str, Optional[str]], extra: Optional[List[str]]
) -> Dict[str, Optional[str]]:
    """The `spacy train` overrides of one run of a system: the corpus paths, the run's
    `[training]` settings, the system's own overrides, its vectors and transformer, then
    the command line's KEY=VALUE overrides (`extra`), in that order."""
    overrides = {"paths.train": str(corpus["train"]), "paths.dev": str(corpus["dev"]), **settings, **spec["overrides"]}
    if spec["vectors"]:
        overrides["paths.vectors"] = str(prepare_vectors(corpus["train"]))
    if spec.get("transformer"):
        overrides["paths.transformer"] = str(prepare_transformer())
    for item in extra or []:
        key, _, value = item.partition("=")
        overrides[key] = value
    return overrides


def override_args(overrides: Dict[str, Optional[str]]) -> List[str]:
    """`spacy train`'s `--KEY VALUE` arguments for the overrides that have a value."""
    return [arg for key, value in overrides.items() if value is not None for arg in (f"--{key}", value)]


def recorded_overrides(overrides: Dict[str, Optional[str]]) -> Dict[str, str]:
    """The overrides a result JSON records: those with a value, without the `paths.*`."""
    return {k: v for k, v in overrides.items() if not k.startswith("paths.") and v is not None}


def train_one(args: argparse.Namespace, dataset: str, system: str) -> Dict[str, Any]:
    spec = SYSTEMS[system]
    corpus = prepare_corpus(dataset, Path(args.conll_dir), args.n_sents, args.doc_boundaries)
    run_dir = WORK / "runs" / corpus_name(dataset, args.n_sents, args.doc_boundaries) / f"{system}{args.tag}"
    run_dir.mkdir(parents=True, exist_ok=True)
    overrides = train_overrides(spec, corpus, {
        "training.max_steps": str(args.max_steps),
        "training.patience": str(args.patience),
        "training.eval_frequency": str(args.eval_frequency),
        "training.logger": None,  # replaced below
    }, args.override)
    log_jsonl = run_dir / "train_log.jsonl"
    cmd = [sys.executable, "-m", "spacy", "train", str(spec["config"]), "--output", str(run_dir / "model"),
           "--code", str(ROOT / "benchmarks" / "spacy_code.py"),
           "--training.logger", json.dumps({"@loggers": "spacy-bilstm-crf.bench.TimingLogger.v1", "path": str(log_jsonl)}),
           *override_args(overrides)]
    env = thread_env(args.threads)
    start = time.perf_counter()
    run(cmd, log=run_dir / "train.log", env=env)
    train_seconds = time.perf_counter() - start
    curve = [json.loads(line) for line in log_jsonl.read_text().splitlines() if line.strip()]
    best = run_dir / "model" / "model-best"
    test_scores = evaluate(best, corpus["test"], run_dir / "test_metrics.json", env)
    dev_scores = evaluate(best, corpus["dev"], run_dir / "dev_metrics.json", env)
    last = curve[-1] if curve else {}
    result = {
        "dataset": dataset,
        "system": system,
        "tag": args.tag,
        "config": str(Path(spec["config"]).relative_to(ROOT)),
        "overrides": recorded_overrides(overrides),
        "n_sents_per_doc": None if args.doc_boundaries else args.n_sents,
        "doc_boundaries": args.doc_boundaries,
        "threads": args.threads,
        # torch's own count inside the training process, as the timing logger read it
        "torch_threads": curve[0].get("torch_threads") if curve else None,
        "train_wall_seconds": round(train_seconds, 1),
        "steps": last.get("step"),
        "train_words": last.get("words"),
        "train_words_per_second": round(last["words"] / last["elapsed_seconds"], 1) if last else None,
        # the same without the dev evaluations and checkpoint saves (the logger's
        # `train_seconds`; runs before session 8 do not have it)
        "train_words_per_training_second": (
            round(last["words"] / last["train_seconds"], 1) if last.get("train_seconds") else None
        ),
        "best_dev_f1": max((row["ents_f"] or 0.0) for row in curve) * 100 if curve else None,
        "dev": {k: dev_scores.get(k) for k in ("ents_f", "ents_p", "ents_r")},
        "test": {k: test_scores.get(k) for k in ("ents_f", "ents_p", "ents_r", "ents_per_type")},
        "curve": [
            {k: row[k] for k in ("step", "elapsed_seconds", "train_seconds", "words", "ents_f") if k in row}
            for row in curve
        ],
        "versions": versions(),
        "machine": machine(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(sys.argv),
        "model_dir": str(best.relative_to(ROOT)),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"{dataset}-{system}{args.tag}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}: test F1 {result['test']['ents_f']:.4f}, dev F1 {result['dev']['ents_f']:.4f}, "
          f"{train_seconds:.0f}s, torch threads {result['torch_threads']}", flush=True)
    return result


def summary() -> None:
    rows = [json.loads(p.read_text()) for p in sorted(RESULTS.glob("*.json"))]
    header = f"{'dataset':8} {'system':22} {'test F1':>8} {'dev F1':>7} {'train s':>8} {'steps':>6} {'words/s':>8}"
    print(header)
    print("-" * len(header))
    for r in rows:
        name = r["system"] + r.get("tag", "")
        if "test" not in r:  # a run stopped by hand: only its curve was kept
            print(f"{r['dataset']:8} {name:22} (stopped: {r.get('note', 'no test score')[:60]})")
            continue
        print(f"{r['dataset']:8} {name:22} {100 * r['test']['ents_f']:8.2f} {100 * r['dev']['ents_f']:7.2f} "
              f"{r['train_wall_seconds']:8.0f} {r['steps'] or 0:6d} {r['train_words_per_second'] or 0:8.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", choices=sorted(DATASETS), default="conll03")
    parser.add_argument("--systems", default="ours,spacy_ner", help=f"comma-separated: {', '.join(SYSTEMS)}")
    parser.add_argument("--conll-dir", default=str(DEFAULT_CONLL))
    parser.add_argument("--max-steps", type=int, default=7000)
    parser.add_argument("--patience", type=int, default=1600)
    parser.add_argument("--eval-frequency", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--n-sents", type=int, default=1, help="sentences per Doc")
    parser.add_argument("--doc-boundaries", action="store_true",
                        help="one Doc per -DOCSTART- document (CoNLL-2003; scoring stays on gold tokens)")
    parser.add_argument("--override", action="append", help="extra config override KEY=VALUE (all systems)")
    parser.add_argument("--tag", default="", help="suffix for the result file name")
    parser.add_argument("--summary", action="store_true", help="only print the table of results")
    args = parser.parse_args()
    if args.summary:
        summary()
        return
    for system in args.systems.split(","):
        if system not in SYSTEMS:
            parser.error(f"unknown system {system!r}; choose from {', '.join(SYSTEMS)}")
        train_one(args, args.dataset, system)
    summary()


if __name__ == "__main__":
    main()
