"""A PRE or POST script's command line, with DAGMan's macros replaced (``Script::BackgroundRun``
in condor_dagman 25.0's ``script.cpp``).

The command is split on spaces and tabs; a word that *is* a macro, compared without regard to
case, is replaced (``$JOB``, ``$job``; ``x$JOB`` and ``$JOB.txt`` are not macros). A word that
starts with ``$`` and is no macro, or a POST-only macro in a PRE script, is a warning DAGMan's
default ``DAGMAN_USE_STRICT = 1`` makes fatal: the DAG stops (DagStatus 1) and the script never
runs; ``ScriptError`` says why.
"""

from __future__ import annotations

import os
from collections import Counter
from typing import Protocol

from loanpipe.dagman.status import DagStatus
from loanpipe.errors import LoanpipeError
from loanpipe.local.nodes import NodeState

# Macros a POST script may use and a PRE script may not.
POST_ONLY = (
    "$JOBID",
    "$CLUSTERID",
    "$JOB_COUNT",
    "$SUCCESS",
    "$RETURN",
    "$EXIT_CODES",
    "$EXIT_CODE_COUNTS",
    "$PRE_SCRIPT_RETURN",
    "$JOB_ABORT_COUNT",
)


class ScriptError(LoanpipeError):
    """A script argument DAGMan refuses at run time (fatal under DAGMAN_USE_STRICT = 1)."""


class RunCounts(Protocol):
    """What the macros read of the run."""

    states: dict[str, NodeState]
    dag_status: DagStatus


def run_values(run: RunCounts) -> dict[str, str]:
    """The macros every script may use that describe the whole DAG."""
    statuses = Counter(st.status for st in run.states.values())
    return {
        "$DAG_STATUS": str(int(run.dag_status)),
        "$FAILED_COUNT": str(statuses["failed"]),
        "$FUTILE_COUNT": str(statuses["futile"]),
        "$DONE_COUNT": str(statuses["done"]),
        "$QUEUED_COUNT": str(statuses["job"]),
        "$NODE_COUNT": str(len(run.states)),
        "$DAGID": str(os.getpid()),
    }


def post_values(st: NodeState) -> dict[str, str]:
    """The POST-only macros of node ``st``'s attempt."""
    exits = st.cluster.exits.values() if st.cluster is not None else []
    codes = Counter(code for code in exits if code >= 0)  # signals are no exit codes
    cluster = st.cluster_id if st.cluster_id is not None else 0
    return {
        "$JOBID": f"{cluster}.0",
        "$CLUSTERID": str(cluster),
        "$JOB_COUNT": str(st.cluster.started if st.cluster is not None else 0),
        "$SUCCESS": "True" if st.job_return == 0 else "False",
        "$RETURN": str(st.job_return if st.job_return is not None else -1),
        "$EXIT_CODES": ",".join(str(c) for c in sorted(codes)),
        "$EXIT_CODE_COUNTS": ",".join(f"{c}:{n}" for c, n in sorted(codes.items())),
        "$PRE_SCRIPT_RETURN": str(st.pre_exit if st.pre_exit is not None else -1),
        "$JOB_ABORT_COUNT": str(st.jobs_aborted),
    }


def command(st: NodeState, kind: str, run: RunCounts) -> list[str]:
    """The argv of node ``st``'s ``kind`` ("pre" or "post") script; ScriptError if DAGMan would
    stop the DAG instead of running it."""
    script = st.node.pre if kind == "pre" else st.node.post
    assert script is not None
    node = st.node
    values = {
        "$NODE": node.name,
        "$JOB": node.name,
        "$RETRY": str(st.retry),
        "$MAX_RETRIES": str(node.retry),
        **run_values(run),
    }
    post = post_values(st)
    argv = []
    for word in [script.executable, *script.args]:
        key = word.upper()
        if key in values:
            argv.append(values[key])
        elif key in post:
            if kind == "pre":
                raise ScriptError(
                    f"node {node.name}: {word} cannot be used in a PRE script (DAGMan stops the "
                    "DAG: DAGMAN_USE_STRICT)"
                )
            argv.append(post[key])
        elif word.startswith("$"):
            raise ScriptError(
                f"node {node.name}: unrecognized macro {word} in its {kind.upper()} script "
                "arguments (DAGMan stops the DAG: DAGMAN_USE_STRICT)"
            )
        else:
            argv.append(word)
    return argv
