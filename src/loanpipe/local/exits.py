"""What DAGMan makes of a node's PRE script, job or POST script that ended, for the local runner
(a mixin of ``loanpipe.local.runner.Runner``; the processes are ``loanpipe.local.attempts``).

A POST script's exit code replaces the job's; PRE_SKIP; DEFER; RETRY reruns the whole node (PRE
script included) unless the exit code is the UNLESS-EXIT one; a failed node's descendants are
futile while independent branches go on; ABORT-DAG-ON (0 included); the DAG's status
(``Dag::SetStatus``). ``tests/test_dagman_parity.py`` holds each against condor_dagman.
"""

from __future__ import annotations

import time

from loanpipe.dagman import Dag
from loanpipe.dagman.status import DagStatus
from loanpipe.local.nodes import NodeState
from loanpipe.local.output import RunOutput


class NodeExits(RunOutput):
    """A node attempt's end, under DAGMan's rules. The attributes below are the runner's
    (``Runner.__init__``)."""

    dag: Dag
    dag_status: DagStatus
    aborted: tuple[str, int, int | None] | None

    # -- the DAG's status

    def set_status(self, status: DagStatus, force: bool = False) -> None:
        """``Dag::SetStatus``: the first failure sticks unless an abort or removal forces it."""
        if force or self.dag_status == DagStatus.OK:
            self.dag_status = status

    def failed_count(self) -> int:
        return sum(1 for s in self.states.values() if s.status == "failed")

    # -- an attempt's end

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
