"""Shared and transformer inputs, partial labels and pre-set entities."""

import numpy
import pytest
import torch
from spacy.lang.en import English
from spacy.tokens import Span
from spacy.training import Example
from thinc.api import Config

from spacy_bilstm_crf.architectures import get_crf, pad_to_torch

TRAIN_DATA = [
    ("Who is Shaka Khan?", {"entities": [(7, 17, "PERSON")]}),
    ("I like London and Berlin.", {"entities": [(7, 13, "LOC"), (18, 24, "LOC")]}),
    ("Angela Merkel visited Paris last week.", {"entities": [(0, 13, "PERSON"), (22, 27, "LOC")]}),
]

SMALL_HEAD = {
    "hidden_size": 16,
    "num_layers": 1,
    "attention_heads": 2,
    "dropout": 0.0,
    "input_dropout": 0.0,
    "attention_dropout": 0.0,
    # pinned, so that these tests do not depend on the default tok2vec
    "tok2vec": {
        "@architectures": "spacy.MultiHashEmbed.v2",
        "width": 32,
        "attrs": ["NORM", "PREFIX", "SUFFIX", "SHAPE"],
        "rows": [500, 100, 250, 250],
        "include_static_vectors": False,
    },
}

LISTENER_CONFIG = """
[nlp]
lang = "en"
pipeline = ["tok2vec", "bilstm_attn_crf"]

[components]

[components.tok2vec]
factory = "tok2vec"

[components.tok2vec.model]
@architectures = "spacy.Tok2Vec.v2"

[components.tok2vec.model.embed]
@architectures = "spacy.MultiHashEmbed.v2"
width = 32
attrs = ["NORM", "PREFIX", "SUFFIX", "SHAPE"]
rows = [500, 100, 250, 250]
include_static_vectors = false

[components.tok2vec.model.encode]
@architectures = "spacy.MaxoutWindowEncoder.v2"
width = 32
depth = 1
window_size = 1
maxout_pieces = 2

[components.bilstm_attn_crf]
factory = "bilstm_attn_crf"

[components.bilstm_attn_crf.model]
@architectures = "spacy-bilstm-crf.BiLSTMAttnCRF.v1"
hidden_size = 16
num_layers = 1
attention_heads = 2
dropout = 0.0
input_dropout = 0.0
attention_dropout = 0.0

[components.bilstm_attn_crf.model.tok2vec]
@architectures = "spacy.Tok2VecListener.v1"
width = 32
upstream = "*"
"""


def make_examples(nlp, data=TRAIN_DATA):
    return [Example.from_dict(nlp.make_doc(text), annots) for text, annots in data]


def ents_of(doc):
    return [(e.start_char, e.end_char, e.label_) for e in doc.ents]


def upstream_params(model):
    """Copies of a thinc model's weights, its own and those of its torch shims."""
    params = {
        (node.id, name): numpy.array(node.get_param(name))
        for node in model.walk()
        for name in node.param_names
        if node.has_param(name)
    }
    for node in model.walk():
        for shim in node.shims:
            for name, value in shim._model.state_dict().items():
                params[(shim.id, name)] = value.detach().cpu().numpy().copy()
    return params


def test_tok2vec_listener_trains_upstream_and_replace_listeners():
    from spacy import util

    nlp = util.load_model_from_config(Config().from_str(LISTENER_CONFIG), auto_fill=True, validate=True)
    examples = make_examples(nlp)
    optimizer = nlp.initialize(lambda: examples)
    tok2vec = nlp.get_pipe("tok2vec")
    before = upstream_params(tok2vec.model)
    for _ in range(40):
        nlp.update(examples, sgd=optimizer)
    after = upstream_params(tok2vec.model)
    # the gradient reached the shared tok2vec: its weights moved
    assert any(not numpy.allclose(before[k], after[k]) for k in before)
    expected = [ents_of(nlp(t)) for t, _ in TRAIN_DATA]
    assert expected == [[(s, e, lab) for s, e, lab in a["entities"]] for _, a in TRAIN_DATA]
    # replace_listeners gives the component its own copy of the tok2vec
    nlp.replace_listeners("tok2vec", "bilstm_attn_crf", ["model.tok2vec"])
    nlp.remove_pipe("tok2vec")
    assert [ents_of(nlp(t)) for t, _ in TRAIN_DATA] == expected


