"""Thinc architectures: tok2vec output -> padded batch -> PyTorch BiLSTM + attention + CRF.

The torch module is built lazily, in the thinc ``init``, once the input width (``nI``)
and the tag set (``nO`` and the transition constraints) are known. The pipe sets the
tag scheme on the head with ``set_tag_scheme`` before initializing or deserializing.
"""

from functools import partial
from typing import Any, Callable, List, Optional, Tuple, cast

import numpy
import torch
from spacy.tokens import Doc
from spacy.util import registry
from thinc.api import (
    ArgsKwargs,
    Model,
    NumpyOps,
    PyTorchShim,
    PyTorchWrapper_v2,
    chain,
    torch2xp,
    xp2torch,
)
from thinc.types import Floats2d, Floats3d

from .crf import CRF
from .errors import Errors
from .pytorch_model import BiLSTMAttnCRFModel, check_prob
from .tag_scheme import TagScheme

HEAD_NAME = "bilstm_attn_crf_head"


class TorchGemmOps(NumpyOps):
    """thinc's CPU ops, with matrix products (`gemm`: the Maxout and Linear layers of a
    spaCy tok2vec) run by torch instead of thinc's BLIS.

    On the 2-CPU AMD EPYC (AVX2) of our benchmarks, one thread, the (3,600 x 384) x
    (384 x 288) product of `MultiHashEmbed`'s Maxout ran at 21 GFLOP/s in BLIS and at
    68 in torch; the default tok2vec took 12 instead of 17 us per word (RESULTS,
    session 11). torch uses its own thread pool (`torch.set_num_threads`), the one the
    BiLSTM runs in. Arrays torch cannot take without a copy (read-only, negative
    strides, mixed dtypes) go to thinc's own `gemm`.
    """

    def gemm(self, x: Any, y: Any, *, out: Any = None, trans1: bool = False, trans2: bool = False) -> Any:
        if not (
            x.dtype == y.dtype
            and x.dtype in (numpy.float32, numpy.float64)
            and x.ndim == 2
            and y.ndim == 2
            and _torch_viewable(x)
            and _torch_viewable(y)
            and (out is None or (out.dtype == x.dtype and out.flags.c_contiguous and out.flags.writeable))
        ):
            return super().gemm(x, y, out=out, trans1=trans1, trans2=trans2)
        # shape: (n, k) and (k, m), as views of the numpy arrays
        xt = torch.from_numpy(x).t() if trans1 else torch.from_numpy(x)
        yt = torch.from_numpy(y).t() if trans2 else torch.from_numpy(y)
        if out is None:
            return torch.mm(xt, yt).numpy()
        torch.mm(xt, yt, out=torch.from_numpy(out))
        return out


def _torch_viewable(array: Any) -> bool:
    """Whether torch.from_numpy takes `array` as is (no copy, no warning)."""
    return (
        isinstance(array, numpy.ndarray)
        and array.flags.writeable
        and all(stride >= 0 and stride % array.itemsize == 0 for stride in array.strides)
    )


def use_torch_gemm(model: Model) -> None:
    """Give each node of `model` that runs on thinc's plain CPU ops (`NumpyOps`) the
    `TorchGemmOps`; other ops (GPU, Apple, a subclass someone chose) are left alone.

    model (Model): The model, e.g. a tok2vec.
    """
    for node in model.walk():
        if type(node.ops) is NumpyOps:
            node.ops = _TORCH_GEMM_OPS


_TORCH_GEMM_OPS = TorchGemmOps()


