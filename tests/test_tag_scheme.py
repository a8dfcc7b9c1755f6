import itertools

import numpy
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spacy_bilstm_crf.tag_scheme import TagScheme, UnknownLabelError

LABELS = ["LOC", "PER", "creative-work"]


@pytest.fixture(params=["BIO", "BILUO"])
def scheme(request):
    return TagScheme(request.param, LABELS)


def test_tag_layout():
    bio = TagScheme("BIO", ["PER", "LOC"])
    assert bio.tags == ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    biluo = TagScheme("biluo", ["PER"])
    assert biluo.tags == ["O", "B-PER", "I-PER", "L-PER", "U-PER"]
    assert biluo.split(3) == ("L", "PER")
    assert biluo.tag_id("U", "PER") == 4


def test_unknown_scheme_and_bad_labels():
    with pytest.raises(ValueError, match="BCE001"):
        TagScheme("IOBES", ["PER"])
    for bad in ["", "B-PER", "has space", "O", None]:
        with pytest.raises(ValueError, match="BCE002"):
            TagScheme("BIO", [bad])
    with pytest.raises(ValueError, match="BCE025"):
        TagScheme("BIO", ["PER", "PER"])


def _sequence_is_valid_by_rules(scheme, tags):
    """An independent statement of the schemes' rules, over tag strings."""
    strings = scheme.tags_to_strings(tags)
    prev = "O"
    for tag in strings + ["END"]:
        p_prefix, _, p_label = prev.partition("-")
        prefix, _, label = tag.partition("-")
        if scheme.scheme == "BIO":
            if prefix == "I" and not (p_prefix in "BI" and p_label == label and prev != "O"):
                return False
        else:
            open_entity = p_prefix in ("B", "I") and prev != "O"
            if prefix in ("I", "L") and not (open_entity and p_label == label):
                return False
            if prefix in ("O", "B", "U", "END") and open_entity:
                return False
        prev = tag
    return True


def test_masks_agree_with_rules_exhaustively(scheme):
    small = TagScheme(scheme.scheme, ["A", "B"])
    start, trans, end = small.allowed_start(), small.allowed_transitions(), small.allowed_end()
    for n in range(1, 4):
        for tags in itertools.product(range(small.num_tags), repeat=n):
            by_masks = start[tags[0]] and end[tags[-1]] and all(
                trans[a, b] for a, b in zip(tags, tags[1:])
            )
            assert by_masks == _sequence_is_valid_by_rules(small, list(tags)), small.tags_to_strings(tags)
            assert small.is_valid(tags) == by_masks


def test_invalid_sequence_is_reported(scheme):
    i_loc = scheme.tag_id("I", "LOC")
    with pytest.raises(ValueError, match="BCE003"):
        scheme.tags_to_spans([0, i_loc])
    if scheme.scheme == "BILUO":
        with pytest.raises(ValueError, match="BCE003"):
            scheme.tags_to_spans([scheme.tag_id("B", "LOC")])  # never closed


spans_strategy = st.lists(
    st.tuples(st.integers(0, 11), st.integers(1, 4), st.sampled_from(LABELS)), max_size=5
)


@settings(max_examples=200, deadline=None)
@given(raw=spans_strategy, length=st.integers(0, 15))
def test_spans_tags_round_trip(raw, length):
    # keep non-overlapping spans that fit
    spans, used = [], set()
    for start, n, label in raw:
        end = start + n
        if end <= length and not used.intersection(range(start, end)):
            spans.append((start, end, label))
            used.update(range(start, end))
    for name in ("BIO", "BILUO"):
        scheme = TagScheme(name, LABELS)
        tags = scheme.spans_to_tags(spans, length)
        assert len(tags) == length
        assert scheme.is_valid(tags)
        assert scheme.tags_to_spans(tags) == sorted(spans)


def test_adjacent_same_label_entities(scheme):
    spans = [(0, 2, "PER"), (2, 3, "PER")]
    tags = scheme.spans_to_tags(spans, 4)
    assert scheme.tags_to_spans(tags) == spans


