"""What a DAG node's job runs, for the local runner: its submit file expanded as DAGMan would
submit it (loanpipe.dagman.submit, on the htcondor2 bindings; ``JobSpec``: command,
environment, Iwd, In/Out/Err, requests), done in a reused helper process
(``expand_in_helper``), and started as a plain process (``popen_job``).
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from loanpipe.dagman import Node, bindings
from loanpipe.dagman.submit import SubmitError, node_job_ads, split_args_v2
from loanpipe.errors import LoanpipeError
from loanpipe.local.launcher import Worker

EXPANDER: Worker | None = None  # the --expand-node helper (see expand_in_helper)


class RunnerError(LoanpipeError):
    """A problem that stops the run before any node starts (printed as one ``error:`` line);
    for a node's job: condor_submit would refuse it."""


class JobHeld(RunnerError):
    """A node's job HTCondor would accept and then put on hold before it runs (a missing
    output directory, an executable that cannot run, a ``$$()`` it cannot expand)."""


# --------------------------------------------------------------------------- small helpers


def parse_environment(ad: Any) -> dict[str, str]:
    """The job environment from ``Environment`` (V2, quoted) or ``Env`` (V1, ``;``-separated)."""
    env: dict[str, str] = {}
    raw = ad.get("Environment")
    if isinstance(raw, str) and raw:
        items = split_args_v2(raw)
    else:
        v1 = ad.get("Env")
        items = [x for x in v1.split(";") if x] if isinstance(v1, str) else []
    for item in items:
        key, sep, value = item.partition("=")
        if sep and key:
            env[key] = value
    return env


# $$(Attr), $$(Attr:default), $$([expression]): replaced when the schedd matches the job.
MATCH_TIME = re.compile(r"\$\$\((\[.*?\]|[A-Za-z_][\w.]*)(?::([^)]*))?\)")


def match_time(text: str, ad: Any) -> str:
    """``text`` with its ``$$()`` references replaced as the schedd does at match time: an
    attribute of the machine (the local one: ``Cpus``, ``Memory`` as the job requests them,
    ``Machine``) or of the job, an expression evaluated in the job's ad. One the local runner
    cannot know (another machine attribute) is a RunnerError, where HTCondor holds the job."""
    if "$$(" not in text:
        return text
    classad2 = bindings.classad()
    machine = {
        "Cpus": _eval_int(ad, "RequestCpus") or 1,
        "Memory": _eval_int(ad, "RequestMemory"),
        "Machine": socket.getfqdn(),
    }

    def one(m: re.Match[str]) -> str:
        key, default = m.group(1), m.group(2)
        if key.startswith("["):
            try:
                value = classad2.ExprTree(key[1:-1]).eval(ad)
            except Exception:  # noqa: BLE001 - a syntax error: HTCondor holds the job too
                value = None
        else:
            value = machine.get(key)
            if value is None:
                value = ad.get(key)
        if value is None or type(value).__name__ in ("Value",):
            if default is not None:
                return default
            raise JobHeld(f"cannot expand {m.group(0)} (HTCondor would hold the job)")
        if isinstance(value, bool):
            return "true" if value else "false"
        return str(value)

    return MATCH_TIME.sub(one, text)


# --------------------------------------------------------------------------- job description


@dataclass
class JobSpec:
    """What the official bindings say one node attempt runs."""

    argv: list[str]
    env: dict[str, str]
    iwd: Path
    stdin: Path
    stdout: Path
    stderr: Path
    log: Path | None
    request_memory_mib: int | None
    request_cpus: int | None


