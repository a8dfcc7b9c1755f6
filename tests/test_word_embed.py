"""spacy-bilstm-crf.MultiHashEmbed.v1: spaCy's MultiHashEmbed with an unknown-word row."""

from importlib.metadata import entry_points

import numpy
import pytest
from spacy.attrs import NORM
from spacy.lang.en import English
from spacy.ml.models.tok2vec import MultiHashEmbed as spacy_multi_hash_embed
from spacy.tokens import Doc
from spacy.training import Example
from spacy.util import registry
from thinc.api import fix_random_seed

from spacy_bilstm_crf.word_embed import (
    NODE_NAME,
    UNKNOWN_KEY,
    build_multi_hash_embed_v1,
    count_words,
    is_unknown_word_node,
    lookup_counts,
    set_word_counts,
)

SETTINGS = {"width": 8, "attrs": ["NORM", "PREFIX", "SHAPE"], "rows": [50, 20, 20], "include_static_vectors": False}


@pytest.fixture
def nlp():
    return English()


def _node(model):
    return next(node for node in model.walk() if is_unknown_word_node(node))


def _norms(model, docs, is_train=False):
    features, _ = _node(model)(docs, is_train)
    return numpy.concatenate([f[:, 0] for f in features]) if features else numpy.zeros((0,), dtype="uint64")


def test_registered_with_entry_point():
    eps = {ep.name: ep for ep in entry_points(group="spacy_architectures")}
    assert eps["spacy-bilstm-crf.MultiHashEmbed.v1"].load() is build_multi_hash_embed_v1
    assert registry.architectures.get("spacy-bilstm-crf.MultiHashEmbed.v1") is build_multi_hash_embed_v1


def test_without_counts_it_is_spacys_layer(nlp):
    docs = [nlp("Angela Merkel visited Paris ."), nlp("unseen words everywhere")]
    fix_random_seed(0)
    theirs = spacy_multi_hash_embed(**SETTINGS)
    ours = build_multi_hash_embed_v1(**SETTINGS)
    theirs.initialize(X=docs)
    ours.initialize(X=docs)
    assert [n.name.replace(NODE_NAME, "extract_features") for n in ours.walk()] == [n.name for n in theirs.walk()]
    assert sum(n.name == NODE_NAME for n in ours.walk()) == 1
    # spaCy's weights load into ours
    ours.from_bytes(theirs.to_bytes())
    for Y_theirs, Y_ours in zip(theirs.predict(docs), ours.predict(docs)):
        assert numpy.array_equal(Y_ours, Y_theirs)
    # and without an unknown attribute, it is spaCy's layer itself
    plain = build_multi_hash_embed_v1(**SETTINGS, unknown_attr=None)
    assert [n.name for n in plain.walk()] == [n.name for n in theirs.walk()]


def test_unknown_words_share_one_key_at_inference(nlp):
    model = build_multi_hash_embed_v1(**SETTINGS)
    train = [nlp("Paris is in France ."), nlp("Paris again")]
    set_word_counts([model], lambda: train)
    test = [nlp("Paris and Berlin ."), Doc(nlp.vocab, words=[]), nlp("Ulaanbaatar")]
    norms = _norms(model, test)
    expected = [nlp.vocab.strings["paris"], UNKNOWN_KEY, UNKNOWN_KEY, nlp.vocab.strings["."], UNKNOWN_KEY]
    assert norms.tolist() == expected
    # the other attributes are untouched
    features, _ = _node(model)(test, False)
    assert numpy.array_equal(features[0][:, 1:], test[0].to_array(["PREFIX", "SHAPE"]).astype("uint64"))
    # two unknown words now get the same vector
    model.initialize(X=train)
    # (same PREFIX and SHAPE, both unknown)
    Y = model.predict([nlp("Berlin Bremen Paris")])[0]
    assert numpy.array_equal(Y[0], Y[1])
    assert not numpy.array_equal(Y[0], Y[2])


