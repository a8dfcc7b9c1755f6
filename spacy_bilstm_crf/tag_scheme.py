"""Tag schemes: entity labels <-> tag ids, and the moves each scheme allows.

No torch here: masks are numpy arrays, which ``crf.CRF`` turns into buffers.

Tag ids are laid out as ``0 = "O"``, then for each label (in the order given):
``B-, I-`` (BIO) or ``B-, I-, L-, U-`` (BILUO).
"""

from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy

from .errors import Errors

Span = Tuple[int, int, str]  # (start, end) token offsets, end exclusive, and the label

SCHEMES = ("BIO", "BILUO")
_PREFIXES: Dict[str, Tuple[str, ...]] = {"BIO": ("B", "I"), "BILUO": ("B", "I", "L", "U")}
# BILUO tags as produced by spaCy (Example.get_aligned_ner) -> the BIO tag with the same meaning
_BILUO_TO_BIO = {"B": "B", "I": "I", "L": "I", "U": "B"}


class UnknownLabelError(ValueError):
    """A gold tag names a label the scheme does not know."""

    def __init__(self, message: str, label: str) -> None:
        super().__init__(message)
        self.label = label


def validate_label(label: str) -> None:
    """Raise a ValueError if `label` cannot be an entity label."""
    if (
        not isinstance(label, str)
        or not label
        or label != label.strip()
        or any(ch.isspace() for ch in label)
        or label[:2] in ("B-", "I-", "L-", "U-")
        or label == "O"
    ):
        raise ValueError(Errors.BCE002.format(label=label))


