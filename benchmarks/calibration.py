"""Calibration of our entity confidences: reliability diagram and expected calibration error.

For each entity the pipeline predicts on the gold-tokenized docs, its confidence
(`doc.spans[spans_key].attrs["scores"]`, the exact posterior that exactly this span has
exactly this label) is compared with whether it is correct (the same start, end and
label is a gold entity). ECE = sum over 10 equal-width confidence bins of
(bin size / N) * |accuracy(bin) - mean confidence(bin)|.

    python benchmarks/calibration.py --model benchmarks/work/runs/conll03-n1/ours/model/model-best \
        --data benchmarks/work/corpus/conll03-n1/dev.spacy \
        --output benchmarks/results/calibration_conll03_dev.json --png benchmarks/results/reliability_conll03_dev.png
"""

import argparse
import datetime
import json
import sys
from pathlib import Path

from bench_common import fix_threads


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True)
    parser.add_argument("--data", required=True, help=".spacy file with gold docs")
    parser.add_argument("--component", default="bilstm_attn_crf")
    parser.add_argument("--bins", type=int, default=10)
    parser.add_argument("--output", required=True)
    parser.add_argument("--png", default=None)
    parser.add_argument("--fit-on", default=None,
                        help=".spacy file to fit the confidence temperature on first (held out from --data)")
    parser.add_argument("--fit-first-half", action="store_true",
                        help="fit the temperature on the first half of --data and report on the second half")
    parser.add_argument("--calibrate-on-save", type=int, default=None, metavar="N",
                        help="run the configs' CalibrateOnSave callback (fits the temperature on "
                        "the first N docs of --data, read as the pipeline's [corpora.dev] "
                        "reads its dev set) and report on the rest of --data")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch / BLAS threads (fixed and printed; recorded in the JSON)")
    args = parser.parse_args()
    fix_threads(args.threads)

    # after fix_threads: this imports numpy, torch and spaCy, which read the thread settings
    import spacy
    from spacy.tokens import Doc, DocBin
    from spacy.training import Example

    from spacy_bilstm_crf.calibration import entity_confidences, expected_calibration_error

    nlp = spacy.load(args.model)
    pipe = nlp.get_pipe(args.component)
    gold_docs = list(DocBin().from_disk(args.data).get_docs(nlp.vocab))

    def as_examples(docs):  # type: ignore[no-untyped-def]
        return [Example(Doc(nlp.vocab, words=[t.text for t in d], spaces=[bool(t.whitespace_) for t in d]), d)
                for d in docs]

    fitted = None
    callback_seconds = None
    if args.calibrate_on_save is not None:
        import time

        from spacy.util import registry

        from spacy_bilstm_crf.callbacks import CALLBACK_NAME

        # the callback reads the training config's dev corpus: point it at --data
        nlp.config["paths"]["dev"] = str(args.data)
        callback = registry.callbacks.get(CALLBACK_NAME)(
            corpus="corpora.dev", component=args.component, max_docs=args.calibrate_on_save
        )
        start = time.perf_counter()
        callback(nlp)
        callback_seconds = round(time.perf_counter() - start, 2)
        fitted = pipe.cfg["confidence_temperature"]
        print(f"CalibrateOnSave took {callback_seconds} s")
        gold_docs = gold_docs[args.calibrate_on_save:]
    elif args.fit_first_half:
        half = len(gold_docs) // 2
        fitted = pipe.fit_confidence_temperature(as_examples(gold_docs[:half]), nlp=nlp)
        gold_docs = gold_docs[half:]
    elif args.fit_on:
        fitted = pipe.fit_confidence_temperature(
            as_examples(list(DocBin().from_disk(args.fit_on).get_docs(nlp.vocab))), nlp=nlp)
    if fitted is not None:
        print(f"fitted confidence_temperature = {fitted}")
    conf, correct = entity_confidences(nlp, gold_docs, args.component)
    if not conf:
        sys.exit("no entities predicted")
    ece, bins = expected_calibration_error(conf, correct, args.bins)
    precision = sum(correct) / len(correct)
    print(f"{len(conf)} predicted entities, precision {precision:.4f}, mean confidence {sum(conf) / len(conf):.4f}")
    print(f"expected calibration error (ECE, {args.bins} bins): {ece:.4f}")
    print(f"{'bin':>11} {'count':>6} {'conf':>6} {'acc':>6}")
    for b in bins:
        if b["count"]:
            print(f"{b['lo']:.1f}-{b['hi']:.1f}   {b['count']:6d} {b['confidence']:6.3f} {b['accuracy']:6.3f}")
    out = {
        "model": args.model,
        "data": args.data,
        "n_entities": len(conf),
        "precision": precision,
        "mean_confidence": sum(conf) / len(conf),
        "ece": ece,
        "confidence_temperature": pipe.cfg.get("confidence_temperature", 1.0),
        "fitted_on": (
            f"CalibrateOnSave on the first {args.calibrate_on_save} docs of --data (reported on the rest)"
            if args.calibrate_on_save is not None
            else "first half of --data (reported on the second half)" if args.fit_first_half else args.fit_on
        ),
        "callback_seconds": callback_seconds,
        "threads": args.threads,
        "bins": bins,
        "command": " ".join(sys.argv),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.output}")
    if args.png:
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            print("matplotlib is not installed: no reliability diagram (pip install matplotlib)")
            return
        fig, ax = plt.subplots(figsize=(5, 5))
        filled = [b for b in bins if b["count"]]
        centers = [(b["lo"] + b["hi"]) / 2 for b in filled]
        ax.bar(centers, [b["accuracy"] for b in filled], width=1 / args.bins, edgecolor="black",
               alpha=0.7, label="accuracy (exact span + label)")
        ax.plot([0, 1], [0, 1], "k--", label="perfect calibration")
        ax.plot(centers, [b["confidence"] for b in filled], "ro-", label="mean confidence")
        for c, b in zip(centers, filled):
            ax.annotate(str(b["count"]), (c, 0.02), ha="center", fontsize=7)
        ax.set_xlabel("confidence")
        ax.set_ylabel("accuracy")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_title(f"Entity confidence reliability (ECE {ece:.3f}, n={len(conf)})")
        ax.legend(loc="upper left", fontsize=8)
        fig.tight_layout()
        fig.savefig(args.png, dpi=100)
        print(f"wrote {args.png}")


if __name__ == "__main__":
    main()
