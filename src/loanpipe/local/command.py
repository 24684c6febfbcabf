"""The local runner's command line: ``make local``, ``python -m loanpipe.local``.

    python -m loanpipe.local [--dag BASE_DIR/dags/dagfile.dag] [-j N] [--fresh] [--exec]

Takes the locks, decides where the run starts (fresh, from the newest rescue DAG, or recovering
a runner that died), runs the DAG (loanpipe.local.runner), then decides the outcome as
condor_dagman does and writes the rescue DAG, the metrics file and the closing summary.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from loanpipe import config, hints, sample
from loanpipe.dagman import Dag, DagError, apply_rescue, parse_dag, rescue_files
from loanpipe.dagman import metrics as dag_metrics
from loanpipe.dagman.status import DagStatus
from loanpipe.errors import EXIT_USAGE
from loanpipe.local.jobspec import RunnerError, close_expander
from loanpipe.local.knobs import check_config
from loanpipe.local.lock import PidLock
from loanpipe.local.records import (
    kill_orphan,
    print_deployment,
    print_failures,
    print_table,
    recover,
    write_metrics,
    write_rescue,
)
from loanpipe.local.runner import Runner

DEFAULT_DAG = config.Layout(config.DEFAULT_BASE_DIR).dag_file()  # rendered by make paths
MAX_RESCUE_NUM = 100  # DAGMAN_MAX_RESCUE_NUM default


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        prog="python -m loanpipe.local",
        description="Run the HTCondor DAG on this machine with DAGMan's semantics.",
    )
    ap.add_argument("--dag", type=Path, default=DEFAULT_DAG, help="DAG file (default %(default)s)")
    ap.add_argument(
        "-j",
        "--jobs",
        type=int,
        default=os.cpu_count() or 1,
        help="node jobs run at once (default: number of CPUs, %(default)s)",
    )
    ap.add_argument(
        "--fresh",
        action="store_true",
        help="ignore and remove rescue files and rerun every node (like condor_submit_dag -f)",
    )
    ap.add_argument(
        "--forget",
        metavar="NODES",
        help="first make these nodes (comma-separated, or 'all') and their descendants run even "
        "if unchanged (FORCE=..., FRESH=1: python -m loanpipe.fingerprint force, in this process)",
    )
    ap.add_argument(
        "--exec",
        action="store_true",
        help="exec every job; by default `python script.py` jobs fork from a warm interpreter",
    )
    args = ap.parse_args(argv)
    if args.jobs < 1:
        ap.error("-j must be at least 1")
    return args


class QuietStream:
    """stdout that goes silent once its reader is gone (``make local | head``) instead of
    raising BrokenPipeError in the middle of a run, which must still kill its jobs, write the
    rescue file and release its locks."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self.broken = False

    def write(self, text: str) -> int:
        if not self.broken:
            try:
                return self.stream.write(text)
            except OSError:
                self.broken = True
                with contextlib.suppress(OSError):  # nothing more reaches the closed pipe
                    os.dup2(os.open(os.devnull, os.O_WRONLY), self.stream.fileno())
        return len(text)

    def isatty(self) -> bool:
        return not self.broken and self.stream.isatty()

    def flush(self) -> None:
        if not self.broken:
            try:
                self.stream.flush()
            except OSError:
                self.broken = True


@dataclass
class Start:
    """Where a run starts: the rescue files found, the one resumed from (or a recovery)."""

    rescues: list[tuple[int, Path]]
    rescue_num: int = 0
    resumed_from: Path | None = None


def take_locks(dag: Dag, dag_path: Path, locks: list[PidLock]) -> tuple[bool, list[Path]]:
    """Lock every base directory the DAG names (one run per base directory, whatever runs it:
    refused before anything else is touched), then the DAG file; (an earlier runner died, the
    base directories)."""
    base_dirs = sorted(
        {Path(n.vars["BASE_DIR"]) for n in dag.nodes.values() if "BASE_DIR" in n.vars}
    )
    for base in base_dirs:
        if not base.is_dir():
            raise RunnerError(f"BASE_DIR {base} does not exist")
        lock = PidLock(config.Layout(base).pipeline_lock, f"BASE_DIR {base}", dag_path)
        locks.append(lock)
        base_note = lock.acquire()
        if base_note:
            print(f"note: {base_note}")
    dag_lock = PidLock(Path(f"{dag_path}.lock"), f"DAG {dag_path}")
    locks.append(dag_lock)
    note = dag_lock.acquire()
    if note:
        print(f"note: {note}")
    return note is not None, base_dirs


def drop_rescues(rescues: list[tuple[int, Path]]) -> None:
    for _, path in rescues:
        path.unlink()