def test_training_replaces_rare_words_at_alpha_over_alpha_plus_count(nlp):
    model = build_multi_hash_embed_v1(**SETTINGS, unknown_alpha=1.0)
    # "once" seen once (rate 1/2), "often" 9 times (rate 1/10)
    train = [Doc(nlp.vocab, words=["once"] + ["often"] * 9)]
    set_word_counts([model], lambda: train)
    docs = [Doc(nlp.vocab, words=["once", "often"] * 5000)]
    fix_random_seed(1)
    norms = _norms(model, docs, is_train=True).reshape((-1, 2))
    replaced = (norms == UNKNOWN_KEY).mean(axis=0)
    assert replaced[0] == pytest.approx(0.5, abs=0.03)
    assert replaced[1] == pytest.approx(0.1, abs=0.02)
    # kept words keep their own key
    assert set(norms[:, 0].tolist()) == {UNKNOWN_KEY, nlp.vocab.strings["once"]}
    # alpha 0: nothing replaced in training, unknown words still mapped at inference
    model = build_multi_hash_embed_v1(**SETTINGS, unknown_alpha=0)
    set_word_counts([model], lambda: train)
    assert UNKNOWN_KEY not in _norms(model, docs, is_train=True).tolist()
    assert _norms(model, [Doc(nlp.vocab, words=["never", "once"])]).tolist() == [
        UNKNOWN_KEY,
        nlp.vocab.strings["once"],
    ]


def test_counts_and_lookup(nlp):
    [(keys, counts)] = count_words([nlp("a b a"), Doc(nlp.vocab, words=[]), nlp("b a")], [NORM])
    assert dict(zip(keys.tolist(), counts.tolist())) == {nlp.vocab.strings["a"]: 3, nlp.vocab.strings["b"]: 2}
    assert list(keys) == sorted(keys)
    values = numpy.asarray([nlp.vocab.strings["b"], 1, 2**64 - 1, nlp.vocab.strings["a"]], dtype="uint64")
    assert lookup_counts(keys, counts, values).tolist() == [2, 0, 0, 3]
    [(empty_keys, empty_counts)] = count_words([], [NORM])
    assert lookup_counts(empty_keys, empty_counts, values).tolist() == [0, 0, 0, 0]


def test_counts_are_saved_with_the_weights(nlp, tmp_path):
    model = build_multi_hash_embed_v1(**SETTINGS)
    train = [nlp("Paris is in France .")]
    model.initialize(X=train)
    set_word_counts([model], lambda: train)
    loaded = build_multi_hash_embed_v1(**SETTINGS).from_bytes(model.to_bytes())
    assert numpy.array_equal(_node(loaded).attrs["keys"], _node(model).attrs["keys"])
    assert numpy.array_equal(_node(loaded).attrs["counts"], _node(model).attrs["counts"])
    test = [nlp("Paris and Berlin")]
    assert numpy.array_equal(loaded.predict(test)[0], model.predict(test)[0])
    model.to_disk(tmp_path / "model")
    from_disk = build_multi_hash_embed_v1(**SETTINGS).from_disk(tmp_path / "model")
    assert numpy.array_equal(_norms(from_disk, test), _norms(model, test))


def _config(tok2vec_settings):
    return {
        "model": {
            "@architectures": "spacy-bilstm-crf.BiLSTMAttnCRF.v1",
            "hidden_size": 8,
            "attention_heads": 2,
            "tok2vec": {"@architectures": "spacy-bilstm-crf.MultiHashEmbed.v1", **tok2vec_settings},
        }
    }


def test_component_counts_all_training_examples_not_the_sample(nlp):
    """The pipe sizes its model from 10 docs; the counts come from every example."""
    pipe = nlp.add_pipe("bilstm_attn_crf", config=_config(SETTINGS))
    examples = []
    for i in range(30):
        words = ["Alice", "met", f"word{i}"]
        examples.append(Example(Doc(nlp.vocab, words=words), Doc(nlp.vocab, words=words, ents=["B-PER", "O", "O"])))
    nlp.initialize(lambda: examples)
    node = _node(pipe.model)
    assert dict(zip(node.attrs["keys"].tolist(), node.attrs["counts"].tolist()))[nlp.vocab.strings["word29"]] == 1
    assert len(node.attrs["keys"]) == 32
    # saved and loaded with the pipeline
    nlp2 = English()
    nlp2.add_pipe("bilstm_attn_crf", config=_config(SETTINGS))
    nlp2.from_bytes(nlp.to_bytes())
    assert numpy.array_equal(_node(nlp2.get_pipe("bilstm_attn_crf").model).attrs["keys"], node.attrs["keys"])
    doc = nlp2("Alice met word29 and word30")
    assert [e.text for e in doc.ents] == [e.text for e in nlp("Alice met word29 and word30").ents]


