#!/usr/bin/env python3
"""The pool side of the Makefile: make submit, watch, status and preflight.

    python -m loanpipe.pool --dag FILE submit [--fresh] [--batch-name N] [--preflight]
    python -m loanpipe.pool --dag FILE watch      follow the DAG until DAGMan exits; 0 only if ok
    python -m loanpipe.pool --dag FILE status     node table, hold reasons, condor_q -dag, waits
    python -m loanpipe.pool --dag FILE preflight  one tiny job: interpreter, imports, BASE_DIR
    python -m loanpipe.pool --dag FILE inputs --base-dir B   refuse what would fail at once
    python -m loanpipe.pool require TOOL          exit 3 with one line unless TOOL is on PATH

FILE is the rendered DAG (make paths); its directory is where DAGMan runs and writes its files.
Reads DAGMan's files and the schedd through loanpipe.dagman.state. Without HTCondor's tools it
prints one `error:` line pointing to `make local` and exits 3.

Submit checks its inputs first (BASE_DIR/loan_data.csv exists; the DAG's directory is not under
/tmp, where DAGMan refuses to keep its node log) and asks the schedd whether a DAGMan of this
DAG is queued: then nothing is submitted (a queued DAGMan may not have written its lock file
yet). With a rescue DAG a plain condor_submit_dag resumes from it; after a finished run (files
left, no rescue DAG) -f is added; --fresh always adds -f.

Watch follows the DAGMan job's own event log (<dag>.dagman.log, htcondor2.JobEventLog) until the
job exits, showing condor_watch_q meanwhile where it runs (else one progress line per change),
then prints the DAG's result: DagStatus from the metrics file of that DAGMan, and for a failure
each failed node with its one-line error (BASE_DIR/error/<node>.<retry>.err) or hold reason, or
DAGMan's own reason from <dag>.dagman.out. Exit codes: 0 the DAG succeeded; 1 it did not (or
nothing was submitted); 2 bad usage or input; 3 no HTCondor.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from loanpipe import config, hints, pipeline
from loanpipe.dagman import DagError, parse_dag, rescue_files
from loanpipe.dagman import metrics as dag_metrics
from loanpipe.dagman import state as ds
from loanpipe.dagman.events import EventLogError, pre_skipped, read_events
from loanpipe.dagman.status import DagStatus
from loanpipe.errors import EXIT_FAILURE, EXIT_USAGE, LoanpipeError
from loanpipe.local.lock import PidLock
from loanpipe.pool import checks, claims, progress
from loanpipe.pool.checks import EXIT_NO_CONDOR

# Files condor_submit_dag writes for a run; any of them makes a plain resubmission fail.
SUBMIT_LEFTOVERS = (".condor.sub", ".lib.out", ".lib.err", ".dagman.log")
QUEUE_CHECK = 60.0  # watch: seconds between asking the schedd whether DAGMan is still queued
SILENT_CHECK = 10.0  # ... while it does not answer (and first)


class PoolError(LoanpipeError):
    """A one-line refusal (bad input, a run in the way); ``code`` is the exit code."""

    def __init__(self, message: str, code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.code = code


def no_condor(tool: str) -> int:
    """The one-line answer when HTCondor's tools are missing."""
    print(f"error: {checks.no_condor_message(tool)}", file=sys.stderr)
    return EXIT_NO_CONDOR


def run(cmd: Sequence[str], cwd: Path) -> int:
    """Echo and run a command in ``cwd``; its exit code (127 when it cannot start)."""
    print(f"+ (cd {cwd} && {' '.join(cmd)})", flush=True)
    try:
        return subprocess.call(list(cmd), cwd=cwd)
    except OSError as exc:
        print(f"pool: cannot run {cmd[0]}: {exc.strerror or exc}", file=sys.stderr)
        return 127


