"""Rescue DAGs, ``<dag>.rescueNNN``: found, applied on top of a DAG, and written.

A failed run leaves a rescue DAG (DAGMan's partial format, ``Dag::WriteRescue``, version 2.0.1):
``DONE`` lines for the nodes that finished and the RETRY lines. ``condor_submit_dag`` (and the
local runner) resume from the newest one; ``condor_submit_dag -f`` renames them ``*.old``.
"""

from __future__ import annotations

import time
from pathlib import Path

from loanpipe.dagman.dag import Dag
from loanpipe.dagman.parser import parse_into


def rescue_files(dag_path: str | Path) -> list[tuple[int, Path]]:
    """The rescue DAGs ``<dag>.rescueNNN`` beside ``dag_path``, oldest first, with their numbers.

    These are the files condor_submit_dag (and the local runner) resume from, the newest one;
    the ``*.old`` files ``condor_submit_dag -f`` renames them to do not count.
    """
    dag_path = Path(dag_path)
    found = []
    for path in dag_path.parent.glob(f"{dag_path.name}.rescue[0-9][0-9][0-9]"):
        found.append((int(path.name[-3:]), path))
    return sorted(found)


def apply_rescue(dag: Dag, rescue: str | Path) -> list[str]:
    """Apply a partial rescue DAG (``DONE node`` / ``RETRY`` lines) on top of a parsed ``dag``.

    DAGMan parses the newest ``<dag>.rescueNNN`` after the original DAG file, so its ``DONE``
    lines mark nodes that must not run again.  A ``DONE`` for a node that is no longer in the
    DAG is an error (DAGMan's default strictness).  Returns the nodes that are DONE afterwards.
    """
    parse_into(dag, rescue)
    return [name for name, node in dag.nodes.items() if node.done]


def rescue_text(dag: Dag, done: list[str], failed: list[str], notes: dict[str, str]) -> str:
    """A partial rescue DAG for ``dag``: ``DONE`` for each node of ``done``, each node's RETRY
    line, and ``notes`` (node -> comment) above a node's RETRY line."""
    now = time.gmtime()
    lines = [
        "# Rescue DAG file, created after running",
        f"#   the {dag.path.name} DAG file",
        f"# Created {now.tm_mon}/{now.tm_mday}/{now.tm_year} "
        f"{now.tm_hour:02d}:{now.tm_min:02d}:{now.tm_sec:02d} UTC",
        "# Rescue DAG version: 2.0.1 (partial)",
        "# (written by loanpipe.local, the project's local runner)",
        "#",
        f"# Total number of Nodes: {len(dag.nodes)}",
        f"# Nodes premarked DONE: {len(done)}",
        f"# Nodes that failed: {len(failed)}",
        "#   " + "".join(f"{n}," for n in failed) + "<ENDLIST>",
        "",
    ]
    for name, node in dag.nodes.items():
        if name in done:
            lines.append(f"DONE {name}")
        if node.retry > 0:
            if name in notes:
                lines.append(f"# {notes[name]}")
            unless = f" UNLESS-EXIT {node.unless_exit}" if node.unless_exit is not None else ""
            lines.append(f"RETRY {name} {node.retry}{unless}")
    return "\n".join(lines) + "\n"


def rescue_path(dag: Dag, number: int) -> Path:
    return Path(f"{dag.path}.rescue{number:03d}")