@registry.architectures("spacy-bilstm-crf.BiLSTMAttnCRF.v1")
def build_bilstm_attn_crf_v1(
    tok2vec: Model[List[Doc], List[Floats2d]],
    hidden_size: int = 64,
    num_layers: int = 2,
    dropout: float = 0.3,
    input_dropout: float = 0.1,
    attention_heads: int = 4,
    attention_dropout: float = 0.1,
    window: Optional[int] = 256,
    window_overlap: int = 64,
    nO: Optional[int] = None,
    variational_dropout: bool = False,
) -> Model[List[Doc], List[Floats2d]]:
    """Build the BiLSTM + self-attention + CRF entity recognizer model.

    The model maps docs to per-doc emission scores ``(n_tokens, n_tags)``; the CRF
    (transition scores and constraints) is a submodule of the same torch module, so
    spaCy's optimizer updates it and the model's serialization saves it.

    tok2vec (Model[List[Doc], List[Floats2d]]): Token vectors: an embedding layer, a
        ``spacy.Tok2VecListener.v1`` or a spacy-transformers ``TransformerListener``.
    hidden_size (int): The LSTM's hidden size per direction.
    num_layers (int): The number of stacked BiLSTM layers.
    dropout (float): Dropout on the LSTM outputs and between LSTM layers.
    input_dropout (float): Dropout on the token vectors.
    attention_heads (int): Self-attention heads; 0 switches attention off.
    attention_dropout (float): Dropout on the attention weights.
    window (Optional[int]): Attention block size: longer docs use local attention over
        blocks. 0 or None (``null`` in a config): always full attention.
    window_overlap (int): How far each block's attention reaches into its neighbours.
    nO (Optional[int]): The number of tags; inferred from the labels at initialize.
    variational_dropout (bool): One dropout mask per doc, shared by all its tokens, for
        `input_dropout`, `dropout` and between the LSTM layers (Gal & Ghahramani 2016).
    RETURNS (Model[List[Doc], List[Floats2d]]): The model.
    """
    head: Model[List[Floats2d], List[Floats2d]] = Model(
        HEAD_NAME,
        head_forward,
        init=head_init,
        dims={"nI": None, "nO": nO},
        attrs={
            "hidden_size": hidden_size,
            "num_layers": num_layers,
            "dropout": dropout,
            "input_dropout": input_dropout,
            "attention_heads": attention_heads,
            "attention_dropout": attention_dropout,
            "window": window,
            "window_overlap": window_overlap,
            "variational_dropout": variational_dropout,
        },
    )
    model = chain(tok2vec, head)
    # faster matrix products in the tok2vec on the CPU; the same results to float rounding
    use_torch_gemm(model)
    model.set_ref("tok2vec", tok2vec)
    model.set_ref("head", head)
    return cast(Model[List[Doc], List[Floats2d]], model)


@registry.architectures("spacy-bilstm-crf.TokenDropout.v1")
def build_token_dropout_v1(
    layer: Model[List[Doc], List[Floats2d]], rate: float = 0.1
) -> Model[List[Doc], List[Floats2d]]:
    """Word dropout: while training, replace the whole output vector of a token with
    zeros with probability `rate` (the kept rows are scaled by 1 / (1 - rate)).

    Wrap the word-identity part of a tok2vec (e.g. a ``MultiHashEmbed``) with it, so that
    the model learns to recognize entities from their context and characters instead of
    memorizing the training set's names, as Lample et al. (2016) do by replacing words
    with an unknown-word vector. The rate is this layer's own setting: spaCy's
    ``[training] dropout`` does not change it, and nothing is dropped at inference.

    layer (Model[List[Doc], List[Floats2d]]): The embedding layer to wrap.
    rate (float): The probability of dropping a token's vector, in [0, 1).
    RETURNS (Model[List[Doc], List[Floats2d]]): The wrapped layer.
    """
    rate = check_prob("rate", rate, error=Errors.BCE063)
    # The rate is bound to the forward function, not kept in `attrs`: thinc saves attrs
    # with the weights, so a loaded pipeline would train with the saved rate whatever
    # its config says.
    return Model(
        "token_dropout",
        partial(token_dropout_forward, rate=rate),
        init=token_dropout_init,
        layers=[layer],
        dims={"nO": layer.maybe_get_dim("nO")},
    )


def token_dropout_init(
    model: Model, X: Optional[List[Doc]] = None, Y: Optional[Any] = None
) -> None:
    layer = model.layers[0]
    layer.initialize(X=X, Y=Y)
    if layer.has_dim("nO"):
        model.set_dim("nO", layer.get_dim("nO"), force=True)


def token_dropout_forward(
    model: Model, docs: List[Doc], is_train: bool, *, rate: float
) -> Tuple[List[Floats2d], Callable]:
    layer = model.layers[0]
    Y, backprop_layer = layer(docs, is_train)
    if not is_train or rate == 0.0 or not Y:
        return Y, backprop_layer
    ops = model.ops
    lengths = [int(y.shape[0]) for y in Y]
    # one keep/drop draw per token; kept rows are scaled to keep the expected value
    keep = (ops.xp.random.uniform(0.0, 1.0, (sum(lengths), 1)) >= rate).astype("f")
    masks = cast(
        List[Floats2d],
        ops.unflatten(ops.asarray2f(keep / (1.0 - rate)), ops.asarray1i(lengths)),
    )
    Y_dropped = [y * mask for y, mask in zip(Y, masks)]

    def backprop(dY: List[Floats2d]) -> List[Floats2d]:
        return backprop_layer([dy * mask for dy, mask in zip(dY, masks)])

    return Y_dropped, backprop


