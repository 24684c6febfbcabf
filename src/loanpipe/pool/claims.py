"""Claims ahead of the DAG: make submit's slots are matched in the negotiation cycle that its
own submission starts, not one cycle (20 s by default) later.

Why (HTCondor 24.0 and 25.0 with the negotiator's defaults, checked in their source):

- ``condor_submit_dag`` runs ``condor_submit``, which sends RESCHEDULE: the schedd starts the
  DAGMan job and asks the negotiator for a cycle at once. That cycle finds nothing to match:
  DAGMan submits its first node a second later. The negotiator then waits
  ``NEGOTIATOR_CYCLE_DELAY`` (20 s) after the end of a cycle before the next one
  (``Matchmaker::negotiationTime``), so the first node job waits about 20 s for a slot.
- One match of a partitionable slot gives the schedd claims for *every* idle job of the same
  request shape at that moment (``CLAIM_PARTITIONABLE_LEFTOVERS``, a schedd/startd default
  of ``$(NEGOTIATOR_USE_SLOT_WEIGHTS)``, i.e. true); jobs submitted later wait for the next
  cycle. A DAG has one job idle at its first match, so the second trainer of the two parallel
  branches waits for a claim to free up.

So ``make submit`` first queues ``submit/claims.sub``: N tiny jobs (``python -I -S -c pass``)
with the node jobs' own requests and requirements (it includes ``common.sub`` with the DAG's
values), ``keep_claim_idle`` set so that the schedd keeps each claim for the DAG's node jobs
after the tiny job exits, and ``SUBMIT_SEND_RESCHEDULE=False`` for that one condor_submit:
the RESCHEDULE of ``condor_submit_dag`` right after starts DAGMan and the one cycle that
matches them. N is the widest level of the DAG's graph (2 here: the two model branches), at
most ``MAX_CLAIMS``. Each claim is an ordinary match of this user (fair share applies); one
unused is given back after ``keep_claim_idle`` seconds. Nothing here is a pool setting:
``keep_claim_idle`` is a submit command and ``SUBMIT_SEND_RESCHEDULE`` configures only the
user's own condor_submit. Both exist in HTCondor 23.0, 24.0 and 25.0.

Best effort: when the claims cannot be queued the DAG is submitted as before (one line says
why); when condor_submit_dag fails they are removed.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from pathlib import Path

from loanpipe.dagman import DagError, parse_dag
from loanpipe.dagman.dag import Dag

MAX_CLAIMS = 4
CLAIMS_SUB = "claims.sub"  # in PROJECT_DIR/submit, beside the node submit files
# The submit file's macros taken from the rendered DAG's VARS ALL_NODES.
MACROS = ("BASE_DIR", "PROJECT_DIR", "PYTHON", "MEMORY_MB")


def widest_level(dag: Dag) -> int:
    """The most nodes at one depth of the graph (the FINAL node left out)."""
    depth: dict[str, int] = {}
    for name in dag.topological_order():
        node = dag.nodes[name]
        if node.final:
            continue
        depth[name] = 1 + max((depth[p] for p in node.parents), default=-1)
    counts: dict[int, int] = {}
    for level in depth.values():
        counts[level] = counts.get(level, 0) + 1
    return max(counts.values(), default=0)


def claims_command(dag_file: Path, count: int | None = None) -> list[str]:
    """condor_submit's arguments for the claims of the rendered DAG ``dag_file`` (``count``
    jobs; default: the DAG's widest level, at most MAX_CLAIMS).

    DagError when the DAG cannot be read or lacks the values make paths renders.
    """
    dag = parse_dag(dag_file)
    first = next((n for n in dag.nodes.values() if not n.final), None)
    missing = [m for m in MACROS[:3] if first is None or m not in first.vars]
    if first is None or missing:
        raise DagError(f"{dag_file}: no VARS ALL_NODES {', '.join(missing)} (make paths)")
    values = {m: first.vars[m] for m in MACROS if m in first.vars}
    count = min(widest_level(dag), MAX_CLAIMS) if count is None else count
    sub = Path(values["PROJECT_DIR"]) / "submit" / CLAIMS_SUB
    return [
        "condor_submit",
        "-batch-name",
        "claims",
        *(f"{key}={value}" for key, value in values.items()),
        f"CLAIMS_LOG={dag_file}.claims.log",
        f"CLAIMS={count}",
        str(sub),
    ]


def submit_claims(dag_file: Path, count: int | None = None) -> int | None:
    """Queue the claims; their cluster id, or None (said in one line) when they are not."""
    try:
        cmd = claims_command(dag_file, count)
    except (DagError, OSError) as exc:
        print(f"submit: no claims queued ahead of the DAG: {exc}")
        return None
    jobs = cmd[-2].split("=", 1)[1]
    if jobs == "0":
        return None
    env = {**os.environ, "_CONDOR_SUBMIT_SEND_RESCHEDULE": "False"}
    try:
        proc = subprocess.run(
            cmd, cwd=dag_file.parent, env=env, capture_output=True, text=True, check=False
        )
    except OSError as exc:
        print(f"submit: no claims queued ahead of the DAG: cannot run condor_submit: {exc}")
        return None
    cluster = parse_cluster(proc.stdout)
    if proc.returncode != 0 or cluster is None:
        why = proc.stderr.strip() or proc.stdout.strip() or f"exit {proc.returncode}"
        print(f"submit: no claims queued ahead of the DAG: {why.splitlines()[-1]}")
        return None
    print(f"submit: {jobs} claim job(s) queued ahead of the DAG (cluster {cluster})")
    return cluster


def parse_cluster(stdout: str) -> int | None:
    """The cluster of condor_submit's ``N job(s) submitted to cluster C.`` line."""
    for line in stdout.splitlines():
        if "submitted to cluster" in line:
            return int(line.rsplit(" ", 1)[1].rstrip("."))
    return None


def remove_claims(cluster: int | None, cwd: Path, run: Sequence[str] = ("condor_rm",)) -> None:
    """Remove the claims of a DAG that was not submitted."""
    if cluster is not None:
        subprocess.run([*run, str(cluster)], cwd=cwd, capture_output=True, check=False)
