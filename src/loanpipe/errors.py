"""The package's one exception root and the exit codes every stage and tool shares.

Exit codes: 0 success; 65 (EX_DATAERR of sysexits.h) bad input: a retry cannot help, so the DAG
says ``RETRY ... UNLESS-EXIT 65``; 1 anything else, retried: an OS or filesystem error (EACCES,
ESTALE, EIO, an input not there yet on a shared filesystem) as one line, a crash with a traceback.
Python itself exits 2 for a missing script and argparse for bad usage: retried like any other.
"""

from __future__ import annotations

from pathlib import Path

EXIT_OK = 0
EXIT_FAILURE = 1  # retried by the DAG: crashes, OS and filesystem errors
EXIT_USAGE = 2  # a tool's bad command line or setup
EXIT_BAD_INPUT = 65  # sysexits.h EX_DATAERR: the DAG's UNLESS-EXIT code, never retried


class LoanpipeError(Exception):
    """Root of every error this package raises on purpose: one line for the user, no traceback."""


class PipelineError(LoanpipeError):
    """Bad input (a retry cannot help): one line naming the file, exit code EXIT_BAD_INPUT."""

    def __init__(self, path: Path | str | None, problem: str) -> None:
        self.path = path
        self.problem = problem
        super().__init__(f"{path}: {problem}" if path is not None else problem)
