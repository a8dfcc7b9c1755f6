"""Tests for spacy_bilstm_crf.corpus (CoNLL/WNUT readers) and the convert CLI."""

import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Tuple

import pytest
import spacy
from hypothesis import given, settings
from hypothesis import strategies as st
from spacy.tokens import Doc, DocBin
from spacy.training import Corpus
from spacy.vocab import Vocab
from thinc.api import Config

from spacy_bilstm_crf.convert import main as convert_main
from spacy_bilstm_crf.corpus import (
    ConllCorpus,
    conll_stats,
    create_conll_corpus,
    docs_from_conll_data,
    docs_to_docbin,
    parse_conll,
    parse_conll_sentences,
    read_conll,
    split_tag,
    summarize_docs,
    tags_to_spans,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
WNUT_DIR = REPO_ROOT / "assets" / "wnut17"
# The CoNLL-2003 files are research-use Reuters text: never in the repo, read from ../shared.
CONLL_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "conll2003"

WNUT_SHA256 = {
    "wnut17train.conll": "731820e13f71af324c6b55a1575ec2ce59fbaa2a0806f8f0400b98d56cd6a7a5",
    "emerging.dev.conll": "e053b752b8155113ca66e7db08af5f2f5f43ab993694e4774f1ec5bad42312d8",
    "emerging.test.annotated": "2aa79b764e56ec9264a1b30fdd9b70195bd00ff400b62edd8f399d5f13c178f0",
}

# (file, documents, sentences, tokens, entities per label), from shared/data/README.md
WNUT_COUNTS = [
    ("wnut17train.conll", 1, 3394, 62730,
     {"person": 660, "location": 548, "group": 264, "corporation": 221, "product": 142,
      "creative-work": 140}),
    ("emerging.dev.conll", 1, 1009, 15733,
     {"person": 470, "location": 74, "group": 39, "corporation": 34, "product": 114,
      "creative-work": 105}),
    ("emerging.test.annotated", 1, 1287, 23394,
     {"person": 429, "location": 150, "group": 165, "corporation": 66, "product": 127,
      "creative-work": 142}),
]
WNUT_TOTALS = {"wnut17train.conll": 1975, "emerging.dev.conll": 836,
               "emerging.test.annotated": 1079}
CONLL_COUNTS = [
    ("eng.train", 946, 14041, 203621, {"PER": 6600, "LOC": 7140, "ORG": 6321, "MISC": 3438}),
    ("eng.testa", 216, 3250, 51362, {"PER": 1842, "LOC": 1837, "ORG": 1341, "MISC": 922}),
    ("eng.testb", 231, 3453, 46435, {"PER": 1617, "LOC": 1668, "ORG": 1661, "MISC": 702}),
]
CONLL_TOTALS = {"eng.train": 23499, "eng.testa": 5942, "eng.testb": 5648}

CONLL_SAMPLE = """\
-DOCSTART- -X- -X- O

UN NNP I-NP I-ORG
accepts VBZ I-VP O
Dutch JJ I-NP I-MISC
plan NN I-NP O
. . O O

Anna NNP I-NP I-PER
Smith NNP I-NP I-PER

-DOCSTART- -X- O O

GENEVA NNP I-NP I-LOC
2001-05-17 CD I-NP O
"""

WNUT_SAMPLE = (
    "@paulwalk\tO\nIt\tO\n's\tO\nthe\tO\nEmpire\tB-location\nState\tI-location\n"
    "\t\n"  # a TAB-only separator, as in wnut17train.conll
    "watching\tO\nTurn\tB-creative-work\nUp\tI-creative-work\nGreen\tI-creative-work\n"
    "\n"
    "Dubbz\ufeff\tB-person\n\ufe0f\tO\nwatched\u200bwas\tO\n"
)


def write(tmp_path: Path, text: str, name: str = "data.conll", encoding: str = "utf-8") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def ents(doc: Doc) -> List[Tuple[int, int, str]]:
    return [(ent.start, ent.end, ent.label_) for ent in doc.ents]


def conll(rows: List[str]) -> str:
    """Sentences given as lists of 'token TAG' strings, separated by '' entries."""
    return "\n".join(rows) + "\n"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ---------------------------------------------------------------------------- tags


@pytest.mark.parametrize(
    "tags,expected",
    [
        # IOB1: I- everywhere, B- only between adjacent entities of the same type
        (["I-PER", "I-PER", "B-PER", "O"], [(0, 2, "PER"), (2, 3, "PER")]),
        # IOB1: B- after O is still an ordinary entity start (the 2 B-MISC in eng.train)
        (["O", "B-MISC", "I-MISC", "O"], [(1, 3, "MISC")]),
        # an I- after another type starts a new entity
        (["I-LOC", "I-ORG", "I-ORG"], [(0, 1, "LOC"), (1, 3, "ORG")]),
        # IOB2
        (["B-PER", "I-PER", "B-PER", "O", "B-LOC"], [(0, 2, "PER"), (2, 3, "PER"), (4, 5, "LOC")]),
        # BILOU
        (["U-PER", "B-LOC", "I-LOC", "L-LOC", "O", "U-LOC"],
         [(0, 1, "PER"), (1, 4, "LOC"), (5, 6, "LOC")]),
        # BILOU: a new entity after L- / U- even with I-/L- of the same type (conlleval)
        (["U-PER", "L-PER"], [(0, 1, "PER"), (1, 2, "PER")]),
        # hyphenated lower-case labels: split on the first "-" only
        (["B-creative-work", "I-creative-work", "I-person"],
         [(0, 2, "creative-work"), (2, 3, "person")]),
        (["O", "O"], []),
        ([], []),
    ],
)
def test_tags_to_spans(tags, expected):
    assert tags_to_spans(tags) == expected


def test_split_tag_splits_on_first_hyphen():
    assert split_tag("B-creative-work") == ("B", "creative-work")
    assert split_tag("I-Urdu-speaking-thing") == ("I", "Urdu-speaking-thing")
    assert split_tag("O") == ("O", None)


def _encode(spans: List[Tuple[int, int, str]], length: int, scheme: str) -> List[str]:
    tags = ["O"] * length
    prev_end, prev_label = -1, None
    for start, end, label in spans:
        for i in range(start, end):
            if scheme == "iob2":
                tags[i] = ("B-" if i == start else "I-") + label
            elif scheme == "iob1":
                adjacent = start == prev_end and label == prev_label
                tags[i] = ("B-" if i == start and adjacent else "I-") + label
            elif end - start == 1:
                tags[i] = "U-" + label
            else:
                prefix = "B-" if i == start else "L-" if i == end - 1 else "I-"
                tags[i] = prefix + label
        prev_end, prev_label = end, label
    return tags


@st.composite
def spans_and_length(draw):
    length = draw(st.integers(0, 12))
    spans = []
    i = 0
    while i < length:
        if draw(st.booleans()):
            end = draw(st.integers(i + 1, length))
            spans.append((i, end, draw(st.sampled_from(["PER", "creative-work", "b"]))))
            i = end
        else:
            i += 1
    return spans, length


@settings(max_examples=200, deadline=None)
@given(spans_and_length(), st.sampled_from(["iob1", "iob2", "bilou"]))
def test_tags_to_spans_inverts_every_scheme(data, scheme):
    spans, length = data
    assert tags_to_spans(_encode(spans, length, scheme)) == spans


# ---------------------------------------------------------------------------- inline files


def test_docstart_lines_are_boundaries_never_tokens(tmp_path):
    text = "-DOCSTART-\n\nA I-X\n\n-DOCSTART- -X- O O\nB I-X\nC O\n\n-DOCSTART- -X- -X- O\n\nD O\n"
    path = write(tmp_path, text)
    docs = read_conll(path)
    words = [t.text for doc in docs for t in doc]
    assert words == ["A", "B", "C", "D"]
    assert "-DOCSTART-" not in words
    assert len(parse_conll(path).documents) == 3
    by_doc = read_conll(path, doc_boundaries=True)
    assert [[t.text for t in doc] for doc in by_doc] == [["A"], ["B", "C"], ["D"]]
    # a -DOCSTART- line without a blank line before it still ends the sentence
    assert [len(doc) for doc in docs] == [1, 2, 1]


def test_conll2003_four_columns_iob1(tmp_path):
    path = write(tmp_path, CONLL_SAMPLE)
    data = parse_conll(path)
    assert data.file_format == "conll2003"
    assert data.n_columns == 4
    assert data.detect_scheme() == "iob1"
    docs = read_conll(path)
    assert [len(doc) for doc in docs] == [5, 2, 2]
    assert ents(docs[0]) == [(0, 1, "ORG"), (2, 3, "MISC")]
    assert ents(docs[1]) == [(0, 2, "PER")]
    assert [t.tag_ for t in docs[0]] == ["NNP", "VBZ", "JJ", "NN", "."]
    assert [t.ent_iob_ for t in docs[0]] == ["B", "O", "B", "O", "O"]  # annotated "O", not missing
    assert docs[0].has_annotation("ENT_IOB")
    assert [t.text for t in read_conll(path, keep_pos=False)[0]] == [t.text for t in docs[0]]
    assert not read_conll(path, keep_pos=False)[0].has_annotation("TAG")


def test_iob1_b_tags(tmp_path):
    rows = ["Peter I-PER", "Paul B-PER", "Mary B-PER", "and O", "the O", "Atlanta B-MISC",
            "Games I-MISC"]
    path = write(tmp_path, conll(rows))
    (doc,) = read_conll(path, scheme="iob1")
    assert ents(doc) == [(0, 1, "PER"), (1, 2, "PER"), (2, 3, "PER"), (5, 7, "MISC")]


def test_iob2_wnut_quirks(tmp_path):
    path = write(tmp_path, WNUT_SAMPLE)
    data = parse_conll(path)
    assert data.file_format == "wnut"
    assert data.detect_scheme() == "iob2"
    docs = read_conll(path)
    assert len(docs) == 3  # the TAB-only line separates sentences
    assert ents(docs[0]) == [(4, 6, "location")]
    assert ents(docs[1]) == [(1, 4, "creative-work")]
    assert ents(docs[2]) == [(0, 1, "person")]
    # gold tokens kept exactly, format characters included
    assert [t.text for t in docs[2]] == ["Dubbz\ufeff", "\ufe0f", "watched\u200bwas"]
    assert docs[2].ents[0].text == "Dubbz\ufeff"
    assert not docs[0].has_annotation("TAG")


@pytest.mark.parametrize("separator", ["", "\t", " ", "\t\t", " \t ", "\ufeff", "\u3000"])
def test_whitespace_only_lines_separate_sentences(tmp_path, separator):
    path = write(tmp_path, f"a\tB-x\nb\tO\n{separator}\nc\tB-y\n")
    sents = parse_conll_sentences(path)
    assert sents == [[("a", "B-x"), ("b", "O")], [("c", "B-y")]]


def test_bom_at_file_start_is_dropped(tmp_path):
    path = write(tmp_path, "\ufeffAmsterdam\tB-location\nrocks\tO\n")
    assert parse_conll_sentences(path) == [[("Amsterdam", "B-location"), ("rocks", "O")]]
    path = write(tmp_path, "\ufeff-DOCSTART- -X- -X- O\n\nUN NNP I-NP I-ORG\n", name="b.conll")
    assert parse_conll_sentences(path) == [[("UN", "I-ORG")]]
    assert len(parse_conll(path).documents) == 1


def test_stray_bom_final_line_is_a_separator(tmp_path):
    # the older WNUT-17 dev file ended with a line holding only U+FEFF (no tag)
    path = write(tmp_path, "Paris\tB-location\n!\tO\n\n\ufeff")
    assert parse_conll_sentences(path) == [[("Paris", "B-location"), ("!", "O")]]
    path = write(tmp_path, "Paris\tB-location\n\ufeff\n!\tO\n", name="mid.conll")
    assert parse_conll_sentences(path) == [[("Paris", "B-location")], [("!", "O")]]


def test_bom_token_with_a_tag_is_kept(tmp_path):
    path = write(tmp_path, "a\tO\n\ufeff\tO\nb\ufeff\tB-x\n\ufeffc\tO\n")
    (doc,) = read_conll(path)
    assert [t.text for t in doc] == ["a", "\ufeff", "b\ufeff", "\ufeffc"]
    assert ents(doc) == [(2, 3, "x")]


def test_crlf_and_trailing_whitespace(tmp_path):
    path = write(tmp_path, "New\tB-LOC\r\nYork\tI-LOC\t\r\n\r\nhi O \r\n")
    assert parse_conll_sentences(path, file_format="conll") == [
        [("New", "B-LOC"), ("York", "I-LOC")],
        [("hi", "O")],
    ]
    # a space-separated line with a trailing TAB (or TAB and spaces) is still space-separated
    path = write(tmp_path, "EU NNP B-NP B-ORG\t\nrejects VBZ B-VP O \t \n")
    assert parse_conll_sentences(path, file_format="conll") == [[("EU", "B-ORG"), ("rejects", "O")]]


def test_tab_separated_tokens_keep_spaces_and_unicode_whitespace(tmp_path):
    path = write(tmp_path, "New York\tB-LOC\n\u00a0\tO\n")
    (doc,) = read_conll(path)
    assert [t.text for t in doc] == ["New York", "\u00a0"]
    assert ents(doc) == [(0, 1, "LOC")]


def test_cr_only_line_ends(tmp_path):
    path = write(tmp_path, "John\tB-PER\rlives\tO\r\rParis\tB-LOC\r")
    assert parse_conll_sentences(path) == [[("John", "B-PER"), ("lives", "O")], [("Paris", "B-LOC")]]


def test_cr_cr_lf_is_one_line_end(tmp_path):
    """A CRLF file saved again in text mode on Windows has CR CR LF line ends: read as two
    line ends each, every token would be a sentence of its own."""
    path = write(tmp_path, "New\tB-LOC\r\r\nYork\tI-LOC\r\r\n\r\r\nhi\tO\r\r\n")
    assert parse_conll_sentences(path) == [[("New", "B-LOC"), ("York", "I-LOC")], [("hi", "O")]]


def test_bom_before_docstart_in_concatenated_files(tmp_path):
    part = "\ufeff-DOCSTART- -X- -X- O\n\nUN NNP I-NP I-ORG\n\n"
    path = write(tmp_path, part + part)
    data = parse_conll(path)
    assert len(data.documents) == 2
    assert parse_conll_sentences(path) == [[("UN", "I-ORG")], [("UN", "I-ORG")]]


def test_spaces_around_tab_separated_fields_are_not_part_of_them(tmp_path):
    path = write(tmp_path, "John \tB-PER\n lives\tO\nNew York\t B-LOC \n")
    (doc,) = read_conll(path)
    assert [t.text for t in doc] == ["John", "lives", "New York"]
    assert ents(doc) == [(0, 1, "PER"), (2, 3, "LOC")]


def test_iobes_tags_are_read_as_bilou(tmp_path):
    path = write(tmp_path, "John B-PER\nSmith E-PER\nlives O\nin O\nParis S-LOC\n")
    assert parse_conll(path).detect_scheme() == "bilou"
    for scheme in ("auto", "bilou"):
        (doc,) = read_conll(path, scheme=scheme)
        assert ents(doc) == [(0, 2, "PER"), (4, 5, "LOC")]


def test_missing_tag_is_partial_annotation(tmp_path):
    path = write(tmp_path, "John B-PER\nSmith I-PER\nvisited -\nNew -\nYork I-LOC\n. O\n")
    (doc,) = read_conll(path, scheme="iob2")
    # "-" breaks a chunk like O, so I-LOC after it starts one (conlleval semantics)
    assert ents(doc) == [(0, 2, "PER"), (4, 5, "LOC")]
    assert [t.ent_iob_ for t in doc] == ["B", "I", "", "", "B", "O"]
    assert parse_conll(path).detect_scheme() == "iob1"  # I-LOC begins a chunk


def test_space_separated_columns_split_on_ascii_spaces_only(tmp_path):
    # a non-breaking space inside a token is part of it (str.split() would split there)
    path = write(tmp_path, "a\u00a0b O\nc  B-X\n")
    (doc,) = read_conll(path)
    assert [t.text for t in doc] == ["a\u00a0b", "c"]
    assert ents(doc) == [(1, 2, "X")]


def test_two_column_space_separated(tmp_path):
    path = write(tmp_path, "Mary B-PER\nsmiles O\n")
    data = parse_conll(path)
    assert data.file_format == "conll"
    (doc,) = read_conll(path)
    assert ents(doc) == [(0, 1, "PER")]


def test_three_columns_pos_in_second(tmp_path):
    path = write(tmp_path, "Jan N B-PER\nloopt V O\n")
    (doc,) = read_conll(path)
    assert [t.tag_ for t in doc] == ["N", "V"]
    assert ents(doc) == [(0, 1, "PER")]


def test_bilou_input(tmp_path):
    rows = ["The O", "New B-GPE", "York I-GPE", "City L-GPE", "and O", "Paris U-GPE"]
    path = write(tmp_path, conll(rows))
    assert parse_conll(path).detect_scheme() == "bilou"
    for scheme in ("auto", "bilou"):
        (doc,) = read_conll(path, scheme=scheme)
        assert ents(doc) == [(1, 4, "GPE"), (5, 6, "GPE")]
    with pytest.raises(ValueError, match=r"BCE030.*line 4.*IOB2 tag.*L-GPE"):
        read_conll(path, scheme="iob2")


def test_same_entities_from_every_scheme(tmp_path):
    spans = [(0, 2, "creative-work"), (2, 3, "creative-work"), (4, 5, "person")]
    words = ["Turn", "Up", "Lil", "and", "Sly"]
    for scheme in ("iob1", "iob2", "bilou"):
        tags = _encode(spans, len(words), scheme)
        path = write(tmp_path, conll([f"{w}\t{t}" for w, t in zip(words, tags)]), name=scheme)
        assert parse_conll(path).detect_scheme() == scheme
        (doc,) = read_conll(path, scheme=scheme)
        assert ents(doc) == spans


def test_conlleval_semantics_for_invalid_iob2(tmp_path):
    # the pre-fix WNUT-17 dev file: I-creative-work right after I-person
    rows = ["Lil\tB-person", "Sly-\tI-person", "Turn\tI-creative-work", "Up\tI-creative-work",
            "x\tO", "y\tI-group"]
    path = write(tmp_path, conll(rows))
    (doc,) = read_conll(path, scheme="iob2")
    assert ents(doc) == [(0, 2, "person"), (2, 4, "creative-work"), (5, 6, "group")]


# ---------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "text,line,pattern",
    [
        ("a\tO\nb\n", 2, "a token and its tag"),  # a token without a tag
        ("a\tO\n\nb\tO\nc\tB-x\textra\n", 4, "2 columns, like the first token line"),
        ("a O\nb c O\n", 2, "2 columns"),  # a token with a space in a space-separated file
        ("a\tO\nb\tb-x\n", 2, "an NER tag"),  # lower-case prefix
        ("a\to\n", 1, "an NER tag"),
        ("a\tB-\n", 1, "an NER tag"),
        ("a\tPER\n", 1, "an NER tag"),
        ("a\tB-corporation,B-group\n", 1, "multi-label"),
        ("\tO\n", 1, "non-empty token"),
    ],
)
def test_malformed_lines_raise_with_path_and_line(tmp_path, text, line, pattern):
    path = write(tmp_path, text)
    with pytest.raises(ValueError, match=r"\[BCE030\]") as excinfo:
        read_conll(path)
    message = str(excinfo.value)
    assert f"{path}, line {line}:" in message
    assert re.search(pattern, message), message