def test_fits_with_a_listener_need_the_pipeline(tmp_path):
    """With a shared tok2vec, fitting the temperature and the threshold must see the
    token vectors the pipeline gives the component: without `nlp` it is a coded error,
    with it the fitted threshold is the one a search over full-pipeline runs finds."""
    from spacy import util
    from spacy.tokens import DocBin

    from spacy_bilstm_crf.callbacks import make_calibrate_on_save

    nlp = util.load_model_from_config(Config().from_str(LISTENER_CONFIG), auto_fill=True, validate=True)
    examples = make_examples(nlp)
    optimizer = nlp.initialize(lambda: examples)
    for _ in range(12):  # a partial fit: confidences spread over (0, 1)
        nlp.update(examples, sgd=optimizer)
    pipe = nlp.get_pipe("bilstm_attn_crf")
    dev = make_examples(nlp)
    with pytest.raises(ValueError, match=r"\[BCE028\].*tok2vec-listener"):
        pipe.fit_confidence_temperature(dev)
    with pytest.raises(ValueError, match=r"\[BCE028\]"):
        pipe.fit_threshold(dev)
    with pytest.raises(ValueError, match=r"\[BCE029\]"):
        pipe.fit_threshold(dev, nlp=English())
    candidates = [0.0, 0.3, 0.5, 0.7, 0.9, 0.99]
    best, best_f = None, -1.0
    for t in candidates:  # what `spacy find-threshold` does: one full-pipeline run each
        pipe.cfg["threshold"] = t
        f = nlp.evaluate(make_examples(nlp))["ents_f"] or 0.0
        if f > best_f + 1e-9:
            best, best_f = t, f
    pipe.cfg["threshold"] = 0.0
    assert pipe.fit_threshold(dev, nlp=nlp, thresholds=candidates) == best
    # the examples' own docs are left as they were (the upstream ran on copies)
    assert all(eg.predicted.tensor.size == 0 for eg in dev)
    # the training callback passes the pipeline too
    temperature = pipe.fit_confidence_temperature(dev, nlp=nlp)
    pipe.cfg["confidence_temperature"] = 123.0
    DocBin(docs=[eg.reference for eg in dev]).to_disk(tmp_path / "dev.spacy")
    nlp.config["paths"]["dev"] = str(tmp_path / "dev.spacy")
    nlp.config["paths"]["train"] = str(tmp_path / "dev.spacy")
    make_calibrate_on_save()(nlp)
    assert pipe.cfg["confidence_temperature"] == temperature


def test_fit_threshold_counts_entities_set_upstream(monkeypatch):
    """Entities already on the docs (e.g. from an upstream entity_ruler) are in the
    pipeline's output whatever the threshold, so the F1 that fit_threshold maximizes must
    count them, as `nlp.evaluate` / `spacy find-threshold` do. Here 3 such entities are
    correct, of 6 gold; ours: one at 0.9 (correct) and three at 0.5 (one correct).
    Counting the upstream entities, dropping the 0.5 group pays (F1 0.769 -> 0.800);
    ignoring them, it would not (0.400 -> 0.286)."""
    nlp = English()
    pipe = nlp.add_pipe("bilstm_attn_crf", config={"model": SMALL_HEAD})
    nlp.initialize(lambda: make_examples(nlp))
    correct = [True, True, False, False]
    scores = [0.9, 0.5, 0.5, 0.5]
    monkeypatch.setattr(
        pipe, "_held_out_predictions", lambda *args, **kwargs: ([("batch", correct)], 6, [True] * 3)
    )
    monkeypatch.setattr(pipe, "_flat", lambda decoded, t: [(None, s) for s in scores])
    assert pipe.fit_threshold(make_examples(nlp), thresholds=[0.0, 0.6]) == 0.6


@pytest.fixture(scope="module")
def tiny_bert_dir(tmp_path_factory):
    transformers = pytest.importorskip("transformers")
    pytest.importorskip("spacy_transformers")
    path = tmp_path_factory.mktemp("tiny-bert")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + sorted(
        {w.lower().strip("?.") for t, _ in TRAIN_DATA for w in t.split()} | set("abcdefghijklmnopqrstuvwxyz.?")
    )
    (path / "vocab.txt").write_text("\n".join(vocab) + "\n")
    config = transformers.BertConfig(
        vocab_size=len(vocab), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=64,
    )
    transformers.BertModel(config).save_pretrained(path)
    transformers.BertTokenizerFast(vocab_file=str(path / "vocab.txt")).save_pretrained(path)
    return path


