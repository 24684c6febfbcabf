#!/usr/bin/env python3
"""Render dag/paths.dag: the absolute paths every DAG node needs, as one VARS ALL_NODES line.

    VARS ALL_NODES BASE_DIR="/nfs/loans" PROJECT_DIR="/nfs/loan-pipeline" PYTHON="/nfs/.../python"

dagfile.dag INCLUDEs the file after its JOB lines; the submit files use $(BASE_DIR),
$(PROJECT_DIR) and $(PYTHON). The paths must be the same on the submit node and on every execute
node (a shared filesystem), so they must be absolute and must survive DAG and submit-file
quoting: VARS values are double-quoted (backslash escapes), `arguments` splits on whitespace,
`$(` starts a macro and `#` a comment. Anything outside a conservative character set is
refused with one `error:` line and exit code 2.

The base directory gets its output/, error/ and log/ folders (HTCondor does not create them).
If a rescue DAG (dagfile.dag.rescueNNN) exists, resuming it under another BASE_DIR would mix two
data sets, so a different BASE_DIR is refused unless --fresh (make ... FRESH=1) is given.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT / "scripts"))

import loanlib  # noqa: E402  (atomic writes)
from dagfile import rescue_files  # noqa: E402

DAG_NAME = "dagfile.dag"
LOG_DIRS = ("output", "error", "log")
# Letters, digits and / . _ - + @ = , : only. Everything else is refused, in particular
# whitespace (splits `arguments`), " and \ (VARS quoting), ' (new-syntax arguments), $ (macro
# expansion), # (comments), ; (environment), ( ) and non-ASCII characters.
SAFE_PATH = re.compile(r"[A-Za-z0-9/._+@=,:-]+")
VARS_LINE = re.compile(r"^VARS\s+ALL_NODES\s+(.*)$", re.IGNORECASE)
VAR_ITEM = re.compile(r'(\w+)="([^"]*)"')


class RenderError(Exception):
    """A path HTCondor cannot take, or a rescue DAG that a new BASE_DIR would corrupt."""


def check_path(what: str, value: str) -> str:
    """Return the normalised absolute path, or raise RenderError saying what is wrong."""
    if not value:
        raise RenderError(f"{what} is empty")
    if not os.path.isabs(value):
        raise RenderError(
            f"{what} {value!r} is relative: execute nodes do not share your working directory, "
            "give an absolute path on the shared filesystem"
        )
    bad = sorted({c for c in value if not SAFE_PATH.fullmatch(c)})
    if bad:
        shown = " ".join(repr(c) for c in bad)
        raise RenderError(
            f"{what} {value!r} contains {shown}: HTCondor's DAG and submit-file quoting cannot "
            "carry it; use a path of letters, digits and / . _ - + @ = , :"
        )
    return os.path.normpath(value)


def read_rendered(path: Path) -> dict[str, str]:
    """The VARS of an earlier rendering ({} if there is none)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return {}
    out: dict[str, str] = {}
    for line in text.splitlines():
        match = VARS_LINE.match(line.strip())
        if match:
            out.update(VAR_ITEM.findall(match.group(1)))
    return out


def render(base_dir: str, project_dir: str, python: str) -> str:
    """The text of paths.dag."""
    return (
        "# Rendered by bin/render_paths.py (make paths): do not edit, do not commit.\n"
        "# Absolute paths, identical on the submit node and every execute node.\n"
        f'VARS ALL_NODES BASE_DIR="{base_dir}" PROJECT_DIR="{project_dir}" PYTHON="{python}"\n'
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--base-dir",
        default=os.environ.get("BASE_DIR") or str(PROJECT / "data"),
        help="base directory on the shared filesystem (default: $BASE_DIR, else the repo's data/)",
    )
    parser.add_argument(
        "--project-dir", default=str(PROJECT), help="the checkout (default: %(default)s)"
    )
    parser.add_argument(
        "--python", help="interpreter the jobs run (default: PROJECT_DIR/.venv/bin/python)"
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=PROJECT / "dag" / "paths.dag",
        help="file to write (default: %(default)s)",
    )
    parser.add_argument(
        "--fresh",
        action="store_true",
        help="allow a new BASE_DIR although a rescue DAG of another BASE_DIR exists",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        base_dir = check_path("BASE_DIR", args.base_dir)
        project_dir = check_path("PROJECT_DIR", args.project_dir)
        python = check_path("PYTHON", args.python or os.path.join(project_dir, ".venv/bin/python"))
        output: Path = args.output
        previous = read_rendered(output).get("BASE_DIR")
        rescues = [p for _, p in rescue_files(output.parent / DAG_NAME)]
        if rescues and previous and previous != base_dir and not args.fresh:
            raise RenderError(
                f"{rescues[-1]} resumes a run over BASE_DIR={previous}, not {base_dir}: "
                f"use BASE_DIR={previous}, or FRESH=1 to start over"
            )
        for name in LOG_DIRS:
            Path(base_dir, name).mkdir(parents=True, exist_ok=True)
        loanlib.write_text(render(base_dir, project_dir, python), output)
    except RenderError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: {exc.filename or ''}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    print(f"render_paths: {output}: BASE_DIR={base_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
