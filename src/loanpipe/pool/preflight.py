"""make preflight: submit submit/preflight.sub once, wait for it, print a one-line verdict.

The job runs the DAG's own interpreter ($(PYTHON), as rendered by make paths) on an execute
node; scripts/preflight.py checks the pinned imports and BASE_DIR from there. Its files go to
the DAG's run directory: <dag>.preflight.log (event log), .out and .err. The verdict comes
from the job's event log (loanpipe.dagman.events, on htcondor2.JobEventLog):

- JOB_TERMINATED: the last `verdict:` line of its output (exit 0: ok);
- JOB_HELD: the hold reason; code 6 means the interpreter could not be started on the execute
  node (subcode 2: no such file, 13: permission denied). The held job is removed;
- still idle after the timeout: no slot matches it (condor_q -better-analyze says why); removed.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from loanpipe.dagman import bindings
from loanpipe.dagman import state as ds
from loanpipe.dagman.events import EventLog

HOLD_VERDICTS = {
    6: "the execute node cannot start the interpreter {python} (errno {subcode}: 2 = no such "
    "file, 13 = permission denied): it and the interpreter its venv was made from must exist "
    "at that path on every execute node",
    7: "the job's output files could not be written on the submit side ({where})",
    13: "file transfer failed: {reason}",
}


def submit(sub_file: Path, macros: dict[str, str]) -> int:
    """Queue one job of ``sub_file`` with ``macros`` defined; its cluster id."""
    htcondor = bindings.htcondor()
    text = "".join(f"{k} = {v}\n" for k, v in macros.items()) + sub_file.read_text()
    description = htcondor.Submit(text)
    result = htcondor.Schedd().submit(description, count=1)
    return int(result.cluster())


def remove(cluster: int, why: str) -> None:
    htcondor = bindings.htcondor()
    try:
        htcondor.Schedd().act(htcondor.JobAction.Remove, f"ClusterId == {cluster}", why)
    except Exception as exc:  # the verdict matters more than the clean-up
        print(f"preflight: could not remove job {cluster}: {exc}")


def wait(log: Path, cluster: int, timeout: float) -> tuple[str, Any]:
    """('terminated', event) | ('held', event) | ('aborted', event) | ('timeout', None)."""
    deadline = time.monotonic() + timeout
    while not log.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    if not log.exists():
        return "timeout", None
    events = EventLog(log)
    verdicts = {"JOB_TERMINATED": "terminated", "JOB_HELD": "held", "JOB_ABORTED": "aborted"}
    while time.monotonic() < deadline:
        for event in events.read(wait=1):
            if event["cluster"] == cluster and event["type"] in verdicts:
                return verdicts[event["type"]], event
    return "timeout", None


def last_verdict(out: Path) -> str | None:
    try:
        lines = out.read_text(errors="replace").splitlines()
    except OSError:
        return None
    found = [ln[len("verdict:") :].strip() for ln in lines if ln.startswith("verdict:")]
    return found[-1] if found else None


def run_preflight(
    paths: dict[str, str], run_dir: Path, dag_name: str, project: Path, timeout: float
) -> int:
    """Submit, wait, print the verdict; 0 when the execute node can run the DAG's jobs."""
    name = f"{dag_name}.preflight"
    files = {s: run_dir / f"{name}.{s}" for s in ("log", "out", "err")}
    for path in files.values():
        path.unlink(missing_ok=True)
    macros = {
        "BASE_DIR": paths["BASE_DIR"],
        "PROJECT_DIR": paths["PROJECT_DIR"],
        "PYTHON": paths["PYTHON"],
        "PREFLIGHT_DIR": str(run_dir),
        "PREFLIGHT_NAME": name,
    }
    cluster = submit(project / "submit" / "preflight.sub", macros)
    print(
        f"preflight: job {cluster} runs {paths['PYTHON']} on an execute node (waiting up to "
        f"{timeout:.0f} s)",
        flush=True,
    )
    outcome, event = wait(files["log"], cluster, timeout)
    if outcome == "terminated":
        code = int(event.get("ReturnValue", 1)) if event.get("TerminatedNormally", True) else 1
        said = last_verdict(files["out"])
        if code == 0 and said == "ok":
            print(
                f"preflight: ok: {paths['PYTHON']} imports the pinned stack and writes to "
                f"{paths['BASE_DIR']} from an execute node"
            )
            return 0
        if said is None:
            err = ds.one_line_error(files["err"]) or f"exit code {code}, no verdict"
            said = f"the job failed before its checks ran: {err}"
        print(f"preflight: FAILED: {said} (details: {files['out']})")
        return 1
    if outcome == "held":
        code, sub = event.get("HoldReasonCode"), event.get("HoldReasonSubCode")
        reason = str(event.get("HoldReason", ""))
        template = HOLD_VERDICTS.get(int(code) if code is not None else -1)
        text = (
            template.format(python=paths["PYTHON"], subcode=sub, where=run_dir, reason=reason)
            if template
            else reason
        )
        remove(cluster, "preflight verdict given")
        print(f"preflight: FAILED: job held (HoldReasonCode {code}/{sub}): {text}")
        return 1
    if outcome == "aborted":
        print(f"preflight: FAILED: job {cluster} was removed before it ran")
        return 1
    remove(cluster, "preflight timed out")
    print(
        f"preflight: FAILED: job {cluster} did not finish within {timeout:.0f} s; if it "
        f"stayed idle, no slot matches it: condor_q -better-analyze {cluster}"
    )
    return 1
