"""Tests of the CRF against brute force over all tag paths, and against pytorch-crf."""

import itertools
import math
from typing import Dict, List, Optional, Tuple

import numpy
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from spacy_bilstm_crf.crf import CRF
from spacy_bilstm_crf.tag_scheme import TagScheme


def pytorch_crf():
    """pytorch-crf, for the comparisons (only those skip without it)."""
    return pytest.importorskip("torchcrf")


SCHEMES = {
    "none": None,
    "BIO": TagScheme("BIO", ["PER", "LOC"]),
    "BILUO": TagScheme("BILUO", ["PER"]),
}
NUM_TAGS_UNCONSTRAINED = 4
HYPOTHESIS = settings(deadline=None, max_examples=40, derandomize=True)


# ---------------------------------------------------------------------- helpers
def make_crf(scheme: Optional[TagScheme], batch_first: bool = True, seed: int = 0,
             scale: float = 1.0, dtype: torch.dtype = torch.float64) -> CRF:
    torch.manual_seed(seed)
    if scheme is None:
        crf = CRF(NUM_TAGS_UNCONSTRAINED, batch_first=batch_first)
    else:
        crf = CRF(
            scheme.num_tags,
            batch_first=batch_first,
            allowed_start=scheme.allowed_start(),
            allowed_transitions=scheme.allowed_transitions(),
            allowed_end=scheme.allowed_end(),
        )
    with torch.no_grad():
        for p in crf.parameters():
            p.uniform_(-scale, scale)
    return crf.to(dtype)


def lengths_mask(lengths: List[int], seq_length: int) -> torch.Tensor:
    # shape: (batch_size, seq_length)
    return torch.arange(seq_length).unsqueeze(0) < torch.tensor(lengths).unsqueeze(1)


def all_scores(crf: CRF, emissions: torch.Tensor, length: int,
               tag_mask: Optional[torch.Tensor] = None) -> Dict[Tuple[int, ...], float]:
    """Brute force: the float64 score of every allowed path of one sequence (batch-first
    emissions (seq_length, num_tags))."""
    n = crf.num_tags
    e = emissions.detach().double()
    start = crf.start_transitions.detach().double()
    trans = crf.transitions.detach().double()
    end = crf.end_transitions.detach().double()
    out: Dict[Tuple[int, ...], float] = {}
    for path in itertools.product(range(n), repeat=length):
        if length == 0:
            out[path] = 0.0
            continue
        if not bool(crf.allowed_start[path[0]]) or not bool(crf.allowed_end[path[-1]]):
            continue
        if any(not bool(crf.allowed_transitions[a, b]) for a, b in zip(path, path[1:])):
            continue
        if tag_mask is not None and not all(bool(tag_mask[t, y]) for t, y in enumerate(path)):
            continue
        score = start[path[0]] + end[path[-1]] + sum(e[t, y] for t, y in enumerate(path))
        score = score + sum(trans[a, b] for a, b in zip(path, path[1:]))
        out[path] = float(score)
    return out


def logsumexp(values) -> float:
    values = list(values)
    if not values:
        return -math.inf
    top = max(values)
    return top + math.log(sum(math.exp(v - top) for v in values))


def random_inputs(crf: CRF, lengths: List[int], seq_length: int, seed: int = 1,
                  scale: float = 2.0, dtype: torch.dtype = torch.float64):
    g = torch.Generator().manual_seed(seed)
    emissions = torch.randn(len(lengths), seq_length, crf.num_tags, generator=g, dtype=dtype)
    return emissions * scale, lengths_mask(lengths, seq_length)


def random_tag_mask(crf: CRF, emissions: torch.Tensor, lengths: List[int],
                    seed: int = 2) -> torch.Tensor:
    """A random tag mask that keeps at least one allowed path of each sequence."""
    rng = numpy.random.RandomState(seed)
    batch_size, seq_length, n = emissions.shape
    out = rng.rand(batch_size, seq_length, n) < 0.4
    for b, length in enumerate(lengths):
        paths = sorted(all_scores(crf, emissions[b], length))
        keep = paths[rng.randint(len(paths))]
        for t, y in enumerate(keep):
            out[b, t, y] = True
        if length and rng.rand() < 0.5:  # some positions unannotated: all tags allowed
            out[b, rng.randint(length)] = True
    return torch.from_numpy(out)


def to_layout(crf: CRF, *tensors: Optional[torch.Tensor]):
    """Batch-first tensors -> the CRF's layout."""
    if crf.batch_first:
        return tensors
    return tuple(t.transpose(0, 1) if t is not None else None for t in tensors)


CASES = [
    (name, batch_first)
    for name in SCHEMES
    for batch_first in (True, False)
]
LENGTHS = [4, 3, 1, 0, 2]
SEQ = 4


