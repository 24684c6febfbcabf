"""The DAG's ``CONFIG`` file, as far as the local runner can honour it.

DAGMan reads its knobs from the file a DAG names with ``CONFIG``. The local runner behaves as
DAGMan does with ``DAGMAN_MAX_JOB_HOLDS = 1`` (a job HTCondor would hold is removed at once,
the project's setting) and the default ``DAGMAN_USE_STRICT = 1`` (a warning DAGMan makes fatal
stops the DAG); knobs that only change DAGMan's timing or logging do not matter on one machine.
Any other knob, or another value of those two, would make DAGMan behave otherwise: it is
refused in one line naming the file, the line and the knob.
"""

from __future__ import annotations

import re
from pathlib import Path

from loanpipe.dagman import Dag, DagError

REQUIRED = {"DAGMAN_MAX_JOB_HOLDS": "1", "DAGMAN_USE_STRICT": "1"}
# Knobs about when DAGMan polls, submits or logs: no effect on what a run does.
TIMING_ONLY = {
    "DAGMAN_USER_LOG_SCAN_INTERVAL",
    "DAGMAN_MAX_SUBMIT_ATTEMPTS",
    "DAGMAN_MAX_SUBMITS_PER_INTERVAL",
    "DAGMAN_SUBMIT_DELAY",
    "DAGMAN_HOLD_CLAIM_TIME",
    "DAGMAN_PENDING_REPORT_INTERVAL",
    "DAGMAN_CHECK_QUEUE_INTERVAL",
    "DAGMAN_DEBUG",
    "DAGMAN_VERBOSITY",
    "DAGMAN_LOG_ON_NFS_IS_ERROR",
    "MAX_DAGMAN_LOG",
}
ASSIGNMENT = re.compile(r"\s*([A-Za-z_][\w.]*)\s*=\s*(.*?)\s*$")


def check_config(dag: Dag) -> None:
    """DagError("FILE:LINE: ...") for a knob of ``dag``'s CONFIG file the local runner would
    not honour."""
    path: Path | None = dag.config
    if path is None:
        return
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError as exc:
        raise DagError(f"{path}:0: cannot read the DAG's CONFIG file: {exc.strerror}") from None
    for number, line in enumerate(lines, 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = ASSIGNMENT.match(line)
        if match is None:
            raise DagError(f"{path}:{number}: not a 'NAME = value' line")
        name, value = match.group(1).upper(), match.group(2)
        if name in TIMING_ONLY:
            continue
        if name in REQUIRED and value.lower() in (REQUIRED[name], f"{REQUIRED[name]}.0"):
            continue
        if name in REQUIRED:
            raise DagError(
                f"{path}:{number}: {name} = {value} is not supported by the local runner "
                f"(it behaves as DAGMan does with {name} = {REQUIRED[name]})"
            )
        raise DagError(f"{path}:{number}: {name} is not supported by the local runner")