TRANSFORMER_CONFIG = """
[nlp]
lang = "en"
pipeline = ["transformer", "bilstm_attn_crf"]

[components]

[components.transformer]
factory = "transformer"
max_batch_items = 512

[components.transformer.model]
@architectures = "spacy-transformers.TransformerModel.v3"
name = "{name}"
mixed_precision = false

[components.transformer.model.get_spans]
@span_getters = "spacy-transformers.strided_spans.v1"
window = 32
stride = 24

[components.transformer.model.tokenizer_config]
use_fast = true

[components.bilstm_attn_crf]
factory = "bilstm_attn_crf"

[components.bilstm_attn_crf.model]
@architectures = "spacy-bilstm-crf.BiLSTMAttnCRF.v1"
hidden_size = 16
num_layers = 1
attention_heads = 2

[components.bilstm_attn_crf.model.tok2vec]
@architectures = "spacy-transformers.TransformerListener.v1"
grad_factor = 1.0

[components.bilstm_attn_crf.model.tok2vec.pooling]
@layers = "reduce_mean.v1"
"""


def test_transformer_listener(tiny_bert_dir):
    from spacy import util

    cfg = Config().from_str(TRANSFORMER_CONFIG.replace("{name}", str(tiny_bert_dir)))
    nlp = util.load_model_from_config(cfg, auto_fill=True, validate=True)
    examples = make_examples(nlp)
    optimizer = nlp.initialize(lambda: examples)
    trf = nlp.get_pipe("transformer")
    before = upstream_params(trf.model)
    losses = {}
    for _ in range(3):
        nlp.update(examples, sgd=optimizer, losses=losses)
    after = upstream_params(trf.model)
    assert numpy.isfinite(losses["bilstm_attn_crf"])
    assert any(not numpy.allclose(before[k], after[k]) for k in before)
    doc = nlp("Angela Merkel visited Paris last week.")
    for ent in doc.ents:  # valid spans
        assert 0 <= ent.start < ent.end <= len(doc)


def _loc_probability(nlp, text, i):
    """The CRF marginal probability that token i is (part of) a LOC entity."""
    pipe = nlp.get_pipe("bilstm_attn_crf")
    doc = nlp.make_doc(text)
    E, _ = pad_to_torch(pipe.model.ops, pipe.model.predict([doc]), torch.device("cpu"))
    marginals = get_crf(pipe.model).marginals(E)[0, i]
    loc = [t for t, tag in enumerate(pipe.tag_scheme.tags) if tag.endswith("-LOC")]
    return float(marginals[loc].sum())


def test_partial_annotation_is_not_learned_as_O():
    """The same sentences with the city unannotated ("-") or annotated as "O": missing
    annotation must leave the model free to predict the entity that the fully annotated
    sentences teach, while "O" teaches it that there is none."""
    full = [
        ("We saw Rome today.", ["O", "O", "U-LOC", "O", "O"]),
        ("They left Madrid today.", ["O", "O", "U-LOC", "O", "O"]),
        ("Paris is nice.", ["U-LOC", "O", "O", "O"]),
        ("Berlin is nice.", ["U-LOC", "O", "O", "O"]),
    ]
    unannotated = [
        ("We saw Paris today.", ["O", "O", "-", "O", "O"]),
        ("They left Berlin today.", ["O", "O", "-", "O", "O"]),
    ] * 3
    as_o = [(t, [("O" if tag == "-" else tag) for tag in tags]) for t, tags in unannotated]
    trained = {}
    for name, data in (("partial", full + unannotated), ("as_O", full + as_o)):
        nlp = English()
        nlp.add_pipe("bilstm_attn_crf", config={"model": SMALL_HEAD})
        examples = [Example.from_dict(nlp.make_doc(t), {"entities": tags}) for t, tags in data]
        optimizer = nlp.initialize(lambda examples=examples: examples)
        for _ in range(60):
            nlp.update(examples, sgd=optimizer)
        trained[name] = nlp
    for text, _ in unannotated[:2]:
        p_partial = _loc_probability(trained["partial"], text, 2)
        p_o = _loc_probability(trained["as_O"], text, 2)
        assert [e.label_ for e in trained["partial"](text).ents] == ["LOC"], (text, p_partial)
        assert trained["as_O"](text).ents == (), (text, p_o)
        assert p_partial > 0.5 > p_o


def test_preset_entities_are_kept_and_decoding_fits_around_them():
    nlp = English()
    ruler = nlp.add_pipe("entity_ruler")
    ruler.add_patterns([
        {"label": "PRODUCT", "pattern": "Khan"},  # splits a trained PERSON entity
        {"label": "LOC", "pattern": "Paris"},
    ])
    nlp.add_pipe("bilstm_attn_crf", config={"model": SMALL_HEAD})
    examples = make_examples(nlp)
    with nlp.select_pipes(disable=["entity_ruler"]):
        optimizer = nlp.initialize(lambda: examples)
        for _ in range(60):
            nlp.update(examples, sgd=optimizer)
        assert ents_of(nlp("Who is Shaka Khan?")) == [(7, 17, "PERSON")]
    doc = nlp("Who is Shaka Khan?")
    ents = ents_of(doc)
    assert (13, 17, "PRODUCT") in ents  # kept
    for start, end, _ in ents:  # nothing overlaps or splits it
        assert end <= 13 or start >= 13
    key = nlp.get_pipe("bilstm_attn_crf").spans_key
    # pre-set entities get no confidence of ours
    assert all(s.label_ != "PRODUCT" for s in doc.spans[key])
    doc = nlp("Angela Merkel visited Paris last week.")
    assert (22, 27, "LOC") in ents_of(doc)
    assert [(s.start_char, s.end_char) for s in doc.spans[key]] == [(0, 13)]