# ---------------------------------------------------------------------- brute force
@pytest.mark.parametrize("name,batch_first", CASES)
@pytest.mark.parametrize("use_tag_mask", [False, True])
def test_log_partition_and_llh_brute_force(name, batch_first, use_tag_mask):
    crf = make_crf(SCHEMES[name], batch_first)
    emissions, mask = random_inputs(crf, LENGTHS, SEQ)
    tag_mask = random_tag_mask(crf, emissions, LENGTHS) if use_tag_mask else None
    e, m, tm = to_layout(crf, emissions, mask, tag_mask)
    log_z = crf.log_partition(e, mask=m)
    log_z_restricted = crf.log_partition(e, mask=m, tag_mask=tm)
    llh = crf(e, mask=m, tag_mask=tm, reduction="none") if use_tag_mask else None
    for b, length in enumerate(LENGTHS):
        scores = all_scores(crf, emissions[b], length)
        assert log_z[b].item() == pytest.approx(logsumexp(scores.values()), abs=1e-9)
        if use_tag_mask:
            kept = all_scores(crf, emissions[b], length, tag_mask[b])
            expected = logsumexp(kept.values())
            assert log_z_restricted[b].item() == pytest.approx(expected, abs=1e-9)
            assert llh[b].item() == pytest.approx(expected - log_z[b].item(), abs=1e-9)
        else:
            assert torch.equal(log_z_restricted, log_z)
        if length == 0:
            assert log_z[b].item() == 0.0


@pytest.mark.parametrize("name,batch_first", CASES)
def test_llh_of_gold_tags_brute_force(name, batch_first):
    crf = make_crf(SCHEMES[name], batch_first)
    emissions, mask = random_inputs(crf, LENGTHS, SEQ)
    rng = numpy.random.RandomState(3)
    tags = torch.zeros(len(LENGTHS), SEQ, dtype=torch.long)
    expected = []
    for b, length in enumerate(LENGTHS):
        scores = all_scores(crf, emissions[b], length)
        paths = sorted(scores)
        path = paths[rng.randint(len(paths))]
        tags[b, :length] = torch.tensor(path, dtype=torch.long)
        tags[b, length:] = rng.randint(crf.num_tags)  # ignored past the mask
        expected.append(scores[path] - logsumexp(scores.values()))
    e, m, t = to_layout(crf, emissions, mask, tags)
    llh = crf(e, t, mask=m, reduction="none")
    assert llh.tolist() == pytest.approx(expected, abs=1e-9)
    total = sum(expected)
    assert crf(e, t, mask=m).item() == pytest.approx(total, abs=1e-9)
    assert crf(e, t, mask=m, reduction="mean").item() == pytest.approx(
        total / len(LENGTHS), abs=1e-9)
    assert crf(e, t, mask=m, reduction="token_mean").item() == pytest.approx(
        total / sum(LENGTHS), abs=1e-9)
    # a tag mask with a single path per sequence is the same as the tags
    one_hot = torch.nn.functional.one_hot(tags, crf.num_tags).bool()
    (tm,) = to_layout(crf, one_hot)
    assert crf(e, mask=m, tag_mask=tm, reduction="none").tolist() == pytest.approx(
        expected, abs=1e-9)


@pytest.mark.parametrize("name,batch_first", CASES)
@pytest.mark.parametrize("use_tag_mask", [False, True])
def test_viterbi_brute_force(name, batch_first, use_tag_mask):
    crf = make_crf(SCHEMES[name], batch_first, seed=4)
    emissions, mask = random_inputs(crf, LENGTHS, SEQ, seed=5)
    tag_mask = random_tag_mask(crf, emissions, LENGTHS, seed=6) if use_tag_mask else None
    e, m, tm = to_layout(crf, emissions, mask, tag_mask)
    paths = crf.decode(e, mask=m, tag_mask=tm)
    tags, best = crf.viterbi_tags(e, mask=m, tag_mask=tm)
    if not batch_first:
        tags = tags.t()
    assert len(paths) == len(LENGTHS)
    for b, length in enumerate(LENGTHS):
        scores = all_scores(crf, emissions[b], length, tag_mask[b] if use_tag_mask else None)
        assert len(paths[b]) == length
        assert tuple(paths[b]) in scores  # allowed (and inside the tag mask)
        top = max(scores.values())
        assert scores[tuple(paths[b])] == pytest.approx(top, abs=1e-9)
        assert best[b].item() == pytest.approx(top, abs=1e-9)
        assert tags[b, :length].tolist() == paths[b]
        assert tags[b, length:].eq(0).all()


@pytest.mark.parametrize("name,batch_first", CASES)
@pytest.mark.parametrize("use_tag_mask", [False, True])
def test_marginals_brute_force(name, batch_first, use_tag_mask):
    crf = make_crf(SCHEMES[name], batch_first, seed=7)
    emissions, mask = random_inputs(crf, LENGTHS, SEQ, seed=8)
    tag_mask = random_tag_mask(crf, emissions, LENGTHS, seed=9) if use_tag_mask else None
    e, m, tm = to_layout(crf, emissions, mask, tag_mask)
    probs = crf.marginals(e, mask=m, tag_mask=tm)
    (probs,) = to_layout(crf, probs)  # back to batch-first
    for b, length in enumerate(LENGTHS):
        scores = all_scores(crf, emissions[b], length, tag_mask[b] if use_tag_mask else None)
        log_z = logsumexp(scores.values())
        expected = numpy.zeros((SEQ, crf.num_tags))
        for path, score in scores.items():
            for t, y in enumerate(path):
                expected[t, y] += math.exp(score - log_z)
        numpy.testing.assert_allclose(probs[b].numpy(), expected, atol=1e-9)
        assert probs[b, length:].eq(0).all()


