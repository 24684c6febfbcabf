"""The local runner's scheduler: a parsed DAG run on this machine with DAGMan's semantics.

The command line (locks, rescue DAGs, the outcome) is ``loanpipe.local.command``; what one node
attempt does, and what DAGMan makes of its end, is ``loanpipe.local.attempts``. Here: ready
nodes run in parallel up to ``-j``; ends are reaped as they come; a signal, an ABORT-DAG-ON or a
fatal error stops the run (every process group killed); the FINAL node, last, whatever happened.
``tests/test_dagman_parity.py`` holds each against condor_dagman.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import select
import signal
import sys
import time
from pathlib import Path
from typing import IO

from loanpipe.dagman import Dag
from loanpipe.dagman.status import DagStatus
from loanpipe.local import scripts
from loanpipe.local.attempts import NodeAttempts  # a node attempt: scripts and jobs started, reaped
from loanpipe.local.jobspec import RunnerError, expand_in_helper, job_env
from loanpipe.local.launcher import Launcher, script_job  # warm interpreter: forks script jobs
from loanpipe.local.nodes import NodeState, Proc
from loanpipe.local.scripts import ScriptError
from loanpipe.stages import common

KILL_GRACE_S = 5.0
POLL_S = 0.05


class Runner(NodeAttempts):
    def __init__(self, dag: Dag, jobs: int, out: IO[str] = sys.stdout, fork: bool = True) -> None:
        self.dag = dag
        self.launcher = Launcher(enabled=fork)
        self.jobs = max(1, jobs)
        self.out = out
        self.live = hasattr(out, "isatty") and out.isatty() and os.environ.get("TERM") != "dumb"
        self.status_shown = 0.0
        self.t0 = time.time()
        self.states = {name: NodeState(node) for name, node in dag.nodes.items()}
        self.procs: dict[int, Proc] = {}
        self.interrupted: int | None = None
        self.aborted: tuple[str, int, int | None] | None = None  # node, retval, RETURN
        # DAGMan's DagStatus while the DAG runs: the first failure's, or forced by an abort or
        # a removal (Dag::SetStatus); jobs and scripts see it as DAG_STATUS.
        self.dag_status = DagStatus.OK
        final = dag.final_node
        self.final = self.states[final.name] if final is not None else None
        self.final_started = False
        self.final_interrupted: int | None = None  # a signal while the FINAL node ran
        self.fatal: str | None = None  # what stopped the DAG as a fatal DAGMan error would
        self.clusters = 0  # ClusterIds given so far
        self.jsonl = Path(f"{dag.path}.local.jsonl")
        self.width = max((len(n) for n in dag.nodes), default=4)
        self.jobs_submitted = self.jobs_succeeded = self.jobs_failed = 0
        self.running_by_cat: dict[str, int] = {}
        self.warmed = False  # the first job's warm interpreter started (warm_up)
        # The interpreter and environment of the last run's first job (warm_from_last_run)
        self.warm_path = Path(f"{dag.path}.local.warm.json")
        self.guessed: tuple[str, dict[str, str]] | None = None

    # -- scheduling

    def prepare(self) -> None:
        for st in self.states.values():
            if st.node.done:
                st.status = st.final = "done"
                st.premarked = True
        for st in self.states.values():
            if st.status == "waiting" and not st.node.final:
                st.waiting_on = sum(1 for p in st.node.parents if self.states[p].status != "done")
                if st.waiting_on == 0:
                    st.status = "ready"

    def interrupt(self, signum: int) -> None:
        """SIGINT/SIGTERM, as condor_rm of the DAGMan job: the nodes are killed and the FINAL
        node runs; a signal while the FINAL node runs kills it too."""
        if self.final_started:
            self.final_interrupted = signum
        else:
            self.interrupted = signum

    def stopping(self) -> bool:
        if self.final_started:
            return self.final_interrupted is not None
        return self.interrupted is not None or self.aborted is not None or self.fatal is not None

    def run(self) -> None:
        """Drive the DAG until no more progress is possible, then run its FINAL node, if it has
        one, whatever happened (main_shutdown_rescue and Dag::StartFinalNode in DAGMan)."""
        self.drive()
        if self.interrupted is not None:
            self.set_status(DagStatus.REMOVED, force=True)
        elif self.fatal is not None:
            self.set_status(DagStatus.ERROR, force=True)
        if self.stopping():
            self.kill_all()
        final = self.final
        if final is None or final.status != "waiting":
            return
        self.final_started = True
        self.say(
            final.node.name,
            f"FINAL node starts (DAG_STATUS {int(self.dag_status)}, "
            f"FAILED_COUNT {self.failed_count()})",
        )
        final.status = "ready"
        self.drive()
        if self.stopping():
            self.kill_all()

    def warm_up(self) -> None:
        """Start the warm interpreters before the first PRE script runs: the scripts' server
        (it imports while the first job's submit file is expanded), then the first job's, whose
        imports (pandas, scikit-learn: seconds) are what the stages wait for, so that they begin
        at once. (The job's submit file is expanded with what its first submission will get; a
        job whose environment turns out different starts its own server then.)"""
        first = next((s for s in self.states.values() if s.status in ("ready", "pre")), None)
        if first is None or not self.launcher.enabled:
            return
        if first.node.pre is not None:
            with contextlib.suppress(ScriptError):  # the node's own start says why
                argv = scripts.command(first, "pre", self)
                self.launcher.warm(argv, dict(os.environ), kind="scripts")
        if first.node.noop:
            return
        try:
            specs = expand_in_helper(
                first.node, first.retry, self.submit_values(first, self.clusters + 1)
            )
        except RunnerError:
            return  # the node's own submission says why
        python, env = specs[0].argv[0], job_env(specs[0])
        if self.guessed not in (None, (python, env)):
            self.launcher.discard(*self.guessed)  # the submit files changed: its imports are waste
        self.launcher.warm(specs[0].argv, env)
        if self.guessed != (python, env) and script_job(specs[0].argv):
            with contextlib.suppress(OSError):  # a hint for the next run, nothing more
                common.write_json({"python": python, "env": env}, self.warm_path, durable=False)

    def warm_from_last_run(self) -> None:
        """Start the job server the last run's first job had (its interpreter and environment,
        kept beside the DAG) as soon as the locks are taken: before FORGET and the first
        submit file's expansion (a helper that imports the htcondor bindings), a few tenths of a
        second the server's own imports (seconds: scikit-learn) need not wait for. warm_up then
        finds it running, or stops it when the expanded job differs."""
        try:
            data = json.loads(self.warm_path.read_text(encoding="utf-8"))
            python, env = data["python"], data["env"]
        except (OSError, ValueError, TypeError, KeyError):
            return  # no run yet (or an unreadable hint): warm_up starts it after the expansion
        if not (isinstance(python, str) and isinstance(env, dict) and os.access(python, os.X_OK)):
            return
        if self.launcher.enabled and all(isinstance(v, str) for v in env.values()):
            self.guessed = (python, env)
            self.launcher.server(python, env)

    def drive(self) -> None:
        """Start what is ready and reap what ends until nothing runs or the run must stop."""
        order = list(self.dag.nodes)
        if not self.warmed:
            self.warmed = True
            self.warm_up()
        while True:
            if self.stopping():
                break
            now = time.time()
            for name in order:
                if self.stopping():
                    break
                st = self.states[name]
                if st.status == "deferred" and now >= st.defer_until:
                    st.status = st.defer_kind
                    self.start_script(st, st.defer_kind)
                elif st.status == "ready":
                    self.start_node(st)
                elif st.status == "queued" and self.can_start_job(st):
                    self.start_job(st)
                elif st.status == "job" and st.cluster and st.cluster.next_proc() is not None:
                    self.start_procs(st)
            if self.stopping():
                break
            if not self.procs and not any(
                s.status in ("ready", "deferred", "queued") for s in self.states.values()
            ):
                break
            try:
                pid, wstatus, ru = os.wait4(-1, os.WNOHANG)
            except ChildProcessError:
                pid = 0
            if pid == 0:
                self.show_status()
                self.wait_for_exit(POLL_S)
                continue
            proc = self.procs.pop(pid, None)
            if proc is None:
                continue
            self.reaped(proc, wstatus, ru)

    def wait_for_exit(self, timeout: float) -> None:
        """Sleep until a process of ours ends (its pidfd turns readable) or ``timeout`` passes."""
        fds = [p.pidfd for p in self.procs.values() if p.pidfd is not None]
        if not fds or len(fds) < len(self.procs):
            time.sleep(timeout if not fds else min(timeout, 0.01))
            return
        with contextlib.suppress(OSError, ValueError):
            select.select(fds, [], [], timeout)

    # -- stopping

    def kill_all(self) -> None:
        """Kill every running process group (TERM, then KILL after a grace period)."""
        if not self.procs:
            return
        for proc in self.procs.values():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.time() + KILL_GRACE_S
        while self.procs and time.time() < deadline:
            try:
                pid, wstatus, ru = os.wait4(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                time.sleep(POLL_S)
                continue
            self._killed(pid, wstatus, ru)
        for proc in list(self.procs.values()):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                _, wstatus, ru = os.wait4(proc.pid, 0)
                self._killed(proc.pid, wstatus, ru)

    def _killed(self, pid: int, wstatus: int, ru: resource.struct_rusage) -> None:
        proc = self.procs.pop(pid, None)
        if proc is None:
            return
        proc.reaped(-os.WTERMSIG(wstatus) if os.WIFSIGNALED(wstatus) else os.WEXITSTATUS(wstatus))
        st = proc.state
        why = "interrupted" if self.interrupted is not None else "aborted"
        if proc.kind == "JOB":
            st.job_end = time.time()
            st.peak_rss_mib = max(round(ru.ru_maxrss / 1024.0, 1), st.peak_rss_mib or 0.0)
            st.job_signal = os.WTERMSIG(wstatus) if os.WIFSIGNALED(wstatus) else None
            st.job_exit = os.WEXITSTATUS(wstatus) if os.WIFEXITED(wstatus) else None
            if st.cluster is not None:
                st.cluster.running.discard(proc.proc)
                if st.cluster.running:
                    return  # one record for the node, when its last running job is gone
        st.retval = None
        st.error = f"killed: DAG {why}"
        self.attempt_record(st, why)
        st.status = st.final = why
        self.say(st.node.name, f"killed ({why})")
