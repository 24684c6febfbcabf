"""The stages section of ``make bench``: each stage's time and peak memory against its request,
and the whole DAG's wall time on this machine, at several data sizes.

Data: the real rows (``../shared/data/loan_data.csv`` beside the checkout, or $LOAN_DATA_CSV)
resampled with replacement to each size (seeded; the real file itself when the size is its own),
else generated sample data (scripts/generate_data.py). Each size gets a fresh base directory.

Per size it prints:
- each stage run one after another as a pool job runs it (``python scripts/<stage>.py``, a new
  interpreter), its seconds and peak RSS (os.wait4) against the request_memory that make paths
  renders for this input (loanpipe.sizing); a stage over its request is flagged;
- the DAG's wall time under the local runner (what ``make local`` runs: jobs forked from a warm
  interpreter, two at once on two cores), and with --exec-too also with every job exec'd.

Nothing is asserted: shared machines are noisy, so figures belong here and in the README, not in
tests. Run it on an idle machine and repeat for medians.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from loanpipe import config, pipeline, sizing
from loanpipe.bench.common import REAL_DATA

# node, stage script, arguments: each stage as a pool job runs it
STAGES = [(s.node, s.script, *s.args) for s in pipeline.DEFAULT]
CHUNK_ROWS = 500_000
SEED = 42


# Runs the command in a child of its own and prints that child's peak RSS (KiB) as its last
# line of stderr. Measuring from this process instead would count this process's own resident
# memory in small stages: Linux carries the parent's high-water mark across fork and exec into
# ru_maxrss (deploy showed 128 MiB at 10M rows: the benchmark's, not its own 20 MiB).
PEAK_HELPER = """
import os, sys
pid = os.fork()
if pid == 0:
    try:
        os.execv(sys.argv[1], sys.argv[1:])
    finally:
        os._exit(127)
_, status, usage = os.wait4(pid, 0)
print(f"peak-rss-kib {usage.ru_maxrss}", file=sys.stderr)
sys.exit(os.waitstatus_to_exitcode(status))
"""


def measure(command: list[str]) -> tuple[float, float]:
    """Run a command; return (seconds, its peak RSS in MiB). Raises on a non-zero exit."""
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-c", PEAK_HELPER, *command],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        errors="replace",
        check=False,
    )
    seconds = time.perf_counter() - start
    lines = result.stderr.splitlines()
    if result.returncode != 0 or not lines or not lines[-1].startswith("peak-rss-kib "):
        raise RuntimeError(f"{' '.join(command)} failed:\n{result.stderr}")
    return seconds, int(lines[-1].split()[1]) / 1024


def resample(source: Path, rows: int, dest: Path, seed: int = SEED) -> bool:
    """Write ``rows`` data rows drawn with replacement from ``source`` (header kept), in chunks;
    False when ``source`` has exactly that many rows and is copied as it is."""
    import numpy as np

    with open(source, encoding="utf-8") as fh:
        header = fh.readline()
        lines = [line if line.endswith("\n") else line + "\n" for line in fh if line.strip()]
    if rows == len(lines):
        shutil.copy(source, dest)
        return False
    rng = np.random.default_rng(seed)
    with open(dest, "w", encoding="utf-8") as out:
        out.write(header)
        for start in range(0, rows, CHUNK_ROWS):
            picks = rng.integers(0, len(lines), size=min(CHUNK_ROWS, rows - start))
            out.write("".join(lines[i] for i in picks))
    return True


def make_input(base: Path, rows: int) -> str:
    """Write base/loan_data.csv with ``rows`` rows; return how it was made."""
    target = config.Layout(base).raw_csv
    if REAL_DATA.is_file():
        resampled = resample(REAL_DATA, rows, target)
        return f"{'resampled from' if resampled else 'the real rows,'} {REAL_DATA}"
    script = config.SCRIPTS_DIR / "generate_data.py"
    command = [sys.executable, str(script), "--output", str(target)]
    measure([*command, "--rows", str(rows), "--seed", str(SEED)])
    return "generated sample data (real rows not found)"


def run_dag(base: Path, jobs: int, exec_jobs: bool) -> tuple[float, str]:
    """Render the DAG for ``base``, run it with the local runner; (wall seconds, outcome)."""
    render = [sys.executable, "-m", "loanpipe.dagman.render", "--base-dir", str(base)]
    subprocess.run([*render, "--python", sys.executable], check=True, capture_output=True)
    dag = config.Layout(base).dag_file()
    command = [sys.executable, "-m", "loanpipe.local", "--dag", str(dag), "--fresh"]
    command += ["-j", str(jobs)] + (["--exec"] if exec_jobs else [])
    env = {**os.environ, "CONDOR_CONFIG": "/dev/null"}
    start = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    seconds = time.perf_counter() - start
    try:
        status = json.loads(Path(f"{config.Layout(base).dag_file()}.metrics").read_text())[
            "DagStatus"
        ]
    except (OSError, ValueError, KeyError):
        status = None
    outcome = "ok" if proc.returncode == 0 and status == 0 else f"FAILED (exit {proc.returncode})"
    return seconds, outcome


def bench_size(base: Path, rows: int, args: argparse.Namespace) -> None:
    how = make_input(base, rows)
    size_mib = config.Layout(base).raw_csv.stat().st_size / 2**20
    request = sizing.memory_mb(size_mib)
    print(f"\n{rows:,} rows, {size_mib:.1f} MiB of CSV ({how})")
    print(f"request_memory for every node (make paths): {request} MiB")
    print(f"{'stage':<20} {'seconds':>8} {'peak MiB':>9} {'of request':>11}")
    total = 0.0
    python = sys.executable
    for node, script, *extra in STAGES:
        command = [python, str(config.SCRIPTS_DIR / script), "--base-dir", str(base), *extra]
        seconds, peak = measure(command)
        total += seconds
        flag = "  OVER REQUEST" if peak > request else ""
        print(f"{node:<20} {seconds:>8.2f} {peak:>9.0f} {peak / request:>10.0%}{flag}")
    print(f"{'stages in sequence':<20} {total:>8.2f}")
    if args.no_dag:
        return
    modes = [False, True] if args.exec_too else [False]
    for exec_jobs in modes:
        seconds, outcome = run_dag(base, args.jobs, exec_jobs)
        how = "every job exec'd" if exec_jobs else "jobs forked from a warm interpreter"
        print(f"DAG, python -m loanpipe.local -j {args.jobs} ({how}): {seconds:.2f} s, {outcome}")
