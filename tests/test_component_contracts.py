"""Contracts of the component that the other modules leave open: exact confidences at a
temperature, settings through bytes and pickle, sub-batching, the loss gradient, loss
accumulation, threshold ties and the callback's errors."""

import itertools
import math
import pickle

import pytest
from spacy.lang.en import English
from spacy.training import Example
from thinc.api import fix_random_seed

import spacy_bilstm_crf.pipeline_component as pc
from spacy_bilstm_crf.architectures import get_crf, predict_emissions

TRAIN = [("Who is Shaka Khan?", {"entities": [(7, 17, "PERSON")]}),
         ("I like London and Berlin.", {"entities": [(7, 13, "LOC"), (18, 24, "LOC")]}),
         ("Angela Merkel visited Paris last week.", {"entities": [(0, 13, "PERSON"), (22, 27, "LOC")]})]
SMALL = {"hidden_size": 16, "num_layers": 1, "attention_heads": 2}


@pytest.fixture(scope="module")
def trained():
    fix_random_seed(0)
    nlp = English()
    nlp.add_pipe("bilstm_attn_crf", config={"model": SMALL, "tag_scheme": "BIO"})
    egs = [Example.from_dict(nlp.make_doc(t), a) for t, a in TRAIN]
    opt = nlp.initialize(lambda: egs)
    for _ in range(15):
        nlp.update(egs, sgd=opt)
    return nlp


def test_confidence_is_the_exact_span_posterior_at_temperature(trained):
    """Brute force over all paths: p(span) with every score (emissions AND transitions) / T."""
    pipe = trained.get_pipe("bilstm_attn_crf")
    scheme, crf = pipe.tag_scheme, get_crf(pipe.model)
    text = "Angela Merkel visited Paris"
    doc0 = trained.make_doc(text)
    E, _ = predict_emissions(pipe.model, [doc0])
    E = E[0].double()
    st, tr, en = (x.detach().double() for x in crf._scores())
    for T in (1.0, 3.0):
        pipe.cfg["confidence_temperature"] = T
        try:
            doc = trained(text)
        finally:
            pipe.cfg["confidence_temperature"] = 1.0
        group = doc.spans[pipe.spans_key]
        assert len(group) > 0
        paths = {}
        for p in itertools.product(range(scheme.num_tags), repeat=len(doc)):
            if not scheme.is_valid(p):
                continue
            s = (st[p[0]] + en[p[-1]] + sum(E[i, y] for i, y in enumerate(p))
                 + sum(tr[a, b] for a, b in zip(p, p[1:])))
            paths[p] = float(s) / T
        top = max(paths.values())
        z = sum(math.exp(v - top) for v in paths.values())
        for span, score in zip(group, group.attrs["scores"]):
            key = (span.start, span.end, span.label_)
            expected = sum(math.exp(v - top) for p, v in paths.items()
                           if key in scheme.tags_to_spans(p)) / z
            assert float(score) == pytest.approx(expected, abs=1e-4), (T, key)


def test_fitted_settings_survive_to_bytes_and_pickle(trained):
    pipe = trained.get_pipe("bilstm_attn_crf")
    old = dict(pipe.cfg)
    try:
        pipe.cfg.update(threshold=0.37, confidence_temperature=2.5)
        other = English()
        other.add_pipe("bilstm_attn_crf", config={"model": SMALL, "tag_scheme": "BIO"})
        other.from_bytes(trained.to_bytes())
        for nlp2 in (other, pickle.loads(pickle.dumps(trained))):
            cfg = nlp2.get_pipe("bilstm_attn_crf").cfg
            assert (cfg["threshold"], cfg["confidence_temperature"]) == (0.37, 2.5)
    finally:
        pipe.cfg.clear()
        pipe.cfg.update(old)


def test_spans_key_none_sets_ents_and_no_group(trained):
    pipe = trained.get_pipe("bilstm_attn_crf")
    old = pipe.cfg["spans_key"]
    try:
        pipe.cfg["spans_key"] = None
        doc = trained("Angela Merkel visited Paris last week.")
        assert doc.ents and not doc.spans
    finally:
        pipe.cfg["spans_key"] = old


def test_max_batch_tokens_bounds_the_padded_batch(trained, monkeypatch):
    pipe = trained.get_pipe("bilstm_attn_crf")
    shapes = []
    real = pc.predict_emissions
    def spy(model, docs):
        E, lengths = real(model, docs)
        shapes.append(tuple(E.shape[:2]))
        return E, lengths
    monkeypatch.setattr(pc, "predict_emissions", spy)
    old = pipe.cfg["max_batch_tokens"]
    pipe.cfg["max_batch_tokens"] = 12
    try:
        texts = ["a b c d e", "a b", "a b c", "a", "a b c d e f g h i j k l m n"]
        list(trained.pipe(texts, batch_size=100))
    finally:
        pipe.cfg["max_batch_tokens"] = old
    assert all(b * n <= 12 or b == 1 for b, n in shapes), shapes
    assert sum(b for b, _ in shapes) == 5 and len(shapes) > 1