def test_initialize_without_annotated_examples_leaves_the_rows_off(nlp):
    """`nlp.initialize()` without data hands the pipe a dummy "x y z" doc: counting it
    would make every real word unknown. The rows stay off, with a warning; initializing
    again with training data turns them on, and only annotated examples are counted."""
    pipe = nlp.add_pipe("bilstm_attn_crf", config=_config(SETTINGS))
    pipe.add_label("PER")
    with pytest.warns(UserWarning, match="BCW002"):
        nlp.initialize()
    node = _node(pipe.model)
    assert node.attrs["keys"] is None and node.attrs["counts"] is None
    doc = nlp.make_doc("Alice met Bob")
    assert UNKNOWN_KEY not in _norms(pipe.model, [doc]).tolist()
    words = ["Alice", "met", "Bob"]
    annotated = Example(Doc(nlp.vocab, words=words), Doc(nlp.vocab, words=words, ents=["B-PER", "O", "B-PER"]))
    unannotated = Example.from_dict(Doc(nlp.vocab, words=["Carol", "left"]), {})
    nlp.initialize(lambda: [unannotated, annotated])
    assert sorted(node.attrs["keys"].tolist()) == sorted(nlp.vocab.strings[w] for w in ["alice", "met", "bob"])
    # and a re-initialize without annotation takes them off again
    with pytest.warns(UserWarning, match="BCW002"):
        nlp.initialize(lambda: [unannotated])
    assert node.attrs["keys"] is None


def test_shared_tok2vec_gets_the_counts(nlp):
    nlp.add_pipe(
        "tok2vec",
        config={"model": {"@architectures": "spacy-bilstm-crf.MultiHashEmbed.v1", **SETTINGS}},
    )
    nlp.add_pipe(
        "bilstm_attn_crf",
        config={
            "model": {
                "@architectures": "spacy-bilstm-crf.BiLSTMAttnCRF.v1",
                "hidden_size": 8,
                "attention_heads": 2,
                "tok2vec": {"@architectures": "spacy.Tok2VecListener.v1", "width": 8, "upstream": "*"},
            }
        },
    )
    words = ["Alice", "met", "Bob"]
    examples = [Example(Doc(nlp.vocab, words=words), Doc(nlp.vocab, words=words, ents=["B-PER", "O", "B-PER"]))]
    nlp.initialize(lambda: examples)
    node = _node(nlp.get_pipe("tok2vec").model)
    assert sorted(node.attrs["keys"].tolist()) == sorted(nlp.vocab.strings[w] for w in ["alice", "met", "bob"])


@pytest.mark.parametrize(
    "settings,name",
    [
        ({"unknown_attr": "LOWER"}, "unknown_attr"),
        ({"unknown_attr": "NOT_AN_ATTR"}, "unknown_attr"),
        ({"unknown_alpha": -0.1}, "unknown_alpha"),
        ({"unknown_alpha": "0.25"}, "unknown_alpha"),
        ({"unknown_alpha": True}, "unknown_alpha"),
        ({"unknown_alpha": float("nan")}, "unknown_alpha"),
    ],
)
def test_bad_settings_raise_coded_errors(settings, name):
    with pytest.raises(ValueError, match=f"BCE066.*{name}"):
        build_multi_hash_embed_v1(**{**SETTINGS, **settings})


def test_character_embed_can_have_an_unknown_word_row(nlp):
    from spacy_bilstm_crf.char_embed import build_character_embed_v1

    settings = {"width": 8, "rows": 50, "nM": 4, "nC": 4, "include_static_vectors": False, "feature": "ORTH"}
    plain = build_character_embed_v1(**settings)
    assert not any(is_unknown_word_node(n) for n in plain.walk())
    model = build_character_embed_v1(**settings, unknown_alpha=0.5)
    train = [nlp("Paris is nice")]
    set_word_counts([model], lambda: train)
    features, _ = _node(model)([nlp("Paris is Bremen")], False)
    assert features[0][:, 0].tolist() == [nlp.vocab.strings["Paris"], nlp.vocab.strings["is"], UNKNOWN_KEY]
    with pytest.raises(ValueError, match="BCE065.*unknown_alpha"):
        build_character_embed_v1(**settings, unknown_alpha=-1)


