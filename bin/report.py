#!/usr/bin/env python3
"""Report on the latest pipeline run: results, deployment decision, the DAG run, provenance.

``make report`` runs this. It reads, under the base directory (SEED.md's names):

- ``staging/metrics/model_metrics_*.json``: every evaluated model (SEED.md's keys; the project's
  extra keys ``confusion_matrix``, ``test_rows``, ``provenance`` are used when present);
- ``model/deployed_model.json`` (deployment manifest) and ``model/archive/<stamp>/`` (earlier
  deployments); without a manifest the decision is derived from the metrics with SEED.md's rule;

and, beside the DAG (``--dag``; default ``BASE_DIR/dags/dagfile.dag``, the DAG make paths
renders for the base directory, as in the original layout; one rendered for another base
directory is refused):

- ``dagfile.dag.metrics`` (DAGMan's metrics file, version 1 or 2);
- a pool run: ``dagfile.dag.nodes.log`` (read with the htcondor bindings), or each node job's own
  event log when there is no nodes log; stderr files via the submit files' paths, else by name;
- a local run (``bin/run_dag.py``): ``dagfile.dag.local.jsonl``, one record per node attempt.

It writes ``report.md`` plus PNG charts into ``BASE_DIR/report/`` (or ``--output DIR``), prints
a summary and the report's path (``--json``: the same facts as JSON on stdout). When the base
directory is not writable (e.g. the read-only fixture) and no ``--output`` is given, the report
goes to a new temporary directory whose path is printed, with a note on stderr.

Exit codes: 0 report written; 2 nothing to report yet (no metrics, no DAG records), an
unreadable input (one line naming the file) or bad usage; 1 the report could not be written.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import os
import re
import shlex
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2

PROJECT_DIR = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(PROJECT_DIR / "bin"), str(PROJECT_DIR / "scripts")]

import leaderboard  # noqa: E402  (the model search's leaderboard, dag/tune.dag)
import loanlib  # noqa: E402  (the stages' shared module: atomic writes, the deploy rule)
from dagfile import DAG_STATUS, DagError, parse_dag  # noqa: E402

DAG_NAME = "dagfile.dag"
RUN_DIR = "dags"  # where make paths renders a base directory's DAGs and their runs live
METRIC_KEYS = ("Accuracy", "Precision", "Recall", "F1 Score")
HIGH_USE = 0.8  # flag memory use above this share of the request
OVER_REQUEST = 5.0  # flag requests more than this many times the use
STDERR_TAIL_LINES = 20
OK_STATUSES = {"ok", "done", "success", "succeeded"}
REPORT_VERSION = 1


class ReportError(Exception):
    """An expected problem (missing or unreadable input): one line, exit code 2."""


# ---------------------------------------------------------------------------- small helpers


def read_text(path: Path, what: str) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise ReportError(f"cannot read {what} {path}: {exc.strerror or exc}") from None


def read_json(path: Path, what: str) -> Any:
    text = read_text(path, what)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ReportError(
            f"cannot read {what} {path}: not valid JSON (line {exc.lineno}: {exc.msg})"
        ) from None


def utc(ts: float | None) -> str | None:
    if ts is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def signed(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:+.{digits}f}"


def number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def memory_mib(text: str | None) -> float | None:
    """``request_memory`` of a submit file in MiB (no unit = MiB); None for expressions."""
    if not text:
        return None
    match = re.fullmatch(r"\s*([0-9.]+)\s*([KMGT]?)I?B?\s*", text, re.IGNORECASE)
    if not match:
        return None
    scale = {"": 1.0, "K": 1 / 1024, "M": 1.0, "G": 1024.0, "T": 1024.0**2}
    return float(match.group(1)) * scale[match.group(2).upper()]


def tail(path: Path, lines: int = STDERR_TAIL_LINES) -> list[str]:
    with path.open("rb") as handle:
        handle.seek(0, os.SEEK_END)
        size = handle.tell()
        handle.seek(max(0, size - 64 * 1024))
        data = handle.read().decode("utf-8", errors="replace")
    return data.splitlines()[-lines:]


# ---------------------------------------------------------------------------- results


def load_models(base: Path) -> list[dict[str, Any]]:
    """Every ``staging/metrics/model_metrics_<version>.json``, sorted by version."""
    models = []
    for path in sorted((base / "staging" / "metrics").glob("model_metrics_*.json")):
        data = read_json(path, "metrics file")
        if not isinstance(data, dict):
            raise ReportError(f"cannot read metrics file {path}: not a JSON object")
        for key in METRIC_KEYS:
            if number(data.get(key)) is None:
                raise ReportError(
                    f"cannot read metrics file {path}: '{key}' missing or not a number"
                )
        version = path.stem.removeprefix("model_metrics_")
        model = {
            "version": data.get("model_version") or version,
            "name": data.get("Model name") or version,
            "file": str(path),
            **{key: float(data[key]) for key in METRIC_KEYS},
            "confusion_matrix": None,
            "test_rows": data.get("test_rows"),
            "provenance": data.get("provenance")
            if isinstance(data.get("provenance"), dict)
            else None,
        }
        cm = data.get("confusion_matrix")
        if (
            isinstance(cm, list)
            and len(cm) == 2
            and all(isinstance(row, list) and len(row) == 2 for row in cm)
            and all(number(v) is not None for row in cm for v in row)
        ):
            model["confusion_matrix"] = [[int(v) for v in row] for row in cm]
        models.append(model)
    return models


def decide(models: list[dict[str, Any]]) -> tuple[str, str, dict[str, Any]]:
    """SEED.md's rule (loanlib.choose_deployment, the one the deploy stage applies)."""
    if len(models) == 1:
        return models[0]["version"], "only model", {"metric": "Precision", "value": None}
    return loanlib.choose_deployment({m["version"]: m for m in models})


