"""spaCy's character embedding (``spacy.CharacterEmbed.v2``), with a faster character
lookup.

``spacy-bilstm-crf.CharacterEmbed.v1`` builds exactly the layers of
``spacy.CharacterEmbed.v2`` (same parameters, same outputs, interchangeable weights) and
replaces only its inner ``charembed`` node, whose forward pass spent most of its time
in ``Doc.to_utf8_array``: that creates a ``Token`` object per token to read its text.
Here each word's byte row is computed once per ``token.orth`` and cached on the layer,
and the embedding rows of all docs of a batch are gathered at once::

    Doc --token.orth--> cached bytes (nC,) --one gather for the batch--> (n_tokens, nC * nM)
        --split per doc--> List[Floats2d]

The gradient is spaCy's too: spaCy's backward pass adds each doc's gradient with
``dE[...] += ...``, and numpy's fancy-index assignment keeps only the last of several
updates of the same (position, byte) row within a doc (a common letter, the padding
byte). With ``sum_repeated_bytes = true`` every token's update is summed instead (the
exact gradient of the forward pass); it was no better on CoNLL-2003 and WNUT-17 dev
(benchmarks/RESULTS.md, session 11), so the default stays spaCy's.
"""

from typing import Any, Callable, List, Optional, Tuple, Union, cast

import numpy
from spacy.attrs import ORTH
from spacy.ml.models.tok2vec import CharacterEmbed as spacy_character_embed
from spacy.tokens import Doc
from spacy.util import registry
from thinc.api import Model
from thinc.types import Floats2d, Floats3d, Ints2d

from .char_cnn import WordCache
from .errors import Errors
from .pytorch_model import check_int
from .word_embed import check_alpha, extract_features_unk

__all__ = ["Utf8RowCache", "build_character_embed_v1", "docs_to_utf8_ids", "utf8_row"]

CACHE_ATTR = "utf8_row_cache"
# spaCy's CharacterEmbed: 256 byte values, 255 being the padding
N_BYTES = 256
PAD_BYTE = 255


class Utf8RowCache(WordCache):
    """``token.orth`` -> the word's byte row (``nC`` bytes, see `utf8_row`). Not
    serialized, bounded (see `WordCache`)."""


def utf8_row(text: str, nC: int) -> bytes:
    """A word's row of `Doc.to_utf8_array(nr_char=nC)`: its UTF-8 bytes in the order
    first, last, second, second-to-last, ..., cut at `nC` bytes and padded with 255.

    text (str): The word.
    nC (int): The number of bytes in the row.
    RETURNS (bytes): `nC` bytes.
    """
    data = text.encode("utf8")
    row = bytearray([PAD_BYTE]) * nC
    start, end, j = 0, len(data) - 1, 0
    while j < nC and start <= end:
        row[j] = data[start]
        start += 1
        j += 1
        if j < nC and start <= end:
            row[j] = data[end]
            end -= 1
            j += 1
    return bytes(row)


def docs_to_utf8_ids(model: Model, docs: List[Doc]) -> numpy.ndarray:
    """The byte rows of all tokens of `docs`, as `Doc.to_utf8_array` gives them.

    model (Model): A ``charembed`` node built here (its `nC` and its cache).
    docs (List[Doc]): The docs.
    RETURNS (numpy.ndarray): uint8 (n_tokens, nC), the docs' tokens in order.
    """
    cache: Utf8RowCache = model.attrs[CACHE_ATTR]
    nC = model.get_dim("nC")
    rows: List[bytes] = []
    for doc in docs:
        strings = doc.vocab.strings
        for orth in doc.to_array(ORTH).tolist():
            row = cache.get(orth)
            if row is None:
                row = cache.add(orth, utf8_row(strings[orth], nC))
            rows.append(row)
    return numpy.frombuffer(b"".join(rows), dtype=numpy.uint8).reshape((len(rows), nC))


def charembed(nM: int, nC: int, sum_repeated_bytes: bool = False) -> Model[List[Doc], List[Floats2d]]:
    """The ``charembed`` node of spaCy's CharacterEmbed (same name, dims and parameter),
    with the batched forward pass of this module."""
    return Model(
        "charembed",
        charembed_forward,
        init=charembed_init,
        dims={"nM": nM, "nC": nC, "nO": nM * nC, "nV": N_BYTES},
        params={"E": None},
        attrs={CACHE_ATTR: Utf8RowCache(), "sum_repeated_bytes": sum_repeated_bytes},
    )


def charembed_init(model: Model, X: Any = None, Y: Any = None) -> None:
    # as spaCy's: a zero table of shape (nC, nV, nM)
    model.set_param("E", model.ops.alloc3f(model.get_dim("nC"), model.get_dim("nV"), model.get_dim("nM")))


