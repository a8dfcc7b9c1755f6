"""spacy-bilstm-crf.CharacterEmbed.v1 (spaCy's character embedding with a faster
byte lookup) and the torch matrix products of the tok2vec (`TorchGemmOps`)."""

from importlib.metadata import entry_points

import numpy
import pytest
import torch
from spacy.lang.en import English
from spacy.ml.models.tok2vec import CharacterEmbed as spacy_character_embed
from spacy.tokens import Doc
from spacy.util import registry
from thinc.api import NumpyOps, fix_random_seed

from spacy_bilstm_crf import char_cnn, char_embed
from spacy_bilstm_crf.architectures import TorchGemmOps, build_bilstm_attn_crf_v1, use_torch_gemm
from spacy_bilstm_crf.char_embed import build_character_embed_v1, docs_to_utf8_ids, utf8_row

WORDS = ["a", "ab", "abc", "Berlin", "é", "日本語", "😀x", "x" * 20, " ", "\n", "U.S.", "naïve-ish", "--"]
SETTINGS = {"width": 12, "rows": 100, "nM": 4, "nC": 8, "include_static_vectors": False, "feature": "ORTH"}


@pytest.fixture
def nlp():
    return English()


def _docs(nlp):
    return [
        nlp("Angela Merkel visited Paris , Paris and Paris again ."),
        Doc(nlp.vocab, words=[]),
        Doc(nlp.vocab, words=WORDS),
        nlp("a a a b"),
    ]


def _char_node(model):
    return next(node for node in model.walk() if node.name == "charembed")


def _pair(nlp):
    """spaCy's layer and ours with the same (random, non-zero) weights."""
    fix_random_seed(0)
    theirs = spacy_character_embed(**SETTINGS)
    ours = build_character_embed_v1(**SETTINGS)
    docs = _docs(nlp)
    theirs.initialize(X=docs)
    ours.initialize(X=docs)
    E = _char_node(theirs).get_param("E")
    _char_node(theirs).set_param("E", numpy.random.default_rng(0).normal(size=E.shape).astype("float32"))
    ours.from_bytes(theirs.to_bytes())
    return theirs, ours, docs


def test_registered_with_entry_point():
    eps = {ep.name: ep for ep in entry_points(group="spacy_architectures")}
    assert eps["spacy-bilstm-crf.CharacterEmbed.v1"].load() is build_character_embed_v1
    assert registry.architectures.get("spacy-bilstm-crf.CharacterEmbed.v1") is build_character_embed_v1


@pytest.mark.parametrize("nC", [1, 2, 3, 8, 16])
def test_byte_rows_are_spacys(nlp, nC):
    doc = Doc(nlp.vocab, words=WORDS)
    expected = doc.to_utf8_array(nr_char=nC)
    assert numpy.array_equal(
        numpy.frombuffer(b"".join(utf8_row(w, nC) for w in WORDS), dtype=numpy.uint8).reshape(len(WORDS), nC),
        expected,
    )
    layer = build_character_embed_v1(**{**SETTINGS, "nC": nC})
    # twice: the second time from the cache
    for _ in range(2):
        assert numpy.array_equal(docs_to_utf8_ids(_char_node(layer), [doc]), expected)


def test_same_structure_weights_and_outputs_as_spacys_layer(nlp):
    theirs, ours, docs = _pair(nlp)
    assert [n.name for n in ours.walk()] == [n.name for n in theirs.walk()]
    for Y_theirs, Y_ours in zip(theirs.predict(docs), ours.predict(docs)):
        assert Y_ours.shape == Y_theirs.shape
        assert numpy.allclose(Y_ours, Y_theirs, atol=1e-6)
    # and the other way round: our weights load into spaCy's layer
    fix_random_seed(1)
    other = spacy_character_embed(**SETTINGS)
    other.initialize(X=docs)
    other.from_bytes(ours.to_bytes())
    assert all(numpy.allclose(a, b, atol=1e-6) for a, b in zip(other.predict(docs), ours.predict(docs)))


def test_empty_doc_in_a_batch(nlp):
    _, ours, docs = _pair(nlp)
    Y, backprop = ours.begin_update(docs)
    assert [y.shape for y in Y] == [(len(d), SETTINGS["width"]) for d in docs]
    assert Y[1].shape == (0, SETTINGS["width"])
    backprop([numpy.ones_like(y) for y in Y])


def _gradients(layer, docs, dY):
    node = _char_node(layer)
    node.set_grad("E", numpy.zeros_like(node.get_param("E")))
    _, backprop = node.begin_update(docs)
    backprop(dY)
    return node.get_grad("E")


def test_gradient_is_spacys(nlp):
    """By default the byte table's gradient is exactly what spaCy's layer computes."""
    theirs, ours, docs = _pair(nlp)
    rng = numpy.random.default_rng(1)
    dY = [rng.normal(size=(len(d), 4 * 8)).astype("float32") for d in docs]
    expected = _gradients(theirs, docs, dY)
    assert numpy.abs(expected).sum() > 0
    assert numpy.allclose(_gradients(ours, docs, dY), expected, atol=1e-6)


def test_gradient_can_sum_every_token(nlp):
    """With sum_repeated_bytes, the gradient sums over all tokens and positions,
    repeated bytes within a doc included (spaCy's keeps one update per doc)."""
    theirs, _, docs = _pair(nlp)
    ours = build_character_embed_v1(**SETTINGS, sum_repeated_bytes=True).from_bytes(theirs.to_bytes())
    node = _char_node(ours)
    nC, nM = node.get_dim("nC"), node.get_dim("nM")
    rng = numpy.random.default_rng(1)
    dY = [rng.normal(size=(len(d), nC * nM)).astype("float32") for d in docs]
    expected = numpy.zeros(node.get_param("E").shape, dtype="float64")
    for doc, d in zip(docs, dY):
        ids = doc.to_utf8_array(nr_char=nC)
        d = d.reshape((len(doc), nC, nM))
        for i in range(len(doc)):
            for j in range(nC):
                expected[j, ids[i, j]] += d[i, j]
    assert numpy.allclose(_gradients(ours, docs, dY), expected, atol=1e-5)
    # "a a a b" repeats "a" at position 0: the two gradients differ
    assert not numpy.allclose(_gradients(theirs, docs, dY), expected, atol=1e-5)


