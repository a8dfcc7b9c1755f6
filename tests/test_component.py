import pickle
import subprocess
import sys

import numpy
import pytest
import spacy
from spacy.lang.en import English
from spacy.tokens import Doc, Span
from spacy.training import Example
from spacy.util import load_model_from_path, make_tempdir
from thinc.api import fix_random_seed

from spacy_bilstm_crf.pipeline_component import BiLSTMAttnCRFRecognizer

TRAIN_DATA = [
    ("Who is Shaka Khan?", {"entities": [(7, 17, "PERSON")]}),
    ("I like London and Berlin.", {"entities": [(7, 13, "LOC"), (18, 24, "LOC")]}),
    ("Angela Merkel visited Paris last week.", {"entities": [(0, 13, "PERSON"), (22, 27, "LOC")]}),
    ("The weather in New York City is cold.", {"entities": [(15, 28, "LOC")]}),
    ("Nobody lives here.", {"entities": []}),
]

SMALL_MODEL = {
    "hidden_size": 32,
    "num_layers": 1,
    "attention_heads": 2,
    "dropout": 0.0,
    "input_dropout": 0.0,
    "attention_dropout": 0.0,
    "tok2vec": {
        "@architectures": "spacy.MultiHashEmbed.v2",
        "width": 32,
        "attrs": ["NORM", "PREFIX", "SUFFIX", "SHAPE"],
        "rows": [500, 100, 250, 250],
        "include_static_vectors": False,
    },
}


def make_examples(nlp, data=TRAIN_DATA):
    return [Example.from_dict(nlp.make_doc(text), annots) for text, annots in data]


def train(nlp, examples, n_iter=60):
    optimizer = nlp.initialize(get_examples=lambda: examples)
    losses = {}
    for _ in range(n_iter):
        losses = {}
        nlp.update(examples, sgd=optimizer, losses=losses)
    return losses


def ents_of(doc):
    return [(e.start_char, e.end_char, e.label_) for e in doc.ents]


@pytest.fixture(scope="module", params=["BILUO", "BIO"])
def trained(request):
    """A pipeline trained to fit TRAIN_DATA; shared by the tests of a module (read-only:
    a test that changes a setting restores it)."""
    fix_random_seed(0)  # module-scoped: set up before the per-test seed fixture
    nlp = English()
    nlp.add_pipe("bilstm_attn_crf", config={"model": SMALL_MODEL, "tag_scheme": request.param})
    losses = train(nlp, make_examples(nlp))
    return nlp, losses