def metric_values(data: Any) -> dict[str, float]:
    if not isinstance(data, dict):
        return {}
    return {key: float(data[key]) for key in METRIC_KEYS if number(data.get(key)) is not None}


def load_deployment(
    base: Path, models: list[dict[str, Any]], notes: list[str]
) -> dict[str, Any] | None:
    """The deployment manifest (or a decision derived from the metrics), plus the earlier one."""
    model_dir = base / "model"
    manifest_path = model_dir / "deployed_model.json"
    if not manifest_path.exists():
        if not models:
            return None
        version, rule, margin = decide(models)
        chosen = next(m for m in models if m["version"] == version)
        return {
            "source": "derived",
            "candidate": version,
            "model_name": chosen["name"],
            "rule": rule,
            "margin": margin,
            "metrics": {key: chosen[key] for key in METRIC_KEYS},
            "note": "no deployment manifest (model/deployed_model.json): decision derived from "
            "the metrics files with SEED.md's rule",
            "earlier": None,
        }
    manifest = read_json(manifest_path, "deployment manifest")
    if not isinstance(manifest, dict) or "candidate" not in manifest:
        raise ReportError(f"cannot read deployment manifest {manifest_path}: no 'candidate'")
    margin = manifest.get("margin") if isinstance(manifest.get("margin"), dict) else {}
    deployment: dict[str, Any] = {
        "source": "manifest",
        "file": str(manifest_path),
        "candidate": manifest.get("candidate"),
        "model_name": manifest.get("model_name"),
        "rule": manifest.get("rule"),
        "margin": {"metric": margin.get("metric"), "value": number(margin.get("value"))},
        "metrics": metric_values(manifest.get("metrics")),
        "deployed_at": manifest.get("deployed_at"),
        "model_file": manifest.get("model_file"),
        "sha256": manifest.get("sha256"),
        "earlier": None,
    }
    # The deployed model file against the manifest's hash.
    if manifest.get("model_file"):
        model_file = Path(str(manifest["model_file"]))
        if not model_file.is_absolute():
            candidates = [model_dir / model_file, base / model_file, model_dir / model_file.name]
            model_file = next((p for p in candidates if p.exists()), candidates[0])
        if not model_file.exists():
            deployment["sha256_check"] = "model file missing"
            notes.append(f"deployed model file {model_file} is missing")
        else:
            ok = loanlib.sha256_file(model_file) == manifest.get("sha256")
            deployment["sha256_check"] = "matches" if ok else "MISMATCH"
            if not ok:
                notes.append(
                    f"{model_file} does not match the manifest's sha256: the deployed model "
                    "was replaced after the manifest was written"
                )
    # Was the decision made from the metrics files now in staging?
    candidates = manifest.get("candidates") if isinstance(manifest.get("candidates"), dict) else {}
    for model in models:
        seen = metric_values(candidates.get(model["version"]))
        now = {key: model[key] for key in METRIC_KEYS}
        if seen and any(abs(seen[k] - now[k]) > 1e-12 for k in seen):
            notes.append(
                f"the deployment manifest was made from other metrics for {model['version']} "
                "than staging/metrics holds now (evaluated again without deploying?)"
            )
            break
    # The earlier deployment: the newest archive entry that is not this one.
    archive = model_dir / "archive"
    entries = sorted(archive.glob("*/deployed_model.json")) if archive.is_dir() else []
    for entry in reversed(entries):
        earlier = read_json(entry, "archived deployment manifest")
        if not isinstance(earlier, dict):
            raise ReportError(
                f"cannot read archived deployment manifest {entry}: not a JSON object"
            )
        if earlier.get("deployed_at") == manifest.get("deployed_at") and earlier.get(
            "sha256"
        ) == manifest.get("sha256"):
            continue
        before = metric_values(earlier.get("metrics"))
        now = deployment["metrics"]
        deployment["earlier"] = {
            "file": str(entry),
            "stamp": entry.parent.name,
            "candidate": earlier.get("candidate"),
            "model_name": earlier.get("model_name"),
            "deployed_at": earlier.get("deployed_at"),
            "metrics": before,
            "change": {k: now[k] - before[k] for k in METRIC_KEYS if k in now and k in before},
        }
        break
    return deployment


# ---------------------------------------------------------------------------- the DAG


def record(dag: Path, suffix: str) -> Path:
    """A run record DAGMan (or the local runner) writes beside the DAG: ``<dag><suffix>``."""
    return dag.with_name(dag.name + suffix)


def load_dag(path: Path, notes: list[str]) -> dict[str, dict[str, Any]]:
    """Node name -> {submit, dir, vars} in JOB-line order (empty when there is no DAG file)."""
    dag_dir = path.parent
    if not path.exists():
        return {}
    try:
        dag = parse_dag(path)
        return {
            name: {
                "submit": node.submit_path,
                "dir": node.node_dir or dag.cwd,
                "vars": dict(node.vars),
                "parents": sorted(node.parents),
            }
            for name, node in dag.nodes.items()
        }
    except (DagError, OSError) as exc:
        notes.append(f"DAG file not fully parsed ({exc}); node list from the JOB lines only")
    nodes: dict[str, dict[str, Any]] = {}
    for line in read_text(path, "DAG file").splitlines():
        match = re.match(r"\s*JOB\s+(\S+)\s+(\S+)(?:.*?\bDIR\s+(\S+))?", line, re.IGNORECASE)
        if match:
            node_dir = dag_dir / match.group(3) if match.group(3) else dag_dir
            nodes[match.group(1)] = {
                "submit": dag_dir / match.group(2),
                "dir": node_dir,
                "vars": {},
                "parents": [],
            }
    return nodes


def read_submit(path: Path | None) -> dict[str, str]:
    """``key = value`` lines of a submit file, keys lower-cased (no queue, no includes)."""
    if path is None or not path.is_file():
        return {}
    out: dict[str, str] = {}
    with contextlib.suppress(OSError):
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            match = re.match(r"\s*([A-Za-z_+.][\w.+]*)\s*=\s*(.*?)\s*$", line)
            if match and not line.lstrip().startswith("#"):
                out[match.group(1).lower().lstrip("+")] = match.group(2)
    return out


