#!/usr/bin/env python3
"""Memory requests that follow the input: every node's request_memory from loan_data.csv's size.

    bin/memory_requests.py [--base-dir DIR | --input-mib N]   print the model's figures

`make paths` (bin/render_paths.py) writes ``VARS ALL_NODES MEMORY_MB="<n>"`` from this module;
each submit file asks for ``$(MEMORY_MB)`` MiB on the first attempt and 2x, then 4x on retries.

Model: a stage's peak RSS grows linearly with the bytes of BASE_DIR/loan_data.csv,

    peak MiB = base + slope * input MiB

fitted (least squares, base raised so that the line is on or above every point) to the peak RSS
that bin/benchmark.py measured for each stage, exec'd as on a pool, on the real 45,000 rows
(3.4 MiB) and on 1M and 10M rows resampled from them (76.5 and 765 MiB), 2026-11-28. Residuals
are under 3 MiB at every size: the stages hold a few copies of the table, nothing else grows.

Shape: every node asks for the same amount, the largest stage's peak plus HEADROOM, rounded up
to 128 MiB. A job whose request fits a slot that its DAG already holds (the claim a finished
parent leaves for DAGMAN_HOLD_CLAIM_TIME, or a sibling's) starts on it within seconds; a job
that asks for more waits for a negotiation cycle (20 to 60 s on an untuned pool). Equal requests
along the chain keep the whole DAG on the claims it got, the second trainer included (it takes
whichever claim is free first, its sibling's or a new one). Stages' own peaks are printed for
reference (make bench compares each with the request).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path

# stage -> (base MiB, MiB per MiB of input), from the measurements in the docstring.
MODEL: dict[str, tuple[float, float]] = {
    "data_processing": (74.0, 9.59),
    "train_test_split": (151.0, 9.59),
    "modeling": (165.0, 7.27),
    "evaluate_model": (166.0, 1.86),
    "deploy_best_model": (40.0, 1.2),  # 19-35 MiB at 45k, 20 to 125 MiB at 1M, 19 at 10M
    "loan_prediction": (164.0, 1.86),
}
HEADROOM = 1.25  # request / predicted peak: allocator and library-version noise
ROUND_MIB = 128  # HTCondor rounds request_memory up to this by default (partitionable slots)
INPUT_NAME = "loan_data.csv"


def input_mib(base_dir: Path) -> float:
    """Size of BASE_DIR/loan_data.csv in MiB; 0 when it is not there yet (smallest request)."""
    try:
        return os.path.getsize(base_dir / INPUT_NAME) / 2**20
    except OSError:
        return 0.0


def stage_peaks_mib(size_mib: float) -> dict[str, float]:
    """Predicted peak RSS of each stage for an input of ``size_mib`` MiB."""
    return {stage: base + slope * size_mib for stage, (base, slope) in MODEL.items()}


def memory_mb(size_mib: float) -> int:
    """The request every node makes (MiB): largest predicted peak plus headroom, rounded up."""
    peak = max(stage_peaks_mib(size_mib).values())
    return int(math.ceil(peak * HEADROOM / ROUND_MIB) * ROUND_MIB)


def vars_text(base_dir: Path) -> str:
    """The lines make paths writes into the rendered DAG: a comment and the VARS line."""
    size = input_mib(base_dir)
    request = memory_mb(size)
    peaks = "".join(f"\n#   {k:<18} {v:6.0f}" for k, v in stage_peaks_mib(size).items())
    what = f"{size:.1f} MiB" if size else "not there yet"
    return (
        f"# request_memory (bin/memory_requests.py): {INPUT_NAME} {what}; predicted peak RSS "
        f"(MiB):{peaks}\n"
        f"# Every node asks for the largest x{HEADROOM}, so that children reuse their parents' "
        "claims;\n# retries ask for 2x, then 4x.\n"
        f'VARS ALL_NODES MEMORY_MB="{request}"\n'
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--base-dir", type=Path, help="read the size of BASE_DIR/loan_data.csv")
    group.add_argument("--input-mib", type=float, help="an input size in MiB instead")
    args = parser.parse_args(argv)
    if args.input_mib is not None:
        size = args.input_mib
    else:
        size = input_mib(args.base_dir or Path(os.environ.get("BASE_DIR", "data")))
    print(f"input {size:.1f} MiB: request_memory {memory_mb(size)} MiB for every node")
    for stage, peak in stage_peaks_mib(size).items():
        print(f"  {stage:<18} predicted peak {peak:8.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
