"""A local run's nodes for the report, from the local runner's records (``<dag>.local.jsonl``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from loanpipe.report.sources import (
    ReportError,
    in_dag_order,
    number,
    read_text,
)

# ---------------------------------------------------------------------------- local runs


def read_records(path: Path, notes: list[str]) -> list[dict[str, Any]]:
    """The JSON records of ``<dag>.local.jsonl``; an incomplete last line is left out."""
    records: list[dict[str, Any]] = []
    lines = read_text(path, "local run records").splitlines()
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
    return records


def latest_run(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The records of the latest run, and of the runs it resumed (back to a fresh start)."""
    starts = [i for i, r in enumerate(records) if r.get("event") == "run_start"]
    first = 0
    for i in reversed(starts):
        first = i
        if records[i].get("resumed_from") is None:
            break
    return records[first:]


def attempt_of(record: dict[str, Any]) -> dict[str, Any]:
    """One attempt record as the report's attempt facts."""
    start, end = number(record.get("start")), number(record.get("end"))
    timed = start is not None and end is not None
    return {
        "attempt": record.get("attempt"),
        "started": start,
        "ended": end,
        "segments": [[start, end]] if timed else [],
        "run_s": end - start if timed else 0.0,
        "queued_s": None,
        "exit_code": record.get("exit_code"),
        "signal": record.get("signal"),
        "status": record.get("status"),
        "memory_used_mib": number(record.get("peak_rss_mib")),
        "memory_request_mib": number(record.get("request_memory_mib")),
        "cmd": record.get("cmd"),
    }


def stderr_file(last: dict[str, Any], base: Path) -> Path | None:
    """The stderr file of a node's last attempt, found as the job saw it (relative to its Iwd)."""
    stderr = last.get("stderr")
    if not stderr:
        return None
    candidate = Path(str(stderr))
    options = [candidate] if candidate.is_absolute() else []
    if not candidate.is_absolute():
        options += [Path(str(last.get("iwd") or base)) / candidate, base / candidate]
    return next((p for p in options if p.is_file()), None)


def local_node(name: str, recs: list[dict[str, Any]], base: Path) -> dict[str, Any]:
    """A node's facts from its attempt records."""
    last = recs[-1]
    exit_code, signal = last.get("exit_code"), last.get("signal")
    status = str(last.get("status") or ("ok" if exit_code == 0 and not signal else "failed"))
    status = "skipped" if status == "pre_skipped" else status  # the pool's word for PRE_SKIP
    peaks = [p for p in (number(r.get("peak_rss_mib")) for r in recs) if p is not None]
    runs = [attempt_of(r) for r in recs]
    stderr = stderr_file(last, base)
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
        "memory_used_mib": max(peaks) if peaks else None,
        "memory_request_mib": number(last.get("request_memory_mib")),
        "holds": [],
        "host": None,
        "attempt_list": runs,
        "stderr_file": str(stderr) if stderr else None,
    }


def load_local_run(
    path: Path, base: Path, dag: dict[str, dict[str, Any]], notes: list[str]
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Node records of the latest local run (a resumed run includes the run it continues)."""
    records = latest_run(read_records(path, notes))
    run_starts = [r for r in records if r.get("event") == "run_start"]
    attempts = [r for r in records if "node" in r and r.get("event") is None]
    info = {
        "file": str(path),
        "start_time": number(run_starts[0].get("time")) if run_starts else None,
        "resumed": len(run_starts) > 1,
        "run_start": run_starts[-1] if run_starts else None,
    }
    if len(run_starts) > 1:
        notes.append(
            f"the local run was resumed {len(run_starts) - 1} time(s): attempts of all parts shown"
        )
    run_base = next((r.get("base_dir") for r in reversed(run_starts) if r.get("base_dir")), None)
    if run_base and Path(run_base).resolve() != base.resolve():
        notes.append(f"the local run records are for base directory {run_base}, not {base}")
    grouped: dict[str, list[dict[str, Any]]] = {}
    for record in attempts:
        grouped.setdefault(str(record["node"]), []).append(record)
    return in_dag_order(dag, grouped, lambda name, recs: local_node(name, recs, base)), info
