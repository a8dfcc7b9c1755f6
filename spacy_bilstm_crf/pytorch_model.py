"""BiLSTM + local self-attention emission model (a plain ``torch.nn.Module``).

Step ``(batch, len, width) + lengths --BiLSTMAttnEmitter--> emissions`` of the pipeline
(see STYLE.md §0). The module imports only torch (and the torch-only ``crf.py``), so it can be used and tested without
thinc or spaCy; ``architectures.py`` wraps it with ``PyTorchWrapper_v2``.

Design notes:

* The BiLSTM runs over *packed* sequences (while training on the CPU: over the padded
  batch, the backward direction on each sequence reversed within its length, which is
  faster there and gives the same states), and self-attention uses *absolute* blocks with
  a key-padding mask, so (in eval mode) a token's emissions depend neither on the padding
  nor on the other docs of its batch. A batch of very different lengths runs in groups of
  similar length (``length_groups``), with the same result.
* Attention is local: positions are split into absolute blocks ``[0, W), [W, 2W), ...``
  (``W = window``); a query attends to the keys of its own block, extended by
  ``window_overlap`` tokens on each side (clipped to the sequence). Time and memory are
  linear in the length: no ``L x L`` score matrix is built when ``L > window``. For
  ``L <= window`` this is exactly full attention.
"""

import math
from typing import List, Optional, Tuple, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from .crf import CRF
from .errors import Errors

__all__ = [
    "BiLSTMAttnCRFModel",
    "BiLSTMAttnEmitter",
    "CharCNN",
    "LocalSelfAttention",
    "LockedDropout",
    "length_groups",
]


def check_int(
    name: str, value: object, minimum: int, *, odd: bool = False, error: str = Errors.BCE041
) -> int:
    """Validate an integer hyperparameter.

    name (str): The name of the setting, for the error message.
    value (object): The value to check.
    minimum (int): The smallest allowed value.
    odd (bool): Whether the value must also be odd.
    error (str): The coded error message to raise (with `name`, `value`, `expected`).
    RETURNS (int): The value.
    """
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or value < minimum
        or (odd and value % 2 == 0)
    ):
        expected = f"{'an odd' if odd else 'an'} integer >= {minimum}"
        raise ValueError(error.format(name=name, value=value, expected=expected))
    return value


def check_prob(name: str, value: object, *, error: str = Errors.BCE041) -> float:
    """Validate a dropout rate.

    name (str): The name of the setting, for the error message.
    value (object): The value to check.
    error (str): The coded error message to raise (with `name`, `value`, `expected`).
    RETURNS (float): The value as a float.
    """
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not 0.0 <= float(value) < 1.0
    ):
        raise ValueError(error.format(name=name, value=value, expected="a number in [0, 1)"))
    return float(value)


class LockedDropout(nn.Module):
    """Variational ("locked") dropout (Gal & Ghahramani 2016): one dropout mask per
    sequence, shared by all of its time steps, so that a dropped feature is dropped for
    the whole sequence rather than at random steps. Identity in eval mode.
    """

    def __init__(self, p: float) -> None:
        """p (float): The probability of dropping a feature, in [0, 1)."""
        super().__init__()
        self.p = check_prob("dropout", p)

    def extra_repr(self) -> str:
        return f"p={self.p}"

    def forward(self, x: Tensor) -> Tensor:
        """x (Tensor): (batch, seq_len, width). RETURNS (Tensor): the same shape."""
        if not self.training or self.p == 0.0:
            return x
        # shape: (batch, 1, width)
        mask = x.new_empty(x.size(0), 1, x.size(2)).bernoulli_(1.0 - self.p) / (1.0 - self.p)
        return x * mask

    def packed(self, seq: PackedSequence) -> PackedSequence:
        """Apply the dropout to a packed sequence, one mask per sequence.

        seq (PackedSequence): Packed data of shape (total_steps, width).
        RETURNS (PackedSequence): The same packing with the dropped data.
        """
        if not self.training or self.p == 0.0:
            return seq
        data, batch_sizes = seq.data, seq.batch_sizes
        n_seqs = int(batch_sizes[0])
        # shape: (n_seqs, width)
        mask = data.new_empty(n_seqs, data.size(1)).bernoulli_(1.0 - self.p) / (1.0 - self.p)
        # Row r of the packed data at step t is the (r - offset_t)-th sequence in the
        # packing's (sorted) order, offset_t being the number of rows before step t.
        # shape: (n_steps,)
        offsets = torch.cumsum(batch_sizes, 0) - batch_sizes
        # shape: (total_steps,)
        seq_of_row = torch.arange(data.size(0)) - torch.repeat_interleave(offsets, batch_sizes)
        return seq._replace(data=data * mask[seq_of_row.to(data.device)])


