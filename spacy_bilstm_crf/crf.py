"""A linear-chain conditional random field with transition constraints and partial labels.

The API mirrors pytorch-crf (``torchcrf.CRF``): the same parameter names and shapes, the
same ``forward`` (log-likelihood) and ``decode`` (Viterbi), so that a pytorch-crf user can
switch. The differences:

- ``batch_first`` defaults to True.
- ``allowed_start`` / ``allowed_transitions`` / ``allowed_end`` constrain the tag sequences
  (e.g. "I-PER may not follow O" in BIO): forbidden moves get exactly zero probability and
  are never decoded.
- ``forward`` takes either one gold path (``tags``) or a set of gold paths (``tag_mask``,
  for partial annotation).
- Sequences may be empty (``mask[:, 0]`` may be off): their log-likelihood is 0 and their
  path is ``[]``.
- ``log_partition``, ``marginals``, ``forward_backward`` and ``span_log_probs`` give
  posteriors (e.g. the confidence of a predicted entity).

Numerics. The log-partition function runs the forward recursion in scaled exp space,
alpha_t = log(exp(alpha_{t-1} - m) @ exp(T)) + m + e_t with m = max(alpha_{t-1}) (a matrix
product per step instead of a log-sum-exp over a (batch, tags, tags) tensor), and its
gradient comes from forward-backward marginals in a custom autograd function rather than
from autograd through the time loop (faster at the sizes that matter, and autograd through
log(0) at unreachable tags, e.g. with a tag mask, gives NaN gradients; see
benchmarks/RESULTS.md). float64 inputs are computed in float64, everything else
(half-precision emissions too) in float32. Transition scores enter the recursions as
exp(T - max T), so large ones cannot overflow. exp() of a score more than ~80 (float32) /
~700 (float64), minus the spread of the allowed transition scores, below the best tag of
its step would underflow and could lose a path that wins later; when that happens anywhere
in a batch, that batch is recomputed with the exact log-sum-exp recursion, so results stay
exact for any score range. Emissions must not be NaN or +inf (-inf forbids a tag). Forbidden moves are -inf scores (exp = 0); no -inf - -inf is
ever formed, so there are no NaNs, also in gradients, and forbidden parameter entries get
a zero gradient.

Empty sequences. A sequence whose mask is all off has log-likelihood 0, log-partition 0,
path [] and all-zero marginals; "token_mean" over a batch without tokens is 0.0.
"""

import operator
from typing import Any, List, NamedTuple, Optional, Sequence, Tuple

import torch
import torch.nn as nn

from .errors import Errors

REDUCTIONS = ("none", "sum", "mean", "token_mean")
# (batch_index, start, tag_path, continuation_tags)
SpanQuery = Tuple[int, int, Sequence[int], Sequence[int]]
MaskLike = Any  # a bool numpy array, tensor or nested list

_NEG_INF = float("-inf")
# Below this (natural-log) distance from the best tag of a step, exp() of a score would lose
# precision in the scaled exp-space recursion; then the exact log-space recursion is used.
_UNDERFLOW = {torch.float64: -700.0, torch.float32: -80.0}


class _Prepared(NamedTuple):
    """Validated inputs, time-major.

    emissions (torch.Tensor): (seq_length, batch_size, num_tags), zero past the mask.
    restricted (Optional[torch.Tensor]): The emissions with -inf where the tag mask forbids
        a tag (only if a tag mask was given).
    mask (torch.Tensor): bool (seq_length, batch_size).
    lengths (torch.Tensor): long (batch_size,).
    tags (Optional[torch.Tensor]): long (seq_length, batch_size), zero past the mask.
    """

    emissions: torch.Tensor
    restricted: Optional[torch.Tensor]
    mask: torch.Tensor
    lengths: torch.Tensor
    tags: Optional[torch.Tensor]