def charembed_forward(
    model: Model[List[Doc], List[Floats2d]], docs: List[Doc], is_train: bool
) -> Tuple[List[Floats2d], Callable[[List[Floats2d]], List[Doc]]]:
    E = cast(Floats3d, model.get_param("E"))
    nC = model.get_dim("nC")
    nM = model.get_dim("nM")
    nV = model.get_dim("nV")
    nO = model.get_dim("nO")
    lengths = [len(doc) for doc in docs]
    # shape: (n_tokens, nC)
    ids = model.ops.asarray2i(cast(Ints2d, docs_to_utf8_ids(model, docs)), dtype="int32")
    # row of E.reshape(nC * nV, nM) for each token's byte at each position
    # shape: (n_tokens, nC)
    flat_ids = ids + model.ops.xp.arange(nC, dtype="int32")[None, :] * nV
    # shape: (n_tokens, nO)
    table = cast(Any, E.reshape((nC * nV, nM)))
    vectors = cast(Floats2d, table[flat_ids.ravel()].reshape((len(ids), nO)))
    output = model.ops.unflatten(vectors, model.ops.asarray1i(lengths))

    def backprop(d_output: List[Floats2d]) -> List[Doc]:
        if d_output:
            xp = model.ops.xp
            # shape: (n_tokens * nC, nM)
            d_rows = cast(Floats2d, model.ops.flatten(d_output).reshape((-1, nM)))
            # shape: (n_tokens * nC,)
            rows = flat_ids.ravel()
            if not model.attrs["sum_repeated_bytes"]:
                # spaCy's update: within a doc, the last token's gradient for each
                # (position, byte) row; summed over docs
                doc_index = xp.repeat(xp.arange(len(lengths), dtype="int64"), [n * nC for n in lengths])
                keys = doc_index * (nC * nV) + rows
                # the first occurrence in the reversed keys is the last one in the batch
                _, first_reversed = xp.unique(keys[::-1], return_index=True)
                last = keys.shape[0] - 1 - first_reversed
                rows, d_rows = rows[last], d_rows[last]
            dE = model.ops.alloc2f(nC * nV, nM)
            model.ops.scatter_add(dE, model.ops.as_contig(rows.astype("int32")), model.ops.as_contig(d_rows))
            model.inc_grad("E", cast(Floats3d, dE.reshape(E.shape)))
        return []

    return output, backprop


@registry.architectures("spacy-bilstm-crf.CharacterEmbed.v1")
def build_character_embed_v1(
    width: int,
    rows: int,
    nM: int,
    nC: int,
    include_static_vectors: bool,
    feature: Union[int, str] = "LOWER",
    sum_repeated_bytes: bool = False,
    unknown_alpha: Optional[float] = None,
) -> Model[List[Doc], List[Floats2d]]:
    """``spacy.CharacterEmbed.v2`` with a faster character lookup: the same layers,
    parameters, outputs and gradients (weights trained with either load into the other),
    about 2.5x faster (see the module docstring).

    width (int): The width of the output vector and of the feature embedding.
    rows (int): The number of rows of the feature's hash embedding table.
    nM (int): The width of a character (byte) embedding.
    nC (int): The number of UTF-8 bytes embedded per word, taken alternately from its
        start and end.
    include_static_vectors (bool): Also use the vocab's static word vectors.
    feature (Union[int, str]): The token attribute to embed beside the characters.
    sum_repeated_bytes (bool): Sum the gradient of every token for a (position, byte)
        row, where spaCy keeps one per doc.
    unknown_alpha (Optional[float]): If set (>= 0), `feature` values not in the training
        data share one unknown-word row, trained by replacing training words with it at
        the rate ``unknown_alpha / (unknown_alpha + count)``, as in
        ``spacy-bilstm-crf.MultiHashEmbed.v1``; None (default): spaCy's layer.
    RETURNS (Model[List[Doc], List[Floats2d]]): One (n_tokens, width) array per doc.
    """
    nM = check_int("nM", nM, 1, error=Errors.BCE065)
    nC = check_int("nC", nC, 1, error=Errors.BCE065)
    model: Model[List[Doc], List[Floats2d]] = spacy_character_embed(
        width=width, rows=rows, nM=nM, nC=nC, include_static_vectors=include_static_vectors, feature=feature
    )
    old = next(node for node in model.walk() if node.name == "charembed")
    model.replace_node(old, charembed(nM=nM, nC=nC, sum_repeated_bytes=bool(sum_repeated_bytes)))
    if unknown_alpha is not None:
        alpha = check_alpha("unknown_alpha", unknown_alpha, error=Errors.BCE065)
        old = next(node for node in model.walk() if node.name == "extract_features")
        model.replace_node(old, extract_features_unk([feature], feature, alpha))
    return model