def choose_start(dag: Dag, dag_path: Path, fresh: bool) -> Start:
    """Fresh, or resumed from the newest rescue DAG, as condor_submit_dag decides it."""
    rescues = rescue_files(dag_path)
    if fresh:
        drop_rescues(rescues)
        if rescues:
            print(f"--fresh: removed {len(rescues)} rescue file(s); every node runs again")
        return Start([])
    if rescues and dag_metrics.finished_after(dag_metrics.path_of(dag_path), rescues[-1][1]):
        # As make submit does (loanpipe.pool): the run that resumed from it succeeded, so there
        # is nothing left to resume; resuming again would skip the nodes it marks DONE.
        drop_rescues(rescues)
        print(
            f"the DAG succeeded after {rescues[-1][1].name} was written: nothing to resume, "
            f"every node runs again (removed {len(rescues)} rescue file(s))"
        )
        return Start([])
    if not rescues:
        return Start([])
    number, path = rescues[-1]
    try:
        done = apply_rescue(dag, path)
    except DagError as exc:
        raise RunnerError(f"{exc} (use --fresh to ignore rescue files)") from None
    print(
        f"resuming from {path.name}: {len(done)} of {len(dag.nodes)} nodes already "
        f"DONE ({', '.join(done) or 'none'}); use --fresh (FRESH=1) to rerun everything"
    )
    return Start(rescues, number, path)


def recover_dead_run(dag: Dag, runner: Runner, start: Start) -> None:
    """Mark DONE what a runner that died without a rescue file had finished (DAGMan's
    recovery mode) and kill the jobs it left behind."""
    recovered = recover(runner.jsonl)
    if recovered is None:
        return
    done_before, orphans = recovered
    killed = [pid for pid, argv in orphans if kill_orphan(pid, argv)]
    for name in done_before:
        if name in dag.nodes:
            dag.nodes[name].done = True
    start.resumed_from = Path(f"{runner.jsonl.name} (recovery)")
    print(
        f"recovering: the previous run died without a rescue file; {len(done_before)} of "
        f"{len(dag.nodes)} nodes had finished ({', '.join(done_before) or 'none'})"
        + (f"; killed its leftover job(s) {killed}" if killed else "")
        + "; use --fresh (FRESH=1) to rerun everything"
    )


def outcome(runner: Runner) -> tuple[DagStatus, int, bool]:
    """(DagStatus, exit code, write a rescue DAG), as condor_dagman decides them.

    A FINAL node that ran decides the exit code (0 when it succeeded, else 1:
    ``Dag::DoneSuccess``/``DoneFailed``); DagStatus stays what the other nodes made it, and
    the rescue DAG the run would have written without it is still written (DAGMan writes it
    before starting the FINAL node), and also when the FINAL node failed."""
    status, exitcode, rescue = outcome_of_nodes(runner)
    final = runner.final
    if final is None or not runner.final_started:
        return status, exitcode, rescue
    name = final.node.name
    if runner.fatal is not None and runner.final_interrupted == 0:
        return DagStatus.ERROR, 1, True
    if runner.final_interrupted is not None:
        sig = runner.final_interrupted
        print(f"interrupted by {signal.Signals(sig).name}: FINAL node {name} killed")
        return DagStatus.REMOVED, 128 + sig, True
    if final.status == "done":
        print(f"FINAL node {name} succeeded: the DAG's exit code is 0, as under DAGMan")
        return runner.dag_status, 0, rescue
    print(f"FINAL node {name} failed: the DAG fails")
    return runner.dag_status, 1, True


def outcome_of_nodes(runner: Runner) -> tuple[DagStatus, int, bool]:
    """The outcome of the nodes other than the FINAL node."""
    if runner.fatal is not None:
        print(f"\nDAG stopped: {runner.fatal}")
        return DagStatus.ERROR, 1, True
    if runner.interrupted is not None:
        print(f"\ninterrupted by {signal.Signals(runner.interrupted).name}: nodes killed")
        return DagStatus.REMOVED, 128 + runner.interrupted, True
    if runner.aborted is not None:
        node, retval, ret = runner.aborted
        print(f"\nDAG aborted by ABORT-DAG-ON: node {node} returned {retval}")
        # DAGMan exits with the RETURN value, else the node's; a rescue DAG unless that is 0.
        code = (retval if ret is None else ret) % 256
        return (DagStatus.ABORTED if ret != 0 else DagStatus.OK), code, code != 0
    if any(s.status == "failed" for s in runner.states.values() if not s.node.final):
        return DagStatus.NODE_FAILED, 1, True
    if all(s.status == "done" for s in runner.states.values() if not s.node.final):
        return DagStatus.OK, 0, False
    return DagStatus.ERROR, 1, True


