"""make submit (``python -m loanpipe.pool submit``): condor_submit_dag the rendered DAG.

Submit checks its inputs first (BASE_DIR/loan_data.csv exists; the DAG's directory is not under
/tmp, where DAGMan refuses to keep its node log) and asks the schedd whether a DAGMan of this
DAG is queued: then nothing is submitted (a queued DAGMan may not have written its lock file
yet). With a rescue DAG a plain condor_submit_dag resumes from it; after a finished run (files
left, no rescue DAG) -f is added; --fresh always adds -f.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from loanpipe import config, hints
from loanpipe.dagman import metrics as dag_metrics
from loanpipe.dagman import rescue_files
from loanpipe.dagman import state as ds
from loanpipe.errors import EXIT_FAILURE, LoanpipeError
from loanpipe.local.lock import PidLock
from loanpipe.pool import checks, claims
from loanpipe.pool.rundir import PoolError, Run, run, under_tmp

# Files condor_submit_dag writes for a run; any of them makes a plain resubmission fail.
SUBMIT_LEFTOVERS = (".condor.sub", ".lib.out", ".lib.err", ".dagman.log")


def check_inputs(run_dir: Path, base_dir: Path) -> None:
    """Refuse, in one line, what would make the DAG fail at once on the pool."""
    if under_tmp(run_dir):
        raise PoolError(
            f"{run_dir} is under /tmp: DAGMan refuses a node log there (DAGMAN_USE_STRICT) "
            "and exits before any node runs; use a BASE_DIR outside /tmp (e.g. under $HOME)"
        )
    data = config.Layout(base_dir).raw_csv
    if not data.is_file():
        raise PoolError(
            f"{data}: no such file: put your data there, or "
            f"`{hints.make_command('data', base_dir)}` writes generated sample data"
        )


def submit_command(run_: Run, fresh: bool, batch: str) -> tuple[list[str], str]:
    """condor_submit_dag's arguments and a note on what it will do."""
    cmd = ["condor_submit_dag", "-batch-name", batch]
    rescues = [p for _, p in rescue_files(run_.dag)]
    leftovers = [p for p in (run_.file(s) for s in SUBMIT_LEFTOVERS) if p.exists()]
    if rescues and dag_metrics.finished_after(run_.file(".metrics"), rescues[-1]):
        # DAGMan leaves the rescue DAG it resumed from in place after the DAG succeeded; a
        # plain condor_submit_dag would resume from it again and skip the nodes it marks DONE.
        cmd.append("-f")
        note = (
            f"the DAG succeeded after {rescues[-1].name} was written: nothing to resume, every "
            "node runs again (-f renames the old rescue DAGs to *.old)"
        )
    elif fresh:
        cmd.append("-f")
        note = "FRESH=1: every node runs again (-f; earlier rescue DAGs are renamed *.old)"
    elif rescues:
        note = f"resuming from {rescues[-1].name}: nodes it marks DONE are not run again"
    elif leftovers:
        cmd.append("-f")
        note = (
            f"an earlier run left {leftovers[0].name} but no rescue DAG (it finished, or "
            "stopped before any node failed): nothing to resume, every node runs again (-f)"
        )
    else:
        note = "first run of this DAG here"
    return [*cmd, run_.name], note


def refuse_if_running(run_: Run) -> None:
    """A DAGMan of this DAG in the queue (asked of the schedd), or a lock file: refuse."""
    queued = ds.queued_dagmans(run_.dir, run_.name)
    if queued:
        ids = ", ".join(str(ad.get("ClusterId")) for ad in queued)
        raise PoolError(
            f"a DAGMan of {run_.dag} is already in the queue (job {ids}): follow it with "
            f"`{run_.hint('watch')}`, or remove it with condor_rm {ids} before submitting again",
            EXIT_FAILURE,
        )
    lock = run_.file(".lock")
    if lock.exists():
        raise PoolError(
            f"{lock} exists but no DAGMan of this DAG is queued: a `make local` run is going, "
            "or a DAGMan died; if nothing runs, remove the lock file and submit again",
            EXIT_FAILURE,
        )


def lock_base_dir(run_: Run) -> PidLock:
    """The base directory's lock (loanpipe.local.lock), refused in one line while a make local
    run or another DAGMan (any DAG) holds it."""
    base = run_.base_dir()
    lock = PidLock(config.Layout(base).pipeline_lock, f"BASE_DIR {base}", run_.dag)
    try:
        note = lock.acquire()
    except LoanpipeError as exc:
        raise PoolError(str(exc), EXIT_FAILURE) from None
    if note:
        print(f"note: {note}")
    return lock


def submitted_cluster(run_: Run, since: float) -> int | None:
    """The DAGMan job condor_submit_dag just queued: its log's submit event, else the schedd."""
    job = ds.DagmanLog(run_.file(".dagman.log")).update()
    if job is not None and job.submitted >= since - 1:
        return job.cluster
    try:
        queued = ds.queued_dagmans(run_.dir, run_.name)
    except OSError:
        return None
    return max((int(ad["ClusterId"]) for ad in queued), default=None)


def cmd_submit(args: argparse.Namespace) -> int:
    checks.submit_side("condor_submit_dag")
    run_ = Run(args.dag)
    check_inputs(run_.dir, run_.base_dir())
    lock = lock_base_dir(run_)  # names a make local run or a DAGMan of any DAG in the way
    try:
        refuse_if_running(run_)  # a DAGMan of this DAG queued by an older release: no lock
        if args.preflight:
            code = preflight(run_, args.timeout)
            if code != 0:
                return code
        cmd, note = submit_command(run_, args.fresh, args.batch_name)
        print(f"submit: {note}")
        since = time.time()
        held = claims.submit_claims(run_.dag, args.claims)  # pool/claims.py: why
        code = run(cmd, run_.dir)
        if code != 0:
            claims.remove_claims(held, run_.dir)
        cluster = submitted_cluster(run_, since) if code == 0 else None
        if cluster is not None:
            lock.hand_over(cluster)  # held for the DAGMan's whole life
        elif code == 0:
            print(
                "submit: warning: the DAGMan job is neither in its log nor in the queue: "
                f"{run_.base_dir()} is not locked for it"
            )
    finally:
        lock.release()  # a no-op once handed over
    if code == 0:
        watch, status = run_.hint("watch"), run_.hint("status")
        print(f"submit: follow it with `{watch}`; `{status}` says what waits and why")
        if not args.preflight:
            pre = run_.hint("preflight")
            print(f"submit: first run on this pool? `{pre}` tests an execute node first")
    return code


def preflight(run_: Run, timeout: float) -> int:
    """Submit submit/preflight.sub once, wait for it, print a one-line verdict."""
    from loanpipe.pool.preflight import run_preflight

    return run_preflight(run_.paths(), run_.dir, run_.name, config.PROJECT_DIR, timeout)
