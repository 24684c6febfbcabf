"""A run's outcome, and why, for every page of the report: succeeded, a node failed (which one,
its exit code and its error line), aborted, removed, still running.

Where the DAG's status comes from, best first: the FINAL node's ``$(DAG_STATUS)`` and
``$(FAILED_COUNT)`` (DAGMan writes its metrics file only after the FINAL node ended, so while
the report runs as the FINAL node this is the only word on the run), else DAGMan's (or the
local runner's) metrics file, else the node records alone.
"""

from __future__ import annotations

from typing import Any

from loanpipe import pipeline
from loanpipe.dagman.status import DagStatus
from loanpipe.report.runs import is_failed


def error_line(node: dict[str, Any]) -> str | None:
    """The line of a failed node's stderr that says what went wrong: its last ``error:`` line,
    else its last line (a traceback's exception)."""
    lines = [ln.strip() for ln in node.get("stderr_tail") or [] if ln.strip()]
    errors = [ln for ln in lines if "error:" in ln.lower()]
    return (errors or lines or [None])[-1]


def failed_node(node: dict[str, Any]) -> dict[str, Any]:
    exit_text = f"signal {node['signal']}" if node.get("signal") else f"exit {node['exit_code']}"
    return {
        "name": node["name"],
        "status": node["status"],
        "attempts": node["attempts"],
        "exit": exit_text if node.get("exit_code") is not None or node.get("signal") else None,
        "error": error_line(node),
        "stderr_file": node.get("stderr_file"),
        "holds": [h.get("reason") for h in node.get("holds") or []],
    }


def outcome(run: dict[str, Any] | None, final: dict[str, Any] | None) -> dict[str, Any]:
    """The outcome facts: ``status`` (a DagStatus number or None), ``name``, ``source``,
    ``failed_count``, ``failed_nodes`` and a one-line ``headline``."""
    nodes = [n for n in (run or {}).get("nodes", []) if n["name"] != pipeline.FINAL_NODE]
    failed = [failed_node(n) for n in nodes if is_failed(n)]
    metrics = (run or {}).get("metrics")
    if final is not None:
        status, count, source = final["dag_status"], final["failed_count"], "FINAL node"
    elif metrics and metrics.get("dag_status") is not None:
        status, count = metrics["dag_status"], metrics.get("nodes_failed")
        final_nodes = [n for n in (run or {}).get("nodes", []) if n["name"] == pipeline.FINAL_NODE]
        if isinstance(count, int) and final_nodes and is_failed(final_nodes[0]):
            count -= 1  # the FINAL node fails on purpose when the DAG failed: not a cause
        source = f"{'DAGMan' if (run or {}).get('kind') == 'pool' else 'local runner'} metrics"
    else:
        status, count, source = None, len(failed), "node records"
    running = any(str(n["status"]).split()[0] in ("running", "idle", "held") for n in nodes)
    if status is None and not running and nodes:
        status = int(DagStatus.NODE_FAILED) if failed else int(DagStatus.OK)
    name = DagStatus.describe(status) if status is not None else "running or unfinished"
    return {
        "status": status,
        "name": name,
        "source": source,
        "failed_count": count,
        "failed_nodes": failed,
        "headline": headline(status, name, failed),
        "ok": status == DagStatus.OK,
    }


def headline(status: int | None, name: str, failed: list[dict[str, Any]]) -> str:
    if status == DagStatus.OK:
        return "The run succeeded: every node finished."
    if status is None:
        return "The run has not finished (no DAG status yet): figures are partial."
    verb = {DagStatus.REMOVED: "was removed", DagStatus.ABORTED: "was aborted"}.get(
        status, "failed"
    )
    text = f"The run {verb}: DAG status {status} ({name})."
    for node in failed[:3]:
        text += f" Node {node['name']} failed after {node['attempts']} attempt(s)"
        text += f" ({node['exit']})" if node["exit"] else ""
        text += f": {node['error']}." if node["error"] else "."
    if len(failed) > 3:
        text += f" And {len(failed) - 3} more failed node(s)."
    return text
