"""Speed of spacy_bilstm_crf.crf.CRF against pytorch-crf, with the same parameters.

Times the log-likelihood forward + backward (reduction "sum", ``loss.backward()``) and the
Viterbi decode on ragged batches (random lengths 1..seq_length, left-aligned; pytorch-crf
needs the first step on). Both CRFs are checked to give the same log-likelihood and paths
before anything is timed. Runs of the two are interleaved and the median is reported.

Also timed, for the record: our CRF with a tag mask (the loss the component trains with),
and the same scaled exp-space recursion differentiated by autograd through the time loop
instead of our forward-backward gradient.

    python benchmarks/crf_speed.py --threads 1 --output benchmarks/results/crf_speed.json
"""

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Tuple

import torch
import torchcrf

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from spacy_bilstm_crf.crf import CRF  # noqa: E402

SIZES: List[Tuple[int, int, int]] = [(32, 40, 9), (256, 40, 9), (256, 40, 17)]


def median_ms(funcs: Dict[str, Callable[[], Any]], repeats: int, warmup: int) -> Dict[str, float]:
    """Median wall time in ms of each function, runs interleaved."""
    for _ in range(warmup):
        for f in funcs.values():
            f()
    times: Dict[str, List[float]] = {name: [] for name in funcs}
    for _ in range(repeats):
        for name, f in funcs.items():
            t0 = time.perf_counter()
            f()
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(ts) * 1000 for name, ts in times.items()}


