"""A pool run's nodes for the report, from the event log every node job shares
(``<dag>.nodes.log``): per node, each attempt's submit, start, end, holds, memory and host.
"""

from __future__ import annotations

import math
import re
import time
from pathlib import Path
from typing import Any

from loanpipe.dagman import events as event_log
from loanpipe.dagman.state import has_error_line, node_error_file
from loanpipe.report.sources import (
    ReportError,
    in_dag_order,
    node_paths,
    number,
    record,
)

# ---------------------------------------------------------------------------- pool runs


def read_event_log(path: Path) -> list[dict[str, Any]]:
    """The events of an HTCondor job event log, as plain dicts (loanpipe.dagman.events)."""
    if not path.exists():
        raise ReportError(f"cannot read event log {path}: no such file")
    try:
        events = event_log.read_events(path)
    except event_log.EventLogError as exc:
        raise ReportError(str(exc)) from None
    if not events and path.stat().st_size > 0:
        raise ReportError(f"cannot read event log {path}: no HTCondor events in it")
    return events


def event_node(event: dict[str, Any]) -> str | None:
    notes = event.get("StructuredNotes")
    if isinstance(notes, dict) and notes.get("DAGNodeName"):
        return str(notes["DAGNodeName"])
    if event.get("DAGNodeName"):
        return str(event["DAGNodeName"])
    match = re.match(r"DAG Node: (\S+)", str(event.get("LogNotes", "")))
    return match.group(1) if match else None


def host_name(address: Any) -> str | None:
    if not address:
        return None
    match = re.search(r"alias=([^&>]+)", str(address))
    if match:
        return match.group(1).split(".")[0]
    match = re.match(r"<([^:>]+)", str(address))
    return match.group(1) if match else str(address)


ENDS = {"JOB_EVICTED", "JOB_HELD", "SHADOW_EXCEPTION", "JOB_TERMINATED", "JOB_ABORTED"}


def new_attempt(event: dict[str, Any]) -> dict[str, Any]:
    """A node attempt, from the SUBMIT event of its cluster's first proc."""
    return {
        "cluster": f"{event['cluster']}.{event['proc']}",
        "submitted": event["time"],
        "started": None,
        "ended": None,
        "segments": [],
        "state": "idle",
        "exit_code": None,
        "signal": None,
        "memory_used_mib": None,
        "memory_request_mib": None,
        "holds": [],
        "removed": None,
        "post_script_exit": None,
        "host": None,
        "evictions": 0,
        "procs": 1,
        "procs_ended": 0,
    }


def note_memory(attempt: dict[str, Any], event: dict[str, Any]) -> None:
    if number(event.get("MemoryUsage")) is not None:
        used = attempt["memory_used_mib"] or 0.0
        attempt["memory_used_mib"] = max(used, float(event["MemoryUsage"]))


def on_terminated(attempt: dict[str, Any], event: dict[str, Any]) -> None:
    """One proc ended: the attempt ends with its last proc, with the first failed proc's code."""
    attempt["procs_ended"] += 1
    attempt["state"] = "done" if attempt["procs_ended"] >= attempt["procs"] else "running"
    attempt["ended"] = event["time"]
    failed = attempt["signal"] is not None or attempt["exit_code"] not in (None, 0)
    if failed:
        pass  # the first failed proc's code is the node's
    elif event.get("TerminatedNormally", True):
        attempt["exit_code"] = event.get("ReturnValue")
    else:
        attempt["signal"] = event.get("TerminatedBySignal")
    note_memory(attempt, event)
    if number(event.get("RequestMemory")) is not None:
        attempt["memory_request_mib"] = float(event["RequestMemory"])


def on_end(attempt: dict[str, Any], event: dict[str, Any], segment: list[Any] | None) -> None:
    """An event that ends a proc's run on a machine (ENDS): evicted, held, ended, removed."""
    kind = event["type"]
    if segment is not None:
        segment[1] = event["time"]
    if kind == "JOB_EVICTED":
        attempt["evictions"] += 1
        attempt["state"] = "idle"
    elif kind == "JOB_HELD":
        attempt["state"] = "held"
        attempt["holds"].append(
            {
                "time": event["time"],
                "reason": event.get("HoldReason"),
                "code": event.get("HoldReasonCode"),
                "subcode": event.get("HoldReasonSubCode"),
            }
        )
    elif kind == "JOB_TERMINATED":
        on_terminated(attempt, event)
    elif kind == "JOB_ABORTED":
        attempt["procs_ended"] += 1
        attempt["state"] = "removed"
        attempt["ended"] = event["time"]
        attempt["removed"] = event.get("Reason")


