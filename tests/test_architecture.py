import numpy
import pytest
import torch
from spacy.lang.en import English
from spacy.util import registry
from thinc.api import Adam, ArgsKwargs, Model, NumpyOps

from spacy_bilstm_crf.architectures import (
    convert_inputs,
    convert_outputs,
    get_crf,
    get_torch_model,
    predict_emissions,
    set_tag_scheme,
)
from spacy_bilstm_crf.pytorch_model import BiLSTMAttnCRFModel
from spacy_bilstm_crf.tag_scheme import TagScheme

WIDTH = 8


def build(scheme=None):
    tok2vec = registry.architectures.get("spacy.MultiHashEmbed.v2")(
        width=WIDTH, attrs=["NORM", "SHAPE"], rows=[100, 50], include_static_vectors=False
    )
    model = registry.architectures.get("spacy-bilstm-crf.BiLSTMAttnCRF.v1")(
        tok2vec=tok2vec, hidden_size=8, num_layers=1, attention_heads=2, dropout=0.0,
        input_dropout=0.0, attention_dropout=0.0,
    )
    set_tag_scheme(model, scheme or TagScheme("BILUO", ["LOC", "PER"]))
    return model


@pytest.fixture
def docs():
    nlp = English()
    return [nlp.make_doc(t) for t in ["Hello Berlin", "", "Angela Merkel went to Paris today"]]


def test_model_builds_lazily_and_infers_dims(docs):
    model = build()
    head = model.get_ref("head")
    assert not head.layers  # no torch module before initialize
    assert head.has_dim("nI") is None  # declared, not yet known
    model.initialize(X=docs)
    assert head.get_dim("nI") == WIDTH
    assert head.get_dim("nO") == 9  # O + 4 BILUO tags x 2 labels
    torch_model = get_torch_model(model)
    assert isinstance(torch_model, BiLSTMAttnCRFModel)
    # the CRF is a submodule, so the shim's optimizer sees its transitions
    names = [name for name, _ in torch_model.named_parameters()]
    assert "crf.transitions" in names and "crf.start_transitions" in names
    assert get_crf(model).allowed_transitions.shape == (9, 9)
    Y = model.predict(docs)
    assert [y.shape for y in Y] == [(2, 9), (0, 9), (6, 9)]


def test_input_and_output_converters_round_trip():
    torch_model = BiLSTMAttnCRFModel(input_size=WIDTH, num_tags=3, hidden_size=4, attention_heads=0)
    from thinc.api import PyTorchWrapper_v2

    wrapped: Model = PyTorchWrapper_v2(torch_model, convert_inputs=convert_inputs, convert_outputs=convert_outputs)
    wrapped.set_dim("nI", WIDTH)
    ops = NumpyOps()
    X = [ops.xp.random.uniform(-1, 1, (n, WIDTH)).astype("f") for n in (3, 0, 5)]
    args, get_dX = convert_inputs(wrapped, X, is_train=True)
    assert isinstance(args, ArgsKwargs)
    padded, lengths = args.args
    assert tuple(padded.shape) == (3, 5, WIDTH) and lengths.tolist() == [3, 0, 5]
    assert padded.requires_grad
    numpy.testing.assert_allclose(padded[2].detach().numpy(), X[2])
    assert float(padded[0, 3:].detach().abs().sum()) == 0.0
    # backward conversion unpads
    grad = torch.ones_like(padded)
    dX = get_dX(ArgsKwargs(args=(grad, None), kwargs={}))
    assert [d.shape for d in dX] == [(3, WIDTH), (0, WIDTH), (5, WIDTH)]
    # outputs: per-doc arrays, and their gradient is padded back
    Yt = torch.zeros((3, 5, 3), requires_grad=True)
    Y, get_dYt = convert_outputs(wrapped, (X, Yt), is_train=True)
    assert [y.shape for y in Y] == [(3, 3), (0, 3), (5, 3)]
    dYt = get_dYt([ops.alloc2f(*y.shape) + 1 for y in Y])
    assert tuple(dYt.kwargs["grad_tensors"].shape) == (3, 5, 3)
    assert float(dYt.kwargs["grad_tensors"][0, 3:].sum()) == 0.0


