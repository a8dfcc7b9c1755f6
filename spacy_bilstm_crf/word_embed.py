"""spaCy's ``MultiHashEmbed`` with an unknown-word row, as Lample et al. (2016) and
Kiperwasser & Goldberg (2016) train it.

A hash embedding has a row for any word, trained or not: a word never seen in training
gets the sum of rows that other words trained, which is noise to the layers above. Here
the values of one attribute (``NORM`` by default) that the training data does not contain
are all mapped to one unknown-word key, whose row is trained by replacing rare training
words with it (word ``w`` with probability ``alpha / (alpha + count(w))``)::

    Doc --to_array(attrs)--> (n_tokens, n_attrs) uint64
        --unknown values of one attr -> UNKNOWN_KEY (at random for rare ones, in training)-->
        spaCy's hash embeddings, static vectors and Maxout, unchanged

The counts are taken from all training examples when the pipe initializes (see
`set_word_counts`), stored on the layer and saved with its weights. Until they are set
the layer is exactly ``spacy.MultiHashEmbed.v2``.
"""

from typing import Any, Callable, Iterable, List, Optional, Sequence, Tuple, Union, cast

import numpy
from spacy.attrs import intify_attr
from spacy.ml.models.tok2vec import MultiHashEmbed as spacy_multi_hash_embed
from spacy.strings import get_string_id
from spacy.tokens import Doc
from spacy.util import registry
from thinc.api import Model
from thinc.types import Floats2d, Ints2d

from .errors import Errors

__all__ = [
    "UNKNOWN_KEY",
    "build_multi_hash_embed_v1",
    "clear_word_counts",
    "count_words",
    "is_unknown_word_node",
    "set_word_counts",
]

# the value every unknown word's attribute is mapped to
UNKNOWN_KEY = get_string_id("<unk>")
NODE_NAME = "extract_features_unk"


