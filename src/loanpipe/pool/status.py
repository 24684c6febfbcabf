"""make status (``python -m loanpipe.pool status``): the node table, hold reasons, the result
of a finished run, condor_q -dag, and why idle node jobs do not match a slot.
"""

from __future__ import annotations

import argparse
import shutil
import time

from loanpipe.dagman import state as ds
from loanpipe.errors import EXIT_FAILURE
from loanpipe.pool.checks import no_condor
from loanpipe.pool.rundir import Run, run
from loanpipe.pool.verdict import verdict


def node_table(status: ds.StatusFile) -> list[str]:
    lines = [f"DAG: {status.label}; {ds.progress_line(status)}"]
    lines.append(f"{'node':<20} {'state':<12} {'retries':>7}  details")
    for node in status.nodes:
        lines.append(f"{node.name:<20} {node.label:<12} {node.retries:>7}  {node.details}")
    return lines


def cmd_status(args: argparse.Namespace) -> int:
    if shutil.which("condor_q") is None:
        return no_condor("condor_q")
    run_ = Run(args.dag)
    job = ds.DagmanLog(run_.file(".dagman.log")).update()
    if job is None:
        print(f"status: nothing submitted from {run_.dir} yet ({run_.hint('submit')})")
        return 0
    state = "running" if not job.done else "finished"
    print(f"== DAGMan job {job.cluster} ({state}), submitted {time.ctime(job.submitted)}")
    status = ds.read_status_file(run_.file(".status"))
    if status is not None and status.timestamp >= job.submitted - 1:
        print(f"== {run_.file('.status').name} (NODE_STATUS_FILE)")
        print("\n".join(node_table(status)))
    else:
        print(
            f"status: no {run_.file('.status').name} of this run yet (DAGMan writes it "
            "once it starts)"
        )
    if job.done:
        _, lines = verdict(run_, job)
        print("\n".join(f"result: {line}" for line in lines))
    holds = ds.node_holds(run_.file(".nodes.log"), job.submitted)
    for hold in holds:
        print(f"held: {hold.line()}")
    if job.done:
        return 0
    silence = ds.schedd_silence()
    if silence is not None:
        print(
            f"status: the schedd does not answer ({silence}): the table above is DAGMan's "
            "last word; the DAG goes on when the schedd is back (make status again later)"
        )
        return EXIT_FAILURE
    code = run(["condor_q", "-dag", "-nobatch"], run_.dir)
    waiting = ds.node_jobs(job.cluster)
    idle = [ad for ad in waiting if ad.get("JobStatus") == 1]
    for ad in idle[: args.analyze]:
        job_id = f"{ad.get('ClusterId')}.{ad.get('ProcId')}"
        print(f"idle: {ad.get('DAGNodeName')} ({job_id}): why it does not match a slot:")
        run(["condor_q", "-better-analyze", job_id], run_.dir)
    return code
