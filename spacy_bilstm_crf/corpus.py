"""Read CoNLL-style NER files (CoNLL-2003, WNUT-17, ...) into spaCy Docs.

Gets right what ``spacy convert -c ner`` gets wrong on the real files:

* ``-DOCSTART-`` lines in any form (``-DOCSTART- -X- -X- O``, ``-DOCSTART- -X- O O``, bare)
  are document boundaries, never tokens.
* Whitespace-only lines (the TAB-only separators of ``wnut17train.conll``) separate
  sentences, like empty lines. Lines may end in LF, CRLF or CR.
* Tags are read with conlleval semantics, so IOB1 (CoNLL-2003), IOB2 (WNUT-17) and BILOU
  input give the same entities conlleval counts: a chunk starts at ``B-``/``U-``, or at an
  ``I-``/``L-`` that follows ``O`` or a tag of another type, and ends at ``L-``/``U-`` or
  before a tag that does not continue it. IOBES's ``E-``/``S-`` are read as ``L-``/``U-``.
  Tags are split on the first ``-`` only, so labels may be lower-case and contain hyphens
  (``creative-work``). The tag ``-`` marks a token whose annotation is missing (spaCy's
  convention): it is neither ``O`` nor part of an entity, and training treats it as
  partial annotation.
* Gold tokens are kept exactly as written, including tokens made of format characters (a
  lone U+FE0F, ``watched\\u200bwas``, ``Dubbz\\ufeff``). A U+FEFF at the very start of the
  file is a byte-order mark and is dropped. A line holding nothing but U+FEFF (and
  whitespace) has no tag and no word: it is read as a separator, like a blank line (the
  older WNUT-17 dev file ends with one); one before ``-DOCSTART-`` (files with byte-order
  marks concatenated) is dropped. Any other line without a tag raises an error. In
  TAB-separated files, spaces around a field are not part of it.
* The NER tag is the last column; the token is the first. With three or more columns the
  second column (the POS tag in CoNLL-2003) is kept as ``token.tag_`` unless ``keep_pos``
  is False. Every token line must have as many columns as the first one.
* Malformed input raises a ValueError with a code, the file and the line number.

CoNLL files do not record whitespace, so the Docs are flagged ``doc.has_unknown_spaces``:
spaCy's ``Corpus`` (and this module's ``ConllCorpus``) then keep the gold tokens for the
predicted Doc rather than re-tokenizing ``doc.text``.
"""

import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, Iterable, Iterator, List, NamedTuple, Optional, Tuple, Union

import spacy
from spacy.language import Language
from spacy.tokens import Doc, DocBin, Span
from spacy.training import Example
from spacy.vocab import Vocab

from .errors import Errors

PathLike = Union[str, Path]
EntitySpan = Tuple[int, int, str]  # (start, end) token offsets, end exclusive, and the label

FORMATS = ("auto", "conll2003", "wnut", "conll")
SCHEMES = ("auto", "iob1", "iob2", "bilou")
DOCSTART = "-DOCSTART-"
_LINE_END = re.compile(r"\r*\n|\r")
BOM = "\ufeff"
# The tag of a token whose annotation is missing (spaCy's convention): neither O nor entity
MISSING = "-"
# The tag prefixes each scheme may use. conlleval's E-/S- are BILOU's L-/U-.
_SCHEME_PREFIXES = {"iob1": "BI", "iob2": "BI", "bilou": "BILU"}
_FORMAT_COLUMNS = {"conll2003": 4, "wnut": 2}
_MULTI_LABEL = re.compile(r",\s*(?:[BILUES]-|O\b)")


class ConllToken(NamedTuple):
    """One token line of a CoNLL file."""

    text: str
    tag: str
    pos: Optional[str]  # the second column, if the file has three or more
    line: int  # 1-based line number in the file


ConllSentence = List[ConllToken]


