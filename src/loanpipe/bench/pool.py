"""``make bench``'s pool section: this project's DAG against the original's on an HTCondor pool.

When a pool answers (and the user is not root, whom HTCondor refuses as a job owner), both DAGs
run on the real 45,000 rows (common.REAL_DATA), alternately (original, ours, original, ...,
``--repeats`` each), each in a fresh base directory under ``--work-dir`` (default
``~/loan-bench-pool``: DAGMan refuses a node log under /tmp), timed from submission to DAGMan's
exit (the DAGMan job's terminate event). Then the ratio, and for the median run of each where
the seconds went, per node and per DAG level (bench/timeline.py).

- The original: its DAG as its own generator writes it (``seed_dag.py BASE_DIR`` with this
  interpreter's bindings), submitted with ``condor_submit_dag``. Two edits, neither changing its
  graph, requests or timing knobs: its submit files' ``environment`` also sets ``PATH`` to this
  venv's ``bin`` (its scripts start with ``#!/usr/bin/env python3`` and need pandas: the
  tutorial's ``sudo pip install``), and the second ``queue`` statement the 25.0 bindings write
  after the description's own is dropped (the 24.0 bindings, which the tutorial used, write
  one; two would make every node two jobs).
- This project's: rendered as ``make paths`` does, submitted as ``make submit`` does (claim jobs
  ahead of it, pool/claims.py, then ``condor_submit_dag``).

Between runs it waits ``SETTLE`` seconds, so that no claim a run held is left for the next one.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from loanpipe.bench import common
from loanpipe.dagman.events import EventLog, EventLogError
from loanpipe.pool import checks, claims

GOAL = 0.35
SETTLE = 35.0  # s: longer than any keep_claim_idle (claims.sub 30 s, DAGMan 20 s)
DAG_TIMEOUT = 900.0
SECOND_QUEUE = re.compile(r"(\nqueue[^\n]*\n)\s*queue\s*\Z")


def why_not() -> str | None:
    """Why the pool section cannot run here, or None."""
    if os.geteuid() == 0:
        return "root cannot own HTCondor jobs: run make bench as the pool's user"
    if shutil.which("condor_submit_dag") is None:
        return "HTCondor's tools are not on PATH"
    try:
        checks.pool_answers()
    except checks.CheckError as exc:
        return str(exc)
    if common.original_missing():
        return common.original_missing()
    if not common.REAL_DATA.is_file():
        return f"no real data at {common.REAL_DATA} (set LOAN_DATA_CSV)"
    return None


def pool_version() -> str:
    """The version of the HTCondor tools on PATH (the pool's, not the bindings')."""
    try:
        out = subprocess.run(["condor_version"], capture_output=True, text=True).stdout
    except OSError:
        return "?"
    words = out.split()
    return words[1] if len(words) > 1 and words[0] == "$CondorVersion:" else "?"


def fix_original_submit(path: Path, venv_bin: Path) -> None:
    """The two edits of the original's submit files (see the module's docstring)."""
    text = SECOND_QUEUE.sub(r"\1", path.read_text())
    text = re.sub(
        r"^environment = (.*)$",
        lambda m: f'environment = "{m.group(1).strip(chr(34))} PATH={venv_bin}:/usr/bin:/bin"',
        text,
        flags=re.M,
    )
    path.write_text(text)


def checked(cmd: list[str], env: dict[str, str] | None = None) -> None:
    """Run ``cmd``; RuntimeError with the last line it printed when it fails."""
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        said = (proc.stderr.strip() or proc.stdout.strip() or "no output").splitlines()[-1]
        raise RuntimeError(f"{' '.join(cmd[:4])} ...: exit {proc.returncode}: {said}")


def prepare_original(base: Path) -> Path:
    """The original's DAG for ``base``; its rendered dagfile.dag."""
    env = {**os.environ, "CONDOR_CONFIG": os.environ.get("CONDOR_CONFIG", "/dev/null")}
    script = common.ORIGINAL_DIR / "seed_dag.py"
    checked([sys.executable, str(script), str(base)], env)
    for sub in (base / "dags").glob("*.sub"):
        fix_original_submit(sub, Path(sys.executable).parent)
    return base / "dags" / "dagfile.dag"


