"""Differential runs: one DAG through condor_dagman on the pool and through the local runner.

Used by tests/test_dagman_parity.py. A ``Case`` is a small DAG (its text, plus any scripts or
submit files it names) whose jobs and scripts append one line each to a file ``trace`` in the
DAG's directory. ``run_cases`` writes every case twice, submits all the pool copies at once
(``condor_submit_dag``, as the pool's user, outside /tmp), runs the local copies meanwhile
(``python -m loanpipe.local``, what ``make local`` runs), waits for the pool, and returns a
``Summary`` per case and runner. Two summaries compare equal when both runners did the same:

- ``exit``: the exit code (condor_dagman's, from its ``.dagman.out``; the local runner's);
- ``dag_status``, ``metrics``: DagStatus and node counts of the ``.metrics`` file;
- ``nodes``: each node's outcome (done, failed, futile, not run), from DAGMan's node status
  file (the harness adds a ``NODE_STATUS_FILE`` line to each case) and the local run_end record;
- ``trace``: the lines jobs and scripts wrote (sorted: parallel nodes may interleave; a case
  that needs an order checks ``order`` too), so what ran, how often, and with what values;
- ``rescue``: each rescue DAG's name, DONE lines and failed-node list.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path

import pool_harness as ph
from conftest import run_runner

from loanpipe.dagman import metrics as dag_metrics

# Every node of a case runs this unless the case gives its own submit file: a shell command
# from the node's VARS, a line in the trace first (so a failing command still shows it ran).
NODE_SUB = """\
executable = /bin/sh
arguments = "-c '$(cmd)'"
output = $(JOB).$(RETRY).out
error = $(JOB).$(RETRY).err
log = nodes.log
getenv = PATH
queue
"""
# A script every case may use: appends its arguments to the trace, exits with the first one.
TRACE_SH = """\
code=$1; shift
echo "$*" >> trace
exit $code
"""
WAIT_S = 300  # safety net for a hung DAG; never asserted on
METRIC_KEYS = ("exitcode", "nodes", "nodes_failed", "nodes_succeeded", "total_nodes_run")
# NodeStatus numbers (loanpipe.dagman.status.NodeStatus) and the local runner's final states.
POOL_STATE = {5: "done", 6: "failed", 7: "futile"}
LOCAL_STATE = {"done": "done", "noop": "done", "pre_skipped": "done", "failed": "failed"}
LOCAL_STATE.update(futile="futile")


@dataclass
class Case:
    name: str
    dag: str  # the DAG file's text (dedented); the file is <name>.dag
    files: dict[str, str] = field(default_factory=dict)  # more files beside it (scripts, ...)
    env: dict[str, str] = field(default_factory=dict)  # _CONDOR_ settings for DAGMan

    def write(self, folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        files = {"node.sub": NODE_SUB, "trace.sh": TRACE_SH, **self.files}
        for rel, text in files.items():
            (folder / rel).write_text(text)
        dag = folder / f"{self.name}.dag"
        body = textwrap.dedent(self.dag).lstrip("\n")
        dag.write_bytes((body + f"NODE_STATUS_FILE {self.name}.status\n").encode("latin-1"))
        return dag


@dataclass
class Summary:
    exit: int | None
    dag_status: int | None
    metrics: dict[str, int | None]
    nodes: dict[str, str]
    trace: list[str]
    rescue: dict[str, dict[str, list[str]]]
    order: list[str] = field(default_factory=list, compare=False)  # trace lines as written
    folder: Path = field(default=Path(), compare=False)  # where the case ran
    log: str = field(default="", compare=False, repr=False)  # for failure messages

    def facts(self) -> dict:
        return {k: v for k, v in vars(self).items() if k not in ("order", "log", "folder")}


def read_trace(folder: Path) -> list[str]:
    path = folder / "trace"
    return path.read_text().splitlines() if path.exists() else []


def rescue_facts(folder: Path, dag: str) -> dict[str, dict[str, list[str]]]:
    out = {}
    for path in sorted(folder.glob(f"{dag}.rescue[0-9][0-9][0-9]")):
        text = path.read_text()
        failed = re.search(r"^#   (.*)<ENDLIST>$", text, re.MULTILINE)
        out[path.name[len(dag) + 1 :]] = {
            "done": sorted(ln.split()[1] for ln in text.splitlines() if ln.startswith("DONE ")),
            "failed": sorted(filter(None, failed.group(1).split(","))) if failed else [],
        }
    return out


def metrics_facts(path: Path) -> tuple[int | None, dict[str, int | None]]:
    if not path.exists():
        return None, {}
    # The project's one reader: DAGMan 24.0 writes version 1 (jobs_*), 25.0 version 2 (nodes_*).
    facts = dag_metrics.normalise(json.loads(path.read_text()), path)
    return facts["dag_status"], {k: facts.get(k) for k in METRIC_KEYS}


def pool_summary(folder: Path, case: Case) -> Summary:
    import classad2

    dag = f"{case.name}.dag"
    out = (folder / f"{dag}.dagman.out").read_text(errors="replace")
    code = re.findall(r"EXITING WITH STATUS (\d+)", out)
    nodes = {}
    status_file = folder / f"{case.name}.status"
    if status_file.exists():
        for ad in classad2.parseAds(status_file.read_text(), classad2.ParserType.New):
            if ad.get("Type") == "NodeStatus":
                nodes[str(ad["Node"])] = POOL_STATE.get(int(ad["NodeStatus"]), "not run")
    status, metrics = metrics_facts(folder / f"{dag}.metrics")
    trace = read_trace(folder)
    return Summary(
        exit=int(code[-1]) if code else None,
        dag_status=status,
        metrics=metrics,
        nodes=nodes,
        trace=sorted(trace),
        rescue=rescue_facts(folder, dag),
        order=trace,
        log=out[-3000:],
        folder=folder,
    )


def local_summary(folder: Path, case: Case, proc: subprocess.CompletedProcess) -> Summary:
    dag = f"{case.name}.dag"
    nodes: dict[str, str] = {}
    jsonl = folder / f"{dag}.local.jsonl"
    if jsonl.exists():
        ends = [json.loads(ln) for ln in jsonl.read_text().splitlines() if '"run_end"' in ln]
        if ends:
            nodes = {n: LOCAL_STATE.get(s, "not run") for n, s in ends[-1]["nodes"].items()}
    status, metrics = metrics_facts(folder / f"{dag}.metrics")
    trace = read_trace(folder)
    return Summary(
        exit=proc.returncode,
        dag_status=status,
        metrics=metrics,
        nodes=nodes,
        trace=sorted(trace),
        rescue=rescue_facts(folder, dag),
        order=trace,
        log=(proc.stdout + proc.stderr)[-3000:],
        folder=folder,
    )


def submit_all(pool: ph.Pool, folders: dict[str, Path], cases: dict[str, Case]) -> None:
    """condor_submit_dag every case, as the pool's user (DAGMan polling its logs every second)."""
    for name, folder in folders.items():
        env = {"_CONDOR_DAGMAN_USER_LOG_SCAN_INTERVAL": "1", **cases[name].env}
        assigns = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
        cmd = f"cd {folder} && {assigns} condor_submit_dag -batch-name parity-{name} {name}.dag"
        proc = pool.sh(cmd, timeout=120)
        assert proc.returncode == 0, f"{name}: {proc.stdout}{proc.stderr}"


