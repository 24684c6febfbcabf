"""Read what DAGMan and HTCondor say about a DAG run; no command line, nothing written.

Used by ``loanpipe.pool`` (make submit / watch / status / preflight). Every source is a file
HTCondor writes, or the schedd, read the way HTCondor means it to be read:

- ``<dag>.dagman.log``: the DAGMan job's own event log, read with loanpipe.dagman.events:
  the newest SUBMIT event names this run's DAGMan cluster; its JOB_TERMINATED (ReturnValue)
  or JOB_ABORTED (condor_rm) event is the run's end.
- ``<dag>.metrics``: JSON written by DAGMan as it exits; ``dagman_id`` ties it to a cluster and
  ``DagStatus`` is the DAG's result (0 ok, 1 error, 2 node failed, 3 aborted, 4 removed, 5 cycle,
  6 halted).
- ``<dag>.status`` (NODE_STATUS_FILE): ClassAds written by ``Dag::DumpNodeStatus``
  (src/condor_dagman/dag.cpp, 23.x-25.x). Its ``DagStatus`` and every ``NodeStatus`` are *node*
  states (``Node::status_t`` in node.h): 0 not ready, 1 ready, 2 PRE script, 3 submitted,
  4 POST script, 5 done, 6 error, 7 futile. The DAG-level note ("success", "failed", "held",
  "removed", "aborted") is only in the comment after ``DagStatus``.
- ``<dag>.nodes.log``: the event log every node job shares; JOB_HELD events keep the hold
  reason after DAGMan has removed the held job (DAGMAN_MAX_JOB_HOLDS = 1).
- ``<dag>.dagman.out``: DAGMan's own messages; when it stops before any node ran (e.g. a node
  log under /tmp with DAGMAN_USE_STRICT) its ``ERROR:`` line is the only explanation.
- the schedd (``htcondor2.Schedd().query``): whether a DAGMan of this DAG is in the queue.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loanpipe.dagman import bindings, events
from loanpipe.dagman.status import NodeStatus

# HoldReasonCode -> what to do (src/condor_utils/condor_holdcodes.h).
HOLD_HINTS = {
    1: "held by a user or admin (condor_hold); DAGMan removes it and RETRY runs the node again",
    6: "could not start the interpreter: PYTHON (rendered by make paths) and the interpreter "
    "behind it must exist at that path on the execute node; subcode = errno (2 missing, "
    "13 permission); `make preflight` checks it",
    7: "could not open its output/error file: BASE_DIR/output and BASE_DIR/error must exist "
    "and be writable from the execute node (make paths creates them)",
    13: "input transfer failed: is the shared filesystem mounted on the execute node?",
    14: "its initialdir (BASE_DIR) is not reachable on the execute node: mount the shared "
    "filesystem at the same path",
    34: "went over request_memory: DAGMan removes it and the retry asks for more; if retries "
    "keep failing raise MEMORY_MB in submit/<kind>.sub",
}
STATUS_NOTE = re.compile(r"^\s*DagStatus\s*=\s*\d+\s*;\s*/\*\s*\"?[A-Z_]+\s*\((\w+)\)", re.M)
ERROR_LINE = re.compile(r"\berror:", re.IGNORECASE)
DAGMAN_STAMP = re.compile(r"^\d\d/\d\d/\d\d \d\d:\d\d:\d\d ")


# --------------------------------------------------------------------------- DAGMan job


@dataclass
class DagmanJob:
    """One submission of a DAG: the DAGMan job's cluster and, once it ended, how."""

    cluster: int
    submitted: float
    ended: float | None = None
    exit_code: int | None = None  # ReturnValue of JOB_TERMINATED
    signal: int | None = None
    removed: bool = False  # JOB_ABORTED
    held: str | None = None  # HoldReason of a JOB_HELD not yet released
    # EXECUTE events: more than one when the schedd started DAGMan again in recovery mode
    # (schedd or pool restart, DAGMan killed, evicted)
    starts: list[float] = field(default_factory=list)

    @property
    def done(self) -> bool:
        return self.ended is not None