@dataclass
class ConllData:
    """The parsed content of one CoNLL-style file.

    path (Path): The file that was read.
    file_format (str): "conll2003" (4 columns), "wnut" (token TAB tag) or "conll" (other).
    n_columns (int): The number of columns of every token line (0 if there are none).
    documents (List[List[List[ConllToken]]]): The sentences of each document. A file
        without ``-DOCSTART-`` lines is one document; empty documents are left out.
    """

    path: Path
    file_format: str
    n_columns: int
    documents: List[List[ConllSentence]] = field(default_factory=list)

    @property
    def sentences(self) -> List[ConllSentence]:
        """RETURNS (List[List[ConllToken]]): All sentences, in file order."""
        return [sent for doc in self.documents for sent in doc]

    def detect_scheme(self) -> str:
        """Guess the tag scheme from the tags.

        RETURNS (str): "bilou" if any tag starts with L- or U-; else "iob1" if some I- tag
            starts an entity (follows O, the sentence start or another type); else "iob2".
        """
        iob1 = False
        for sent in self.sentences:
            prev = "O"
            for token in sent:
                prefix, label = split_tag(token.tag)
                if prefix in ("L", "U"):
                    return "bilou"
                if prefix == "I" and (prev == "O" or split_tag(prev)[1] != label):
                    iob1 = True
                prev = token.tag
        return "iob1" if iob1 else "iob2"


@dataclass
class CorpusStats:
    """Counts over a list of Docs.

    docs (int): The number of Docs.
    sentences (int): The number of sentences (tokens with ``is_sent_start``; a Doc without
        sentence boundaries counts as one).
    tokens (int): The number of tokens.
    entities (Dict[str, int]): The number of entities per label.
    """

    docs: int = 0
    sentences: int = 0
    tokens: int = 0
    entities: Dict[str, int] = field(default_factory=dict)

    @property
    def total_entities(self) -> int:
        """RETURNS (int): The number of entities of all labels."""
        return sum(self.entities.values())


# ---------------------------------------------------------------------------- tags


def split_tag(tag: str) -> Tuple[str, Optional[str]]:
    """Split a tag on its first "-" into prefix and label.

    tag (str): "O", "-" (missing: read as "O" here, see `sentences_to_doc`) or e.g.
        "B-creative-work".
    RETURNS (Tuple[str, Optional[str]]): ("O", None) or e.g. ("B", "creative-work").
    """
    if tag == "O" or tag == MISSING:
        return "O", None
    prefix, _, label = tag.partition("-")
    return prefix, label


def tags_to_spans(tags: Iterable[str]) -> List[EntitySpan]:
    """Read the entities of one sentence with conlleval semantics.

    Works for IOB1, IOB2 and BILOU (and IOBES) tags alike, and is lenient the way
    conlleval is: a chunk starts at B-/U- (S-), or at I-/L- (E-) after O, after a chunk
    that ended (L-/U-) or after another type; it ends at L-/U-, or before a tag that does
    not continue it.

    tags (Iterable[str]): One tag per token, e.g. ["B-PER", "I-PER", "O"].
    RETURNS (List[Tuple[int, int, str]]): (start, end, label) spans, end exclusive.
    """
    spans: List[EntitySpan] = []
    start: Optional[int] = None
    prev_prefix, prev_label = "O", None
    i = -1
    for i, tag in enumerate(tags):
        prefix, label = split_tag(tag)
        prefix = {"L": "E", "U": "S"}.get(prefix, prefix)
        if start is not None and _chunk_ends(prev_prefix, prev_label, prefix, label):
            spans.append((start, i, prev_label or ""))
            start = None
        if _chunk_starts(prev_prefix, prev_label, prefix, label):
            start = i
        prev_prefix, prev_label = prefix, label
    if start is not None:
        spans.append((start, i + 1, prev_label or ""))
    return spans


def _chunk_ends(prev: str, prev_label: Optional[str], cur: str, label: Optional[str]) -> bool:
    # conlleval.pl endOfChunk
    if prev in ("E", "S"):
        return True
    if prev in ("B", "I") and cur in ("B", "S", "O"):
        return True
    return prev != "O" and prev_label != label