def test_preset_entity_clamp_from_user_doc():
    nlp = English()
    nlp.add_pipe("bilstm_attn_crf", config={"model": SMALL_HEAD})
    examples = make_examples(nlp)
    optimizer = nlp.initialize(lambda: examples)
    for _ in range(40):
        nlp.update(examples, sgd=optimizer)
    doc = nlp.make_doc("I like London and Berlin.")
    doc.ents = [Span(doc, 2, 5, label="EVENT")]  # "London and Berlin"
    doc = nlp.get_pipe("bilstm_attn_crf")(doc)
    assert ents_of(doc) == [(7, 24, "EVENT")]


def _one_sgd_step(scale):
    from spacy import util
    from thinc.api import SGD, fix_random_seed

    fix_random_seed(0)
    config = Config().from_str(LISTENER_CONFIG)
    config["components"]["bilstm_attn_crf"]["learn_rate_scale"] = scale
    nlp = util.load_model_from_config(config, auto_fill=True, validate=True)
    examples = make_examples(nlp)
    nlp.initialize(lambda: examples)
    own, upstream = nlp.get_pipe("bilstm_attn_crf").model, nlp.get_pipe("tok2vec").model
    before = (upstream_params(own), upstream_params(upstream))
    sgd = SGD(0.01, L2=0.0, grad_clip=0.0)
    nlp.update(examples, sgd=sgd)
    own_after = upstream_params(own)
    # spaCy's Language.update applies a shared tok2vec's gradient one update late (its
    # finish_update runs before its listeners backpropagate): the second update applies
    # the first one's gradient, which is the same in both pipelines
    nlp.update(examples, sgd=sgd)
    after = (own_after, upstream_params(upstream))
    # float weights only (the CRF's constraint masks are boolean buffers)
    own_delta = {k: after[0][k] - before[0][k] for k in before[0] if before[0][k].dtype.kind == "f"}
    upstream_delta = {k: after[1][k] - before[1][k] for k in before[1] if before[1][k].dtype.kind == "f"}
    return own_delta, upstream_delta


def test_learn_rate_scale_scales_only_the_components_own_weights():
    own_1, up_1 = _one_sgd_step(1.0)
    own_10, up_10 = _one_sgd_step(10.0)
    # node ids differ between the two pipelines: compare by position
    own_1_values, own_10_values = list(own_1.values()), list(own_10.values())
    assert len(own_1_values) == len(own_10_values) and own_1_values
    moved = [i for i, d in enumerate(own_1_values) if numpy.abs(d).max() > 1e-7]
    assert moved  # the BiLSTM/attention/CRF weights moved
    for i in moved:
        numpy.testing.assert_allclose(own_10_values[i], 10.0 * own_1_values[i], rtol=1e-3, atol=1e-6)
    # the shared tok2vec is updated by its own component, at the optimizer's rate
    up_1_values, up_10_values = list(up_1.values()), list(up_10.values())
    assert any(numpy.abs(d).max() > 1e-7 for d in up_1_values)
    for a, b in zip(up_1_values, up_10_values):
        numpy.testing.assert_allclose(b, a, rtol=1e-3, atol=1e-6)


@pytest.mark.parametrize("bad", [0, -1.0, float("inf"), float("nan"), "10", True])
def test_learn_rate_scale_rejects_bad_values(bad):
    from spacy.lang.en import English

    from spacy_bilstm_crf.pipeline_component import BiLSTMAttnCRFRecognizer

    nlp = English()
    if bad in (0, -1.0):  # through the config too
        with pytest.raises(ValueError, match="BCE025.*learn_rate_scale"):
            nlp.add_pipe("bilstm_attn_crf", config={"learn_rate_scale": bad})
    model = nlp.add_pipe("bilstm_attn_crf").model
    with pytest.raises(ValueError, match="BCE025.*learn_rate_scale"):
        BiLSTMAttnCRFRecognizer(nlp.vocab, model, learn_rate_scale=bad)
