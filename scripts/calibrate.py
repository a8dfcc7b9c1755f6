"""Fit the recognizer's confidence temperature and threshold on held-out data and save the pipeline.

    python scripts/calibrate.py training/default/model-best corpus/wnut17/dev.spacy \
        training/default/model-calibrated metrics/default/calibration.json

The raw CRF posteriors of a trained model are over-confident. This fits the component's
`confidence_temperature` on held-out gold data (the dev set: never the training data) by
minimizing the log loss of the entity confidences, writes the pipeline with that setting
to OUTPUT, and writes the expected calibration error before and after to a JSON file. The
temperature changes the confidences only, not the entities. Then (unless --no-threshold)
it fits the component's `threshold` on the same data: the confidence below which predicted
entities are dropped, chosen to maximize entity F1 (see benchmarks/RESULTS.md: on
CoNLL-2003 this gained about 0.4 test F1 on average). The dev F1 before and after goes to
the JSON too. The ECE covers every predicted entity, whatever the threshold. The data is a
.spacy DocBin or a CoNLL-style file read in place, like scripts/evaluate.py.
"""

import argparse
import json
import sys
from pathlib import Path
from typing import List, Optional

import spacy
from evaluate import gold_token_examples, load_gold_docs

from spacy_bilstm_crf.calibration import entity_confidences, expected_calibration_error


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="Trained pipeline directory")
    parser.add_argument("data", type=Path, help="Held-out gold data (.spacy DocBin or CoNLL-style file)")
    parser.add_argument("output", type=Path, help="Directory to write the calibrated pipeline to")
    parser.add_argument("metrics", type=Path, help="JSON file for the calibration numbers")
    parser.add_argument("--component", default="bilstm_attn_crf")
    parser.add_argument("--gpu-id", type=int, default=-1, help="GPU id, -1 for CPU")
    parser.add_argument("--limit", type=int, default=0, help="Use the first N docs only")
    parser.add_argument("--threshold", action=argparse.BooleanOptionalAction, default=True,
                        help="Also fit the confidence threshold for entity F1 (default: yes)")
    args = parser.parse_args(argv)

    if args.gpu_id >= 0:
        spacy.require_gpu(args.gpu_id)
    nlp = spacy.load(args.model)
    if args.component not in nlp.pipe_names:
        sys.exit(f"{args.model} has no component {args.component!r}; its components: {nlp.pipe_names}")
    pipe = nlp.get_pipe(args.component)
    if not hasattr(pipe, "fit_confidence_temperature"):
        sys.exit(f"{args.component!r} is a {type(pipe).__name__}, not a bilstm_attn_crf component: "
                 f"pass --component with the name of one")
    docs = load_gold_docs(nlp, args.data, args.limit)
    old_threshold = pipe.cfg["threshold"]

    def all_confidences():  # type: ignore[no-untyped-def]
        """Confidences and correctness of every predicted entity, whatever the threshold."""
        kept = pipe.cfg["threshold"]
        pipe.cfg["threshold"] = 0.0
        try:
            return entity_confidences(nlp, docs, args.component)
        finally:
            pipe.cfg["threshold"] = kept

    before = expected_calibration_error(*all_confidences())[0]
    # the input model's F1 (with a threshold above 0 the temperature changes the entities)
    f1_before = nlp.evaluate(gold_token_examples(nlp, docs))["ents_f"]
    old_t = pipe.cfg["confidence_temperature"]
    try:
        new_t = pipe.fit_confidence_temperature(gold_token_examples(nlp, docs), nlp=nlp)
    except ValueError as err:  # e.g. a tiny --limit slice on which nothing is predicted
        print(f"Not fitted, temperature kept at {old_t}: {err}")
        new_t = old_t
    new_threshold = old_threshold
    if args.threshold:
        try:
            new_threshold = pipe.fit_threshold(gold_token_examples(nlp, docs), nlp=nlp)
        except ValueError as err:
            print(f"Not fitted, threshold kept at {old_threshold}: {err}")
    scores_after = nlp.evaluate(gold_token_examples(nlp, docs))
    f1_after = scores_after["ents_f"]
    confidences, correct = all_confidences()
    after = expected_calibration_error(confidences, correct)[0]
    # the saved config.cfg shows the fitted settings (the component's cfg holds them too),
    # and the meta's entity scores are those of the calibrated pipeline on this data
    pipe_config = nlp.get_pipe_config(args.component)
    pipe_config["confidence_temperature"] = pipe.cfg["confidence_temperature"]
    pipe_config["threshold"] = pipe.cfg["threshold"]
    performance = nlp.meta.setdefault("performance", {})
    performance.update({k: v for k, v in scores_after.items() if k.startswith("ents_")})
    nlp.to_disk(args.output)
    result = {
        "model": args.model,
        "data": str(args.data),
        "n_docs": len(docs),
        "n_entities": len(confidences),
        "temperature_before": old_t,
        "temperature": new_t,
        "ece_before": before,
        # fitted on the same data: an in-sample figure (benchmarks/calibration.py measures
        # it on data the temperature was not fitted on)
        "ece_after_in_sample": after,
        "threshold_before": old_threshold,
        "threshold": new_threshold,
        "ents_f_before": f1_before,
        # also fitted on the same data
        "ents_f_after_in_sample": f1_after,
    }
    args.metrics.parent.mkdir(parents=True, exist_ok=True)
    args.metrics.write_text(json.dumps(result, indent=2) + "\n", encoding="utf8")
    print(f"confidence_temperature {old_t} -> {new_t}; ECE on {args.data} {before:.4f} -> {after:.4f} "
          f"(in-sample); threshold {old_threshold} -> {new_threshold}, entity F1 {_fmt(f1_before)} -> "
          f"{_fmt(f1_after)} (in-sample); saved {args.output}")


def _fmt(score: Optional[float]) -> str:
    """A score, or "n/a" where spaCy's scorer had nothing to score (no gold entity
    annotation and no prediction)."""
    return "n/a" if score is None else f"{score:.4f}"


if __name__ == "__main__":
    main()