def test_format_column_counts(tmp_path):
    path = write(tmp_path, CONLL_SAMPLE)
    with pytest.raises(ValueError, match=r"BCE030.*line 3: expected 2 columns for the 'wnut'"):
        read_conll(path, file_format="wnut")
    path = write(tmp_path, WNUT_SAMPLE, name="w.conll")
    with pytest.raises(ValueError, match=r"BCE030.*line 1: expected 4 columns"):
        read_conll(path, file_format="conll2003")
    assert len(read_conll(path, file_format="conll")) == 3


def test_not_utf8_names_the_line(tmp_path):
    path = write(tmp_path, "a\tO\n\nCaf\u00e9\tO\n", encoding="latin-1")
    with pytest.raises(ValueError, match=r"BCE030.*line 3: expected UTF-8 text"):
        read_conll(path)


def test_missing_file(tmp_path):
    with pytest.raises(ValueError, match="BCE031.*does not exist"):
        read_conll(tmp_path / "nope.conll")
    with pytest.raises(ValueError, match="BCE031.*is a directory"):
        read_conll(tmp_path)


def test_a_token_of_spaces_in_a_tab_separated_file_is_kept(tmp_path):
    path = write(tmp_path, "a\tO\n \tO\nb\tB-X\n")
    (doc,) = read_conll(path)
    assert [t.text for t in doc] == ["a", " ", "b"]


