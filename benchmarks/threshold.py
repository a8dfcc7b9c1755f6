"""Confidence threshold fitted on dev: entity F1 on dev and test before and after.

For each trained pipeline, `fit_threshold` chooses the component's `threshold` (predicted
entities less confident than it are dropped) on the dev split, maximizing entity F1 there
(candidates 0.0 to 0.95 in steps of 0.05, confidences at the pipeline's saved temperature);
both splits are then scored with spaCy's NER scorer on gold tokens, at threshold 0 and at
the fitted threshold. With --fit-temperature the confidence temperature is fitted on dev
first, as the project's `calibrate` step does (scripts/calibrate.py). With --per-label,
one threshold per entity label is also fitted on dev (coordinate ascent from the global
one, three sweeps over the labels, the same candidates) and scored, to see whether a
per-label setting would pay. Only dev chooses; test is reported.

    python benchmarks/threshold.py --dev benchmarks/work/corpus/conll03-n1/dev.spacy \
        --test benchmarks/work/corpus/conll03-n1/test.spacy \
        --pipeline ours=benchmarks/work/runs/conll03-n1/ours/model/model-best \
        --threads 1 --output benchmarks/results/threshold_conll03.json
"""

import argparse
import sys
from typing import Any, Dict, List

from bench_common import fix_threads, write_result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dev", required=True, help=".spacy file the threshold is fitted on")
    parser.add_argument("--test", required=True, help=".spacy file to report")
    parser.add_argument("--pipeline", action="append", required=True, help="NAME=PATH")
    parser.add_argument("--component", default="bilstm_attn_crf")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--fit-temperature", action="store_true", help="fit the temperature on dev first"
    )
    parser.add_argument(
        "--per-label", action="store_true", help="also fit and score per-label thresholds"
    )
    parser.add_argument("--output", default="benchmarks/results/threshold.json")
    args = parser.parse_args()
    fix_threads(args.threads)
    import spacy
    from spacy.tokens import Doc, DocBin
    from spacy.training import Example

    from spacy_bilstm_crf.pipeline_component import DEFAULT_THRESHOLDS

    def examples(nlp, path: str) -> List[Example]:  # type: ignore[no-untyped-def]
        gold = DocBin().from_disk(path).get_docs(nlp.vocab)
        return [
            Example(
                Doc(nlp.vocab, words=[t.text for t in d], spaces=[bool(t.whitespace_) for t in d]),
                d,
            )
            for d in gold
        ]

    def f1(nlp, egs: List[Example]) -> Dict[str, float]:  # type: ignore[no-untyped-def]
        scores = nlp.evaluate(egs)
        return {k: round(100 * scores[f"ents_{k}"], 2) for k in ("f", "p", "r")}

    def scored(nlp, pipe, egs: List[Example]):  # type: ignore[no-untyped-def]
        """(label, confidence, correct) of every predicted entity (whatever the threshold),
        and the gold count: the held-out predictions `fit_threshold` itself uses."""
        batches, n_gold, preset = pipe._held_out_predictions(egs, "threshold.py", "threshold", nlp)
        if preset:
            sys.exit("threshold.py: the docs already have entities (an upstream component?)")
        temperature = pipe.cfg["confidence_temperature"]
        out = [
            (span[2], score, c)
            for decoded, correct in batches
            for (span, score), c in zip(pipe._flat(decoded, temperature), correct)
        ]
        return out, n_gold

    def f1_at(preds, n_gold: int, thresholds: Dict[str, float]) -> float:  # type: ignore[no-untyped-def]
        kept = [c for label, score, c in preds if score >= thresholds[label]]
        return round(200 * sum(kept) / (len(kept) + n_gold), 2) if kept or n_gold else 0.0

    results: Dict[str, Dict[str, Any]] = {}
    for spec in args.pipeline:
        name, _, path = spec.partition("=")
        nlp = spacy.load(path)
        pipe = nlp.get_pipe(args.component)
        dev, test = examples(nlp, args.dev), examples(nlp, args.test)
        pipe.cfg["threshold"] = 0.0
        before = {"dev": f1(nlp, dev), "test": f1(nlp, test)}
        if args.fit_temperature:
            pipe.fit_confidence_temperature(dev, nlp=nlp)
        threshold = pipe.fit_threshold(dev, nlp=nlp)
        after = {"dev": f1(nlp, dev), "test": f1(nlp, test)}
        results[name] = {
            "path": path,
            "temperature": pipe.cfg["confidence_temperature"],
            "threshold": threshold,
            "threshold_0": before,
            "fitted": after,
        }
        print(
            f"{name}: temperature {pipe.cfg['confidence_temperature']}, threshold {threshold:.2f}; dev F1 {before['dev']['f']:.2f} -> {after['dev']['f']:.2f}; "
            f"test F1 {before['test']['f']:.2f} -> {after['test']['f']:.2f} "
            f"(P {before['test']['p']:.2f} -> {after['test']['p']:.2f}, "
            f"R {before['test']['r']:.2f} -> {after['test']['r']:.2f})",
            flush=True,
        )
        if args.per_label:
            dev_preds, dev_gold = scored(nlp, pipe, dev)
            test_preds, test_gold = scored(nlp, pipe, test)
            per_label = {label: threshold for label in pipe.labels}
            for _ in range(3):
                for label in pipe.labels:
                    per_label[label] = max(
                        DEFAULT_THRESHOLDS,
                        key=lambda t: (f1_at(dev_preds, dev_gold, {**per_label, label: t}), -t),
                    )
            results[name]["per_label"] = {
                "thresholds": per_label,
                "dev_f": f1_at(dev_preds, dev_gold, per_label),
                "test_f": f1_at(test_preds, test_gold, per_label),
            }
            print(
                f"  per label {per_label}: dev F1 {results[name]['per_label']['dev_f']:.2f}, "
                f"test F1 {results[name]['per_label']['test_f']:.2f}",
                flush=True,
            )
    write_result(
        args.output,
        args.threads,
        {
            "fit_temperature": args.fit_temperature,
            "per_label": args.per_label,
            "results": results,
        },
    )


if __name__ == "__main__":
    main()