def autograd_log_partition(crf: CRF, emissions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The scaled exp-space forward recursion, differentiated by autograd through the loop
    (the alternative to CRF's custom forward-backward gradient)."""
    start, transitions, end = crf._scores()
    # shape: (seq_length, batch_size, num_tags)
    e = emissions.transpose(0, 1)
    m = mask.t()
    exp_transitions = transitions.exp()
    alpha = start + e[0]
    for t in range(1, e.shape[0]):
        top = alpha.amax(1, keepdim=True).detach()
        nxt = torch.log(torch.exp(alpha - top) @ exp_transitions) + top + e[t]
        alpha = torch.where(m[t].unsqueeze(1), nxt, alpha)
    return torch.logsumexp(alpha + end, dim=1)


def autograd_llh(crf: CRF, emissions: torch.Tensor, tags: torch.Tensor,
                 mask: torch.Tensor) -> torch.Tensor:
    """log p(tags) with `autograd_log_partition` (the gold-path score is CRF's own)."""
    # CRF._path_score expects time-major inputs that are zero past the mask
    clean = emissions.masked_fill(~mask.unsqueeze(2), 0.0)
    numerator = crf._path_score(clean.transpose(0, 1), tags.t(), mask.t())
    return numerator - autograd_log_partition(crf, emissions, mask)


def bench_size(batch_size: int, seq_length: int, num_tags: int, repeats: int, warmup: int,
               seed: int) -> Dict[str, Any]:
    torch.manual_seed(seed)
    theirs = torchcrf.CRF(num_tags, batch_first=True)
    ours = CRF(num_tags, batch_first=True)
    ours.load_state_dict(theirs.state_dict(), strict=False)
    emissions = torch.randn(batch_size, seq_length, num_tags, requires_grad=True)
    tags = torch.randint(num_tags, (batch_size, seq_length))
    lengths = torch.randint(1, seq_length + 1, (batch_size,))
    # shape: (batch_size, seq_length)
    mask = torch.arange(seq_length).unsqueeze(0) < lengths.unsqueeze(1)
    # the gold tags as a tag mask, with a third of the positions unannotated
    tag_mask = torch.nn.functional.one_hot(tags, num_tags).bool()
    tag_mask[torch.rand(batch_size, seq_length) < 0.33] = True

    # same results before timing
    llh_ours = ours(emissions, tags, mask, reduction="none")
    llh_theirs = theirs(emissions, tags, mask, reduction="none")
    torch.testing.assert_close(llh_ours, llh_theirs, atol=1e-3, rtol=1e-5)
    llh_autograd = autograd_llh(ours, emissions, tags, mask)
    torch.testing.assert_close(llh_autograd, llh_theirs, atol=1e-3, rtol=1e-5)
    with torch.no_grad():
        paths_ours, paths_theirs = ours.decode(emissions, mask), theirs.decode(emissions, mask)
    assert paths_ours == paths_theirs, "Viterbi paths differ"

    def train_step(llh: Callable[[], torch.Tensor]) -> Callable[[], None]:
        def step() -> None:
            emissions.grad = None
            for p in list(ours.parameters()) + list(theirs.parameters()):
                p.grad = None
            loss = -llh()
            loss.backward()

        return step

    fb = median_ms(
        {
            "pytorch-crf": train_step(lambda: theirs(emissions, tags, mask)),
            "ours": train_step(lambda: ours(emissions, tags, mask)),
            "ours (autograd through the loop)": train_step(
                lambda: autograd_llh(ours, emissions, tags, mask).sum()
            ),
            "ours (tag_mask)": train_step(lambda: ours(emissions, mask=mask, tag_mask=tag_mask)),
        },
        repeats,
        warmup,
    )
    with torch.no_grad():
        vit = median_ms(
            {
                "pytorch-crf": lambda: theirs.decode(emissions, mask),
                "ours": lambda: ours.decode(emissions, mask),
            },
            repeats,
            warmup,
        )
    return {
        "batch_size": batch_size,
        "seq_length": seq_length,
        "num_tags": num_tags,
        "lengths": "uniform 1..seq_length, left-aligned",
        "forward_backward_ms": fb,
        "viterbi_ms": vit,
        "speedup_forward_backward": fb["pytorch-crf"] / fb["ours"],
        "speedup_viterbi": vit["pytorch-crf"] / vit["ours"],
    }


def cpu_model() -> str:
    """The CPU model name (Linux), else what `platform` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    parser.add_argument("--repeats", type=int, default=50, help="timed runs (median)")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, default=None, help="write the results as JSON")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, pytorch-crf {torchcrf.__version__}, "
          f"threads {torch.get_num_threads()}, {platform.platform()}, "
          f"{os.cpu_count()} CPUs, {cpu_model()}")
    results = []
    header = (f"{'batch x seq x tags':>20} | {'task':<34} | {'pytorch-crf ms':>14} | "
              f"{'ours ms':>8} | {'speed-up':>8}")
    print(header)
    print("-" * len(header))
    for size in SIZES:
        res = bench_size(*size, repeats=args.repeats, warmup=args.warmup, seed=args.seed)
        results.append(res)
        name = " x ".join(str(s) for s in size)
        fb, vit = res["forward_backward_ms"], res["viterbi_ms"]
        for task, times in (("llh forward+backward", fb), ("Viterbi decode", vit)):
            for variant, ms in times.items():
                if variant == "pytorch-crf":
                    continue
                label = task if variant == "ours" else f"{task}, {variant[6:-1]}"
                print(f"{name:>20} | {label:<34} | {times['pytorch-crf']:>14.2f} | "
                      f"{ms:>8.2f} | {times['pytorch-crf'] / ms:>7.1f}x")
    if args.output is not None:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "benchmark": "crf_speed",
            "command": " ".join([Path(sys.executable).name, *sys.argv]),
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "threads": torch.get_num_threads(),
            "repeats": args.repeats,
            "warmup": args.warmup,
            "versions": {
                "python": platform.python_version(),
                "torch": torch.__version__,
                "pytorch-crf": torchcrf.__version__,
            },
            "machine": {
                "platform": platform.platform(),
                "processor": cpu_model(),
                "cpu_count": os.cpu_count(),
                "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
            },
            "results": results,
        }
        args.output.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf8")
        print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
