"""Character-level CNN token embedding (Ma & Hovy 2016) as a thinc/spaCy architecture.

``spacy-bilstm-crf.CharCNN.v1`` maps Docs to one vector per token, like spaCy's
``spacy.CharacterEmbed.v2``, so that it can be concatenated with a word embedding in a
tok2vec (``concatenate.v1`` of ``spacy.MultiHashEmbed.v2`` and this layer)::

    Doc --token.orth_ code points--> char ids (n_tokens, max_len) --CharCNN--> (n_tokens, width)
        --split per doc--> List[Floats2d]

The torch module (``pytorch_model.CharCNN``) is wrapped with ``PyTorchWrapper_v2``;
the conversion from Docs to character ids happens in ``convert_inputs``, with the id row
of each ``token.orth`` cached on the layer (the cache is not serialized).
"""

from typing import Any, Callable, Dict, List, Tuple, cast

import numpy
import srsly
import torch
from spacy.attrs import ORTH
from spacy.tokens import Doc
from spacy.util import registry
from thinc.api import (
    ArgsKwargs,
    Model,
    PyTorchShim,
    PyTorchWrapper_v2,
    deserialize_attr,
    serialize_attr,
    torch2xp,
    xp2torch,
)
from thinc.types import Floats2d

from .errors import Errors
from .pytorch_model import CharCNN, check_int, check_prob

__all__ = [
    "CharIdCache",
    "WordCache",
    "build_char_cnn_v1",
    "docs_to_char_ids",
    "get_char_cnn_module",
    "word_char_ids",
]

CACHE_ATTR = "char_cnn_cache"
# The most words whose rows a layer's cache keeps; it is emptied when it is full.
MAX_CACHE_SIZE = 100_000


class WordCache(Dict[int, Any]):
    """``token.orth`` -> something a layer computes from the word's text, kept in a layer
    attr (a subclass per kind of value).

    Only a speed-up: thinc does not serialize it (see the ``serialize_attr``
    registration below) and a pickled layer starts with an empty cache.
    """

    def __reduce__(self) -> Tuple[Any, ...]:
        return (type(self), ())

    def add(self, orth: int, value: Any) -> Any:
        """Keep `value` for `orth`, emptying the cache first if it holds
        `MAX_CACHE_SIZE` words. RETURNS: `value`."""
        if len(self) >= MAX_CACHE_SIZE:
            self.clear()
        self[orth] = value
        return value


class CharIdCache(WordCache):
    """``token.orth`` -> the word's character id row (int64, read-only)."""


@serialize_attr.register(WordCache)
def _serialize_word_cache(_: WordCache, value: WordCache, name: str, model: Model) -> bytes:
    # a constant, so that a model's bytes do not depend on the words it has seen
    return srsly.msgpack_dumps(None)


@deserialize_attr.register(WordCache)
def _deserialize_word_cache(_: WordCache, value: bytes, name: str, model: Model) -> WordCache:
    # an empty cache of the layer's own kind
    return type(_)()


@registry.architectures("spacy-bilstm-crf.CharCNN.v1")
def build_char_cnn_v1(
    width: int = 50,
    char_width: int = 30,
    window_size: int = 3,
    max_chars: int = 20,
    rows: int = 1000,
    dropout: float = 0.25,
) -> Model[List[Doc], List[Floats2d]]:
    """Character CNN token vectors (Ma & Hovy 2016): each token's text (``token.orth_``)
    as Unicode code points, embedded, dropped out (training only), convolved and
    max-pooled over the word's characters.

    Use it like ``spacy.CharacterEmbed.v2``, e.g. concatenated with a
    ``spacy.MultiHashEmbed.v2`` in a ``concatenate.v1`` tok2vec.

    width (int): The width of the output token vectors (the number of filters).
    char_width (int): The width of a character embedding.
    window_size (int): The convolution window in characters, an odd number.
    max_chars (int): Longer words keep their first ``max_chars // 2`` and their last
        ``max_chars - max_chars // 2`` characters.
    rows (int): Character embedding rows: a code point ``c`` has the id
        ``1 + c % (rows - 1)``, id 0 being the padding.
    dropout (float): Dropout on the character embeddings while training, in [0, 1).
        It is this layer's own rate: spaCy's ``[training] dropout`` does not change it.
    RETURNS (Model[List[Doc], List[Floats2d]]): The layer: one (n_tokens, width) array
        per doc.
    """
    error = Errors.BCE064
    width = check_int("width", width, 1, error=error)
    char_width = check_int("char_width", char_width, 1, error=error)
    window_size = check_int("window_size", window_size, 1, odd=True, error=error)
    max_chars = check_int("max_chars", max_chars, 1, error=error)
    rows = check_int("rows", rows, 2, error=error)
    dropout = check_prob("dropout", dropout, error=error)
    torch_model = CharCNN(
        num_embeddings=rows,
        embedding_dim=char_width,
        out_channels=width,
        kernel_size=window_size,
        dropout=dropout,
    )
    wrapped = PyTorchWrapper_v2(
        torch_model, convert_inputs=convert_inputs, convert_outputs=convert_outputs
    )
    wrapped.set_dim("nO", width)
    wrapped.attrs["max_chars"] = max_chars
    wrapped.attrs["rows"] = rows
    wrapped.attrs[CACHE_ATTR] = CharIdCache()
    # The outer layer has no `nI` dim: the wrapper declares one, and thinc's `concatenate`
    # would try to set it from the input width, which Docs do not have.
    return Model("char_cnn", char_cnn_forward, layers=[wrapped], dims={"nO": width})


