"""DAGMan's metrics file, ``<dag>.metrics``: read (versions 1 and 2) and written (the local
runner's), in one place.

Version 1 (23.x, 24.0) counts nodes as ``jobs*``; version 2 (24.2+, ``metrics_version: 2``)
has ``nodes*`` and counts jobs separately (DAGMan 25.0 counts each job of a many-job node).
The result is ``DagStatus`` (the manual says ``dag_status``; condor_dagman writes
``DagStatus``): both spellings are read.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from loanpipe.dagman.status import DagStatus


def path_of(dag: Path | str) -> Path:
    return Path(f"{dag}.metrics")


def read(path: Path, cluster: int | None = None) -> dict[str, Any] | None:
    """The metrics file, if it is there, parses, and (given ``cluster``) belongs to that run."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    if cluster is not None and str(data.get("dagman_id", "")).split(".")[0] != str(cluster):
        return None
    return data


def dag_status(data: dict[str, Any]) -> int | None:
    value = data.get("DagStatus", data.get("dag_status"))
    return value if isinstance(value, int) else None


def finished_after(metrics: Path, rescue: Path) -> bool:
    """Whether a run of the DAG (DAGMan's or make local's) succeeded, DagStatus 0, after
    ``rescue`` was written. DAGMan leaves the rescue DAG it resumed from in place when the DAG
    then succeeds; resuming from it again would skip the nodes it marks DONE."""
    data = read(metrics)
    try:
        newer = metrics.stat().st_mtime > rescue.stat().st_mtime
    except OSError:
        return False
    return newer and data is not None and dag_status(data) == DagStatus.OK


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def normalise(data: dict[str, Any], path: Path) -> dict[str, Any]:
    """A metrics file of either version in one shape (what the report shows)."""
    v2 = data.get("metrics_version") == 2 or "nodes" in data
    status = dag_status(data)
    return {
        "file": str(path),
        "format": 2 if v2 else 1,
        "client": data.get("client"),
        "version": data.get("version"),
        "start_time": _number(data.get("start_time")),
        "end_time": _number(data.get("end_time")),
        "duration": _number(data.get("duration")),
        "exitcode": data.get("exitcode"),
        "dag_status": status,
        "dag_status_name": DagStatus.describe(status) if status is not None else None,
        "rescue_dag_number": data.get("rescue_dag_number"),
        # v1's jobs* count nodes; v2 counts nodes and jobs (node attempts) separately.
        "nodes": data.get("nodes") if v2 else data.get("jobs"),
        "nodes_succeeded": data.get("nodes_succeeded") if v2 else data.get("jobs_succeeded"),
        "nodes_failed": data.get("nodes_failed") if v2 else data.get("jobs_failed"),
        "total_nodes_run": data.get("total_nodes_run") if v2 else data.get("total_jobs_run"),
        "jobs_submitted": data.get("jobs_submitted") if v2 else None,
        "jobs_succeeded": data.get("jobs_succeeded") if v2 else None,
        "jobs_failed": data.get("jobs_failed") if v2 else None,
        "raw": data,
    }


def local_metrics(
    *, start: float, end: float, exitcode: int, status: DagStatus, dagman_id: str, **counts: int
) -> dict[str, Any]:
    """A version-2 metrics record for a run of the local runner; ``counts``: nodes,
    nodes_premarked_done, nodes_failed, nodes_succeeded, nodes_futile, total_nodes_run,
    jobs_submitted, jobs_succeeded, jobs_failed, rescue_dag_number."""
    return {
        "client": "condor_dagman",
        "version": "local",
        "type": "metrics",
        "metrics_version": 2,
        "local_runner": "loanpipe.local",
        "start_time": round(start, 3),
        "end_time": round(end, 3),
        "duration": round(end - start, 3),
        "exitcode": exitcode,
        "dagman_id": dagman_id,
        "parent_dagman_id": "",
        **counts,
        "DagStatus": int(status),
    }
