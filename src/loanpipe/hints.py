"""The exact next ``make`` command for a base directory and DAG, as every hint prints it.

``make_command("watch", "/nfs/loans", ".../dags/tune.dag")`` is
``make watch BASE_DIR=/nfs/loans DAG=tune``: the settings are left out only where they are the
Makefile's defaults (the checkout's data/, dagfile), so the line works whatever run the
Makefile remembers.
"""

from __future__ import annotations

import shlex
from pathlib import Path

from loanpipe import config


def make_command(target: str, base_dir: Path | str | None, dag: Path | str | None = None) -> str:
    parts = ["make", target]
    if base_dir is not None and Path(base_dir) != config.DEFAULT_BASE_DIR:
        parts.append(f"BASE_DIR={shlex.quote(str(base_dir))}")
    stem = Path(dag).stem if dag is not None else Path(config.DEFAULT_DAG).stem
    if stem != Path(config.DEFAULT_DAG).stem:
        parts.append(f"DAG={stem}")
    return " ".join(parts)