def run(
    args: argparse.Namespace,
    dag: Dag,
    dag_path: Path,
    runner: Runner,
    locks: list[PidLock],
    handlers: dict[int, Any],
) -> int:
    """The run between taking the locks and releasing them (and the signal handlers)."""
    start_time = time.time()
    previous_died, base_dirs = take_locks(dag, dag_path, locks)
    runner.warm_from_last_run()
    if args.forget:
        from loanpipe.fingerprint import plan

        try:
            plan.force(dag_path, args.forget)
        except plan.PlanError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_USAGE
    sample_note = sample.describe(base_dirs[0]) if len(base_dirs) == 1 else None
    start = choose_start(dag, dag_path, args.fresh)
    if previous_died and not args.fresh:
        recover_dead_run(dag, runner, start)
    runner.record(
        {
            "event": "run_start",
            "time": start_time,
            "premarked_done": sorted(n for n, node in dag.nodes.items() if node.done),
            "base_dir": str(base_dirs[0]) if len(base_dirs) == 1 else None,
            "resumed_from": str(start.resumed_from) if start.resumed_from else None,
            "dag": str(dag_path),
            "pid": os.getpid(),
            "jobs": runner.jobs,
            "fresh": bool(args.fresh),
            "sample_data": sample_note,
        }
    )

    def on_signal(signum: int, _frame: Any) -> None:
        runner.interrupt(signum)

    for sig in (signal.SIGINT, signal.SIGTERM):
        handlers[sig] = signal.signal(sig, on_signal)
    runner.prepare()
    print(
        f"running {dag_path.name}: {len(dag.nodes)} nodes, up to {runner.jobs} at once"
        + (f", MAXJOBS {dict(dag.maxjobs)}" if dag.maxjobs else "")
    )
    runner.run()
    runner.clear_status()
    status, exitcode, rescue = outcome(runner)
    finish(dag, runner, start, start_time, status, exitcode, rescue)
    print_deployment(base_dirs, start_time, sys.stdout)
    if sample_note:
        print(f"\nnote: this run used {sample_note}, not real applications")
    verdict = "succeeded" if exitcode == 0 else f"FAILED (DagStatus {int(status)})"
    elapsed = time.time() - start_time
    print(f"\nDAG {verdict} in {elapsed:.1f}s; records in {runner.jsonl.parent}/")
    if base_dirs:
        print(f"next: `{hints.make_command('report', base_dirs[0], dag_path)}`")
    return exitcode


def finish(
    dag: Dag,
    runner: Runner,
    start: Start,
    start_time: float,
    status: DagStatus,
    exitcode: int,
    rescue: bool,
) -> None:
    """The closing tables, the rescue DAG, the metrics file and the run_end record."""
    print_table(runner, sys.stdout)
    print_failures(runner, sys.stdout)
    if rescue:
        number = min((start.rescues[-1][0] if start.rescues else 0) + 1, MAX_RESCUE_NUM)
        path = write_rescue(dag, runner, number)
        print(f"\nwrote {path.name}: the next run resumes from it (FRESH=1 / --fresh reruns all)")
    write_metrics(dag, runner, start_time, exitcode, status, start.rescue_num)
    runner.record(
        {
            "event": "run_end",
            "time": time.time(),
            "DagStatus": int(status),
            "exitcode": exitcode,
            "nodes": {n: (s.final or s.status) for n, s in runner.states.items()},
        }
    )


def load(dag_path: Path) -> Dag | None:
    """The rendered DAG, or None after one error line."""
    try:
        dag = parse_dag(dag_path)
        check_config(dag)
    except DagError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return None
    if dag_path.parent == config.DAG_DIR:
        print(
            f"error: {dag_path} is the DAG's source; run the DAG `make paths` renders for a base "
            "directory (BASE_DIR/dags/dagfile.dag)",
            file=sys.stderr,
        )
        return None
    return dag


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sys.stdout = QuietStream(sys.stdout)  # type: ignore[assignment]
    os.environ.setdefault("CONDOR_CONFIG", "/dev/null")  # the bindings warn without a config
    dag_path = args.dag.absolute()
    dag = load(dag_path)
    if dag is None:
        return 2
    locks: list[PidLock] = []
    handlers: dict[int, Any] = {}
    runner = Runner(dag, args.jobs, sys.stdout, fork=not args.exec)
    try:
        return run(args, dag, dag_path, runner, locks, handlers)
    except RunnerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        try:
            runner.kill_all()
        finally:
            runner.launcher.close()
            close_expander()
            for sig, old in handlers.items():
                signal.signal(sig, old)
            for lock in reversed(locks):
                lock.release()


if __name__ == "__main__":
    sys.exit(main())