def _eval_int(ad: Any, attr: str) -> int | None:
    try:
        value = ad.eval(attr)
    except Exception:  # noqa: BLE001 - an undefined/odd expression is simply "unknown"
        return None
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def expand_submit(node: Node, retry: int, run: dict[str, str] | None = None) -> list[JobSpec]:
    """Expand the node's submit file for attempt ``retry`` (0-based) (loanpipe.dagman.submit),
    ``run`` the run's values DAGMan defines (DAG_STATUS, FAILED_COUNT).

    One JobSpec per job the submit file queues (``queue ... from`` a table gives many).
    """
    try:
        ads = node_job_ads(node, retry, run)
    except SubmitError as exc:
        raise RunnerError(str(exc)) from None
    except Exception as exc:  # noqa: BLE001 - bindings raise several internal error types
        msg = " ".join(str(exc).split())
        raise RunnerError(f"{node.submit_path}: condor_submit would fail: {msg}") from None
    try:
        return [job_spec(ad) for ad in ads]
    except RunnerError as exc:
        raise type(exc)(f"{node.submit_path}: {exc}") from None


def job_spec(ad: Any) -> JobSpec:
    """What one job ClassAd runs."""
    iwd = Path(ad["Iwd"])
    if not isinstance(ad.get("Cmd"), str):
        raise RunnerError("condor_submit would fail: no executable")
    cmd = str(ad["Cmd"])
    if not os.path.isabs(cmd):
        cmd = str(iwd / cmd)
    if isinstance(ad.get("Arguments"), str):
        args = split_args_v2(match_time(ad["Arguments"], ad))
    elif isinstance(ad.get("Args"), str):
        args = match_time(ad["Args"], ad).split()
    else:
        args = []

    def path_of(attr: str, default: str) -> Path:
        value = ad.get(attr)
        p = Path(value if isinstance(value, str) and value else default)
        return p if p.is_absolute() else iwd / p

    log = ad.get("UserLog")
    return JobSpec(
        argv=[cmd, *args],
        env=parse_environment(ad),
        iwd=iwd,
        stdin=path_of("In", "/dev/null"),
        stdout=path_of("Out", "/dev/null"),
        stderr=path_of("Err", "/dev/null"),
        log=path_of("UserLog", "") if isinstance(log, str) and log else None,
        request_memory_mib=_eval_int(ad, "RequestMemory"),
        request_cpus=_eval_int(ad, "RequestCpus"),
    )


# STARTER_NUM_THREADS_ENV_VARS (HTCondor sets these to request_cpus in every job).
THREAD_VARS = (
    "CUBACORES",
    "GOMAXPROCS",
    "JULIA_NUM_THREADS",
    "MKL_NUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "OMP_NUM_THREADS",
    "OMP_THREAD_LIMIT",
    "OPENBLAS_NUM_THREADS",
    "PYTHON_CPU_COUNT",
    "ROOT_MAX_THREADS",
    "TF_LOOP_PARALLEL_ITERATIONS",
    "TF_NUM_THREADS",
)


def job_env(spec: JobSpec) -> dict[str, str]:
    """The environment a job gets: its submit file's, plus what a starter sets."""
    env = dict(spec.env)
    env.setdefault("_CONDOR_JOB_IWD", str(spec.iwd))
    env.setdefault("BATCH_SYSTEM", "HTCondor")
    if spec.request_cpus:
        for var in THREAD_VARS:
            env.setdefault(var, str(spec.request_cpus))
    return env


