"""Convert a CoNLL-style NER file to a spaCy DocBin (.spacy), printing its counts.

    python -m spacy_bilstm_crf.convert INPUT OUTPUT.spacy [--format auto|conll2003|wnut|conll]
        [--scheme auto|iob1|iob2|bilou] [--n-sents N] [--doc-boundaries] [--limit N] [--no-pos]

Unlike ``spacy convert -c ner`` it treats every form of ``-DOCSTART-`` line as a document
boundary and whitespace-only lines as sentence boundaries, reads IOB1/IOB2/BILOU tags with
conlleval semantics, and names the output as given (``eng.train`` and ``eng.testb`` would
both become ``eng.spacy`` with spaCy's converter).
"""

import argparse
import sys
from pathlib import Path
from typing import List, Optional

from .corpus import (
    FORMATS,
    SCHEMES,
    docs_from_conll_data,
    docs_to_docbin,
    parse_conll,
    resolve_scheme,
    summarize_docs,
)
from .errors import Errors


def make_parser() -> argparse.ArgumentParser:
    """RETURNS (argparse.ArgumentParser): The command-line parser."""
    parser = argparse.ArgumentParser(
        prog="python -m spacy_bilstm_crf.convert",
        description="Convert a CoNLL-style NER file (CoNLL-2003, WNUT-17, ...) to a .spacy DocBin.",
    )
    parser.add_argument("input", type=Path, metavar="INPUT", help="the CoNLL-style file (UTF-8)")
    parser.add_argument("output", type=Path, metavar="OUTPUT.spacy", help="the .spacy file to write")
    parser.add_argument(
        "--format", dest="file_format", choices=FORMATS, default="auto",
        help="column layout: conll2003 = token POS chunk NER, wnut = token TAB tag, "
        "conll = any columns with the NER tag last (default: auto)",
    )
    parser.add_argument(
        "--scheme", choices=SCHEMES, default="auto",
        help="tag scheme; tags are read with conlleval semantics (default: auto)",
    )
    parser.add_argument(
        "--n-sents", type=int, default=1, metavar="N",
        help="group N sentences per Doc, never across -DOCSTART- (default: 1)",
    )
    parser.add_argument(
        "--doc-boundaries", action="store_true",
        help="make one Doc per -DOCSTART- document (a file without them is one Doc)",
    )
    parser.add_argument(
        "--limit", type=int, default=0, metavar="N",
        help="write at most N Docs (default: 0 = all)",
    )
    parser.add_argument(
        "--no-pos", dest="keep_pos", action="store_false",
        help="do not keep the POS column (files with 3+ columns) as token.tag_",
    )
    return parser


def convert(
    input_path: Path,
    output_path: Path,
    *,
    file_format: str = "auto",
    scheme: str = "auto",
    n_sents: int = 1,
    doc_boundaries: bool = False,
    limit: int = 0,
    keep_pos: bool = True,
) -> List[str]:
    """Convert one file and write the DocBin.

    input_path (Path): The CoNLL-style file.
    output_path (Path): The .spacy file to write; its directory is created if needed.
    Other arguments as for `spacy_bilstm_crf.corpus.read_conll`.
    RETURNS (List[str]): The report lines (counts).
    """
    if output_path.suffix != ".spacy":
        raise ValueError(Errors.BCE034.format(path=output_path, suffix=output_path.suffix))
    data = parse_conll(input_path, file_format=file_format)
    if not data.sentences:
        raise ValueError(Errors.BCE036.format(path=input_path))
    used_scheme = resolve_scheme(data, scheme)
    docs = docs_from_conll_data(
        data,
        scheme=scheme,
        n_sents=n_sents,
        doc_boundaries=doc_boundaries,
        limit=limit or None,
        keep_pos=keep_pos,
    )
    output_path.parent.mkdir(parents=True, exist_ok=True)
    docs_to_docbin(docs).to_disk(output_path)
    stats = summarize_docs(docs)
    entities = ", ".join(f"{label} {n}" for label, n in stats.entities.items()) or "none"
    return [
        f"Read {input_path}: format {data.file_format}, scheme {used_scheme}, "
        f"{len(data.documents)} documents, {len(data.sentences)} sentences",
        f"Wrote {output_path}: {stats.docs} Docs, {stats.sentences} sentences, "
        f"{stats.tokens} tokens, {stats.total_entities} entities",
        f"Entities: {entities}",
    ]


def main(argv: Optional[List[str]] = None) -> int:
    """Run the command line. RETURNS (int): the exit status."""
    args = make_parser().parse_args(argv)
    try:
        lines = convert(
            args.input,
            args.output,
            file_format=args.file_format,
            scheme=args.scheme,
            n_sents=args.n_sents,
            doc_boundaries=args.doc_boundaries,
            limit=args.limit,
            keep_pos=args.keep_pos,
        )
    except ValueError as err:
        print(f"Error: {err}", file=sys.stderr)
        return 1
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