class Run:
    """The rendered DAG and the files of its runs (all in the DAG file's directory)."""

    def __init__(self, dag: Path) -> None:
        self.dag = dag.absolute()
        self.dir = self.dag.parent
        self.name = self.dag.name

    def file(self, suffix: str) -> Path:
        return self.dir / f"{self.name}{suffix}"

    def paths(self) -> dict[str, str]:
        """BASE_DIR, PROJECT_DIR and PYTHON of the rendered DAG (VARS ALL_NODES)."""
        try:
            dag = parse_dag(self.dag)
        except (DagError, OSError) as exc:
            raise PoolError(f"{self.dag}: {exc} (make paths renders it)") from None
        for node in dag.nodes.values():
            if node.vars.get("BASE_DIR"):
                return node.vars
        raise PoolError(f"{self.dag}: no BASE_DIR in its VARS (make paths renders it)")

    def base_dir(self) -> Path:
        return Path(self.paths()["BASE_DIR"])

    def hint(self, target: str) -> str:
        """The exact make command for ``target`` on this run's base directory and DAG."""
        return hints.make_command(target, self.dir.parent, self.dag)


def under_tmp(path: Path) -> bool:
    """DAGMan's own test (dagman_main.cpp): the node log's absolute path starts with /tmp."""
    return any(str(p).startswith("/tmp") for p in (path.absolute(), path.resolve()))


# --------------------------------------------------------------------------- submit


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


# --------------------------------------------------------------------------- watch


class Display:
    """condor_watch_q where it runs, else one progress line per change of the status file.

    condor_watch_q starts once DAGMan has created the node log (it follows only the logs that
    exist when it starts); it is stopped when the DAGMan job ends.
    """

    def __init__(self, run_: Run, since: float, use_watch_q: bool) -> None:
        self.run, self.since = run_, since
        self.proc: subprocess.Popen[bytes] | None = None
        self.errors = tempfile.TemporaryFile()  # noqa: SIM115 (closed in close())
        self.progress = progress.NodeProgress()
        self.tool = shutil.which("condor_watch_q") if use_watch_q else None

    def start(self) -> None:
        nodes_log = self.run.file(".nodes.log")
        if self.tool is None or not nodes_log.exists() or nodes_log.stat().st_mtime < self.since:
            return
        files = [nodes_log.name, self.run.file(".dagman.log").name]
        tool, self.tool = self.tool, None
        try:
            self.proc = subprocess.Popen(
                [tool, "-files", *files], cwd=self.run.dir, stderr=self.errors
            )
        except OSError as exc:
            print(
                f"watch: condor_watch_q cannot start ({exc.strerror or exc}); following "
                f"{self.run.file('.status').name} instead",
                flush=True,
            )

    def tick(self) -> None:
        if self.proc is None:
            self.start()
        if self.proc is not None and self.proc.poll() is not None:
            self.errors.seek(0)
            lines = self.errors.read().decode(errors="replace").strip().splitlines()
            why = lines[-1] if lines else f"exit code {self.proc.returncode}"
            print(
                f"watch: condor_watch_q stopped ({why}); following "
                f"{self.run.file('.status').name} instead",
                flush=True,
            )
            self.proc = None
        if self.proc is None:
            status = ds.read_status_file(self.run.file(".status"))
            if status is not None and status.timestamp >= self.since - 1:
                for line in self.progress.lines(status):
                    print(f"watch: {line}", flush=True)

    def finish(self, wait: float = 5.0) -> None:
        """The last lines, once DAGMan has exited: its final node status file (says how the
        DAG ended) may land just after the DAGMan job's end event."""
        deadline = time.monotonic() + wait
        while self.proc is None and time.monotonic() < deadline:
            status = ds.read_status_file(self.run.file(".status"))
            if status is not None and status.note and status.timestamp >= self.since - 1:
                break
            time.sleep(0.2)
        self.tick()

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # condor_watch_q ends cleanly on Ctrl-C
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.errors.close()


