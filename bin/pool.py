#!/usr/bin/env python3
"""The pool side of the Makefile: `make submit`, `make watch` and `make status`.

    bin/pool.py submit [--fresh] [--batch-name NAME]   cd dag && condor_submit_dag ... dagfile.dag
    bin/pool.py watch                                  condor_watch_q on the DAG's event logs
    bin/pool.py status                                 node table, condor_q -dag, why jobs wait
    bin/pool.py require TOOL                           exit 3 with one line unless TOOL is on PATH

Each needs HTCondor's command-line tools on PATH; without them it prints one `error:` line that
points to `make local` (the same DAG on this machine) and exits 3.

Resubmission (condor_submit_dag, HTCondor 23.0 and later): with a rescue DAG
(dagfile.dag.rescueNNN) in dag/, a plain `condor_submit_dag dagfile.dag` resumes from the newest
one and skips the nodes it marks DONE. Without one, the files of an earlier run
(dagfile.dag.condor.sub, .lib.out, .lib.err, .dagman.log) make condor_submit_dag refuse ("Some
file(s) needed by condor_dagman already exist"); then there is nothing to resume, so `-f` is
added and every node runs again. `--fresh` (FRESH=1) always adds `-f`, which also renames the
rescue DAGs to *.old. A `dagfile.dag.lock` means a run (DAGMan or `make local`) is still going:
nothing is submitted.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from dagfile import DAG_STATUS, rescue_files

PROJECT = Path(__file__).resolve().parent.parent
EXIT_NO_CONDOR = 3
# Files condor_submit_dag writes for a run; any of them makes a plain resubmission fail.
SUBMIT_LEFTOVERS = (".condor.sub", ".lib.out", ".lib.err", ".dagman.log")
# NodeStatus in the node status file (NODE_STATUS_FILE).
NODE_STATUS = {
    0: "not ready",
    1: "ready",
    2: "PRE script",
    3: "queued",
    4: "POST script",
    5: "done",
    6: "FAILED",
    7: "futile",
}
# HoldReasonCode -> what to do (src/condor_utils/condor_holdcodes.h).
HOLD_HINTS = {
    6: "could not start the interpreter or script: PYTHON in the rendered DAG (and its base "
    "interpreter) must exist at that path on the execute node; subcode = errno (2 missing, "
    "13 permission)",
    7: "could not open its output/error file: BASE_DIR/output and BASE_DIR/error must exist "
    "and be writable from the execute node (make paths creates them)",
    13: "input transfer failed: should_transfer_files = IF_NEEDED needs nothing transferred; "
    "is the shared filesystem mounted on the execute node?",
    14: "its initialdir (BASE_DIR) is not reachable on the execute node: mount the shared "
    "filesystem at the same path",
    34: "went over request_memory: DAGMan removes it and the retry asks for 2x, then 4x; if "
    "retries keep failing raise MEMORY_MB in submit/<kind>.sub (MemoryUsage is in "
    "BASE_DIR/log/<node>.log)",
}


def no_condor(tool: str) -> int:
    """The one-line answer when HTCondor's tools are missing."""
    print(
        f"error: {tool} is not on PATH (HTCondor's tools are not installed here): "
        "run the same DAG on this machine with `make local`",
        file=sys.stderr,
    )
    return EXIT_NO_CONDOR


def cmd_require(args: argparse.Namespace) -> int:
    return 0 if shutil.which(args.tool) else no_condor(args.tool)


def run(cmd: Sequence[str], cwd: Path) -> int:
    """Echo and run a command in ``cwd``; its exit code."""
    print(f"+ (cd {cwd} && {' '.join(cmd)})", flush=True)
    return subprocess.call(list(cmd), cwd=cwd)


def dag_file(args: argparse.Namespace, suffix: str = "") -> Path:
    return args.dag_dir / f"{args.dag_name}{suffix}"


# --------------------------------------------------------------------------- submit


