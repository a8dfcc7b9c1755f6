"""Would document-level label consistency help? A two-stage check on sentence-level output.

Krishnan & Manning (2006) gained about 1 F1 on CoNLL-2003 from making the labels of
repeated mentions in a document agree. This script measures what that would give our
(sentence-level) pipelines: each sentence of a CoNLL file is predicted on its own, then,
within each ``-DOCSTART-`` document, every predicted entity with confidence >= the given
minimum votes (with its confidence) for a label for its token sequence, and

- ``relabel``: each predicted entity takes its token sequence's winning label;
- ``add``: other occurrences of a voted token sequence that no predicted entity touches
  become entities with the winning label (longest sequences first);
- both.

Entity-level exact-match P/R/F1 (conlleval semantics, as spaCy's NER scorer) on the file
given, which should be dev: this is selection, and test is not read.

    python benchmarks/doc_consistency.py --conll ../shared/data/conll2003/eng.testa \
        --pipeline NAME=PATH [--pipeline ...] --threads 1 \
        --output benchmarks/results/doc_consistency_conll03_dev.json
"""

import argparse
import collections
from typing import Dict, List, Sequence, Set, Tuple

from bench_common import fix_threads, write_result

Ent = Tuple[int, int, str]
MIN_CONFIDENCES = (0.0, 0.5, 0.8, 0.9)
VARIANTS = (("relabel", True, False), ("add", False, True), ("relabel+add", True, True))


def prf(pred: Sequence[Set[Ent]], gold: Sequence[Set[Ent]]) -> Dict[str, float]:
    tp = sum(len(p & g) for p, g in zip(pred, gold))
    n_pred = sum(len(p) for p in pred)
    n_gold = sum(len(g) for g in gold)
    p = tp / n_pred if n_pred else 0.0
    r = tp / n_gold if n_gold else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return {"p": round(100 * p, 2), "r": round(100 * r, 2), "f": round(100 * f, 2)}


def consistent(
    words: List[List[str]],
    preds: List[Tuple[List[Ent], List[float]]],
    documents: List[List[int]],
    min_conf: float,
    relabel: bool,
    add: bool,
) -> List[Set[Ent]]:
    """Apply the document-level vote to sentence-level predictions."""
    out = [set(spans) for spans, _ in preds]
    for sentence_ids in documents:
        votes: Dict[Tuple[str, ...], collections.Counter] = collections.defaultdict(
            collections.Counter
        )
        for si in sentence_ids:
            spans, confs = preds[si]
            for (start, end, label), conf in zip(spans, confs):
                if conf >= min_conf:
                    votes[tuple(words[si][start:end])][label] += conf
        best = {key: counter.most_common(1)[0][0] for key, counter in votes.items()}
        if not best:
            continue
        for si in sentence_ids:
            sent = words[si]
            current = out[si]
            if relabel:
                current = {(s, e, best.get(tuple(sent[s:e]), lab)) for s, e, lab in current}
            if add:
                covered = {i for s, e, _ in current for i in range(s, e)}
                for key, label in sorted(best.items(), key=lambda kv: -len(kv[0])):
                    n = len(key)
                    for s in range(len(sent) - n + 1):
                        if tuple(sent[s : s + n]) == key and not covered.intersection(
                            range(s, s + n)
                        ):
                            current.add((s, s + n, label))
                            covered.update(range(s, s + n))
            out[si] = current
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--conll", required=True, help="CoNLL file with -DOCSTART- lines (dev)")
    parser.add_argument("--pipeline", action="append", required=True, help="NAME=PATH")
    parser.add_argument("--component", default="bilstm_attn_crf")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--output", default="benchmarks/results/doc_consistency.json")
    args = parser.parse_args()
    fix_threads(args.threads)
    import spacy
    from spacy.tokens import Doc

    from spacy_bilstm_crf.corpus import docs_from_conll_data, group_sentences, parse_conll

    data = parse_conll(args.conll)
    sentences = docs_from_conll_data(data)  # one Doc per sentence, in file order
    documents: List[List[int]] = []
    k = 0
    for document in group_sentences(data, doc_boundaries=True):
        documents.append(list(range(k, k + len(document))))
        k += len(document)
    assert k == len(sentences)
    words = [[t.text for t in doc] for doc in sentences]
    gold = [{(e.start, e.end, e.label_) for e in doc.ents} for doc in sentences]
    results: Dict[str, Dict[str, Dict[str, float]]] = {}
    for spec in args.pipeline:
        name, _, path = spec.partition("=")
        nlp = spacy.load(path)
        component = nlp.get_pipe(args.component)
        preds = component.predict([Doc(nlp.vocab, words=w) for w in words])
        res = {"sentence-level": prf([set(s) for s, _ in preds], gold)}
        # the pipeline's own output (threshold applied) for reference
        piped = list(nlp.pipe([Doc(nlp.vocab, words=w) for w in words], batch_size=1000))
        res["pipeline output"] = prf(
            [{(e.start, e.end, e.label_) for e in d.ents} for d in piped], gold
        )
        for min_conf in MIN_CONFIDENCES:
            for variant, relabel, add in VARIANTS:
                out = consistent(words, preds, documents, min_conf, relabel, add)
                res[f"{variant}, confidence >= {min_conf}"] = prf(out, gold)
        results[name] = res
        print(f"{name}:")
        for key, r in res.items():
            print(f"  {key:36} P {r['p']:6.2f}  R {r['r']:6.2f}  F1 {r['f']:6.2f}")
    write_result(
        args.output,
        args.threads,
        {
            "documents": len(documents),
            "sentences": len(sentences),
            "results": results,
        },
    )


if __name__ == "__main__":
    main()
