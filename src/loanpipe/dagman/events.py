"""HTCondor job event logs, read with the official bindings (``htcondor2.JobEventLog``): the one
reader of the nodes' event log (make status's hold reasons, make report's attempts) and of the
DAGMan job's own log (make watch).

Every event is a plain dict: ``type`` (the ``JobEventType`` name: ``SUBMIT``, ``EXECUTE``,
``JOB_TERMINATED``, ``JOB_HELD``, ...), ``cluster``, ``proc``, ``time`` (epoch seconds), then
the event's own fields (``ReturnValue``, ``HoldReason``, ``LogNotes``, ``MemoryUsage``, ...).
No pool is needed; which configuration the bindings read is the caller's (dagman.bindings).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from loanpipe.dagman import bindings
from loanpipe.errors import LoanpipeError

__all__ = ["EventLogError", "EventLog", "read_events", "event_dict", "dag_node"]

DAG_NODE = re.compile(r"DAG Node: (\S+)")


class EventLogError(LoanpipeError):
    """The log cannot be read: one line naming it and why."""


def _bindings(path: Path) -> Any:
    try:
        return bindings.htcondor()
    except ImportError:
        why = "the htcondor Python bindings are not installed"
        raise EventLogError(f"cannot read event log {path}: {why}") from None


def event_dict(event: Any) -> dict[str, Any]:
    """One ``htcondor2.JobEvent`` as a plain dict (see the module's docstring)."""
    return {
        "type": event.type.name,
        "cluster": event.cluster,
        "proc": event.proc,
        "time": float(event.timestamp),
        **dict(event.items()),
    }


def dag_node(event: dict[str, Any]) -> str | None:
    """The DAG node a SUBMIT event's job belongs to (DAGMan's ``DAG Node: <name>`` note)."""
    match = DAG_NODE.match(str(event.get("LogNotes", "")))
    return match.group(1) if match else None


def pre_skipped(events: list[dict[str, Any]], since: float = 0.0) -> list[str]:
    """Nodes DAGMan marked done by PRE_SKIP since ``since``: the PRESKIP events it writes to the
    nodes' log (``DagSubmit::PreSkipSubmit``: ``SkipEventLogNotes = "DAG Node: <name>"``)."""
    out = []
    for event in events:
        if event["type"] == "PRESKIP" and event["time"] >= since:
            match = DAG_NODE.match(str(event.get("SkipEventLogNotes", "")))
            if match and match.group(1) not in out:
                out.append(match.group(1))
    return out


class EventLog:
    """Follows one event log: :meth:`read` returns the events written since its last call."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._log: Any = None

    def read(self, wait: float = 0.0, partial: bool = False) -> list[dict[str, Any]]:
        """New events, waiting up to ``wait`` s for one; [] while the file does not exist.

        EventLogError when the log cannot be read; with ``partial``, the events read before
        the problem instead (a log being written may end in half an event).
        """
        out: list[dict[str, Any]] = []
        try:
            if self._log is None:
                if not self.path.exists():
                    return []
                if not os.access(self.path, os.R_OK):
                    raise EventLogError(f"cannot read event log {self.path}: permission denied")
                self._log = _bindings(self.path).JobEventLog(str(self.path))
            for event in self._log.events(stop_after=int(wait)):
                out.append(event_dict(event))
        except EventLogError:
            if not partial:
                raise
        except Exception as exc:  # the bindings raise their own error types
            if not partial:
                raise EventLogError(f"cannot read event log {self.path}: {exc}") from None
        return out


def read_events(path: Path, partial: bool = False) -> list[dict[str, Any]]:
    """Every event of the log at ``path`` (see :meth:`EventLog.read`)."""
    return EventLog(path).read(partial=partial)
