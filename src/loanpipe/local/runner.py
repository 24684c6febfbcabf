"""The local runner's scheduler: a parsed DAG run on this machine with DAGMan's semantics.

The command line (locks, rescue DAGs, the outcome) is ``loanpipe.local.command``. Every node
attempt is expanded from its own submit file by the official HTCondor bindings
(``loanpipe.local.jobspec``) with DAGMan's macros and the node's VARS defined first, so there
is no second description of a stage; relative paths resolve against the DAG file's directory.

DAGMan semantics: ready nodes run in parallel up to ``-j`` and each CATEGORY's MAXJOBS; a failed
node's descendants are futile while independent branches go on; RETRY reruns the whole node
(PRE script included) unless the exit code is the UNLESS-EXIT one; a POST script's exit code
replaces the job's; NOOP nodes run their scripts; PRE_SKIP; ABORT-DAG-ON (0 included); a job
HTCondor would hold or refuse; the FINAL node, last, whatever happened.
``tests/test_dagman_parity.py`` holds each against condor_dagman.
"""

from __future__ import annotations

import contextlib
import os
import resource
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any

from loanpipe.dagman import Dag
from loanpipe.dagman.status import DagStatus
from loanpipe.local import scripts
from loanpipe.local.cluster import Cluster  # DAGMan's rules for a node with many jobs
from loanpipe.local.jobspec import (  # a node's job: its submit file expanded, then started
    JobHeld,
    RunnerError,
    check_job_files,
    expand_in_helper,
    job_env,
    popen_job,
)
from loanpipe.local.launcher import Launcher  # warm interpreter that forks script jobs
from loanpipe.local.nodes import NodeState, Proc
from loanpipe.local.output import RunOutput
from loanpipe.local.scripts import ScriptError

KILL_GRACE_S = 5.0
DAG_ERROR_SUBMIT_FAILED = -1001  # a job's return value when condor_submit fails (dag.h)
DAG_ERROR_JOB_ABORTED = -1002  # ... when it was removed (after a hold)
POLL_S = 0.05


