"""What every section of ``make bench`` shares: where the data and the original system are, and
running two commands alternately for medians.

Comparisons are side by side on this machine: the original first, then this project, again and
again (``--repeats``, median of each), so that a busy minute on a shared machine falls on both.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from loanpipe import config

# The real 45,000 rows and the original system's scripts (its eight stage scripts, its run
# script and its DAG generator) are not part of the project: they sit in a folder `shared`
# beside the checkout on the development machines, or wherever these variables say.
REAL_DATA = Path(
    os.environ.get("LOAN_DATA_CSV", config.PROJECT_DIR.parent / "shared" / "data" / "loan_data.csv")
)
ORIGINAL_DIR = Path(
    os.environ.get("LOAN_ORIGINAL_DIR", config.PROJECT_DIR.parent / "shared" / "baseline")
)


def make_local(project: Path, base: Path, *extra: str) -> None:
    """``make local FRESH=1`` of checkout ``project`` for ``base``, every node run, as a user
    types it (``LAST_RUN`` inside ``base``: the checkout's own is left alone). Not a sub-make of
    ``make bench``: none of its variables reach this one. RuntimeError when it fails."""
    command = ["make", "--no-print-directory", "-C", str(project), "local", "FRESH=1"]
    command += [*extra, f"BASE_DIR={base}", f"LAST_RUN={base / '.last-run'}"]
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("MAKE") and k not in ("MFLAGS", "BASE_DIR")
    }
    proc = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} exited {proc.returncode}: {proc.stderr[-2000:]}")


def original_missing() -> str | None:
    """Why the original system cannot be run here, or None when it can."""
    if not (ORIGINAL_DIR / "run_seed.sh").is_file():
        return f"the original system's scripts are not in {ORIGINAL_DIR} (set LOAN_ORIGINAL_DIR)"
    return None


def timed(run: Callable[[], None]) -> float:
    """Seconds one call of ``run`` takes (wall clock)."""
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def alternate(runs: dict[str, Callable[[], None]], repeats: int) -> dict[str, list[float]]:
    """Call each of ``runs`` in turn, ``repeats`` rounds; the seconds of each call, by name."""
    seconds: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            seconds[name].append(timed(run))
    return seconds


def spread(values: list[float]) -> str:
    """'median s (min to max)' of a list of seconds."""
    if len(values) == 1:
        return f"{values[0]:.1f} s"
    return f"{statistics.median(values):.1f} s ({min(values):.1f} to {max(values):.1f})"


def ratio_line(
    what: str,
    original: list[float],
    ours: list[float],
    goal: float | None,
    reference: str = "original",
) -> str:
    """One line: what, the reference's median (the original system unless named), ours, their
    ratio, and the goal it is held to."""
    ratio = statistics.median(ours) / statistics.median(original)
    line = f"{what}: {reference} {spread(original)}, this project {spread(ours)}: ratio {ratio:.2f}"
    if goal is not None:
        line += f"  (goal <= {goal:.2f}: {'met' if ratio <= goal else 'NOT met'})"
    return line