def span_queries(scheme: Optional[TagScheme], num_tags: int, lengths: List[int]):
    queries = []
    for b, length in enumerate(lengths):
        for start in range(length):
            for end in range(start + 1, length + 1):
                if scheme is not None:
                    for label in scheme.labels:
                        queries.append((b, start, scheme.span_tags(start, end, label),
                                        scheme.continuation_tags(label)))
                else:  # arbitrary paths and continuation sets
                    rng = numpy.random.RandomState(start * 31 + end + b)
                    path = rng.randint(num_tags, size=end - start).tolist()
                    cont = sorted(set(rng.randint(num_tags, size=2).tolist()))
                    queries.append((b, start, path, cont))
    return queries


def brute_span_prob(scores: Dict[Tuple[int, ...], float], length: int, start: int,
                    path: List[int], cont: List[int]) -> float:
    log_z = logsumexp(scores.values())
    end = start + len(path)
    total = 0.0
    for p, score in scores.items():
        if list(p[start:end]) != list(path):
            continue
        if end < length and p[end] in cont:
            continue
        total += math.exp(score - log_z)
    return total


@pytest.mark.parametrize("name,batch_first", CASES)
@pytest.mark.parametrize("use_tag_mask", [False, True])
def test_span_log_probs_brute_force(name, batch_first, use_tag_mask):
    scheme = SCHEMES[name]
    crf = make_crf(scheme, batch_first, seed=10)
    emissions, mask = random_inputs(crf, LENGTHS, SEQ, seed=11)
    tag_mask = random_tag_mask(crf, emissions, LENGTHS, seed=12) if use_tag_mask else None
    e, m, tm = to_layout(crf, emissions, mask, tag_mask)
    queries = span_queries(scheme, crf.num_tags, LENGTHS)
    log_probs = crf.span_log_probs(e, queries, mask=m, tag_mask=tm)
    fb = crf.forward_backward(e, mask=m, tag_mask=tm)
    reused = crf.span_log_probs(e, queries, mask=m, tag_mask=tm, fb=fb)
    assert torch.equal(log_probs, reused)
    assert log_probs.shape == (len(queries),)
    all_paths = {
        b: all_scores(crf, emissions[b], n, tag_mask[b] if use_tag_mask else None)
        for b, n in enumerate(LENGTHS)
    }
    for (b, start, path, cont), got in zip(queries, log_probs.exp().tolist()):
        expected = brute_span_prob(all_paths[b], LENGTHS[b], start, path, cont)
        assert got == pytest.approx(expected, abs=1e-9), (b, start, path, cont)


def test_span_posteriors_of_entities_are_exact_span_probabilities():
    """With BIO spans, the exact-span posteriors of all spans sum with P(O) to one."""
    scheme = TagScheme("BIO", ["PER"])
    crf = make_crf(scheme)
    emissions, mask = random_inputs(crf, [3], 3)
    queries = span_queries(scheme, scheme.num_tags, [3])
    probs = crf.span_log_probs(emissions, queries, mask=mask).exp()
    # Expected number of entities = sum of exact-span posteriors
    scores = all_scores(crf, emissions[0], 3)
    log_z = logsumexp(scores.values())
    expected = sum(math.exp(s - log_z) * len(scheme.tags_to_spans(list(p)))
                   for p, s in scores.items())
    assert probs.sum().item() == pytest.approx(expected, abs=1e-9)


def test_span_log_probs_empty_and_errors():
    crf = make_crf(SCHEMES["BIO"])
    emissions, mask = random_inputs(crf, [2, 0], 3)
    assert crf.span_log_probs(emissions, [], mask=mask).shape == (0,)
    for bad in [(0, 1, [1, 2, 2], []), (1, 0, [1], []), (2, 0, [1], []), (0, 0, [], []),
                (0, 0, [9], []), (0, 0, [1], [9]), ("x",)]:
        with pytest.raises(ValueError, match="BCE016"):
            crf.span_log_probs(emissions, [bad], mask=mask)
    with pytest.raises(ValueError, match="BCE010"):
        fb = crf.forward_backward(emissions, mask=mask)
        crf.span_log_probs(emissions, [(0, 0, [1], [2])], mask=mask, fb=(fb[0][:1], *fb[1:]))