def cmd_submit(args: argparse.Namespace) -> int:
    if shutil.which("condor_submit_dag") is None:
        return no_condor("condor_submit_dag")
    lock = dag_file(args, ".lock")
    if lock.exists():
        print(
            f"error: {lock} exists: a run of this DAG is still going (make status); if its "
            "DAGMan or `make local` died, remove the lock file and submit again",
            file=sys.stderr,
        )
        return 1
    cmd = ["condor_submit_dag", "-batch-name", args.batch_name]
    rescues = [p for _, p in rescue_files(args.dag)]
    leftovers = [p for p in (dag_file(args, s) for s in SUBMIT_LEFTOVERS) if p.exists()]
    if args.fresh:
        cmd.append("-f")
        note = "FRESH=1: every node runs again (-f; earlier rescue DAGs are renamed *.old)"
    elif rescues:
        note = f"resuming from {rescues[-1].name}: nodes it marks DONE are not run again"
    elif leftovers:
        cmd.append("-f")
        note = (
            f"an earlier run left {leftovers[0].name} but no rescue DAG (it finished, or "
            "stopped before any node failed): nothing to resume, every node runs again (-f)"
        )
    else:
        note = "first run in this directory"
    print(f"submit: {note}")
    cmd.append(args.dag_name)
    code = run(cmd, args.dag_dir)
    if code == 0:
        print("submit: follow it with `make watch`; `make status` says what waits and why")
    return code


# --------------------------------------------------------------------------- watch


