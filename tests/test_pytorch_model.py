"""Tests for spacy_bilstm_crf.pytorch_model (BiLSTM + local self-attention emitter)."""

import math
from typing import List, Optional

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from spacy_bilstm_crf.pytorch_model import (
    BiLSTMAttnEmitter,
    LocalSelfAttention,
    LockedDropout,
    length_groups,
)

INPUT_SIZE = 6
NUM_TAGS = 5


def make_emitter(seed: int = 0, **kwargs) -> BiLSTMAttnEmitter:
    settings = {"hidden_size": 8, "num_layers": 2, "attention_heads": 2}
    settings.update(kwargs)
    torch.manual_seed(seed)
    return BiLSTMAttnEmitter(INPUT_SIZE, NUM_TAGS, **settings)


def pad_batch(seqs: List[torch.Tensor], seq_len: Optional[int] = None, fill: float = 0.0):
    """Pad a list of (length, width) tensors to (batch, seq_len, width) + lengths."""
    seq_len = max([len(s) for s in seqs] + [0]) if seq_len is None else seq_len
    width = seqs[0].shape[1]
    batch = torch.full((len(seqs), seq_len, width), fill, dtype=seqs[0].dtype)
    for i, seq in enumerate(seqs):
        batch[i, : len(seq)] = seq
    return batch, torch.tensor([len(s) for s in seqs], dtype=torch.int64)


def random_seqs(lengths: List[int], seed: int = 1, dtype=torch.float32) -> List[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(n, INPUT_SIZE, generator=gen, dtype=dtype) for n in lengths]