def prepare_ours(base: Path) -> Path:
    """This project's DAG rendered for ``base`` (make paths); its dagfile.dag."""
    from loanpipe import config

    dag = base / "dags" / "dagfile.dag"
    cmd = [
        sys.executable,
        "-m",
        "loanpipe.dagman.render",
        "--dag",
        str(config.PROJECT_DIR / "dag" / "dagfile.dag"),
    ]
    cmd += ["--base-dir", str(base), "--project-dir", str(config.PROJECT_DIR)]
    cmd += ["--python", sys.executable, "--output", str(dag)]
    checked(cmd)
    return dag


def wait_for_dagman(dag: Path, timeout: float = DAG_TIMEOUT) -> float:
    """Follow the DAGMan job's log until it exits; the wall clock then."""
    log = EventLog(Path(f"{dag}.dagman.log"))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(e["type"] == "JOB_TERMINATED" for e in log.read(wait=1.0, partial=True)):
            return time.time()
        time.sleep(0.05)
    raise RuntimeError(f"{dag}: DAGMan still running after {timeout:.0f} s (condor_rm it)")


def submit_and_wait(dag: Path, ours: bool) -> float:
    """Seconds from submission to DAGMan's exit of one run of ``dag``."""
    start = time.time()
    if ours:
        claims.submit_claims(dag)
    proc = subprocess.run(
        ["condor_submit_dag", "dagfile.dag"], cwd=dag.parent, capture_output=True, text=True
    )
    if proc.returncode != 0:
        raise RuntimeError(f"condor_submit_dag {dag}: {proc.stdout[-300:]}{proc.stderr[-300:]}")
    return wait_for_dagman(dag) - start


def one_run(work: Path, name: str, ours: bool) -> tuple[float, Path]:
    base = work / name
    base.mkdir(parents=True)
    shutil.copyfile(common.REAL_DATA, base / "loan_data.csv")
    dag = prepare_ours(base) if ours else prepare_original(base)
    seconds = submit_and_wait(dag, ours)
    time.sleep(SETTLE)
    return seconds, dag


def median_run(seconds: list[float], dags: list[Path]) -> Path:
    middle = statistics.median_low(seconds)
    return dags[seconds.index(middle)]


def run(args: argparse.Namespace) -> int:
    reason = why_not()
    if reason:
        print(f"pool: skipped: {reason}")
        return 0
    work = Path(args.work_dir or Path.home() / "loan-bench-pool").absolute() / time.strftime(
        "%Y%m%dT%H%M%S"
    )
    if str(work).startswith("/tmp/"):
        print(f"pool: skipped: {work} is under /tmp, where DAGMan refuses its node log")
        return 0
    version = pool_version()
    print(f"pool: HTCondor {version}, 45,000 rows, {args.repeats} runs each, in {work}", flush=True)
    results: dict[str, tuple[list[float], list[Path]]] = {"original": ([], []), "ours": ([], [])}
    try:
        for i in range(args.repeats):
            for name in results:
                seconds, dag = one_run(work, f"{name}-{i + 1}", name == "ours")
                results[name][0].append(seconds)
                results[name][1].append(dag)
                print(
                    f"pool: {name} run {i + 1}: {seconds:.1f} s (load {os.getloadavg()[0]:.2f})",
                    flush=True,
                )
    except (RuntimeError, OSError) as exc:
        print(f"error: pool: {exc}", file=sys.stderr)
        return 1
    from loanpipe.bench import timeline  # (python -m loanpipe.bench.timeline runs it as main)

    (orig, orig_dags), (ours, our_dags) = results["original"], results["ours"]
    print(common.ratio_line("pool, submission to DAGMan's exit", orig, ours, GOAL))
    for title, secs, dags in (("original", orig, orig_dags), ("this project", ours, our_dags)):
        dag = median_run(secs, dags)
        try:
            print(
                "\n".join(
                    timeline.format_timeline(
                        f"{title} (median run, {dag.parent.parent.name})",
                        timeline.read_timeline(dag),
                    )
                )
            )
        except (ValueError, EventLogError) as exc:
            print(f"pool: no breakdown of {dag}: {exc}")
    return 0