class Runner(RunOutput):
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

    # -- scheduling

    def running_jobs(self) -> int:
        return sum(1 for p in self.procs.values() if p.kind == "JOB")

    def can_start_job(self, st: NodeState) -> bool:
        if self.running_jobs() >= self.jobs:
            return False
        cat = st.node.category
        if cat is not None and cat in self.dag.maxjobs:
            limit = self.dag.maxjobs[cat]
            if limit > 0 and self.running_by_cat.get(cat, 0) >= limit:
                return False
        return True

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

    def set_status(self, status: DagStatus, force: bool = False) -> None:
        """``Dag::SetStatus``: the first failure sticks unless an abort or removal forces it."""
        if force or self.dag_status == DagStatus.OK:
            self.dag_status = status

    def failed_count(self) -> int:
        return sum(1 for s in self.states.values() if s.status == "failed")

    def run_values(self, st: NodeState) -> dict[str, str]:
        """What DAGMan gives node ``st``'s job now, as submit macros (dagman_submit.cpp), and
        the ClusterId a schedd would: a new one per submission."""
        self.clusters += 1
        st.cluster_id = self.clusters
        return self.submit_values(st, self.clusters)

    def submit_values(self, st: NodeState, cluster_id: int) -> dict[str, str]:
        values = {
            "DAG_STATUS": str(int(self.dag_status)),
            "FAILED_COUNT": str(self.failed_count()),
            "ClusterId": str(cluster_id),
            "Cluster": str(cluster_id),
        }
        if st.node.parents:  # node ids are in JOB line order (Node::PrintParents)
            parents = [name for name in self.dag.nodes if name in st.node.parents]
            values["DAG_PARENT_NAMES"] = ",".join(parents)
        return values

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
        """Start the warm interpreter the first job will fork from now, so that its imports
        overlap the PRE scripts and the first stages. (Its submit file is expanded with what
        its first submission will get; a job whose environment turns out different starts its
        own server then.)"""
        first = next((s for s in self.states.values() if s.status in ("ready", "pre")), None)
        if first is None or first.node.noop or not self.launcher.enabled:
            return
        try:
            specs = expand_in_helper(
                first.node, first.retry, self.submit_values(first, self.clusters + 1)
            )
        except RunnerError:
            return  # the node's own submission says why
        self.launcher.warm(specs[0].argv, job_env(specs[0]))

    def drive(self) -> None:
        """Start what is ready and reap what ends until nothing runs or the run must stop."""
        order = list(self.dag.nodes)
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
            if not self.warmed:  # once the first PRE scripts run
                self.warmed = True
                self.warm_up()
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

    # -- node lifecycle

    def start_node(self, st: NodeState) -> None:
        st.attempts += 1
        st.attempt_start = time.time()
        st.retval = st.pre_exit = st.job_exit = st.job_signal = st.job_return = None
        st.job_start = st.job_end = st.peak_rss_mib = None
        st.error = None
        st.spec = None
        st.cluster = None
        st.cluster_id = None
        st.jobs_aborted = 0
        if st.node.pre is not None:
            st.status = "pre"
            self.start_script(st, "pre")
        else:
            st.status = "queued"
            if self.can_start_job(st):
                self.start_job(st)

    def start_script(self, st: NodeState, kind: str) -> None:
        try:
            argv = scripts.command(st, kind, self)
        except ScriptError as exc:
            # DAGMan stops the whole DAG (DagStatus 1, a rescue DAG); the script never runs.
            self.say(st.node.name, f"DAG stops: {exc}")
            self.fatal = str(exc)
            if self.final_started:
                self.final_interrupted = 0  # nothing more runs, the FINAL node included
            return
        exe = argv[0]
        if not os.path.isabs(exe):
            exe = str((st.node.node_dir or self.dag.cwd) / exe)
        st.status = kind
        self.say(st.node.name, f"{kind.upper()} script running")
        cwd = st.node.node_dir or Path.cwd()
        # A `python script.py` script forks from a warm interpreter of its own (DAGMan's
        # environment, no stdio), as jobs do; anything else is exec'd.
        devnull = Path(os.devnull)
        launched = None
        if len(argv) > 1 and os.path.isabs(argv[1]):  # the script the interpreter would open
            launched = self.launcher.spawn(
                [exe, *argv[1:]], dict(os.environ), cwd, devnull, devnull, devnull, kind="scripts"
            )
        if launched is not None:
            self.procs[launched.pid] = Proc(launched.pid, kind.upper(), st)
            return
        try:
            p = subprocess.Popen(  # noqa: S603 - the DAG names the script on purpose
                [exe, *argv[1:]],
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        except OSError as exc:
            # DAGMan treats a script it cannot start as a failed script.
            st.error = f"cannot run {kind.upper()} script {exe}: {exc.strerror}"
            self.script_done(st, kind, 1)
            return
        self.procs[p.pid] = Proc(p.pid, kind.upper(), st, popen=p)

    def start_job(self, st: NodeState) -> None:
        """Expand the node's submit file and start its job(s), as many as free slots allow.

        A submit file that queues many jobs makes one cluster (loanpipe.local.cluster): each proc
        takes one of the ``-j`` slots, the rest start as slots free up.
        """
        name = st.node.name
        if st.node.noop:
            # DAGMan runs a NOOP node's PRE and POST scripts around a job that never runs and
            # succeeds ($RETURN 0).
            st.status = "job"
            st.job_exit = 0
            self.job_finished(st, retval=0)
            return
        try:
            specs = expand_in_helper(st.node, st.retry, self.run_values(st))
            for spec in specs:
                check_job_files(spec)
        except JobHeld as exc:
            self.job_held(st, str(exc))
            return
        except RunnerError as exc:
            self.submit_failed(st, str(exc))
            return
        st.spec = specs[0]
        st.cluster = Cluster(specs)
        st.status = "job"
        st.job_start = time.time()
        st.rss_floor_mib = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1)
        cat = st.node.category
        if cat is not None:
            self.running_by_cat[cat] = self.running_by_cat.get(cat, 0) + 1
        if len(specs) > 1:
            self.say(name, f"{len(specs)} jobs queued (attempt {st.attempts})")
        self.start_procs(st)

    def job_held(self, st: NodeState, why: str) -> None:
        """A job HTCondor would hold before it runs. The project's DAGs say
        DAGMAN_MAX_JOB_HOLDS = 1 (dag/dagman.config): DAGMan removes it at its first hold, and
        the node's job part ends with $RETURN -1002 (DAG_ERROR_CONDOR_JOB_ABORTED): the POST
        script runs, or the node fails (RETRY applies). (With DAGMan's default, 100, the DAG
        would wait for a condor_release that nobody can give to a local job.)"""
        st.error = why
        st.jobs_aborted = 1
        st.status = "job"
        self.say(st.node.name, f"cannot start, removed as a held job: {why}")
        self.job_finished(st, retval=DAG_ERROR_JOB_ABORTED)

    def submit_failed(self, st: NodeState, why: str) -> None:
        """condor_submit would refuse the job: DAGMan gives up on the node's retries and runs
        its POST script with $RETURN -1001 (DAG_ERROR_CONDOR_SUBMIT_FAILED), or fails it
        (``Dag::ProcessFailedSubmit``; it first tries DAGMAN_MAX_SUBMIT_ATTEMPTS times, to no
        avail for a file that cannot change)."""
        st.error = why
        st.retry = st.node.retry  # retries are short-circuited
        self.say(st.node.name, f"cannot submit: {why}")
        if st.node.post is not None:
            st.status = "job"
            self.job_finished(st, retval=DAG_ERROR_SUBMIT_FAILED)
        else:
            self.attempt_failed(st, DAG_ERROR_SUBMIT_FAILED, abort_check=False)

    def start_procs(self, st: NodeState) -> None:
        """Start waiting procs of the node's cluster while there are free slots."""
        cluster = st.cluster
        assert cluster is not None
        while (proc := cluster.next_proc()) is not None and self.running_jobs() < self.jobs:
            if not self.spawn(st, proc):
                return

    def spawn(self, st: NodeState, proc: int) -> bool:
        """Start one proc; False when the attempt can start no more of them."""
        name = st.node.name
        cluster = st.cluster
        assert cluster is not None
        spec = cluster.specs[proc]
        env = job_env(spec)
        files: list[IO[Any]] = []
        # `python script.py` jobs fork from a warm interpreter (local.launcher); others exec.
        launched = self.launcher.spawn(
            spec.argv, env, spec.iwd, spec.stdin, spec.stdout, spec.stderr
        )
        try:
            p = None if launched else popen_job(spec, env, files)
        except OSError as exc:
            for fh in files:
                fh.close()
            st.error = f"cannot start job {spec.argv[0]}: {exc.strerror or exc}"
            self.say(name, f"cannot start: {st.error}")
            if proc == 0:  # nothing of the cluster runs: as a job HTCondor would hold
                cat = st.node.category
                if cat is not None:
                    self.running_by_cat[cat] -= 1
                self.job_held(st, st.error)
            else:  # a later proc: it fails like a job that could not run
                cluster.start(proc)
                self.proc_ended(st, proc, 1, None)
            return False
        if launched and proc == 0:
            st.rss_floor_mib = launched.floor_mib  # the warm server's, not the runner's
        pid = launched.pid if launched else p.pid  # type: ignore[union-attr]
        cluster.start(proc)
        self.jobs_submitted += 1
        self.procs[pid] = Proc(pid, "JOB", st, files, proc=proc, popen=p)
        # Lets a later run recover if this runner dies without a rescue file (see recover());
        # a forked job's /proc cmdline is its warm interpreter's.
        self.record(
            {"event": "job_start", "node": name, "attempt": st.attempts, "proc": proc,
             "pid": pid, "time": time.time(),
             "cmd": launched.cmdline if launched else spec.argv}
        )  # fmt: skip
        if cluster.size == 1:
            self.say(name, f"running (attempt {st.attempts})")
        return True

    def reaped(self, proc: Proc, wstatus: int, ru: resource.struct_rusage) -> None:
        st = proc.state
        if os.WIFSIGNALED(wstatus):
            sig = os.WTERMSIG(wstatus)
            code = -sig
        else:
            sig = None
            code = os.WEXITSTATUS(wstatus)
        proc.reaped(code)
        if proc.kind == "JOB":
            peak = round(ru.ru_maxrss / 1024.0, 1)  # Linux reports KiB
            st.peak_rss_mib = max(peak, st.peak_rss_mib or 0.0)
            if code == 0:
                self.jobs_succeeded += 1
            else:
                self.jobs_failed += 1
            self.proc_ended(st, proc.proc, code, peak, proc.pid)
        else:
            self.script_done(st, proc.kind.lower(), code)

    def proc_ended(
        self, st: NodeState, proc: int, code: int, peak: float | None, pid: int | None = None
    ) -> None:
        """One proc of the node's cluster ended (exit code, or -signal): DAGMan's rules."""
        cluster = st.cluster
        assert cluster is not None
        first_failure = cluster.ended(proc, code)
        if cluster.size > 1:
            spec = cluster.specs[proc]
            self.record(
                {"event": "proc_end", "node": st.node.name, "attempt": st.attempts,
                 "proc": proc, "pid": pid, "exit_code": code if code >= 0 else None,
                 "signal": -code if code < 0 else None, "end": time.time(),
                 "peak_rss_mib": peak, "stdout": str(spec.stdout), "stderr": str(spec.stderr)}
            )  # fmt: skip
        if first_failure:
            st.spec = cluster.specs[proc]  # the failure report shows this proc's stderr
            if cluster.size > 1:
                how = f"signal {-code}" if code < 0 else f"exit {code}"
                self.say(
                    st.node.name,
                    f"job {proc} failed ({how}): removing the node's other "
                    f"{len(cluster.running)} running and "
                    f"{cluster.size - cluster.started} waiting jobs",
                )
                for other in self.procs.values():
                    if other.kind == "JOB" and other.state is st:
                        with contextlib.suppress(ProcessLookupError, PermissionError):
                            os.killpg(other.pid, signal.SIGTERM)
        if not cluster.all_done:
            return
        # Every proc has ended: the node's job part is over.
        st.job_end = time.time()
        retval = cluster.retval
        st.job_exit = retval if retval >= 0 else None
        st.job_signal = -retval if retval < 0 else None
        cat = st.node.category
        if cat is not None:
            self.running_by_cat[cat] -= 1
        if cluster.size > 1:
            self.say(st.node.name, cluster.summary())
        self.job_finished(st, retval=retval)

    def script_done(self, st: NodeState, kind: str, code: int) -> None:
        name = st.node.name
        script = st.node.pre if kind == "pre" else st.node.post
        assert script is not None
        if script.defer_status is not None and code == script.defer_status:
            st.status = "deferred"
            st.defer_kind = kind
            st.defer_until = time.time() + (script.defer_time or 0)
            self.say(name, f"{kind.upper()} script deferred for {script.defer_time}s")
            return
        if kind == "pre":
            st.pre_exit = code
            if st.node.pre_skip is not None and code == st.node.pre_skip:
                self.say(name, f"done (PRE_SKIP: PRE script exited {code})")
                st.retval = 0
                st.final = "pre_skipped"
                self.attempt_record(st, "pre_skipped")
                self.node_done(st)
                self.check_abort(st, 0)  # PRE_SKIP counts as success (ABORT-DAG-ON node 0)
                return
            if code != 0:
                self.say(name, f"PRE script failed (exit {code})")
                st.error = st.error or f"PRE script exited {code}"
                self.attempt_failed(st, code, abort_check=True)
                return
            st.status = "queued"
            self.check_abort(st, 0)  # DAGMan checks ABORT-DAG-ON after every PRE script
            return
        # POST: its exit code replaces the job's.
        if code != 0:
            st.error = st.error or f"POST script exited {code}"
        self.attempt_over(st, code, abort_check=True)

    def job_finished(self, st: NodeState, retval: int) -> None:
        name = st.node.name
        st.job_return = retval
        if st.node.post is not None:
            if st.job_signal is not None:
                self.say(name, f"job killed by signal {st.job_signal}")
            else:
                self.say(name, "job finished" if retval == 0 else f"job failed (exit {retval})")
            self.start_script(st, "post")
            return
        self.attempt_over(st, retval, abort_check=True)

    def attempt_over(self, st: NodeState, retval: int, abort_check: bool) -> None:
        if retval == 0:
            st.retval = 0
            st.final = "noop" if st.node.noop else "done"
            self.attempt_record(st, "done")
            self.node_done(st)
            if abort_check:
                self.check_abort(st, 0)  # ABORT-DAG-ON node 0 aborts on success
        else:
            self.attempt_failed(st, retval, abort_check)

    def attempt_failed(self, st: NodeState, retval: int, abort_check: bool) -> None:
        name = st.node.name
        st.retval = retval
        node = st.node
        if abort_check and node.abort_dag_on is not None and retval == node.abort_dag_on[0]:
            self.attempt_record(st, "failed", will_retry=False)
            st.status = st.final = "failed"
            self.say(name, f"failed (exit {retval})")
            self.set_status(DagStatus.NODE_FAILED)
            self.mark_futile(name)  # the node failed first (Dag::CheckForDagAbort comes after)
            self.check_abort(st, retval)
            return
        stop = node.unless_exit is not None and retval == node.unless_exit
        if st.retry < node.retry and not stop:
            self.attempt_record(st, "failed", will_retry=True)
            self.say(name, f"failed (exit {retval}), retrying ({st.retry + 1} of {node.retry})")
            st.retry += 1
            st.status = "ready"
            return
        self.attempt_record(st, "failed", will_retry=False)
        st.status = st.final = "failed"
        self.set_status(DagStatus.NODE_FAILED)
        why = f", UNLESS-EXIT {retval}: no more retries" if stop and st.retry < node.retry else ""
        self.say(name, f"failed (exit {retval}{why})")
        self.mark_futile(name)

    def mark_futile(self, name: str) -> None:
        """The descendants of a failed node never run (Node::SetDescendantsToFutile)."""
        for d in sorted(self.dag.descendants(name), key=list(self.dag.nodes).index):
            ds = self.states[d]
            if ds.status in ("waiting", "ready"):
                ds.status = ds.final = "futile"

    def check_abort(self, st: NodeState, retval: int) -> bool:
        """``Dag::CheckForDagAbort``, after a PRE script, a job without POST script, or a POST
        script: the node's return value is its ABORT-DAG-ON value (0 included)."""
        node = st.node
        if node.abort_dag_on is None or retval != node.abort_dag_on[0]:
            return False
        self.aborted = (node.name, retval, node.abort_dag_on[1])
        ok = node.abort_dag_on[1] == 0  # ABORT-DAG-ON ... RETURN 0
        self.set_status(DagStatus.OK if ok else DagStatus.ABORTED, force=True)
        self.say(node.name, f"returned {retval}: ABORT-DAG-ON {retval}, the DAG stops")
        return True

    def node_done(self, st: NodeState) -> None:
        st.status = "done"
        if st.final in (None, "done", "noop"):
            self.say(st.node.name, "done (NOOP)" if st.final == "noop" else "done")
        for child in st.node.children:
            cs = self.states[child]
            if cs.status == "waiting":
                cs.waiting_on -= 1
                if cs.waiting_on == 0:
                    cs.status = "ready"

    def any_failed(self) -> bool:
        return any(s.status == "failed" for s in self.states.values())

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