class TagScheme:
    """A BIO or BILUO tag set over a fixed list of entity labels.

    scheme (str): "BIO" or "BILUO".
    labels (Iterable[str]): The entity labels, in the order their tags get ids.
    """

    def __init__(self, scheme: str, labels: Iterable[str]) -> None:
        scheme = scheme.upper() if isinstance(scheme, str) else scheme
        if scheme not in SCHEMES:
            raise ValueError(Errors.BCE001.format(scheme=scheme, options=list(SCHEMES)))
        self.scheme: str = scheme
        self.labels: Tuple[str, ...] = tuple(labels)
        for label in self.labels:
            validate_label(label)
        if len(set(self.labels)) != len(self.labels):
            raise ValueError(Errors.BCE025.format(value=list(self.labels), name="labels",
                                                  detail="labels must be unique"))
        self.prefixes: Tuple[str, ...] = _PREFIXES[scheme]
        self.tags: List[str] = ["O"] + [f"{p}-{lab}" for lab in self.labels for p in self.prefixes]
        self.tag_to_id: Dict[str, int] = {tag: i for i, tag in enumerate(self.tags)}
        self.label_to_id: Dict[str, int] = {lab: i for i, lab in enumerate(self.labels)}
        # lookup tables for the per-token loops (decoding runs them on every predicted doc)
        self._split: List[Tuple[str, Optional[str]]] = [("O", None)] + [
            (p, lab) for lab in self.labels for p in self.prefixes
        ]
        self._start: List[bool] = [self._may_start(t) for t in range(self.num_tags)]
        self._end: List[bool] = [self._may_end(t) for t in range(self.num_tags)]
        # the tags that begin an entity (B-, U-) and those that go on with one (I-, L-)
        self._begin_ids = numpy.asarray(
            [t for t in range(1, self.num_tags) if self._split[t][0] in "BU"], dtype="int64")
        self._inside_ids = numpy.asarray(
            [t for t in range(1, self.num_tags) if self._split[t][0] in "IL"], dtype="int64")
        self._follow: List[List[bool]] = [
            [self._may_follow(i, j) for j in range(self.num_tags)] for i in range(self.num_tags)
        ]

    def __repr__(self) -> str:
        return f"TagScheme({self.scheme!r}, {list(self.labels)!r})"

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, TagScheme)
            and other.scheme == self.scheme
            and other.labels == self.labels
        )

    @property
    def num_tags(self) -> int:
        return len(self.tags)

    def tag_id(self, prefix: str, label: str) -> int:
        """The id of the tag `prefix`-`label` (prefix one of the scheme's letters)."""
        return 1 + self.label_to_id[label] * len(self.prefixes) + self.prefixes.index(prefix)

    def split(self, tag_id: int) -> Tuple[str, Optional[str]]:
        """RETURNS (Tuple[str, Optional[str]]): the prefix and label of a tag id ("O", None)."""
        n = len(self.tags)
        if not 0 <= tag_id < n:
            raise ValueError(Errors.BCE007.format(tag_id=tag_id, num_tags=n))
        if tag_id == 0:
            return "O", None
        label_idx, prefix_idx = divmod(tag_id - 1, len(self.prefixes))
        return self.prefixes[prefix_idx], self.labels[label_idx]

    # ------------------------------------------------------------------ constraints
    def allowed_start(self) -> numpy.ndarray:
        """RETURNS (numpy.ndarray): bool (num_tags,), the tags a sequence may start with."""
        return numpy.array(self._start, dtype=bool)

    def allowed_end(self) -> numpy.ndarray:
        """RETURNS (numpy.ndarray): bool (num_tags,), the tags a sequence may end with."""
        return numpy.array(self._end, dtype=bool)

    def allowed_transitions(self) -> numpy.ndarray:
        """RETURNS (numpy.ndarray): bool (num_tags, num_tags), [from, to] moves allowed."""
        return numpy.array(self._follow, dtype=bool).reshape(self.num_tags, self.num_tags)

    def _may_start(self, t: int) -> bool:
        prefix, _ = self.split(t)
        return prefix in ("O", "B", "U")

    def _may_end(self, t: int) -> bool:
        prefix, _ = self.split(t)
        return prefix in ("O", "I", "B") if self.scheme == "BIO" else prefix in ("O", "L", "U")

    def _may_follow(self, prev: int, cur: int) -> bool:
        p_prefix, p_label = self.split(prev)
        c_prefix, c_label = self.split(cur)
        if self.scheme == "BIO":
            if c_prefix == "I":
                return p_prefix in ("B", "I") and p_label == c_label
            return True
        # BILUO
        inside = p_prefix in ("B", "I")
        if c_prefix in ("I", "L"):
            return inside and p_label == c_label
        return not inside

    def is_valid(self, tag_ids: Sequence[int]) -> bool:
        """RETURNS (bool): whether the whole sequence obeys the scheme."""
        try:
            self._check(tag_ids)
        except ValueError:
            return False
        return True

    def _check(self, tag_ids: Sequence[int]) -> None:
        n = len(self.tags)
        follow = self._follow
        prev = -1
        for i, t in enumerate(tag_ids):
            t = int(t)
            if not 0 <= t < n:
                raise ValueError(Errors.BCE007.format(tag_id=t, num_tags=n))
            if not (self._start[t] if prev < 0 else follow[prev][t]):
                self._raise_invalid(tag_ids, i, prev if prev >= 0 else None)
            prev = t
        if prev >= 0 and not self._end[prev]:
            self._raise_invalid(tag_ids, len(tag_ids), prev)

    def _raise_invalid(self, tag_ids: Sequence[int], i: int, prev: Optional[int]) -> None:
        tags = [self.tags[int(t)] if 0 <= int(t) < self.num_tags else str(t) for t in tag_ids]
        raise ValueError(
            Errors.BCE003.format(
                scheme=self.scheme,
                position=i,
                tag=tags[i] if i < len(tags) else "<end>",
                prev=self.tags[prev] if prev is not None else "<start>",
                tags=tags,
            )
        )

    # ------------------------------------------------------------------ conversions
    def spans_to_tags(self, spans: Iterable[Span], length: int) -> List[int]:
        """Encode entity spans as tag ids.

        spans (Iterable[Tuple[int, int, str]]): (start, end, label), end exclusive.
        length (int): The sequence length.
        RETURNS (List[int]): One tag id per token.
        """
        tags = [0] * length
        owner: List[Optional[Span]] = [None] * length
        for span in sorted(spans):
            start, end, label = span
            if not (0 <= start < end <= length):
                raise ValueError(Errors.BCE006.format(start=start, end=end, label=label, length=length))
            if label not in self.label_to_id:
                raise ValueError(Errors.BCE004.format(label=label, tag=label, labels=list(self.labels)))
            for i in range(start, end):
                other = owner[i]
                if other is not None:
                    raise ValueError(Errors.BCE005.format(
                        start1=other[0], end1=other[1], label1=other[2],
                        start2=start, end2=end, label2=label))
                owner[i] = span
            for i, t in enumerate(self.span_tags(start, end, label)):
                tags[start + i] = t
        return tags

    def span_tags(self, start: int, end: int, label: str) -> List[int]:
        """RETURNS (List[int]): the tag ids that encode exactly one entity over start..end."""
        n = end - start
        if self.scheme == "BIO":
            return [self.tag_id("B", label)] + [self.tag_id("I", label)] * (n - 1)
        if n == 1:
            return [self.tag_id("U", label)]
        return [self.tag_id("B", label)] + [self.tag_id("I", label)] * (n - 2) + [self.tag_id("L", label)]

    def continuation_tags(self, label: str) -> List[int]:
        """The tags that, right after an entity's last token, would make it longer.

        In BIO that is ``I-label``; in BILUO none (the entity ended with L- or U-).
        The exact-span posterior of an entity excludes these as the next tag.
        """
        return [self.tag_id("I", label)] if self.scheme == "BIO" else []

    def tags_to_spans(self, tag_ids: Sequence[int]) -> List[Span]:
        """Decode tag ids into entity spans. An invalid sequence raises a ValueError.

        tag_ids (Sequence[int]): One tag id per token, valid under the scheme.
        RETURNS (List[Tuple[int, int, str]]): (start, end, label), end exclusive.
        """
        tag_ids = [int(t) for t in tag_ids]
        self._check(tag_ids)
        split = self._split
        bio = self.scheme == "BIO"
        spans: List[Span] = []
        start = -1
        last = len(tag_ids) - 1
        for i, t in enumerate(tag_ids):
            if t == 0:
                continue
            prefix, label = split[t]
            if prefix == "B" or prefix == "U":
                start = i
            # the entity ends here unless the next tag continues it
            if prefix == "L" or prefix == "U":
                spans.append((start, i + 1, label))  # type: ignore[arg-type]
            elif bio and (i == last or split[tag_ids[i + 1]] != ("I", label)):
                spans.append((start, i + 1, label))  # type: ignore[arg-type]
        return spans

    def tags_to_strings(self, tag_ids: Sequence[int]) -> List[str]:
        return [self.tags[int(t)] for t in tag_ids]

    def gold_tag_mask(self, biluo_tags: Sequence[Optional[str]]) -> numpy.ndarray:
        """The set of tags each token's gold annotation allows.

        biluo_tags (Sequence[Optional[str]]): spaCy BILUO strings, as returned by
            ``Example.get_aligned_ner()``: "O", "B-PER", ..., or None / "-" / "" where the
            gold annotation is missing or does not align (every tag is allowed there).
        RETURNS (numpy.ndarray): bool (len(biluo_tags), num_tags).
        """
        out = numpy.zeros((len(biluo_tags), self.num_tags), dtype=bool)
        ends: List[Tuple[int, bool, str]] = []  # BIO only: (token, entity ends there, label)
        for i, tag in enumerate(biluo_tags):
            if tag is None or tag in ("-", ""):
                out[i] = True
                continue
            if tag == "O":
                out[i, 0] = True
                continue
            prefix, _, label = tag.partition("-")
            if prefix not in _BILUO_TO_BIO or not label:
                raise ValueError(Errors.BCE004.format(label=label, tag=tag, labels=list(self.labels)))
            if label not in self.label_to_id:
                raise UnknownLabelError(
                    Errors.BCE004.format(label=label, tag=tag, labels=list(self.labels)), label
                )
            if self.scheme == "BIO":
                ends.append((i, prefix in ("U", "L"), label))
                prefix = _BILUO_TO_BIO[prefix]
            out[i, self.tag_id(prefix, label)] = True
        # BIO's tags cannot say where an entity ends, BILUO's can (and its transition rules
        # carry that into the next token). So after a gold "U-"/"L-" an unannotated token
        # may not continue the entity, and after a gold "B-"/"I-" it must.
        for i, entity_ends, label in ends:
            if i + 1 < len(biluo_tags) and out[i + 1].all():
                continued = self.tag_id("I", label)
                if entity_ends:
                    out[i + 1, continued] = False
                else:
                    out[i + 1] = False
                    out[i + 1, continued] = True
        return out

    def clamp_tag_mask(
        self,
        length: int,
        spans: Iterable[Span],
        *,
        outside: Optional[numpy.ndarray] = None,
        no_begin: Optional[numpy.ndarray] = None,
        no_inside: Optional[numpy.ndarray] = None,
    ) -> numpy.ndarray:
        """A tag mask that forces pre-set entities and lets the model choose elsewhere,
        within the rules spaCy's `ner` decodes by.

        Spans whose label the scheme knows are forced to their exact tags; others are
        forced to "O" (the model then never predicts into or across them). Outside them:
        tokens where `outside` is True must be "O" (e.g. blocked tokens), no entity may
        begin where `no_begin` is True (e.g. whitespace tokens) and none may go on into a
        token where `no_inside` is True (e.g. a sentence start). Pre-set spans win over
        these rules, as in spaCy's `ner`.
        RETURNS (numpy.ndarray): bool (length, num_tags).
        """
        out = numpy.ones((length, self.num_tags), dtype=bool)
        if outside is not None:
            out[outside[:length], 1:] = False
        if no_begin is not None:
            out[numpy.ix_(no_begin[:length], self._begin_ids)] = False
        if no_inside is not None:
            out[numpy.ix_(no_inside[:length], self._inside_ids)] = False
        for start, end, label in spans:
            out[start:end] = False
            if label in self.label_to_id:
                for i, t in enumerate(self.span_tags(start, end, label)):
                    out[start + i, t] = True
                if end < length:  # the next token must not extend the pre-set entity
                    out[end, self.continuation_tags(label)] = False
            else:
                out[start:end, 0] = True
        return out
