"""Tests for spacy_bilstm_crf.batchers (LengthBuckets: length-sorted batches, shuffled)."""

import random
from collections import Counter

import pytest
from spacy.util import registry
from thinc.api import Config

from spacy_bilstm_crf.batchers import BATCHER_NAME, length_buckets


def resolve(**settings):
    lines = [f"{key} = {value}" for key, value in settings.items()]
    config = Config().from_str("\n".join(["[batcher]", f'@batchers = "{BATCHER_NAME}"', *lines]))
    return registry.resolve(config)["batcher"]


def lengths(n, seed=0):
    rng = random.Random(seed)
    return [rng.choice([1, 2, 3, 5, 8, 13, 21, 40, 90]) for _ in range(n)]


def padded(batch):
    return max(batch) * len(batch)


@pytest.mark.parametrize("buffer", [1, 7, 64, 1000])
def test_every_item_once_and_within_the_padded_size(buffer):
    items = [[0] * n for n in lengths(500)]
    batches = list(length_buckets(items, size=100, buffer=buffer))
    seen = Counter(id(item) for batch in batches for item in batch)
    assert sorted(seen) == sorted(id(item) for item in items)
    assert set(seen.values()) == {1}
    for batch in batches:
        assert batch
        assert max(map(len, batch)) * len(batch) <= 100


def test_batches_hold_similar_lengths_and_little_padding():
    items = lengths(4000)
    random.seed(0)
    batches = list(length_buckets(items, size=200, buffer=4000, get_length=lambda n: n))
    real = sum(items)
    pad = sum(padded(batch) for batch in batches)
    assert pad / real < 1.1
    # arrival order would pad far more
    arrival = [items[i:i + 20] for i in range(0, len(items), 20)]
    assert sum(padded(b) for b in arrival) / real > 2.0


def test_batch_order_is_shuffled_and_follows_the_seed():
    items = lengths(2000)

    def run(seed):
        random.seed(seed)
        return [max(b) for b in length_buckets(items, size=100, buffer=2000, get_length=lambda n: n)]

    order = run(0)
    assert order == run(0)
    assert order != run(1)
    # not the long-to-short (or short-to-long) order of spacy.batch_by_padded.v1
    assert order != sorted(order) and order != sorted(order, reverse=True)


def test_oversize_items_alone_or_discarded():
    items = [5, 500, 7, 300, 2]
    kept = list(length_buckets(items, size=100, buffer=10, get_length=lambda n: n))
    assert sorted(n for b in kept for n in b) == sorted(items)
    assert sorted(b for b in kept if len(b) == 1 and b[0] > 100) == [[300], [500]]
    dropped = list(length_buckets(items, size=100, buffer=10, discard_oversize=True, get_length=lambda n: n))
    assert sorted(n for b in dropped for n in b) == [2, 5, 7]


def test_size_schedule_gives_one_size_per_buffer():
    items = [10] * 40
    batches = list(length_buckets(items, size=[20, 50, 100, 100], buffer=10, get_length=lambda n: n))
    # buffer 1 (size 20): 2 items per batch; buffer 2 (50): 5; buffers 3-4 (100): 10
    assert sorted(len(b) for b in batches) == sorted([2] * 5 + [5] * 2 + [10, 10])


def test_resolved_from_a_config_and_batches_examples(nlp_with_examples):
    nlp, examples = nlp_with_examples
    batcher = resolve(size=30, buffer=16, discard_oversize="false", get_length="null")
    batches = list(batcher(examples))
    assert sum(len(b) for b in batches) == len(examples)
    assert all(max(len(eg) for eg in b) * len(b) <= 30 or len(b) == 1 for b in batches)


@pytest.mark.parametrize("setting", [{"buffer": 0}, {"buffer": "true"}, {"size": 0}])
def test_bad_settings_name_the_setting(setting):
    values = {"size": 100, "buffer": 64, **setting}
    # spaCy's config validation or our BCE025: either names the setting
    with pytest.raises(ValueError, match=next(iter(setting))):
        resolve(**values)


@pytest.fixture
def nlp_with_examples():
    from spacy.lang.en import English
    from spacy.training import Example

    nlp = English()
    texts = ["a b c", "Angela Merkel met Shaka Khan in Berlin today .", "x", "I like Paris and London ."] * 8
    return nlp, [Example.from_dict(nlp.make_doc(t), {}) for t in texts]
