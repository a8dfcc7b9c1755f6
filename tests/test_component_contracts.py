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


# ------------------------------------------------ gold tags on the predicted tokens


def _random_example(rng, vocab):
    """A reference doc with random entities, missing annotation and whitespace tokens,
    and a predicted doc with the same tokens, or with a few merged or split."""
    from spacy.tokens import Doc

    pool = ["Paris", "is", "a", "city", " ", "\n", "New", "York", "-", "U.S.", "ok", "x"]
    n = rng.randint(0, 9)
    words = [rng.choice(pool) for _ in range(n)]
    spaces = [rng.random() < 0.7 for _ in range(n)]
    ref = Doc(vocab, words=words, spaces=spaces)
    if rng.random() < 0.9:  # else: no entity annotation at all
        ents, i = [], 0
        while i < n:
            length = rng.randint(1, 3)
            if rng.random() < 0.4 and i + length <= n:
                ents.append(ref[i : i + length])
                i += length
            else:
                i += 1
        labelled = [pc.Span(ref, e.start, e.end, label=rng.choice(["PER", "LOC"])) for e in ents]
        unlabelled = [t for t in range(n) if not any(e.start <= t < e.end for e in ents)]
        missing = [ref[t : t + 1] for t in unlabelled if rng.random() < 0.3]
        ref.set_ents(labelled, missing=missing, default="outside")
    pred_words, pred_spaces = list(words), list(spaces)
    if n >= 2 and rng.random() < 0.3:  # merge two tokens: the general alignment
        j = rng.randrange(n - 1)
        pred_words[j : j + 2] = [words[j] + (" " if spaces[j] else "") + words[j + 1]]
        pred_spaces[j : j + 2] = [spaces[j + 1]]
    pred = Doc(vocab, words=pred_words, spaces=pred_spaces)
    return Example(pred, ref)


def test_aligned_ner_fast_path_equals_spacys_alignment():
    import random

    rng = random.Random(0)
    vocab = English().vocab
    fast = 0
    for _ in range(3000):
        eg = _random_example(rng, vocab)
        if len(eg.predicted) == len(eg.reference):
            fast += 1
        assert list(pc._aligned_ner(eg)) == eg.get_aligned_ner(), (
            [t.text for t in eg.reference], [t.text for t in eg.predicted],
            [(t.ent_iob_, t.ent_type_) for t in eg.reference],
        )
    assert fast > 1500  # most took the fast path


def test_aligned_ner_on_conll2003_train():
    from pathlib import Path

    from spacy_bilstm_crf.corpus import read_conll

    path = Path(__file__).resolve().parents[2] / "shared" / "data" / "conll2003" / "eng.train"
    if not path.is_file():
        pytest.skip(f"CoNLL-2003 not found at {path} (research-use data, never in the repo)")
    from spacy.tokens import Doc

    vocab = English().vocab
    for ref in read_conll(path, vocab=vocab, limit=3000):
        pred = Doc(vocab, words=[t.text for t in ref], spaces=[bool(t.whitespace_) for t in ref])
        eg = Example(pred, ref)
        assert list(pc._aligned_ner(eg)) == eg.get_aligned_ner()


@pytest.mark.parametrize(
    "ref_words,pred_words,ents",
    [
        # same text and number of tokens, other boundaries
        (["New", "York", "is"], ["Ne", "wYork", "is"], [(0, 2, "LOC")]),
        (["a", "New", "York"], ["aN", "ew", "York"], [(1, 3, "LOC")]),
    ],
)
def test_aligned_ner_other_boundaries(ref_words, pred_words, ents):
    from spacy.tokens import Doc

    vocab = English().vocab
    ref = Doc(vocab, words=ref_words, spaces=[False] * len(ref_words))
    ref.set_ents([pc.Span(ref, s, e, label=lab) for s, e, lab in ents], default="outside")
    pred = Doc(vocab, words=pred_words, spaces=[False] * len(pred_words))
    eg = Example(pred, ref)
    assert list(pc._aligned_ner(eg)) == eg.get_aligned_ner()
