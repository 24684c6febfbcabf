"""A node attempt's processes, for the local runner: its PRE script, its job(s) and its POST
script started, and reaped when they end (a mixin of ``loanpipe.local.runner.Runner``, which
decides when; what an exit code means is ``loanpipe.local.exits``).

Every job is expanded from the node's own submit file by the official HTCondor bindings
(``loanpipe.local.jobspec``) with DAGMan's macros and the node's VARS defined first, so there is
no second description of a stage; relative paths resolve against the DAG file's directory. A
``python script.py`` job or script forks from a warm interpreter (``loanpipe.local.launcher``).

DAGMan semantics here: each CATEGORY's MAXJOBS; NOOP nodes run their scripts; a POST script
runs after the job whatever its exit code; a job HTCondor would hold or refuse; a node of many
jobs (``loanpipe.local.cluster``). ``tests/test_dagman_parity.py`` holds each against
condor_dagman.
"""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import subprocess
import time
from pathlib import Path
from typing import IO, Any

from loanpipe.local import scripts
from loanpipe.local.cluster import Cluster  # DAGMan's rules for a node with many jobs
from loanpipe.local.exits import NodeExits  # what DAGMan makes of an exit code
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
from loanpipe.local.scripts import ScriptError

DAG_ERROR_SUBMIT_FAILED = -1001  # a job's return value when condor_submit fails (dag.h)
DAG_ERROR_JOB_ABORTED = -1002  # ... when it was removed (after a hold)


class NodeAttempts(NodeExits):
    """Start a node's scripts and jobs and reap them (the runner's ``drive`` loop calls
    ``start_node``, ``start_job``, ``start_procs``, ``start_script`` and ``reaped``). The
    attributes below are the runner's (``Runner.__init__``)."""

    jobs: int
    launcher: Launcher
    clusters: int
    running_by_cat: dict[str, int]
    jobs_submitted: int
    jobs_succeeded: int
    jobs_failed: int
    fatal: str | None
    final_started: bool
    final_interrupted: int | None

    # -- slots, and what DAGMan gives a job

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

    # -- starting

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

    # -- reaping

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
