"""Evaluate a trained pipeline on gold tokens and write spaCy's metrics JSON.

    python scripts/evaluate.py training/model-best corpus/test.spacy metrics/test.json

The data is a .spacy DocBin, or a CoNLL-style file (CoNLL-2003, WNUT-17, ...) read in
place with `spacy_bilstm_crf.corpus.read_conll`, so that a licensed corpus such as
CoNLL-2003 is never copied. Either way the pipeline sees the gold tokens (no
re-tokenization), exactly as during training. The JSON has the keys and layout that
`spacy evaluate --output` writes (token_acc, ents_p/r/f, speed, ents_per_type), plus
`n_docs`, `n_tokens`, `data` and `model` for the record.
"""

import argparse
import re
from pathlib import Path
from typing import Any, Dict, List, Optional

import spacy
import srsly
from spacy.language import Language
from spacy.tokens import Doc, DocBin
from spacy.training import Example
from spacy.training.corpus import walk_corpus

# spaCy's `spacy evaluate` metrics that apply to an NER pipeline (spacy/cli/evaluate.py)
METRICS = ["token_acc", "token_p", "token_r", "token_f", "ents_p", "ents_r", "ents_f", "speed"]


def load_gold_docs(nlp: Language, path: Path, limit: int = 0) -> List[Doc]:
    """Read gold Docs from a .spacy DocBin, a directory of them (read in sorted order, as
    `spacy evaluate` reads one) or a CoNLL-style file.

    RETURNS (List[Doc]): The reference Docs (at most `limit` if `limit` > 0).
    """
    if path.is_dir():
        files = walk_corpus(path, ".spacy")  # as spaCy's Corpus: sorted, hidden files skipped
        if not files:
            raise ValueError(f"{path} is a directory without .spacy files: pass a .spacy file, "
                             f"a directory of them, or a CoNLL-style file")
        docs = [doc for f in files for doc in DocBin().from_disk(f).get_docs(nlp.vocab)]
    elif path.suffix == ".spacy":
        docs = list(DocBin().from_disk(path).get_docs(nlp.vocab))
    else:
        from spacy_bilstm_crf.corpus import read_conll

        docs = read_conll(path, vocab=nlp.vocab, keep_pos=False)
    return docs[:limit] if limit > 0 else docs


def gold_token_examples(nlp: Language, docs: List[Doc]) -> List[Example]:
    """RETURNS (List[Example]): examples whose predicted Docs have the gold tokens."""
    return [
        Example(
            Doc(
                nlp.vocab,
                words=[t.text for t in ref],
                spaces=[bool(t.whitespace_) for t in ref],
            ),
            ref,
        )
        for ref in docs
    ]


def metrics_json(scores: Dict[str, Any]) -> Dict[str, Any]:
    """Select and name the scores as `spacy evaluate --output` does."""
    data = {re.sub(r"[\s\.]", "_", k): scores[k] for k in METRICS if k in scores}
    if scores.get("ents_per_type"):
        data["ents_per_type"] = scores["ents_per_type"]
    return data


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="Pipeline directory or package name")
    parser.add_argument("data", type=Path, help=".spacy DocBin or CoNLL-style file")
    parser.add_argument("output", type=Path, help="Metrics JSON to write")
    parser.add_argument("--gpu-id", type=int, default=-1, help="GPU id, -1 for CPU")
    parser.add_argument("--limit", type=int, default=0, help="Evaluate the first N docs only")
    parser.add_argument("--batch-size", type=int, default=256)
    args = parser.parse_args(argv)

    if args.gpu_id >= 0:
        spacy.require_gpu(args.gpu_id)
    nlp = spacy.load(args.model)
    docs = load_gold_docs(nlp, args.data, args.limit)
    examples = gold_token_examples(nlp, docs)
    scores = nlp.evaluate(examples, batch_size=args.batch_size)
    data = metrics_json(scores)
    data.update(
        {
            "n_docs": len(docs),
            "n_tokens": sum(len(d) for d in docs),
            "data": str(args.data),
            "model": str(args.model),
        }
    )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    srsly.write_json(args.output, data)
    p, r, f = (100 * (data.get(k) or 0.0) for k in ("ents_p", "ents_r", "ents_f"))
    print(
        f"{args.data}: {len(docs)} docs, ents P/R/F {p:.2f} / {r:.2f} / {f:.2f}, "
        f"{data.get('speed') or 0:.0f} words/s -> {args.output}"
    )


if __name__ == "__main__":
    main()