def finished_status(metrics: Path, since: float) -> int | None:
    """DagStatus from a metrics file written after ``since`` (None if there is none)."""
    try:
        if metrics.stat().st_mtime < since:
            return None
        data = json.loads(metrics.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    status = data.get("DagStatus", data.get("dag_status")) if isinstance(data, dict) else None
    return status if isinstance(status, int) else None


def cmd_watch(args: argparse.Namespace) -> int:
    watch_q = shutil.which("condor_watch_q")
    if watch_q is None and shutil.which("condor_q") is None:
        return no_condor("condor_watch_q (or condor_q)")
    nodes_log, dagman_log = dag_file(args, ".nodes.log"), dag_file(args, ".dagman.log")
    lock = dag_file(args, ".lock")
    if not dagman_log.exists():
        print(
            f"error: nothing submitted from {args.dag_dir} (no {dagman_log.name}): make submit",
            file=sys.stderr,
        )
        return 1
    start = time.time()
    deadline = start + args.wait
    while not nodes_log.exists() and time.time() < deadline:
        time.sleep(min(args.interval, 1.0))  # DAGMan creates it when it starts up
    if watch_q is not None:
        # The DAGMan job's own log keeps "all done" from firing in the gap between a node's end
        # and its children's submission (the node log alone is all done at that moment).
        files = [p.name for p in (nodes_log, dagman_log) if p.exists()]
        cmd = ["condor_watch_q", "-files", *files, "-exit", "all,done,0", "-exit", "any,held,1"]
        code = run(cmd, args.dag_dir)
    else:
        print("watch: condor_watch_q is not installed; polling condor_q -dag -nobatch instead")
        while True:
            code = run(["condor_q", "-dag", "-nobatch"], args.dag_dir)
            if code != 0 or not lock.exists():
                break
            time.sleep(args.interval)
    status = finished_status(dag_file(args, ".metrics"), start)
    if status is not None:
        meaning = DAG_STATUS.get(status, "unknown")
        print(f"watch: DAG finished: DagStatus {status} ({meaning})")
        if status != 0:
            print("watch: `make status` shows the failed node; fix it, then `make submit` resumes")
            return code or 1
    return code


# --------------------------------------------------------------------------- status


def node_table(status_file: Path) -> list[str]:
    """Lines describing the DAG from its node status file ([] if there is none)."""
    import classad

    try:
        text = status_file.read_text(encoding="utf-8")
    except OSError:
        return []
    lines: list[str] = []
    try:
        ads = list(classad.parseAds(text, classad.Parser.New))
    except Exception as exc:  # half-written file or a format we do not know
        return [f"{status_file.name}: unreadable ({exc})"]
    for ad in ads:
        kind = ad.get("Type")
        if kind == "DagStatus":
            status = ad.get("DagStatus")
            lines.append(
                f"DAG: DagStatus {status} ({DAG_STATUS.get(status, '?')}); "
                f"nodes: {ad.get('NodesDone', 0)} done, "
                f"{ad.get('NodesQueued', 0)} queued, {ad.get('NodesFailed', 0)} failed of "
                f"{ad.get('NodesTotal', '?')}; job procs held {ad.get('JobProcsHeld', 0)}, "
                f"idle {ad.get('JobProcsIdle', 0)}"
            )
            lines.append(f"{'node':<20} {'status':<10} {'retries':>7}  details")
        elif kind == "NodeStatus":
            status = ad.get("NodeStatus")
            lines.append(
                f"{ad.get('Node', '?'):<20} {NODE_STATUS.get(status, str(status)):<10} "
                f"{ad.get('RetryCount', 0):>7}  {ad.get('StatusDetails', '')}"
            )
    return lines


def dagman_cluster(dagman_log: Path) -> str | None:
    """Cluster id of the newest DAGMan job, from its submit events in dagfile.dag.dagman.log."""
    try:
        text = dagman_log.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    found = re.findall(r"^000 \((\d+)\.", text, re.MULTILINE)
    return found[-1] if found else None


def waiting_jobs(dag_dir: Path, constraint: str) -> list[tuple[str, int, str, str, str]]:
    """(job id, JobStatus, HoldReasonCode, HoldReasonSubCode, node) of idle and held node jobs."""
    cmd = [
        "condor_q",
        "-constraint",
        f"({constraint}) && (JobStatus == 1 || JobStatus == 5)",
        "-af:j",
        "JobStatus",
        "HoldReasonCode",
        "HoldReasonSubCode",
        "DAGNodeName",
    ]
    proc = subprocess.run(cmd, cwd=dag_dir, capture_output=True, text=True)
    jobs = []
    for line in proc.stdout.splitlines():
        parts = line.split()
        if len(parts) >= 5 and parts[1].isdigit():
            jobs.append((parts[0], int(parts[1]), parts[2], parts[3], parts[4]))
    return jobs


def cmd_status(args: argparse.Namespace) -> int:
    if shutil.which("condor_q") is None:
        return no_condor("condor_q")
    table = node_table(dag_file(args, ".status"))
    if table:
        print(f"== {args.dag_name}.status (NODE_STATUS_FILE)")
        print("\n".join(table))
    else:
        print(f"status: no {args.dag_name}.status yet (DAGMan writes it while the DAG runs)")
    code = run(["condor_q", "-dag", "-nobatch"], args.dag_dir)
    cluster = dagman_cluster(dag_file(args, ".dagman.log"))
    constraint = f"DAGManJobId == {cluster}" if cluster else "DAGManJobId =!= undefined"
    jobs = waiting_jobs(args.dag_dir, constraint)
    held = [job for job in jobs if job[1] == 5]
    idle = [job for job in jobs if job[1] == 1]
    for job_id, _, hold_code, sub_code, node in held:
        hint = HOLD_HINTS.get(int(hold_code) if hold_code.isdigit() else -1, "see condor_q -hold")
        print(f"held: {node} ({job_id}), HoldReasonCode {hold_code}/{sub_code}: {hint}")
    if held:
        run(["condor_q", "-hold", *(job[0] for job in held)], args.dag_dir)
    for job_id, *_rest, node in idle[: args.analyze]:
        print(f"idle: {node} ({job_id}): why it does not match a slot:")
        run(["condor_q", "-better-analyze", job_id], args.dag_dir)
    return code


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--dag",
        type=Path,
        default=PROJECT / "data" / "dags" / "dagfile.dag",
        help="the DAG rendered for a base directory (make paths); DAGMan runs in its directory "
        "and keeps its records there (default: %(default)s)",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    require = sub.add_parser("require", help="exit 3 with one line unless TOOL is on PATH")
    require.add_argument("tool")
    submit = sub.add_parser("submit", help="condor_submit_dag the DAG (resumes a rescue DAG)")
    submit.add_argument("--fresh", action="store_true", help="rerun every node (-f)")
    submit.add_argument("--batch-name", default="loans", help="JobBatchName (default: loans)")
    watch = sub.add_parser("watch", help="follow the DAG's jobs until they are done")
    watch.add_argument("--interval", type=float, default=5.0, help="condor_q poll seconds")
    watch.add_argument("--wait", type=float, default=30.0, help="seconds to wait for DAGMan")
    status = sub.add_parser("status", help="node table, condor_q -dag, held and idle jobs")
    status.add_argument("--analyze", type=int, default=3, help="idle jobs to better-analyze")
    args = parser.parse_args(argv)
    args.dag = args.dag.absolute()
    args.dag_dir, args.dag_name = args.dag.parent, args.dag.name
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    handler = {
        "require": cmd_require,
        "submit": cmd_submit,
        "watch": cmd_watch,
        "status": cmd_status,
    }[args.command]
    try:
        return handler(args)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
