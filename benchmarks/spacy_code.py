"""What `spacy train` needs from the benchmarks, for its one `--code` file: the timing
logger (`timing_logger.py`), the learning-rate scale control (`lr_scale.py`) and the
per-step memory log (`memory_probe.py`).

    spacy train CONFIG --code benchmarks/spacy_code.py ...
"""

import sys
from pathlib import Path

# spaCy imports this file by path; its neighbours are importable once the folder is on the path
sys.path.insert(0, str(Path(__file__).resolve().parent))

import lr_scale  # noqa: E402,F401  (registers spacy-bilstm-crf.bench.LearnRateScale.v1)
import memory_probe  # noqa: E402,F401  (registers spacy-bilstm-crf.bench.MemoryProbe.v1)
import timing_logger  # noqa: E402,F401  (registers spacy-bilstm-crf.bench.TimingLogger.v1)
