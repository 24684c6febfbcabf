"""make watch (``python -m loanpipe.pool watch``): follow a submitted DAG until DAGMan exits.

Watch follows the DAGMan job's own event log (<dag>.dagman.log, htcondor2.JobEventLog) until the
job exits, showing condor_watch_q meanwhile where it runs (else one progress line per change),
then prints the DAG's result (loanpipe.pool.verdict): DagStatus from the metrics file of that
DAGMan, and for a failure each failed node with its one-line error
(BASE_DIR/error/<node>.<retry>.err) or hold reason, or DAGMan's own reason from
<dag>.dagman.out.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from loanpipe.dagman import state as ds
from loanpipe.errors import EXIT_FAILURE
from loanpipe.pool import progress
from loanpipe.pool.rundir import PoolError, Run
from loanpipe.pool.verdict import verdict

QUEUE_CHECK = 60.0  # watch: seconds between asking the schedd whether DAGMan is still queued
SILENT_CHECK = 10.0  # ... while it does not answer (and first)


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
