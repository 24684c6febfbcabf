"""make submit's and make preflight's submit-side checks, each one line, before anything
reaches HTCondor: HTCondor's tool on PATH, not root, a schedd that answers.

(The venv this user cannot run is caught by the Makefile before any Python starts; the
execute-side checks are make preflight's job.)
"""

from __future__ import annotations

import os
import shutil
import sys

from loanpipe.errors import EXIT_FAILURE, LoanpipeError

EXIT_NO_CONDOR = 3  # a tool of HTCondor is not on PATH (make local still works)


class CheckError(LoanpipeError):
    """One line for the user; ``code`` is the exit code."""

    def __init__(self, message: str, code: int = EXIT_FAILURE) -> None:
        super().__init__(message)
        self.code = code


def not_root() -> None:
    if os.geteuid() == 0:
        raise CheckError(
            "you are root, and HTCondor does not let root own jobs (the DAG would be refused "
            "as 'not allowed to own jobs'): run make as your own user, with a checkout, .venv "
            "(`make setup` as that user) and BASE_DIR that user can read and write"
        )


def no_condor_message(tool: str) -> str:
    return (
        f"{tool} is not on PATH (HTCondor's tools are not installed here): run the same DAG "
        "on this machine with `make local`"
    )


def no_condor(tool: str) -> int:
    """The one-line answer when HTCondor's tools are missing."""
    print(f"error: {no_condor_message(tool)}", file=sys.stderr)
    return EXIT_NO_CONDOR


def tool_on_path(tool: str) -> None:
    if shutil.which(tool) is None:
        raise CheckError(no_condor_message(tool), EXIT_NO_CONDOR)


def where_config() -> str:
    env = os.environ.get("CONDOR_CONFIG")
    if env:
        return f"CONDOR_CONFIG={env}"
    return "CONDOR_CONFIG is not set (HTCondor reads /etc/condor/condor_config)"


def pool_answers() -> None:
    """Ask the schedd for nothing: it must answer before anything is submitted."""
    from loanpipe.dagman import bindings

    try:
        bindings.htcondor().Schedd().query(constraint="false", projection=["ClusterId"])
    except Exception as exc:  # HTCondorLocateError, HTCondorIOError, ...
        raise CheckError(
            f"no HTCondor pool answers here ({str(exc).strip() or type(exc).__name__}); "
            f"{where_config()}: start the pool (condor_master) or point CONDOR_CONFIG at "
            "its configuration"
        ) from None


def submit_side(tool: str) -> None:
    tool_on_path(tool)  # without HTCondor at all, make local is the answer
    not_root()
    pool_answers()