# ---------------------------------------------------------------------- numerics
@pytest.mark.parametrize("name", list(SCHEMES))
@pytest.mark.parametrize("scale", [1.0, 50.0])
def test_float32_matches_float64_brute_force(name, scale):
    crf64 = make_crf(SCHEMES[name], seed=13)
    crf32 = make_crf(SCHEMES[name], seed=13, dtype=torch.float32)
    emissions, mask = random_inputs(crf64, LENGTHS, SEQ, seed=14, scale=scale)
    tag_mask = random_tag_mask(crf64, emissions, LENGTHS, seed=15)
    e32 = emissions.float()
    log_z = crf32.log_partition(e32, mask=mask)
    llh = crf32(e32, mask=mask, tag_mask=tag_mask, reduction="none")
    probs = crf32.marginals(e32, mask=mask)
    paths = crf32.decode(e32, mask=mask)
    for b, length in enumerate(LENGTHS):
        scores = all_scores(crf64, emissions[b], length)
        kept = all_scores(crf64, emissions[b], length, tag_mask[b])
        expected_z = logsumexp(scores.values())
        tol = 1e-4 * max(1.0, abs(expected_z))
        assert log_z[b].item() == pytest.approx(expected_z, abs=tol)
        assert llh[b].item() == pytest.approx(logsumexp(kept.values()) - expected_z, abs=tol)
        assert scores[tuple(paths[b])] == pytest.approx(max(scores.values()), abs=tol)
        if length:
            assert probs[b, :length].sum(-1).numpy() == pytest.approx(1.0, abs=1e-4)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_huge_score_ranges_fall_back_to_exact_recursion(dtype):
    """Score differences beyond exp()'s range: still exact, finite gradients, no NaN."""
    scheme = SCHEMES["BIO"]
    crf = make_crf(scheme, seed=16, dtype=dtype)
    crf64 = make_crf(scheme, seed=16)
    emissions, mask = random_inputs(crf64, [4, 3], 4, seed=17, scale=1.0)
    # B-PER is very unlikely at 0, then I-PER is very likely at 1: the path through an
    # underflowing state dominates later
    emissions[:, 0, scheme.tag_id("B", "PER")] = -900.0
    emissions[:, 1, scheme.tag_id("I", "PER")] = 1500.0
    e = emissions.to(dtype).requires_grad_()
    log_z = crf.log_partition(e, mask=mask)
    for b, length in enumerate([4, 3]):
        expected = logsumexp(all_scores(crf64, emissions[b], length).values())
        assert log_z[b].item() == pytest.approx(expected, rel=1e-6)
    log_z.sum().backward()
    assert torch.isfinite(e.grad).all()
    probs = crf.marginals(e.detach(), mask=mask)
    assert probs[0, 1, scheme.tag_id("I", "PER")].item() == pytest.approx(1.0, abs=1e-5)
    assert torch.isfinite(crf.transitions.grad).all()


def test_ragged_batch_with_large_scores_gives_finite_transition_gradients():
    """A short sequence whose last token strongly prefers a tag that may not end a sequence
    (B- in BILUO): past its end the pairwise scores are huge; they must not turn into NaN
    gradients (exp(inf) * weight 0) in the exact fallback of the transition counts."""
    scheme = TagScheme("BILUO", ["A"])  # O, B-A, I-A, L-A, U-A
    OUT = 0
    B, L, U = (scheme.tag_id(prefix, "A") for prefix in "BLU")
    crf = make_crf(scheme, scale=0.0, dtype=torch.float32)
    crf64 = make_crf(scheme, scale=0.0)
    emissions = torch.zeros(2, 2, scheme.num_tags)
    emissions[0, 0, OUT] = emissions[0, 1, L] = emissions[1, 0, B] = 100.0
    mask = torch.tensor([[True, True], [True, False]])
    tags = torch.tensor([[OUT, U], [U, OUT]])
    for model, dtype in ((crf, torch.float32), (crf64, torch.float64)):
        model(emissions.to(dtype), tags, mask=mask).backward()
    assert torch.isfinite(crf.transitions.grad).all()
    assert crf.transitions.grad.double().numpy() == pytest.approx(
        crf64.transitions.grad.numpy(), abs=1e-5)