def test_add_pipe_without_import_uses_entry_point():
    # a fresh interpreter that never imports our package: spaCy finds the factory
    code = (
        "import spacy; nlp = spacy.blank('en'); p = nlp.add_pipe('bilstm_attn_crf'); "
        "print(type(p).__name__)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "BiLSTMAttnCRFRecognizer"


def test_uninitialized_pipe_raises_E109():
    nlp = English()
    nlp.add_pipe("bilstm_attn_crf", config={"model": SMALL_MODEL})
    with pytest.raises(ValueError, match="E109"):
        nlp("Hello there")


def test_initialize_with_labels_and_add_label_after_init():
    nlp = English()
    ner = nlp.add_pipe("bilstm_attn_crf", config={"model": SMALL_MODEL})
    examples = make_examples(nlp)
    nlp.initialize(get_examples=lambda: examples)
    assert ner.labels == ("LOC", "PERSON")
    with pytest.raises(ValueError, match="BCE020"):
        ner.add_label("ORG")
    nlp2 = English()
    ner2 = nlp2.add_pipe("bilstm_attn_crf", config={"model": SMALL_MODEL})
    nlp2.initialize(get_examples=lambda: examples, )
    ner2.initialize(lambda: examples, nlp=nlp2, labels=["ORG", "LOC", "PERSON"])
    assert ner2.labels == ("LOC", "ORG", "PERSON")
    assert ner2.label_data == ["LOC", "ORG", "PERSON"]


def test_no_labels_and_no_examples_raise():
    nlp = English()
    nlp.add_pipe("bilstm_attn_crf", config={"model": SMALL_MODEL})
    no_ents = make_examples(nlp, [("Nothing here.", {"entities": []})])
    with pytest.raises(ValueError, match="BCE021"):
        nlp.initialize(get_examples=lambda: no_ents)
    nlp = English()
    nlp.add_pipe("bilstm_attn_crf", config={"model": SMALL_MODEL})
    with pytest.raises(TypeError, match="E930"):
        nlp.initialize(get_examples=lambda: [])


def test_bad_settings_raise():
    nlp = English()
    with pytest.raises(ValueError, match="BCE001"):
        nlp.add_pipe("bilstm_attn_crf", config={"tag_scheme": "IOBES"})
    with pytest.raises(ValueError, match="BCE025"):
        nlp.add_pipe("bilstm_attn_crf", config={"threshold": 1.5})


def test_overfitting_IO(trained):
    nlp, losses = trained
    assert losses["bilstm_attn_crf"] < 0.5
    for text, annots in TRAIN_DATA:
        doc = nlp(text)
        assert ents_of(doc) == [(s, e, lab) for s, e, lab in annots["entities"]], text
    texts = [text for text, _ in TRAIN_DATA]
    expected = [ents_of(nlp(t)) for t in texts]

    # disk round trip
    with make_tempdir() as tmp:
        nlp.to_disk(tmp)
        nlp2 = load_model_from_path(tmp)
        assert [ents_of(d) for d in nlp2.pipe(texts)] == expected
        # spacy.load in a fresh process predicts the same
        code = (
            "import spacy, json, sys; nlp = spacy.load(sys.argv[1]); "
            "print(json.dumps([[(e.start_char, e.end_char, e.label_) for e in nlp(t).ents] "
            "for t in json.loads(sys.argv[2])]))"
        )
        import json

        out = subprocess.run(
            [sys.executable, "-c", code, str(tmp), json.dumps(texts)],
            capture_output=True, text=True,
        )
        assert out.returncode == 0, out.stderr
        assert [[tuple(e) for e in ents] for ents in json.loads(out.stdout)] == expected

    # bytes round trip
    nlp_bytes = nlp.to_bytes()
    nlp3 = English()
    nlp3.add_pipe("bilstm_attn_crf", config={"model": SMALL_MODEL, "tag_scheme": nlp.get_pipe("bilstm_attn_crf").cfg["tag_scheme"]})
    nlp3.from_bytes(nlp_bytes)
    assert [ents_of(d) for d in nlp3.pipe(texts)] == expected

    # pickle round trip
    nlp4 = pickle.loads(pickle.dumps(nlp))
    assert [ents_of(d) for d in nlp4.pipe(texts)] == expected


def test_pipe_batch_sizes_agree(trained):
    nlp, _ = trained
    texts = [t for t, _ in TRAIN_DATA] * 3 + ["", "Berlin", "Shaka Khan and Angela Merkel in London"]
    single = [ents_of(nlp(t)) for t in texts]
    for batch_size in (1, 2, 7, 1000):
        assert [ents_of(d) for d in nlp.pipe(texts, batch_size=batch_size)] == single
    pipe = nlp.get_pipe("bilstm_attn_crf")
    old = pipe.cfg["max_batch_tokens"]
    pipe.cfg["max_batch_tokens"] = 3  # forces one doc per sub-batch
    try:
        assert [ents_of(d) for d in nlp.pipe(texts)] == single
    finally:
        pipe.cfg["max_batch_tokens"] = old


def test_confidences_are_stored_and_survive_serialization(trained):
    nlp, _ = trained
    pipe = nlp.get_pipe("bilstm_attn_crf")
    doc = nlp("Angela Merkel visited Paris last week.")
    group = doc.spans[pipe.spans_key]
    assert [(s.start, s.end, s.label_) for s in group] == [(e.start, e.end, e.label_) for e in doc.ents]
    scores = group.attrs["scores"]
    assert len(scores) == len(doc.ents) > 0
    assert all(0.0 <= s <= 1.0 for s in scores)
    assert min(scores) > 0.5  # trained to fit these sentences
    with make_tempdir() as tmp:
        nlp.to_disk(tmp)
        doc2 = spacy.load(tmp)("Angela Merkel visited Paris last week.")
        numpy.testing.assert_allclose(doc2.spans[pipe.spans_key].attrs["scores"], scores, atol=1e-5)
    # the scores survive the Doc's own serialization too
    doc3 = Doc(nlp.vocab).from_bytes(doc.to_bytes())
    numpy.testing.assert_allclose(doc3.spans[pipe.spans_key].attrs["scores"], scores, atol=1e-6)


def test_threshold_drops_low_confidence_entities(trained):
    nlp, _ = trained
    pipe = nlp.get_pipe("bilstm_attn_crf")
    text = "Shaka Khan visited New York City and Berlin."
    doc = nlp(text)
    scores = list(doc.spans[pipe.spans_key].attrs["scores"])
    if not scores:
        pytest.skip("no entity predicted for the probe text")
    pipe.cfg["threshold"] = float(min(scores)) + 1e-6
    try:
        doc2 = nlp(text)
        assert len(doc2.ents) == len(doc.ents) - sum(s <= min(scores) for s in scores)
        assert all(s >= pipe.cfg["threshold"] for s in doc2.spans[pipe.spans_key].attrs["scores"])
    finally:
        pipe.cfg["threshold"] = 0.0


def test_empty_docs_and_partial_annotation():
    nlp = English()
    nlp.add_pipe("bilstm_attn_crf", config={"model": SMALL_MODEL})
    examples = make_examples(nlp)
    # an example with missing annotation in the middle ("-" tags)
    doc = nlp.make_doc("Shaka Khan likes Berlin")
    partial = Example.from_dict(doc, {"entities": ["B-PERSON", "L-PERSON", "-", "-"]})
    empty = Example.from_dict(nlp.make_doc(""), {"entities": []})
    examples = examples + [partial, empty]
    optimizer = nlp.initialize(get_examples=lambda: examples)
    losses = {}
    nlp.update(examples, sgd=optimizer, losses=losses)
    assert numpy.isfinite(losses["bilstm_attn_crf"])
    nlp.update([empty], sgd=optimizer, losses=losses)  # only empty docs: no crash
    assert nlp("").ents == ()


def test_unknown_gold_label_raises_naming_example():
    nlp = English()
    nlp.add_pipe("bilstm_attn_crf", config={"model": SMALL_MODEL})
    examples = make_examples(nlp)
    optimizer = nlp.initialize(get_examples=lambda: examples)
    bad = make_examples(nlp, [("Apple is big.", {"entities": [(0, 5, "ORG")]})])
    with pytest.raises(ValueError, match="BCE022.*ORG"):
        nlp.update(bad, sgd=optimizer)


def test_is_a_trainable_pipe():
    nlp = English()
    pipe = nlp.add_pipe("bilstm_attn_crf")
    assert isinstance(pipe, BiLSTMAttnCRFRecognizer)
    assert nlp.get_pipe_meta("bilstm_attn_crf").assigns[0] == "doc.ents"


TRAIN_CFG = """
[paths]
train = null
dev = null
source = null

[system]
seed = 0
gpu_allocator = "pytorch"

[nlp]
lang = "en"
pipeline = {pipeline}
batch_size = 16

[components]
{components}

[corpora]

[corpora.train]
@readers = "spacy.Corpus.v1"
path = ${{paths.train}}

[corpora.dev]
@readers = "spacy.Corpus.v1"
path = ${{paths.dev}}

[training]
seed = ${{system.seed}}
gpu_allocator = ${{system.gpu_allocator}}
max_steps = {max_steps}
eval_frequency = 10
frozen_components = {frozen}
annotating_components = {annotating}
dev_corpus = "corpora.dev"
train_corpus = "corpora.train"

[training.batcher]
@batchers = "spacy.batch_by_words.v1"
size = 200
tolerance = 0.2

[training.optimizer]
@optimizers = "Adam.v1"
learn_rate = 0.01

[training.score_weights]
ents_f = 1.0

[initialize]
"""

NEW_CRF = """
[components.{name}]
factory = "bilstm_attn_crf"
spans_key = "{name}"

[components.{name}.model]
@architectures = "spacy-bilstm-crf.BiLSTMAttnCRF.v1"
hidden_size = 16
num_layers = 1
attention_heads = 2

[components.{name}.model.tok2vec]
@architectures = "spacy.MultiHashEmbed.v2"
width = 16
attrs = ["NORM", "SHAPE"]
rows = [500, 100]
include_static_vectors = false
"""


def _run(args, cwd):
    out = subprocess.run([sys.executable, "-m", "spacy", *args], cwd=cwd, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return out.stdout


def test_spacy_train_source_frozen_annotating_and_assemble(tmp_path):
    from spacy.tokens import DocBin

    nlp = English()
    db = DocBin()
    for eg in make_examples(nlp):
        db.add(eg.reference)
    db.to_disk(tmp_path / "train.spacy")
    paths = ["--paths.train", "train.spacy", "--paths.dev", "train.spacy"]

    # 1. spacy train from scratch, as an annotating component
    cfg1 = TRAIN_CFG.format(
        pipeline='["bilstm_attn_crf"]', components=NEW_CRF.format(name="bilstm_attn_crf"),
        max_steps=40, frozen="[]", annotating='["bilstm_attn_crf"]',
    )
    (tmp_path / "one.cfg").write_text(cfg1)
    _run(["train", "one.cfg", "--output", "one", *paths], tmp_path)
    first = spacy.load(tmp_path / "one" / "model-last")
    texts = [t for t, _ in TRAIN_DATA]
    expected = [ents_of(d) for d in first.pipe(texts)]

    # 2. sourced into another pipeline, frozen and annotating, beside a new component
    sourced = """
[components.bilstm_attn_crf]
source = "{src}"
"""
    cfg2 = TRAIN_CFG.format(
        pipeline='["bilstm_attn_crf", "second"]',
        components=sourced.format(src=tmp_path / "one" / "model-last") + NEW_CRF.format(name="second"),
        max_steps=20, frozen='["bilstm_attn_crf"]', annotating='["bilstm_attn_crf"]',
    )
    (tmp_path / "two.cfg").write_text(cfg2)
    _run(["train", "two.cfg", "--output", "two", *paths], tmp_path)
    second = spacy.load(tmp_path / "two" / "model-last")
    with second.select_pipes(enable=["bilstm_attn_crf"]):
        # the frozen component is unchanged
        assert [ents_of(d) for d in second.pipe(texts)] == expected

    # 3. spacy assemble, sourcing the trained component
    cfg3 = TRAIN_CFG.format(
        pipeline='["bilstm_attn_crf"]', components=sourced.format(src=tmp_path / "one" / "model-last"),
        max_steps=0, frozen="[]", annotating="[]",
    )
    (tmp_path / "three.cfg").write_text(cfg3)
    _run(["assemble", "three.cfg", "assembled", *paths], tmp_path)
    assembled = spacy.load(tmp_path / "assembled")
    assert [ents_of(d) for d in assembled.pipe(texts)] == expected


def test_confidence_temperature_scales_and_is_fitted_and_saved(trained):
    nlp, _ = trained
    pipe = nlp.get_pipe("bilstm_attn_crf")
    text = "Angela Merkel visited Paris last week."
    base = nlp(text)
    base_scores = numpy.asarray(base.spans[pipe.spans_key].attrs["scores"])
    assert pipe.cfg["confidence_temperature"] == 1.0
    try:
        pipe.cfg["confidence_temperature"] = 3.0
        hot = nlp(text)
        # decoding is unchanged; the confidences are softened towards uncertainty
        assert ents_of(hot) == ents_of(base)
        hot_scores = numpy.asarray(hot.spans[pipe.spans_key].attrs["scores"])
        assert (hot_scores < base_scores).all()
        # fitting picks a candidate by log loss and stores it in cfg (saved with the pipe)
        examples = make_examples(nlp)
        chosen = pipe.fit_confidence_temperature(examples, temperatures=[0.5, 1.0, 4.0])
        assert chosen in (0.5, 1.0, 4.0)
        # on the training data every prediction is right: the sharpest temperature wins
        assert chosen == 0.5
        assert pipe.cfg["confidence_temperature"] == 0.5
        with make_tempdir() as tmp:
            nlp.to_disk(tmp)
            assert spacy.load(tmp).get_pipe("bilstm_attn_crf").cfg["confidence_temperature"] == 0.5
        with pytest.raises(ValueError, match="BCE025"):
            pipe.fit_confidence_temperature(examples, temperatures=[0.0])
    finally:
        pipe.cfg["confidence_temperature"] = 1.0
    with pytest.raises(ValueError, match="BCE025"):
        English().add_pipe("bilstm_attn_crf", config={"confidence_temperature": 0})


def test_word_dropout_tok2vec_trains_and_round_trips():
    """spacy-bilstm-crf.TokenDropout.v1 around the embeddings: the pipeline still fits the
    data, drops nothing at inference (predictions repeat) and reloads from its config."""
    fix_random_seed(0)
    model = dict(SMALL_MODEL)
    model["tok2vec"] = {
        "@architectures": "spacy-bilstm-crf.TokenDropout.v1",
        "rate": 0.2,
        "layer": SMALL_MODEL["tok2vec"],
    }
    nlp = English()
    nlp.add_pipe("bilstm_attn_crf", config={"model": model})
    train(nlp, make_examples(nlp), n_iter=80)
    texts = [text for text, _ in TRAIN_DATA]
    expected = [[(s, e, lab) for s, e, lab in annots["entities"]] for _, annots in TRAIN_DATA]
    assert [ents_of(d) for d in nlp.pipe(texts)] == expected
    assert [ents_of(d) for d in nlp.pipe(texts)] == expected
    with make_tempdir() as tmp:
        nlp.to_disk(tmp)
        nlp2 = load_model_from_path(tmp)
        tok2vec_cfg = nlp2.config["components"]["bilstm_attn_crf"]["model"]["tok2vec"]
        assert tok2vec_cfg["@architectures"] == "spacy-bilstm-crf.TokenDropout.v1"
        assert [ents_of(d) for d in nlp2.pipe(texts)] == expected


CHAR_CNN_MODEL = {
    **SMALL_MODEL,
    "tok2vec": {
        "@layers": "concatenate.v1",
        "*": {
            "words": SMALL_MODEL["tok2vec"],
            "chars": {"@architectures": "spacy-bilstm-crf.CharCNN.v1", "width": 8, "char_width": 8},
        },
    },
}


@pytest.mark.parametrize("model_cfg", [SMALL_MODEL, CHAR_CNN_MODEL], ids=["head", "head+charcnn"])
def test_use_averages_reach_the_torch_weights(model_cfg):
    """With `use_averages`, spaCy evaluates and saves inside `nlp.use_params(averages)`:
    every torch module's weights (the BiLSTM/attention/CRF head, a CharCNN in the
    tok2vec) must be the averaged ones there, and come back after."""
    import torch
    from thinc.api import Adam, PyTorchShim

    fix_random_seed(0)
    nlp = English()
    ner = nlp.add_pipe("bilstm_attn_crf", config={"model": model_cfg})
    examples = make_examples(nlp)
    nlp.initialize(get_examples=lambda: examples)
    optimizer = Adam(0.01, use_averages=True)
    for _ in range(5):
        nlp.update(examples, sgd=optimizer)
    shims = [s for node in ner.model.walk() for s in node.shims if isinstance(s, PyTorchShim)]
    assert len(shims) == (1 if model_cfg is SMALL_MODEL else 2)
    params = {(s.id, n): p for s in shims for n, p in s._model.named_parameters()}
    current = {k: p.detach().clone() for k, p in params.items()}
    averaged = {k: torch.as_tensor(optimizer.averages[k]) for k in params}
    for shim in shims:  # each module was trained: its averages differ from its weights
        assert any(not torch.allclose(current[k], averaged[k]) for k in params if k[0] == shim.id)
    texts = [text for text, _ in TRAIN_DATA]
    scores_now = ner.model.predict([nlp.make_doc(t) for t in texts])
    with nlp.use_params(optimizer.averages):
        for key, param in params.items():
            assert torch.allclose(param, averaged[key]), key
        scores_avg = ner.model.predict([nlp.make_doc(t) for t in texts])
    for key, param in params.items():
        assert torch.equal(param, current[key]), key
    assert not all(numpy.allclose(a, b) for a, b in zip(scores_now, scores_avg))
    # averages of the thinc layers only (no key of a torch module): the torch weights stay
    others = {k: v for k, v in optimizer.averages.items() if k not in params}
    assert others
    with nlp.use_params(others):
        assert all(torch.equal(p, current[k]) for k, p in params.items())



def test_threshold_is_fitted_for_f1_and_saved(trained):
    """fit_threshold picks, of its candidates, the lowest threshold with the best entity F1
    by spaCy's scorer (the search `spacy find-threshold` does, with one model pass instead
    of one per candidate) and stores it in cfg."""
    nlp, _ = trained
    pipe = nlp.get_pipe("bilstm_attn_crf")
    texts = [text for text, _ in TRAIN_DATA] + ["Shaka Khan visited Berlin and London."]
    try:
        # a high temperature spreads the confidences of this tiny, over-fitted model
        pipe.cfg["confidence_temperature"] = 8.0
        predicted = []
        for i, doc in enumerate(nlp.pipe(texts)):
            group = doc.spans[pipe.spans_key]
            for span, score in zip(group, group.attrs["scores"]):
                predicted.append((float(score), i, span.start_char, span.end_char, span.label_))
        predicted.sort()
        scores = [p[0] for p in predicted]
        assert len(predicted) >= 4 and len(set(scores)) == len(scores), predicted
        # gold: every prediction except the two least confident, which become errors
        gold = {i: [] for i in range(len(texts))}
        for _, i, start, end, label in predicted[2:]:
            gold[i].append((start, end, label))
        held_out = [(text, {"entities": gold[i]}) for i, text in enumerate(texts)]
        candidates = [0.0] + scores
        brute = {}
        for t in candidates:
            pipe.cfg["threshold"] = t
            brute[t] = nlp.evaluate(make_examples(nlp, held_out))["ents_f"]
        best = max(brute.values())
        expected = min(t for t, f in brute.items() if f == best)
        assert expected == scores[2] and best == 1.0  # drops exactly the two errors
        pipe.cfg["threshold"] = 0.0
        chosen = pipe.fit_threshold(make_examples(nlp, held_out), thresholds=candidates)
        assert chosen == expected
        assert pipe.cfg["threshold"] == expected
        with make_tempdir() as tmp:
            nlp.to_disk(tmp)
            # (the config file keeps 10 decimals)
            assert spacy.load(tmp).get_pipe("bilstm_attn_crf").cfg["threshold"] == pytest.approx(expected)
        # the fit ignores the threshold already set: it sees every predicted entity
        pipe.cfg["threshold"] = 1.0
        assert pipe.fit_threshold(make_examples(nlp, held_out), thresholds=candidates) == expected
        # the default candidates: 0.0 to 0.95 in steps of 0.05
        assert pipe.fit_threshold(make_examples(nlp, held_out)) in [round(0.05 * i, 2) for i in range(20)]
        # numpy numbers are numbers too
        assert pipe.fit_threshold(make_examples(nlp, held_out), thresholds=numpy.zeros(1, "float32")) == 0.0
        for bad in ([1.5], [-0.1], [], [True], ["0.5"]):
            with pytest.raises(ValueError, match="BCE025"):
                pipe.fit_threshold(make_examples(nlp, held_out), thresholds=bad)
        with pytest.raises(ValueError, match="BCE025"):  # nothing predicted: nothing to fit
            pipe.fit_threshold(make_examples(nlp, [("nobody lives here", {"entities": []})]))
        # given nlp, the pipeline's config (the saved config.cfg) shows the fitted value
        config_before = nlp.config["components"]["bilstm_attn_crf"]["threshold"]
        assert pipe.fit_threshold(make_examples(nlp, held_out), thresholds=candidates, nlp=nlp) == expected
        assert nlp.config["components"]["bilstm_attn_crf"]["threshold"] == expected != config_before
        # predicted docs that already have entities (e.g. from `nlp(text)`): those are kept
        # as pre-set; where nothing is left to predict, the error says why
        covered = nlp.make_doc("Shaka Khan")
        covered.ents = [Span(covered, 0, 2, label="PERSON")]
        with pytest.raises(ValueError, match="BCE025.*already have entities.*nlp.make_doc"):
            pipe.fit_threshold([Example.from_dict(covered, {"entities": [(0, 10, "PERSON")]})])
    finally:
        pipe.cfg["threshold"] = 0.0
        pipe.cfg["confidence_temperature"] = 1.0
        nlp.get_pipe_config("bilstm_attn_crf")["threshold"] = 0.0


def test_variational_dropout_trains_and_survives_serialization():
    fix_random_seed(0)
    nlp = English()
    model = {**SMALL_MODEL, "num_layers": 2, "dropout": 0.2, "variational_dropout": True}
    nlp.add_pipe("bilstm_attn_crf", config={"model": model})
    examples = make_examples(nlp)
    losses = train(nlp, examples, n_iter=80)
    assert losses["bilstm_attn_crf"] < 1.0
    texts = [text for text, _ in TRAIN_DATA]
    expected = [ents_of(doc) for doc in nlp.pipe(texts)]
    assert expected == [
        [(s, e, label) for s, e, label in annots["entities"]] for _, annots in TRAIN_DATA
    ]
    with make_tempdir() as tmp:
        nlp.to_disk(tmp)
        nlp2 = spacy.load(tmp)
        assert nlp2.config["components"]["bilstm_attn_crf"]["model"]["variational_dropout"] is True
        assert [ents_of(doc) for doc in nlp2.pipe(texts)] == expected