def verdict(run_: Run, job: ds.DagmanJob) -> tuple[int, list[str]]:
    """(exit code, lines) for a DAGMan job that has ended."""
    metrics = dag_metrics.read(run_.file(".metrics"), job.cluster)
    status = dag_metrics.dag_status(metrics) if metrics else None
    if not job.done:
        head = f"DAGMan job {job.cluster} left the queue without an end in {run_.name}.dagman.log"
    elif job.removed:
        head = f"DAGMan job {job.cluster} was removed (condor_rm)"
    elif job.signal:
        head = f"DAGMan job {job.cluster} was killed by signal {job.signal}"
    else:
        head = f"DAGMan job {job.cluster} exited with code {job.exit_code}"
    if status is not None:
        head += f": DagStatus {status} ({DagStatus.describe(status)})"
    page = report_page(run_)
    skipped = skipped_line(run_, job)
    if status == 0 and job.exit_code == 0:
        return 0, [f"{head}; every node succeeded", *skipped, *page]
    lines = [head]
    rescues = [p for _, p in rescue_files(run_.dag) if p.stat().st_mtime >= job.submitted - 1]
    if job.removed:  # its nodes were removed with it: not failures of theirs
        lines += removal_lines(run_, job, rescues)
        lines[-1:-1] = page  # the resume command last
        return EXIT_FAILURE, lines
    lines += failure_lines(run_, job)
    lines += page
    if len(lines) == 1:
        lines.append(f"no failed node and no DAGMan error found: see {run_.file('.dagman.out')}")
    lines += skipped
    if rescues:
        lines.append(f"fix the cause, then `{run_.hint('submit')}` resumes from {rescues[-1].name}")
    else:
        lines.append(f"fix the cause, then `{run_.hint('submit')}`")
    return EXIT_FAILURE, lines


def report_page(run_: Run) -> list[str]:
    """Where the FINAL node wrote the run's report, when it did."""
    try:
        page = config.Layout(Path(run_.base_dir())).report_dir / "report.html"
    except PoolError:
        return []
    return [f"report: {page}"] if page.is_file() else []


def removal_lines(run_: Run, job: ds.DagmanJob, rescues: list[Path]) -> list[str]:
    """A DAG removed with condor_rm: what had finished, and how to go on."""
    status = ds.read_status_file(run_.file(".status"))
    lines = []
    if status is not None and status.timestamp >= job.submitted - 1:
        done = status.counts["done"]
        lines.append(
            f"removed by condor_rm with {done} of {status.counts['total']} nodes done; "
            "the node jobs it had submitted were removed with it"
        )
    if rescues:
        lines.append(f"`make submit` resumes from {rescues[-1].name} (the nodes done are kept)")
    else:
        lines.append("`make submit` runs it again")
    return lines


def skipped_line(run_: Run, job: ds.DagmanJob) -> list[str]:
    """The nodes this run skipped (PRE_SKIP: unchanged since their last success), if any."""
    try:
        skipped = pre_skipped(read_events(run_.file(".nodes.log"), partial=True), job.submitted)
    except EventLogError:
        return []
    if not skipped:
        return []
    return [f"skipped (PRE_SKIP, unchanged): {len(skipped)} nodes: {', '.join(skipped)}"]


def failure_lines(run_: Run, job: ds.DagmanJob) -> list[str]:
    """Each failed node with its one-line error or hold reason; else DAGMan's own reason."""
    lines: list[str] = []
    status = ds.read_status_file(run_.file(".status"))
    if status is not None and status.timestamp >= job.submitted - 1:
        try:
            base = run_.base_dir()
        except PoolError:
            base = None
        holds = {h.node: h for h in ds.node_holds(run_.file(".nodes.log"), job.submitted)}
        failed = [node.name for node in status.nodes if node.state == 6]
        for node in status.nodes:
            if node.state != 6:
                continue
            if node.name == pipeline.FINAL_NODE and len(failed) > 1:
                continue  # the report fails on purpose when another node failed
            why = node.details
            err = ds.node_error_file(base, node.name, node.retries) if base else None
            message = ds.one_line_error(err) if err else None
            item = ds.job_item(err, node.name, node.retries) if err else None
            if item:  # a node of many jobs: which of them failed (the search's candidate)
                why = f"{why}; job {item} failed"
            if message:
                why = f"{why}; {err}: {message}"
            elif node.name in holds:
                why = f"{why}; {holds[node.name].line()}"
            lines.append(f"failed node {node.name}: {why}")
    if not lines:
        reason = ds.dagman_reason(run_.file(".dagman.out"), job.cluster)
        if reason:
            lines.append(f"DAGMan: {reason}")
    return lines