def test_layer_learns(nlp):
    _, ours, docs = _pair(nlp)
    from thinc.api import Adam

    optimizer = Adam(0.01)
    docs = [d for d in docs if len(d)]
    target = [numpy.ones((len(d), SETTINGS["width"]), dtype="float32") for d in docs]
    losses = []
    for _ in range(30):
        Y, backprop = ours.begin_update(docs)
        dY = [y - t for y, t in zip(Y, target)]
        losses.append(sum(float((d**2).sum()) for d in dY))
        backprop(dY)
        ours.finish_update(optimizer)
    assert losses[-1] < 0.5 * losses[0]


def test_cache_is_not_serialized_and_is_bounded(nlp, monkeypatch):
    _, ours, docs = _pair(nlp)
    node = _char_node(ours)
    node.attrs[char_embed.CACHE_ATTR].clear()
    before = ours.to_bytes()
    ours.predict(docs)
    assert len(node.attrs[char_embed.CACHE_ATTR]) > 0
    assert ours.to_bytes() == before
    monkeypatch.setattr(char_cnn, "MAX_CACHE_SIZE", 3)
    node.attrs[char_embed.CACHE_ATTR].clear()
    expected = ours.predict(docs)
    assert 0 < len(node.attrs[char_embed.CACHE_ATTR]) <= 3
    # emptied on the way, and still right
    assert all(numpy.array_equal(a, b) for a, b in zip(ours.predict(docs), expected))
    # a wrong cached row cannot survive a round trip through bytes
    loaded = build_character_embed_v1(**SETTINGS).from_bytes(ours.to_bytes())
    assert len(_char_node(loaded).attrs[char_embed.CACHE_ATTR]) == 0


@pytest.mark.parametrize("name,value", [("nM", 0), ("nC", 0), ("nC", 2.5), ("nM", True)])
def test_bad_settings_are_coded_errors(name, value):
    with pytest.raises(ValueError, match=rf"\[BCE065\].*{name}"):
        build_character_embed_v1(**{**SETTINGS, name: value})


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("trans1,trans2", [(False, False), (True, False), (False, True), (True, True)])
def test_torch_gemm_is_numpys(dtype, trans1, trans2):
    rng = numpy.random.default_rng(0)
    x = rng.normal(size=(7, 5) if not trans1 else (5, 7)).astype(dtype)
    y = rng.normal(size=(5, 3) if not trans2 else (3, 5)).astype(dtype)
    expected = NumpyOps(use_blis=False).gemm(x, y, trans1=trans1, trans2=trans2)
    ops = TorchGemmOps()
    got = ops.gemm(x, y, trans1=trans1, trans2=trans2)
    assert isinstance(got, numpy.ndarray) and got.dtype == numpy.dtype(dtype)
    assert numpy.allclose(got, expected, atol=1e-5)
    out = numpy.zeros((7, 3), dtype=dtype)
    assert ops.gemm(x, y, out=out, trans1=trans1, trans2=trans2) is out
    assert numpy.allclose(out, expected, atol=1e-5)


def test_torch_gemm_falls_back_for_arrays_torch_cannot_view():
    rng = numpy.random.default_rng(0)
    x = rng.normal(size=(6, 4)).astype("float32")
    y = rng.normal(size=(4, 3)).astype("float32")
    expected = x @ y
    ops = TorchGemmOps()
    readonly = x.copy()
    readonly.flags.writeable = False
    reversed_rows = x[::-1].copy()[::-1]  # negative strides
    assert numpy.allclose(ops.gemm(readonly, y), expected, atol=1e-5)
    assert numpy.allclose(ops.gemm(reversed_rows, y), expected, atol=1e-5)
    # mixed dtypes: thinc's own gemm decides (it refuses them, as without TorchGemmOps)
    with pytest.raises(ValueError):
        NumpyOps().gemm(x, y.astype("float64"))
    with pytest.raises(ValueError):
        ops.gemm(x, y.astype("float64"))
    # a non-contiguous `out` is filled too
    out = numpy.zeros((6, 6), dtype="float32")[:, ::2]
    assert numpy.allclose(ops.gemm(x, y, out=out), expected, atol=1e-5)


def test_model_uses_torch_gemm_on_plain_cpu_ops_only():
    class OtherOps(NumpyOps):
        pass

    tok2vec = build_character_embed_v1(**SETTINGS)
    other = OtherOps()
    node = _char_node(tok2vec)
    node.ops = other
    model = build_bilstm_attn_crf_v1(tok2vec)
    for n in model.walk():
        assert n.ops is other if n is node else isinstance(n.ops, TorchGemmOps)
    use_torch_gemm(model)  # idempotent
    assert node.ops is other


def test_torch_gemm_gives_the_same_tok2vec_output(nlp):
    _, ours, docs = _pair(nlp)
    expected = ours.predict(docs)
    use_torch_gemm(ours)
    assert all(isinstance(n.ops, TorchGemmOps) for n in ours.walk())
    assert all(numpy.allclose(a, b, atol=1e-5) for a, b in zip(ours.predict(docs), expected))
    assert torch.get_num_threads() >= 1