class LocalSelfAttention(nn.Module):
    """Multi-head scaled dot-product self-attention over absolute blocks, with a
    key-padding mask, output projection, residual connection and LayerNorm.

    Queries in the block ``[b * W, (b + 1) * W)`` attend to the keys in
    ``[b * W - overlap, (b + 1) * W + overlap)``, clipped to ``[0, length)``. If the padded
    length is at most ``window`` (or ``window`` is None or 0) this is full attention.
    """

    def __init__(
        self,
        width: int,
        heads: int,
        dropout: float = 0.1,
        window: Optional[int] = 256,
        window_overlap: int = 64,
    ) -> None:
        """Initialize the attention layer.

        width (int): The width of the input and output vectors.
        heads (int): The number of attention heads; must divide `width`.
        dropout (float): Dropout rate on the attention weights (train mode only).
        window (Optional[int]): The block size W. None or 0 means full (quadratic)
            attention over the whole sequence.
        window_overlap (int): How many keys each block sees beyond each of its edges.
            Must be smaller than `window`.
        """
        super().__init__()
        check_int("width", width, 1)
        check_int("attention_heads", heads, 1)
        if width % heads != 0:
            raise ValueError(Errors.BCE042.format(width=width, heads=heads))
        if window is not None:
            check_int("window", window, 0)
        check_int("window_overlap", window_overlap, 0)
        if window and window_overlap >= window:
            raise ValueError(Errors.BCE043.format(overlap=window_overlap, window=window))
        self.width = width
        self.heads = heads
        self.head_size = width // heads
        self.dropout = check_prob("attention_dropout", dropout)
        self.window: Optional[int] = window if window else None
        self.window_overlap = window_overlap if self.window else 0
        self.qkv = nn.Linear(width, 3 * width)
        self.out_proj = nn.Linear(width, width)
        self.norm = nn.LayerNorm(width)

    def extra_repr(self) -> str:
        return (
            f"width={self.width}, heads={self.heads}, dropout={self.dropout}, "
            f"window={self.window}, window_overlap={self.window_overlap}"
        )

    def block_geometry(self, seq_len: int) -> Tuple[int, int, int]:
        """Return the blocking used for a padded length: full attention is the special
        case of a single block of size `seq_len` without overlap.

        seq_len (int): The padded sequence length (> 0).
        RETURNS (Tuple[int, int, int]): The block size, the overlap and the number of blocks.
        """
        if self.window is None or seq_len <= self.window:
            return seq_len, 0, 1
        block = self.window
        return block, self.window_overlap, math.ceil(seq_len / block)

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        """Apply block-local self-attention, the residual connection and LayerNorm.

        x (Tensor): The inputs, shape (batch, seq_len, width). Padded positions may hold
            anything finite; they are never used as keys.
        lengths (Tensor): The true lengths, shape (batch,), on the device of `x`.
        RETURNS (Tensor): The outputs, shape (batch, seq_len, width). Rows at padded
            positions are finite but meaningless.
        """
        batch, seq_len, width = x.shape
        if seq_len == 0:
            return self.norm(x)
        block, overlap, n_blocks = self.block_geometry(seq_len)
        padded_len = n_blocks * block
        span = block + 2 * overlap
        heads, head_size = self.heads, self.head_size

        # shape: (batch, seq_len, width) each
        query, key, value = self.qkv(x).chunk(3, dim=-1)
        # shape: (batch * n_blocks, heads, block, head_size)
        query = (
            F.pad(query, (0, 0, 0, padded_len - seq_len))
            .view(batch, n_blocks, block, heads, head_size)
            .permute(0, 1, 3, 2, 4)
            .reshape(batch * n_blocks, heads, block, head_size)
        )
        # shape: (batch * n_blocks, heads, span, head_size) each
        key, value = (
            F.pad(t, (0, 0, overlap, padded_len - seq_len + overlap))
            .unfold(1, span, block)  # (batch, n_blocks, width, span)
            .reshape(batch, n_blocks, heads, head_size, span)
            .transpose(3, 4)
            .reshape(batch * n_blocks, heads, span, head_size)
            for t in (key, value)
        )
        # Absolute position of each key slot in each block.
        # shape: (n_blocks, span)
        positions = (
            torch.arange(n_blocks, device=x.device).unsqueeze(1) * block
            - overlap
            + torch.arange(span, device=x.device).unsqueeze(0)
        )
        # shape: (batch, n_blocks, span)
        valid = (positions >= 0) & (positions < lengths.view(batch, 1, 1))
        # An additive mask with a large *finite* negative value: a fully masked row (a
        # query in a block made only of padding) then gets finite, ignored outputs
        # instead of NaNs that would poison the gradients.
        # shape: (batch * n_blocks, 1, 1, span)
        mask = torch.zeros(valid.shape, dtype=x.dtype, device=x.device).masked_fill(
            ~valid, torch.finfo(x.dtype).min
        )
        mask = mask.view(batch * n_blocks, 1, 1, span)
        # shape: (batch * n_blocks, heads, block, head_size)
        attended = F.scaled_dot_product_attention(
            query,
            key,
            value,
            attn_mask=mask,
            dropout_p=self.dropout if self.training else 0.0,
        )
        # shape: (batch, seq_len, width)
        attended = (
            attended.view(batch, n_blocks, heads, block, head_size)
            .permute(0, 1, 3, 2, 4)
            .reshape(batch, padded_len, width)[:, :seq_len]
        )
        return self.norm(x + self.out_proj(attended))


