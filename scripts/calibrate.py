"""Fit the recognizer's confidence temperature on held-out data and save the pipeline.

    python scripts/calibrate.py training/default/model-best corpus/wnut17/dev.spacy \
        training/default/model-calibrated metrics/default/calibration.json

The raw CRF posteriors of a trained model are over-confident. This fits the component's
`confidence_temperature` on held-out gold data (the dev set: never the training data) by
minimizing the log loss of the entity confidences, writes the pipeline with that setting
to OUTPUT (the predicted entities do not change, only their confidences), and writes the
expected calibration error before and after to a JSON file. The data is a .spacy DocBin
or a CoNLL-style file read in place, like scripts/evaluate.py.
"""

import argparse
import json
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
    args = parser.parse_args(argv)

    if args.gpu_id >= 0:
        spacy.require_gpu(args.gpu_id)
    nlp = spacy.load(args.model)
    pipe = nlp.get_pipe(args.component)
    docs = load_gold_docs(nlp, args.data, args.limit)
    before = expected_calibration_error(*entity_confidences(nlp, docs, args.component))[0]
    old_t = pipe.cfg["confidence_temperature"]
    try:
        new_t = pipe.fit_confidence_temperature(gold_token_examples(nlp, docs))
    except ValueError as err:  # e.g. a tiny --limit slice on which nothing is predicted
        print(f"Not fitted, temperature kept at {old_t}: {err}")
        new_t = old_t
    confidences, correct = entity_confidences(nlp, docs, args.component)
    after = expected_calibration_error(confidences, correct)[0]
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
    }
    args.metrics.parent.mkdir(parents=True, exist_ok=True)
    args.metrics.write_text(json.dumps(result, indent=2) + "\n", encoding="utf8")
    print(f"confidence_temperature {old_t} -> {new_t}; ECE on {args.data} {before:.4f} -> {after:.4f} "
          f"(in-sample); saved {args.output}")


if __name__ == "__main__":
    main()