def say_schedd(silent: bool, silent_now: bool) -> bool:
    """One watch line when the schedd stops answering, one when it answers again."""
    if silent_now and not silent:
        why = ds.schedd_silence() or "no answer"
        print(
            f"watch: {time.strftime('%H:%M:%S')} the schedd does not answer ({why}); "
            "what is shown may be stale; still following the DAG",
            flush=True,
        )
    elif silent and not silent_now:
        print(f"watch: {time.strftime('%H:%M:%S')} the schedd answers again", flush=True)
    return silent_now


def cmd_watch(args: argparse.Namespace) -> int:
    run_ = Run(args.dag)
    log = ds.DagmanLog(run_.file(".dagman.log"))
    job = log.update()
    if job is None:
        print(
            f"error: nothing submitted from {run_.dir} (no {log.path.name}): {run_.hint('submit')}",
            file=sys.stderr,
        )
        return EXIT_FAILURE
    if not job.done:
        print(
            f"watch: following DAGMan job {job.cluster} until it exits (Ctrl-C stops "
            "watching, not the DAG)",
            flush=True,
        )
        display = Display(run_, job.submitted, progress.use_watch_q(args.no_watch_q))
        held_said, next_ask, gone = None, time.monotonic() + SILENT_CHECK, 0
        silent = False
        try:
            while not job.done:
                display.tick()
                if job.held and job.held != held_said:
                    print(f"watch: DAGMan job {job.cluster} itself is held: {job.held}")
                    held_said = job.held
                job = log.update(wait=args.interval) or job
                if not job.done and time.monotonic() > next_ask:
                    # An end event is always written; this only guards against waiting forever
                    # on a job the schedd lost (asked twice, a minute apart).
                    queued = ds.in_queue(job.cluster)
                    gone = gone + 1 if queued is False else 0
                    if gone == 2:
                        break
                    silent = say_schedd(silent, queued is None)
                    next_ask = time.monotonic() + (SILENT_CHECK if silent else QUEUE_CHECK)
            display.finish()
        finally:
            display.close()
    code, lines = verdict(run_, job)
    for line in lines:
        print(f"watch: {line}")
    try:
        base = run_.base_dir()
    except PoolError:
        base = None
    progress.closing_summary(base, run_.dag, job.submitted, code == 0)
    return code


# --------------------------------------------------------------------------- status


def node_table(status: ds.StatusFile) -> list[str]:
    lines = [f"DAG: {status.label}; {ds.progress_line(status)}"]
    lines.append(f"{'node':<20} {'state':<12} {'retries':>7}  details")
    for node in status.nodes:
        lines.append(f"{node.name:<20} {node.label:<12} {node.retries:>7}  {node.details}")
    return lines


def cmd_status(args: argparse.Namespace) -> int:
    if shutil.which("condor_q") is None:
        return no_condor("condor_q")
    run_ = Run(args.dag)
    job = ds.DagmanLog(run_.file(".dagman.log")).update()
    if job is None:
        print(f"status: nothing submitted from {run_.dir} yet ({run_.hint('submit')})")
        return 0
    state = "running" if not job.done else "finished"
    print(f"== DAGMan job {job.cluster} ({state}), submitted {time.ctime(job.submitted)}")
    status = ds.read_status_file(run_.file(".status"))
    if status is not None and status.timestamp >= job.submitted - 1:
        print(f"== {run_.file('.status').name} (NODE_STATUS_FILE)")
        print("\n".join(node_table(status)))
    else:
        print(
            f"status: no {run_.file('.status').name} of this run yet (DAGMan writes it "
            "once it starts)"
        )
    if job.done:
        _, lines = verdict(run_, job)
        print("\n".join(f"result: {line}" for line in lines))
    holds = ds.node_holds(run_.file(".nodes.log"), job.submitted)
    for hold in holds:
        print(f"held: {hold.line()}")
    if job.done:
        return 0
    silence = ds.schedd_silence()
    if silence is not None:
        print(
            f"status: the schedd does not answer ({silence}): the table above is DAGMan's "
            "last word; the DAG goes on when the schedd is back (make status again later)"
        )
        return EXIT_FAILURE
    code = run(["condor_q", "-dag", "-nobatch"], run_.dir)
    waiting = ds.node_jobs(job.cluster)
    idle = [ad for ad in waiting if ad.get("JobStatus") == 1]
    for ad in idle[: args.analyze]:
        job_id = f"{ad.get('ClusterId')}.{ad.get('ProcId')}"
        print(f"idle: {ad.get('DAGNodeName')} ({job_id}): why it does not match a slot:")
        run(["condor_q", "-better-analyze", job_id], run_.dir)
    return code


