"""The files a DAG run leaves in a base directory, read for the report: the rendered DAG and its
submit files (where each node's output, stderr and log are), DAGMan's metrics file, and the
helpers both kinds of run (pool, local) share. Errors are ReportError, one line for the user.
"""

from __future__ import annotations

import json
import math
import os
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from loanpipe import config
from loanpipe.dagman import DagError, parse_dag
from loanpipe.dagman import metrics as dag_metrics
from loanpipe.dagman import submit as submit_file
from loanpipe.errors import LoanpipeError

DAG_NAME = config.DEFAULT_DAG
RUN_DIR = config.RUN_DIR  # where make paths renders a base directory's DAGs and their runs live
HIGH_USE = 0.8  # flag memory use above this share of the request
OVER_REQUEST = 5.0  # flag requests more than this many times the use
STDERR_TAIL_LINES = 20
# "skipped": PRE_SKIP, unchanged since its last success (loanpipe.fingerprint)
OK_STATUSES = {"ok", "done", "success", "succeeded", "skipped"}


class ReportError(LoanpipeError):
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


def node_submit(node: str, info: dict[str, Any] | None, retry: int) -> Any:
    """The node's submit file for attempt ``retry``, loaded as DAGMan submits it (its VARS,
    JOB, RETRY; loanpipe.dagman.submit); None when it is missing or does not parse."""
    path = Path(info["submit"]) if info and info.get("submit") else None
    if path is None or not path.is_file():
        return None
    macros = submit_file.node_macros(node, info["vars"], retry)
    try:
        return submit_file.load(path, macros, Path(info["dir"]))
    except submit_file.SubmitError:
        return None


def node_paths(base: Path, node: str, info: dict[str, Any] | None, retry: int) -> dict[str, Any]:
    """The node job's event log and stderr for attempt ``retry``, and its memory request.

    Paths come from the node's submit file (expanded as DAGMan submits it); a path that does
    not exist here (a run copied from another machine) is looked up under the base directory
    by its last two components; last, by the project's names.
    """
    submit = node_submit(node, info, retry)

    def value(key: str) -> str | None:
        return submit_file.expand(submit, key) if submit is not None else None

    iwd = Path(info["dir"]) if info else base
    initialdir = value("initialdir")
    if initialdir:
        iwd = iwd / initialdir
    short = node.split(":")[0]
    names = {
        "log": ["log/{n}.log"],
        "error": ["error/{n}.{r}.err", "error/{n}.err"],
    }
    found: dict[str, Any] = {}
    for key, patterns in names.items():
        options: list[Path] = []
        raw = value(key)
        if raw:
            path = Path(raw)
            path = path if path.is_absolute() else iwd / path
            options += [path, base / path.parent.name / path.name]
        for pattern in patterns:
            for name in dict.fromkeys((node, short)):
                options.append(base / pattern.format(n=name, r=retry))
        found[key] = next((p for p in options if p.is_file()), None)
    found["request_memory_mib"] = memory_mib(value("request_memory"))
    return found


def load_dag_metrics(path: Path) -> dict[str, Any] | None:
    """DAGMan's ``.metrics`` file, version 1 (23.x, 24.0) or 2 (24.2+), in one shape."""
    if not path.exists():
        return None
    data = read_json(path, "DAGMan metrics file")
    if not isinstance(data, dict):
        raise ReportError(f"cannot read DAGMan metrics file {path}: not a JSON object")
    return dag_metrics.normalise(data, path)


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
