"""Tests for spacy_bilstm_crf.callbacks (CalibrateOnSave: temperature fitted on each save)."""

import pytest
import torch
from spacy.lang.en import English
from spacy.tokens import DocBin
from spacy.training import Example
from spacy.util import registry
from test_component import SMALL_MODEL, make_examples, train
from thinc.api import fix_random_seed

from spacy_bilstm_crf.architectures import get_torch_model
from spacy_bilstm_crf.callbacks import CALLBACK_NAME

DEV_DATA = [
    ("Angela Merkel met Shaka Khan in Berlin.", {"entities": [(0, 13, "PERSON"), (18, 28, "PERSON"), (32, 38, "LOC")]}),
    ("I like Paris and London.", {"entities": [(7, 12, "LOC"), (17, 23, "LOC")]}),
    ("New York City is big.", {"entities": [(0, 13, "LOC")]}),
    ("Shaka Khan lives in Paris.", {"entities": [(0, 10, "PERSON"), (20, 25, "LOC")]}),
]


@pytest.fixture(scope="module")
def trained_nlp():
    fix_random_seed(0)
    nlp = English()
    nlp.add_pipe("bilstm_attn_crf", config={"model": SMALL_MODEL})
    train(nlp, make_examples(nlp), n_iter=25)  # not a perfect fit: confidences vary
    return nlp


@pytest.fixture
def dev_path(tmp_path, trained_nlp):
    path = tmp_path / "dev.spacy"
    DocBin(docs=[eg.reference for eg in make_examples(trained_nlp, DEV_DATA)]).to_disk(path)
    return path


def make_callback(**kwargs):
    return registry.callbacks.get(CALLBACK_NAME)(**kwargs)


def test_callback_fits_the_temperature_on_the_held_out_docs(trained_nlp, dev_path):
    pipe = trained_nlp.get_pipe("bilstm_attn_crf")
    candidates = [round(0.5 + 0.1 * i, 2) for i in range(36)]
    pipe.cfg["confidence_temperature"] = 1.0
    try:
        expected = pipe.fit_confidence_temperature(
            [Example(trained_nlp.make_doc(eg.reference.text), eg.reference)
             for eg in make_examples(trained_nlp, DEV_DATA)],
            temperatures=candidates,
        )
        pipe.cfg["confidence_temperature"] = 123.0  # not a candidate: must be replaced
        callback = make_callback(path=str(dev_path))
        assert callback(trained_nlp) is trained_nlp
        assert pipe.cfg["confidence_temperature"] == expected
        # the entities do not depend on the temperature
        texts = [text for text, _ in DEV_DATA]
        before = [[(e.start, e.end, e.label_) for e in d.ents] for d in trained_nlp.pipe(texts)]
        pipe.cfg["confidence_temperature"] = 1.0
        after = [[(e.start, e.end, e.label_) for e in d.ents] for d in trained_nlp.pipe(texts)]
        assert before == after
    finally:
        pipe.cfg["confidence_temperature"] = 1.0


def test_callback_max_docs_limits_the_data(trained_nlp, dev_path):
    pipe = trained_nlp.get_pipe("bilstm_attn_crf")
    first = make_examples(trained_nlp, DEV_DATA[:1])
    try:
        expected = pipe.fit_confidence_temperature(first)
        pipe.cfg["confidence_temperature"] = 123.0
        make_callback(path=dev_path, max_docs=1)(trained_nlp)
        assert pipe.cfg["confidence_temperature"] == expected
    finally:
        pipe.cfg["confidence_temperature"] = 1.0


def test_callback_reads_a_directory_of_spacy_files(trained_nlp, tmp_path):
    pipe = trained_nlp.get_pipe("bilstm_attn_crf")
    examples = make_examples(trained_nlp, DEV_DATA)
    (tmp_path / "dev" / "part").mkdir(parents=True)
    DocBin(docs=[eg.reference for eg in examples[:2]]).to_disk(tmp_path / "dev" / "a.spacy")
    DocBin(docs=[eg.reference for eg in examples[2:]]).to_disk(tmp_path / "dev" / "part" / "b.spacy")
    try:
        expected = pipe.fit_confidence_temperature(examples)
        pipe.cfg["confidence_temperature"] = 123.0
        make_callback(path=tmp_path / "dev")(trained_nlp)
        assert pipe.cfg["confidence_temperature"] == expected
        # an empty directory has no docs
        (tmp_path / "empty").mkdir()
        with pytest.raises(ValueError, match=r"\[BCE072\]"):
            make_callback(path=tmp_path / "empty")(trained_nlp)
    finally:
        pipe.cfg["confidence_temperature"] = 1.0


def test_callback_reads_conll_files(trained_nlp, tmp_path):
    path = tmp_path / "dev.conll"
    path.write_text("Shaka B-PERSON\nKhan I-PERSON\nlives O\nin O\nParis B-LOC\n. O\n", encoding="utf8")
    pipe = trained_nlp.get_pipe("bilstm_attn_crf")
    pipe.cfg["confidence_temperature"] = 123.0
    try:
        make_callback(path=path)(trained_nlp)
        assert pipe.cfg["confidence_temperature"] != 123.0
    finally:
        pipe.cfg["confidence_temperature"] = 1.0


def test_callback_keeps_the_temperature_when_nothing_is_predicted(dev_path):
    nlp = English()
    nlp.add_pipe("bilstm_attn_crf", config={"model": SMALL_MODEL})
    nlp.initialize(get_examples=lambda: make_examples(nlp))
    pipe = nlp.get_pipe("bilstm_attn_crf")
    # an early checkpoint that predicts no entity: every token's "O" score dominates
    out = get_torch_model(pipe.model).emitter.hidden2tag
    with torch.no_grad():
        out.weight.zero_()
        out.bias.zero_()
        out.bias[0] = 100.0
    assert not any(d.ents for d in nlp.pipe([t for t, _ in DEV_DATA]))
    pipe.cfg["confidence_temperature"] = 1.5
    assert make_callback(path=dev_path)(nlp) is nlp
    assert pipe.cfg["confidence_temperature"] == 1.5


@pytest.mark.parametrize("path", [None, "does/not/exist.spacy"])
def test_callback_bad_path_is_a_coded_error(path):
    with pytest.raises(ValueError, match=r"\[BCE072\]"):
        make_callback(path=path)


def test_callback_empty_file_is_a_coded_error(trained_nlp, tmp_path):
    path = tmp_path / "empty.spacy"
    DocBin().to_disk(path)
    callback = make_callback(path=path)
    with pytest.raises(ValueError, match=r"\[BCE072\]"):
        callback(trained_nlp)


@pytest.mark.parametrize("max_docs", [-1, 1.5, True])
def test_callback_bad_max_docs_is_a_coded_error(dev_path, max_docs):
    with pytest.raises(ValueError, match=r"\[BCE073\]"):
        make_callback(path=dev_path, max_docs=max_docs)


def test_callback_unknown_component_is_a_coded_error(trained_nlp, dev_path):
    callback = make_callback(path=dev_path, component="ner")
    with pytest.raises(ValueError, match=r"\[BCE074\].*'ner'"):
        callback(trained_nlp)
    nlp = English()
    nlp.add_pipe("sentencizer")
    with pytest.raises(ValueError, match=r"\[BCE074\]"):
        make_callback(path=dev_path, component="sentencizer")(nlp)
