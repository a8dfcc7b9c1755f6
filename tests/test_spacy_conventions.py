"""What a spaCy user expects of an entity recognizer, as spaCy's own `ner` behaves:
decoding rules (blocked tokens, whitespace, sentence boundaries), scoring like `ents_f`
when fitting on held-out data, and the TrainablePipe API's edge cases."""

import numpy
import pytest
import spacy
import torch
from spacy.lang.en import English
from spacy.scorer import get_ner_prf
from spacy.tokens import Doc, Span
from spacy.training import Example
from spacy.util import make_tempdir
from thinc.api import fix_random_seed

import spacy_bilstm_crf.pipeline_component as pipeline_component
from spacy_bilstm_crf.calibration import entity_confidences, judge_entities

TRAIN_DATA = [
    ("Barack Obama visited Paris yesterday .", [(0, 12, "PER"), (21, 26, "LOC")]),
    ("Angela Merkel lives in Berlin .", [(0, 13, "PER"), (23, 29, "LOC")]),
    ("Google hired John Smith in London .", [(0, 6, "ORG"), (13, 23, "PER"), (27, 33, "LOC")]),
    ("Microsoft opened an office in Tokyo .", [(0, 9, "ORG"), (30, 35, "LOC")]),
]
SMALL = {"model": {"hidden_size": 16, "num_layers": 1, "attention_heads": 2}}


def make_examples(nlp, data=TRAIN_DATA):
    return [Example.from_dict(nlp.make_doc(t), {"entities": ents}) for t, ents in data]


def make_pipeline(tag_scheme="BILUO", n_iter=0):
    fix_random_seed(0)
    nlp = English()
    pipe = nlp.add_pipe("bilstm_attn_crf", config={**SMALL, "tag_scheme": tag_scheme})
    examples = make_examples(nlp)
    optimizer = nlp.initialize(lambda: examples)
    for _ in range(n_iter):
        nlp.update(examples, sgd=optimizer)
    return nlp, pipe


@pytest.fixture(scope="module")
def trained():
    return make_pipeline(n_iter=30)


def force_emissions(monkeypatch, pipe, favour):
    """Make the model's emission scores favour, at every token, the tag `favour(i)` (a
    tag id, or None for no preference), so that only the decoding rules decide."""

    def fake(model, docs):
        max_len = max(len(doc) for doc in docs)
        E = torch.zeros(len(docs), max_len, pipe.tag_scheme.num_tags)
        for b, doc in enumerate(docs):
            for i in range(len(doc)):
                tag = favour(doc, i)
                if tag is not None:
                    E[b, i, tag] = 10.0
        return E, torch.tensor([len(doc) for doc in docs])

    monkeypatch.setattr(pipeline_component, "predict_emissions", fake)


# ------------------------------------------------------------------ decoding rules
@pytest.mark.parametrize("tag_scheme", ["BILUO", "BIO"])
def test_no_entity_begins_on_whitespace(monkeypatch, tag_scheme):
    nlp, pipe = make_pipeline(tag_scheme)
    scheme = pipe.tag_scheme
    begin = scheme.tag_id("B" if tag_scheme == "BIO" else "U", "LOC")
    force_emissions(monkeypatch, pipe, lambda doc, i: begin)
    doc = Doc(nlp.vocab, words=["Paris", "\n", "Berlin", "  "], spaces=[False] * 4)
    doc = pipe(doc)
    assert doc[1].is_space and doc[3].is_space
    assert all(not ent[0].is_space for ent in doc.ents)
    # (as in spaCy's ner, an entity may go on over whitespace: "Berlin  " in BIO here)
    assert [ent[0].text for ent in doc.ents] == ["Paris", "Berlin"]
    # a pre-set entity on whitespace is kept, as in spaCy's ner
    doc = Doc(nlp.vocab, words=["Paris", "\n", "Berlin"], spaces=[False] * 3, ents=["O", "B-ORG", "O"])
    assert ("\n", "ORG") in [(e.text, e.label_) for e in pipe(doc).ents]