def _chunk_starts(prev: str, prev_label: Optional[str], cur: str, label: Optional[str]) -> bool:
    # conlleval.pl startOfChunk
    if cur in ("B", "S"):
        return True
    if cur in ("I", "E") and prev in ("E", "S", "O"):
        return True
    return cur != "O" and prev_label != label


# ---------------------------------------------------------------------------- parsing


def parse_conll(path: PathLike, *, file_format: str = "auto") -> ConllData:
    """Parse a CoNLL-style file into documents, sentences and token lines.

    path (Union[str, Path]): The file, UTF-8 encoded.
    file_format (str): "auto" (decided from the first token line), "conll2003" (4 columns:
        token POS chunk NER), "wnut" (token TAB tag) or "conll" (any number >= 2 of
        TAB- or space-separated columns, the NER tag last).
    RETURNS (ConllData): The parsed file. Tags are checked to be "O" or PREFIX-LABEL.
    """
    _check_option("file_format", file_format, FORMATS)
    path = Path(path)
    if not path.is_file():
        problem = "is a directory" if path.is_dir() else "the file does not exist"
        raise ValueError(Errors.BCE031.format(path=path, problem=problem))
    text = _decode(path)
    if text.startswith(BOM):
        text = text[1:]
    # CRLF (Windows) and CR-only (old Mac) line ends; CRs before an LF are one line end
    # with it ("\r\r\n" comes from a CRLF file saved again in text mode on Windows, and
    # read as two line ends it would make every token a sentence of its own)
    text = _LINE_END.sub("\n", text)
    data = ConllData(path=path, file_format=file_format, n_columns=0)
    document: List[ConllSentence] = []
    sentence: ConllSentence = []
    first_line = 0
    for lineno, line in enumerate(text.split("\n"), start=1):
        if not line.replace(BOM, "").strip():
            # blank, whitespace-only (e.g. a lone TAB) or a stray U+FEFF: a separator
            if sentence:
                document.append(sentence)
                sentence = []
            continue
        fields = _split_columns(line)
        # (a U+FEFF before it: files with byte-order marks concatenated)
        if fields[0].lstrip(BOM) == DOCSTART:
            if sentence:
                document.append(sentence)
                sentence = []
            if document:
                data.documents.append(document)
                document = []
            continue
        if not data.n_columns:
            data.n_columns, first_line = len(fields), lineno
            if file_format == "auto":
                data.file_format = _guess_format(line, fields)
        _check_line(path, lineno, line, fields, file_format, data.n_columns, first_line)
        pos = fields[1] if len(fields) >= 3 else None
        sentence.append(ConllToken(fields[0], _normalize_tag(fields[-1]), pos, lineno))
    if sentence:
        document.append(sentence)
    if document:
        data.documents.append(document)
    if data.file_format == "auto":  # no token lines at all
        data.file_format = "conll"
    return data


def parse_conll_sentences(path: PathLike, *, file_format: str = "auto") -> List[List[Tuple[str, str]]]:
    """Read the (token, tag) pairs of each sentence of a CoNLL-style file.

    path (Union[str, Path]): The file, UTF-8 encoded.
    file_format (str): "auto", "conll2003", "wnut" or "conll" (see `parse_conll`).
    RETURNS (List[List[Tuple[str, str]]]): The sentences, without ``-DOCSTART-`` lines.
    """
    data = parse_conll(path, file_format=file_format)
    return [[(tok.text, tok.tag) for tok in sent] for sent in data.sentences]


def _decode(path: Path) -> str:
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw.count(b"\n", 0, err.start) + 1
        # a DocBin: zlib-compressed (header 0x78 0x01 / 0x5e / 0x9c / 0xda)
        if path.suffix == ".spacy" or raw[:2] in (b"\x78\x01", b"\x78\x5e", b"\x78\x9c", b"\x78\xda"):
            hint = ("This looks like a spaCy DocBin (.spacy): read it with spaCy's "
                    "`spacy.Corpus.v1` (e.g. configs/default.cfg), not the CoNLL reader.")
        elif raw[:2] in (b"\xff\xfe", b"\xfe\xff"):
            hint = "The file is UTF-16: re-encode it as UTF-8 (e.g. `iconv -f utf-16 -t utf-8`)."
        else:
            hint = "Re-encode the file as UTF-8 (e.g. `iconv -f latin1 -t utf-8`)."
        raise ValueError(
            Errors.BCE030.format(
                path=path, line=line, expected="UTF-8 text", got=raw[err.start : err.end], hint=hint
            )
        ) from None