class DagmanLog:
    """Follows a DAG's ``.dagman.log`` (loanpipe.dagman.events); ``job`` is the newest
    submission."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.job: DagmanJob | None = None
        self._log = events.EventLog(path)

    def update(self, wait: float = 0.0) -> DagmanJob | None:
        """Read the events written since the last call (waiting up to ``wait`` s for one)."""
        for event in self._log.read(wait):
            kind, cluster, when = event["type"], event["cluster"], event["time"]
            if kind == "SUBMIT":
                self.job = DagmanJob(cluster, when)
                continue
            job = self.job
            if job is None or cluster != job.cluster:
                continue
            if kind == "JOB_TERMINATED":
                job.ended = when
                if event.get("TerminatedNormally", True):
                    job.exit_code = int(event.get("ReturnValue", 1))
                else:
                    job.signal = int(event.get("TerminatedBySignal", 0))
            elif kind == "JOB_ABORTED":
                job.ended, job.removed = when, True
            elif kind == "EXECUTE":
                job.starts.append(when)
            elif kind == "JOB_HELD":
                job.held = str(event.get("HoldReason", "held"))
            elif kind == "JOB_RELEASED":
                job.held = None
        return self.job


# --------------------------------------------------------------------------- metrics, status


def _node_label(state: int) -> str:
    try:
        return NodeStatus(state).label
    except ValueError:
        return f"state {state}"


@dataclass
class NodeState:
    name: str
    state: int
    details: str = ""
    retries: int = 0
    procs_queued: int = 0
    procs_held: int = 0

    @property
    def label(self) -> str:
        if self.state == 3 and self.details in ("idle", "not_idle"):
            # DAGMan notes whether the job is idle; not idle = running (or just held)
            return "idle" if self.details == "idle" else "running"
        return _node_label(self.state)


@dataclass
class StatusFile:
    """A parsed node status file."""

    dag_state: int
    note: str  # success, failed, held, removed, aborted, cycle, or "" while running
    counts: dict[str, int]
    nodes: list[NodeState] = field(default_factory=list)
    timestamp: float = 0.0

    @property
    def label(self) -> str:
        base = _node_label(self.dag_state)
        if self.dag_state == 3 and not self.note:
            base = "running"
        return f"{base} ({self.note})" if self.note else base


def read_status_file(path: Path) -> StatusFile | None:
    """The node status file, or None when it is missing or not (yet) complete."""
    classad2 = bindings.classad()

    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return None
    try:
        ads = list(classad2.parseAds(text, classad2.ParserType.New))
    except Exception:  # the bindings raise their own error types on a broken file
        return None
    head = next((ad for ad in ads if ad.get("Type") == "DagStatus"), None)
    if head is None:
        return None
    match = STATUS_NOTE.search(text)
    keys = ("Total", "Done", "Pre", "Queued", "Post", "Ready", "Unready", "Futile", "Failed")
    counts = {key.lower(): int(head.get(f"Nodes{key}", 0)) for key in keys}
    counts["held"] = int(head.get("JobProcsHeld", 0))
    counts["idle"] = int(head.get("JobProcsIdle", 0))
    status = StatusFile(
        dag_state=int(head.get("DagStatus", -1)),
        note=match.group(1) if match else "",
        counts=counts,
        timestamp=float(head.get("Timestamp", 0)),
    )
    for ad in ads:
        if ad.get("Type") == "NodeStatus":
            status.nodes.append(
                NodeState(
                    name=str(ad.get("Node", "?")),
                    state=int(ad.get("NodeStatus", -1)),
                    details=str(ad.get("StatusDetails", "")),
                    retries=int(ad.get("RetryCount", 0)),
                    procs_queued=int(ad.get("JobProcsQueued", 0)),
                    procs_held=int(ad.get("JobProcsHeld", 0)),
                )
            )
    return status


def progress_line(status: StatusFile) -> str:
    c = status.counts
    return (
        f"{c['done']}/{c['total']} nodes done, {c['queued']} submitted "
        f"({c['idle']} idle, {c['held']} held), {c['failed']} failed"
    )


# --------------------------------------------------------------------------- node events


@dataclass
class Hold:
    node: str
    cluster: int
    time: float
    reason: str
    code: int | None
    subcode: int | None

    def line(self) -> str:
        hint = HOLD_HINTS.get(self.code or -1, "see condor_q -hold")
        return (
            f"{self.node} (job {self.cluster}) was held: {self.reason} "
            f"(HoldReasonCode {self.code}/{self.subcode}): {hint}"
        )


def node_holds(nodes_log: Path, since: float = 0.0) -> list[Hold]:
    """JOB_HELD events of node jobs submitted at or after ``since`` (oldest first)."""
    names: dict[int, str] = {}
    holds: list[Hold] = []
    # partial: a log being written (or unreadable) shows what could be read
    for event in events.read_events(nodes_log, partial=True):
        if event["type"] == "SUBMIT" and event["time"] >= since - 1:
            node = events.dag_node(event)
            if node:
                names[event["cluster"]] = node
        elif event["type"] == "JOB_HELD" and event["cluster"] in names:
            code, sub = event.get("HoldReasonCode"), event.get("HoldReasonSubCode")
            holds.append(
                Hold(
                    node=names[event["cluster"]],
                    cluster=event["cluster"],
                    time=event["time"],
                    reason=str(event.get("HoldReason", "")),
                    code=int(code) if code is not None else None,
                    subcode=int(sub) if sub is not None else None,
                )
            )
    return holds


# --------------------------------------------------------------------------- messages


def one_line_error(path: Path) -> str | None:
    """The line of a stage's stderr that says what went wrong (its last ``error:`` line)."""
    try:
        lines = [ln.strip() for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return None
    errors = [ln for ln in lines if ERROR_LINE.search(ln)]
    if errors:
        return errors[-1]
    return lines[-1] if lines else None


def has_error_line(path: Path) -> bool:
    try:
        return any(ERROR_LINE.search(ln) for ln in path.read_text(errors="replace").splitlines())
    except OSError:
        return False


def node_error_file(base_dir: Path, node: str, retry: int) -> Path | None:
    """BASE_DIR/error/<node>.<retry>.err; for a node of many jobs (the model search: one file
    per job, <node>.<candidate>.<retry>.err) the one with an ``error:`` line, i.e. the failing
    job's, not a sibling DAGMan removed; else the newest stderr file of that node."""
    exact = base_dir / "error" / f"{node}.{retry}.err"
    if exact.exists():
        return exact
    per_job = sorted((base_dir / "error").glob(f"{node}.*.{retry}.err"))
    failing = [p for p in per_job if has_error_line(p)]
    if failing:
        return min(failing, key=lambda p: p.stat().st_mtime)  # the first to fail
    found = sorted(
        (base_dir / "error").glob(f"{node}.*.err"), key=lambda p: p.stat().st_mtime, reverse=True
    )
    return found[0] if found else None


def job_item(err: Path, node: str, retry: int) -> str | None:
    """The queue item (the search's candidate) of a per-job stderr file's name, else None."""
    head, tail = f"{node}.", f".{retry}.err"
    name = err.name
    if name.startswith(head) and name.endswith(tail) and len(name) > len(head) + len(tail):
        return name[len(head) : -len(tail)]
    return None


def dagman_reason(dagman_out: Path, cluster: int | None) -> str | None:
    """DAGMan's own explanation of why the run of ``cluster`` stopped, from .dagman.out."""
    try:
        lines = dagman_out.read_text(errors="replace").splitlines()
    except OSError:
        return None
    start = 0
    if cluster is not None:
        # "** condor_scheduniv_exec.<cluster>.0 (CONDOR_DAGMAN) STARTING UP"
        banner = f"condor_scheduniv_exec.{cluster}.0 (condor_dagman) starting up"
        starts = [i for i, ln in enumerate(lines) if banner in ln.lower()]
        if not starts:
            return None
        start = starts[-1]
    section = [DAGMAN_STAMP.sub("", ln) for ln in lines[start:]]
    errors = [i for i, ln in enumerate(section) if ln.startswith("ERROR")]
    if not errors:
        return None
    i = errors[0]
    reason = section[i]
    if "Warning is fatal" in reason:
        warnings = [ln for ln in section[:i] if ln.startswith("Warning:")]
        if warnings:
            reason = f"{warnings[-1]} ({reason})"
    return reason


# --------------------------------------------------------------------------- the schedd


def queued_dagmans(run_dir: Path, dag_name: str) -> list[dict[str, Any]]:
    """DAGMan jobs of this DAG (same run directory and DAGMan log) in the schedd's queue.

    Raises OSError when the schedd cannot be asked: the caller must not guess.
    """
    htcondor = bindings.htcondor()
    log = os.path.join(str(run_dir), f"{dag_name}.dagman.log")
    try:
        ads = htcondor.Schedd().query(
            constraint=f"JobUniverse == 7 && Iwd == {json.dumps(str(run_dir))}",
            projection=["ClusterId", "JobStatus", "UserLog", "Iwd", "JobBatchName"],
        )
    except Exception as exc:  # HTCondorIOError, HTCondorLocateError, ...
        raise OSError(f"cannot ask the schedd which DAGs are queued: {exc}") from None
    ads = [ad for ad in ads if os.path.normpath(str(ad.get("UserLog", ""))) == log]
    return [dict(ad) for ad in ads]


def schedd_silence() -> str | None:
    """None when the schedd answers a query; else why not, in a few words."""
    try:
        bindings.htcondor().Schedd().query(constraint="false", projection=["ClusterId"])
    except Exception as exc:  # HTCondorIOError, HTCondorLocateError, ...
        text = " ".join(str(exc).split())
        return text[:160] or type(exc).__name__
    return None


def in_queue(cluster: int) -> bool | None:
    """Whether job ``cluster`` is in the schedd's queue (None when the schedd cannot be asked)."""
    try:
        ads = (
            bindings.htcondor()
            .Schedd()
            .query(constraint=f"ClusterId == {cluster}", projection=["JobStatus"])
        )
    except Exception:
        return None
    return bool(ads)


def node_jobs(cluster: int) -> list[dict[str, Any]]:
    """Idle and held node jobs of DAGMan ``cluster`` ([] when the schedd cannot be asked)."""
    try:
        ads = (
            bindings.htcondor()
            .Schedd()
            .query(
                constraint=f"DAGManJobId == {cluster} && (JobStatus == 1 || JobStatus == 5)",
                projection=[
                    "ClusterId",
                    "ProcId",
                    "JobStatus",
                    "DAGNodeName",
                    "HoldReason",
                    "HoldReasonCode",
                    "HoldReasonSubCode",
                ],
            )
        )
    except Exception:
        return []
    return [dict(ad) for ad in ads]
