"""The ``original`` section of ``make bench``: the whole pipeline on one machine against the
original system's eight scripts, side by side.

Per size: two base directories holding the same ``loan_data.csv`` (loanpipe.bench.stages
``make_input``: the real rows, resampled). Then, alternately, ``--repeats`` times:

- the original: its run script (``run_seed.sh BASE_DIR``: its eight scripts one after another)
  with this interpreter's directory first on ``PATH``, so that its ``python`` finds pandas;
- this project: ``make local BASE_DIR=... FRESH=1``, the command a user runs, every node run
  (the checkout's ``.last-run`` is left alone: ``LAST_RUN`` points into the base directory).

It prints the medians and their ratio, held to the goal of issue 21 (0.2 at the real 45,000 rows,
0.15 at other sizes), what each side left behind in its last run, so that a fast run that did
nothing shows, and where our last run's seconds went, node by node (bench/local_timeline.py).
Without the original's scripts ($LOAN_ORIGINAL_DIR) it says so and passes.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from loanpipe import config
from loanpipe.bench import common, local_timeline, stages
from loanpipe.errors import LoanpipeError

REAL_ROWS = 45_000
GOAL_REAL = 0.2
GOAL_OTHER = 0.15


def goal(rows: int) -> float:
    return GOAL_REAL if rows == REAL_ROWS else GOAL_OTHER


def run_original(base: Path) -> None:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    script = common.ORIGINAL_DIR / "run_seed.sh"
    proc = subprocess.run(
        ["bash", str(script), str(base)], capture_output=True, text=True, env=env, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{script} {base} exited {proc.returncode}: {proc.stderr[-2000:]}")


def run_ours(base: Path) -> None:
    common.make_local(config.PROJECT_DIR, base)


def our_outcome(base: Path) -> str:
    """What this project's last run left: the deployed model, or why there is none."""
    lay = config.Layout(base)
    try:
        status = json.loads(Path(f"{lay.dag_file()}.metrics").read_text())["DagStatus"]
        manifest = json.loads(lay.manifest.read_text())
    except (OSError, ValueError, KeyError) as exc:
        raise RuntimeError(f"make local left no result in {base}: {exc}") from exc
    if status != 0 or not lay.deployed_model.is_file():
        raise RuntimeError(f"make local in {base}: DagStatus {status}, no deployed model")
    return f"deployed {manifest.get('candidate')} ({manifest.get('model_name')}), DagStatus 0"


def files_under(base: Path) -> int:
    return sum(1 for p in base.rglob("*") if p.is_file() and p.name != "loan_data.csv")


def bench_size(work: Path, rows: int, repeats: int) -> None:
    ours, original = work / "ours", work / "original"
    ours.mkdir()
    original.mkdir()
    how = stages.make_input(ours, rows)
    shutil.copy(config.Layout(ours).raw_csv, config.Layout(original).raw_csv)
    print(f"\n{rows:,} rows ({how}), {repeats} alternating runs each")
    seconds = common.alternate(
        {"original": lambda: run_original(original), "ours": lambda: run_ours(ours)}, repeats
    )
    what = f"{rows:,} rows, whole pipeline on one machine (make local FRESH=1)"
    print(common.ratio_line(what, seconds["original"], seconds["ours"], goal(rows)))
    print(
        f"  last runs: the original left {files_under(original)} files; "
        f"this project {our_outcome(ours)}"
    )
    line = local_timeline.read_local_timeline(config.Layout(ours).dag_file())
    print("\n".join(local_timeline.format_local_timeline("  this project's last run", line)))


def run(args: argparse.Namespace) -> int:
    why = common.original_missing()
    if why is not None:
        print(f"original: skipped: {why}")
        return 0
    for rows in args.rows:
        with tempfile.TemporaryDirectory(prefix="loan-original-", dir=args.work_dir) as tmp:
            try:
                bench_size(Path(tmp), rows, args.repeats)
            except (RuntimeError, OSError, ValueError, LoanpipeError) as exc:
                print(f"error: {rows:,} rows: {exc}", file=sys.stderr)
                return 1
    return 0