def set_tag_scheme(model: Model, scheme: TagScheme) -> None:
    """Give the model its tag set (labels and constraints), before initialize/load."""
    head = model.get_ref("head")
    if head.layers and head.get_dim("nO") != scheme.num_tags:  # built for another tag set
        raise ValueError(Errors.BCE061.format(built=head.get_dim("nO"), num_tags=scheme.num_tags))
    head.attrs["tag_scheme"] = scheme
    head.set_dim("nO", scheme.num_tags, force=True)


def build_head(head: Model, nI: int) -> None:
    """Build the torch module for `nI` input features (no-op if already built)."""
    if head.layers:
        return
    scheme: Optional[TagScheme] = head.attrs.get("tag_scheme")
    if scheme is None:
        raise ValueError(Errors.BCE060.format(what="no tag scheme: call set_tag_scheme first"))
    head.set_dim("nI", nI, force=True)
    attrs = head.attrs
    torch_model = BiLSTMAttnCRFModel(
        input_size=nI,
        num_tags=scheme.num_tags,
        hidden_size=attrs["hidden_size"],
        num_layers=attrs["num_layers"],
        dropout=attrs["dropout"],
        input_dropout=attrs["input_dropout"],
        attention_heads=attrs["attention_heads"],
        attention_dropout=attrs["attention_dropout"],
        window=attrs["window"],
        window_overlap=attrs["window_overlap"],
        variational_dropout=attrs.get("variational_dropout", False),
        allowed_start=scheme.allowed_start(),
        allowed_transitions=scheme.allowed_transitions(),
        allowed_end=scheme.allowed_end(),
    )
    wrapped = PyTorchWrapper_v2(
        torch_model, convert_inputs=convert_inputs, convert_outputs=convert_outputs
    )
    wrapped.set_dim("nI", nI)
    wrapped.set_dim("nO", scheme.num_tags)
    head.layers.append(wrapped)


def get_torch_model(model: Model) -> BiLSTMAttnCRFModel:
    """RETURNS (BiLSTMAttnCRFModel): the wrapped torch module of a built model."""
    head = model.get_ref("head") if model.has_ref("head") else model
    if not head.layers:
        raise ValueError(Errors.BCE060.format(what="no torch module yet"))
    return cast(BiLSTMAttnCRFModel, head.layers[0].shims[0]._model)


def get_crf(model: Model) -> CRF:
    """RETURNS (CRF): the CRF submodule of a built model."""
    return get_torch_model(model).crf


def get_torch_device(model: Model) -> torch.device:
    head = model.get_ref("head") if model.has_ref("head") else model
    return cast(PyTorchShim, head.layers[0].shims[0]).device


def head_init(
    model: Model, X: Optional[List[Floats2d]] = None, Y: Optional[Any] = None
) -> None:
    nI = None
    if X is not None and len(X):
        nI = X[0].shape[1]
    elif model.has_dim("nI") and model.get_dim("nI") is not None:
        nI = model.get_dim("nI")
    if nI is None:
        raise ValueError(Errors.BCE060.format(what="no sample docs to infer the input width from"))
    build_head(model, nI)


def head_forward(
    model: Model, X: List[Floats2d], is_train: bool
) -> Tuple[List[Floats2d], Callable]:
    if not model.layers:
        raise ValueError(Errors.BCE060.format(what="no torch module yet"))
    if not X:
        return [], lambda dY: []
    return model.layers[0](X, is_train)