@pytest.mark.parametrize("low,high", [(-110.0, -110.0), (0.0, -105.0), (95.0, 95.0)])
def test_transition_scores_beyond_exp_range_are_exact(low, high):
    """Allowed transition scores whose exp() under- or overflows in float32 (e.g. all
    -110: a false "no allowed path"; -105 into a tag that a +200 emission makes win later:
    a path lost; +95: inf) still give float64's log Z, likelihood and gradients."""
    crf = make_crf(None, scale=0.0, dtype=torch.float32)
    with torch.no_grad():
        crf.transitions.fill_(low)
        crf.transitions[:, 1] = high
    crf64 = make_crf(None, scale=0.0)
    crf64.load_state_dict(crf.state_dict())
    emissions = torch.zeros(2, 3, NUM_TAGS_UNCONSTRAINED)
    emissions[0, 0, 1] = -50.0
    emissions[0, 1, 1] = 200.0
    tags = torch.tensor([[0, 1, 0], [2, 1, 3]])
    for b in range(2):
        expected = logsumexp(all_scores(crf64, emissions[b].double(), 3).values())
        assert crf.log_partition(emissions)[b].item() == pytest.approx(expected, rel=1e-6)
    llh = crf(emissions, tags, reduction="none")
    llh64 = crf64(emissions.double(), tags, reduction="none")
    assert llh.detach().double().numpy() == pytest.approx(llh64.detach().numpy(), abs=1e-3)
    llh.sum().backward()
    llh64.sum().backward()
    assert crf.transitions.grad.double().numpy() == pytest.approx(
        crf64.transitions.grad.numpy(), abs=1e-5)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_emissions_are_scored_in_float32(dtype):
    crf = make_crf(SCHEMES["BIO"], seed=30, dtype=torch.float32)
    emissions, mask = random_inputs(crf, [300, 120, 1], 300, seed=31, dtype=torch.float32)
    half = emissions.to(dtype)
    tags = torch.tensor(crf.decode(half.float(), mask=mask)[0] + [0] * 0).expand(3, 300)
    tags = tags.masked_fill(~mask, 0)
    e = half.clone().requires_grad_()
    llh = crf(e, tags, mask=mask, reduction="none")
    assert llh.dtype == torch.float32
    expected = crf(half.float(), tags, mask=mask, reduction="none")
    assert llh.detach().numpy() == pytest.approx(expected.detach().numpy(), abs=1e-3)
    llh.sum().backward()
    assert e.grad.dtype == dtype and torch.isfinite(e.grad).all()


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_nan_or_positive_inf_emissions_raise(value):
    """+inf - inf is NaN inside the recursions (a forbidden path could be decoded): a
    clear error instead; -inf (forbid a tag) stays allowed, anything past the mask too."""
    crf = make_crf(SCHEMES["BIO"], dtype=torch.float32)
    emissions = torch.zeros(1, 2, crf.num_tags)
    emissions[0, 1, 2] = value
    for call in (lambda: crf.decode(emissions), lambda: crf.marginals(emissions),
                 lambda: crf(emissions, torch.zeros(1, 2, dtype=torch.long))):
        with pytest.raises(ValueError, match="BCE010.*NaN or \\+inf"):
            call()
    emissions[0, 1, 2] = float("-inf")
    assert crf.decode(emissions)[0][1] != 2
    emissions[0, 1, 2] = value
    assert len(crf.decode(emissions, mask=torch.tensor([[True, False]]))[0]) == 1


# ---------------------------------------------------------------------- pytorch-crf
@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.filterwarnings("ignore:where received a uint8 condition")  # inside pytorch-crf
def test_agrees_with_pytorch_crf(batch_first, dtype):
    torch.manual_seed(18)
    num_tags, lengths, seq = 5, [6, 1, 4, 6, 2], 6
    theirs = pytorch_crf().CRF(num_tags, batch_first=batch_first).to(dtype)
    ours = CRF(num_tags, batch_first=batch_first).to(dtype)
    ours.load_state_dict(theirs.state_dict(), strict=False)
    emissions = torch.randn(len(lengths), seq, num_tags, dtype=dtype) * 3
    tags = torch.randint(num_tags, (len(lengths), seq))
    mask = lengths_mask(lengths, seq).to(torch.uint8)
    e, t, m = to_layout(ours, emissions, tags, mask)
    tol = 1e-5 if dtype == torch.float32 else 1e-10
    m_bool = m.bool()  # ours takes the uint8 mask, pytorch-crf the bool one
    for reduction in ("none", "sum", "mean", "token_mean"):
        expected = theirs(e, t, mask=m_bool, reduction=reduction)
        got = ours(e, t, mask=m, reduction=reduction)
        torch.testing.assert_close(got, expected, atol=tol, rtol=tol)
    assert ours.decode(e, mask=m) == theirs.decode(e, mask=m_bool)
    # no mask at all
    assert ours.decode(e) == theirs.decode(e)
    torch.testing.assert_close(ours(e, t), theirs(e, t), atol=tol * 10, rtol=tol)


def test_gradients_match_pytorch_crf():
    torch.manual_seed(19)
    num_tags, lengths, seq = 4, [5, 2, 3], 5
    theirs = pytorch_crf().CRF(num_tags, batch_first=True).double()
    ours = CRF(num_tags).double()
    ours.load_state_dict(theirs.state_dict(), strict=False)
    emissions = torch.randn(len(lengths), seq, num_tags, dtype=torch.double)
    tags = torch.randint(num_tags, (len(lengths), seq))
    mask = lengths_mask(lengths, seq)
    e1, e2 = emissions.clone().requires_grad_(), emissions.clone().requires_grad_()
    theirs(e1, tags, mask).backward()
    ours(e2, tags, mask).backward()
    torch.testing.assert_close(e2.grad, e1.grad)
    for name in ("start_transitions", "transitions", "end_transitions"):
        torch.testing.assert_close(getattr(ours, name).grad, getattr(theirs, name).grad)