def expand_in_helper(node: Node, retry: int, run: dict[str, str] | None = None) -> list[JobSpec]:
    """Run :func:`expand_submit` in a child process (one per runner, reused: it imports the
    bindings once).

    The htcondor bindings add ~30 MiB to the runner.  Jobs are started with fork+exec, and
    Linux carries the parent's RSS high-water mark at exec time into the child's ``ru_maxrss``;
    keeping the bindings out of the runner keeps that floor at the bare interpreter's size.
    """
    global EXPANDER  # noqa: PLW0603 - one helper process per runner, reused by every node
    request = {
        "name": node.name,
        "submit_path": str(node.submit_path),
        "node_dir": str(node.node_dir),
        "vars": node.vars,
        "retry": retry,
        "run": run or {},
    }
    if EXPANDER is None or EXPANDER.broken:
        EXPANDER = Worker(
            [sys.executable, "-m", "loanpipe.local.jobspec", "--expand-node"],
            {**os.environ, "CONDOR_CONFIG": os.environ.get("CONDOR_CONFIG", "/dev/null")},
        )
    reply = EXPANDER.request(request)
    if reply is None:
        tail = EXPANDER.stderr_tail() or "no output"
        raise RunnerError(f"expanding {node.submit_path} failed: {tail}")
    if not reply.get("ok"):
        raise (JobHeld if reply.get("held") else RunnerError)(reply.get("error", "unknown error"))
    return [
        JobSpec(
            argv=d["argv"],
            env=d["env"],
            iwd=Path(d["iwd"]),
            stdin=Path(d["stdin"]),
            stdout=Path(d["stdout"]),
            stderr=Path(d["stderr"]),
            log=Path(d["log"]) if d["log"] else None,
            request_memory_mib=d["request_memory_mib"],
            request_cpus=d["request_cpus"],
        )
        for d in reply["specs"]
    ]


def close_expander() -> None:
    """Stop the --expand-node helper, if one was started."""
    if EXPANDER is not None:
        EXPANDER.close()


def expand_node_main() -> int:
    """``--expand-node``: for each node description (a JSON line) on stdin, print its JobSpec
    (a JSON line), until end of input."""
    for line in sys.stdin:
        print(json.dumps(expand_node(json.loads(line))), flush=True)
    return 0


def expand_node(req: dict[str, Any]) -> dict[str, Any]:
    """The reply to one ``--expand-node`` request."""
    node = Node(
        name=req["name"],
        submit=req["submit_path"],
        vars=req["vars"],
        submit_path=Path(req["submit_path"]),
        node_dir=Path(req["node_dir"]),
    )
    try:
        specs = expand_submit(node, int(req["retry"]), req.get("run"))
    except RunnerError as exc:
        return {"ok": False, "error": str(exc), "held": isinstance(exc, JobHeld)}
    out = [{k: (str(v) if isinstance(v, Path) else v) for k, v in vars(s).items()} for s in specs]
    return {"ok": True, "specs": out}


def check_job_files(spec: JobSpec) -> None:
    """HTCondor would not run a job whose Iwd or output/error/log directory is missing."""
    if not spec.iwd.is_dir():
        raise RunnerError(f"initial directory {spec.iwd} does not exist")
    if spec.log is not None and not spec.log.parent.is_dir():
        raise RunnerError(f"log directory {spec.log.parent} does not exist")
    for what, p in (("output", spec.stdout), ("error", spec.stderr)):
        if str(p) != "/dev/null" and not p.parent.is_dir():
            raise JobHeld(
                f"{what} directory {p.parent} does not exist (HTCondor would put the job on "
                "hold; the stages do not create it: create it before running the DAG)"
            )
    if not os.access(spec.argv[0], os.X_OK):
        why = "does not exist" if not os.path.exists(spec.argv[0]) else "is not executable"
        raise JobHeld(f"executable {spec.argv[0]} {why} (HTCondor would put the job on hold)")


def popen_job(spec: JobSpec, env: dict[str, str], files: list[IO[Any]]) -> subprocess.Popen[bytes]:
    """Exec the job with its In/Out/Err files (appended to ``files``, closed when reaped)."""
    fin = open(spec.stdin, "rb")  # noqa: SIM115 - closed when the job is reaped
    files.append(fin)
    fout = open(spec.stdout, "wb")  # noqa: SIM115
    files.append(fout)
    ferr = fout if spec.stderr == spec.stdout else open(spec.stderr, "wb")  # noqa: SIM115
    if ferr is not fout:
        files.append(ferr)
    return subprocess.Popen(  # noqa: S603 - the submit file names the program on purpose
        spec.argv,
        cwd=spec.iwd,
        env=env,
        stdin=fin,
        stdout=fout,
        stderr=ferr,
        start_new_session=True,
    )


if __name__ == "__main__":
    sys.exit(expand_node_main())