def _split_columns(line: str) -> List[str]:
    """TAB-separated if the line has a TAB before its end, else spaces. Spaces around a
    TAB-separated field are not part of it (a token may contain inner spaces); TABs and
    spaces at the end of the line are not part of the last one."""
    line = line.rstrip("\t ")
    if "\t" in line:
        fields = line.split("\t")
        token = fields[0].strip(" ") or fields[0]  # a token of spaces is kept as written
        return [token] + [f.strip(" ") for f in fields[1:]]
    return [f for f in line.split(" ") if f]


def _normalize_tag(tag: str) -> str:
    """IOBES's E-/S- are BILOU's L-/U-."""
    if tag[:2] == "E-":
        return "L-" + tag[2:]
    if tag[:2] == "S-":
        return "U-" + tag[2:]
    return tag


def _guess_format(line: str, fields: List[str]) -> str:
    if len(fields) == 4:
        return "conll2003"
    if len(fields) == 2 and "\t" in line:
        return "wnut"
    return "conll"


def _check_line(
    path: Path,
    lineno: int,
    line: str,
    fields: List[str],
    file_format: str,
    n_columns: int,
    first_line: int,
) -> None:
    def fail(expected: str, got: str, hint: str) -> None:
        raise ValueError(
            Errors.BCE030.format(path=path, line=lineno, expected=expected, got=got, hint=hint)
        )

    want = _FORMAT_COLUMNS.get(file_format)  # only for a format asked for explicitly
    if len(fields) < 2:
        fail(
            "a token and its tag (TAB- or space-separated)",
            line,
            "Every token line needs an NER tag in its last column; "
            "separate sentences with empty lines.",
        )
    if want is not None and len(fields) != want:
        fail(
            f"{want} columns for the {file_format!r} format",
            line,
            "Pick the right --format / file_format, or use 'conll' for other column layouts.",
        )
    if len(fields) != n_columns:
        fail(
            f"{n_columns} columns, like the first token line (line {first_line})",
            line,
            "Tokens must not contain the column separator, and every line needs a tag.",
        )
    if not fields[0]:
        fail("a non-empty token in the first column", line, "Remove the leading separator.")
    tag = fields[-1]
    if tag in ("O", MISSING):
        return
    prefix, label = split_tag(tag)
    if prefix not in ("B", "I", "L", "U", "E", "S") or not label or any(c.isspace() for c in label):
        fail(
            "an NER tag 'O', '-' (missing) or B-/I-/L-/U- (or E-/S-) + label in the last column",
            tag,
            "Tags are case-sensitive: 'O', not 'o' or '0'; labels may not contain whitespace.",
        )
    if _MULTI_LABEL.search(label or ""):
        fail(
            "one tag per token",
            tag,
            "This looks like a multi-label variant (e.g. WNUT-17's emerging.test.conll); "
            "use the single-label file (emerging.test.annotated).",
        )


# ---------------------------------------------------------------------------- Docs


