#!/usr/bin/env python3
"""The pool side of the Makefile: make submit, watch, status and preflight.

    python -m loanpipe.pool --dag FILE submit [--fresh] [--batch-name N] [--preflight]
    python -m loanpipe.pool --dag FILE watch      follow the DAG until DAGMan exits; 0 only if ok
    python -m loanpipe.pool --dag FILE status     node table, hold reasons, condor_q -dag, waits
    python -m loanpipe.pool --dag FILE preflight  one tiny job: interpreter, imports, BASE_DIR
    python -m loanpipe.pool --dag FILE inputs --base-dir B   refuse what would fail at once
    python -m loanpipe.pool require TOOL          exit 3 with one line unless TOOL is on PATH

FILE is the rendered DAG (make paths); its directory is where DAGMan runs and writes its files.
Reads DAGMan's files and the schedd through loanpipe.dagman.state. Without HTCondor's tools it
prints one `error:` line pointing to `make local` and exits 3.

Each command is a module: submit (loanpipe.pool.submit), watch (.watch), status (.status), with
the run's directory and files in .rundir and an ended DAG's result in .verdict. Exit codes: 0 the
DAG succeeded; 1 it did not (or nothing was submitted); 2 bad usage or input; 3 no HTCondor.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

from loanpipe import config
from loanpipe.errors import EXIT_FAILURE
from loanpipe.pool import checks
from loanpipe.pool.checks import no_condor
from loanpipe.pool.rundir import PoolError, Run
from loanpipe.pool.status import cmd_status
from loanpipe.pool.submit import check_inputs, cmd_submit, preflight
from loanpipe.pool.watch import cmd_watch


def cmd_preflight(args: argparse.Namespace) -> int:
    if shutil.which("condor_submit") is None:
        return no_condor("condor_submit")
    return preflight(Run(args.dag), args.timeout)


def cmd_inputs(args: argparse.Namespace) -> int:
    """make submit's first step, before anything is rendered."""
    check_inputs(Run(args.dag).dir, args.base_dir)
    return 0


def cmd_require(args: argparse.Namespace) -> int:
    return 0 if shutil.which(args.tool) else no_condor(args.tool)


def cmd_ready(args: argparse.Namespace) -> int:
    """make submit's and make preflight's first step: not root, TOOL on PATH, a pool answers."""
    checks.submit_side(args.tool)
    return 0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m loanpipe.pool", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--dag",
        type=Path,
        default=config.Layout(config.DEFAULT_BASE_DIR).dag_file(),
        help="the rendered DAG; DAGMan runs in its directory (default: %(default)s)",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    require = sub.add_parser("require", help="exit 3 with one line unless TOOL is on PATH")
    require.add_argument("tool")
    ready = sub.add_parser("ready", help="not root, TOOL on PATH, a schedd answers (one line)")
    ready.add_argument("tool")
    inputs = sub.add_parser("inputs", help="refuse a DAG under /tmp or a missing loan_data.csv")
    inputs.add_argument("--base-dir", type=Path, required=True, help="the base directory")
    submit = sub.add_parser("submit", help="condor_submit_dag the DAG (resumes a rescue DAG)")
    submit.add_argument("--fresh", action="store_true", help="rerun every node (-f)")
    submit.add_argument("--batch-name", default="loans", help="JobBatchName (default: loans)")
    submit.add_argument("--preflight", action="store_true", help="run the preflight job first")
    submit.add_argument("--timeout", type=float, default=300.0, help="preflight wait, seconds")
    submit.add_argument(
        "--claims", type=int, help="claim jobs queued ahead (default: the widest level; 0: none)"
    )
    watch = sub.add_parser("watch", help="follow the DAG until DAGMan exits")
    watch.add_argument("--interval", type=float, default=1.0, help="seconds between looks")
    watch.add_argument(
        "--no-watch-q", action="store_true", help="progress lines instead of condor_watch_q"
    )
    status = sub.add_parser("status", help="node table, holds, condor_q -dag, idle jobs")
    status.add_argument("--analyze", type=int, default=3, help="idle jobs to better-analyze")
    pre = sub.add_parser("preflight", help="one tiny job that checks an execute node")
    pre.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for it")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    handler = {
        "require": cmd_require,
        "ready": cmd_ready,
        "inputs": cmd_inputs,
        "submit": cmd_submit,
        "watch": cmd_watch,
        "status": cmd_status,
        "preflight": cmd_preflight,
    }[args.command]
    try:
        return handler(args)
    except (PoolError, checks.CheckError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.code
    except OSError as exc:  # the schedd cannot be asked, a file cannot be read
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