def test_latin1_file_starting_with_x_is_not_taken_for_a_docbin(tmp_path):
    path = write(tmp_path, "xbox O\nCaf\u00e9 B-LOC\n", encoding="latin-1")
    with pytest.raises(ValueError, match=r"BCE030.*iconv -f latin1") as excinfo:
        read_conll(path)
    assert "DocBin" not in str(excinfo.value)


def test_docbin_and_utf16_input_get_their_own_hints(tmp_path):
    doc = Doc(Vocab(), words=["Paris"])
    DocBin(docs=[doc]).to_disk(tmp_path / "train.spacy")
    with pytest.raises(ValueError, match=r"BCE030.*DocBin.*spacy\.Corpus\.v1"):
        read_conll(tmp_path / "train.spacy")
    path = write(tmp_path, "Caf\u00e9\tO\n", encoding="utf-16")
    with pytest.raises(ValueError, match=r"BCE030.*UTF-16.*iconv -f utf-16"):
        read_conll(path)


@pytest.mark.parametrize(
    "kwargs,code",
    [
        ({"scheme": "bio"}, "BCE032"),
        ({"file_format": "conllu"}, "BCE032"),
        ({"n_sents": 0}, "BCE032"),
        ({"limit": -1}, "BCE032"),
        ({"doc_boundaries": True, "n_sents": 10}, "BCE033"),
    ],
)
def test_bad_options(tmp_path, kwargs, code):
    path = write(tmp_path, CONLL_SAMPLE)
    with pytest.raises(ValueError, match=code):
        read_conll(path, **kwargs)