def test_model_learns_emissions(docs):
    """The wrapped model learns to output a target (thinc's check_learns_zero_output)."""
    model = build()
    model.initialize(X=docs)
    optimizer = Adam(0.01)
    Y0 = model.predict(docs)
    prev = sum(float((y**2).sum()) for y in Y0)
    for _ in range(30):
        Y, backprop = model.begin_update(docs)
        backprop([y.copy() for y in Y])  # gradient of 0.5 * sum(y**2)
        model.finish_update(optimizer)
    now = sum(float((y**2).sum()) for y in model.predict(docs))
    assert now < prev * 0.5


def test_model_to_bytes_needs_a_built_head(docs):
    model = build()
    model.initialize(X=docs)
    data = model.to_bytes()
    model2 = build()
    from spacy_bilstm_crf.architectures import build_head

    build_head(model2.get_ref("head"), WIDTH)
    model2.from_bytes(data)
    for a, b in zip(model.predict(docs), model2.predict(docs)):
        numpy.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_architecture_errors_are_coded(docs):
    model = build()
    with pytest.raises(ValueError, match="BCE060"):
        get_crf(model)  # not built yet
    model.initialize(X=docs)
    with pytest.raises(ValueError, match="BCE061"):
        set_tag_scheme(model, TagScheme("BIO", ["LOC"]))  # built for 9 tags, not 3
    with pytest.raises(ValueError, match="BCE062"):
        model.get_ref("head").predict([numpy.zeros((2, WIDTH + 1), dtype="f")])


WINDOW_CONFIG = """
[model]
@architectures = "spacy-bilstm-crf.BiLSTMAttnCRF.v1"
hidden_size = 8
num_layers = 1
attention_heads = 2
window = {window}

[model.tok2vec]
@architectures = "spacy.MultiHashEmbed.v2"
width = 8
attrs = ["NORM"]
rows = [100]
include_static_vectors = false
"""


@pytest.mark.parametrize("window,expected", [("null", None), ("0", None), ("128", 128)])
def test_config_window_null_or_zero_means_full_attention(docs, window, expected):
    # README: `window = 0` or `null` in a config gives full attention; both must pass
    # spaCy's config validation against the architecture's signature.
    from thinc.api import Config

    cfg = Config().from_str(WINDOW_CONFIG.format(window=window))
    model = registry.resolve(cfg, validate=True)["model"]
    set_tag_scheme(model, TagScheme("BILUO", ["LOC", "PER"]))
    model.initialize(X=docs)
    assert get_torch_model(model).emitter.attention.window == expected
    assert [y.shape for y in model.predict(docs)] == [(2, 9), (0, 9), (6, 9)]


def test_predict_emissions_equals_model_predict(docs):
    """The decoder's fast path gives model.predict's emissions, padded with zeros, and
    leaves the torch module in the mode it found it in."""
    model = build()
    model.initialize(X=docs)
    expected = model.predict(docs)
    torch_model = get_torch_model(model)
    for training in (True, False):
        torch_model.train(training)
        E, lengths = predict_emissions(model, docs)
        assert torch_model.training is training
        assert lengths.tolist() == [2, 0, 6] and E.shape == (3, 6, 9)
        assert not E.requires_grad
        for i, y in enumerate(expected):
            numpy.testing.assert_allclose(E[i, : len(y)].numpy(), y, rtol=1e-5, atol=1e-6)
            assert (E[i, len(y) :] == 0).all()


def test_predict_emissions_checks_the_tok2vec_rows(docs):
    embed = registry.architectures.get("spacy.MultiHashEmbed.v2")(
        width=WIDTH, attrs=["NORM"], rows=[100], include_static_vectors=False
    )

    def forward(m, X, is_train):  # one row too few for each doc
        Y, backprop = m.layers[0](X, is_train)
        return [y[:-1] for y in Y], backprop

    short = Model("short", forward, layers=[embed], init=lambda m, X=None, Y=None: embed.initialize(X=X))
    model = registry.architectures.get("spacy-bilstm-crf.BiLSTMAttnCRF.v1")(
        tok2vec=short, hidden_size=8, num_layers=1, attention_heads=2
    )
    set_tag_scheme(model, TagScheme("BILUO", ["LOC", "PER"]))
    model.initialize(X=[docs[2]])
    with pytest.raises(ValueError, match="BCE026"):
        predict_emissions(model, [docs[2]])