def predict_emissions(model: Model, docs: List[Doc]) -> Tuple[torch.Tensor, torch.Tensor]:
    """Predict the padded emission scores of a batch of docs, for decoding.

    The same computation as ``model.predict(docs)`` (thinc's ``PyTorchShim.predict``:
    eval mode, no autograd, the shim's autocast setting), but the torch module's padded
    output is returned as it is, instead of being split into one array per doc and padded
    again for the CRF.

    model (Model): A built ``spacy-bilstm-crf.BiLSTMAttnCRF.v1`` model.
    docs (List[Doc]): The docs (at least one).
    RETURNS (Tuple[torch.Tensor, torch.Tensor]): Emissions (batch, max_len, n_tags), 0 at
        padded positions, on the module's device, and the (batch,) int64 CPU lengths.
    """
    head = model.get_ref("head")
    if not head.layers:
        raise ValueError(Errors.BCE060.format(what="no torch module yet"))
    X = model.get_ref("tok2vec").predict(docs)
    for doc, x in zip(docs, X):
        if x.shape[0] != len(doc):
            raise ValueError(Errors.BCE026.format(got=x.shape[0], expected=len(doc)))
    wrapped = head.layers[0]
    shim = cast(PyTorchShim, wrapped.shims[0])
    inputs, _ = convert_inputs(wrapped, X, False)
    torch_model = shim._model
    was_training = torch_model.training
    torch_model.eval()
    try:
        with torch.no_grad(), torch.autocast(
            device_type="cuda", enabled=shim._mixed_precision
        ):
            emissions = torch_model(*inputs.args, **inputs.kwargs)
    finally:
        torch_model.train(was_training)
    return emissions.float() if emissions.dtype == torch.float16 else emissions, inputs.args[1]


# ---------------------------------------------------------------- conversions
def pad_to_torch(
    ops: Any, X: List[Floats2d], device: torch.device, requires_grad: bool = False
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Pad a list of (length, width) arrays into a torch tensor and lengths.

    RETURNS (Tuple[torch.Tensor, torch.Tensor]): (batch, max_len, width) and (batch,) lengths.
    """
    lengths = [int(x.shape[0]) for x in X]
    width = int(X[0].shape[1]) if X else 0
    max_len = max(lengths) if lengths else 0
    # shape: (batch_size, max_len, width)
    padded = ops.xp.zeros((len(X), max_len, width), dtype=X[0].dtype if X else "f")
    for i, x in enumerate(X):
        padded[i, : lengths[i]] = x
    tensor = xp2torch(padded, requires_grad=requires_grad, device=device)
    return tensor, torch.tensor(lengths, dtype=torch.long)


def length_mask(lengths: torch.Tensor, max_len: int, device: torch.device) -> torch.Tensor:
    """RETURNS (torch.Tensor): bool (batch, max_len), True at the first `lengths[i]` steps."""
    return (torch.arange(max_len).unsqueeze(0) < lengths.unsqueeze(1)).to(device)


def unpad_from_torch(ops: Any, tensor: torch.Tensor, lengths: List[int]) -> List[Floats2d]:
    # shape: (batch_size, max_len, width)
    arr = cast(Floats3d, torch2xp(tensor))
    return [ops.as_contig(arr[i, :n]) for i, n in enumerate(lengths)]


def convert_inputs(
    model: Model, X: List[Floats2d], is_train: bool
) -> Tuple[ArgsKwargs, Callable[[ArgsKwargs], List[Floats2d]]]:
    shim = cast(PyTorchShim, model.shims[0])
    nI = model.get_dim("nI")
    for x in X:
        if x.ndim != 2 or x.shape[1] != nI:
            raise ValueError(Errors.BCE062.format(nI=nI, shape=tuple(x.shape)))
    lengths = [int(x.shape[0]) for x in X]
    Xt, lengths_t = pad_to_torch(model.ops, X, shim.device, requires_grad=is_train)

    def backprop(dXt: ArgsKwargs) -> List[Floats2d]:
        grad = dXt.args[0]
        if grad is None:
            return [model.ops.alloc2f(n, nI) for n in lengths]
        return unpad_from_torch(model.ops, grad, lengths)

    return ArgsKwargs(args=(Xt, lengths_t), kwargs={}), backprop


def convert_outputs(
    model: Model, X_Ytorch: Tuple[List[Floats2d], torch.Tensor], is_train: bool
) -> Tuple[List[Floats2d], Callable[[List[Floats2d]], ArgsKwargs]]:
    shim = cast(PyTorchShim, model.shims[0])
    X, Yt = X_Ytorch
    lengths = [int(x.shape[0]) for x in X]
    Y = unpad_from_torch(model.ops, Yt, lengths)

    def backprop(dY: List[Floats2d]) -> ArgsKwargs:
        dYt, _ = pad_to_torch(model.ops, dY, shim.device)
        return ArgsKwargs(args=(Yt,), kwargs={"grad_tensors": dYt})

    return Y, backprop