class Attempts:
    """Node attempts built from the nodes' event log, one event at a time."""

    def __init__(self) -> None:
        self.by_node: dict[str, list[dict[str, Any]]] = {}
        self.cluster_node: dict[tuple[int, int], str] = {}
        self.current: dict[tuple[int, int], dict[str, Any]] = {}
        self.segments: dict[tuple[int, int], list[Any]] = {}  # per proc: a cluster's interleave

    def submitted(self, key: tuple[int, int], event: dict[str, Any]) -> None:
        node = event_node(event) or event.get("_node")
        if node is None:
            return
        self.cluster_node[key] = node
        earlier = self.by_node.get(node) or [{}]
        if event["proc"] > 0 and earlier[-1].get("cluster") == f"{event['cluster']}.0":
            earlier[-1]["procs"] += 1  # another job of the same cluster: the same attempt
            self.current[key] = earlier[-1]
            return
        attempt = new_attempt(event)
        self.current[key] = attempt
        self.by_node.setdefault(node, []).append(attempt)

    def add(self, event: dict[str, Any]) -> None:
        key = (event["cluster"], event["proc"])
        kind = event["type"]
        if kind == "SUBMIT":
            self.submitted(key, event)
            return
        if kind == "POST_SCRIPT_TERMINATED":
            node = event_node(event) or self.cluster_node.get(key)
            if node in self.by_node:
                self.by_node[node][-1]["post_script_exit"] = event.get("ReturnValue")
            return
        attempt = self.current.get(key)
        if attempt is None:
            return
        if kind == "EXECUTE":
            attempt["started"] = attempt["started"] or event["time"]
            self.segments[key] = [event["time"], None]
            attempt["segments"].append(self.segments[key])
            attempt["state"] = "running"
            attempt["host"] = host_name(event.get("ExecuteHost")) or attempt["host"]
        elif kind == "IMAGE_SIZE":
            note_memory(attempt, event)
        elif kind in ENDS:
            on_end(attempt, event, self.segments.pop(key, None))
        elif kind == "JOB_RELEASED":
            attempt["state"] = "idle"


def pool_attempts(events: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Group events into node attempts (one submitted cluster each), in submit order.

    A node whose submit file queues many jobs (the model search) is one cluster: its procs make
    one attempt, ended when all procs ended, with the first failed proc's exit code (DAGMan's
    rule, loanpipe.local.cluster).
    """
    attempts = Attempts()
    for event in sorted(events, key=lambda e: e["time"]):
        attempts.add(event)
    return attempts.by_node


def node_from_pool(name: str, attempts: list[dict[str, Any]]) -> dict[str, Any]:
    last = attempts[-1]
    if last["state"] == "done":
        job_ok = last["exit_code"] == 0 and last["signal"] is None
        post = last["post_script_exit"]
        status = "ok" if (post == 0 if post is not None else job_ok) else "failed"
    else:
        status = {"removed": "failed (removed)"}.get(last["state"], last["state"])
    for attempt in attempts:
        attempt["run_s"] = sum(
            (end if end is not None else time.time()) - start for start, end in attempt["segments"]
        )
        attempt["queued_s"] = (
            attempt["started"] - attempt["submitted"] if attempt["started"] is not None else None
        )
    peak = max(attempts, key=lambda a: a["memory_used_mib"] or -1.0)
    return {
        "name": name,
        "status": status,
        "attempts": len(attempts),
        "exit_code": last["exit_code"],
        "signal": last["signal"],
        "post_script_exit": last["post_script_exit"],
        "wall_s": sum(a["run_s"] for a in attempts),
        "queued_s": sum(a["queued_s"] or 0.0 for a in attempts),
        "start": attempts[0]["submitted"],
        "end": last["ended"],
        "memory_used_mib": peak["memory_used_mib"],
        "memory_request_mib": peak["memory_request_mib"] or last["memory_request_mib"],
        "holds": [hold for a in attempts for hold in a["holds"]],
        "host": last["host"],
        "attempt_list": [{k: v for k, v in a.items() if k not in {"holds"}} for a in attempts],
    }


def load_pool_run(
    base: Path,
    dag_path: Path,
    dag: dict[str, dict[str, Any]],
    since: float | None,
    sources: list[str],
    notes: list[str],
) -> list[dict[str, Any]]:
    nodes_log = record(dag_path, ".nodes.log")
    events: list[dict[str, Any]] = []
    if nodes_log.exists():
        events = read_event_log(nodes_log)
        sources.append(str(nodes_log))
    else:
        for name, info in dag.items():
            log = node_paths(base, name, info, 0)["log"]
            if log is None:
                continue
            try:
                node_events = read_event_log(log)
            except ReportError as exc:
                notes.append(f"skipped: {exc}")
                continue
            for event in node_events:
                event["_node"] = name
            events += node_events
            sources.append(str(log))
    skipped = set(event_log.pre_skipped(events, math.floor(since) - 5 if since else 0.0))
    if since is not None:
        # Event logs are appended across runs: keep the jobs submitted since DAGMan started.
        recent = [e for e in events if e["time"] >= math.floor(since) - 5]
        if recent and len(recent) < len(events):
            notes.append("event logs hold earlier runs too: only jobs since DAGMan's start shown")
            clusters = {(e["cluster"], e["proc"]) for e in recent if e["type"] == "SUBMIT"}
            events = [e for e in events if (e["cluster"], e["proc"]) in clusters]

    def pool_node(name: str, attempts: list[dict[str, Any]]) -> dict[str, Any]:
        for retry, attempt in enumerate(attempts):
            if attempt["memory_request_mib"] is None:  # no terminate event: the submit file's
                request = node_paths(base, name, dag.get(name), retry)["request_memory_mib"]
                attempt["memory_request_mib"] = request
        node = node_from_pool(name, attempts)
        paths = node_paths(base, name, dag.get(name), node["attempts"] - 1)
        node["stderr_file"] = str(paths["error"]) if paths["error"] else None
        if str(node["status"]).startswith("failed"):  # a node of many jobs: the failing job's
            failing = node_error_file(base, name, node["attempts"] - 1)
            if failing is not None and failing != paths["error"] and has_error_line(failing):
                node["stderr_file"] = str(failing)
        return node

    nodes = in_dag_order(dag, pool_attempts(events), pool_node)
    for node in nodes:  # PRE_SKIP: done without a job (unchanged since its last success)
        if node["status"] == "not run" and node["name"] in skipped:
            node["status"] = "skipped"
    return nodes