def test_spans_to_tags_errors(scheme):
    with pytest.raises(ValueError, match="BCE005"):
        scheme.spans_to_tags([(0, 2, "PER"), (1, 3, "LOC")], 4)
    with pytest.raises(ValueError, match="BCE006"):
        scheme.spans_to_tags([(2, 5, "PER")], 4)
    with pytest.raises(ValueError, match="BCE004"):
        scheme.spans_to_tags([(0, 1, "ORG")], 4)


def test_gold_tag_mask(scheme):
    gold = ["B-PER", "L-PER", "O", None, "-", "U-LOC"]
    mask = scheme.gold_tag_mask(gold)
    assert mask.shape == (6, scheme.num_tags)
    assert mask[2].tolist() == [True] + [False] * (scheme.num_tags - 1)
    assert mask[3].all() and mask[4].all()
    if scheme.scheme == "BIO":
        assert numpy.flatnonzero(mask[1]).tolist() == [scheme.tag_id("I", "PER")]
        assert numpy.flatnonzero(mask[5]).tolist() == [scheme.tag_id("B", "LOC")]
    else:
        assert numpy.flatnonzero(mask[1]).tolist() == [scheme.tag_id("L", "PER")]
        assert numpy.flatnonzero(mask[5]).tolist() == [scheme.tag_id("U", "LOC")]
    with pytest.raises(UnknownLabelError, match="BCE004") as err:
        scheme.gold_tag_mask(["U-ORG"])
    assert err.value.label == "ORG"


def _valid_sequences(scheme, length):
    """Every valid tag sequence of `length` (an array, one per row) and its spans."""
    rows = [t for t in itertools.product(range(scheme.num_tags), repeat=length) if scheme.is_valid(t)]
    return numpy.array(rows), [tuple(scheme.tags_to_spans(t)) for t in rows]


def _spans_the_mask_allows(valid, mask):
    """The span sets of the valid sequences that `mask` allows at every token."""
    sequences, spans = valid
    allowed = mask[numpy.arange(mask.shape[0]), sequences].all(axis=1)
    return {spans[i] for i in numpy.flatnonzero(allowed)}


def test_gold_tag_mask_bio_keeps_the_entity_ends_that_biluo_has():
    """With unannotated tokens, BIO's mask must allow exactly the entity sets BILUO's
    allows: after a gold "U-"/"L-" the entity has ended, after "B-"/"I-" it goes on."""
    bio, biluo = TagScheme("BIO", ["A", "B"]), TagScheme("BILUO", ["A", "B"])
    checked = 0
    for length in range(1, 5):
        valid_bio, valid_biluo = _valid_sequences(bio, length), _valid_sequences(biluo, length)
        for tags in valid_biluo[0]:
            gold = biluo.tags_to_strings(tags)
            for missing in itertools.product([False, True], repeat=length):
                if all(missing) or not any(missing):
                    continue
                partial = [None if m else g for g, m in zip(gold, missing)]
                allowed = _spans_the_mask_allows(valid_bio, bio.gold_tag_mask(partial))
                assert allowed == _spans_the_mask_allows(valid_biluo, biluo.gold_tag_mask(partial)), partial
                assert tuple(biluo.tags_to_spans(tags)) in allowed
                checked += 1
    assert checked > 500
    # the case that was wrong: a gold single-token entity and an unannotated next token
    mask = bio.gold_tag_mask(["U-A", None, "O"])
    assert not mask[1, bio.tag_id("I", "A")] and mask[1, bio.tag_id("B", "A")] and mask[1, 0]
    mask = bio.gold_tag_mask(["B-A", None, "O"])
    assert numpy.flatnonzero(mask[1]).tolist() == [bio.tag_id("I", "A")]


def test_clamp_tag_mask(scheme):
    # a known label is forced to its exact tags, an unknown one to "O"
    mask = scheme.clamp_tag_mask(6, [(1, 3, "PER"), (4, 5, "PRODUCT")])
    assert mask[0].all() and mask[5].all()
    assert numpy.flatnonzero(mask[1]).tolist() == [scheme.tag_id("B", "PER")]
    assert numpy.flatnonzero(mask[4]).tolist() == [0]
    if scheme.scheme == "BIO":
        # the token after a pre-set entity may not continue it
        assert not mask[3, scheme.tag_id("I", "PER")]
