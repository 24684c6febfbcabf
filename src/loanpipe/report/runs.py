"""The run half of ``make report``: a DAG run's records, read into plain facts.

DAGMan's metrics file, the node event logs of a pool run (with the htcondor bindings), the
local runner's ``<dag>.local.jsonl``; the submit files say where each node's stderr and
request are. loanpipe.report.builder calls :func:`load_run`; rendering is loanpipe.report.render.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from loanpipe.dagman import events as event_log
from loanpipe.dagman import metrics as dag_metrics
from loanpipe.dagman import submit as submit_file
from loanpipe.dagman.dag import DagError, parse_dag

DAG_NAME = "dagfile.dag"
RUN_DIR = "dags"  # where make paths renders a base directory's DAGs and their runs live
HIGH_USE = 0.8  # flag memory use above this share of the request
OVER_REQUEST = 5.0  # flag requests more than this many times the use
STDERR_TAIL_LINES = 20
OK_STATUSES = {"ok", "done", "success", "succeeded"}


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
    """A submit file's definitions, unexpanded, keys lower-cased, includes read
    (loanpipe.dagman.submit); {} when it is missing or does not parse."""
    return submit_file.read_submit(path)


def expand(value: str, macros: dict[str, str]) -> str:
    """``value`` with the macros expanded as condor_submit would ($INT() included)."""
    return submit_file.expand_value(value, macros)


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
    return dag_metrics.normalise(data, path)


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


def pool_attempts(events: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Group events into node attempts (one submitted cluster each), in submit order.

    A node whose submit file queues many jobs (the model search) is one cluster: its procs make
    one attempt, ended when all procs ended, with the first failed proc's exit code (DAGMan's
    rule, loanpipe.local.cluster).
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

    def pool_node(name: str, attempts: list[dict[str, Any]]) -> dict[str, Any]:
        for retry, attempt in enumerate(attempts):
            if attempt["memory_request_mib"] is None:  # no terminate event: the submit file's
                request = node_paths(base, name, dag.get(name), retry)["request_memory_mib"]
                attempt["memory_request_mib"] = request
        node = node_from_pool(name, attempts)
        paths = node_paths(base, name, dag.get(name), node["attempts"] - 1)
        node["stderr_file"] = str(paths["error"]) if paths["error"] else None
        return node

    return in_dag_order(dag, pool_attempts(events), pool_node)


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


def in_dag_order(
    dag: dict[str, Any],
    grouped: dict[str, list[dict[str, Any]]],
    build: Callable[[str, list[dict[str, Any]]], dict[str, Any]],
) -> list[dict[str, Any]]:
    """One node per DAG node, in the DAG's order, then any node the records name that the DAG
    does not: ``build(name, its records)`` for a node that ran, not_run(name) for one that did
    not. Shared by the pool's and the local runner's records."""
    order = list(dag) + [name for name in grouped if name not in dag]
    return [build(name, grouped[name]) if name in grouped else not_run(name) for name in order]


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

    def local_node(name: str, recs: list[dict[str, Any]]) -> dict[str, Any]:
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
        return {
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

    return in_dag_order(dag, grouped, local_node), info


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