def test_empty_file(tmp_path):
    path = write(tmp_path, "\n\t\n")
    assert read_conll(path) == []
    assert conll_stats(path).tokens == 0


# ---------------------------------------------------------------------------- grouping


def test_n_sents_groups_within_documents(tmp_path):
    path = write(tmp_path, CONLL_SAMPLE)
    docs = read_conll(path, n_sents=10)
    assert [len(doc) for doc in docs] == [7, 2]  # never across -DOCSTART-
    assert [[s.text for s in doc.sents] for doc in docs] == [
        ["UN accepts Dutch plan .", "Anna Smith"],
        ["GENEVA 2001-05-17"],
    ]
    assert ents(docs[0]) == [(0, 1, "ORG"), (2, 3, "MISC"), (5, 7, "PER")]
    assert [t.is_sent_start for t in docs[0]] == [True] + [False] * 4 + [True, False]


def test_n_sents_without_docstart(tmp_path):
    sents = [[f"w{i}{j}\t{'B-x' if j == 0 else 'O'}" for j in range(2)] for i in range(5)]
    path = write(tmp_path, "\n\n".join("\n".join(s) for s in sents) + "\n")
    docs = read_conll(path, n_sents=2)
    assert [len(doc) for doc in docs] == [4, 4, 2]
    assert [len(list(doc.sents)) for doc in docs] == [2, 2, 1]
    assert summarize_docs(docs).sentences == 5
    assert summarize_docs(docs).entities == {"x": 5}
    (whole,) = read_conll(path, doc_boundaries=True)  # no -DOCSTART-: one document
    assert len(list(whole.sents)) == 5