def wait_all(pool: ph.Pool, folders: dict[str, Path]) -> None:
    for name, folder in folders.items():
        log = folder / f"{name}.dag.dagman.log"
        proc = pool.sh(f"condor_wait -wait {WAIT_S} {log}", timeout=WAIT_S + 60)
        assert proc.returncode == 0, f"{name}: DAGMan did not finish: {proc.stdout}{proc.stderr}"


def run_cases(
    pool: ph.Pool, session: Path, local_root: Path, cases: list[Case]
) -> dict[str, tuple[Summary, Summary]]:
    """name -> (DAGMan's summary, the local runner's summary) for every case."""
    by_name = {case.name: case for case in cases}
    pool_dirs = {case.name: session / "parity" / case.name for case in cases}
    for case in cases:
        case.write(pool_dirs[case.name])
    pool.chown(session / "parity")
    submit_all(pool, pool_dirs, by_name)
    local = {}
    for case in cases:
        folder = local_root / case.name
        dag = case.write(folder)
        local[case.name] = local_summary(folder, case, run_runner(dag, "-j", "4"))
    wait_all(pool, pool_dirs)
    return {name: (pool_summary(pool_dirs[name], by_name[name]), local[name]) for name in by_name}


def explain(name: str, dagman: Summary, local: Summary) -> str:
    """A failure message: both summaries and the end of each runner's log."""
    return (
        f"case {name}\nDAGMan: {dagman.facts()}\nlocal:  {local.facts()}\n"
        f"--- DAGMan's log (end)\n{dagman.log}\n--- local runner's output (end)\n{local.log}"
    )


def main() -> int:
    """``python tests/dagman_diff.py CASE...``: run cases of test_dagman_parity by hand."""
    import test_dagman_parity as cases_module

    mode, where = ph.locate()
    if mode == "skip":
        print(where)
        return 1
    pool = ph.start_pool(mode, where)
    wanted = [c for c in cases_module.CASES if not sys.argv[1:] or c.name in sys.argv[1:]]
    session = ph.session_dir(pool)
    local_root = Path(os.environ.get("TMPDIR", "/tmp")) / f"parity-{time.time():.0f}"
    for name, (dagman, local) in run_cases(pool, session, local_root, wanted).items():
        same = dagman.facts() == local.facts()
        print(f"{name}: {'same' if same else 'DIFFERENT'}")
        print(f"  DAGMan: {dagman.facts()}\n  local:  {local.facts()}")
    if os.environ.get("POOL_KEEP") != "1":
        shutil.rmtree(session, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
