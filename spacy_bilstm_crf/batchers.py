"""Training batchers: length-bucketed batches in random order.

Registered as ``spacy-bilstm-crf.LengthBuckets.v1`` for ``[training.batcher]``:

    [training.batcher]
    @batchers = "spacy-bilstm-crf.LengthBuckets.v1"
    size = 1100
    buffer = 4096
    discard_oversize = false
    get_length = null

A batch of random sentences is padded to its longest one: on CoNLL-2003, 1,000-word
batches from ``spacy.batch_by_words.v1`` hold 3.2 times as many padded positions as
words, and the BiLSTM's time steps, the attention, the dropout masks and the CRF all pay
for the padding. Grouping sentences of similar length (as ``spacy.batch_by_padded.v1``
does) removes most of it, but that batcher yields each buffer's batches from the longest
sentences to the shortest, so consecutive optimizer steps see correlated batches. This
one shuffles the batches of each buffer before yielding them.
"""

import itertools
import random
from typing import Callable, Iterable, Iterator, List, Optional, Sequence, TypeVar, Union

from spacy.util import registry

from .errors import Errors

ItemT = TypeVar("ItemT")
Sizing = Union[Sequence[int], int]

BATCHER_NAME = "spacy-bilstm-crf.LengthBuckets.v1"


@registry.batchers(BATCHER_NAME)
def configure_length_buckets(
    size: Sizing,
    buffer: int = 4096,
    discard_oversize: bool = False,
    get_length: Optional[Callable[[ItemT], int]] = None,
) -> Callable[[Iterable[ItemT]], Iterator[List[ItemT]]]:
    """Create a batcher that groups items of similar length and shuffles the batches.

    size (int or Sequence[int]): The largest padded size of a batch: the length of its
        longest item times the number of items. A sequence (e.g. a schedule) gives one
        size per buffer.
    buffer (int): How many items are collected, sorted by length and cut into batches at
        a time. Larger buffers pad less and give more batches to shuffle.
    discard_oversize (bool): Drop an item longer than the padded size by itself instead
        of yielding it as a batch of one.
    get_length (Optional[Callable]): The length of an item; `len` by default.
    RETURNS (Callable): The batcher: an iterable of items -> an iterator of batches.
    """
    if isinstance(buffer, bool) or not isinstance(buffer, int) or buffer < 1:
        raise ValueError(Errors.BCE025.format(value=buffer, name="buffer", detail="expected an int >= 1"))
    if isinstance(size, int) and (isinstance(size, bool) or size < 1):
        raise ValueError(Errors.BCE025.format(value=size, name="size", detail="expected an int >= 1"))
    length = get_length if get_length is not None else len

    def batcher(items: Iterable[ItemT]) -> Iterator[List[ItemT]]:
        return length_buckets(
            items, size=size, buffer=buffer, discard_oversize=discard_oversize, get_length=length
        )

    return batcher


def length_buckets(
    items: Iterable[ItemT],
    *,
    size: Sizing,
    buffer: int = 4096,
    discard_oversize: bool = False,
    get_length: Callable[[ItemT], int] = len,
) -> Iterator[List[ItemT]]:
    """Yield batches of items of similar length, each buffer's batches in random order.

    Items are collected `buffer` at a time, sorted by length (ties keep their order) and
    cut greedily into batches whose padded size (longest length x number of items) is at
    most the current size; the batches are shuffled with Python's `random` (which
    `spacy train` seeds) and yielded. Every item is yielded exactly once, unless
    `discard_oversize` drops an item longer than the size.

    items (Iterable): The items to batch, e.g. training examples.
    size (int or Sequence[int]): The largest padded size; a sequence gives one per buffer.
    buffer (int): Items per sort-and-shuffle window.
    discard_oversize (bool): Drop items whose length alone exceeds the size.
    get_length (Callable): The length of an item.
    YIELDS (List): The batches.
    """
    sizes: Iterator[int] = itertools.repeat(size) if isinstance(size, int) else iter(size)
    iterator = iter(items)
    while True:
        window = list(itertools.islice(iterator, buffer))
        if not window:
            return
        target = int(next(sizes))
        keyed = sorted(((get_length(item), i) for i, item in enumerate(window)))
        batches: List[List[ItemT]] = []
        batch: List[ItemT] = []
        for n, i in keyed:
            if n > target:
                if not discard_oversize:
                    batches.append([window[i]])
                continue
            # sorted ascending, so the new item is the longest: padded size = n x count
            if batch and n * (len(batch) + 1) > target:
                batches.append(batch)
                batch = []
            batch.append(window[i])
        if batch:
            batches.append(batch)
        random.shuffle(batches)
        yield from batches
