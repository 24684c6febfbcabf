"""``python -m loanpipe.bench`` (``make bench``): the sections in order, each printing its figures.

python -m loanpipe.bench [--only stages ...] [--rows 45000 1000000 ...] [--repeats 3]
make bench                      every section, 45,000 and 1,000,000 rows
make bench ROWS="10000000"      10M rows (about 770 MiB of CSV; stages peak near 7.5 GiB)
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from loanpipe.bench import original, pool, search, stages


def run_stages(args: argparse.Namespace) -> int:
    for rows in args.rows:
        with tempfile.TemporaryDirectory(prefix="loan-bench-", dir=args.work_dir) as tmp:
            try:
                stages.bench_size(Path(tmp), rows, args)
            except (RuntimeError, OSError, subprocess.CalledProcessError) as exc:
                print(f"error: {rows:,} rows: {exc}", file=sys.stderr)
                return 1
    return 0


# name -> the function that runs the section (each module's ``run(args) -> exit code``)
SECTIONS = {
    "stages": run_stages,
    "original": original.run,
    "search": search.run,
    "pool": pool.run,
}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m loanpipe.bench", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("--only", nargs="+", choices=list(SECTIONS), help="sections (default: all)")
    p.add_argument(
        "--rows", type=int, nargs="+", default=[45000, 1000000], help="default: %(default)s"
    )
    p.add_argument("--repeats", type=int, default=3, help="alternating runs per comparison")
    p.add_argument("--jobs", "-j", type=int, default=os.cpu_count() or 1, help="DAG jobs")
    p.add_argument("--exec-too", action="store_true", help="also run the DAG exec'ing jobs")
    p.add_argument("--no-dag", action="store_true", help="stages only")
    p.add_argument(
        "--work-dir", type=Path, help="make the base directories here (default: a temp dir)"
    )
    return p


def main(argv: list[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    if any(rows < 1 for rows in args.rows):
        p.error("--rows must be positive")
    if args.repeats < 1:
        p.error("--repeats must be positive")
    print(
        f"benchmark: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}, {sys.executable}"
    )
    status = 0
    for name in args.only or list(SECTIONS):
        print(f"\n==== {name}")
        status = SECTIONS[name](args) or status
    return status
