"""What the benchmark scripts share: a fixed thread count, and result JSON that records
the command, date, machine and versions of the run.

Import it from a script run as ``python benchmarks/NAME.py`` (its folder is on sys.path).
"""

import datetime
import json
import os
import platform
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional


def fix_threads(threads: int) -> None:
    """Fix the BLAS/OpenMP and torch thread counts and print torch's. Call it before
    importing spaCy or numpy, so that the environment variables take effect."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(threads)
    import torch

    torch.set_num_threads(threads)
    print(f"torch threads: {torch.get_num_threads()}")


def status_mib(field: str) -> float:
    """VmRSS (current) or VmHWM (peak) of this process in MiB, from /proc (Linux; NaN
    elsewhere). Not ru_maxrss: that keeps the peak of the forking parent across exec."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def machine() -> Dict[str, Any]:
    """The machine a result comes from: platform, CPU count and CPU model (the model from
    /proc/cpuinfo where there is one; the machines of this project changed between
    sessions, and a speed ratio holds for one CPU model)."""
    cpu_model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.partition(":")[2].strip()
                break
    except OSError:
        pass
    return {"platform": platform.platform(), "cpus": os.cpu_count(), "cpu_model": cpu_model}


def command_and_date(argv: Optional[List[str]] = None) -> Dict[str, str]:
    """The command that ran (this script and `argv`, default the command line's arguments)
    and the UTC date, the first fields of every result JSON."""
    args = sys.argv[1:] if argv is None else argv
    return {
        "command": " ".join([Path(sys.argv[0]).as_posix()] + list(args)),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def write_json(path: str, data: Dict[str, Any]) -> None:
    """Write `data` as indented JSON to `path` (making its folder) and say so."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(data, indent=2) + "\n")
    print(f"wrote {path}")


def write_result(path: str, threads: int, results: Dict[str, Any]) -> None:
    """Write `results` as JSON to `path`, after the run's command, date, machine,
    versions (Python, spaCy, torch) and thread count."""
    import spacy
    import torch

    out = {
        **command_and_date(),
        "machine": machine(),
        "versions": {
            "python": platform.python_version(),
            "spacy": spacy.__version__,
            "torch": torch.__version__,
        },
        "threads": threads,
        **results,
    }
    write_json(path, out)