class BiLSTMAttnEmitter(nn.Module):
    """Compute CRF emission scores from padded token vectors: input dropout, a
    bidirectional LSTM over packed sequences, dropout, optional block-local multi-head
    self-attention (residual + LayerNorm), dropout and a linear layer to the tags.
    """

    def __init__(
        self,
        input_size: int,
        num_tags: int,
        hidden_size: int = 128,
        num_layers: int = 2,
        dropout: float = 0.3,
        input_dropout: float = 0.1,
        attention_heads: int = 4,
        attention_dropout: float = 0.1,
        window: Optional[int] = 256,
        window_overlap: int = 64,
        variational_dropout: bool = False,
    ) -> None:
        """Initialize the emission model.

        input_size (int): The width of the token vectors (thinc's `nI`).
        num_tags (int): The number of tags, i.e. of emission scores per token (`nO`).
        hidden_size (int): The LSTM hidden size per direction; the BiLSTM outputs and
            the attention work on 2 * hidden_size.
        num_layers (int): The number of stacked BiLSTM layers.
        dropout (float): Dropout between LSTM layers, after the BiLSTM and before the
            output layer.
        input_dropout (float): Dropout on the input vectors.
        attention_heads (int): The number of attention heads; must divide 2 * hidden_size.
            0 turns attention off (a plain BiLSTM-CRF; no attention parameters).
        attention_dropout (float): Dropout on the attention weights.
        window (Optional[int]): The attention block size W. Sequences up to W tokens get
            full attention; longer ones get block-local attention, linear in the length.
            None or 0 means always full attention (quadratic in the length).
        window_overlap (int): How many tokens beyond each edge of its block a query may
            attend to. Must be smaller than `window`.
        variational_dropout (bool): Use one dropout mask per sequence for all its time
            steps (``LockedDropout``) for `input_dropout` and `dropout`, including between
            the LSTM layers, which then run one at a time. False: ordinary dropout.
        """
        super().__init__()
        self.input_size = check_int("input_size", input_size, 1)
        self.num_tags = check_int("num_tags", num_tags, 1)
        self.hidden_size = check_int("hidden_size", hidden_size, 1)
        self.num_layers = check_int("num_layers", num_layers, 1)
        self.attention_heads = check_int("attention_heads", attention_heads, 0)
        dropout = check_prob("dropout", dropout)
        if not isinstance(variational_dropout, bool):
            raise ValueError(
                Errors.BCE041.format(
                    name="variational_dropout", value=variational_dropout, expected="true or false"
                )
            )
        self.variational_dropout = variational_dropout
        self.lstm: nn.Module
        if variational_dropout:
            self.input_dropout: nn.Module = LockedDropout(check_prob("input_dropout", input_dropout))
            self.dropout: nn.Module = LockedDropout(dropout)
            # one single-layer BiLSTM per layer, with locked dropout between them
            self.lstm = nn.ModuleList(
                nn.LSTM(
                    input_size if i == 0 else 2 * hidden_size,
                    hidden_size,
                    bidirectional=True,
                    batch_first=True,
                )
                for i in range(num_layers)
            )
        else:
            self.input_dropout = nn.Dropout(check_prob("input_dropout", input_dropout))
            # nn.LSTM warns when given inter-layer dropout with a single layer.
            self.lstm = nn.LSTM(
                input_size,
                hidden_size,
                num_layers=num_layers,
                bidirectional=True,
                batch_first=True,
                dropout=dropout if num_layers > 1 else 0.0,
            )
            self.dropout = nn.Dropout(dropout)
        self.attention: Optional[LocalSelfAttention] = None
        if attention_heads > 0:
            self.attention = LocalSelfAttention(
                2 * hidden_size,
                attention_heads,
                dropout=attention_dropout,
                window=window,
                window_overlap=window_overlap,
            )
        else:  # still validate, so that a config error is not hidden by the ablation
            check_prob("attention_dropout", attention_dropout)
            if window is not None:
                check_int("window", window, 0)
            check_int("window_overlap", window_overlap, 0)
            if window and window_overlap >= window:
                raise ValueError(Errors.BCE043.format(overlap=window_overlap, window=window))
        self.hidden2tag = nn.Linear(2 * hidden_size, num_tags)

    def forward(self, inputs: Tensor, lengths: Tensor) -> Tensor:
        """Compute the emission scores of a padded batch.

        inputs (Tensor): Token vectors, shape (batch, seq_len, input_size), of the
            module's floating dtype and device. The content of padded positions is ignored.
        lengths (Tensor): Integer lengths, shape (batch,), each in [0, seq_len]; on any
            device.
        RETURNS (Tensor): Emission scores, shape (batch, seq_len, num_tags); exactly 0 at
            padded positions.
        """
        lengths_cpu = self._validate(inputs, lengths)
        batch, seq_len, _ = inputs.shape
        lengths_list = lengths_cpu.tolist()
        groups = length_groups(lengths_list) if seq_len > 0 else None
        if groups is None:
            return self._emit(inputs, lengths_cpu)
        # Sequences of very different lengths: run each group of similar length padded
        # to its own longest. Every step treats each sequence on its own, so this gives
        # the same emissions as one padded batch, for less work.
        order = sorted(range(batch), key=lengths_list.__getitem__)
        perm = torch.tensor(order, dtype=torch.long)
        inputs_sorted = inputs.index_select(0, perm.to(inputs.device))
        lengths_sorted = lengths_cpu.index_select(0, perm)
        outputs = [
            F.pad(self._emit(inputs_sorted[begin:end, :padded], lengths_sorted[begin:end]),
                  (0, 0, 0, seq_len - padded))
            for begin, end, padded in groups
        ]
        inverse = torch.empty(batch, dtype=torch.long)
        inverse[perm] = torch.arange(batch)
        # shape: (batch, seq_len, num_tags)
        return torch.cat(outputs, dim=0).index_select(0, inverse.to(inputs.device))

    def _emit(self, inputs: Tensor, lengths_cpu: Tensor) -> Tensor:
        """`forward` for one padded batch, with validated lengths on the CPU."""
        batch, seq_len, _ = inputs.shape
        # shape: (batch,)
        lengths_dev = lengths_cpu.to(inputs.device)
        # shape: (batch, seq_len)
        mask = torch.arange(seq_len, device=inputs.device).unsqueeze(0) < lengths_dev.unsqueeze(1)
        # Zero the padding so that arbitrary pad content (even inf/NaN) cannot leak in.
        # shape: (batch, seq_len, input_size)
        inputs = inputs.masked_fill(~mask.unsqueeze(-1), 0.0)
        # shape: (batch, seq_len, 2 * hidden_size)
        hidden = self._encode(inputs, lengths_cpu)
        if self.attention is not None:
            hidden = self.dropout(self.attention(hidden, lengths_dev))
        # shape: (batch, seq_len, num_tags)
        emissions = self.hidden2tag(hidden)
        return emissions.masked_fill(~mask.unsqueeze(-1), 0.0)

    def _encode(self, inputs: Tensor, lengths_cpu: Tensor) -> Tensor:
        """Run the input dropout, the BiLSTM and the dropout after it over the non-empty
        sequences, packed (unpacked when training on the CPU, see `_encode_unpacked`).

        inputs (Tensor): Shape (batch, seq_len, input_size).
        lengths_cpu (Tensor): int64 lengths on the CPU, shape (batch,).
        RETURNS (Tensor): The BiLSTM states, shape (batch, seq_len, 2 * hidden_size);
            0 at padded positions and for empty sequences.
        """
        batch, seq_len, _ = inputs.shape
        # pack_padded_sequence rejects zero lengths: run only the non-empty sequences.
        # shape: (n_nonempty,)
        nonempty = (lengths_cpu > 0).nonzero().squeeze(1)
        if seq_len == 0 or nonempty.numel() == 0:
            # Every position is padding, so `inputs` is all zeros here. Keep it in the
            # autograd graph anyway, so that callers (e.g. thinc's PyTorchShim, which reads
            # `inputs.grad`) get a zero gradient rather than None.
            return inputs.new_zeros(batch, seq_len, 2 * self.hidden_size) + inputs.sum() * 0.0
        if inputs.device.type == "cpu" and torch.is_grad_enabled():
            return self._encode_unpacked(inputs, lengths_cpu)
        all_nonempty = nonempty.numel() == batch
        index = nonempty.to(inputs.device)
        # shape: (n_nonempty, seq_len, input_size)
        selected = inputs if all_nonempty else inputs.index_select(0, index)
        packed = _dropout_packed(
            self.input_dropout,
            pack_padded_sequence(selected, lengths_cpu[nonempty], batch_first=True, enforce_sorted=False),
        )
        if isinstance(self.lstm, nn.ModuleList):
            assert isinstance(self.dropout, LockedDropout)
            packed_states = packed
            for i, layer in enumerate(self.lstm):
                if i > 0:
                    packed_states = self.dropout.packed(packed_states)
                packed_states, _ = layer(packed_states)
        else:
            packed_states, _ = self.lstm(packed)
        packed_states = _dropout_packed(self.dropout, packed_states)
        # shape: (n_nonempty, seq_len, 2 * hidden_size)
        padded, _ = pad_packed_sequence(packed_states, batch_first=True, total_length=seq_len)
        if all_nonempty:
            return padded
        # shape: (batch, seq_len, 2 * hidden_size), 0 for the empty sequences
        return inputs.new_zeros(batch, seq_len, 2 * self.hidden_size).index_copy(0, index, padded)

    def _lstm_layers(self) -> List[Tuple[List[Tensor], List[Tensor]]]:
        """The weights of each BiLSTM layer: (forward direction, backward direction), each
        [weight_ih, weight_hh, bias_ih, bias_hh], from the nn.LSTM (or, with variational
        dropout, the nn.LSTM per layer) that owns them."""
        if isinstance(self.lstm, nn.ModuleList):
            owners = [(lstm, 0) for lstm in self.lstm]
        else:
            owners = [(self.lstm, i) for i in range(self.num_layers)]
        layers = []
        for lstm, i in owners:
            directions = tuple(
                [getattr(lstm, f"{name}_l{i}{suffix}") for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
                for suffix in ("", "_reverse")
            )
            layers.append(directions)
        return layers  # type: ignore[return-value]

    def _encode_unpacked(self, inputs: Tensor, lengths_cpu: Tensor) -> Tensor:
        """`_encode` for training on the CPU: the same BiLSTM, run on the padded batch.

        The backward direction reads each sequence reversed within its own length (a
        gather), so that padding never enters a real token's states; the forward
        direction's padding comes after the real tokens anyway. On the CPU, PyTorch's
        packed LSTM backpropagates each time step through a slice of the whole packed
        input (allocating and adding a gradient of its full size per step): on random
        batches of CoNLL-2003 sentences the BiLSTM alone ran 1.5x faster this way, and
        training steps (with the length groups) 1.5x faster (benchmarks/RESULTS.md,
        session 9).

        inputs (Tensor): Shape (batch, seq_len, input_size), zero at padded positions.
        lengths_cpu (Tensor): int64 lengths on the CPU, shape (batch,).
        RETURNS (Tensor): Shape (batch, seq_len, 2 * hidden_size); 0 at padded positions.
        """
        batch, seq_len, _ = inputs.shape
        # shape: (1, seq_len)
        positions = torch.arange(seq_len).unsqueeze(0)
        # shape: (batch, 1)
        lengths = lengths_cpu.unsqueeze(1)
        # shape: (batch, seq_len)
        mask = positions < lengths
        # position t of a reversed sequence holds its token length - 1 - t; padding stays
        # shape: (batch, seq_len)
        reverse = torch.where(mask, lengths - 1 - positions, positions)
        variational = isinstance(self.lstm, nn.ModuleList)
        hidden = self.input_dropout(inputs)
        for i, (forward_weights, backward_weights) in enumerate(self._lstm_layers()):
            if i > 0:
                if variational:
                    hidden = self.dropout(hidden)
                else:  # nn.LSTM's own dropout between layers
                    hidden = F.dropout(hidden, cast(nn.LSTM, self.lstm).dropout, self.training)
            # shape: (1, batch, hidden_size) each
            state = (hidden.new_zeros(1, batch, self.hidden_size), hidden.new_zeros(1, batch, self.hidden_size))
            # the function nn.LSTM.forward calls, one direction of one layer at a time
            forward_states = torch.lstm(hidden, state, forward_weights, True, 1, 0.0, self.training, False, True)[0]
            index = reverse.unsqueeze(-1).expand(batch, seq_len, hidden.shape[-1])
            backward_states = torch.lstm(
                hidden.gather(1, index), state, backward_weights, True, 1, 0.0, self.training, False, True
            )[0]
            index = reverse.unsqueeze(-1).expand(batch, seq_len, self.hidden_size)
            # shape: (batch, seq_len, 2 * hidden_size)
            hidden = torch.cat([forward_states, backward_states.gather(1, index)], dim=-1)
        return self.dropout(hidden).masked_fill(~mask.unsqueeze(-1), 0.0)

    def _validate(self, inputs: Tensor, lengths: Tensor) -> Tensor:
        """Check the arguments of `forward` up front.

        inputs (Tensor): See `forward`.
        lengths (Tensor): See `forward`.
        RETURNS (Tensor): The lengths as int64 on the CPU.
        """
        if not isinstance(inputs, Tensor):
            raise ValueError(
                Errors.BCE040.format(name="inputs", expected="a torch.Tensor", got=type(inputs))
            )
        if not isinstance(lengths, Tensor):
            raise ValueError(
                Errors.BCE040.format(name="lengths", expected="a torch.Tensor", got=type(lengths))
            )
        if inputs.dim() != 3 or inputs.size(2) != self.input_size:
            raise ValueError(
                Errors.BCE040.format(
                    name="inputs",
                    expected=f"shape (batch, seq_len, {self.input_size})",
                    got=f"shape {tuple(inputs.shape)}",
                )
            )
        param = self.hidden2tag.weight
        if inputs.dtype != param.dtype:
            raise ValueError(
                Errors.BCE040.format(
                    name="inputs",
                    expected=f"dtype {param.dtype} (the module's; convert the module or "
                    "the inputs with .to(dtype))",
                    got=f"dtype {inputs.dtype}",
                )
            )
        if inputs.device != param.device:
            raise ValueError(
                Errors.BCE040.format(
                    name="inputs",
                    expected=f"device {param.device} (the module's)",
                    got=f"device {inputs.device}",
                )
            )
        if lengths.shape != (inputs.size(0),):
            raise ValueError(
                Errors.BCE040.format(
                    name="lengths",
                    expected=f"shape ({inputs.size(0)},) (one length per sequence)",
                    got=f"shape {tuple(lengths.shape)}",
                )
            )
        if lengths.dtype == torch.bool or lengths.is_floating_point() or lengths.is_complex():
            raise ValueError(
                Errors.BCE040.format(
                    name="lengths", expected="an integer dtype", got=f"dtype {lengths.dtype}"
                )
            )
        lengths_cpu = lengths.detach().to(device="cpu", dtype=torch.int64)
        if lengths_cpu.numel() and (
            int(lengths_cpu.min()) < 0 or int(lengths_cpu.max()) > inputs.size(1)
        ):
            raise ValueError(
                Errors.BCE040.format(
                    name="lengths",
                    expected=f"values in [0, {inputs.size(1)}] (the padded length)",
                    got=lengths_cpu.tolist(),
                )
            )
        return lengths_cpu


def length_groups(lengths: List[int], min_saving: float = 0.25) -> Optional[List[Tuple[int, int, int]]]:
    """Plan a padded batch as groups of sequences of similar length, or None if one
    padded batch is about as cheap.

    A batch of random sentences is padded to its longest (CoNLL-2003 training batches
    ~3x), and the BiLSTM and the attention pay for every padded position. Grouping the
    sequences by powers of two of their length ([0, 16), [16, 32), [32, 64), ...) pads
    each group less than 2x.

    lengths (List[int]): The length of each sequence.
    min_saving (float): Group only if that saves at least this share of the padded
        positions.
    RETURNS (Optional[List[Tuple[int, int, int]]]): (start, end, padded length) of each
        group over the sequences sorted by length (`sorted(range(n), key=lengths.__getitem__)`),
        or None.
    """
    if len(lengths) < 2:
        return None
    ordered = sorted(lengths)
    groups: List[Tuple[int, int, int]] = []
    start = 0
    for i in range(1, len(ordered) + 1):
        if i == len(ordered) or max(ordered[i], 8).bit_length() != max(ordered[start], 8).bit_length():
            groups.append((start, i, ordered[i - 1]))
            start = i
    if len(groups) < 2:
        return None
    grouped = sum((end - begin) * padded for begin, end, padded in groups)
    if grouped > (1.0 - min_saving) * len(ordered) * ordered[-1]:
        return None
    return groups


def _dropout_packed(dropout: nn.Module, seq: PackedSequence) -> PackedSequence:
    """Apply an ``nn.Dropout`` or a ``LockedDropout`` (one mask per sequence) to the
    rows of a packed sequence."""
    if not dropout.training:
        return seq
    if isinstance(dropout, LockedDropout):
        return dropout.packed(seq)
    return seq._replace(data=dropout(seq.data))


class BiLSTMAttnCRFModel(nn.Module):
    """The torch module that thinc's ``PyTorchWrapper_v2`` wraps: the emission model and
    the CRF as submodules, so that spaCy's optimizer updates the CRF's transition scores
    and the shim's ``state_dict`` saves them. ``forward`` returns the emissions; the pipe
    calls ``crf`` on them for the loss, decoding and confidences.
    """

    def __init__(
        self,
        input_size: int,
        num_tags: int,
        hidden_size: int = 128,
        num_layers: int = 2,
        dropout: float = 0.3,
        input_dropout: float = 0.1,
        attention_heads: int = 4,
        attention_dropout: float = 0.1,
        window: Optional[int] = 256,
        window_overlap: int = 64,
        variational_dropout: bool = False,
        allowed_start: Optional[object] = None,
        allowed_transitions: Optional[object] = None,
        allowed_end: Optional[object] = None,
    ) -> None:
        """Initialize the model. The arguments are those of ``BiLSTMAttnEmitter`` and the
        CRF's boolean constraint masks (see ``crf.CRF``).
        """
        super().__init__()
        self.emitter = BiLSTMAttnEmitter(
            input_size,
            num_tags,
            hidden_size=hidden_size,
            num_layers=num_layers,
            dropout=dropout,
            input_dropout=input_dropout,
            attention_heads=attention_heads,
            attention_dropout=attention_dropout,
            window=window,
            window_overlap=window_overlap,
            variational_dropout=variational_dropout,
        )
        self.crf = CRF(
            num_tags,
            batch_first=True,
            allowed_start=allowed_start,
            allowed_transitions=allowed_transitions,
            allowed_end=allowed_end,
        )

    def forward(self, inputs: Tensor, lengths: Tensor) -> Tensor:
        """inputs (Tensor): (batch, seq_len, input_size). lengths (Tensor): (batch,).
        RETURNS (Tensor): emissions (batch, seq_len, num_tags), 0 at padded positions.
        """
        return self.emitter(inputs, lengths)


class CharCNN(nn.Module):
    """Character-level CNN word encoder (Ma & Hovy 2016): character embeddings, dropout,
    one 1-d convolution over each word's characters, max-pooled over its real characters.

    Character id 0 is padding: its embedding is fixed at zero and its positions are
    excluded from the max, so (in eval mode) a word's vector does not depend on how much
    padding its batch has. The thinc glue (character ids from Docs, validation of the
    settings, the registered ``spacy-bilstm-crf.CharCNN.v1``) is in ``char_cnn.py``.
    """

    def __init__(
        self,
        num_embeddings: int,
        embedding_dim: int,
        out_channels: int,
        kernel_size: int = 3,
        dropout: float = 0.25,
    ) -> None:
        """num_embeddings (int): Character embedding rows, 0 being the padding row.
        embedding_dim (int): The width of a character embedding.
        out_channels (int): The number of filters: the width of a word vector.
        kernel_size (int): The convolution window, in characters (odd, so that the
            convolution keeps the length with ``padding = kernel_size // 2``).
        dropout (float): Dropout on the character embeddings (in training mode).
        """
        super().__init__()
        self.embed = nn.Embedding(num_embeddings, embedding_dim, padding_idx=0)
        self.dropout = nn.Dropout(dropout)
        self.conv = nn.Conv1d(
            embedding_dim, out_channels, kernel_size=kernel_size, padding=kernel_size // 2
        )

    def forward(self, char_ids: Tensor) -> Tensor:
        """char_ids (Tensor): int64 (n_words, max_chars_in_batch), 0-padded on the right.
        RETURNS (Tensor): (n_words, out_channels); 0 for a word without characters.
        """
        # shape: (n_words, n_chars)
        is_char = char_ids != 0
        # shape: (n_words, n_chars, embedding_dim)
        embedded = self.dropout(self.embed(char_ids))
        # shape: (n_words, out_channels, n_chars)
        conv = self.conv(embedded.transpose(1, 2))
        conv = conv.masked_fill(~is_char.unsqueeze(1), float("-inf"))
        # shape: (n_words, out_channels)
        pooled = conv.max(dim=2).values
        return pooled.masked_fill(~is_char.any(dim=1, keepdim=True), 0.0)
