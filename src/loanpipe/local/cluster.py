"""DAGMan's rules for a node with many jobs (one cluster of procs), for the local runner.

A submit file that queues several jobs (``queue 5``, ``queue A, B from table.txt``) makes one
node of one HTCondor cluster. condor_dagman (``src/condor_dagman/dag.cpp``, 24.0:
``ProcessTerminatedEvent``, ``ProcessJobProcEnd``, ``RestartNode``) treats it so:

- the node's job part is over only when every proc has ended (``AllProcsDone``);
- the first proc that fails (non-zero exit or a signal) fails the node: its exit code becomes
  the node's return value (a POST script's ``$RETURN``; ``RETRY ... UNLESS-EXIT`` compares it),
  and DAGMan removes the cluster's other procs with condor_rm; procs ending later do not change
  the return value;
- RETRY restarts the whole node (PRE script, then every proc again) once all procs are gone;
- the node is DONE (and a rescue DAG says ``DONE``) only when every proc succeeded.

:class:`Cluster` keeps that bookkeeping for one attempt; ``loanpipe.local.attempts`` starts the
procs (each takes one of the ``-j`` slots, like a job takes a slot of the pool) and kills the
remaining ones when :meth:`Cluster.ended` reports the first failure.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Cluster:
    """The procs of one node attempt: which are waiting, running, ended, and the verdict."""

    specs: list[Any]
    started: int = 0  # procs 0..started-1 have been started (procs start in ProcId order)
    running: set[int] = field(default_factory=set)
    exits: dict[int, int] = field(default_factory=dict)  # proc -> exit code, or -signal
    first_failure: tuple[int, int] | None = None  # (proc, return value)
    removed: bool = False  # the rest was removed after the first failure (condor_rm)

    @property
    def size(self) -> int:
        return len(self.specs)

    def next_proc(self) -> int | None:
        """The next proc to start, or None (all started, or the cluster was removed)."""
        if self.removed or self.started >= self.size:
            return None
        return self.started

    def start(self, proc: int) -> None:
        if proc != self.started:
            raise ValueError(f"proc {proc} started out of order (next is {self.started})")
        self.started += 1
        self.running.add(proc)

    def ended(self, proc: int, retval: int) -> bool:
        """Record a proc's end; True when it is the first failure (remove the others now)."""
        self.running.discard(proc)
        self.exits[proc] = retval
        if retval != 0 and self.first_failure is None:
            self.first_failure = (proc, retval)
            self.removed = True
            return True
        return False

    @property
    def all_done(self) -> bool:
        """No proc running and none left to start: the node's job part is over."""
        return not self.running and self.next_proc() is None

    @property
    def retval(self) -> int:
        """The node's return value: the first failed proc's, else 0."""
        return self.first_failure[1] if self.first_failure else 0

    @property
    def failed_proc(self) -> int | None:
        return self.first_failure[0] if self.first_failure else None

    def summary(self) -> str:
        """``26 jobs: 26 ok`` / ``26 jobs: 3 ok, 1 failed (proc 3 exit 1), 22 removed``."""
        ok = sum(1 for code in self.exits.values() if code == 0)
        text = f"{self.size} jobs: {ok} ok"
        if self.first_failure:
            proc, code = self.first_failure
            how = f"signal {-code}" if code < 0 else f"exit {code}"
            others = sum(1 for p, c in self.exits.items() if c != 0 and p != proc)
            text += f", failed: proc {proc} ({how})"
            if others:
                text += f", {others} more failed or killed"
            if self.size - self.started:
                text += f", {self.size - self.started} never started"
        return text