def expand(value: str, macros: dict[str, str]) -> str:
    lowered = {k.lower(): v for k, v in macros.items()}
    for _ in range(10):
        new = re.sub(
            r"\$\(([A-Za-z_][\w.]*)\)",
            lambda m: lowered.get(m.group(1).lower(), m.group(0)),
            value,
        )
        if new == value:
            break
        value = new
    return value


def node_paths(base: Path, node: str, info: dict[str, Any] | None, retry: int) -> dict[str, Any]:
    """The node job's event log and stderr for attempt ``retry``, and its memory request.

    Paths come from the node's submit file (macros expanded with the DAG's VARS, $(JOB),
    $(RETRY)); a path that does not exist here (a run copied from another machine) is looked
    up under the base directory by its last two components; last, by the project's names.
    """
    submit = read_submit(info["submit"]) if info else {}
    macros = {**submit, **(info["vars"] if info else {}), "JOB": node, "RETRY": str(retry)}
    iwd = Path(info["dir"]) if info else base
    if "initialdir" in submit:
        iwd = iwd / expand(submit["initialdir"], macros)
    short = node.split(":")[0]
    names = {
        "log": ["log/{n}.log"],
        "error": ["error/{n}.{r}.err", "error/{n}.err"],
    }
    found: dict[str, Any] = {}
    for key, patterns in names.items():
        options: list[Path] = []
        if submit.get(key):
            path = Path(expand(submit[key], macros))
            path = path if path.is_absolute() else iwd / path
            options += [path, base / path.parent.name / path.name]
        for pattern in patterns:
            for name in dict.fromkeys((node, short)):
                options.append(base / pattern.format(n=name, r=retry))
        found[key] = next((p for p in options if p.is_file()), None)
    found["request_memory_mib"] = memory_mib(
        expand(submit["request_memory"], macros) if "request_memory" in submit else None
    )
    return found