def read_conll(
    path: PathLike,
    *,
    scheme: str = "auto",
    n_sents: int = 1,
    doc_boundaries: bool = False,
    vocab: Optional[Vocab] = None,
    limit: Optional[int] = None,
    file_format: str = "auto",
    keep_pos: bool = True,
) -> List[Doc]:
    """Read a CoNLL-style NER file into gold-standard Docs.

    path (Union[str, Path]): The file, UTF-8 encoded.
    scheme (str): "auto", "iob1", "iob2" or "bilou". Entities are read with conlleval
        semantics in every case, so IOB1 and IOB2 give the same result; an explicit scheme
        also rejects tags it does not use (L-/U- for the IOB schemes).
    n_sents (int): Sentences per Doc. Groups never cross a ``-DOCSTART-`` boundary.
    doc_boundaries (bool): Make one Doc per ``-DOCSTART-`` document (a file without
        them is one document). Cannot be combined with n_sents > 1.
    vocab (Optional[Vocab]): The vocab of the Docs; a new one by default.
    limit (Optional[int]): Return at most this many Docs; None or 0 means all.
    file_format (str): "auto", "conll2003", "wnut" or "conll" (see `parse_conll`).
    keep_pos (bool): Set ``token.tag_`` from the second column of files with three or
        more columns (the POS tag of CoNLL-2003).
    RETURNS (List[Doc]): The Docs, with ``doc.ents`` set (every other token "O"),
        ``is_sent_start`` set for every token, and ``has_unknown_spaces`` True.
    """
    data = parse_conll(path, file_format=file_format)
    return docs_from_conll_data(
        data,
        scheme=scheme,
        n_sents=n_sents,
        doc_boundaries=doc_boundaries,
        vocab=vocab,
        limit=limit,
        keep_pos=keep_pos,
    )


def docs_from_conll_data(
    data: ConllData,
    *,
    scheme: str = "auto",
    n_sents: int = 1,
    doc_boundaries: bool = False,
    vocab: Optional[Vocab] = None,
    limit: Optional[int] = None,
    keep_pos: bool = True,
) -> List[Doc]:
    """Build gold-standard Docs from a parsed file. Arguments as for `read_conll`.

    data (ConllData): The output of `parse_conll`.
    RETURNS (List[Doc]): The Docs.
    """
    groups = group_sentences(data, n_sents=n_sents, doc_boundaries=doc_boundaries, limit=limit)
    resolve_scheme(data, scheme)
    if vocab is None:
        vocab = Vocab()
    return [sentences_to_doc(vocab, group, keep_pos=keep_pos) for group in groups]


def resolve_scheme(data: ConllData, scheme: str = "auto") -> str:
    """Check the tags against a scheme, or detect it.

    data (ConllData): The output of `parse_conll`.
    scheme (str): "auto", "iob1", "iob2" or "bilou".
    RETURNS (str): The scheme: the one given, or the detected one for "auto".
    """
    _check_option("scheme", scheme, SCHEMES)
    if scheme == "auto":
        return data.detect_scheme()
    allowed = _SCHEME_PREFIXES[scheme]
    for sent in data.sentences:
        for token in sent:
            prefix, _ = split_tag(token.tag)  # "O" for "-" (missing) too
            if prefix != "O" and prefix not in allowed:
                raise ValueError(
                    Errors.BCE030.format(
                        path=data.path,
                        line=token.line,
                        expected=f"a {scheme.upper()} tag (O or {'/'.join(allowed)}-label)",
                        got=token.tag,
                        hint="Pass the file's tag scheme (scheme='bilou' for L-/U- tags, and "
                        "for IOBES's E-/S- tags, which are read as L-/U-), or scheme='auto'.",
                    )
                )
    return scheme


def group_sentences(
    data: ConllData,
    *,
    n_sents: int = 1,
    doc_boundaries: bool = False,
    limit: Optional[int] = None,
) -> List[List[ConllSentence]]:
    """Group the sentences of a parsed file into the sentences of each Doc.

    data (ConllData): The output of `parse_conll`.
    n_sents (int): Sentences per group; groups never cross a ``-DOCSTART-`` boundary.
    doc_boundaries (bool): One group per document (needs n_sents == 1).
    limit (Optional[int]): At most this many groups; None or 0 means all.
    RETURNS (List[List[List[ConllToken]]]): The groups.
    """
    if isinstance(n_sents, bool) or not isinstance(n_sents, int) or n_sents < 1:
        raise ValueError(
            Errors.BCE032.format(name="n_sents", value=n_sents, expected="an integer >= 1")
        )
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
        raise ValueError(
            Errors.BCE032.format(name="limit", value=limit, expected="None or an integer >= 0")
        )
    if doc_boundaries and n_sents != 1:
        raise ValueError(Errors.BCE033.format(n_sents=n_sents))
    groups: List[List[ConllSentence]] = []
    for document in data.documents:
        if doc_boundaries:
            groups.append(document)
        else:
            groups.extend(document[i : i + n_sents] for i in range(0, len(document), n_sents))
        if limit and len(groups) >= limit:
            return groups[:limit]
    return groups