def char_cnn_forward(
    model: Model[List[Doc], List[Floats2d]], docs: List[Doc], is_train: bool
) -> Tuple[List[Floats2d], Callable[[List[Floats2d]], List[Doc]]]:
    return model.layers[0](docs, is_train)


def get_char_cnn_module(model: Model) -> CharCNN:
    """RETURNS (CharCNN): the torch module of a CharCNN.v1 layer."""
    return cast(CharCNN, model.layers[0].shims[0]._model)


def word_char_ids(text: str, max_chars: int, rows: int) -> numpy.ndarray:
    """The character ids of a word: its code points, middle cut if longer than
    `max_chars`, mapped to ``1 + c % (rows - 1)``.

    text (str): The word.
    max_chars (int): The most characters kept.
    rows (int): The number of character embedding rows.
    RETURNS (numpy.ndarray): int64 (n_chars,), n_chars = min(len(text), max_chars).
    """
    # surrogatepass: a lone surrogate in the text is still one code point
    codes = numpy.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype="<u4")
    if codes.shape[0] > max_chars:
        head = max_chars // 2
        codes = numpy.concatenate((codes[:head], codes[codes.shape[0] - (max_chars - head):]))
    ids = codes.astype(numpy.int64) % (rows - 1) + 1
    ids.flags.writeable = False
    return ids


def docs_to_char_ids(model: Model, docs: List[Doc]) -> Tuple[numpy.ndarray, List[int]]:
    """The character ids of all tokens of `docs`, right-padded with 0.

    model (Model): The PyTorch wrapper inside a CharCNN.v1 layer (its settings and id
        cache are its attrs).
    docs (List[Doc]): The docs.
    RETURNS (Tuple[numpy.ndarray, List[int]]): int64 (n_tokens, max(1, longest word)) and
        the number of tokens of each doc.
    """
    cache: CharIdCache = model.attrs[CACHE_ATTR]
    max_chars: int = model.attrs["max_chars"]
    rows: int = model.attrs["rows"]
    words: List[numpy.ndarray] = []
    lengths: List[int] = []
    for doc in docs:
        strings = doc.vocab.strings
        orths = doc.to_array(ORTH).tolist()
        lengths.append(len(orths))
        for orth in orths:
            ids = cache.get(orth)
            if ids is None:
                ids = cache.add(orth, word_char_ids(strings[orth], max_chars, rows))
            words.append(ids)
    n_chars = numpy.fromiter((w.shape[0] for w in words), dtype=numpy.int64, count=len(words))
    max_len = max(1, int(n_chars.max())) if len(words) else 1
    # shape: (n_tokens, max_len)
    char_ids = numpy.zeros((len(words), max_len), dtype=numpy.int64)
    if words:
        # row-major boolean indexing fills each row's first n_chars[i] slots in order
        char_ids[numpy.arange(max_len) < n_chars[:, None]] = numpy.concatenate(words)
    return char_ids, lengths


def convert_inputs(
    model: Model, docs: List[Doc], is_train: bool
) -> Tuple[ArgsKwargs, Callable[[ArgsKwargs], List[Doc]]]:
    shim = cast(PyTorchShim, model.shims[0])
    char_ids, _ = docs_to_char_ids(model, docs)
    ids_t = torch.from_numpy(char_ids).to(shim.device)

    def backprop(dX: ArgsKwargs) -> List[Doc]:
        return []  # no gradient to the docs

    return ArgsKwargs(args=(ids_t,), kwargs={}), backprop


def convert_outputs(
    model: Model, docs_Ytorch: Tuple[List[Doc], torch.Tensor], is_train: bool
) -> Tuple[List[Floats2d], Callable[[List[Floats2d]], ArgsKwargs]]:
    shim = cast(PyTorchShim, model.shims[0])
    docs, Yt = docs_Ytorch
    width = model.get_dim("nO")
    lengths = [len(doc) for doc in docs]
    # shape: (n_tokens, width)
    Y_flat = cast(Floats2d, torch2xp(Yt))
    Y: List[Floats2d] = []
    start = 0
    for n in lengths:
        Y.append(cast(Floats2d, model.ops.as_contig(Y_flat[start : start + n])))
        start += n

    def backprop(dY: List[Floats2d]) -> ArgsKwargs:
        if dY:
            dY_flat = model.ops.xp.concatenate(dY, axis=0)
        else:
            dY_flat = model.ops.alloc2f(0, width)
        dYt = xp2torch(dY_flat, device=shim.device)
        return ArgsKwargs(args=(Yt,), kwargs={"grad_tensors": dYt})

    return Y, backprop