# --------------------------------------------------------------------------- preflight


def preflight(run_: Run, timeout: float) -> int:
    """Submit submit/preflight.sub once, wait for it, print a one-line verdict."""
    from loanpipe.pool.preflight import run_preflight

    return run_preflight(run_.paths(), run_.dir, run_.name, config.PROJECT_DIR, timeout)


def cmd_preflight(args: argparse.Namespace) -> int:
    if shutil.which("condor_submit") is None:
        return no_condor("condor_submit")
    return preflight(Run(args.dag), args.timeout)


def cmd_inputs(args: argparse.Namespace) -> int:
    """make submit's first step, before anything is rendered."""
    check_inputs(Run(args.dag).dir, args.base_dir)
    return 0


def cmd_require(args: argparse.Namespace) -> int:
    return 0 if shutil.which(args.tool) else no_condor(args.tool)


def cmd_ready(args: argparse.Namespace) -> int:
    """make submit's and make preflight's first step: not root, TOOL on PATH, a pool answers."""
    checks.submit_side(args.tool)
    return 0


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m loanpipe.pool", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--dag",
        type=Path,
        default=config.Layout(config.DEFAULT_BASE_DIR).dag_file(),
        help="the rendered DAG; DAGMan runs in its directory (default: %(default)s)",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    require = sub.add_parser("require", help="exit 3 with one line unless TOOL is on PATH")
    require.add_argument("tool")
    ready = sub.add_parser("ready", help="not root, TOOL on PATH, a schedd answers (one line)")
    ready.add_argument("tool")
    inputs = sub.add_parser("inputs", help="refuse a DAG under /tmp or a missing loan_data.csv")
    inputs.add_argument("--base-dir", type=Path, required=True, help="the base directory")
    submit = sub.add_parser("submit", help="condor_submit_dag the DAG (resumes a rescue DAG)")
    submit.add_argument("--fresh", action="store_true", help="rerun every node (-f)")
    submit.add_argument("--batch-name", default="loans", help="JobBatchName (default: loans)")
    submit.add_argument("--preflight", action="store_true", help="run the preflight job first")
    submit.add_argument("--timeout", type=float, default=300.0, help="preflight wait, seconds")
    submit.add_argument(
        "--claims", type=int, help="claim jobs queued ahead (default: the widest level; 0: none)"
    )
    watch = sub.add_parser("watch", help="follow the DAG until DAGMan exits")
    watch.add_argument("--interval", type=float, default=1.0, help="seconds between looks")
    watch.add_argument(
        "--no-watch-q", action="store_true", help="progress lines instead of condor_watch_q"
    )
    status = sub.add_parser("status", help="node table, holds, condor_q -dag, idle jobs")
    status.add_argument("--analyze", type=int, default=3, help="idle jobs to better-analyze")
    pre = sub.add_parser("preflight", help="one tiny job that checks an execute node")
    pre.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for it")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    handler = {
        "require": cmd_require,
        "ready": cmd_ready,
        "inputs": cmd_inputs,
        "submit": cmd_submit,
        "watch": cmd_watch,
        "status": cmd_status,
        "preflight": cmd_preflight,
    }[args.command]
    try:
        return handler(args)
    except (PoolError, checks.CheckError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.code
    except OSError as exc:  # the schedd cannot be asked, a file cannot be read
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
