"""spacy-bilstm-crf.CharCNN.v1: the character CNN token embedding."""

from importlib.metadata import entry_points

import numpy
import pytest
import torch
from spacy.lang.en import English
from spacy.tokens import Doc
from spacy.training import Example
from spacy.util import load_model_from_path, make_tempdir, registry
from thinc.api import Adam, fix_random_seed

from spacy_bilstm_crf.char_cnn import (
    build_char_cnn_v1,
    docs_to_char_ids,
    get_char_cnn_module,
    word_char_ids,
)
from spacy_bilstm_crf.pytorch_model import CharCNN

# as in test_component.py
TRAIN_DATA = [
    ("Who is Shaka Khan?", {"entities": [(7, 17, "PERSON")]}),
    ("I like London and Berlin.", {"entities": [(7, 13, "LOC"), (18, 24, "LOC")]}),
    ("Angela Merkel visited Paris last week.", {"entities": [(0, 13, "PERSON"), (22, 27, "LOC")]}),
    ("The weather in New York City is cold.", {"entities": [(15, 28, "LOC")]}),
    ("Nobody lives here.", {"entities": []}),
]

CHAR_CNN = {
    "@architectures": "spacy-bilstm-crf.CharCNN.v1",
    "width": 16,
    "char_width": 8,
    "window_size": 3,
    "max_chars": 20,
    "rows": 200,
    "dropout": 0.1,
}

CHARS_MODEL = {
    "hidden_size": 32,
    "num_layers": 1,
    "attention_heads": 2,
    "dropout": 0.0,
    "input_dropout": 0.0,
    "attention_dropout": 0.0,
    "tok2vec": {
        "@layers": "concatenate.v1",
        "*": {
            "words": {
                "@architectures": "spacy.MultiHashEmbed.v2",
                "width": 32,
                "attrs": ["NORM", "PREFIX", "SUFFIX", "SHAPE"],
                "rows": [500, 100, 250, 250],
                "include_static_vectors": False,
            },
            "chars": CHAR_CNN,
        },
    },
}


def make_examples(nlp, data=TRAIN_DATA):
    return [Example.from_dict(nlp.make_doc(text), annots) for text, annots in data]


def ents_of(doc):
    return [(e.start_char, e.end_char, e.label_) for e in doc.ents]


def torch_module(layer) -> CharCNN:
    module = get_char_cnn_module(layer)
    assert isinstance(module, CharCNN)
    return module


def find_char_cnn(model):
    layers = [node for node in model.walk() if node.name == "char_cnn"]
    assert len(layers) == 1
    return layers[0]


@pytest.fixture
def nlp():
    return English()


def test_registered_with_entry_point():
    eps = {ep.name: ep for ep in entry_points(group="spacy_architectures")}
    assert eps["spacy-bilstm-crf.CharCNN.v1"].load() is build_char_cnn_v1
    assert registry.architectures.get("spacy-bilstm-crf.CharCNN.v1") is build_char_cnn_v1


def test_output_shapes_including_an_empty_doc(nlp):
    layer = build_char_cnn_v1(width=12, char_width=6)
    assert layer.get_dim("nO") == 12
    docs = [nlp("Hello Berlin!"), nlp(""), nlp("Angela Merkel went to Paris")]
    for Y in (layer.predict(docs), layer.begin_update(docs)[0]):
        assert [y.shape for y in Y] == [(3, 12), (0, 12), (5, 12)]
        assert all(y.dtype == numpy.float32 for y in Y)
        assert all(numpy.isfinite(y).all() for y in Y)
    assert layer.predict([]) == []
    assert [y.shape for y in layer.predict([nlp("")])] == [(0, 12)]
    # no gradient to the docs
    Y, backprop = layer.begin_update(docs)
    assert backprop([numpy.ones_like(y) for y in Y]) == []
    # whitespace tokens have characters too
    spaces = Doc(nlp.vocab, words=["a", " ", "b"], spaces=[True, False, False])
    assert numpy.isfinite(layer.predict([spaces])[0]).all()