def test_limit(tmp_path):
    path = write(tmp_path, CONLL_SAMPLE)
    assert len(read_conll(path, limit=2)) == 2
    assert len(read_conll(path, limit=0)) == 3
    assert len(read_conll(path, doc_boundaries=True, limit=1)) == 1


def test_single_sentence_docs_have_sentence_starts(tmp_path):
    path = write(tmp_path, CONLL_SAMPLE)
    doc = read_conll(path)[0]
    assert doc.has_annotation("SENT_START")
    assert len(list(doc.sents)) == 1
    assert doc.has_unknown_spaces
    assert doc.text == "UN accepts Dutch plan ."


def test_vocab_is_used(tmp_path):
    vocab = Vocab()
    docs = read_conll(write(tmp_path, CONLL_SAMPLE), vocab=vocab)
    assert all(doc.vocab is vocab for doc in docs)


# ---------------------------------------------------------------------------- DocBin / reader


def test_docbin_round_trip(tmp_path):
    path = write(tmp_path, CONLL_SAMPLE + "\n" + WNUT_SAMPLE.replace("\t", " "), name="mix")
    with pytest.raises(ValueError, match="BCE030"):  # 4 and 2 columns mixed
        read_conll(path)
    for text in (CONLL_SAMPLE, WNUT_SAMPLE):
        docs = read_conll(write(tmp_path, text), n_sents=2)
        out = tmp_path / "out.spacy"
        docs_to_docbin(docs).to_disk(out)
        nlp = spacy.blank("en")
        loaded = list(DocBin().from_disk(out).get_docs(nlp.vocab))
        assert len(loaded) == len(docs)
        for a, b in zip(docs, loaded):
            assert [t.text for t in a] == [t.text for t in b]
            assert [t.tag_ for t in a] == [t.tag_ for t in b]
            assert [t.is_sent_start for t in a] == [t.is_sent_start for t in b]
            assert [t.ent_iob_ for t in a] == [t.ent_iob_ for t in b]
            assert ents(a) == ents(b)
            assert b.has_unknown_spaces
        # spaCy's own Corpus keeps the gold tokens (has_unknown_spaces), even without
        # gold_preproc, so "@paulwalk" or "2001-05-17" are not re-tokenized
        for eg, doc in zip(Corpus(str(out))(nlp), docs):
            assert [t.text for t in eg.predicted] == [t.text for t in doc]
            assert ents(eg.reference) == ents(doc)


