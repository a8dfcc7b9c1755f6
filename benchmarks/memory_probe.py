"""A `[training.before_update]` callback for the benchmarks: one JSON line per training
step with the elapsed seconds and the process's resident memory, optionally releasing
freed heap memory first with the package's `spacy-bilstm-crf.TrimMemory.v1`. Loaded by
``spacy train ... --code benchmarks/spacy_code.py``; used by `train_memory.py`.
"""

import json
import time
from pathlib import Path
from typing import Any, Callable, Dict

from bench_common import status_mib
from spacy import registry
from spacy.language import Language

from spacy_bilstm_crf.callbacks import make_trim_memory


@registry.callbacks("spacy-bilstm-crf.bench.MemoryProbe.v1")
def memory_probe(path: str, trim_every: int = 0) -> Callable[[Language, Dict[str, Any]], None]:
    """Log each step's start time and RSS to `path` (JSON lines); with `trim_every` > 0,
    call TrimMemory.v1(every=trim_every) first and time it."""
    trim = make_trim_memory(every=trim_every) if trim_every else None
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    stream = out.open("w", encoding="utf8")
    start = time.perf_counter()

    def before_update(nlp: Language, args: Dict[str, Any]) -> None:
        trim_seconds = 0.0
        if trim is not None:
            t = time.perf_counter()
            trim(nlp, args)
            trim_seconds = time.perf_counter() - t
        row = {"step": args["step"], "seconds": round(time.perf_counter() - start, 3),
               "rss_mib": round(status_mib("VmRSS"), 1), "trim_seconds": round(trim_seconds, 4)}
        stream.write(json.dumps(row) + "\n")
        stream.flush()

    return before_update