def reference_attention(layer: LocalSelfAttention, x: torch.Tensor, lengths: torch.Tensor):
    """Slow reference: the block-local attention definition with an explicit L x L mask."""
    batch, seq_len, width = x.shape
    heads, head_size = layer.heads, width // layer.heads
    q, k, v = (
        t.view(batch, seq_len, heads, head_size).transpose(1, 2)
        for t in layer.qkv(x).chunk(3, dim=-1)
    )
    scores = q @ k.transpose(-1, -2) / math.sqrt(head_size)
    i = torch.arange(seq_len).view(-1, 1)
    j = torch.arange(seq_len).view(1, -1)
    if layer.window is None:
        allowed = torch.ones(seq_len, seq_len, dtype=torch.bool)
    else:
        block_start = (i // layer.window) * layer.window
        allowed = (j >= block_start - layer.window_overlap) & (
            j < block_start + layer.window + layer.window_overlap
        )
    allowed = allowed.unsqueeze(0) & (j.unsqueeze(0) < lengths.view(-1, 1, 1))
    scores = scores.masked_fill(~allowed.unsqueeze(1), float("-inf"))
    probs = torch.softmax(scores, dim=-1).nan_to_num(0.0)  # fully masked = padded queries
    attended = (probs @ v).transpose(1, 2).reshape(batch, seq_len, width)
    return layer.norm(x + layer.out_proj(attended))


# ---------------------------------------------------------------------------- shapes


@pytest.mark.parametrize("heads", [0, 1, 4])
@pytest.mark.parametrize("window", [None, 0, 4, 256])
def test_output_shape_and_zero_padding(heads, window):
    model = make_emitter(attention_heads=heads, window=window, window_overlap=1).eval()
    inputs, lengths = pad_batch(random_seqs([3, 11, 7]), fill=float("nan"))
    inputs[0, 3:5] = float("inf")
    emissions = model(inputs, lengths)
    assert emissions.shape == (3, 11, NUM_TAGS)
    assert emissions.dtype == torch.float32
    mask = torch.arange(11).unsqueeze(0) < lengths.unsqueeze(1)
    assert torch.isfinite(emissions).all()
    assert (emissions[~mask] == 0).all()
    assert (emissions[mask] != 0).any(dim=-1).all()


def test_lengths_any_integer_dtype():
    model = make_emitter().eval()
    inputs, lengths = pad_batch(random_seqs([4, 2]))
    expected = model(inputs, lengths)
    for dtype in (torch.int32, torch.int16, torch.uint8):
        assert torch.equal(model(inputs, lengths.to(dtype)), expected)


# ---------------------------------------------------------------- padding independence


def assert_padding_independent(model: BiLSTMAttnEmitter, lengths: List[int], seed: int = 1):
    model.eval()
    seqs = random_seqs(lengths, seed=seed)
    batch, batch_lengths = pad_batch(seqs, fill=3.0)
    batched = model(batch, batch_lengths)
    longer, longer_lengths = pad_batch(seqs, seq_len=max(lengths) + 13, fill=-7.0)
    padded_more = model(longer, longer_lengths)
    reversed_batch, reversed_lengths = pad_batch(seqs[::-1])
    reversed_out = model(reversed_batch, reversed_lengths).flip(0)
    for i, seq in enumerate(seqs):
        n = len(seq)
        alone = model(seq.unsqueeze(0), torch.tensor([n]))[0]
        alone_padded = model(
            torch.cat([seq, torch.randn(5, INPUT_SIZE)]).unsqueeze(0), torch.tensor([n])
        )[0]
        torch.testing.assert_close(alone_padded[:n], alone, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(batched[i, :n], alone, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(padded_more[i, :n], alone, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(reversed_out[i, :n], alone, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    "kwargs,lengths",
    [
        ({}, [3, 20, 37, 1]),
        ({"attention_heads": 0}, [3, 20, 37, 1]),
        ({"window": 8, "window_overlap": 2}, [3, 20, 37]),
        ({"window": 8, "window_overlap": 2}, [8, 16, 17, 1, 9]),
        ({"window": 5, "window_overlap": 0}, [4, 23, 10]),
        ({"window": 6, "window_overlap": 5}, [2, 31, 13]),
        ({"window": None}, [3, 20, 37]),
        ({"variational_dropout": True}, [3, 20, 37, 1]),
        ({"variational_dropout": True, "num_layers": 3}, [5, 2, 9]),
    ],
)
def test_padding_and_batch_independence(kwargs, lengths):
    assert_padding_independent(make_emitter(**kwargs), lengths)


@settings(max_examples=15, deadline=None)
@given(
    lengths=st.lists(st.integers(1, 30), min_size=1, max_size=4),
    window=st.integers(2, 9),
    overlap_frac=st.floats(0.0, 0.99),
)
def test_padding_independence_property(lengths, window, overlap_frac):
    overlap = int(overlap_frac * window)
    model = make_emitter(window=window, window_overlap=overlap)
    assert_padding_independent(model, lengths)


# ------------------------------------------------------------------ windowed attention


@pytest.mark.parametrize("lengths", [[8, 5, 1], [3], [7, 8]])
def test_windowed_equals_full_attention_when_short(lengths):
    windowed = make_emitter(window=8, window_overlap=3).eval()
    full = make_emitter(window=None).eval()
    full.load_state_dict(windowed.state_dict())
    inputs, lens = pad_batch(random_seqs(lengths))
    torch.testing.assert_close(windowed(inputs, lens), full(inputs, lens), atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize(
    "window,overlap,lengths",
    [
        (8, 2, [37, 20, 3]),
        (8, 0, [37, 20, 3]),
        (8, 7, [37, 20, 3]),
        (4, 1, [16, 13, 0, 4]),
        (3, 2, [10, 1]),
        (None, 0, [12, 7]),
        (64, 8, [40, 12]),  # everything within one block
    ],
)
def test_windowed_attention_matches_bruteforce(window, overlap, lengths):
    torch.manual_seed(0)
    layer = LocalSelfAttention(12, 3, window=window, window_overlap=overlap).double().eval()
    lens = torch.tensor(lengths)
    x = torch.randn(len(lengths), max(lengths), 12, dtype=torch.float64)
    out = layer(x, lens)
    expected = reference_attention(layer, x, lens)
    mask = torch.arange(x.size(1)).unsqueeze(0) < lens.unsqueeze(1)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out[mask], expected[mask], atol=1e-10, rtol=1e-10)


def test_length_groups_plan():
    assert length_groups([]) is None
    assert length_groups([5]) is None
    # similar lengths: one padded batch is as cheap
    assert length_groups([10, 12, 9, 14, 15]) is None
    assert length_groups([3, 17]) is not None
    lengths = [3] * 40 + [20] * 5 + [90]
    groups = length_groups(lengths)
    assert groups is not None
    ordered = sorted(lengths)
    # contiguous, covering every sequence in sorted order, each padded to its longest
    assert groups[0][0] == 0 and groups[-1][1] == len(lengths)
    assert all(a[1] == b[0] for a, b in zip(groups, groups[1:]))
    assert all(padded == ordered[end - 1] for _, end, padded in groups)
    assert [padded for _, _, padded in groups] == [3, 20, 90]
    assert length_groups(lengths, min_saving=0.99) is None


@pytest.mark.parametrize("kwargs", [
    {"window": 256, "window_overlap": 64},
    {"window": 8, "window_overlap": 3},
    {"window": None},
    {"attention_heads": 0},
    {"variational_dropout": True, "num_layers": 3},
])
@pytest.mark.parametrize("train", [False, True])
@pytest.mark.parametrize("lengths", [[3, 40, 0, 17, 5, 90, 2, 33, 1, 16, 64, 65, 4, 4], [0, 0, 40]])
def test_grouped_batch_equals_one_padded_batch(kwargs, train, lengths):
    """A batch of very different lengths runs in groups of similar length: the same
    emissions and gradients as one padded batch (also a group of empty docs only)."""
    model = make_emitter(dropout=0.0, input_dropout=0.0, attention_dropout=0.0, **kwargs).double()
    model.train(train)
    assert length_groups(lengths) is not None
    inputs, lens = pad_batch(random_seqs(lengths, dtype=torch.float64), seq_len=95)
    inputs.requires_grad_(True)
    grouped = model(inputs, lens)
    single = model._emit(inputs, lens)
    assert grouped.shape == single.shape == (len(lengths), 95, NUM_TAGS)
    torch.testing.assert_close(grouped, single, atol=1e-12, rtol=1e-12)
    weights = torch.randn_like(grouped)
    (grad_grouped,) = torch.autograd.grad((grouped * weights).sum(), inputs)
    (grad_single,) = torch.autograd.grad((single * weights).sum(), inputs)
    torch.testing.assert_close(grad_grouped, grad_single, atol=1e-10, rtol=1e-10)


def test_train_mode_without_dropout_equals_eval():
    """Training on the CPU runs the BiLSTM unpacked: with every dropout rate at 0 it must
    give eval mode's emissions (packed, without gradients; both split these lengths into
    the same groups)."""
    model = make_emitter(dropout=0.0, input_dropout=0.0, attention_dropout=0.0)
    inputs, lengths = pad_batch(random_seqs([40, 3, 0, 6, 1, 25]), fill=float("nan"))
    trained = model.train()(inputs, lengths)
    with torch.no_grad():
        evaluated = model.eval()(inputs, lengths)
    torch.testing.assert_close(trained, evaluated, atol=1e-6, rtol=1e-6)
    mask = torch.arange(40).unsqueeze(0) < lengths.unsqueeze(1)
    assert (trained[~mask] == 0).all()


@pytest.mark.parametrize("unpacked", [True, False])
def test_dropout_rates_at_each_point(unpacked, monkeypatch):
    """Training drops the BiLSTM's input at `input_dropout`, the input of its second
    layer, its output (the attention's input) and the attention's output at `dropout`,
    on the unpacked path (gradients on, CPU) and the packed one (no gradients; there the
    nn.LSTM drops between its layers inside, unobserved)."""
    model = make_emitter(input_dropout=0.2, dropout=0.5, attention_dropout=0.0, hidden_size=16).train()
    seen = {}
    lstm = torch.lstm

    def record_lstm(*args):
        seen.setdefault("lstm", []).append(args[0].detach().clone())
        return lstm(*args)

    def record(name):
        def hook(module, args):
            data = args[0].data if isinstance(args[0], torch.nn.utils.rnn.PackedSequence) else args[0]
            seen[name] = data.detach().clone()
        return hook

    monkeypatch.setattr(torch, "lstm", record_lstm)
    model.lstm.register_forward_pre_hook(record("packed_input"))
    model.attention.register_forward_pre_hook(record("attention_input"))
    model.hidden2tag.register_forward_pre_hook(record("output_input"))
    inputs, lengths = pad_batch([torch.ones(30, INPUT_SIZE)] * 40)  # no padding
    torch.manual_seed(0)
    with torch.set_grad_enabled(unpacked):
        model(inputs, lengths)

    def dropped(x):
        return float((x == 0).float().mean())

    if unpacked:
        first, second = seen["lstm"][0], seen["lstm"][2]  # forward direction of each layer
        assert 0.15 < dropped(first) < 0.25
        assert 0.45 < dropped(second) < 0.55
        assert "packed_input" not in seen
    else:
        assert "lstm" not in seen
        assert 0.15 < dropped(seen["packed_input"]) < 0.25
    assert 0.45 < dropped(seen["attention_input"]) < 0.55
    assert 0.45 < dropped(seen["output_input"]) < 0.55


def test_block_geometry():
    layer = LocalSelfAttention(8, 2, window=10, window_overlap=3)
    assert layer.block_geometry(10) == (10, 0, 1)
    assert layer.block_geometry(4) == (4, 0, 1)
    assert layer.block_geometry(11) == (10, 3, 2)
    assert layer.block_geometry(100) == (10, 3, 10)
    assert LocalSelfAttention(8, 2, window=None).block_geometry(10**6) == (10**6, 0, 1)


def test_window_none_and_zero_mean_full_attention():
    a = make_emitter(window=None, window_overlap=64).eval()
    b = make_emitter(window=0).eval()
    assert a.attention is not None and a.attention.window is None
    assert b.attention is not None and b.attention.window is None
    inputs, lengths = pad_batch(random_seqs([30, 12]))
    assert torch.equal(a(inputs, lengths), b(inputs, lengths))


def test_long_input_runs():
    torch.manual_seed(0)
    model = BiLSTMAttnEmitter(16, 3, hidden_size=8, num_layers=1, window=64, window_overlap=16)
    model.eval()
    n = 20_000
    inputs = torch.randn(2, n, 16)
    lengths = torch.tensor([n, n - 1_001])
    with torch.no_grad():
        emissions = model(inputs, lengths)
    assert emissions.shape == (2, n, 3)
    assert torch.isfinite(emissions).all()
    assert (emissions[1, n - 1_001 :] == 0).all()
    with torch.no_grad():  # the tail of a long doc equals the same tokens on their own
        tail = model(inputs[:1, : 64 * 3], torch.tensor([64 * 3]))
    torch.testing.assert_close(emissions[0, :64], tail[0, :64], atol=1e-5, rtol=1e-5)


# ------------------------------------------------------------------------ ablation


def test_no_attention():
    model = make_emitter(attention_heads=0).eval()
    assert model.attention is None
    names = [name for name, _ in model.named_parameters()]
    assert not any("attention" in name for name in names)
    assert sorted({name.split(".")[0] for name in names}) == ["hidden2tag", "lstm"]
    with_attention = make_emitter(attention_heads=2)
    assert any(name.startswith("attention.") for name, _ in with_attention.named_parameters())
    inputs, lengths = pad_batch(random_seqs([5, 2]))
    assert model(inputs, lengths).shape == (2, 5, NUM_TAGS)


# ------------------------------------------------------------------------- empties


@pytest.mark.parametrize("heads", [0, 2])
def test_empty_sequences(heads):
    model = make_emitter(attention_heads=heads).eval()
    seqs = random_seqs([4, 0, 6, 0])
    inputs, lengths = pad_batch(seqs, fill=float("nan"))
    emissions = model(inputs, lengths)
    assert emissions.shape == (4, 6, NUM_TAGS)
    assert (emissions[1] == 0).all() and (emissions[3] == 0).all()
    alone = model(seqs[2].unsqueeze(0), torch.tensor([6]))[0]
    torch.testing.assert_close(emissions[2], alone, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("heads", [0, 2])
@pytest.mark.parametrize("shape", [(3, 5), (3, 0), (0, 0), (0, 4)])
def test_only_empty(heads, shape):
    batch, seq_len = shape
    model = make_emitter(attention_heads=heads).train()
    inputs = torch.randn(batch, seq_len, INPUT_SIZE, requires_grad=True)
    emissions = model(inputs, torch.zeros(batch, dtype=torch.int64))
    assert emissions.shape == (batch, seq_len, NUM_TAGS)
    assert (emissions == 0).all()
    # Connected to the graph, so a wrapper may always call backward on it.
    assert emissions.requires_grad
    emissions.sum().backward()
    assert inputs.grad is not None and (inputs.grad == 0).all()


# ------------------------------------------------------------------ train / backward


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"attention_heads": 0},
        {"window": 4, "window_overlap": 1},
        {"variational_dropout": True},
    ],
)
def test_gradients_flow(kwargs):
    model = make_emitter(**kwargs).train()
    inputs, lengths = pad_batch(random_seqs([9, 3, 0, 6]))
    inputs.requires_grad_(True)
    emissions = model(inputs, lengths)
    loss = (emissions * torch.randn_like(emissions)).sum()
    loss.backward()
    assert inputs.grad is not None and torch.isfinite(inputs.grad).all()
    mask = torch.arange(9).unsqueeze(0) < lengths.unsqueeze(1)
    assert (inputs.grad[~mask] == 0).all()
    assert (inputs.grad[mask] != 0).any()
    for name, param in model.named_parameters():
        assert param.grad is not None, name
        assert torch.isfinite(param.grad).all(), name
        assert (param.grad != 0).any(), name


def test_eval_deterministic_train_stochastic():
    model = make_emitter(dropout=0.5, input_dropout=0.5, attention_dropout=0.5)
    inputs, lengths = pad_batch(random_seqs([12, 7]))
    model.eval()
    assert torch.equal(model(inputs, lengths), model(inputs, lengths))
    model.train()
    torch.manual_seed(1)
    first = model(inputs, lengths)
    torch.manual_seed(2)
    assert not torch.equal(first, model(inputs, lengths))


def test_variational_eval_equals_stacked_lstm():
    """In eval mode the per-layer BiLSTMs of `variational_dropout` compute exactly what
    the stacked nn.LSTM computes with the same weights."""
    stacked = make_emitter(num_layers=3).eval()
    layered = make_emitter(num_layers=3, variational_dropout=True).eval()
    state = {}
    for name, value in stacked.state_dict().items():
        if name.startswith("lstm."):
            # lstm.weight_ih_l1_reverse -> lstm.1.weight_ih_l0_reverse
            param, layer_suffix = name[len("lstm.") :].split("_l", 1)
            layer, _, reverse = layer_suffix.partition("_")
            name = f"lstm.{layer}.{param}_l0" + (f"_{reverse}" if reverse else "")
        state[name] = value
    layered.load_state_dict(state)
    inputs, lengths = pad_batch(random_seqs([7, 2, 11]))
    torch.testing.assert_close(layered(inputs, lengths), stacked(inputs, lengths))


@pytest.mark.parametrize("packed", [True, False])
def test_variational_emitter_drops_whole_features_per_sequence(packed, monkeypatch):
    """In training, the first BiLSTM layer sees each input feature kept or dropped for
    every time step of a sequence (not a new draw per token), and so does the second
    layer for its inputs; eval mode drops nothing. Both BiLSTM paths: packed (without
    gradients, or on a GPU) and unpacked (training on the CPU)."""
    model = make_emitter(variational_dropout=True, input_dropout=0.5, dropout=0.5).train()
    seen = []
    if packed:
        def record(module, args):
            data, _ = pad_packed_sequence(args[0], batch_first=True)
            seen.append(data.detach().clone())

        hooks = [layer.register_forward_pre_hook(record) for layer in model.lstm]
    else:
        lstm = torch.lstm
        calls = []

        def record_lstm(*args):
            calls.append(args[0].detach().clone())
            return lstm(*args)

        monkeypatch.setattr(torch, "lstm", record_lstm)
    inputs, lengths = pad_batch([torch.ones(n, INPUT_SIZE) for n in (9, 4, 6)])
    torch.manual_seed(0)
    with torch.set_grad_enabled(not packed):
        model(inputs, lengths)
        if not packed:  # the forward direction's input of each layer
            seen = calls[::2]
        first, second = seen
        for data in (first, second):
            for i, n in enumerate(lengths.tolist()):
                kept = data[i, :n] != 0
                assert torch.equal(kept, kept[:1].expand_as(kept)), i
        assert (first[:, 0] == 0).any() and (first[:, 0] != 0).any()  # something was dropped
        seen.clear()
        if not packed:
            calls.clear()
        model.eval()(inputs, lengths)
        if not packed:
            seen = calls[::2]
        assert (seen[0][0, :9] == 1).all()
    if packed:
        for hook in hooks:
            hook.remove()


def packed_reference(model: BiLSTMAttnEmitter, inputs: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """The BiLSTM states through nn.LSTM's own packed path (eval mode: no dropout)."""
    keep = (lengths > 0).nonzero().squeeze(1)
    out = pack_padded_sequence(inputs[keep], lengths[keep], batch_first=True, enforce_sorted=False)
    for layer in model.lstm if isinstance(model.lstm, torch.nn.ModuleList) else [model.lstm]:
        out, _ = layer(out)
    states = pad_packed_sequence(out, batch_first=True, total_length=inputs.shape[1])[0]
    return states.new_zeros(len(lengths), inputs.shape[1], states.shape[-1]).index_copy(0, keep, states)


@pytest.mark.parametrize("variational", [False, True])
def test_unpacked_bilstm_equals_packed(variational):
    """Training on the CPU runs the BiLSTM unpacked (each sequence reversed within its
    length for the backward direction): the same states and gradients as packed."""
    model = make_emitter(num_layers=3, variational_dropout=variational).double().eval()
    inputs, lengths = pad_batch(random_seqs([5, 0, 17, 1, 9], dtype=torch.float64))
    inputs.requires_grad_(True)
    unpacked = model._encode(inputs, lengths)  # gradients on, on the CPU: unpacked
    expected = packed_reference(model, inputs, lengths)
    torch.testing.assert_close(unpacked, expected, atol=1e-12, rtol=1e-12)
    with torch.no_grad():  # the component's own packed path
        torch.testing.assert_close(model._encode(inputs, lengths), expected, atol=1e-12, rtol=1e-12)
    mask = (torch.arange(17).unsqueeze(0) < lengths.unsqueeze(1)).unsqueeze(-1)
    assert (unpacked[~mask.expand_as(unpacked)] == 0).all()
    weights = torch.randn_like(unpacked)
    (grad_unpacked,) = torch.autograd.grad((unpacked * weights).sum(), inputs)
    (grad_packed,) = torch.autograd.grad((expected * weights).sum(), inputs)
    torch.testing.assert_close(grad_unpacked, grad_packed, atol=1e-10, rtol=1e-10)
    assert (grad_unpacked[~mask.expand_as(grad_unpacked)] == 0).all()


@pytest.mark.parametrize("p", [0.0, 0.3, 0.5])
def test_locked_dropout_one_mask_per_sequence(p):
    layer = LockedDropout(p).train()
    torch.manual_seed(0)
    out = layer(torch.ones(64, 9, 40))
    # every feature is kept or dropped for all time steps of a sequence
    assert torch.equal(out, out[:, :1].expand_as(out))
    kept = torch.tensor(1.0 / (1.0 - p), dtype=out.dtype)
    assert ((out == 0) | (out == kept)).all()
    if p:
        assert abs(float((out[:, 0] == 0).float().mean()) - p) < 0.05
        assert not torch.equal(out[0, 0], out[1, 0])  # masks differ between sequences
    x = torch.randn(3, 4, 5)
    assert torch.equal(layer.eval()(x), x)


def test_locked_dropout_packed():
    layer = LockedDropout(0.5).train()
    lengths = torch.tensor([3, 7, 1, 5])
    padded = torch.ones(4, 7, 30)
    packed = pack_padded_sequence(padded, lengths, batch_first=True, enforce_sorted=False)
    torch.manual_seed(0)
    out, out_lengths = pad_packed_sequence(layer.packed(packed), batch_first=True)
    assert torch.equal(out_lengths, lengths)
    for i, n in enumerate(lengths.tolist()):
        seq = out[i, :n]
        assert torch.equal(seq, seq[:1].expand_as(seq)), i  # one mask for the whole sequence
        assert set(seq.unique().tolist()) <= {0.0, 2.0}
        assert (out[i, n:] == 0).all()
    assert len({tuple(out[i, 0].tolist()) for i in range(4)}) == 4
    assert layer.eval().packed(packed) is packed


def test_float64_and_to():
    model32 = make_emitter(window=4, window_overlap=1).eval()
    model64 = make_emitter(window=4, window_overlap=1).to(torch.float64).eval()
    inputs, lengths = pad_batch(random_seqs([10, 3]))
    out64 = model64(inputs.double(), lengths)
    assert out64.dtype == torch.float64
    torch.testing.assert_close(model32(inputs, lengths).double(), out64, atol=1e-5, rtol=1e-5)
    model64.to("cpu")
    assert model64(inputs.double(), lengths).dtype == torch.float64


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_with_cpu_lengths():
    model = make_emitter(window=4, window_overlap=1).eval()
    inputs, lengths = pad_batch(random_seqs([10, 3]))
    expected = model(inputs, lengths)
    model.to("cuda")
    out = model(inputs.cuda(), lengths)
    torch.testing.assert_close(out.cpu(), expected, atol=1e-4, rtol=1e-4)
    assert torch.equal(out, model(inputs.cuda(), lengths.cuda()))


# ------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "inputs,lengths",
    [
        (torch.zeros(2, 3), torch.tensor([3, 3])),  # 2-d inputs
        (torch.zeros(2, 3, INPUT_SIZE + 1), torch.tensor([3, 3])),  # wrong width
        (torch.zeros(1, 2, 3, INPUT_SIZE), torch.tensor([3])),  # 4-d
        (torch.zeros(2, 3, INPUT_SIZE, dtype=torch.float64), torch.tensor([3, 3])),
        (torch.zeros(2, 3, INPUT_SIZE, dtype=torch.int64), torch.tensor([3, 3])),
        (torch.zeros(2, 3, INPUT_SIZE), torch.tensor([3])),  # one length missing
        (torch.zeros(2, 3, INPUT_SIZE), torch.tensor([[3, 3]])),  # 2-d lengths
        (torch.zeros(2, 3, INPUT_SIZE), torch.tensor([3.0, 3.0])),  # float lengths
        (torch.zeros(2, 3, INPUT_SIZE), torch.tensor([True, True])),  # bool lengths
        (torch.zeros(2, 3, INPUT_SIZE), torch.tensor([4, 3])),  # longer than seq_len
        (torch.zeros(2, 3, INPUT_SIZE), torch.tensor([-1, 3])),  # negative
        (torch.zeros(2, 3, INPUT_SIZE), [3, 3]),  # not a tensor
        ([[0.0] * INPUT_SIZE], torch.tensor([1])),  # not a tensor
    ],
)
def test_bad_inputs_raise(inputs, lengths):
    model = make_emitter()
    with pytest.raises(ValueError, match=r"\[BCE040\] BiLSTMAttnEmitter"):
        model(inputs, lengths)


@pytest.mark.parametrize(
    "kwargs,code",
    [
        ({"hidden_size": 5, "attention_heads": 4}, "BCE042"),  # 10 % 4 != 0
        ({"window": 8, "window_overlap": 8}, "BCE043"),
        ({"window": 8, "window_overlap": 9, "attention_heads": 0}, "BCE043"),
        ({"window": -1}, "BCE041"),
        ({"window_overlap": -1}, "BCE041"),
        ({"attention_heads": -1}, "BCE041"),
        ({"dropout": 1.0}, "BCE041"),
        ({"input_dropout": -0.1}, "BCE041"),
        ({"attention_dropout": 1.5}, "BCE041"),
        ({"num_layers": 0}, "BCE041"),
        ({"hidden_size": 0}, "BCE041"),
        ({"hidden_size": 8.0}, "BCE041"),
        ({"variational_dropout": "yes"}, "BCE041"),
        ({"variational_dropout": 1}, "BCE041"),
    ],
)
def test_bad_settings_raise(kwargs, code):
    with pytest.raises(ValueError, match=rf"\[{code}\] BiLSTMAttnEmitter"):
        make_emitter(**kwargs)


@pytest.mark.parametrize("input_size,num_tags", [(0, 3), (4, 0), (True, 3)])
def test_bad_sizes_raise(input_size, num_tags):
    with pytest.raises(ValueError, match=r"\[BCE041\]"):
        BiLSTMAttnEmitter(input_size, num_tags)


def test_defaults():
    model = BiLSTMAttnEmitter(96, 9)
    assert model.lstm.hidden_size == 128 and model.lstm.num_layers == 2
    assert model.lstm.bidirectional and model.lstm.batch_first
    assert model.lstm.dropout == pytest.approx(0.3)
    assert model.dropout.p == pytest.approx(0.3)
    assert model.input_dropout.p == pytest.approx(0.1)
    assert model.attention is not None
    assert (model.attention.heads, model.attention.dropout) == (4, pytest.approx(0.1))
    assert (model.attention.window, model.attention.window_overlap) == (256, 64)
    assert model.hidden2tag.out_features == 9