# ---------------------------------------------------------------------- gradients
@pytest.mark.parametrize("name", list(SCHEMES))
@pytest.mark.parametrize("mode", ["tags", "tag_mask"])
def test_gradcheck(name, mode):
    crf = make_crf(SCHEMES[name], seed=20)
    lengths = [3, 1, 0, 2]
    emissions, mask = random_inputs(crf, lengths, 3, seed=21)
    tag_mask = random_tag_mask(crf, emissions, lengths, seed=22)
    tags = torch.stack([
        torch.tensor(list(sorted(all_scores(crf, emissions[b], n, tag_mask[b])))[0]
                     + (0,) * (3 - n), dtype=torch.long)
        for b, n in enumerate(lengths)
    ])
    params = {n: p.detach().clone().requires_grad_() for n, p in crf.named_parameters()}

    def llh(e, start, trans, end):
        args = (e,) if mode == "tag_mask" else (e, tags)
        kwargs = {"mask": mask, "reduction": "none"}
        if mode == "tag_mask":
            kwargs["tag_mask"] = tag_mask
        return torch.func.functional_call(
            crf,
            {"start_transitions": start, "transitions": trans, "end_transitions": end},
            args, kwargs,
        )

    inputs = (emissions.clone().requires_grad_(), params["start_transitions"],
              params["transitions"], params["end_transitions"])
    assert torch.autograd.gradcheck(llh, inputs)
    e = emissions.clone().requires_grad_()
    assert torch.autograd.gradcheck(
        lambda e: crf.log_partition(e, mask=mask, tag_mask=tag_mask), (e,))


@pytest.mark.parametrize("name", list(SCHEMES))
def test_gradients_finite_and_zero_on_forbidden_entries(name):
    crf = make_crf(SCHEMES[name], seed=23, dtype=torch.float32)
    lengths = [5, 0, 1, 3]
    emissions, mask = random_inputs(crf, lengths, 5, seed=24, dtype=torch.float32)
    emissions[1] = float("nan")  # an empty sequence: ignored entirely
    emissions[3, 3:] = float("inf")  # past the mask: ignored
    e = emissions.clone().requires_grad_()
    tag_mask = random_tag_mask(crf, torch.nan_to_num(emissions), lengths, seed=25)
    loss = -crf(e, mask=mask, tag_mask=tag_mask, reduction="token_mean")
    loss.backward()
    assert torch.isfinite(loss)
    assert torch.isfinite(e.grad).all()
    assert e.grad[1].eq(0).all() and e.grad[3, 3:].eq(0).all()
    for grad, allowed in ((crf.start_transitions.grad, crf.allowed_start),
                          (crf.transitions.grad, crf.allowed_transitions),
                          (crf.end_transitions.grad, crf.allowed_end)):
        assert grad is not None and torch.isfinite(grad).all()
        assert grad[~allowed].eq(0).all()


# ---------------------------------------------------------------------- edge cases
@pytest.mark.parametrize("batch_first", [True, False])
def test_empty_sequences_and_zero_length(batch_first):
    crf = make_crf(SCHEMES["BIO"], batch_first, dtype=torch.float32)
    n = crf.num_tags
    for seq in (0, 3):
        shape = (2, seq, n) if batch_first else (seq, 2, n)
        e = torch.randn(shape, requires_grad=True)
        mask = torch.zeros(shape[:2], dtype=torch.bool)
        tags = torch.zeros(shape[:2], dtype=torch.long)
        llh = crf(e, tags, mask=mask, reduction="none")
        assert llh.tolist() == [0.0, 0.0]
        token_mean = crf(e, tags, mask=mask, reduction="token_mean")
        assert token_mean.item() == 0.0
        token_mean.backward()
        assert torch.isfinite(e.grad).all() and e.grad.eq(0).all()
        assert crf(e, mask=mask, tag_mask=torch.zeros(*shape, dtype=torch.bool)).item() == 0
        assert crf.decode(e, mask=mask) == [[], []]
        # without a mask all steps count: paths of the full length
        assert [len(p) for p in crf.decode(e)] == [seq, seq]
        assert crf.marginals(e, mask=mask).eq(0).all()
        assert crf.log_partition(e, mask=mask).tolist() == [0.0, 0.0]
        alpha, beta, log_z = crf.forward_backward(e, mask=mask)
        assert alpha.shape == shape and beta.shape == shape and log_z.tolist() == [0.0, 0.0]
    # an empty batch
    e = torch.randn(0, 3, n) if batch_first else torch.randn(3, 0, n)
    assert crf(e, torch.zeros(e.shape[:2], dtype=torch.long)).item() == 0.0
    assert crf.decode(e) == []


def test_steps_past_the_mask_are_ignored_including_nan():
    crf = make_crf(SCHEMES["BIO"], dtype=torch.float32)
    lengths = [4, 2, 1]
    emissions, mask = random_inputs(crf, lengths, 4, dtype=torch.float32)
    tags = torch.tensor([[1, 2, 0, 3], [0, 1, 0, 0], [3, 0, 0, 0]])
    other = emissions.clone()
    other[~mask] = float("nan")
    other_tags = tags.masked_fill(~mask, 99)
    assert torch.equal(crf(emissions, tags, mask, reduction="none"),
                       crf(other, other_tags, mask, reduction="none"))
    assert crf.decode(emissions, mask) == crf.decode(other, mask)
    assert torch.equal(crf.marginals(emissions, mask), crf.marginals(other, mask))


