"""A spaCy training logger for the benchmarks: spaCy's console table, plus one JSON line
per evaluation with the elapsed seconds and words seen (which spaCy's own JSONL log
leaves out). Load it with ``spacy train ... --code benchmarks/spacy_code.py`` (or this file alone).

Two clocks per line: ``elapsed_seconds`` is wall time since the logger was set up, dev
evaluations and checkpoint saves included; ``train_seconds`` leaves those out, i.e. the
time spent training. The evaluations cost the two systems different amounts (spaCy `ner`
decodes the dev set more slowly, and its early steps, on batches of 100 words, are short),
so learning speed is compared on ``train_seconds``. An evaluation step's non-training time
runs from the call of ``nlp.evaluate`` (timed by wrapping it; it also reads the dev
corpus, a generator) to this logger's call for that step, which spaCy makes after saving
the checkpoints. Swapping the averaged weights in and out around the evaluation
(``nlp.use_params``) still counts as training. Nothing else should call ``nlp.evaluate``
during training, or the next step would be counted as evaluation.
"""

import json
import sys
import time
from pathlib import Path
from typing import IO, Any, Callable, Dict, Optional, Tuple

from spacy import registry
from spacy.language import Language
from spacy.training.loggers import console_logger


def torch_threads() -> Optional[int]:
    """torch's intra-op thread count in this process (None for a run without torch)."""
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency of the package
        return None
    return int(torch.get_num_threads())


@registry.loggers("spacy-bilstm-crf.bench.TimingLogger.v1")
def timing_logger(path: str) -> Callable:
    console = console_logger(progress_bar=False)

    def setup(
        nlp: Language, stdout: IO = sys.stdout, stderr: IO = sys.stderr
    ) -> Tuple[Callable[[Optional[Dict[str, Any]]], None], Callable[[], None]]:
        log_console, finalize_console = console(nlp, stdout, stderr)
        threads = torch_threads()
        stderr.write(f"timing logger: torch threads {threads}\n")
        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        stream = out.open("w", encoding="utf8")
        start = time.perf_counter()
        not_training = 0.0
        eval_start: Optional[float] = None
        evaluate = nlp.evaluate

        def timed_evaluate(*args: Any, **kwargs: Any) -> Any:
            nonlocal eval_start
            if eval_start is None:
                eval_start = time.perf_counter()
            return evaluate(*args, **kwargs)

        # an instance attribute: spaCy's training loop calls `nlp.evaluate(...)`
        nlp.evaluate = timed_evaluate  # type: ignore[method-assign]

        def log_step(info: Optional[Dict[str, Any]]) -> None:
            nonlocal not_training, eval_start
            log_console(info)
            now = time.perf_counter()
            if eval_start is not None:  # an evaluation (and the saves) since the last step
                not_training += now - eval_start
                eval_start = None
            if info is None:
                return
            row = {
                "epoch": info["epoch"],
                "step": info["step"],
                "elapsed_seconds": round(now - start, 2),
                "train_seconds": round(now - start - not_training, 2),
                "words": info["words"],
                "torch_threads": threads,
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
