#!/usr/bin/env python3
"""Render a DAG for one base directory: BASE_DIR/dags/<name>.dag from the checkout's dag/<name>.dag.

    make paths BASE_DIR=/nfs/loans          ->  /nfs/loans/dags/dagfile.dag
    make paths BASE_DIR=/nfs/loans DAG=tune ->  /nfs/loans/dags/tune.dag

The rendered file is the static DAG's text with every file it names made absolute (the submit
file of each JOB, the CONFIG file, a SCRIPT's program when it is a file beside the DAG), INCLUDEd
DAG files inlined, a SCRIPT's .py program run by the jobs' Python (@DAG_FILE@ in its arguments
replaced by the rendered DAG's path), and one last line giving every node its paths:

    VARS ALL_NODES BASE_DIR="/nfs/loans" PROJECT_DIR="/nfs/loan-pipeline" PYTHON="/nfs/.../python"

(last, because VARS ALL_NODES reaches only the nodes defined before it), then, for the FINAL
node, which ALL_NODES skips, the same paths on a line of its own plus DAG_FILE, the rendered DAG
whose run it reports. DAGMan, or the local
runner, runs in BASE_DIR/dags and keeps its records there (metrics, node logs, rescue DAGs,
lock), so each base directory has its own runs, and `cd BASE_DIR/dags && condor_submit_dag
dagfile.dag` works by hand.

The paths must be the same on the submit node and on every execute node (a shared filesystem),
so they must be absolute and must survive DAG and submit-file quoting: VARS values are
double-quoted (backslash escapes), `arguments` splits on whitespace, `$(` starts a macro and `#` a
comment. Anything outside a conservative character set is refused with one `error:` line and
exit code 2. The base directory gets its dags/, output/, error/ and log/ folders (HTCondor does
not create them).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

from loanpipe import config
from loanpipe.dagman.parser import MAX_INCLUDE_DEPTH  # as DAGMan nests INCLUDEs
from loanpipe.errors import LoanpipeError
from loanpipe.sizing import vars_text as memory_vars  # request_memory per input
from loanpipe.stages import common  # atomic writes

# Letters, digits and / . _ - + @ = , : only. Everything else is refused, in particular
# whitespace (splits `arguments`), " and \ (VARS quoting), ' (new-syntax arguments), $ (macro
# expansion), # (comments), ; (environment), ( ) and non-ASCII characters.
SAFE_PATH = re.compile(r"[A-Za-z0-9/._+@=,:-]+")
VARS_LINE = re.compile(r"^VARS\s+ALL_NODES\s+(.*)$", re.IGNORECASE)
VAR_ITEM = re.compile(r'(\w+)="([^"]*)"')
WORD = re.compile(r"\S+")
SCRIPT_KINDS = ("PRE", "POST", "HOLD")
DAG_FILE_WORD = "@DAG_FILE@"  # in a SCRIPT's arguments: the rendered DAG (scripts run beside it)


class RenderError(LoanpipeError):
    """A path HTCondor cannot take, or a static DAG that cannot be rendered."""


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
    """The VARS ALL_NODES of a rendered DAG ({} if there is none)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return {}
    out: dict[str, str] = {}
    for line in text.splitlines():
        match = VARS_LINE.match(line.strip())
        if match:
            out.update(VAR_ITEM.findall(match.group(1)))
    return out


def _replace_word(line: str, index: int, new: str) -> str:
    """``line`` with its ``index``-th whitespace-separated word replaced, spacing kept."""
    match = list(WORD.finditer(line))[index]
    return line[: match.start()] + new + line[match.end() :]


def _absolute(word: str, static_dir: Path) -> str:
    return word if os.path.isabs(word) else os.path.normpath(static_dir / word)


def render_lines(static: Path, depth: int = 0) -> list[str]:
    """The static DAG's lines with file references made absolute and INCLUDEs inlined."""
    if depth > MAX_INCLUDE_DEPTH:
        raise RenderError(f"{static}: INCLUDE nested more than {MAX_INCLUDE_DEPTH} deep")
    try:
        lines = static.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise RenderError(f"{static}: cannot read the DAG: {exc}") from None
    here = static.parent
    out: list[str] = []
    for number, line in enumerate(lines, 1):
        words = line.split()
        keyword = words[0].upper() if words else ""
        if keyword in ("JOB", "FINAL") and len(words) >= 3:
            line = _replace_word(line, 2, _absolute(words[2], here))
        elif keyword == "CONFIG" and len(words) == 2:
            line = _replace_word(line, 1, _absolute(words[1], here))
        elif keyword == "SCRIPT":
            kinds = [i for i, w in enumerate(words) if w.upper() in SCRIPT_KINDS]
            program = kinds[0] + 2 if kinds else len(words)
            if program < len(words) and (here / words[program]).is_file():
                line = _replace_word(line, program, _absolute(words[program], here))
        elif keyword == "INCLUDE" and len(words) == 2:
            target = Path(_absolute(words[1], here))
            out.append(f"# ---- INCLUDE {words[1]}: {target}, inlined")
            out.extend(render_lines(target, depth + 1))
            out.append(f"# ---- end of {words[1]}")
            continue
        elif keyword == "INCLUDE":
            raise RenderError(f"{static}:{number}: usage: INCLUDE file")
        out.append(line)
    return out