def test_constraints_with_no_allowed_path_raise():
    crf = CRF(3, allowed_start=[True, False, False], allowed_end=[False, True, True],
              allowed_transitions=numpy.eye(3, dtype=bool))
    e = torch.randn(1, 2, 3)
    with pytest.raises(ValueError, match="BCE014"):
        crf.log_partition(e)
    with pytest.raises(ValueError, match="BCE014"):
        crf.decode(e)


def test_tag_mask_without_valid_path_raises_with_index():
    scheme = SCHEMES["BIO"]
    crf = make_crf(scheme, dtype=torch.float32)
    emissions, mask = random_inputs(crf, [3, 3], 3, dtype=torch.float32)
    tag_mask = torch.ones(2, 3, scheme.num_tags, dtype=torch.bool)
    tag_mask[1, 0] = False
    tag_mask[1, 0, scheme.tag_id("I", "PER")] = True  # a sequence cannot start with I-
    for call in (
        lambda: crf(emissions, mask=mask, tag_mask=tag_mask),
        lambda: crf.decode(emissions, mask=mask, tag_mask=tag_mask),
        lambda: crf.marginals(emissions, mask=mask, tag_mask=tag_mask),
        lambda: crf.log_partition(emissions, mask=mask, tag_mask=tag_mask),
    ):
        with pytest.raises(ValueError, match=r"BCE012.*sequence 1 "):
            call()
    # past the mask the tag mask does not matter
    tag_mask[1] = True
    tag_mask[1, 2] = False
    mask[1, 2] = False
    crf.decode(emissions, mask=mask, tag_mask=tag_mask)


def test_forbidden_gold_path_raises():
    scheme = SCHEMES["BIO"]
    crf = make_crf(scheme, dtype=torch.float32)
    emissions, mask = random_inputs(crf, [3, 2], 3, dtype=torch.float32)
    i_per, b_per = scheme.tag_id("I", "PER"), scheme.tag_id("B", "PER")
    tags = torch.tensor([[0, b_per, i_per], [0, i_per, 0]])
    with pytest.raises(ValueError, match=r"BCE015.*sequence 1.*position 1"):
        crf(emissions, tags, mask=mask)
    tags[1, 1] = b_per
    assert torch.isfinite(crf(emissions, tags, mask=mask))


def test_validation_errors():
    crf = CRF(3)
    e = torch.randn(2, 4, 3)
    tags = torch.zeros(2, 4, dtype=torch.long)
    bad_calls = [
        lambda: crf(torch.randn(2, 4), tags),
        lambda: crf(torch.randn(2, 4, 5), tags),
        lambda: crf(e.long(), tags),
        lambda: crf(e, tags.int()),
        lambda: crf(e, tags[:, :3]),
        lambda: crf(e, tags + 3),
        lambda: crf(e, tags - 1),
        lambda: crf(e, tags, mask=torch.ones(2, 3, dtype=torch.bool)),
        lambda: crf(e, tags, mask=torch.ones(2, 4)),
        lambda: crf(e, tags, mask=torch.tensor([[1, 0, 1, 0], [1, 1, 1, 1]]).bool()),
        lambda: crf(e, tag_mask=torch.ones(2, 4, 2, dtype=torch.bool)),
        lambda: crf(e, tag_mask=torch.ones(2, 4, 3)),
        lambda: crf.decode(e, mask=torch.tensor([[0, 1, 1, 1], [1, 1, 1, 1]]).bool()),
        lambda: crf.decode([[1.0]]),
        lambda: CRF(3, allowed_transitions=numpy.ones((3, 2), dtype=bool)),
        lambda: CRF(3, allowed_start=numpy.ones(3)),
        lambda: CRF(0),
        lambda: CRF(True),
        lambda: CRF(3.0),
        lambda: CRF("3"),
    ]
    for call in bad_calls:
        with pytest.raises(ValueError, match="BCE010"):
            call()
    with pytest.raises(ValueError, match="BCE011"):
        crf(e, tags, reduction="avg")
    with pytest.raises(ValueError, match="BCE013"):
        crf(e)
    with pytest.raises(ValueError, match="BCE013"):
        crf(e, tags, tag_mask=torch.ones(2, 4, 3, dtype=torch.bool))


def test_num_tags_takes_any_integer_like_pytorch_crf():
    for n in (numpy.int64(5), torch.tensor(5), 5):
        crf = CRF(n)
        assert crf.num_tags == 5 and type(crf.num_tags) is int
        assert crf.transitions.shape == (5, 5)