def check_alpha(name: str, value: object, *, error: str) -> float:
    """Validate an unknown-word rate constant (a finite number >= 0).
    RETURNS (float): The value as a float."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= float(value) < float("inf"):
        raise ValueError(error.format(name=name, value=value, expected="a number >= 0"))
    return float(value)


def extract_features_unk(
    columns: List[Union[int, str]], unknown_attr: Union[int, str], alpha: float
) -> Model[List[Doc], List[Ints2d]]:
    """spaCy's ``FeatureExtractor`` that maps the unknown values of `unknown_attr`
    (one of `columns`) to `UNKNOWN_KEY`."""
    column = [intify_attr(c) for c in columns].index(intify_attr(unknown_attr))
    return Model(
        NODE_NAME,
        extract_features_unk_forward,
        attrs={"columns": columns, "unknown_column": column, "alpha": alpha, "keys": None, "counts": None},
    )


def extract_features_unk_forward(
    model: Model[List[Doc], List[Ints2d]], docs: List[Doc], is_train: bool
) -> Tuple[List[Ints2d], Callable]:
    # attribute ids: `Span.to_array` (unlike `Doc.to_array`) takes no names
    columns = [intify_attr(column) for column in model.attrs["columns"]]
    features: List[Any] = []
    for doc in docs:
        attrs = doc.to_array(columns)
        if attrs.ndim == 1:
            attrs = attrs.reshape((attrs.shape[0], 1))
        features.append(numpy.ascontiguousarray(attrs, dtype="uint64"))
    keys = model.attrs["keys"]
    if keys is not None and features:
        column = model.attrs["unknown_column"]
        values = numpy.concatenate([f[:, column] for f in features])
        counts = lookup_counts(keys, model.attrs["counts"], values)
        alpha = model.attrs["alpha"]
        if is_train and alpha > 0:
            unknown = numpy.random.uniform(0.0, 1.0, values.shape) < alpha / (alpha + counts)
        else:
            unknown = counts == 0
        start = 0
        for f in features:
            f[unknown[start : start + f.shape[0]], column] = UNKNOWN_KEY
            start += f.shape[0]
    output = [model.ops.asarray2i(f, dtype="uint64") for f in features]

    def backprop(d_features: List[Ints2d]) -> List:
        return []

    return output, backprop


def lookup_counts(keys: numpy.ndarray, counts: numpy.ndarray, values: numpy.ndarray) -> numpy.ndarray:
    """The count of each of `values` in the sorted `keys` (0 where absent), as float."""
    if keys.shape[0] == 0:
        return numpy.zeros(values.shape, dtype="float64")
    index = numpy.minimum(numpy.searchsorted(keys, values), keys.shape[0] - 1)
    return numpy.where(keys[index] == values, counts[index], 0).astype("float64")


def count_words(
    docs: Iterable[Doc], attrs: Sequence[Union[int, str]]
) -> List[Tuple[numpy.ndarray, numpy.ndarray]]:
    """For each of `attrs`, its distinct values in `docs` (sorted uint64) and their counts
    (int64), all from one pass over `docs`."""
    ids = [intify_attr(attr) for attr in attrs]
    arrays = [doc.to_array(ids).reshape((len(doc), len(ids))) for doc in docs if len(doc)]
    if not arrays:
        return [(numpy.zeros((0,), dtype="uint64"), numpy.zeros((0,), dtype="int64")) for _ in ids]
    table = numpy.concatenate(arrays).astype("uint64")
    result = []
    for j in range(len(ids)):
        keys, counts = numpy.unique(table[:, j], return_counts=True)
        result.append((keys.astype("uint64"), counts.astype("int64")))
    return result


def is_unknown_word_node(node: Model) -> bool:
    """Whether `node` is the feature extractor built here (by its forward function: a
    node's name is whatever the weights it loaded had)."""
    return node._func is extract_features_unk_forward


def set_word_counts(models: Iterable[Model], get_docs: Callable[[], Iterable[Doc]]) -> int:
    """Give every unknown-word node of `models` its word counts from `get_docs()` (the
    training docs), read once for all of them. RETURNS (int): the number of nodes set."""
    # each node with the attribute id it counts
    nodes = [
        (node, intify_attr(node.attrs["columns"][node.attrs["unknown_column"]]))
        for model in models
        for node in model.walk()
        if is_unknown_word_node(node)
    ]
    if nodes:
        attrs = sorted({attr for _, attr in nodes})
        counted = dict(zip(attrs, count_words(get_docs(), attrs)))
        for node, attr in nodes:
            node.attrs["keys"], node.attrs["counts"] = counted[attr]
    return len(nodes)


def clear_word_counts(models: Iterable[Model]) -> int:
    """Take the word counts off every unknown-word node of `models`: each is then spaCy's
    layer unchanged (no word is unknown). RETURNS (int): the number of nodes cleared."""
    nodes = [node for model in models for node in model.walk() if is_unknown_word_node(node)]
    for node in nodes:
        node.attrs["keys"] = node.attrs["counts"] = None
    return len(nodes)


@registry.architectures("spacy-bilstm-crf.MultiHashEmbed.v1")
def build_multi_hash_embed_v1(
    width: int,
    attrs: List[Union[str, int]],
    rows: List[int],
    include_static_vectors: bool,
    unknown_attr: Optional[Union[str, int]] = "NORM",
    unknown_alpha: float = 0.25,
) -> Model[List[Doc], List[Floats2d]]:
    """``spacy.MultiHashEmbed.v2`` (same layers and parameters) with an unknown-word row
    for `unknown_attr`: its values not in the training data share one key, trained by
    replacing training words with it at the rate ``unknown_alpha / (unknown_alpha +
    count)`` (so rare words more often). See the module docstring.

    width (int): The output width, also the width of each embedding table.
    attrs (List[Union[str, int]]): The token attributes to embed.
    rows (List[int]): The rows of each attribute's hash embedding table.
    include_static_vectors (bool): Also use the vocab's static word vectors.
    unknown_attr (Optional[Union[str, int]]): The attribute (one of `attrs`) whose unseen
        values map to the unknown-word key; None for spaCy's layer unchanged.
    unknown_alpha (float): The replacement rate's constant, >= 0 (0: the unknown row is
        never trained).
    RETURNS (Model[List[Doc], List[Floats2d]]): One (n_tokens, width) array per doc.
    """
    model: Model[List[Doc], List[Floats2d]] = spacy_multi_hash_embed(
        width=width, attrs=attrs, rows=rows, include_static_vectors=include_static_vectors
    )
    if unknown_attr is None:
        return model
    if intify_attr(unknown_attr) is None or intify_attr(unknown_attr) not in [intify_attr(a) for a in attrs]:
        raise ValueError(
            Errors.BCE066.format(name="unknown_attr", value=unknown_attr, expected=f"one of attrs {list(attrs)}")
        )
    alpha = check_alpha("unknown_alpha", unknown_alpha, error=Errors.BCE066)
    old = next(node for node in model.walk() if node.name == "extract_features")
    model.replace_node(old, extract_features_unk(list(attrs), unknown_attr, alpha))
    return cast(Model[List[Doc], List[Floats2d]], model)