def load_dag_metrics(path: Path) -> dict[str, Any] | None:
    """DAGMan's ``.metrics`` file, version 1 (23.x, 24.0) or 2 (24.2+), in one shape."""
    if not path.exists():
        return None
    data = read_json(path, "DAGMan metrics file")
    if not isinstance(data, dict):
        raise ReportError(f"cannot read DAGMan metrics file {path}: not a JSON object")
    v2 = data.get("metrics_version") == 2 or "nodes" in data
    status = data.get("DagStatus", data.get("dag_status"))
    out = {
        "file": str(path),
        "format": 2 if v2 else 1,
        "client": data.get("client"),
        "version": data.get("version"),
        "start_time": number(data.get("start_time")),
        "end_time": number(data.get("end_time")),
        "duration": number(data.get("duration")),
        "exitcode": data.get("exitcode"),
        "dag_status": status,
        "dag_status_name": DAG_STATUS.get(status, "unknown") if isinstance(status, int) else None,
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
    return out


# ---------------------------------------------------------------------------- pool runs


def read_event_log(path: Path) -> list[dict[str, Any]]:
    """The events of an HTCondor job event log, as plain dicts, via the htcondor bindings."""
    os.environ.setdefault("CONDOR_CONFIG", os.devnull)
    try:
        import htcondor
    except ImportError:
        raise ReportError(
            f"cannot read event log {path}: the htcondor Python bindings are not installed"
        ) from None
    if not os.access(path, os.R_OK):
        raise ReportError(f"cannot read event log {path}: permission denied")
    try:
        events = [
            {
                "type": event.type.name,
                "cluster": event.cluster,
                "proc": event.proc,
                "time": float(event.timestamp),
                **dict(event.items()),
            }
            for event in htcondor.JobEventLog(str(path)).events(stop_after=0)
        ]
    except Exception as exc:  # the bindings raise their own error types
        raise ReportError(f"cannot read event log {path}: {exc}") from None
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


def pool_attempts(events: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Group events into node attempts (one submitted cluster each), in submit order.

    A node whose submit file queues many jobs (the model search) is one cluster: its procs make
    one attempt, ended when all procs ended, with the first failed proc's exit code (DAGMan's
    rule, bin/multijob.py).
    """
    cluster_node: dict[tuple[int, int], str] = {}
    attempts: dict[str, list[dict[str, Any]]] = {}
    current: dict[tuple[int, int], dict[str, Any]] = {}
    open_segments: dict[tuple[int, int], list[Any]] = {}
    for event in sorted(events, key=lambda e: e["time"]):
        key = (event["cluster"], event["proc"])
        kind = event["type"]
        if kind == "SUBMIT":
            node = event_node(event) or event.get("_node")
            if node is None:
                continue
            cluster_node[key] = node
            earlier = attempts.get(node) or [{}]
            if event["proc"] > 0 and earlier[-1].get("cluster") == f"{event['cluster']}.0":
                earlier[-1]["procs"] += 1  # another job of the same cluster: the same attempt
                current[key] = earlier[-1]
                continue
            attempt = {
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
            current[key] = attempt
            attempts.setdefault(node, []).append(attempt)
            continue
        if kind == "POST_SCRIPT_TERMINATED":
            node = event_node(event) or cluster_node.get(key)
            if node in attempts:
                attempts[node][-1]["post_script_exit"] = event.get("ReturnValue")
            continue
        attempt = current.get(key)
        if attempt is None:
            continue
        if kind == "EXECUTE":
            attempt["started"] = attempt["started"] or event["time"]
            open_segments[key] = [event["time"], None]  # per proc: a cluster's procs interleave
            attempt["segments"].append(open_segments[key])
            attempt["state"] = "running"
            attempt["host"] = host_name(event.get("ExecuteHost")) or attempt["host"]
        elif kind == "IMAGE_SIZE" and number(event.get("MemoryUsage")) is not None:
            used = attempt["memory_used_mib"] or 0.0
            attempt["memory_used_mib"] = max(used, float(event["MemoryUsage"]))
        elif kind in {
            "JOB_EVICTED",
            "JOB_HELD",
            "SHADOW_EXCEPTION",
            "JOB_TERMINATED",
            "JOB_ABORTED",
        }:
            segment = open_segments.pop(key, None)
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
                attempt["procs_ended"] += 1
                attempt["state"] = (
                    "done" if attempt["procs_ended"] >= attempt["procs"] else "running"
                )
                attempt["ended"] = event["time"]
                failed = attempt["signal"] is not None or attempt["exit_code"] not in (None, 0)
                if failed:
                    pass  # the first failed proc's code is the node's
                elif event.get("TerminatedNormally", True):
                    attempt["exit_code"] = event.get("ReturnValue")
                else:
                    attempt["signal"] = event.get("TerminatedBySignal")
                if number(event.get("MemoryUsage")) is not None:
                    used = attempt["memory_used_mib"] or 0.0
                    attempt["memory_used_mib"] = max(used, float(event["MemoryUsage"]))
                if number(event.get("RequestMemory")) is not None:
                    attempt["memory_request_mib"] = float(event["RequestMemory"])
            elif kind == "JOB_ABORTED":
                attempt["procs_ended"] += 1
                attempt["state"] = "removed"
                attempt["ended"] = event["time"]
                attempt["removed"] = event.get("Reason")
        elif kind == "JOB_RELEASED":
            attempt["state"] = "idle"
    return attempts


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
    if since is not None:
        # Event logs are appended across runs: keep the jobs submitted since DAGMan started.
        recent = [e for e in events if e["time"] >= math.floor(since) - 5]
        if recent and len(recent) < len(events):
            notes.append("event logs hold earlier runs too: only jobs since DAGMan's start shown")
            clusters = {(e["cluster"], e["proc"]) for e in recent if e["type"] == "SUBMIT"}
            events = [e for e in events if (e["cluster"], e["proc"]) in clusters]
    grouped = pool_attempts(events)
    order = list(dag) + [n for n in grouped if n not in dag]
    nodes = []
    for name in order:
        if name not in grouped:
            nodes.append(not_run(name))
            continue
        for retry, attempt in enumerate(grouped[name]):
            if attempt["memory_request_mib"] is None:  # no terminate event: the submit file's
                request = node_paths(base, name, dag.get(name), retry)["request_memory_mib"]
                attempt["memory_request_mib"] = request
        node = node_from_pool(name, grouped[name])
        paths = node_paths(base, name, dag.get(name), node["attempts"] - 1)
        node["stderr_file"] = str(paths["error"]) if paths["error"] else None
        nodes.append(node)
    return nodes


def mark_done_earlier(
    nodes: list[dict[str, Any]], dag_path: Path, rescue_number: Any, notes: list[str]
) -> None:
    """Nodes a resumed DAGMan run skipped because its rescue DAG marked them DONE."""
    if not isinstance(rescue_number, int) or rescue_number < 1:
        return
    rescue = record(dag_path, f".rescue{rescue_number:03d}")
    try:
        text = rescue.read_text(encoding="utf-8", errors="replace")
    except OSError:
        notes.append(f"the run resumed from rescue DAG {rescue.name}, which is gone")
        return
    done = set(re.findall(r"^\s*DONE\s+(\S+)", text, re.MULTILINE | re.IGNORECASE))
    for node in nodes:
        if node["status"] == "not run" and node["name"] in done:
            node["status"] = "done (earlier run)"
    notes.append(f"the run resumed from {rescue.name}: nodes it marked DONE ran in an earlier run")


def not_run(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "status": "not run",
        "attempts": 0,
        "exit_code": None,
        "signal": None,
        "wall_s": None,
        "queued_s": None,
        "start": None,
        "end": None,
        "memory_used_mib": None,
        "memory_request_mib": None,
        "holds": [],
        "host": None,
        "attempt_list": [],
        "stderr_file": None,
    }


# ---------------------------------------------------------------------------- local runs


def load_local_run(
    path: Path, base: Path, dag: dict[str, dict[str, Any]], notes: list[str]
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Node records of the latest local run (a resumed run includes the run it continues)."""
    text = read_text(path, "local run records")
    records: list[dict[str, Any]] = []
    lines = text.splitlines()
    for number_, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            if number_ == len(lines):
                notes.append(f"{path.name}: incomplete last line ignored (runner still writing?)")
                continue
            raise ReportError(
                f"cannot read local run records {path}: line {number_} is not JSON"
            ) from None
        if not isinstance(record, dict):
            raise ReportError(
                f"cannot read local run records {path}: line {number_} is not an object"
            )
        records.append(record)
    starts = [i for i, r in enumerate(records) if r.get("event") == "run_start"]
    first = 0
    for i in reversed(starts):
        first = i
        if records[i].get("resumed_from") is None:
            break
    run_starts = [r for r in records[first:] if r.get("event") == "run_start"]
    attempts = [r for r in records[first:] if "node" in r and r.get("event") is None]
    info = {
        "file": str(path),
        "start_time": number(run_starts[0].get("time")) if run_starts else None,
        "resumed": len(run_starts) > 1,
        "run_start": run_starts[-1] if run_starts else None,
    }
    if run_starts and len(run_starts) > 1:
        notes.append(
            f"the local run was resumed {len(run_starts) - 1} time(s): attempts of all parts shown"
        )
    run_base = next((r.get("base_dir") for r in reversed(run_starts) if r.get("base_dir")), None)
    if run_base and Path(run_base).resolve() != base.resolve():
        notes.append(f"the local run records are for base directory {run_base}, not {base}")
    grouped: dict[str, list[dict[str, Any]]] = {}
    for record in attempts:
        grouped.setdefault(str(record["node"]), []).append(record)
    order = list(dag) + [n for n in grouped if n not in dag]
    nodes = []
    for name in order:
        if name not in grouped:
            nodes.append(not_run(name))
            continue
        recs = grouped[name]
        last = recs[-1]
        exit_code = last.get("exit_code")
        signal = last.get("signal")
        status = str(last.get("status") or ("ok" if exit_code == 0 and not signal else "failed"))
        peaks = [number(r.get("peak_rss_mib")) for r in recs]
        peak_values = [p for p in peaks if p is not None]
        runs = []
        for r in recs:
            start, end = number(r.get("start")), number(r.get("end"))
            runs.append(
                {
                    "attempt": r.get("attempt"),
                    "started": start,
                    "ended": end,
                    "segments": [[start, end]] if start is not None and end is not None else [],
                    "run_s": end - start if start is not None and end is not None else 0.0,
                    "queued_s": None,
                    "exit_code": r.get("exit_code"),
                    "signal": r.get("signal"),
                    "status": r.get("status"),
                    "memory_used_mib": number(r.get("peak_rss_mib")),
                    "memory_request_mib": number(r.get("request_memory_mib")),
                    "cmd": r.get("cmd"),
                }
            )
        stderr = last.get("stderr")
        stderr_file = None
        if stderr:
            candidate = Path(str(stderr))
            options = [candidate] if candidate.is_absolute() else []
            if not candidate.is_absolute():
                options += [Path(str(last.get("iwd") or base)) / candidate, base / candidate]
            stderr_file = next((p for p in options if p.is_file()), None)
        nodes.append(
            {
                "name": name,
                "status": status,
                "attempts": len(recs),
                "exit_code": exit_code,
                "signal": signal,
                "wall_s": sum(r["run_s"] for r in runs),
                "queued_s": None,
                "start": runs[0]["started"],
                "end": runs[-1]["ended"],
                "memory_used_mib": max(peak_values) if peak_values else None,
                "memory_request_mib": number(last.get("request_memory_mib")),
                "holds": [],
                "host": None,
                "attempt_list": runs,
                "stderr_file": str(stderr_file) if stderr_file else None,
            }
        )
    return nodes, info


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


def load_run(base: Path, dag_path: Path, notes: list[str]) -> dict[str, Any] | None:
    """The latest run of the DAG ``dag_path`` (None when it has no records).

    Only runs made for ``base`` count: a DAG rendered for another base directory (its
    ``VARS ALL_NODES BASE_DIR``) is refused, so a report never mixes two data sets.
    """
    name = dag_path.name
    metrics = load_dag_metrics(record(dag_path, ".metrics"))
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
    if lock.exists():
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


# ---------------------------------------------------------------------------- provenance


def provenance(models: list[dict[str, Any]], argv: list[str], notes: list[str]) -> dict[str, Any]:
    per_model = {m["version"]: m["provenance"] for m in models if m["provenance"]}
    hashes = {p.get("input_sha256") for p in per_model.values() if p.get("input_sha256")}
    if len(hashes) > 1:
        notes.append("the models were evaluated on different input data (input_sha256 differs)")
    return {
        "models": per_model,
        "report": {
            "generated_at": utc(time.time()),
            "host": socket.gethostname(),
            "git_commit": loanlib.git_commit(),
            "command": shlex.join(["bin/report.py", *argv]),
            "versions": loanlib.library_versions(
                ("matplotlib", "htcondor", "pandas", "scikit-learn", "numpy")
            ),
        },
    }


# ---------------------------------------------------------------------------- charts

COLORS = {"ok": "#2e7d32", "failed": "#c62828", "held": "#ef6c00", "other": "#1565c0"}


def _png(fig: Any) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return buffer.getvalue()


def make_charts(facts: dict[str, Any]) -> dict[str, bytes]:
    """PNG charts by file name: metrics by model, confusion matrices, node timeline, memory."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    charts: dict[str, bytes] = {}
    models = facts["results"]["models"]
    deployed = (facts["results"]["deployment"] or {}).get("candidate")
    if models:
        fig, ax = plt.subplots(figsize=(7, 3.8))
        width = 0.8 / len(models)
        for i, model in enumerate(models):
            xs = [j + (i - (len(models) - 1) / 2) * width for j in range(len(METRIC_KEYS))]
            values = [model[key] for key in METRIC_KEYS]
            label = f"{model['version']} {model['name']}" + (
                " (deployed)" if model["version"] == deployed else ""
            )
            bars = ax.bar(xs, values, width, label=label)
            ax.bar_label(bars, fmt="%.3f", fontsize=7, padding=1)
        ax.set_xticks(range(len(METRIC_KEYS)), METRIC_KEYS)
        ax.set_ylim(0, 1.1)
        ax.set_ylabel("score on the test split")
        ax.set_title("Metrics by model")
        ax.legend(fontsize=8, loc="lower right")
        charts["metrics_by_model.png"] = _png(fig)
    with_cm = [m for m in models if m["confusion_matrix"]]
    if with_cm:
        fig, axes = plt.subplots(1, len(with_cm), figsize=(3.4 * len(with_cm), 3.2), squeeze=False)
        for ax, model in zip(axes[0], with_cm, strict=True):
            cm = model["confusion_matrix"]
            ax.imshow(cm, cmap="Blues")
            top = max(max(row) for row in cm) or 1
            for r in range(2):
                for c in range(2):
                    color = "white" if cm[r][c] > top / 2 else "black"
                    ax.text(c, r, str(cm[r][c]), ha="center", va="center", color=color)
            ax.set_xticks([0, 1], ["pred 0", "pred 1"])
            ax.set_yticks([0, 1], ["true 0", "true 1"])
            ax.set_title(f"{model['version']} {model['name']}", fontsize=9)
        fig.suptitle("Confusion matrices (test split)")
        charts["confusion_matrices.png"] = _png(fig)
    run = facts["run"]
    ran = [n for n in (run or {}).get("nodes", []) if n["attempt_list"]]
    if ran:
        times = [
            t
            for n in ran
            for a in n["attempt_list"]
            for t in (a.get("submitted"), a.get("started"))
            if t is not None
        ]
        t0 = min(times) if times else 0.0
        fig, ax = plt.subplots(figsize=(8, 0.45 * len(ran) + 1.4))
        for y, node in enumerate(ran):
            for attempt in node["attempt_list"]:
                submitted, started = attempt.get("submitted"), attempt.get("started")
                if submitted is not None and started is not None:
                    ax.barh(
                        y, started - submitted, left=submitted - t0, color="#cfd8dc", height=0.5
                    )
                ok = attempt.get("exit_code") == 0 and not attempt.get("signal")
                color = COLORS["ok"] if ok else COLORS["failed"]
                if attempt.get("state") == "held":
                    color = COLORS["held"]
                for start, end in attempt["segments"]:
                    end = end if end is not None else time.time()
                    ax.barh(y, max(end - start, 0.3), left=start - t0, color=color, height=0.5)
        ax.set_yticks(range(len(ran)), [n["name"] for n in ran], fontsize=8)
        ax.invert_yaxis()
        ax.set_xlabel("seconds since the first job was submitted")
        ax.set_title("Node timeline (grey: queued, green: ran ok, red: failed, orange: held)")
        ax.grid(axis="x", alpha=0.3)
        charts["timeline.png"] = _png(fig)
    measured = [n for n in ran if n["memory_used_mib"] is not None or n["memory_request_mib"]]
    if measured:
        fig, ax = plt.subplots(figsize=(8, 0.45 * len(measured) + 1.4))
        for y, node in enumerate(measured):
            request, used = node["memory_request_mib"], node["memory_used_mib"]
            if request:
                ax.barh(
                    y, request, color="#cfd8dc", height=0.6, label="requested" if y == 0 else None
                )
                ax.plot([request * HIGH_USE] * 2, [y - 0.3, y + 0.3], color="#ef6c00", lw=1)
            if used is not None:
                color = COLORS["held"] if node["memory_flags"] else COLORS["other"]
                ax.barh(y, used, color=color, height=0.35, label="used (peak)" if y == 0 else None)
        ax.set_yticks(range(len(measured)), [n["name"] for n in measured], fontsize=8)
        ax.invert_yaxis()
        ax.set_xlabel("MiB (orange tick: 80% of the request)")
        ax.set_title("Memory used against memory requested")
        ax.legend(fontsize=8, loc="lower right")
        charts["memory.png"] = _png(fig)
    charts.update({name: _png(fig) for name, fig in leaderboard.chart(facts.get("search")).items()})
    return charts


# ---------------------------------------------------------------------------- rendering


def md_table(header: list[str], rows: list[list[Any]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in rows]
    return out


def text_table(header: list[str], rows: list[list[Any]]) -> list[str]:
    cells = [header] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return lines


def model_rows(facts: dict[str, Any]) -> list[list[Any]]:
    deployed = (facts["results"]["deployment"] or {}).get("candidate")
    return [
        [
            m["version"],
            m["name"],
            *(fmt(m[k]) for k in METRIC_KEYS),
            fmt(m["test_rows"]),
            "yes" if m["version"] == deployed else "",
        ]
        for m in facts["results"]["models"]
    ]


def decision_line(deployment: dict[str, Any] | None) -> str:
    if not deployment:
        return "No model evaluated or deployed yet."
    margin = deployment["margin"] or {}
    rule = {
        "precision": "higher precision",
        "f1": "equal precision, higher F1 (tie-break)",
        "tie": "full tie on precision and F1: the earlier version by rule",
        "only model": "the only evaluated model",
    }.get(str(deployment["rule"]), str(deployment["rule"]))
    text = (
        f"Deployed: {deployment['candidate']} ({deployment['model_name']}), rule: {rule}"
        f"; margin {margin.get('metric')} {signed(margin.get('value'))}"
    )
    if deployment["source"] == "manifest":
        text += f" (deployment manifest, deployed at {deployment.get('deployed_at')})"
    else:
        text += " (derived: " + deployment["note"] + ")"
    return text


def node_rows(nodes: list[dict[str, Any]]) -> list[list[Any]]:
    rows = []
    for n in nodes:
        exit_text = f"signal {n['signal']}" if n["signal"] else fmt(n["exit_code"])
        share = n.get("memory_use_share")
        rows.append(
            [
                n["name"],
                n["status"],
                n["attempts"],
                exit_text,
                fmt(n["queued_s"], 0) if n["queued_s"] is not None else "-",
                fmt(n["wall_s"], 1) if n["wall_s"] is not None else "-",
                f"{fmt(n['memory_used_mib'], 0)} / {fmt(n['memory_request_mib'], 0)}",
                f"{share:.0%}" if share is not None else "-",
                "; ".join(n["memory_flags"]) or "",
            ]
        )
    return rows


NODE_HEADER = [
    "node",
    "status",
    "attempts",
    "exit",
    "queued s",
    "wall s",
    "MiB used / req",
    "use",
    "flag",
]


def run_summary(run: dict[str, Any]) -> list[str]:
    lines = []
    metrics = run["metrics"]
    kind = {"pool": "HTCondor pool (DAGMan)", "local": "local runner", None: "unknown"}[run["kind"]]
    lines.append(f"Run: {kind}; DAG directory {run['dag_dir']}")
    if metrics:
        lines.append(
            f"DAG status {metrics['dag_status']} ({metrics['dag_status_name']}), exit code "
            f"{metrics['exitcode']}, duration {fmt(metrics['duration'], 2)} s "
            f"({utc(metrics['start_time'])} to {utc(metrics['end_time'])}); "
            f"nodes {metrics['nodes']}: {metrics['nodes_succeeded']} succeeded, "
            f"{metrics['nodes_failed']} failed"
            + (
                f"; jobs submitted {metrics['jobs_submitted']}, failed {metrics['jobs_failed']}"
                if metrics["format"] == 2
                else ""
            )
            + f" [{Path(run['dag']).name}.metrics format v{metrics['format']}, {metrics['client']} "
            f"{metrics['version']}]"
        )
    else:
        name = Path(run["dag"]).name
        lines.append(f"No {name}.metrics (DAG still running, or it never finished)")
    walls = [n["wall_s"] for n in run["nodes"] if n["wall_s"] is not None]
    if walls:
        ran = sum(1 for n in run["nodes"] if n["attempts"])
        busy, took = sum(walls), (metrics or {}).get("duration")
        comparison = ""
        if took and not (run["local"] or {}).get("resumed"):
            comparison = (
                f" (the DAG took {took:.1f} s: the rest is queueing, scheduling and waiting "
                "for parents)"
                if busy <= took
                else f" (the DAG took {took:.1f} s: nodes ran in parallel)"
            )
        lines.append(
            f"{ran} of {len(run['nodes'])} nodes ran; {busy:.1f} s of job run time in all"
            + comparison
        )
    return lines


def render_markdown(facts: dict[str, Any]) -> str:
    out = ["# Loan-approval pipeline report", ""]
    out.append(f"Base directory `{facts['base_dir']}`; generated {facts['generated_at']}.")
    out.append("")
    if facts["notes"]:
        out += ["**Notes**", ""] + [f"- {note}" for note in facts["notes"]] + [""]
    results = facts["results"]
    out += ["## Results", ""]
    if results["models"]:
        out += md_table(
            ["version", "model", *METRIC_KEYS, "test rows", "deployed"], model_rows(facts)
        )
    else:
        out.append("No metrics files yet (`staging/metrics/model_metrics_*.json`).")
    out += ["", decision_line(results["deployment"]), ""]
    deployment = results["deployment"] or {}
    if deployment.get("sha256_check"):
        out += [
            f"Deployed model file against the manifest's sha256: {deployment['sha256_check']}.",
            "",
        ]
    earlier = deployment.get("earlier")
    if earlier:
        out += [
            f"Against the earlier deployment ({earlier['candidate']} {earlier['model_name']}, "
            f"archived {earlier['stamp']}):",
            "",
        ]
        out += md_table(
            ["metric", "earlier", "now", "change"],
            [
                [
                    k,
                    fmt(earlier["metrics"].get(k)),
                    fmt(deployment["metrics"].get(k)),
                    signed(earlier["change"].get(k)),
                ]
                for k in METRIC_KEYS
            ],
        )
        out.append("")
    elif deployment.get("source") == "manifest":
        out += ["No earlier deployment archived (`model/archive/`).", ""]
    for chart, title in (
        ("metrics_by_model.png", "Metrics by model"),
        ("confusion_matrices.png", "Confusion matrices"),
    ):
        if chart in facts["charts"]:
            out += [f"![{title}]({chart})", ""]
    out += leaderboard.markdown(facts.get("search"), facts["charts"])
    run = facts["run"]
    out += ["## The run", ""]
    if not run:
        out += ["No DAG records (no metrics file, nodes log or local run records).", ""]
    else:
        out += [f"{line}." if not line.endswith(")") else line for line in run_summary(run)] + [""]
        if run["nodes"]:
            out += md_table(NODE_HEADER, node_rows(run["nodes"]))
            out += [
                "",
                "_wall s_: time on an execute slot (all attempts); _queued s_: submit to start. "
                f"Flags: use above {HIGH_USE:.0%} of the request (risk of a hold on pools that "
                f"enforce memory), or a request over {OVER_REQUEST:g}x the use. HTCondor samples "
                "memory periodically: a job of a few seconds can report far less than its real "
                "peak (1 MiB = not sampled), so measure before cutting a request.",
                "",
            ]
        for node in run["nodes"]:
            for hold in node["holds"]:
                out.append(
                    f"- **{node['name']} held** at {utc(hold['time'])} (code {hold['code']}, "
                    f"subcode {hold['subcode']}): {hold['reason']}"
                )
        if any(n["holds"] for n in run["nodes"]):
            out.append("")
        for node in run["nodes"]:
            if is_failed(node):
                out.append(f"### {node['name']}: {node['status']}")
                out.append("")
                if node.get("stderr_tail") is not None:
                    out += [f"Last lines of `{node['stderr_file']}`:", "", "```"]
                    out += node["stderr_tail"] or ["(empty)"]
                    out += ["```", ""]
                else:
                    out += ["No stderr file found for this node.", ""]
        for chart, title in (("timeline.png", "Node timeline"), ("memory.png", "Memory")):
            if chart in facts["charts"]:
                out += [f"![{title}]({chart})", ""]
        out += ["Read from: " + ", ".join(f"`{s}`" for s in run["sources"]), ""]
    out += ["## Provenance", ""]
    prov = facts["provenance"]
    if prov["models"]:
        rows = []
        for version, p in prov["models"].items():
            rows.append(
                [
                    version,
                    p.get("input_file"),
                    p.get("input_sha256"),
                    p.get("input_rows"),
                    json.dumps(p.get("parameters"), sort_keys=True),
                    ", ".join(f"{k} {v}" for k, v in (p.get("versions") or {}).items()),
                    p.get("git_commit"),
                    p.get("host"),
                ]
            )
        out += md_table(
            ["model", "input", "sha256", "rows", "parameters", "versions", "git commit", "host"],
            rows,
        )
    else:
        out.append("The metrics files carry no provenance (the original pipeline wrote none).")
    own = prov["report"]
    out += [
        "",
        f"This report: `{own['command']}` on {own['host']}, git commit {own['git_commit']}, "
        + ", ".join(f"{k} {v}" for k, v in own["versions"].items())
        + ".",
        "",
    ]
    return "\n".join(out)


def render_console(facts: dict[str, Any]) -> str:
    out = [f"Report for {facts['base_dir']}"]
    out += [f"note: {note}" for note in facts["notes"]]
    out.append("")
    if facts["results"]["models"]:
        out += text_table(
            ["version", "model", *METRIC_KEYS, "test rows", "deployed"], model_rows(facts)
        )
    else:
        out.append("No metrics files yet.")
    out.append(decision_line(facts["results"]["deployment"]))
    out += leaderboard.console(facts.get("search"))
    earlier = (facts["results"]["deployment"] or {}).get("earlier")
    if earlier:
        out.append(
            f"Change against the earlier deployment ({earlier['stamp']}): "
            + ", ".join(f"{k} {signed(v)}" for k, v in earlier["change"].items())
        )
    run = facts["run"]
    out.append("")
    if run:
        out += run_summary(run)
        if run["nodes"]:
            out += text_table(NODE_HEADER, node_rows(run["nodes"]))
        if any(
            n["memory_used_mib"] is not None and n["memory_used_mib"] <= 1 for n in run["nodes"]
        ):
            out.append(
                "memory: a use of 1 MiB means HTCondor did not sample the job before it ended; "
                "measure peak RSS before cutting such a request"
            )
        for node in run["nodes"]:
            for hold in node["holds"]:
                out.append(f"{node['name']} held (code {hold['code']}): {hold['reason']}")
            if is_failed(node):
                out.append(
                    f"{node['name']} {node['status']}; stderr tail ({node.get('stderr_file')}):"
                )
                out += ["    " + line for line in (node.get("stderr_tail") or ["(none)"])[-10:]]
    else:
        out.append("No DAG records.")
    return "\n".join(out)


# ---------------------------------------------------------------------------- output


def writable(directory: Path) -> bool:
    """Whether ``directory`` (or its nearest existing parent) may be written.

    Root passes every permission check, so for root a directory without any write bit counts
    as read-only too: the fixture of a real run must never be written into.
    """
    probe = directory
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    if not os.access(probe, os.W_OK):
        return False
    return not (os.geteuid() == 0 and probe.stat().st_mode & 0o222 == 0)


def choose_output(base: Path, output: str | None, notes: list[str]) -> Path:
    if output:
        return Path(output)
    target = base / "report"
    if writable(target):
        return target
    fallback = Path(tempfile.mkdtemp(prefix="loan-report-"))
    notes.append(
        f"{base} is not writable: report written to {fallback} instead (choose with --output DIR)"
    )
    return fallback


def build_facts(base: Path, dag_path: Path | None, argv: list[str]) -> dict[str, Any]:
    if not base.is_dir():
        raise ReportError(f"base directory {base} does not exist")
    notes: list[str] = []
    models = load_models(base)
    dag_path = dag_path if dag_path is not None else base / RUN_DIR / DAG_NAME
    run = load_run(base, dag_path, notes)
    if run is None:
        raise ReportError(
            f"no run of {dag_path.name} for this base directory: no records in {dag_path.parent}"
            + (f" ({notes[-1]})" if notes else "")
            + " (run the pipeline first: make local or make submit)"
        )
    deployment = load_deployment(base, models, notes)
    models = leaderboard.filter_models(models, deployment, base, notes)
    return {
        "report_version": REPORT_VERSION,
        "generated_at": utc(time.time()),
        "base_dir": str(base),
        "notes": notes,
        "results": {"models": models, "deployment": deployment},
        "search": leaderboard.load(base, notes) if leaderboard.searched(run) else None,
        "run": run,
        "provenance": provenance(models, argv, notes),
        "charts": {},
        "report_file": None,
    }


def write_report(facts: dict[str, Any], out_dir: Path) -> Path:
    charts = make_charts(facts)
    for name, data in charts.items():
        loanlib.write_bytes(data, out_dir / name)
        facts["charts"][name] = str(out_dir / name)
    report = out_dir / "report.md"
    facts["report_file"] = str(report)
    loanlib.write_text(render_markdown(facts), report)
    loanlib.write_text(json.dumps(facts, indent=2, default=str) + "\n", out_dir / "report.json")
    return report


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="report.py",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        epilog="Exit codes: 0 written; 2 nothing to report, unreadable input or bad usage; "
        "1 the report could not be written.",
    )
    parser.add_argument(
        "--base-dir",
        default=os.environ.get("BASE_DIR") or str(PROJECT_DIR / "data"),
        help="the pipeline's base directory (default: $BASE_DIR, else the repository's data/)",
    )
    parser.add_argument(
        "--dag",
        help="the DAG whose run to report; DAGMan's or the local runner's records are beside "
        f"it (default: BASE_DIR/{RUN_DIR}/{DAG_NAME})",
    )
    parser.add_argument(
        "--output",
        metavar="DIR",
        help="write report.md and the charts here (default: BASE_DIR/report/; a new temporary "
        "directory when the base directory is not writable)",
    )
    parser.add_argument("--json", action="store_true", help="print the facts as JSON on stdout")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    base = Path(args.base_dir).absolute()
    try:
        facts = build_facts(base, Path(args.dag).absolute() if args.dag else None, argv)
        out_dir = choose_output(base, args.output, facts["notes"])
        try:
            report = write_report(facts, out_dir)
        except OSError as exc:
            print(f"report: cannot write the report into {out_dir}: {exc}", file=sys.stderr)
            return EXIT_FAILURE
    except ReportError as exc:
        print(f"report: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("report: interrupted", file=sys.stderr)
        return 130
    if args.json:
        for note in facts["notes"]:
            print(f"report: note: {note}", file=sys.stderr)
        print(json.dumps(facts, indent=2, default=str))
    else:
        print(render_console(facts))
        print("")
        print(f"Report: {report}")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