def test_uint8_mask_first_step_off_and_state_dict():
    scheme = SCHEMES["BILUO"]
    crf = make_crf(scheme, dtype=torch.float32)
    state = crf.state_dict()
    assert {"allowed_start", "allowed_transitions", "allowed_end"} <= set(state)
    other = CRF(scheme.num_tags)
    other.load_state_dict(state)
    assert not other.allowed_transitions.all() and other.constrained
    emissions, mask = random_inputs(crf, [3, 0, 2], 3, dtype=torch.float32)
    assert crf.decode(emissions, mask.to(torch.uint8)) == other.decode(emissions, mask)
    assert repr(crf) == f"CRF(num_tags={scheme.num_tags})"


# ---------------------------------------------------------------------- properties
@st.composite
def crf_inputs(draw):
    name = draw(st.sampled_from(list(SCHEMES)))
    scheme = SCHEMES[name]
    crf = make_crf(scheme, seed=draw(st.integers(0, 1000)), dtype=torch.float32)
    batch_size = draw(st.integers(1, 4))
    seq = draw(st.integers(0, 6))
    lengths = draw(st.lists(st.integers(0, seq), min_size=batch_size, max_size=batch_size))
    seed = draw(st.integers(0, 10_000))
    scale = draw(st.sampled_from([0.1, 1.0, 5.0, 30.0]))
    emissions, mask = random_inputs(crf, lengths, seq, seed=seed, scale=scale,
                                    dtype=torch.float32)
    use_tag_mask = draw(st.booleans()) and seq <= 4
    tag_mask = random_tag_mask(crf, emissions, lengths, seed=seed) if use_tag_mask else None
    return crf, emissions, mask, tag_mask, lengths


@HYPOTHESIS
@given(crf_inputs())
def test_property_marginals_sum_to_one(inputs):
    crf, emissions, mask, tag_mask, _ = inputs
    probs = crf.marginals(emissions, mask=mask, tag_mask=tag_mask)
    sums = probs.sum(-1)
    assert torch.allclose(sums[mask], torch.ones_like(sums[mask]), atol=1e-4)
    assert probs[~mask].eq(0).all()
    assert (probs >= 0).all() and (probs <= 1 + 1e-5).all()
    if tag_mask is not None:
        assert probs[~tag_mask & mask.unsqueeze(-1)].eq(0).all()


@HYPOTHESIS
@given(crf_inputs())
def test_property_llh_is_at_most_zero(inputs):
    crf, emissions, mask, tag_mask, lengths = inputs
    if tag_mask is None:
        paths = crf.decode(emissions, mask=mask)
        tags = torch.zeros(mask.shape, dtype=torch.long)
        for b, path in enumerate(paths):
            tags[b, : len(path)] = torch.tensor(path, dtype=torch.long)
        llh = crf(emissions, tags, mask=mask, reduction="none")
    else:
        llh = crf(emissions, mask=mask, tag_mask=tag_mask, reduction="none")
    assert torch.isfinite(llh).all()
    assert (llh <= 1e-4).all()
    assert llh[torch.tensor(lengths) == 0].eq(0).all()


@HYPOTHESIS
@given(crf_inputs(), st.integers(0, 10_000))
def test_property_steps_past_the_mask_change_nothing(inputs, seed):
    crf, emissions, mask, tag_mask, _ = inputs
    g = torch.Generator().manual_seed(seed)
    other = emissions.clone()
    other[~mask] = torch.randn(int((~mask).sum()), crf.num_tags, generator=g) * 100
    other_tag_mask = None
    if tag_mask is not None:
        other_tag_mask = tag_mask.clone()
        other_tag_mask[~mask] = torch.rand(int((~mask).sum()), crf.num_tags, generator=g) < 0.3
    tags = torch.zeros(mask.shape, dtype=torch.long)
    other_tags = torch.randint(crf.num_tags, mask.shape, generator=g).masked_fill(mask, 0)
    paths = crf.decode(emissions, mask=mask, tag_mask=tag_mask)
    for b, path in enumerate(paths):
        tags[b, : len(path)] = torch.tensor(path, dtype=torch.long)
        other_tags[b, : len(path)] = torch.tensor(path, dtype=torch.long)
    assert crf.decode(other, mask=mask, tag_mask=other_tag_mask) == paths
    assert torch.equal(crf(emissions, tags, mask=mask, reduction="none"),
                       crf(other, other_tags, mask=mask, reduction="none"))
    assert torch.equal(crf.marginals(emissions, mask=mask, tag_mask=tag_mask),
                       crf.marginals(other, mask=mask, tag_mask=other_tag_mask))


@HYPOTHESIS
@given(crf_inputs())
def test_property_decode_respects_constraints_and_tag_mask(inputs):
    crf, emissions, mask, tag_mask, lengths = inputs
    paths = crf.decode(emissions, mask=mask, tag_mask=tag_mask)
    assert [len(p) for p in paths] == lengths
    for b, path in enumerate(paths):
        if not path:
            continue
        assert crf.allowed_start[path[0]] and crf.allowed_end[path[-1]]
        assert all(crf.allowed_transitions[i, j] for i, j in zip(path, path[1:]))
        if tag_mask is not None:
            assert all(tag_mask[b, t, y] for t, y in enumerate(path))
