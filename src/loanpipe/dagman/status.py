"""DagStatus and a node's status, as DAGMan numbers and names them (dag.h, node.h; 23.x-25.x).

``DagStatus`` is a DAG's result in its metrics file, its node status file and the local
runner's records; every reader and writer of the project uses this one type.
"""

from __future__ import annotations

import enum


class DagStatus(enum.IntEnum):
    """A DAG's result (condor_dagman's ``enum DagStatus``)."""

    OK = 0
    ERROR = 1
    NODE_FAILED = 2
    ABORTED = 3  # ABORT-DAG-ON
    REMOVED = 4  # condor_rm of the DAGMan job
    CYCLE = 5
    HALTED = 6

    @property
    def description(self) -> str:
        return _DESCRIPTIONS[self]

    @classmethod
    def describe(cls, value: object) -> str:
        """The description of a DagStatus number; ``unknown`` for anything else."""
        try:
            return cls(value).description  # type: ignore[arg-type]
        except ValueError:
            return "unknown"


_DESCRIPTIONS = {
    DagStatus.OK: "ok",
    DagStatus.ERROR: "error",
    DagStatus.NODE_FAILED: "a node failed",
    DagStatus.ABORTED: "aborted (ABORT-DAG-ON)",
    DagStatus.REMOVED: "removed (condor_rm)",
    DagStatus.CYCLE: "cycle in the DAG",
    DagStatus.HALTED: "halted",
}


class NodeStatus(enum.IntEnum):
    """A node's state in the node status file (``Node::status_t``)."""

    NOT_READY = 0
    READY = 1
    PRERUN = 2
    SUBMITTED = 3
    POSTRUN = 4
    DONE = 5
    ERROR = 6
    FUTILE = 7

    @property
    def label(self) -> str:
        return _LABELS[self]


_LABELS = {
    NodeStatus.NOT_READY: "not ready",
    NodeStatus.READY: "ready",
    NodeStatus.PRERUN: "PRE script",
    NodeStatus.SUBMITTED: "submitted",
    NodeStatus.POSTRUN: "POST script",
    NodeStatus.DONE: "done",
    NodeStatus.ERROR: "error",
    NodeStatus.FUTILE: "futile",
}
