"""Tests for spacy_bilstm_crf.callbacks (CalibrateOnSave: temperature fitted on each save)."""

import pytest
import torch
from spacy.lang.en import English
from spacy.tokens import DocBin
from spacy.training import Corpus
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
def dev_nlp(tmp_path, trained_nlp):
    """The trained pipeline with `paths.dev` pointing at a .spacy file of DEV_DATA, as
    `spacy train` sets it; restores the temperature and the path afterwards."""
    path = tmp_path / "dev.spacy"
    DocBin(docs=[eg.reference for eg in make_examples(trained_nlp, DEV_DATA)]).to_disk(path)
    pipe = trained_nlp.get_pipe("bilstm_attn_crf")
    trained_nlp.config["paths"]["dev"] = str(path)
    yield trained_nlp
    trained_nlp.config["paths"]["dev"] = None
    pipe.cfg["confidence_temperature"] = 1.0
    pipe.cfg["threshold"] = 0.0


def make_callback(**kwargs):
    return registry.callbacks.get(CALLBACK_NAME)(**kwargs)


def dev_examples(nlp, path, limit=0):
    return list(Corpus(path, limit=limit)(nlp))


def test_callback_fits_the_temperature_on_the_dev_corpus(dev_nlp):
    pipe = dev_nlp.get_pipe("bilstm_attn_crf")
    expected = pipe.fit_confidence_temperature(
        dev_examples(dev_nlp, dev_nlp.config["paths"]["dev"]), nlp=dev_nlp
    )
    texts = [text for text, _ in DEV_DATA]
    before = [[(e.start, e.end, e.label_) for e in d.ents] for d in dev_nlp.pipe(texts)]
    pipe.cfg["confidence_temperature"] = 123.0  # not a candidate: must be replaced
    callback = make_callback()
    assert callback(dev_nlp) is dev_nlp
    assert pipe.cfg["confidence_temperature"] == expected != 123.0
    assert dev_nlp.config["components"]["bilstm_attn_crf"]["confidence_temperature"] == expected
    # with threshold 0 the entities do not depend on the temperature
    after = [[(e.start, e.end, e.label_) for e in d.ents] for d in dev_nlp.pipe(texts)]
    assert before == after


def test_callback_max_docs_limits_the_data(dev_nlp, tmp_path):
    # the first doc's gold labels are wrong on purpose: confident mistakes only, so a
    # fit on it alone wants a higher temperature than a fit on all the docs
    data = [("I like London and Berlin.", {"entities": [(7, 13, "PERSON"), (18, 24, "PERSON")]})] + DEV_DATA
    path = tmp_path / "dev_first_wrong.spacy"
    DocBin(docs=[eg.reference for eg in make_examples(dev_nlp, data)]).to_disk(path)
    dev_nlp.config["paths"]["dev"] = str(path)
    pipe = dev_nlp.get_pipe("bilstm_attn_crf")
    first = pipe.fit_confidence_temperature(dev_examples(dev_nlp, str(path), limit=1), nlp=dev_nlp)
    all_docs = pipe.fit_confidence_temperature(dev_examples(dev_nlp, str(path)), nlp=dev_nlp)
    assert first > all_docs  # otherwise this test could not tell them apart
    pipe.cfg["confidence_temperature"] = 123.0
    make_callback(max_docs=1)(dev_nlp)
    assert pipe.cfg["confidence_temperature"] == first
    pipe.cfg["confidence_temperature"] = 123.0
    make_callback(max_docs=0)(dev_nlp)
    assert pipe.cfg["confidence_temperature"] == all_docs


def test_callback_reads_the_corpus_the_config_names(dev_nlp, tmp_path):
    """`corpus` is a dot name: here a CoNLL file read by the plugin's reader."""
    path = tmp_path / "dev.conll"
    path.write_text("Shaka B-PERSON\nKhan I-PERSON\nlives O\nin O\nParis B-LOC\n. O\n", encoding="utf8")
    dev_nlp.config["corpora"]["conll_dev"] = {"@readers": "spacy-bilstm-crf.ConllCorpus.v1", "path": str(path)}
    pipe = dev_nlp.get_pipe("bilstm_attn_crf")
    try:
        (reader,) = [registry.readers.get("spacy-bilstm-crf.ConllCorpus.v1")(path=str(path))]
        expected = pipe.fit_confidence_temperature(list(reader(dev_nlp)), nlp=dev_nlp)
        pipe.cfg["confidence_temperature"] = 123.0
        make_callback(corpus="corpora.conll_dev")(dev_nlp)
        assert pipe.cfg["confidence_temperature"] == expected
    finally:
        del dev_nlp.config["corpora"]["conll_dev"]


def test_callback_keeps_the_temperature_when_nothing_is_predicted(tmp_path):
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
    DocBin(docs=[eg.reference for eg in make_examples(nlp, DEV_DATA)]).to_disk(tmp_path / "dev.spacy")
    nlp.config["paths"]["dev"] = str(tmp_path / "dev.spacy")
    pipe.cfg["confidence_temperature"] = 1.5
    assert make_callback()(nlp) is nlp
    assert pipe.cfg["confidence_temperature"] == 1.5


def test_callback_with_a_threshold_warns_and_fits_nothing(dev_nlp):
    pipe = dev_nlp.get_pipe("bilstm_attn_crf")
    pipe.cfg["threshold"] = 0.6
    pipe.cfg["confidence_temperature"] = 1.0
    callback = make_callback()
    with pytest.warns(UserWarning, match=r"\[BCW001\]"):
        callback(dev_nlp)
    assert pipe.cfg["confidence_temperature"] == 1.0


def test_callback_without_dev_data_is_a_coded_error(trained_nlp, tmp_path):
    callback = make_callback()  # paths.dev is null: found when it runs, not at config time
    with pytest.raises(ValueError, match=r"\[BCE072\].*corpora\.dev"):
        callback(trained_nlp)
    with pytest.raises(ValueError, match=r"\[BCE072\].*corpora\.nope"):
        make_callback(corpus="corpora.nope")(trained_nlp)
    DocBin().to_disk(tmp_path / "empty.spacy")
    trained_nlp.config["paths"]["dev"] = str(tmp_path / "empty.spacy")
    try:
        with pytest.raises(ValueError, match=r"\[BCE072\].*no examples"):
            make_callback()(trained_nlp)
        # examples without any entity annotation: nothing could be fitted, ever
        DocBin(docs=[trained_nlp.make_doc("Paris is nice .")]).to_disk(tmp_path / "noann.spacy")
        trained_nlp.config["paths"]["dev"] = str(tmp_path / "noann.spacy")
        with pytest.raises(ValueError, match=r"\[BCE072\].*no.* entity annotation"):
            make_callback()(trained_nlp)
    finally:
        trained_nlp.config["paths"]["dev"] = None


@pytest.mark.parametrize("max_docs", [-1, 1.5, True])
def test_callback_bad_max_docs_is_a_coded_error(max_docs):
    with pytest.raises(ValueError, match=r"\[BCE073\]"):
        make_callback(max_docs=max_docs)


def test_callback_unknown_component_is_a_coded_error(dev_nlp):
    with pytest.raises(ValueError, match=r"\[BCE074\].*'ner'"):
        make_callback(component="ner")(dev_nlp)
    nlp = English()
    nlp.add_pipe("sentencizer")
    with pytest.raises(ValueError, match=r"\[BCE074\]"):
        make_callback(component="sentencizer")(nlp)
