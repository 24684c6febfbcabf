"""The run half of ``make report``: a DAG run's records, read into plain facts.

``load_run`` finds the latest run of a base directory's DAG, a pool run (the nodes' event log,
``pool_run``) or a local one (the local runner's records, ``local_run``), and annotates each
node; ``sources`` reads the DAG, its submit files and DAGMan's metrics file. Rendering is
``loanpipe.report.render``.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from loanpipe.dagman import metrics as dag_metrics
from loanpipe.dagman.state import DagmanLog
from loanpipe.report.local_run import load_local_run
from loanpipe.report.pool_run import load_pool_run
from loanpipe.report.sources import (
    HIGH_USE,
    OK_STATUSES,
    OVER_REQUEST,
    load_dag,
    load_dag_metrics,
    mark_done_earlier,
    node_paths,
    record,
    tail,
    utc,
)

# ---------------------------------------------------------------------------- the run


def is_failed(node: dict[str, Any]) -> bool:
    return node["attempts"] > 0 and str(node["status"]).split()[0] not in OK_STATUSES | {
        "running",
        "idle",
    }


def annotate_nodes(nodes: list[dict[str, Any]]) -> None:
    """Memory flags and, for failed nodes, the tail of stderr."""
    for node in nodes:
        used, request = node["memory_used_mib"], node["memory_request_mib"]
        node["memory_use_share"] = used / request if used is not None and request else None
        flags = []
        if node["memory_use_share"] is not None and node["memory_use_share"] > HIGH_USE:
            flags.append(f"uses {node['memory_use_share']:.0%} of its request")
        if used and request and request > OVER_REQUEST * used:
            flags.append(f"requests {request / used:.1f}x its use")
        node["memory_flags"] = flags
        node["stderr_tail"] = None
        if is_failed(node) and node.get("stderr_file"):
            with contextlib.suppress(OSError):
                node["stderr_tail"] = tail(Path(node["stderr_file"]))


def whole_run(
    dag_path: Path, metrics: dict[str, Any] | None, notes: list[str], final: bool = False
) -> float | None:
    """When the run began: the DAGMan job's submission (its own event log, ``.dagman.log``),
    for the run the metrics file is of, or (``final``: the report as the FINAL node) the one
    still running.

    DAGMan started again in recovery mode (a schedd or pool restart, a killed DAGMan) writes
    its lock and the metrics of its last start only: the start time, and so the duration, are
    then those of the whole run (from the job's first start), with a note.
    """
    log = record(dag_path, ".dagman.log")
    if not log.exists():
        return None
    try:
        job = DagmanLog(log).update()
    except Exception:  # an unreadable log: the metrics file's times stand
        return None
    if job is None:
        return None
    ours = metrics is not None and dag_metrics.read(Path(metrics["file"]), job.cluster) is not None
    if not ours and not (final and not job.done):
        return None
    if len(job.starts) > 1:
        notes.append(
            f"DAGMan was started again {len(job.starts) - 1} time(s) in recovery mode (last at "
            f"{utc(job.starts[-1])}): times and duration are the whole run's"
        )
        if ours and metrics["start_time"] is not None:
            metrics["start_time"] = job.starts[0]
            if metrics["end_time"] is not None:
                metrics["duration"] = metrics["end_time"] - job.starts[0]
    return job.submitted


def load_run(
    base: Path, dag_path: Path, notes: list[str], final: bool = False
) -> dict[str, Any] | None:
    """The latest run of the DAG ``dag_path`` (None when it has no records).

    Only runs made for ``base`` count: a DAG rendered for another base directory (its
    ``VARS ALL_NODES BASE_DIR``) is refused, so a report never mixes two data sets. ``final``:
    the report runs as the DAG's FINAL node, so the run is still going: the metrics file is the
    previous run's (DAGMan writes it after the FINAL node) and the lock is this run's.
    """
    name = dag_path.name
    metrics = None if final else load_dag_metrics(record(dag_path, ".metrics"))
    nodes_log = record(dag_path, ".nodes.log")
    local = record(dag_path, ".local.jsonl")
    dag = load_dag(dag_path, notes) if (metrics or nodes_log.exists() or local.exists()) else {}
    elsewhere = {
        info["vars"]["BASE_DIR"]
        for info in dag.values()
        if "BASE_DIR" in info["vars"] and Path(info["vars"]["BASE_DIR"]).resolve() != base.resolve()
    }
    if elsewhere:
        notes.append(
            f"{dag_path} was rendered for BASE_DIR={sorted(elsewhere)[0]}, not {base}: "
            "its run records are not shown"
        )
        return None
    kinds: list[tuple[str, float]] = []
    if local.exists():
        kinds.append(("local", local.stat().st_mtime))
    if nodes_log.exists():
        kinds.append(("pool", nodes_log.stat().st_mtime))
    elif not local.exists() and any(
        node_paths(base, name, info, 0)["log"] is not None for name, info in dag.items()
    ):
        kinds.append(("pool", 0.0))  # no nodes log: each node job's own event log
    if not metrics and not kinds:
        return None
    kind = max(kinds, key=lambda k: k[1])[0] if kinds else None
    if len(kinds) > 1:
        notes.append(f"the DAG directory holds pool and local records: the newer ({kind}) shown")
    sources = [metrics["file"]] if metrics else []
    if metrics and dag and metrics["nodes"] is not None and metrics["nodes"] != len(dag):
        notes.append(f"{name}.metrics counts {metrics['nodes']} nodes, the DAG file {len(dag)}")
    lock = record(dag_path, ".lock")
    if lock.exists() and not final:
        notes.append(f"{lock.name} exists: the DAG may still be running (figures are partial)")
    rescues = sorted(dag_path.parent.glob(f"{name}.rescue[0-9][0-9][0-9]"))
    # DAGMan leaves the rescue DAG it resumed from in place when the DAG then succeeds; make
    # submit reruns everything in that case, so the note is only true after a failed run.
    stale = bool(metrics and metrics["dag_status"] == 0 and rescues) and (
        Path(metrics["file"]).stat().st_mtime > rescues[-1].stat().st_mtime
    )
    if rescues and not stale:
        notes.append(f"rescue file {rescues[-1].name} exists: submitting again resumes from it")
    run: dict[str, Any] = {
        "kind": kind,
        "dag_dir": str(dag_path.parent),
        "dag": str(dag_path),
        "metrics": metrics,
        "nodes": [],
        "sources": sources,
        "local": None,
    }
    since = metrics["start_time"] if metrics else None
    if final and lock.exists():
        since = lock.stat().st_mtime  # DAGMan writes its lock when it starts
    if kind == "pool":
        since = whole_run(dag_path, metrics, notes, final) or since
    run["since"] = since
    run["final"] = final
    if kind == "pool":
        run["nodes"] = load_pool_run(base, dag_path, dag, since, sources, notes)
        mark_done_earlier(run["nodes"], dag_path, (metrics or {}).get("rescue_dag_number"), notes)
    elif kind == "local":
        run["nodes"], run["local"] = load_local_run(local, base, dag, notes)
        sources.append(str(local))
        if metrics and local.stat().st_mtime > record(dag_path, ".metrics").stat().st_mtime + 1:
            notes.append(f"{name}.metrics is older than the local run records (run unfinished?)")
    annotate_nodes(run["nodes"])
    return run