def script_program(line: str, python: str, dag_file: str) -> str:
    """A SCRIPT line whose program is a checkout's .py file runs it with the jobs' Python, as
    the jobs run theirs; the word @DAG_FILE@ in its arguments becomes the rendered DAG's path."""
    words = line.split()
    if not words or words[0].upper() != "SCRIPT":
        return line
    kinds = [i for i, w in enumerate(words) if w.upper() in SCRIPT_KINDS]
    program = kinds[0] + 2 if kinds else len(words)
    if program < len(words) and words[program].endswith(".py") and os.path.isabs(words[program]):
        line = _replace_word(line, program, f"{python} {words[program]}")
    return line.replace(DAG_FILE_WORD, dag_file)


def render(
    static: Path, base_dir: str, project_dir: str, python: str, dag_file: str | None = None
) -> str:
    """The text of BASE_DIR/dags/<name>.dag (``dag_file``: where it is written, by default
    there; a FINAL node gets it as DAG_FILE, the DAG whose run it reports; a SCRIPT's
    @DAG_FILE@ becomes it too)."""
    dag_file = dag_file or os.path.join(base_dir, config.RUN_DIR, static.name)
    lines = [script_program(line, python, dag_file) for line in render_lines(static)]
    words = [line.split() for line in lines]
    nodes = [w[1] for w in words if len(w) > 1 and w[0].upper() == "JOB"]
    paths = f'BASE_DIR="{base_dir}" PROJECT_DIR="{project_dir}" PYTHON="{python}"'
    # VARS ALL_NODES skips a FINAL node (dag.cpp, FindAllNodesByName): it gets its own line.
    finals = [
        f'VARS {w[1]} {paths} DAG_FILE="{dag_file}"'
        for w in words
        if len(w) > 1 and w[0].upper() == "FINAL"
    ]
    return "\n".join(
        [
            f"# Rendered from {static} by loanpipe.dagman.render (make paths): do not edit;",
            "# change the source and run make paths again. Run records of this base directory",
            "# (metrics, node logs, rescue DAGs) are written beside this file.",
            "",
            *lines,
            "",
            *memory_vars(Path(base_dir), nodes).splitlines(),
            "",
            "# ---- paths for every node (absolute, identical on the submit and execute nodes)",
            f"VARS ALL_NODES {paths}",
            *finals,
            "",
        ]
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m loanpipe.dagman.render", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--dag",
        type=Path,
        default=config.DAG_DIR / config.DEFAULT_DAG,
        help="the static DAG to render (default: %(default)s)",
    )
    parser.add_argument(
        "--base-dir",
        default=os.environ.get("BASE_DIR") or str(config.DEFAULT_BASE_DIR),
        help="base directory on the shared filesystem (default: $BASE_DIR, else the repo's data/)",
    )
    parser.add_argument(
        "--project-dir", default=str(config.PROJECT_DIR), help="the checkout (default: %(default)s)"
    )
    parser.add_argument(
        "--python", help="interpreter the jobs run (default: PROJECT_DIR/.venv/bin/python)"
    )
    parser.add_argument(
        "--output",
        type=Path,
        help="file to write (default: BASE_DIR/dags/<name of --dag>)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        base_dir = check_path("BASE_DIR", args.base_dir)
        project_dir = check_path("PROJECT_DIR", args.project_dir)
        python = check_path("PYTHON", args.python or os.path.join(project_dir, ".venv/bin/python"))
        static: Path = args.dag.absolute()
        if not static.is_file():
            raise RenderError(f"{static}: no such DAG (the static DAGs are in {config.DAG_DIR})")
        output: Path = args.output or Path(base_dir, config.RUN_DIR, static.name)
        dag_file = check_path("the rendered DAG", str(output.absolute()))
        text = render(static, base_dir, project_dir, python, dag_file)
        for name in (config.RUN_DIR, *config.LOG_DIRS):
            Path(base_dir, name).mkdir(parents=True, exist_ok=True)
        output.parent.mkdir(parents=True, exist_ok=True)
        unchanged = output.is_file() and output.read_text(encoding="utf-8") == text
        if not unchanged:  # a running DAGMan rereads its DAG on recovery: rewrite only changes
            common.write_text(text, output)
    except RenderError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: {exc.filename or ''}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    print(f"paths: {output}: BASE_DIR={base_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
