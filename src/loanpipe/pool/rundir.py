"""A pool run's directory: the rendered DAG, where DAGMan runs and writes its files (``Run``);
the one-line refusal any pool command may end in (``PoolError``); commands echoed and run there.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from loanpipe import hints
from loanpipe.dagman import DagError, parse_dag
from loanpipe.errors import EXIT_USAGE, LoanpipeError


class PoolError(LoanpipeError):
    """A one-line refusal (bad input, a run in the way); ``code`` is the exit code."""

    def __init__(self, message: str, code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.code = code


def run(cmd: Sequence[str], cwd: Path) -> int:
    """Echo and run a command in ``cwd``; its exit code (127 when it cannot start)."""
    print(f"+ (cd {cwd} && {' '.join(cmd)})", flush=True)
    try:
        return subprocess.call(list(cmd), cwd=cwd)
    except OSError as exc:
        print(f"pool: cannot run {cmd[0]}: {exc.strerror or exc}", file=sys.stderr)
        return 127


class Run:
    """The rendered DAG and the files of its runs (all in the DAG file's directory)."""

    def __init__(self, dag: Path) -> None:
        self.dag = dag.absolute()
        self.dir = self.dag.parent
        self.name = self.dag.name

    def file(self, suffix: str) -> Path:
        return self.dir / f"{self.name}{suffix}"

    def paths(self) -> dict[str, str]:
        """BASE_DIR, PROJECT_DIR and PYTHON of the rendered DAG (VARS ALL_NODES)."""
        try:
            dag = parse_dag(self.dag)
        except (DagError, OSError) as exc:
            raise PoolError(f"{self.dag}: {exc} (make paths renders it)") from None
        for node in dag.nodes.values():
            if node.vars.get("BASE_DIR"):
                return node.vars
        raise PoolError(f"{self.dag}: no BASE_DIR in its VARS (make paths renders it)")

    def base_dir(self) -> Path:
        return Path(self.paths()["BASE_DIR"])

    def hint(self, target: str) -> str:
        """The exact make command for ``target`` on this run's base directory and DAG."""
        return hints.make_command(target, self.dir.parent, self.dag)


def under_tmp(path: Path) -> bool:
    """DAGMan's own test (dagman_main.cpp): the node log's absolute path starts with /tmp."""
    return any(str(p).startswith("/tmp") for p in (path.absolute(), path.resolve()))