def sentences_to_doc(vocab: Vocab, sentences: List[ConllSentence], *, keep_pos: bool = True) -> Doc:
    """Make one gold-standard Doc of one or more parsed sentences.

    vocab (Vocab): The vocab of the Doc.
    sentences (List[List[ConllToken]]): The sentences, each a non-empty list of tokens.
    keep_pos (bool): Set ``token.tag_`` from the POS column, where there is one.
    RETURNS (Doc): The Doc, tokens exactly as in the file.
    """
    tokens = [tok for sent in sentences for tok in sent]
    words = [tok.text for tok in tokens]
    spaces = [True] * len(words)
    if spaces:
        spaces[-1] = False
    sent_starts: List[Union[bool, int, None]] = [
        i == 0 for sent in sentences for i in range(len(sent))
    ]
    tags: Optional[List[str]] = None
    if keep_pos and tokens and all(tok.pos is not None for tok in tokens):
        tags = [tok.pos or "" for tok in tokens]
    # Set through the constructor: Token.is_sent_start's setter is O(len(doc)) per token.
    doc = Doc(vocab, words=words, spaces=spaces, sent_starts=sent_starts, tags=tags)
    doc.has_unknown_spaces = True  # CoNLL does not record whitespace: keep the gold tokens
    spans: List[Span] = []
    offset = 0
    for sent in sentences:
        for start, end, label in tags_to_spans(tok.tag for tok in sent):
            spans.append(Span(doc, offset + start, offset + end, label=label))
        offset += len(sent)
    # tokens tagged "-" are missing (partial annotation: not "O"); the others outside the
    # spans become "O" (annotated)
    missing = [doc[i : i + 1] for i, tok in enumerate(tokens) if tok.tag == MISSING]
    doc.set_ents(spans, missing=missing, default="outside")
    return doc


def docs_to_docbin(docs: Iterable[Doc], *, store_user_data: bool = False) -> DocBin:
    """Collect Docs in a DocBin, ready for ``.to_disk("train.spacy")``.

    docs (Iterable[Doc]): The Docs.
    store_user_data (bool): Also store ``doc.user_data`` (custom extensions).
    RETURNS (DocBin): The DocBin, with spaCy's default attributes (ORTH, TAG, ENT_IOB,
        ENT_TYPE, SENT_START, ...) and the Docs' ``has_unknown_spaces`` flags.
    """
    return DocBin(docs=docs, store_user_data=store_user_data)


def summarize_docs(docs: Iterable[Doc]) -> CorpusStats:
    """Count Docs, sentences, tokens and entities per label.

    docs (Iterable[Doc]): The Docs.
    RETURNS (CorpusStats): The counts.
    """
    stats = CorpusStats()
    labels: Counter = Counter()
    for doc in docs:
        stats.docs += 1
        stats.tokens += len(doc)
        if len(doc):
            if doc.has_annotation("SENT_START"):
                stats.sentences += sum(1 for token in doc if token.is_sent_start)
            else:
                stats.sentences += 1
        labels.update(ent.label_ for ent in doc.ents)
    stats.entities = dict(sorted(labels.items()))
    return stats


def conll_stats(path: PathLike, *, scheme: str = "auto", file_format: str = "auto") -> CorpusStats:
    """Count the documents, sentences, tokens and entities of a CoNLL-style file.

    Reads the file with one Doc per ``-DOCSTART-`` document, so ``docs`` is the number of
    documents (1 for a file without ``-DOCSTART-`` lines).

    path (Union[str, Path]): The file.
    scheme (str): "auto", "iob1", "iob2" or "bilou".
    file_format (str): "auto", "conll2003", "wnut" or "conll".
    RETURNS (CorpusStats): The counts.
    """
    return summarize_docs(
        read_conll(path, scheme=scheme, doc_boundaries=True, file_format=file_format)
    )