SPACY_NER_CONFIG = """
[paths]
train = null
dev = null

[nlp]
lang = "en"
pipeline = ["tok2vec", "ner"]

[components]

[components.tok2vec]
factory = "tok2vec"

[components.tok2vec.model]
@architectures = "spacy.Tok2Vec.v2"

[components.tok2vec.model.embed]
@architectures = "spacy-bilstm-crf.MultiHashEmbed.v1"
width = 16
attrs = ["NORM", "SHAPE"]
rows = [50, 20]
include_static_vectors = false

[components.tok2vec.model.encode]
@architectures = "spacy.MaxoutWindowEncoder.v2"
width = 16
depth = 1
window_size = 1
maxout_pieces = 2

[components.ner]
factory = "ner"

[components.ner.model]
@architectures = "spacy.TransitionBasedParser.v2"
state_type = "ner"
hidden_width = 16
maxout_pieces = 2
use_upper = true

[components.ner.model.tok2vec]
@architectures = "spacy.Tok2VecListener.v1"
width = 16
upstream = "*"

[corpora]

[corpora.train]
@readers = "spacy.Corpus.v1"
path = ${paths.train}

[corpora.dev]
@readers = "spacy.Corpus.v1"
path = ${paths.dev}

[training]

[initialize]

[initialize.after_init]
@callbacks = "spacy-bilstm-crf.SetWordCounts.v1"
corpus = "corpora.train"
"""


def test_set_word_counts_callback_gives_spacy_ner_the_counts(nlp, tmp_path):
    """spaCy's own components can use the unknown-word row through [training]

[initialize]

[initialize.after_init]."""
    from spacy.tokens import DocBin
    from spacy.training.initialize import init_nlp
    from spacy.util import load_model_from_config
    from thinc.api import Config

    docs = [Doc(nlp.vocab, words=["Alice", "met", f"w{i}"], ents=["B-PER", "O", "O"]) for i in range(25)]
    DocBin(docs=docs).to_disk(tmp_path / "train.spacy")
    # filled as `spacy init fill-config` would
    def filled(train_path):
        config = Config().from_str(SPACY_NER_CONFIG, interpolate=False)
        config["paths"]["train"] = config["paths"]["dev"] = str(train_path)
        return load_model_from_config(config, auto_fill=True).config

    trained = init_nlp(filled(tmp_path / "train.spacy"))
    node = _node(trained.get_pipe("tok2vec").model)
    counts = dict(zip(node.attrs["keys"].tolist(), node.attrs["counts"].tolist()))
    assert counts[trained.vocab.strings["alice"]] == 25
    assert counts[trained.vocab.strings["w24"]] == 1
    assert len(counts) == 27
    # an empty or missing training corpus: a coded error naming the setting
    DocBin(docs=[]).to_disk(tmp_path / "empty.spacy")
    make_callback = registry.callbacks.get("spacy-bilstm-crf.SetWordCounts.v1")
    trained.config["paths"]["dev"] = str(tmp_path / "empty.spacy")
    with pytest.raises(ValueError, match="BCE075.*no examples"):
        make_callback(corpus="corpora.dev")(trained)
    # a corpus name the config does not have
    with pytest.raises(ValueError, match="BCE075.*corpora.nope"):
        make_callback(corpus="corpora.nope")(trained)


def test_spans_are_read_too(nlp):
    model = build_multi_hash_embed_v1(**SETTINGS)
    set_word_counts([model], lambda: [nlp("Paris is nice")])
    doc = nlp("Bremen and Paris are far")
    from_span, _ = _node(model)([doc[2:4]], False)
    assert from_span[0][:, 0].tolist() == [nlp.vocab.strings["paris"], UNKNOWN_KEY]
    assert numpy.array_equal(from_span[0][:, 1:], doc.to_array(["PREFIX", "SHAPE"])[2:4].astype("uint64"))


def test_the_training_docs_are_read_once_for_all_unknown_word_layers(nlp):
    from spacy_bilstm_crf.char_embed import build_character_embed_v1

    words = build_multi_hash_embed_v1(**SETTINGS)
    chars = build_character_embed_v1(
        width=8, rows=50, nM=4, nC=4, include_static_vectors=False, feature="ORTH", unknown_alpha=0.25
    )
    train = [nlp("Paris is nice"), nlp("paris")]
    reads = []

    def get_docs():
        reads.append(1)
        return iter(train)

    assert set_word_counts([words, chars], get_docs) == 2
    assert len(reads) == 1
    norm_counts = dict(zip(_node(words).attrs["keys"].tolist(), _node(words).attrs["counts"].tolist()))
    orth_counts = dict(zip(_node(chars).attrs["keys"].tolist(), _node(chars).attrs["counts"].tolist()))
    assert norm_counts[nlp.vocab.strings["paris"]] == 2
    assert orth_counts[nlp.vocab.strings["Paris"]] == 1
    assert orth_counts[nlp.vocab.strings["paris"]] == 1