def test_char_ids(nlp):
    rows = 100
    ids = word_char_ids("aé😀", max_chars=20, rows=rows)  # one id per code point
    assert ids.dtype == numpy.int64
    assert ids.tolist() == [1 + ord(c) % (rows - 1) for c in "aé😀"]
    assert (ids >= 1).all() and (ids < rows).all()
    layer = build_char_cnn_v1(max_chars=20, rows=rows)
    char_ids, lengths = docs_to_char_ids(layer.layers[0], [nlp("a bcd"), nlp(""), nlp("ef")])
    assert lengths == [2, 0, 1]
    assert char_ids.shape == (3, 3)  # n_tokens x the longest word of the batch
    expected = [[ord(c) % (rows - 1) + 1 for c in w] for w in ("a", "bcd", "ef")]
    assert char_ids.tolist() == [row + [0] * (3 - len(row)) for row in expected]
    assert len(layer.layers[0].attrs["char_cnn_cache"]) == 3


def test_vectors_do_not_depend_on_batch_padding(nlp):
    layer = build_char_cnn_v1(width=16, char_width=8, dropout=0.5)
    alone = layer.predict([nlp("Paris is nice")])[0]
    batched = layer.predict(
        [nlp("Paris is nice"), nlp("Pneumonoultramicroscopicsilicovolcanoconiosis !")]
    )[0]
    long_word = layer.predict([nlp("Paris supercalifragilistic nice")])[0]
    numpy.testing.assert_allclose(alone, batched, rtol=1e-5, atol=1e-6)
    numpy.testing.assert_allclose(alone[0], long_word[0], rtol=1e-5, atol=1e-6)
    numpy.testing.assert_allclose(alone[2], long_word[2], rtol=1e-5, atol=1e-6)
    # dropout only while training
    numpy.testing.assert_array_equal(alone, layer.predict([nlp("Paris is nice")])[0])
    trained = layer.begin_update([nlp("Paris is nice")])[0][0]
    assert not numpy.allclose(alone, trained)


def test_torch_module_pools_over_real_characters_only():
    module = CharCNN(num_embeddings=10, embedding_dim=4, out_channels=5, kernel_size=3).eval()
    ids = torch.tensor([[3, 4, 0, 0, 0], [0, 0, 0, 0, 0]])
    with torch.no_grad():
        out = module(ids)
        alone = module(ids[:1, :2])
    assert tuple(out.shape) == (2, 5)
    torch.testing.assert_close(out[0], alone[0])
    # a word without characters (spaCy has no empty tokens) gets zeros, not -inf
    assert not out[1].any()


def test_long_words_keep_their_first_and_last_characters(nlp):
    layer = build_char_cnn_v1(width=16, char_width=8, max_chars=6)
    # first 3 and last 3 characters kept
    ids = word_char_ids("abcXXXXdef", max_chars=6, rows=1000)
    assert ids.tolist() == [1 + ord(c) % 999 for c in "abcdef"]
    assert word_char_ids("abcdefg", max_chars=7, rows=1000).shape == (7,)
    assert word_char_ids("abcdefgh", max_chars=7, rows=1000).tolist() == [
        1 + ord(c) % 999 for c in "abcefgh"
    ]
    Y = layer.predict([nlp("abcXXXXdef abcYYYYYYYYdef abcXXXXdeg abcdef")])[0]
    numpy.testing.assert_allclose(Y[0], Y[1], rtol=1e-5, atol=1e-6)  # differ in the middle
    numpy.testing.assert_allclose(Y[0], Y[3], rtol=1e-5, atol=1e-6)
    assert not numpy.allclose(Y[0], Y[2])  # differ at the end


def test_serialization_and_the_cache(nlp):
    docs = [nlp("Angela Merkel visited Paris"), nlp("")]
    layer = build_char_cnn_v1(width=16, char_width=8)
    data = layer.to_bytes()
    Y = layer.predict(docs)
    assert len(layer.layers[0].attrs["char_cnn_cache"]) == 4
    assert layer.to_bytes() == data  # the cache is not part of the model's bytes
    fix_random_seed(1)
    other = build_char_cnn_v1(width=16, char_width=8)
    assert not numpy.allclose(other.predict(docs)[0], Y[0])
    other.from_bytes(data)
    for a, b in zip(Y, other.predict(docs)):
        numpy.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)