def test_conll_corpus_reader(tmp_path):
    path = write(tmp_path, CONLL_SAMPLE)
    assert spacy.registry.readers.get("spacy-bilstm-crf.ConllCorpus.v1") is create_conll_corpus
    config = Config().from_str(
        f"""
        [paths]
        train = "{path}"

        [corpora]

        [corpora.train]
        @readers = "spacy-bilstm-crf.ConllCorpus.v1"
        path = ${{paths.train}}
        n_sents = 2
        limit = 0
        """
    )
    corpus = spacy.registry.resolve(config)["corpora"]["train"]
    assert isinstance(corpus, ConllCorpus)
    nlp = spacy.blank("en")
    for _ in range(2):  # callable more than once, as spaCy does every epoch
        examples = list(corpus(nlp))
        assert len(examples) == 2
        eg = examples[0]
        assert [t.text for t in eg.predicted] == [t.text for t in eg.reference]
        assert eg.reference.vocab is nlp.vocab and eg.predicted.vocab is nlp.vocab
        assert ents(eg.reference) == [(0, 1, "ORG"), (2, 3, "MISC"), (5, 7, "PER")]
        assert eg.get_aligned_ner() == ["U-ORG", "O", "U-MISC", "O", "O", "B-PER", "L-PER"]
    assert len(list(ConllCorpus(path, limit=1)(nlp))) == 1
    assert len(list(ConllCorpus(path, doc_boundaries=True)(nlp))) == 2


