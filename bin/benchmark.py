#!/usr/bin/env python3
"""Measure each stage's wall time and peak memory at one or more data sizes, and print a table.

Generates sample data (or copies --data) into a temporary base directory per size, runs the eight
stages one after another as the DAG would, and reads each job's peak resident set size from
os.wait4. Use the figures to size request_memory in submit/*.sub. Nothing is asserted: these
machines are shared and noisy, so figures belong here, not in tests.

    bin/benchmark.py --rows 45000 1000000
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
STAGES = [
    ("data_processing", "process.py"),
    ("train_test_split", "split.py"),
    ("modeling_v1", "train.py", "--model", "v1"),
    ("modeling_v2", "train.py", "--model", "v2"),
    ("evaluate_model_v1", "evaluate.py", "--model", "v1"),
    ("evaluate_model_v2", "evaluate.py", "--model", "v2"),
    ("deploy_best_model", "deploy.py"),
    ("loan_prediction", "predict.py"),
]


def measure(command: list[str]) -> tuple[float, float]:
    """Run a command; return (seconds, peak RSS in MiB). Raises on a non-zero exit."""
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - start
    stderr = process.stderr.read().decode() if process.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{stderr}")
    return seconds, usage.ru_maxrss / 1024


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[45000], help="default: 45000")
    parser.add_argument(
        "--data", type=Path, help="use this loan_data.csv instead of generated data"
    )
    args = parser.parse_args(argv)
    python = sys.executable
    sizes = ["data"] if args.data else args.rows
    for size in sizes:
        with tempfile.TemporaryDirectory(prefix="loan-bench-") as tmp:
            base = Path(tmp)
            if args.data:
                shutil.copy(args.data, base / "loan_data.csv")
                label = str(args.data)
            else:
                seconds, peak = measure(
                    [python, str(PROJECT / "scripts/generate_data.py"), "--base-dir", tmp,
                     "--rows", str(size)]
                )  # fmt: skip
                label = f"{size:,} generated rows"
                print(f"\n{label}: generator {seconds:.2f} s, peak {peak:.0f} MiB")
            size_mib = (base / "loan_data.csv").stat().st_size / 2**20
            print(
                f"{'stage':<20} {'seconds':>8} {'peak MiB':>9}   ({label}, {size_mib:.1f} MiB CSV)"
            )
            total = 0.0
            for node, script, *extra in STAGES:
                command = [python, str(PROJECT / "scripts" / script), "--base-dir", tmp, *extra]
                seconds, peak = measure(command)
                total += seconds
                print(f"{node:<20} {seconds:>8.2f} {peak:>9.0f}")
            print(f"{'total':<20} {total:>8.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
