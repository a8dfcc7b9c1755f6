"""Tests for spacy-bilstm-crf.TrimMemory.v1 (glibc's malloc_trim before training steps)."""

import ctypes
import os
import warnings
from importlib.metadata import entry_points
from pathlib import Path

import pytest
from spacy.lang.en import English
from spacy.tokens import DocBin
from spacy.training import Example
from spacy.util import load_config, registry

from spacy_bilstm_crf import callbacks
from spacy_bilstm_crf.callbacks import TRIM_MEMORY_NAME, _malloc_trim, make_trim_memory

HAS_MALLOC_TRIM = _malloc_trim() is not None
CONFIGS = Path(__file__).parent.parent / "configs"


def test_trim_memory_is_registered_as_an_entry_point():
    eps = {ep.name: ep for ep in entry_points(group="spacy_callbacks")}
    assert eps[TRIM_MEMORY_NAME].load() is make_trim_memory
    assert registry.callbacks.get(TRIM_MEMORY_NAME) is make_trim_memory


@pytest.mark.parametrize("every", [0, -1, 1.5, True, "2"])
def test_trim_memory_bad_every_is_a_coded_error(every):
    with pytest.raises(ValueError, match=r"\[BCE076\]"):
        make_trim_memory(every=every)


@pytest.mark.parametrize("every,expected", [(1, [0, 1, 2, 3, 4, 5, 6]), (3, [0, 3, 6])])
def test_trim_memory_trims_every_n_steps(monkeypatch, every, expected):
    calls = []
    monkeypatch.setattr(callbacks, "_malloc_trim", lambda: lambda pad: calls.append(pad) or 1)
    trim = make_trim_memory(every=every)
    steps = []
    for step in range(7):
        before = len(calls)
        trim(English(), {"step": step, "epoch": 0})
        if len(calls) > before:
            steps.append(step)
    assert steps == expected
    assert set(calls) == {0}  # malloc_trim(0): keep no padding at the top of the heap


def test_trim_memory_without_malloc_trim_warns_and_does_nothing(monkeypatch):
    monkeypatch.setattr(callbacks, "_malloc_trim", lambda: None)
    with pytest.warns(UserWarning, match=r"\[BCW003\]"):
        trim = make_trim_memory()
    trim(English(), {"step": 0, "epoch": 0})  # no error


def test_trim_memory_resolves_from_a_training_config():
    config = {"cb": {"@callbacks": TRIM_MEMORY_NAME, "every": 2}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # BCW003 on a C library without malloc_trim
        resolved = registry.resolve(config)["cb"]
    assert callable(resolved)
    resolved(English(), {"step": 2, "epoch": 0})


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(not HAS_MALLOC_TRIM or not os.path.exists("/proc/self/statm"),
                    reason="needs glibc's malloc_trim and /proc (Linux)")
def test_trim_memory_returns_freed_heap_memory_to_the_system():
    """Freed heap blocks below a block still in use stay resident until malloc_trim:
    the situation of a training process that frees each step's tensors."""
    libc = ctypes.CDLL(None)
    libc.malloc.restype = ctypes.c_void_p
    libc.malloc.argtypes = [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    size, n = 64 * 1024, 800  # 64 KiB each: below glibc's mmap threshold, so from the heap
    blocks = [libc.malloc(size) for _ in range(n)]
    assert all(blocks)
    for block in blocks:
        ctypes.memset(block, 1, size)  # make the pages resident
    pin = libc.malloc(size)  # keeps the heap's top in use, so free() cannot shrink it
    ctypes.memset(pin, 1, size)
    try:
        for block in blocks:
            libc.free(block)
        held = _rss_bytes()
        make_trim_memory(every=1)(English(), {"step": 0, "epoch": 0})
        released = held - _rss_bytes()
    finally:
        libc.free(pin)
    assert released > 0.5 * size * n, f"released {released / 2**20:.1f} MiB of {size * n / 2**20:.0f}"


def test_transformer_config_trims_before_every_step():
    config = load_config(CONFIGS / "transformer.cfg", interpolate=False)
    assert config["training"]["before_update"] == {"@callbacks": TRIM_MEMORY_NAME, "every": 1}


def test_spacy_training_loop_calls_it_before_each_step(monkeypatch, tmp_path):
    """`spacy train`'s loop (spacy.training.loop.train) with the default config and the
    callback in [training.before_update]: malloc_trim runs before every second step."""
    from spacy.training.initialize import init_nlp
    from spacy.training.loop import train

    calls = []
    monkeypatch.setattr(callbacks, "_malloc_trim", lambda: lambda pad: calls.append(pad) or 1)
    nlp = English()
    examples = [
        Example.from_dict(nlp.make_doc(text), {"entities": ents})
        for text, ents in [("Anna lives in Berlin.", [(0, 4, "PER"), (14, 20, "LOC")]),
                           ("UN staff met in Paris.", [(0, 2, "ORG"), (16, 21, "LOC")])]
    ]
    DocBin(docs=[eg.reference for eg in examples]).to_disk(tmp_path / "train.spacy")
    path = str(tmp_path / "train.spacy")
    config = load_config(CONFIGS / "default.cfg", overrides={
        "paths.train": path, "paths.dev": path, "training.max_steps": 4, "training.eval_frequency": 2,
        "training.before_update": {"@callbacks": TRIM_MEMORY_NAME, "every": 2},
        "training.before_to_disk": None,
        "components.bilstm_attn_crf.model.hidden_size": 8,
    })
    nlp = init_nlp(config)
    with open(os.devnull, "w") as null:
        train(nlp, None, stdout=null, stderr=null)
    # steps 0, 2 and 4 of 0 to 4 (spaCy's loop breaks after the update of step max_steps)
    assert len(calls) == 3
