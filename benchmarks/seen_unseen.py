"""Where do trained pipelines differ? Test F1 on entities seen and unseen in training.

An entity counts as "seen" if its exact text occurs as a gold entity (of any type) in the
training data, "unseen" otherwise; predicted entities are split the same way by their
text. Precision, recall and F1 are exact-match (start, end, label), as spaCy's NER scorer
counts them, on fresh docs built from the gold tokens. This is analysis, not selection:
it reads the test split only to describe models already chosen on dev.

    python benchmarks/seen_unseen.py --train benchmarks/work/corpus/conll03-n1/train.spacy \
        --test benchmarks/work/corpus/conll03-n1/test.spacy \
        --pipeline ours=benchmarks/work/runs/conll03-n1/ours/model/model-best \
        --pipeline spacy_ner=benchmarks/work/runs/conll03-n1/spacy_ner/model/model-best \
        --output benchmarks/results/seen_unseen_conll03.json
"""

import argparse
from collections import Counter
from typing import Dict, List, Set, Tuple

from bench_common import fix_threads, write_result

Ent = Tuple[int, int, str]


def prf(counts: Counter) -> Dict[str, float]:
    p = counts["tp_pred"] / counts["pred"] if counts["pred"] else 0.0
    r = counts["tp_gold"] / counts["gold"] if counts["gold"] else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return {
        "gold": counts["gold"],
        "pred": counts["pred"],
        "p": round(100 * p, 2),
        "r": round(100 * r, 2),
        "f": round(100 * f, 2),
    }


def score(gold_docs, pred_docs, seen: Set[str]) -> Dict[str, Dict[str, float]]:  # type: ignore[no-untyped-def]
    counts = {"seen": Counter(), "unseen": Counter(), "all": Counter()}
    for gold_doc, pred_doc in zip(gold_docs, pred_docs):
        gold: Set[Ent] = {(e.start, e.end, e.label_) for e in gold_doc.ents}
        pred: Set[Ent] = {(e.start, e.end, e.label_) for e in pred_doc.ents}
        for ents, other, kind in ((gold, pred, "gold"), (pred, gold, "pred")):
            for start, end, label in ents:
                split = "seen" if gold_doc[start:end].text in seen else "unseen"
                hit = (start, end, label) in other
                for key in (split, "all"):
                    counts[key][kind] += 1
                    counts[key][f"tp_{kind}"] += hit
    return {key: prf(c) for key, c in counts.items()}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--train", required=True, help=".spacy file with the training docs")
    parser.add_argument("--test", required=True, help=".spacy file with the docs to score")
    parser.add_argument("--pipeline", action="append", required=True, help="NAME=PATH")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--output", default="benchmarks/results/seen_unseen.json")
    args = parser.parse_args()
    fix_threads(args.threads)
    import spacy
    from spacy.tokens import Doc, DocBin

    blank = spacy.blank("en")
    train = list(DocBin().from_disk(args.train).get_docs(blank.vocab))
    test = list(DocBin().from_disk(args.test).get_docs(blank.vocab))
    seen = {ent.text for doc in train for ent in doc.ents}
    results: Dict[str, Dict[str, Dict[str, float]]] = {}
    for spec in args.pipeline:
        name, _, path = spec.partition("=")
        nlp = spacy.load(path)
        fresh: List[Doc] = [
            Doc(nlp.vocab, words=[t.text for t in d], spaces=[bool(t.whitespace_) for t in d])
            for d in test
        ]
        results[name] = score(test, list(nlp.pipe(fresh, batch_size=1000)), seen)
    print(f"{'pipeline':32} {'split':7} {'gold':>6} {'P':>6} {'R':>6} {'F1':>6}")
    for name, res in results.items():
        for split, r in res.items():
            print(
                f"{name:32} {split:7} {r['gold']:>6} {r['p']:>6.2f} {r['r']:>6.2f} {r['f']:>6.2f}"
            )
    write_result(
        args.output,
        args.threads,
        {
            "train_entity_texts": len(seen),
            "results": results,
        },
    )


if __name__ == "__main__":
    main()