def test_layer_learns(nlp):
    docs = [nlp("Angela Merkel visited Paris"), nlp("Nobody lives here .")]
    layer = build_char_cnn_v1(width=8, char_width=8, dropout=0.0)
    optimizer = Adam(0.01)
    prev = sum(float(((y - 1.0) ** 2).sum()) for y in layer.predict(docs))
    for _ in range(30):
        Y, backprop = layer.begin_update(docs)
        backprop([y - 1.0 for y in Y])  # gradient of 0.5 * sum((y - 1)**2)
        layer.finish_update(optimizer)
    now = sum(float(((y - 1.0) ** 2).sum()) for y in layer.predict(docs))
    assert now < prev * 0.5
    assert not torch_module(layer).embed.weight[0].detach().any()  # padding row


def test_pipeline_with_chars_trains_and_round_trips():
    fix_random_seed(0)
    nlp = English()
    nlp.add_pipe("bilstm_attn_crf", config={"model": CHARS_MODEL})
    char_cnn = find_char_cnn(nlp.get_pipe("bilstm_attn_crf").model)
    before = {k: v.clone() for k, v in torch_module(char_cnn).state_dict().items()}
    examples = make_examples(nlp)
    optimizer = nlp.initialize(get_examples=lambda: examples)
    # the loss's gradient reaches the character CNN's weights
    nlp.get_pipe("bilstm_attn_crf").update(examples, sgd=None)
    for name, param in torch_module(char_cnn).named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name
        param.grad = None
    losses = {}
    for _ in range(60):
        losses = {}
        nlp.update(examples, sgd=optimizer, losses=losses)
    assert losses["bilstm_attn_crf"] < 0.5
    texts = [text for text, _ in TRAIN_DATA]
    expected = [[(s, e, lab) for s, e, lab in annots["entities"]] for _, annots in TRAIN_DATA]
    assert [ents_of(d) for d in nlp.pipe(texts)] == expected
    # and training changes them
    after = torch_module(char_cnn).state_dict()
    for name in ("embed.weight", "conv.weight", "conv.bias"):
        assert not torch.equal(before[name], after[name]), name
    assert not after["embed.weight"][0].any()  # padding row stays zero

    with make_tempdir() as tmp:
        nlp.to_disk(tmp)
        nlp2 = load_model_from_path(tmp)
        tok2vec_cfg = nlp2.config["components"]["bilstm_attn_crf"]["model"]["tok2vec"]
        assert tok2vec_cfg["*"]["chars"]["@architectures"] == "spacy-bilstm-crf.CharCNN.v1"
        assert [ents_of(d) for d in nlp2.pipe(texts)] == expected
        loaded = torch_module(find_char_cnn(nlp2.get_pipe("bilstm_attn_crf").model))
        for name, value in after.items():
            assert torch.equal(loaded.state_dict()[name], value), name

    nlp3 = English()
    nlp3.add_pipe("bilstm_attn_crf", config={"model": CHARS_MODEL})
    nlp3.from_bytes(nlp.to_bytes())
    assert [ents_of(d) for d in nlp3.pipe(texts)] == expected


@pytest.mark.parametrize(
    "name,value",
    [
        ("width", 0),
        ("width", -3),
        ("width", 2.0),
        ("width", True),
        ("char_width", 0),
        ("char_width", "30"),
        ("window_size", 0),
        ("window_size", 4),
        ("window_size", 3.0),
        ("max_chars", 0),
        ("rows", 1),
        ("rows", None),
        ("dropout", 1.0),
        ("dropout", -0.1),
        ("dropout", "0.2"),
        ("dropout", True),
    ],
)
def test_bad_settings_are_coded_errors(name, value):
    with pytest.raises(ValueError, match=rf"BCE064.*{name} {value!r}"):
        build_char_cnn_v1(**{name: value})