def _check_option(name: str, value: object, options: Tuple[str, ...]) -> None:
    if value not in options:
        expected = "one of " + ", ".join(repr(o) for o in options)
        raise ValueError(Errors.BCE032.format(name=name, value=value, expected=expected))


# ---------------------------------------------------------------------------- reader


class ConllCorpus:
    """Iterate Examples from a CoNLL-style file, like ``spacy.Corpus.v1`` does for .spacy.

    The predicted Doc of each Example has the gold tokens (CoNLL files record no
    whitespace, so re-tokenizing the text would misalign them). The file is parsed on the
    first call and cached; Docs are built afresh with ``nlp.vocab`` on every call.

    path (Optional[Path]): The CoNLL-style file.
    scheme (str): "auto", "iob1", "iob2" or "bilou".
    n_sents (int): Sentences per Doc.
    doc_boundaries (bool): One Doc per ``-DOCSTART-`` document.
    limit (int): At most this many Examples; 0 means all.
    file_format (str): "auto", "conll2003", "wnut" or "conll".
    keep_pos (bool): Keep the POS column as ``token.tag_`` in the reference Docs.
    """

    def __init__(
        self,
        path: Optional[PathLike],
        *,
        scheme: str = "auto",
        n_sents: int = 1,
        doc_boundaries: bool = False,
        limit: int = 0,
        file_format: str = "auto",
        keep_pos: bool = True,
    ) -> None:
        _check_option("scheme", scheme, SCHEMES)
        _check_option("file_format", file_format, FORMATS)
        self.path = Path(path) if path is not None else None
        self.scheme = scheme
        self.n_sents = n_sents
        self.doc_boundaries = doc_boundaries
        self.limit = limit
        self.file_format = file_format
        self.keep_pos = keep_pos
        self._data: Optional[ConllData] = None

    def __call__(self, nlp: Language) -> Iterator[Example]:
        """Yield the Examples of the file.

        nlp (Language): The current nlp object.
        YIELDS (Example): One Example per Doc: gold tokens as predicted Doc, gold Doc as
            reference.
        """
        if self.path is None:
            raise ValueError(Errors.BCE035.format())
        if self._data is None:
            self._data = parse_conll(self.path, file_format=self.file_format)
        docs = docs_from_conll_data(
            self._data,
            scheme=self.scheme,
            n_sents=self.n_sents,
            doc_boundaries=self.doc_boundaries,
            vocab=nlp.vocab,
            limit=self.limit or None,
            keep_pos=self.keep_pos,
        )
        for reference in docs:
            words = [token.text for token in reference]
            spaces = [bool(token.whitespace_) for token in reference]
            yield Example(Doc(nlp.vocab, words=words, spaces=spaces), reference)


@spacy.registry.readers("spacy-bilstm-crf.ConllCorpus.v1")
def create_conll_corpus(
    path: Optional[Path],
    scheme: str = "auto",
    n_sents: int = 1,
    doc_boundaries: bool = False,
    limit: int = 0,
    file_format: str = "auto",
    keep_pos: bool = True,
) -> Callable[[Language], Iterable[Example]]:
    """Registered as ``spacy-bilstm-crf.ConllCorpus.v1``: read a CoNLL file in a config.

    [corpora.train]
    @readers = "spacy-bilstm-crf.ConllCorpus.v1"
    path = ${paths.train}
    n_sents = 10

    Arguments as for `ConllCorpus`.
    RETURNS (Callable[[Language], Iterable[Example]]): The corpus.
    """
    return ConllCorpus(
        path,
        scheme=scheme,
        n_sents=n_sents,
        doc_boundaries=doc_boundaries,
        limit=limit,
        file_format=file_format,
        keep_pos=keep_pos,
    )