@pytest.mark.parametrize("tag_scheme", ["BILUO", "BIO"])
def test_no_entity_crosses_a_set_sentence_start(monkeypatch, tag_scheme):
    nlp, pipe = make_pipeline(tag_scheme)
    scheme = pipe.tag_scheme
    inside = scheme.tag_id("I", "PER") if tag_scheme == "BIO" else scheme.tag_id("L", "PER")
    # "Barack Obama" is one entity by the emissions...
    favour = {0: scheme.tag_id("B", "PER"), 1: inside}
    force_emissions(monkeypatch, pipe, lambda doc, i: favour.get(i, 0))  # 0: "O"
    doc = Doc(nlp.vocab, words=["Barack", "Obama", "visited", "Paris"])
    assert [e.text for e in pipe(doc).ents] == ["Barack Obama"]
    # ...unless a sentence starts between the two words
    doc = Doc(nlp.vocab, words=["Barack", "Obama", "visited", "Paris"],
              sent_starts=[True, True, False, False])
    doc = pipe(doc)
    assert all(ent.sent == ent[0].sent == ent[-1].sent for ent in doc.ents)
    assert "Barack Obama" not in [e.text for e in doc.ents]
    # sentence starts that are not set (None) change nothing
    doc = Doc(nlp.vocab, words=["Barack", "Obama", "visited", "Paris"],
              sent_starts=[True, None, None, None])
    assert [e.text for e in pipe(doc).ents] == ["Barack Obama"]


def test_blocked_tokens_stay_blocked(monkeypatch):
    nlp, pipe = make_pipeline()
    unit = pipe.tag_scheme.tag_id("U", "LOC")
    force_emissions(monkeypatch, pipe, lambda doc, i: unit)
    doc = nlp.make_doc("Paris and Berlin")
    doc.set_ents([], blocked=[doc[0:1]], default="unmodified")
    doc = pipe(doc)
    assert [e.text for e in doc.ents] == ["and", "Berlin"]
    assert doc[0].ent_iob == 3 and doc[0].ent_type == 0  # still blocked


def test_running_the_component_again_keeps_the_confidences(trained):
    nlp, pipe = trained
    doc = nlp("Barack Obama visited Paris yesterday .")
    first = [(s.text, s.label_) for s in doc.spans["crf_ents"]]
    scores = doc.spans["crf_ents"].attrs["scores"].tolist()
    assert first  # the tiny model found something to keep
    doc = pipe(doc)
    assert [(s.text, s.label_) for s in doc.spans["crf_ents"]] == first
    assert doc.spans["crf_ents"].attrs["scores"].tolist() == scores


# ------------------------------------------------------------------ held-out fits
def test_judge_entities_is_the_ner_scorers_judgement():
    nlp = English()
    doc = nlp.make_doc("Barack Obama visited Paris .")
    # fully annotated
    eg = Example.from_dict(doc, {"entities": [(0, 12, "PER"), (21, 26, "LOC")]})
    assert judge_entities(eg, [(0, 2, "PER"), (3, 4, "ORG"), (1, 2, "PER")]) == [True, False, False]
    # missing annotation under a span: neither right nor wrong
    eg = Example.from_dict(doc, {"entities": ["B-PER", "L-PER", "O", "-", "O"]})
    assert judge_entities(eg, [(0, 2, "PER"), (3, 4, "LOC"), (2, 3, "LOC")]) == [True, None, False]
    # no entity annotation at all
    eg = Example(doc, nlp.make_doc(doc.text))
    assert judge_entities(eg, [(0, 2, "PER")]) == [None]
    # different gold tokenization: aligned
    gold = Doc(nlp.vocab, words=["Barack", "Obama", "visited", "Par", "is", "."],
               spaces=[True, True, True, False, True, False], ents=["B-PER", "I-PER", "O", "B-LOC", "I-LOC", "O"])
    assert judge_entities(Example(doc, gold), [(0, 2, "PER"), (3, 4, "LOC")]) == [True, True]
    # two predictions aligned to one gold entity: it is matched once, as the scorer does
    gold = Doc(nlp.vocab, words=["in", "NewYork"], spaces=[True, False], ents=["O", "B-LOC"])
    pred_spaces = Doc(nlp.vocab, words=["in", "New", "York"], spaces=[True, False, False])
    assert pred_spaces.text == gold.text
    eg = Example(pred_spaces, gold)
    assert judge_entities(eg, [(1, 2, "LOC"), (2, 3, "LOC")]) == [True, False]
    pred_spaces.ents = [Span(pred_spaces, 1, 2, "LOC"), Span(pred_spaces, 2, 3, "LOC")]
    assert get_ner_prf([eg])["ents_p"] == 0.5