def test_get_loss_gradient_matches_finite_differences(trained):
    pipe = trained.get_pipe("bilstm_attn_crf")
    egs = [Example.from_dict(trained.make_doc(t), a) for t, a in TRAIN[:2]]
    em = pipe.model.predict([eg.predicted for eg in egs])
    em = [e.astype("float64") for e in em]
    loss, grads = pipe.get_loss(egs, em)
    eps = 1e-4
    for (d, i, j) in [(0, 2, 1), (1, 0, 0), (1, 4, 3)]:
        plus = [e.copy() for e in em]
        plus[d][i, j] += eps
        minus = [e.copy() for e in em]
        minus[d][i, j] -= eps
        fd = (pipe.get_loss(egs, plus)[0] - pipe.get_loss(egs, minus)[0]) / (2 * eps)
        assert grads[d][i, j] == pytest.approx(fd, rel=1e-3, abs=1e-5)


def test_update_accumulates_losses(trained):
    pipe = trained.get_pipe("bilstm_attn_crf")
    egs = [Example.from_dict(trained.make_doc(t), a) for t, a in TRAIN]
    fix_random_seed(1)
    one = pipe.update(egs[:1], sgd=False)[pipe.name]
    fix_random_seed(2)
    two = pipe.update(egs[1:], sgd=False)[pipe.name]
    losses = {}
    fix_random_seed(1)
    pipe.update(egs[:1], sgd=False, losses=losses)
    fix_random_seed(2)
    pipe.update(egs[1:], sgd=False, losses=losses)
    assert losses[pipe.name] == pytest.approx(one + two)
    get_crf(pipe.model).zero_grad(set_to_none=True)


def test_fit_threshold_lowest_of_ties(trained, monkeypatch):
    pipe = trained.get_pipe("bilstm_attn_crf")
    monkeypatch.setattr(pipe, "_held_out_predictions", lambda *a, **k: ([("b", [True, False])], 1, []))
    monkeypatch.setattr(pipe, "_flat", lambda decoded, t: [(None, 0.9), (None, 0.5)])
    try:
        assert pipe.fit_threshold([], thresholds=[0.8, 0.6, 0.7]) == 0.6
    finally:
        pipe.cfg["threshold"] = 0.0


def test_callback_reraises_errors_other_than_nothing_predicted(trained, monkeypatch):
    import spacy_bilstm_crf.callbacks as cb
    from spacy_bilstm_crf.callbacks import make_calibrate_on_save

    pipe = trained.get_pipe("bilstm_attn_crf")
    monkeypatch.setattr(cb, "_read_examples", lambda nlp, corpus, n: ["x"])
    def boom(*a, **k):
        raise ValueError("[BCE028] listener")
    monkeypatch.setattr(pipe, "fit_confidence_temperature", boom)
    with pytest.raises(ValueError, match="BCE028"):
        make_calibrate_on_save()(trained)


def test_update_applies_the_dropout_it_is_given():
    """spaCy's `[training] dropout` reaches the thinc layers (the tok2vec's dropout)."""
    fix_random_seed(0)
    nlp = English()
    # no dropout of its own in the torch module; plain hash embeddings (the default's word
    # dropout has a rate of its own)
    tok2vec = {"@architectures": "spacy.MultiHashEmbed.v2", "width": 32, "rows": [500, 100, 250, 250],
               "attrs": ["NORM", "PREFIX", "SUFFIX", "SHAPE"], "include_static_vectors": False}
    model = {**SMALL, "dropout": 0.0, "input_dropout": 0.0, "attention_dropout": 0.0,
             "tok2vec": tok2vec}
    pipe = nlp.add_pipe("bilstm_attn_crf", config={"model": model})
    egs = [Example.from_dict(nlp.make_doc(t), a) for t, a in TRAIN]
    nlp.initialize(lambda: egs)

    def loss(drop, seed):
        fix_random_seed(seed)
        return pipe.update(egs, drop=drop, sgd=False)[pipe.name]

    assert loss(0.0, 1) == pytest.approx(loss(0.0, 2))  # no randomness without dropout
    assert loss(0.5, 1) != pytest.approx(loss(0.0, 1))
    assert loss(0.5, 1) != pytest.approx(loss(0.5, 2))