@pytest.mark.parametrize("value,expected", [("false", False), ("true", True)])
def test_config_variational_dropout(docs, value, expected):
    from thinc.api import Config

    cfg = Config().from_str(
        WINDOW_CONFIG.format(window=256).replace(
            "window = 256", f"window = 256\nnum_layers = 2\nvariational_dropout = {value}"
        ).replace("num_layers = 1\n", "")
    )
    model = registry.resolve(cfg, validate=True)["model"]
    set_tag_scheme(model, TagScheme("BILUO", ["LOC", "PER"]))
    model.initialize(X=docs)
    emitter = get_torch_model(model).emitter
    assert emitter.variational_dropout is expected
    assert isinstance(emitter.lstm, torch.nn.ModuleList) is expected
    assert [y.shape for y in model.predict(docs)] == [(2, 9), (0, 9), (6, 9)]
    Y, backprop = model.begin_update(docs)
    backprop([y.copy() for y in Y])


def token_dropout(rate):
    embed = registry.architectures.get("spacy.MultiHashEmbed.v2")(
        width=WIDTH, attrs=["NORM", "SHAPE"], rows=[100, 50], include_static_vectors=False
    )
    return registry.architectures.get("spacy-bilstm-crf.TokenDropout.v1")(layer=embed, rate=rate)


def test_token_dropout_drops_whole_tokens_only_in_training(docs):
    layer = token_dropout(0.5)
    layer.initialize(X=docs)
    assert layer.get_dim("nO") == WIDTH
    inner = layer.layers[0]
    many = docs * 20
    clean = inner.predict(many)
    assert all(numpy.array_equal(a, b) for a, b in zip(layer.predict(many), clean))
    Y, backprop = layer(many, is_train=True)
    rows = numpy.concatenate(Y)
    ref = numpy.concatenate(clean)
    dropped = numpy.all(rows == 0, axis=1)
    # each token is either dropped whole or kept and scaled by 1 / (1 - rate)
    assert numpy.allclose(rows[~dropped], 2.0 * ref[~dropped], atol=1e-6)
    assert 0.3 < dropped.mean() < 0.7  # 160 tokens at rate 0.5
    # no gradient reaches the embeddings of dropped tokens: replace the embedding layer
    # by one that records the gradient it receives
    captured = []
    layer.layers[0] = Model("spy", lambda m, X, is_train: (inner.predict(X), captured.extend))
    Y, backprop = layer(many, is_train=True)
    backprop([numpy.ones_like(y) for y in Y])
    dropped = numpy.all(numpy.concatenate(Y) == 0, axis=1)
    grads = numpy.concatenate(captured)
    assert numpy.array_equal(numpy.all(grads == 0, axis=1), dropped)
    assert numpy.allclose(grads[~dropped], 2.0) and 0 < dropped.sum() < len(grads)


def test_token_dropout_rate_is_not_spacys_dropout(docs):
    from thinc.api import set_dropout_rate

    layer = token_dropout(0.25)
    layer.initialize(X=docs)
    set_dropout_rate(layer, 0.0)  # what spaCy does with [training] dropout
    Y, _ = layer(docs, is_train=True)
    dropped = numpy.all(numpy.concatenate(Y) == 0, axis=1)
    assert 0 < dropped.sum() < len(dropped)
    # the rate is the layer's setting, not something its saved weights bring along
    other = token_dropout(0.0)
    other.initialize(X=docs)
    other.from_bytes(layer.to_bytes())
    Y, _ = other(docs, is_train=True)
    assert all(numpy.array_equal(a, b) for a, b in zip(Y, layer.predict(docs)))
    layer = token_dropout(0.0)
    layer.initialize(X=docs)
    Y, _ = layer(docs, is_train=True)
    assert all(numpy.array_equal(a, b) for a, b in zip(Y, layer.layers[0].predict(docs)))


@pytest.mark.parametrize("rate", [-0.1, 1.0, 1.5, True, "0.1"])
def test_token_dropout_bad_rate_is_a_coded_error(rate):
    with pytest.raises(ValueError, match="BCE063"):
        token_dropout(rate)