def test_fits_ignore_what_ents_f_ignores(trained):
    """Docs without entity annotation (and tokens whose annotation is missing) do not
    count in `nlp.evaluate`'s ents_f: they must not move the fitted threshold or
    temperature either."""
    nlp, pipe = trained
    annotated = make_examples(nlp)
    texts = [t for t, _ in TRAIN_DATA]
    unannotated = [Example(nlp.make_doc(t), nlp.make_doc(t)) for t in texts * 3]
    missing = [Example.from_dict(nlp.make_doc(t), {"entities": ["-"] * len(nlp.make_doc(t))})
               for t in texts * 3]
    # the model predicts entities on the extra docs (so they could move the fits)
    assert any(nlp(t).ents for t in texts)
    old = dict(pipe.cfg)
    try:
        candidates = [round(0.05 * i, 2) for i in range(20)]
        base_t = pipe.fit_threshold(annotated, candidates)
        assert pipe.fit_threshold(annotated + unannotated, candidates) == base_t
        assert pipe.fit_threshold(annotated + missing, candidates) == base_t
        base_temp = pipe.fit_confidence_temperature(annotated)
        assert pipe.fit_confidence_temperature(annotated + unannotated) == base_temp
        assert pipe.fit_confidence_temperature(annotated + missing) == base_temp
        with pytest.raises(ValueError, match="BCE025"):
            pipe.fit_threshold(unannotated)
        # and the scorer agrees that these examples change nothing
        pipe.cfg["threshold"] = 0.0
        f_annotated = nlp.evaluate(annotated)["ents_f"]
        assert nlp.evaluate(annotated + unannotated + missing)["ents_f"] == f_annotated
        conf, correct = entity_confidences(nlp, [eg.reference for eg in annotated])
        conf2, correct2 = entity_confidences(nlp, [eg.reference for eg in annotated + missing])
        # the same entities, judged the same; the confidences to float rounding (the
        # extra docs change the sub-batches, and torch's matrix products round
        # differently for different batch shapes)
        assert correct2 == correct
        assert conf2 == pytest.approx(conf, rel=1e-5, abs=1e-6)
    finally:
        pipe.cfg.update(old)


# ------------------------------------------------------------------ TrainablePipe API
def test_get_loss_has_no_side_effects_and_update_with_sgd_false(trained):
    nlp, pipe = trained
    examples = make_examples(nlp)
    crf = pipeline_component.get_crf(pipe.model)
    crf.zero_grad(set_to_none=True)
    emissions = pipe.model.predict([eg.predicted for eg in examples])
    loss, grads = pipe.get_loss(examples, emissions)
    assert loss > 0 and len(grads) == len(examples)
    assert all(p.grad is None for p in crf.parameters())
    assert pipe.get_loss(examples, emissions)[0] == loss
    # sgd=False: gradients, no step (spaCy's convention)
    before = [p.detach().clone() for p in crf.parameters()]
    losses = pipe.update(examples, sgd=False)
    assert losses[pipe.name] > 0
    assert any(p.grad is not None and bool(p.grad.abs().sum() > 0) for p in crf.parameters())
    assert all(torch.equal(a, p) for a, p in zip(before, crf.parameters()))
    crf.zero_grad(set_to_none=True)


