"""A spaCy training logger for the benchmarks: spaCy's console table, plus one JSON line
per evaluation with the elapsed seconds and words seen (which spaCy's own JSONL log
leaves out). Load it with ``spacy train ... --code benchmarks/timing_logger.py``.
"""

import json
import sys
import time
from pathlib import Path
from typing import IO, Any, Callable, Dict, Optional, Tuple

from spacy import registry
from spacy.language import Language
from spacy.training.loggers import console_logger


@registry.loggers("spacy-bilstm-crf.bench.TimingLogger.v1")
def timing_logger(path: str) -> Callable:
    console = console_logger(progress_bar=False)

    def setup(
        nlp: Language, stdout: IO = sys.stdout, stderr: IO = sys.stderr
    ) -> Tuple[Callable[[Optional[Dict[str, Any]]], None], Callable[[], None]]:
        log_console, finalize_console = console(nlp, stdout, stderr)
        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        stream = out.open("w", encoding="utf8")
        start = time.perf_counter()

        def log_step(info: Optional[Dict[str, Any]]) -> None:
            log_console(info)
            if info is None:
                return
            row = {
                "epoch": info["epoch"],
                "step": info["step"],
                "elapsed_seconds": round(time.perf_counter() - start, 2),
                "words": info["words"],
                "score": info["score"],
                "ents_f": info["other_scores"].get("ents_f"),
                "losses": {k: float(v) for k, v in info["losses"].items()},
            }
            stream.write(json.dumps(row) + "\n")
            stream.flush()

        def finalize() -> None:
            finalize_console()
            stream.close()

        return log_step, finalize

    return setup