def test_conll_corpus_reader_without_path():
    config = Config().from_str(
        """
        [corpora]

        [corpora.dev]
        @readers = "spacy-bilstm-crf.ConllCorpus.v1"
        path = null
        """
    )
    corpus = spacy.registry.resolve(config)["corpora"]["dev"]  # resolving needs no file
    with pytest.raises(ValueError, match="BCE035"):
        list(corpus(spacy.blank("en")))


def test_conll_corpus_reader_bad_scheme(tmp_path):
    with pytest.raises(ValueError, match="BCE032"):
        ConllCorpus(write(tmp_path, CONLL_SAMPLE), scheme="IOB")


# ---------------------------------------------------------------------------- real files


def test_bundled_wnut_checksums():
    readme = (WNUT_DIR / "README.md").read_text(encoding="utf-8")
    for name, digest in WNUT_SHA256.items():
        assert sha256(WNUT_DIR / name) == digest, name
        row = next(line for line in readme.splitlines() if f"`{name}`" in line and "|" in line)
        assert f"`{digest}`" in row, name


def _check_counts(path: Path, documents: int, sentences: int, tokens: int,
                  entities: Dict[str, int], total: int) -> List[Doc]:
    data = parse_conll(path)  # parsed once; read_conll/conll_stats wrap the same steps
    docs = docs_from_conll_data(data)
    stats = summarize_docs(docs)
    assert (stats.docs, stats.sentences, stats.tokens) == (sentences, sentences, tokens)
    assert stats.entities == dict(sorted(entities.items()))
    assert stats.total_entities == total
    by_doc = summarize_docs(docs_from_conll_data(data, doc_boundaries=True))
    assert (by_doc.docs, by_doc.sentences, by_doc.tokens) == (documents, sentences, tokens)
    assert by_doc.entities == stats.entities
    assert all(tok.text != "-DOCSTART-" for sent in data.sentences for tok in sent)
    return docs


@pytest.mark.parametrize("name,documents,sentences,tokens,entities", WNUT_COUNTS)
def test_wnut17_counts(name, documents, sentences, tokens, entities):
    path = WNUT_DIR / name
    assert parse_conll(path).file_format == "wnut"
    assert parse_conll(path).detect_scheme() == "iob2"
    _check_counts(path, documents, sentences, tokens, entities, WNUT_TOTALS[name])


def test_wnut17_quirky_tokens_are_kept():
    dev = [t.text for doc in read_conll(WNUT_DIR / "emerging.dev.conll") for t in doc]
    test = [t.text for doc in read_conll(WNUT_DIR / "emerging.test.annotated") for t in doc]
    assert dev.count("\ufe0f") == 4 and test.count("\ufe0f") == 3
    assert "watched\u200bwas" in dev
    dubbz = [
        ent for doc in read_conll(WNUT_DIR / "emerging.dev.conll") for ent in doc.ents
        if ent.text == "Dubbz\ufeff"
    ]
    assert [ent.label_ for ent in dubbz] == ["person"]


def test_wnut17_train_tab_only_separators():
    raw = (WNUT_DIR / "wnut17train.conll").read_text(encoding="utf-8").split("\n")
    assert raw.count("\t") == 2394
    assert len(parse_conll_sentences(WNUT_DIR / "wnut17train.conll")) == 3394


def test_wnut17_old_dev_file(tmp_path):
    """The pre-fix dev file (davidsbatista/NER-datasets) reads to the same counts."""
    lines = (WNUT_DIR / "emerging.dev.conll").read_text(encoding="utf-8").split("\n")
    assert lines[1673] == "Turn\tB-creative-work"
    lines[1673] = "Turn\tI-creative-work"
    old = write(tmp_path, "\n".join(lines) + "\ufeff", name="emerging.dev.conll")
    name, documents, sentences, tokens, entities = WNUT_COUNTS[1]
    _check_counts(old, documents, sentences, tokens, entities, WNUT_TOTALS[name])


needs_conll = pytest.mark.skipif(
    not CONLL_DIR.is_dir(),
    reason=f"CoNLL-2003 files not found in {CONLL_DIR} (research-use data, never in the repo)",
)


