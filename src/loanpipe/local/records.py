"""The local runner's run records and summaries: recovery after a killed runner, the rescue DAG,
DAGMan's metrics file, and the tables printed at the end of ``make local``.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from pathlib import Path
from typing import IO, Any

from loanpipe import config
from loanpipe.dagman import Dag, rescue
from loanpipe.dagman import metrics as dag_metrics
from loanpipe.dagman.status import DagStatus
from loanpipe.local.nodes import RunView
from loanpipe.stages import common

# --------------------------------------------------------------------------- run files


def recover(jsonl: Path) -> tuple[list[str], list[tuple[int, list[str]]]] | None:
    """What an earlier run that died without writing a rescue file had finished.

    Like DAGMan's recovery mode (which rereads the node job logs when it finds its lock file
    left behind), this rereads the records of the last run: if it has no run_end record, it
    died. Returns (nodes done in it, including those it had itself premarked done; the
    (pid, argv) of jobs it started and never reaped), or None when the last run ended normally.
    """
    try:
        lines = jsonl.read_text(encoding="utf-8").splitlines()
    except OSError:
        return None
    records = []
    for line in lines:
        with contextlib.suppress(json.JSONDecodeError):
            record = json.loads(line)
            if isinstance(record, dict):
                records.append(record)
    starts = [i for i, r in enumerate(records) if r.get("event") == "run_start"]
    if not starts or any(r.get("event") == "run_end" for r in records[starts[-1] :]):
        return None
    last = records[starts[-1] :]
    done = set(last[0].get("premarked_done") or [])
    # (node, attempt, proc) -> (pid, argv) of every job started and not known to have ended
    started: dict[tuple[Any, Any, Any], tuple[int, list[str]]] = {}
    for record in last[1:]:
        key = (record.get("node"), record.get("attempt"), record.get("proc", 0))
        if record.get("event") == "job_start":
            started[key] = (int(record["pid"]), list(record.get("cmd") or []))
        elif record.get("event") == "proc_end":
            started.pop(key, None)
        elif record.get("event") is None and "node" in record:
            for ended in [k for k in started if k[:2] == key[:2]]:
                del started[ended]
            if record.get("status") in ("done", "pre_skipped"):
                done.add(record["node"])
    return sorted(done), list(started.values())


def kill_orphan(pid: int, argv: list[str]) -> bool:
    """Kill the process group of a job a dead runner left running, if it is still that job."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[:-1]
    except OSError:
        return False
    if [part.decode(errors="replace") for part in cmdline] != argv:
        return False  # the pid now belongs to another program
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
        return True
    return False


def write_rescue(dag: Dag, runner: RunView, number: int) -> Path:
    """DAGMan's partial rescue DAG for this run (dagman.rescue writes the format)."""
    # DAGMan never marks the FINAL node DONE in a rescue DAG (Dag::WriteRescue).
    done = [n for n, s in runner.states.items() if s.status == "done" and not s.node.final]
    failed = [n for n, s in runner.states.items() if s.status == "failed"]
    notes = {}
    for name, node in dag.nodes.items():
        st = runner.states[name]
        if (
            st.status == "failed"
            and st.retry < node.retry
            and node.unless_exit is not None
            and st.retval == node.unless_exit
        ):
            notes[name] = (
                f"{st.retry} of {node.retry} retries performed; remaining attempts "
                f"aborted after node returned {st.retval}"
            )
    path = rescue.rescue_path(dag, number)
    common.write_text(rescue.rescue_text(dag, done, failed, notes), path)
    return path


def write_metrics(
    dag: Dag, runner: RunView, start: float, exitcode: int, status: int, rescue_num: int
) -> None:
    """``<dag>.metrics`` as condor_dagman writes it (version 2), for this run."""
    ran = [s for s in runner.states.values() if not s.premarked]
    record = dag_metrics.local_metrics(
        start=start,
        end=time.time(),
        exitcode=exitcode,
        status=DagStatus(status),
        dagman_id=f"local.{os.getpid()}",
        rescue_dag_number=rescue_num,
        nodes=len(dag.nodes),
        nodes_premarked_done=sum(1 for s in runner.states.values() if s.premarked),
        nodes_failed=sum(1 for s in ran if s.status == "failed"),
        nodes_succeeded=sum(1 for s in ran if s.status == "done"),
        nodes_futile=sum(1 for s in ran if s.status == "futile"),
        total_nodes_run=sum(1 for s in ran if s.status in ("done", "failed")),
        jobs_submitted=runner.jobs_submitted,
        jobs_succeeded=runner.jobs_succeeded,
        jobs_failed=runner.jobs_failed,
    )
    common.write_text(json.dumps(record, indent=4) + "\n", dag_metrics.path_of(dag.path))