def test_failed_reinitialize_keeps_the_trained_component(trained):
    nlp, pipe = trained
    text = "Barack Obama visited Paris yesterday ."
    ents = [(e.text, e.label_) for e in nlp(text).ents]
    labels = pipe.labels
    for bad in (["B-PER"], []):
        with pytest.raises(ValueError, match="BCE002|BCE021"):
            pipe.initialize(lambda: make_examples(nlp), labels=bad)
        assert pipe.labels == labels and pipe.is_initialized
        assert [(e.text, e.label_) for e in nlp(text).ents] == ents


def test_initialize_samples_docs_with_tokens():
    nlp = English()
    nlp.add_pipe("bilstm_attn_crf", config=SMALL)
    examples = [Example.from_dict(nlp.make_doc(""), {"entities": []}) for _ in range(12)]
    examples += make_examples(nlp)
    nlp.initialize(lambda: examples)
    assert nlp.get_pipe("bilstm_attn_crf").labels == ("LOC", "ORG", "PER")
    assert len(nlp("Paris .")) == 2
    nlp = English()
    nlp.add_pipe("bilstm_attn_crf", config=SMALL)
    with pytest.raises(ValueError, match="E923.*BCE037.*paths.train"):
        nlp.initialize(lambda: examples[:12])


def test_labels_without_initialize_save_and_load():
    nlp = English()
    pipe = nlp.add_pipe("bilstm_attn_crf", config=SMALL)
    pipe.add_label("PER")
    with make_tempdir() as tmp:
        nlp.to_disk(tmp)
        loaded = spacy.load(tmp)
    assert loaded.get_pipe("bilstm_attn_crf").labels == ("PER",)
    assert not loaded.get_pipe("bilstm_attn_crf").is_initialized
    other = English()
    other.add_pipe("bilstm_attn_crf", config=SMALL)
    other.from_bytes(nlp.to_bytes())
    assert other.get_pipe("bilstm_attn_crf").labels == ("PER",)
    # and it can then be initialized and trained as usual
    examples = make_examples(other)
    other.initialize(lambda: examples)
    assert set(other.get_pipe("bilstm_attn_crf").labels) == {"PER", "LOC", "ORG"}


def test_listeners_are_recognised_by_type_not_shape():
    """curated-transformers' listeners are not leaf layers; they carry a marker attr."""
    from thinc.api import Linear, Model, chain, noop

    from spacy_bilstm_crf.pipeline_component import _is_listener

    curated = Model("last_transformer_layer_listener", lambda model, X, is_train: (X, None),
                    layers=[noop()], attrs={"_TRANSFORMER_LISTENER": True})
    assert _is_listener(curated)
    assert not _is_listener(chain(noop(), Linear(2, 2)))
    # a combinator whose name still says "listener" (after replace_listeners) is not one
    named = chain(Model("tok2vec-listener-copy", lambda model, X, is_train: (X, None),
                        layers=[noop()]), Linear(2, 2))
    assert "listener" in named.name and not _is_listener(named)


def test_fits_after_replace_listeners_need_no_nlp():
    fix_random_seed(0)
    nlp = English()
    nlp.add_pipe("tok2vec")
    pipe = nlp.add_pipe("bilstm_attn_crf", config={"model": {
        **SMALL["model"],
        "tok2vec": {"@architectures": "spacy.Tok2VecListener.v1", "width": 96, "upstream": "*"},
    }})
    examples = make_examples(nlp)
    optimizer = nlp.initialize(lambda: examples)
    for _ in range(20):
        nlp.update(examples, sgd=optimizer)
    with pytest.raises(ValueError, match="BCE028"):
        pipe.fit_threshold(examples)
    nlp.replace_listeners("tok2vec", "bilstm_attn_crf", ["model.tok2vec"])
    assert pipe._listener_name() is None
    expected = pipe.fit_threshold(examples, nlp=nlp)
    assert pipe.fit_threshold(examples) == expected
    assert numpy.isfinite(pipe.fit_confidence_temperature(examples))