class CRF(nn.Module):
    """A linear-chain conditional random field.

    num_tags (int): The number of tags.
    batch_first (bool): Whether inputs are (batch_size, seq_length, ...) rather than
        (seq_length, batch_size, ...).
    allowed_start (Optional[MaskLike]): bool (num_tags,), the tags a sequence may start with.
        None allows all.
    allowed_transitions (Optional[MaskLike]): bool (num_tags, num_tags), indexed [from, to],
        the allowed moves between consecutive tags. None allows all.
    allowed_end (Optional[MaskLike]): bool (num_tags,), the tags a sequence may end with.
        None allows all.

    The parameters are pytorch-crf's: ``start_transitions`` (num_tags,), ``end_transitions``
    (num_tags,) and ``transitions`` (num_tags, num_tags) [from, to]. The constraints are
    persistent bool buffers of the same shapes; forbidden entries of the parameters take no
    part in any score and always get a zero gradient. A state dict saved by pytorch-crf lacks
    the buffers: load it with ``strict=False``.
    """

    def __init__(
        self,
        num_tags: int,
        batch_first: bool = True,
        allowed_start: Optional[MaskLike] = None,
        allowed_transitions: Optional[MaskLike] = None,
        allowed_end: Optional[MaskLike] = None,
    ) -> None:
        try:
            # any integer, as pytorch-crf takes (numpy and 0-d torch integers too); not a bool
            n = -1 if isinstance(num_tags, bool) else operator.index(num_tags)
        except TypeError:
            n = -1
        if n <= 0:
            raise ValueError(
                Errors.BCE010.format(name="num_tags", expected="a positive int", got=repr(num_tags))
            )
        num_tags = n
        super().__init__()
        self.num_tags = num_tags
        self.batch_first = batch_first
        self.start_transitions = nn.Parameter(torch.empty(num_tags))
        self.end_transitions = nn.Parameter(torch.empty(num_tags))
        self.transitions = nn.Parameter(torch.empty(num_tags, num_tags))
        self.allowed_start: torch.Tensor
        self.allowed_transitions: torch.Tensor
        self.allowed_end: torch.Tensor
        self.register_buffer(
            "allowed_start", _bool_mask(allowed_start, (num_tags,), "allowed_start")
        )
        self.register_buffer(
            "allowed_transitions",
            _bool_mask(allowed_transitions, (num_tags, num_tags), "allowed_transitions"),
        )
        self.register_buffer("allowed_end", _bool_mask(allowed_end, (num_tags,), "allowed_end"))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Initialize the parameters uniformly in (-0.1, 0.1), like pytorch-crf."""
        nn.init.uniform_(self.start_transitions, -0.1, 0.1)
        nn.init.uniform_(self.end_transitions, -0.1, 0.1)
        nn.init.uniform_(self.transitions, -0.1, 0.1)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(num_tags={self.num_tags})"

    @property
    def constrained(self) -> bool:
        """RETURNS (bool): Whether any move is forbidden."""
        return not bool(
            self.allowed_start.all() and self.allowed_transitions.all() and self.allowed_end.all()
        )

    # ------------------------------------------------------------------ public API
    def forward(
        self,
        emissions: torch.Tensor,
        tags: Optional[torch.Tensor] = None,
        mask: Optional[torch.Tensor] = None,
        reduction: str = "sum",
        tag_mask: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        """The conditional log-likelihood of the gold tags given the emission scores.

        Give exactly one of `tags` (one gold path: log p(tags)) and `tag_mask` (a set of gold
        paths, for partial labels: log p(y in set) = logZ(restricted to tag_mask) - logZ).

        An empty sequence (mask all off) has log-likelihood 0. A gold path that the
        constraints forbid raises a ValueError (its log-likelihood would be -inf), and so
        does a tag mask that leaves no allowed path.

        emissions (torch.Tensor): Floating (batch_size, seq_length, num_tags), or
            (seq_length, batch_size, num_tags) if not `batch_first`.
        tags (Optional[torch.Tensor]): Long (batch_size, seq_length), the gold tag ids.
        mask (Optional[torch.Tensor]): Bool or uint8 (batch_size, seq_length), a left-aligned
            prefix of any length per sequence (also 0). None means all on. Positions past
            the mask are ignored.
        reduction (str): "none" (per sequence, (batch_size,)), "sum", "mean" (over the
            batch) or "token_mean" (the sum divided by the number of unmasked tokens; 0.0
            if there are none).
        tag_mask (Optional[torch.Tensor]): Bool (batch_size, seq_length, num_tags), the gold
            tags allowed at each position (all True where the gold tag is unknown).
        RETURNS (torch.Tensor): The log-likelihood, (batch_size,) if reduction is "none",
            else a scalar; float64 for float64 emissions, else float32.
        """
        if reduction not in REDUCTIONS:
            raise ValueError(Errors.BCE011.format(reduction=reduction))
        if (tags is None) == (tag_mask is None):
            got = "both" if tags is not None else "neither"
            raise ValueError(Errors.BCE013.format(got=got))
        inputs = self._prepare(emissions, mask=mask, tags=tags, tag_mask=tag_mask)
        if inputs.tags is not None:
            self._check_gold_path(inputs.tags, inputs.lengths)
            # shape: (batch_size,)
            numerator = self._path_score(inputs.emissions, inputs.tags, inputs.mask)
            # shape: (batch_size,)
            denominator = self._checked_log_z(inputs.emissions, inputs.mask)
        else:
            assert inputs.restricted is not None
            batch_size = inputs.mask.shape[1]
            # Both partition functions in one pass over time: the batch is doubled.
            # shape: (seq_length, 2 * batch_size, num_tags)
            both = torch.cat([inputs.restricted, inputs.emissions], dim=1)
            # shape: (2 * batch_size,)
            log_z = self._checked_log_z(
                both, torch.cat([inputs.mask, inputs.mask], dim=1), restricted_rows=batch_size
            )
            numerator, denominator = log_z[:batch_size], log_z[batch_size:]
        # shape: (batch_size,)
        llh = numerator - denominator
        if reduction == "none":
            return llh
        if reduction == "sum":
            return llh.sum()
        if reduction == "mean":
            return llh.sum() / max(llh.shape[0], 1)
        # token_mean: with no tokens at all the sum is 0 and so is the result
        return llh.sum() / inputs.lengths.sum().clamp_min(1).to(llh.dtype)

    def log_partition(
        self,
        emissions: torch.Tensor,
        mask: Optional[torch.Tensor] = None,
        tag_mask: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        """The log-partition function logZ: the log of the summed exp-scores of all allowed
        paths (restricted to `tag_mask` if given). Differentiable. 0 for empty sequences.

        emissions (torch.Tensor): (batch_size, seq_length, num_tags), see `forward`.
        mask (Optional[torch.Tensor]): (batch_size, seq_length), see `forward`.
        tag_mask (Optional[torch.Tensor]): Bool (batch_size, seq_length, num_tags), the tags
            allowed at each position.
        RETURNS (torch.Tensor): (batch_size,).
        """
        inputs = self._prepare(emissions, mask=mask, tag_mask=tag_mask)
        em = inputs.restricted if inputs.restricted is not None else inputs.emissions
        rows = em.shape[1] if inputs.restricted is not None else 0
        return self._checked_log_z(em, inputs.mask, restricted_rows=rows)

    def decode(
        self,
        emissions: torch.Tensor,
        mask: Optional[torch.Tensor] = None,
        tag_mask: Optional[torch.Tensor] = None,
    ) -> List[List[int]]:
        """The most likely allowed tag sequence of each sequence (Viterbi).

        emissions (torch.Tensor): (batch_size, seq_length, num_tags), see `forward`.
        mask (Optional[torch.Tensor]): (batch_size, seq_length), see `forward`.
        tag_mask (Optional[torch.Tensor]): Bool (batch_size, seq_length, num_tags), the tags
            possible at each position (e.g. to keep pre-set entities).
        RETURNS (List[List[int]]): One list of tag ids per sequence, of its length.
        """
        paths, _, lengths = self._viterbi_time_major(emissions, mask, tag_mask)
        # shape: (batch_size, seq_length)
        rows = paths.t().tolist()
        return [row[:n] for row, n in zip(rows, lengths.tolist())]

    def viterbi_tags(
        self,
        emissions: torch.Tensor,
        mask: Optional[torch.Tensor] = None,
        tag_mask: Optional[torch.Tensor] = None,
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """The Viterbi paths as a tensor, and their scores.

        emissions (torch.Tensor): (batch_size, seq_length, num_tags), see `forward`.
        mask (Optional[torch.Tensor]): (batch_size, seq_length), see `forward`.
        tag_mask (Optional[torch.Tensor]): Bool (batch_size, seq_length, num_tags), see
            `decode`.
        RETURNS (Tuple[torch.Tensor, torch.Tensor]): The paths, long (batch_size,
            seq_length) (transposed if not `batch_first`), 0 past the mask; and each path's
            unnormalized score (batch_size,) (0 for an empty sequence).
        """
        paths, best, _ = self._viterbi_time_major(emissions, mask, tag_mask)
        return (paths.t() if self.batch_first else paths), best

    def forward_backward(
        self,
        emissions: torch.Tensor,
        mask: Optional[torch.Tensor] = None,
        tag_mask: Optional[torch.Tensor] = None,
    ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The forward and backward log-scores (not differentiable).

        log_alpha[t, y] is the log of the summed exp-scores of the path prefixes 0..t ending
        in y, including the emission at t. log_beta[t, y] is that of the suffixes after t
        given y at t, excluding the emission at t and including the end transition. So
        exp(log_alpha + log_beta - log_z) are the token marginals. Both are -inf past the
        mask.

        emissions (torch.Tensor): (batch_size, seq_length, num_tags), see `forward`.
        mask (Optional[torch.Tensor]): (batch_size, seq_length), see `forward`.
        tag_mask (Optional[torch.Tensor]): Bool (batch_size, seq_length, num_tags): restrict
            the paths to these tags.
        RETURNS (Tuple[torch.Tensor, torch.Tensor, torch.Tensor]): log_alpha and log_beta
            (batch_size, seq_length, num_tags) (transposed if not `batch_first`) and log_z
            (batch_size,), in float64 for float64 emissions, else float32.
        """
        with torch.no_grad():
            inputs = self._prepare(emissions, mask=mask, tag_mask=tag_mask)
            em = inputs.restricted if inputs.restricted is not None else inputs.emissions
            alphas, betas, log_z = self._forward_backward_time_major(
                em, inputs.mask, restricted=inputs.restricted is not None
            )
            # shape: (seq_length, batch_size, 1)
            past = ~inputs.mask.unsqueeze(2)
            alphas = alphas.masked_fill(past, _NEG_INF)
            betas = betas.masked_fill(past, _NEG_INF)
            if self.batch_first:
                alphas, betas = alphas.transpose(0, 1), betas.transpose(0, 1)
            return alphas, betas, log_z

    def marginals(
        self,
        emissions: torch.Tensor,
        mask: Optional[torch.Tensor] = None,
        tag_mask: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        """The posterior probability of each tag at each position (not differentiable).

        emissions (torch.Tensor): (batch_size, seq_length, num_tags), see `forward`.
        mask (Optional[torch.Tensor]): (batch_size, seq_length), see `forward`.
        tag_mask (Optional[torch.Tensor]): Bool (batch_size, seq_length, num_tags): condition
            on the path using only these tags.
        RETURNS (torch.Tensor): (batch_size, seq_length, num_tags) (transposed if not
            `batch_first`), in the dtype of `emissions`; exactly 0 past the mask.
        """
        with torch.no_grad():
            inputs = self._prepare(emissions, mask=mask, tag_mask=tag_mask)
            em = inputs.restricted if inputs.restricted is not None else inputs.emissions
            alphas, betas, log_z = self._forward_backward_time_major(
                em, inputs.mask, restricted=inputs.restricted is not None
            )
            # shape: (seq_length, batch_size, num_tags)
            weights = inputs.mask.to(alphas.dtype)
            probs = _marginals(alphas, betas, log_z, weights).to(emissions.dtype)
            return probs.transpose(0, 1) if self.batch_first else probs

    def span_log_probs(
        self,
        emissions: torch.Tensor,
        spans: Sequence[SpanQuery],
        mask: Optional[torch.Tensor] = None,
        tag_mask: Optional[torch.Tensor] = None,
        fb: Optional[Tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = None,
    ) -> torch.Tensor:
        """The log posterior of tag sub-paths (not differentiable), vectorised over spans.

        For a span (b, start, tag_path, continuation_tags): the log probability that
        sequence b has exactly tag_path at positions start..start+len(tag_path)-1 and, if the
        span does not end the sequence, a tag not in continuation_tags right after it. With
        `TagScheme.span_tags` / `TagScheme.continuation_tags` this is the posterior that
        exactly those tokens form the entity.

        emissions (torch.Tensor): (batch_size, seq_length, num_tags), see `forward`.
        spans (Sequence[Tuple[int, int, Sequence[int], Sequence[int]]]): The queries; each
            tag_path is non-empty and fits in its sequence.
        mask (Optional[torch.Tensor]): (batch_size, seq_length), see `forward`.
        tag_mask (Optional[torch.Tensor]): Bool (batch_size, seq_length, num_tags): condition
            on the path using only these tags.
        fb (Optional[Tuple[torch.Tensor, torch.Tensor, torch.Tensor]]): The result of
            `forward_backward` for the same inputs, to reuse it.
        RETURNS (torch.Tensor): (n_spans,) log probabilities (<= 0; -inf if impossible), in
            float64 for float64 emissions, else float32.
        """
        with torch.no_grad():
            inputs = self._prepare(emissions, mask=mask, tag_mask=tag_mask)
            em = inputs.restricted if inputs.restricted is not None else inputs.emissions
            cdtype = _compute_dtype(em.dtype)
            if fb is None:
                fb = self.forward_backward(emissions, mask=mask, tag_mask=tag_mask)
            alphas, betas, log_z = fb
            seq_length, batch_size, num_tags = em.shape
            expected = (batch_size, seq_length, num_tags)
            if not self.batch_first:
                expected = (seq_length, batch_size, num_tags)
            for name, value, shape in (
                ("fb[0] (log_alpha)", alphas, expected),
                ("fb[1] (log_beta)", betas, expected),
                ("fb[2] (log_z)", log_z, (batch_size,)),
            ):
                if tuple(value.shape) != shape:
                    raise ValueError(
                        Errors.BCE010.format(name=name, expected=f"shape {shape}",
                                             got=tuple(value.shape))
                    )
            if not self.batch_first:
                alphas, betas = alphas.transpose(0, 1), betas.transpose(0, 1)
            device = em.device
            b, s, k, paths, cont = self._span_tensors(spans, inputs.lengths, device)
            if b.numel() == 0:
                return torch.zeros(0, dtype=cdtype, device=device)
            alphas, betas, log_z = alphas.to(cdtype), betas.to(cdtype), log_z.to(cdtype)
            # shape: (batch_size, seq_length, num_tags)
            em_bf = em.transpose(0, 1).to(cdtype)
            start, transitions, end = (x.detach().to(cdtype) for x in self._scores())
            n_spans, max_k = paths.shape
            arange = torch.arange(n_spans, device=device)
            # shape: (n_spans,)
            first = alphas[b, s, paths[:, 0]]
            # shape: (max_k - 1,)
            offsets = torch.arange(1, max_k, device=device)
            # shape: (n_spans, max_k - 1)
            positions = (s.unsqueeze(1) + offsets).clamp_max(seq_length - 1)
            inside = offsets.unsqueeze(0) < k.unsqueeze(1)
            steps = em_bf[b.unsqueeze(1), positions, paths[:, 1:]] + transitions[
                paths[:, :-1], paths[:, 1:]
            ]
            # shape: (n_spans,)
            middle = torch.where(inside, steps, torch.zeros_like(steps)).sum(1)
            last = paths[arange, k - 1]
            after = s + k
            has_next = after < inputs.lengths[b]
            nxt = after.clamp_max(seq_length - 1)
            # shape: (n_spans, num_tags)
            next_scores = transitions[last] + em_bf[b, nxt] + betas[b, nxt]
            next_scores = next_scores.masked_fill(cont, _NEG_INF)
            # shape: (n_spans,)
            tail = torch.where(has_next, torch.logsumexp(next_scores, dim=1), end[last])
            return (first + middle + tail - log_z[b]).clamp_max(0.0)

    # ------------------------------------------------------------------ internals
    def _scores(self) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """RETURNS (Tuple[torch.Tensor, torch.Tensor, torch.Tensor]): the start,
        transition and end scores with -inf at forbidden entries (zero gradient there)."""
        return (
            self.start_transitions.masked_fill(~self.allowed_start, _NEG_INF),
            self.transitions.masked_fill(~self.allowed_transitions, _NEG_INF),
            self.end_transitions.masked_fill(~self.allowed_end, _NEG_INF),
        )

    def _checked_log_z(
        self, emissions: torch.Tensor, mask: torch.Tensor, restricted_rows: int = 0
    ) -> torch.Tensor:
        """logZ per sequence (differentiable); raise if a sequence has no allowed path.

        emissions (torch.Tensor): (seq_length, batch_size, num_tags), zero past the mask.
        mask (torch.Tensor): bool (seq_length, batch_size).
        restricted_rows (int): The first rows are restricted by a tag mask (for the error).
        RETURNS (torch.Tensor): (batch_size,).
        """
        if emissions.shape[0] == 0:
            # no steps at all: 0, but connected to the graph so that backward() works
            return emissions.sum((0, 2)) + 0.0 * self.start_transitions.sum()
        start, transitions, end = self._scores()
        log_z = _LogPartition.apply(emissions, mask, start, transitions, end)
        self._raise_if_impossible(log_z, mask, restricted_rows)
        return log_z

    def _raise_if_impossible(
        self, log_z: torch.Tensor, mask: torch.Tensor, restricted_rows: int
    ) -> None:
        bad = torch.isneginf(log_z)
        if bool(bad.any()):
            index = int(bad.nonzero()[0, 0])
            length = int(mask[:, index].sum())
            if index < restricted_rows:
                raise ValueError(Errors.BCE012.format(index=index))
            index -= restricted_rows
            raise ValueError(Errors.BCE014.format(index=index, length=length))

    def _forward_backward_time_major(
        self, emissions: torch.Tensor, mask: torch.Tensor, restricted: bool
    ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Forward-backward in the compute dtype; time-major in and out."""
        seq_length, batch_size, num_tags = emissions.shape
        cdtype = _compute_dtype(emissions.dtype)
        if seq_length == 0:
            empty = emissions.new_zeros((0, batch_size, num_tags), dtype=cdtype)
            return empty, empty, emissions.new_zeros(batch_size, dtype=cdtype)
        start, transitions, end = (x.detach().to(cdtype) for x in self._scores())
        e = emissions.detach().to(cdtype)
        alphas = _alphas(e, mask, start, transitions).scores
        log_z = _log_z(alphas, mask, end)
        self._raise_if_impossible(log_z, mask, batch_size if restricted else 0)
        betas = _betas(e, mask, transitions, end).scores
        return alphas, betas, log_z

    def _viterbi_time_major(
        self,
        emissions: torch.Tensor,
        mask: Optional[torch.Tensor],
        tag_mask: Optional[torch.Tensor],
    ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """RETURNS (Tuple[torch.Tensor, torch.Tensor, torch.Tensor]): the paths (seq_length,
        batch_size) 0 past the mask, their scores (batch_size,) and the lengths."""
        with torch.no_grad():
            inputs = self._prepare(emissions, mask=mask, tag_mask=tag_mask)
            em = inputs.restricted if inputs.restricted is not None else inputs.emissions
            em = em.to(_compute_dtype(em.dtype))
            start, transitions, end = (x.detach().to(em.dtype) for x in self._scores())
            paths, best = _viterbi(em, inputs.mask, inputs.lengths, start, transitions, end)
            bad = torch.isneginf(best)
            if bool(bad.any()):
                index = int(bad.nonzero()[0, 0])
                if inputs.restricted is not None:
                    raise ValueError(Errors.BCE012.format(index=index))
                raise ValueError(
                    Errors.BCE014.format(index=index, length=int(inputs.lengths[index]))
                )
            return paths, best, inputs.lengths

    def _path_score(
        self, emissions: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        """The unnormalized score of the given paths (differentiable, time-major).

        emissions (torch.Tensor): (seq_length, batch_size, num_tags), zero past the mask.
        tags (torch.Tensor): long (seq_length, batch_size), zero past the mask.
        mask (torch.Tensor): bool (seq_length, batch_size).
        RETURNS (torch.Tensor): (batch_size,).
        """
        seq_length, batch_size = tags.shape
        if seq_length == 0:
            return emissions.sum((0, 2)) + 0.0 * self.start_transitions.sum()
        # shape: (seq_length, batch_size)
        emitted = emissions.gather(2, tags.unsqueeze(2)).squeeze(2)
        # shape: (batch_size,)
        score = emitted.sum(0)  # emissions are zero past the mask
        # shape: (seq_length - 1, batch_size)
        moves = self.transitions[tags[:-1], tags[1:]]
        score = score + torch.where(mask[1:], moves, torch.zeros_like(moves)).sum(0)
        lengths = mask.sum(0)
        last = tags.gather(0, (lengths - 1).clamp_min(0).unsqueeze(0)).squeeze(0)
        ends = self.start_transitions[tags[0]] + self.end_transitions[last]
        return score + torch.where(lengths > 0, ends, torch.zeros_like(ends))

    def _check_gold_path(self, tags: torch.Tensor, lengths: torch.Tensor) -> None:
        """Raise a ValueError if a gold path uses a forbidden move."""
        if not self.constrained or tags.shape[0] == 0:
            return
        nonempty = lengths > 0
        last = tags.gather(0, (lengths - 1).clamp_min(0).unsqueeze(0)).squeeze(0)
        bad_start = nonempty & ~self.allowed_start[tags[0]]
        bad_end = nonempty & ~self.allowed_end[last]
        positions = torch.arange(1, tags.shape[0], device=tags.device).unsqueeze(1)
        # shape: (seq_length - 1, batch_size)
        bad_move = (positions < lengths.unsqueeze(0)) & ~self.allowed_transitions[
            tags[:-1], tags[1:]
        ]
        bad = bad_start | bad_end | bad_move.any(0)
        if not bool(bad.any()):
            return
        index = int(bad.nonzero()[0, 0])
        if bool(bad_start[index]):
            detail = f"it starts with tag {int(tags[0, index])}"
        elif bool(bad_move[:, index].any()):
            t = int(bad_move[:, index].nonzero()[0, 0]) + 1
            detail = (
                f"tag {int(tags[t, index])} at position {t} cannot follow tag "
                f"{int(tags[t - 1, index])}"
            )
        else:
            detail = f"it ends with tag {int(last[index])}"
        raise ValueError(Errors.BCE015.format(index=index, detail=detail))

    def _prepare(
        self,
        emissions: torch.Tensor,
        mask: Optional[torch.Tensor] = None,
        tags: Optional[torch.Tensor] = None,
        tag_mask: Optional[torch.Tensor] = None,
    ) -> _Prepared:
        """Validate the inputs (in the caller's layout) and make them time-major."""
        layout = "(batch_size, seq_length" if self.batch_first else "(seq_length, batch_size"
        if not isinstance(emissions, torch.Tensor) or emissions.dim() != 3:
            got = f"{emissions.dim()}-D" if isinstance(emissions, torch.Tensor) else type(emissions)
            raise ValueError(
                Errors.BCE010.format(
                    name="emissions", expected=f"a 3-D tensor {layout}, num_tags)", got=got
                )
            )
        if emissions.shape[2] != self.num_tags:
            raise ValueError(
                Errors.BCE010.format(
                    name="emissions",
                    expected=f"last dimension num_tags={self.num_tags}",
                    got=tuple(emissions.shape),
                )
            )
        if not emissions.is_floating_point():
            raise ValueError(
                Errors.BCE010.format(name="emissions", expected="a floating dtype",
                                     got=emissions.dtype)
            )
        lead = tuple(emissions.shape[:2])
        if mask is None:
            mask = torch.ones(lead, dtype=torch.bool, device=emissions.device)
        else:
            _check_tensor(mask, "mask", lead, (torch.bool, torch.uint8), f"{layout})")
            mask = mask.bool()
        if tags is not None:
            _check_tensor(tags, "tags", lead, (torch.long,), f"{layout})")
        if tag_mask is not None:
            _check_tensor(
                tag_mask, "tag_mask", lead + (self.num_tags,), (torch.bool,),
                f"{layout}, num_tags)",
            )
        if self.batch_first:
            emissions = emissions.transpose(0, 1)
            mask = mask.transpose(0, 1)
            tags = tags.transpose(0, 1) if tags is not None else None
            tag_mask = tag_mask.transpose(0, 1) if tag_mask is not None else None
        # shape: (seq_length, batch_size)
        mask = mask.contiguous()
        if mask.shape[0] > 1 and bool((mask[1:] & ~mask[:-1]).any()):
            index = int((mask[1:] & ~mask[:-1]).any(0).nonzero()[0, 0])
            raise ValueError(
                Errors.BCE010.format(
                    name="mask",
                    expected="a left-aligned prefix (on for the first n positions, then off)",
                    got=f"a gap in sequence {index}",
                )
            )
        lengths = mask.sum(0)
        # shape: (seq_length, batch_size, num_tags)
        on = mask.unsqueeze(2)
        emissions = torch.where(on, emissions, torch.zeros((), dtype=emissions.dtype,
                                                           device=emissions.device))
        # half-precision emissions are summed and scored in float32 (differentiably)
        emissions = emissions.to(_compute_dtype(emissions.dtype)).contiguous()
        # (past the mask anything goes: it was zeroed above)
        invalid = torch.isnan(emissions) | torch.isposinf(emissions)
        if emissions.numel() and bool(invalid.any()):
            raise ValueError(
                Errors.BCE010.format(
                    name="emissions",
                    expected="no NaN or +inf values within the mask (-inf forbids a tag)",
                    got="NaN" if bool(torch.isnan(emissions).any()) else "+inf",
                )
            )
        if tags is not None:
            tags = torch.where(mask, tags, torch.zeros_like(tags))
            if tags.numel() and bool(((tags < 0) | (tags >= self.num_tags)).any()):
                bad = int(tags[(tags < 0) | (tags >= self.num_tags)][0])
                raise ValueError(
                    Errors.BCE010.format(
                        name="tags", expected=f"tag ids in [0, {self.num_tags})", got=bad
                    )
                )
        restricted = None
        if tag_mask is not None:
            # shape: (seq_length, batch_size, num_tags)
            restricted = emissions.masked_fill(~(tag_mask | ~on), _NEG_INF)
        return _Prepared(emissions, restricted, mask, lengths, tags)

    def _span_tensors(
        self, spans: Sequence[SpanQuery], lengths: torch.Tensor, device: torch.device
    ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Validate span queries; pad their paths. RETURNS batch indices, starts, path
        lengths (n_spans,), padded paths (n_spans, max_len) and the continuation mask
        (n_spans, num_tags)."""
        batch_size = lengths.shape[0]
        lens = lengths.tolist()
        n_spans = len(spans)
        bs: List[int] = []
        starts: List[int] = []
        paths: List[List[int]] = []
        cont_rows: List[int] = []
        cont_cols: List[int] = []
        for i, span in enumerate(spans):
            try:
                b, start, path, cont = span
                b, start, path, cont = int(b), int(start), [int(t) for t in path], [
                    int(t) for t in cont
                ]
            except (TypeError, ValueError) as err:
                raise ValueError(
                    Errors.BCE016.format(
                        index=i, span=span,
                        detail="expected (batch_index, start, tag_path, continuation_tags)",
                    )
                ) from err
            if not 0 <= b < batch_size:
                detail = f"batch index {b} out of range for batch size {batch_size}"
            elif not path:
                detail = "the tag path is empty"
            elif not (0 <= start and start + len(path) <= lens[b]):
                detail = f"positions {start}..{start + len(path) - 1} do not fit in length {lens[b]}"
            elif not all(0 <= t < self.num_tags for t in path + cont):
                detail = f"tag ids must be in [0, {self.num_tags})"
            else:
                detail = ""
            if detail:
                raise ValueError(Errors.BCE016.format(index=i, span=span, detail=detail))
            bs.append(b)
            starts.append(start)
            paths.append(path)
            cont_rows.extend([i] * len(cont))
            cont_cols.extend(cont)
        max_k = max((len(p) for p in paths), default=1)
        padded = [p + [0] * (max_k - len(p)) for p in paths]
        cont_mask = torch.zeros((n_spans, self.num_tags), dtype=torch.bool)
        if cont_rows:
            cont_mask[cont_rows, cont_cols] = True
        return (
            torch.tensor(bs, dtype=torch.long, device=device),
            torch.tensor(starts, dtype=torch.long, device=device),
            torch.tensor([len(p) for p in paths], dtype=torch.long, device=device),
            torch.tensor(padded, dtype=torch.long, device=device).reshape(n_spans, max_k),
            cont_mask.to(device),
        )


# ---------------------------------------------------------------------- helpers
def _bool_mask(value: Optional[MaskLike], shape: Tuple[int, ...], name: str) -> torch.Tensor:
    """A bool tensor of `shape` from a numpy array, tensor or nested list (None: all True)."""
    if value is None:
        return torch.ones(shape, dtype=torch.bool)
    tensor = torch.as_tensor(value).detach().cpu()
    if tensor.is_floating_point() or tensor.is_complex():
        raise ValueError(Errors.BCE010.format(name=name, expected="a bool mask", got=tensor.dtype))
    if tuple(tensor.shape) != shape:
        raise ValueError(
            Errors.BCE010.format(name=name, expected=f"shape {shape}", got=tuple(tensor.shape))
        )
    return tensor.bool().clone()


def _check_tensor(
    value: Any,
    name: str,
    shape: Tuple[int, ...],
    dtypes: Tuple[torch.dtype, ...],
    layout: str,
) -> None:
    if not isinstance(value, torch.Tensor):
        raise ValueError(Errors.BCE010.format(name=name, expected="a tensor", got=type(value)))
    if tuple(value.shape) != shape:
        raise ValueError(
            Errors.BCE010.format(
                name=name, expected=f"shape {shape} {layout}", got=tuple(value.shape)
            )
        )
    if value.dtype not in dtypes:
        expected = " or ".join(str(d) for d in dtypes)
        raise ValueError(Errors.BCE010.format(name=name, expected=expected, got=value.dtype))


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype the recursions run in: float64 stays, anything else runs in float32."""
    return torch.float64 if dtype == torch.float64 else torch.float32


class _Recursion(NamedTuple):
    """One direction of forward-backward, time-major.

    scores (torch.Tensor): (seq_length, batch_size, num_tags), log_alpha or log_beta.
    tops (torch.Tensor): (seq_length - 1, batch_size, 1), the per-step scaling maxima.
    scaled (torch.Tensor): (seq_length - 1, batch_size, num_tags), exp(x - top) of the
        scores x that entered each step's matrix product (see `_alphas` / `_betas`).
    """

    scores: torch.Tensor
    tops: torch.Tensor
    scaled: torch.Tensor


def _lost(shifted: torch.Tensor, spread: float = 0.0) -> bool:
    """Whether exp() underflows for a finite, non-forbidden entry of `shifted` (x - max)
    times the smallest allowed exp(T - max(T)), exp(spread) (see `_exp_transitions`)."""
    if shifted.numel() == 0:
        return False
    small = shifted < _UNDERFLOW[shifted.dtype] - spread
    return bool((small & (shifted != _NEG_INF)).any())


def _exp_transitions(transitions: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, float]:
    """exp(T - c) with c the largest allowed (finite) transition score, so that no entry
    overflows; c (a 0-d tensor, 0 if nothing is allowed); and the spread, min(T - c) over
    the allowed entries (<= 0): the scaled recursions lose nothing as long as
    (x - max) + spread stays above `_UNDERFLOW` (`_lost`).
    """
    allowed = torch.isfinite(transitions)
    if not bool(allowed.any()):
        return transitions.exp(), transitions.new_zeros(()), 0.0
    top = transitions.masked_fill(~allowed, _NEG_INF).amax()
    spread = float(transitions.masked_fill(~allowed, float("inf")).amin() - top)
    return (transitions - top).exp(), top, spread


def _alphas(
    emissions: torch.Tensor, mask: torch.Tensor, start: torch.Tensor, transitions: torch.Tensor
) -> _Recursion:
    """The forward recursion: alpha_t = log(exp(alpha_{t-1} - m) @ exp(T)) + m + e_t with
    m = max(alpha_{t-1}); the exact log-sum-exp recursion if exp() would underflow. Past a
    sequence's end, alpha keeps its last value.

    emissions (torch.Tensor): (seq_length >= 1, batch_size, num_tags), -inf where forbidden.
    mask (torch.Tensor): bool (seq_length, batch_size).
    start, transitions (torch.Tensor): Scores with -inf where forbidden.
    RETURNS (_Recursion): scaled[t - 1] = exp(alpha_{t-1} - tops[t - 1]).
    """
    lowest = torch.finfo(emissions.dtype).min
    ragged = not bool(mask.all())
    # shape: (num_tags, num_tags): exp(T - shift)
    exp_transitions, shift, spread = _exp_transitions(transitions)
    # per step, shape: (batch_size, num_tags) and (batch_size, 1)
    em, on = emissions.unbind(0), mask.unsqueeze(2).unbind(0)
    # shape: (batch_size, num_tags)
    alpha = start + em[0]
    alphas, tops, scaled = [alpha], [], []
    for t in range(1, emissions.shape[0]):
        # shape: (batch_size, 1)
        top = alpha.amax(1, keepdim=True).clamp_min(lowest)
        # shape: (batch_size, num_tags)
        p = torch.exp(alpha - top)
        nxt = torch.log(torch.mm(p, exp_transitions)) + (top + em[t] + shift)
        alpha = torch.where(on[t], nxt, alpha) if ragged else nxt
        alphas.append(alpha)
        tops.append(top)
        scaled.append(p)
    out = _stack(alphas, tops, scaled, emissions)
    if not _lost(out.scores[:-1] - out.tops, spread):
        return out
    # exact: log-sum-exp over (batch_size, from, to)
    alpha = start + emissions[0]
    alphas = [alpha]
    for t in range(1, emissions.shape[0]):
        nxt = torch.logsumexp(alpha.unsqueeze(2) + transitions, dim=1) + emissions[t]
        alpha = torch.where(mask[t].unsqueeze(1), nxt, alpha)
        alphas.append(alpha)
    return _rescale(torch.stack(alphas)[:-1], torch.stack(alphas))


def _betas(
    emissions: torch.Tensor, mask: torch.Tensor, transitions: torch.Tensor, end: torch.Tensor
) -> _Recursion:
    """The backward recursion: beta_{t-1} = log(exp(v_t - m) @ exp(T)^T) + m with
    v_t = e_t + beta_t, m = max(v_t). beta_t excludes the emission at t and includes the end
    transition; from a sequence's last position on, beta is the end score.

    RETURNS (_Recursion): scaled[t - 1] = exp(e_t + beta_t - tops[t - 1]).
    """
    seq_length, batch_size, num_tags = emissions.shape
    lowest = torch.finfo(emissions.dtype).min
    # shape: (num_tags, num_tags), [to, from]
    exp_transitions, shift, spread = _exp_transitions(transitions)
    exp_transitions_t = exp_transitions.t().contiguous()
    # shape: (batch_size, num_tags)
    final = end.unsqueeze(0).expand(batch_size, num_tags)
    # per step, shape: (batch_size, num_tags) and (batch_size, 1)
    em, on = emissions.unbind(0), mask.unsqueeze(2).unbind(0)
    beta = final
    betas, tops, scaled, values = [beta], [], [], []
    for t in range(seq_length - 1, 0, -1):
        # shape: (batch_size, num_tags)
        v = em[t] + beta
        top = v.amax(1, keepdim=True).clamp_min(lowest)
        p = torch.exp(v - top)
        nxt = torch.log(torch.mm(p, exp_transitions_t)) + (top + shift)
        beta = torch.where(on[t], nxt, final)
        betas.append(beta)
        tops.append(top)
        scaled.append(p)
        values.append(v)
    for seq in (betas, tops, scaled, values):
        seq.reverse()
    out = _stack(betas, tops, scaled, emissions)
    if seq_length < 2 or not _lost(torch.stack(values) - out.tops, spread):
        return out
    beta = final
    betas = [beta]
    for t in range(seq_length - 1, 0, -1):
        nxt = torch.logsumexp((emissions[t] + beta).unsqueeze(1) + transitions, dim=2)
        beta = torch.where(mask[t].unsqueeze(1), nxt, final)
        betas.append(beta)
    betas.reverse()
    stacked = torch.stack(betas)
    return _rescale(emissions[1:] + stacked[1:], stacked)


def _stack(
    scores: List[torch.Tensor], tops: List[torch.Tensor], scaled: List[torch.Tensor],
    like: torch.Tensor,
) -> _Recursion:
    batch_size, num_tags = like.shape[1], like.shape[2]
    if not tops:
        empty = like.new_zeros((0, batch_size, num_tags))
        return _Recursion(torch.stack(scores), empty[..., :1], empty)
    return _Recursion(torch.stack(scores), torch.stack(tops), torch.stack(scaled))


def _rescale(values: torch.Tensor, scores: torch.Tensor) -> _Recursion:
    """The scaling maxima and exp(values - max) for scores from the exact recursion."""
    lowest = torch.finfo(values.dtype).min
    # shape: (seq_length - 1, batch_size, 1)
    tops = values.amax(2, keepdim=True).clamp_min(lowest)
    return _Recursion(scores, tops, torch.exp(values - tops))


def _log_z(alphas: torch.Tensor, mask: torch.Tensor, end: torch.Tensor) -> torch.Tensor:
    """RETURNS (torch.Tensor): log_z (batch_size,), 0 for empty sequences."""
    # alpha keeps its last value past the end, so the last step holds every sequence's
    # shape: (batch_size,)
    log_z = torch.logsumexp(alphas[-1] + end, dim=1)
    return log_z.masked_fill(~mask[0], 0.0)


def _marginals(
    alphas: torch.Tensor, betas: torch.Tensor, log_z: torch.Tensor, weights: torch.Tensor
) -> torch.Tensor:
    """The token posteriors times `weights` (0 past the mask).

    weights (torch.Tensor): (seq_length, batch_size).
    RETURNS (torch.Tensor): (seq_length, batch_size, num_tags).
    """
    # shape: (seq_length, batch_size, num_tags)
    probs = torch.exp(alphas + betas - log_z.view(1, -1, 1))
    return probs * weights.unsqueeze(2)


def _transition_counts(
    fwd: _Recursion,
    bwd: _Recursion,
    emissions: torch.Tensor,
    log_z: torch.Tensor,
    transitions: torch.Tensor,
    weights: torch.Tensor,
) -> torch.Tensor:
    """The expected number of each transition, weighted per sequence and summed:
    sum_{t, b} weights[t, b] p(y_{t-1} = i, y_t = j | b).

    p(y_{t-1} = i, y_t = j) = exp(alpha_{t-1}(i) + T(i, j) + e_t(j) + beta_t(j) - log_z)
    = fwd.scaled(i) * exp(T(i, j)) * bwd.scaled(j) * exp(fwd.top + bwd.top - log_z), so the
    sum over (t, b) is one matrix product.

    weights (torch.Tensor): (seq_length, batch_size), 0 past the mask.
    RETURNS (torch.Tensor): (num_tags, num_tags).
    """
    num_tags = emissions.shape[2]
    if emissions.shape[0] < 2:
        return torch.zeros_like(transitions)
    exp_transitions, shift, _ = _exp_transitions(transitions)
    # shape: (seq_length - 1, batch_size, 1)
    scale = torch.exp(fwd.tops + bwd.tops - log_z.view(1, -1, 1) + shift)
    on = weights[1:].unsqueeze(2) != 0
    scale = torch.where(on, scale * weights[1:].unsqueeze(2), torch.zeros_like(scale))
    if bool(torch.isfinite(scale).all()):
        # shape: (num_tags, num_tags)
        counts = torch.mm(
            (fwd.scaled * scale).reshape(-1, num_tags).t(), bwd.scaled.reshape(-1, num_tags)
        )
        counts = counts * exp_transitions
        if bool(torch.isfinite(counts).all()):
            return counts
    # exact fallback (scales out of range): the (seq, batch, tags, tags) pairwise posteriors
    # shape: (seq_length - 1, batch_size, num_tags, num_tags)
    pair = (
        fwd.scores[:-1].unsqueeze(3)
        + transitions
        + (emissions[1:] + bwd.scores[1:]).unsqueeze(2)
        - log_z.view(1, -1, 1, 1)
    )
    # shape: (seq_length - 1, batch_size, 1, 1)
    w = weights[1:].view(*weights[1:].shape, 1, 1)
    # past a sequence's end (weight 0) pair is meaningless and may be +inf: exp it nowhere
    pair = torch.exp(pair.masked_fill(w == 0, _NEG_INF)) * w
    return pair.sum((0, 1))


def _viterbi(
    emissions: torch.Tensor,
    mask: torch.Tensor,
    lengths: torch.Tensor,
    start: torch.Tensor,
    transitions: torch.Tensor,
    end: torch.Tensor,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Viterbi on the whole batch. The forward pass keeps only the max scores (a max over
    the leading dim of a (from, to, batch) tensor is fast); the back-trace recovers each
    step's argmax for the chosen tag only, on the whole batch at once.

    emissions (torch.Tensor): (seq_length, batch_size, num_tags), -inf where forbidden.
    RETURNS (Tuple[torch.Tensor, torch.Tensor]): the paths (seq_length, batch_size), 0 past
        the mask, and their scores (batch_size,) (0 for empty sequences).
    """
    seq_length, batch_size, num_tags = emissions.shape
    device = emissions.device
    if seq_length == 0:
        return (
            torch.zeros((0, batch_size), dtype=torch.long, device=device),
            emissions.new_zeros(batch_size),
        )
    ragged = not bool(mask.all())
    # shape: (num_tags, num_tags, 1), [from, to]
    trans = transitions.unsqueeze(2)
    # per step, shape: (1, batch_size)
    on = mask.unsqueeze(1).unbind(0)
    # per step, shape: (num_tags, batch_size)
    em = emissions.transpose(1, 2).unbind(0)
    score = start.unsqueeze(1) + em[0]
    history = [score]
    for t in range(1, seq_length):
        # best score of a path ending in each tag at t; (from, to, batch) -> (to, batch)
        nxt = (score.unsqueeze(1) + trans).amax(0) + em[t]
        score = torch.where(on[t], nxt, score) if ragged else nxt
        history.append(score)
    # shape: (batch_size,)
    best_score, last = (score + end.unsqueeze(1)).max(0)
    # shape: (num_tags, num_tags), [to, from]
    trans_t = transitions.t().contiguous()
    steps = mask.unbind(0)
    tag = last
    backwards = [last]
    for t in range(seq_length - 1, 0, -1):
        # shape: (batch_size, num_tags) -> (batch_size,); the contiguous operand first, so
        # that the sum is contiguous and its argmax fast
        prev = trans_t[tag].add_(history[t - 1].t()).argmax(1)
        tag = torch.where(steps[t], prev, tag) if ragged else prev
        backwards.append(tag)
    backwards.reverse()
    # shape: (seq_length, batch_size)
    paths = torch.stack(backwards).masked_fill(~mask, 0)
    best_score = best_score.masked_fill(lengths == 0, 0.0)
    return paths, best_score


class _LogPartition(torch.autograd.Function):
    """logZ by the scaled exp-space forward recursion; its gradient from forward-backward
    marginals (d logZ / d e_t(y) = p(y_t = y), d logZ / d T(i, j) = expected count of i->j).
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        emissions: torch.Tensor,
        mask: torch.Tensor,
        start: torch.Tensor,
        transitions: torch.Tensor,
        end: torch.Tensor,
    ) -> torch.Tensor:
        cdtype = _compute_dtype(emissions.dtype)
        e = emissions.to(cdtype)
        st, tr, en = start.to(cdtype), transitions.to(cdtype), end.to(cdtype)
        fwd = _alphas(e, mask, st, tr)
        log_z = _log_z(fwd.scores, mask, en)
        ctx.save_for_backward(e, mask, tr, en, log_z, *fwd)
        ctx.dtypes = (emissions.dtype, start.dtype, transitions.dtype, end.dtype)
        return log_z.to(emissions.dtype)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> Tuple[Optional[torch.Tensor], ...]:  # type: ignore[override]
        e, mask, tr, en, log_z, *saved = ctx.saved_tensors
        fwd = _Recursion(*saved)
        e_dtype, s_dtype, t_dtype, end_dtype = ctx.dtypes
        bwd = _betas(e, mask, tr, en)
        # Sequences without any allowed path (log_z = -inf) get no gradient.
        impossible = torch.isneginf(log_z)
        safe_log_z = log_z.masked_fill(impossible, 0.0)
        # shape: (seq_length, batch_size)
        weights = grad.to(e.dtype).masked_fill(impossible, 0.0).unsqueeze(0) * mask
        # shape: (seq_length, batch_size, num_tags)
        probs = _marginals(fwd.scores, bwd.scores, safe_log_z, weights)
        lengths = mask.sum(0)
        # shape: (1, batch_size, num_tags)
        index = (lengths - 1).clamp_min(0).view(1, -1, 1).expand(1, *probs.shape[1:])
        grad_start = probs[0].sum(0)
        grad_end = probs.gather(0, index).squeeze(0).sum(0)
        grad_transitions = _transition_counts(fwd, bwd, e, safe_log_z, tr, weights)
        return (
            probs.to(e_dtype),
            None,
            grad_start.to(s_dtype),
            grad_transitions.to(t_dtype),
            grad_end.to(end_dtype),
        )


__all__ = ["CRF", "REDUCTIONS"]
