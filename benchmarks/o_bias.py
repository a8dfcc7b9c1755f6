"""Recall-oriented decoding: would lowering the "O" tag's emission score help?

Minkov et al. (2006) trade precision for recall in a CRF tagger by changing the weight
of the "outside" tag. Our models under-predict entities on WNUT-17 (dev precision ~58,
recall ~35), so this checks the same idea at decoding time: every token's "O" emission
score is lowered by a bias b before Viterbi decoding (b = 0 is the model as trained),
and entity F1 (spaCy's scorer, gold tokens) is reported for each b on dev and, for the
record, test. A bias would be chosen on dev; test shows whether the choice carries over.

    python benchmarks/o_bias.py --corpus benchmarks/work/corpus/wnut17-n1 \
        --pipeline NAME=PATH [--pipeline ...] --threads 1 \
        --output benchmarks/results/o_bias_wnut17.json
"""

import argparse
from pathlib import Path
from typing import Dict, List

from bench_common import fix_threads, write_result

BIASES = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--corpus", required=True, help="directory with dev.spacy and test.spacy")
    parser.add_argument("--pipeline", action="append", required=True, help="NAME=PATH")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--output", default="benchmarks/results/o_bias.json")
    args = parser.parse_args()
    fix_threads(args.threads)
    import spacy
    from spacy.scorer import Scorer
    from spacy.tokens import Doc, DocBin
    from spacy.training import Example

    import spacy_bilstm_crf.pipeline_component as pipeline_component

    unbiased = pipeline_component.predict_emissions
    bias = [0.0]

    def biased(model, docs):  # type: ignore[no-untyped-def]
        emissions, lengths = unbiased(model, docs)
        if bias[0]:
            emissions = emissions.clone()
            emissions[:, :, 0] -= bias[0]  # tag 0 is "O" in every tag scheme
        return emissions, lengths

    pipeline_component.predict_emissions = biased  # type: ignore[assignment]
    results: Dict[str, Dict[str, Dict[str, float]]] = {}
    for spec in args.pipeline:
        name, _, path = spec.partition("=")
        nlp = spacy.load(path)
        res: Dict[str, Dict[str, float]] = {}
        for split in ("dev", "test"):
            gold = list(DocBin().from_disk(Path(args.corpus) / f"{split}.spacy").get_docs(nlp.vocab))
            res[split] = {}
            for b in BIASES:
                bias[0] = b
                fresh: List[Doc] = [Doc(nlp.vocab, words=[t.text for t in d]) for d in gold]
                preds = list(nlp.pipe(fresh, batch_size=1000))
                scores = Scorer.score_spans([Example(p, g) for p, g in zip(preds, gold)], "ents")
                res[split][str(b)] = round(100 * float(scores["ents_f"] or 0.0), 2)
        results[name] = res
        for split, row in res.items():
            print(f"{name:24} {split:5} " + "  ".join(f"b={b}: {f:6.2f}" for b, f in row.items()))
    write_result(
        args.output,
        args.threads,
        {
            "results": results,
        },
    )


if __name__ == "__main__":
    main()