@needs_conll
@pytest.mark.parametrize("name,documents,sentences,tokens,entities", CONLL_COUNTS)
def test_conll2003_counts(name, documents, sentences, tokens, entities):
    path = CONLL_DIR / name
    if not path.is_file():
        pytest.skip(f"{path} not found")
    data = parse_conll(path)
    assert data.file_format == "conll2003"
    assert data.detect_scheme() == "iob1"
    assert len(data.documents) == documents
    assert sum(tok.tag.startswith("B-") for sent in data.sentences for tok in sent) == {
        "eng.train": 72, "eng.testa": 4, "eng.testb": 20}[name]
    docs = _check_counts(path, documents, sentences, tokens, entities, CONLL_TOTALS[name])
    assert all(doc.has_annotation("TAG") for doc in docs[:10])


@needs_conll
def test_conll2003_b_misc_after_o():
    path = CONLL_DIR / "eng.train"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    found = []
    for sent in parse_conll(path).sentences:
        for prev, tok in zip([None] + sent[:-1], sent):
            if tok.tag.startswith("B-") and (prev is None or prev.tag == "O"):
                found.append((tok.text, tok.line))
    assert found == [("Atlanta", 152428), ("Urdu-speaking", 175436)]


# ---------------------------------------------------------------------------- CLI


def run_cli(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, "-m", "spacy_bilstm_crf.convert", *args],
        capture_output=True, text=True, env=env, cwd=REPO_ROOT, timeout=120,
    )


def load_spacy(path: Path) -> List[Doc]:
    return list(DocBin().from_disk(path).get_docs(spacy.blank("en").vocab))


def test_cli_small_file(tmp_path, capsys):
    src = write(tmp_path, CONLL_SAMPLE, name="eng.sample")
    out = tmp_path / "sub" / "sample.spacy"
    result = run_cli(str(src), str(out), "--n-sents", "10")
    assert result.returncode == 0, result.stderr
    assert "format conll2003, scheme iob1, 2 documents, 3 sentences" in result.stdout
    assert "2 Docs, 3 sentences, 9 tokens, 4 entities" in result.stdout
    assert "Entities: LOC 1, MISC 1, ORG 1, PER 1" in result.stdout
    docs = load_spacy(out)
    assert [len(doc) for doc in docs] == [7, 2]
    assert ents(docs[0]) == [(0, 1, "ORG"), (2, 3, "MISC"), (5, 7, "PER")]
    # the other options, in-process (a subprocess costs seconds of imports)
    args = [str(src), str(out), "--doc-boundaries", "--scheme", "iob1", "--limit", "1", "--no-pos"]
    assert convert_main(args) == 0
    assert "1 Docs, 2 sentences, 7 tokens" in capsys.readouterr().out
    (doc,) = load_spacy(out)
    assert len(doc) == 7 and not doc.has_annotation("TAG")


def test_cli_wnut_dev(tmp_path):
    out = tmp_path / "dev.spacy"
    result = run_cli(str(WNUT_DIR / "emerging.dev.conll"), str(out), "--format", "wnut")
    assert result.returncode == 0, result.stderr
    assert "1009 Docs, 1009 sentences, 15733 tokens, 836 entities" in result.stdout
    stats = summarize_docs(load_spacy(out))
    name, _, sentences, tokens, entities = WNUT_COUNTS[1]
    assert (stats.docs, stats.sentences, stats.tokens) == (sentences, sentences, tokens)
    assert stats.entities == dict(sorted(entities.items()))


def test_cli_errors(tmp_path, capsys):
    src = write(tmp_path, "a\tO\nb\n")
    assert convert_main([str(src), str(tmp_path / "x.spacy")]) == 1
    err = capsys.readouterr().err
    assert f"[BCE030] {src}, line 2:" in err
    assert convert_main([str(WNUT_DIR / "emerging.dev.conll"), str(tmp_path / "x.json")]) == 1
    assert "BCE034" in capsys.readouterr().err
    good = write(tmp_path, CONLL_SAMPLE, name="good.conll")
    assert convert_main([str(good), str(tmp_path / "x.spacy"), "--n-sents", "0"]) == 1
    assert "BCE032" in capsys.readouterr().err
    with pytest.raises(SystemExit) as excinfo:  # argparse rejects the choice
        convert_main([str(src), str(tmp_path / "x.spacy"), "--scheme", "bio"])
    assert excinfo.value.code == 2
    assert not (tmp_path / "x.spacy").exists()
    # no token lines: an error, not an empty corpus
    for text in ("", "\n\n", "-DOCSTART- -X- -X- O\n\n"):
        empty = write(tmp_path, text, name="empty.conll")
        assert convert_main([str(empty), str(tmp_path / "x.spacy")]) == 1
        assert "BCE036" in capsys.readouterr().err
    assert not (tmp_path / "x.spacy").exists()