def print_failures(runner: RunView, out: IO[str], lines: int = 3) -> None:
    """For each failed node: why, and the last lines of its job's stderr."""
    for name, st in runner.states.items():
        if (st.final or st.status) != "failed":
            continue
        print(f"\n{name} failed" + (f": {st.error}" if st.error else ""), file=out)
        if st.spec is None:
            continue
        try:
            text = Path(st.spec.stderr).read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        for line in [t for t in text.splitlines() if t.strip()][-lines:]:
            print(f"  | {line}", file=out)
        print(f"  (stderr: {st.spec.stderr})", file=out)


def print_table(runner: RunView, out: IO[str]) -> None:
    rows = [("node", "status", "attempts", "wall s", "exit", "peak MiB")]
    for name, st in runner.states.items():
        status = "done (earlier run)" if st.premarked else (st.final or st.status)
        rows.append(
            (
                name,
                status,
                str(st.attempts),
                f"{st.wall:.1f}" if st.attempts else "-",
                "-" if st.retval is None else str(st.retval),
                "-" if st.peak_rss_mib is None else f"{st.peak_rss_mib:.0f}",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    print(file=out)
    for r in rows:
        print(
            "  ".join(
                c.ljust(w) if i < 2 else c.rjust(w)
                for i, (c, w) in enumerate(zip(r, widths, strict=True))
            ),
            file=out,
        )


METRIC_KEYS = ("Accuracy", "Precision", "Recall", "F1 Score")
RULE_TEXT = {
    "precision": "higher precision",
    "f1": "equal precision, higher F1 score",
    "tie": "equal precision and F1 score: v1 wins a full tie",
}


def print_deployment(base_dirs: list[Path], start: float, out: IO[str]) -> None:
    """Which model the run deployed and why, from the deployment manifest and the candidates."""
    for base in base_dirs:
        manifest = config.Layout(base).manifest
        if not manifest.is_file():
            continue
        try:
            info = json.loads(manifest.read_text(encoding="utf-8"))
            candidates = info.get("candidates") or {}
            winner = str(info["candidate"])
        except (OSError, ValueError, KeyError, AttributeError) as exc:
            print(f"\ndeployed model: cannot read {manifest}: {exc}", file=out)
            continue
        when = "" if manifest.stat().st_mtime >= start else " (from an earlier run)"
        margin = info.get("margin") or {}
        why = RULE_TEXT.get(str(info.get("rule")), str(info.get("rule")))
        if margin.get("value"):
            why += f", by {margin['value']:.4f} {margin.get('metric', '')}".rstrip()
        print(f"\ndeployed{when}: {info.get('model_name')} ({winner}): {why}", file=out)
        names = sorted(candidates) or [winner]
        labels = {
            v: f"{v} {(candidates.get(v) or info.get('metrics') or {}).get('Model name', '')}"
            + (" *" if v == winner else "")
            for v in names
        }
        width = max(24, *(len(label) + 1 for label in labels.values()))
        print(f"  {'model':<{width}}" + "".join(f"{k:>11}" for k in METRIC_KEYS), file=out)
        for version in names:
            metrics = candidates.get(version) or info.get("metrics") or {}
            label = labels[version]
            values = "".join(
                f"{metrics[k]:>11.4f}" if isinstance(metrics.get(k), int | float) else f"{'-':>11}"
                for k in METRIC_KEYS
            )
            print(f"  {label:<{width}}{values}", file=out)
        print(
            f"  model: {base / 'model' / str(info.get('model_file', 'deployed_model.pkl'))}",
            file=out,
        )
