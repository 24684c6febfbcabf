"""What a DAGMan job that has ended did, in lines: make watch's last words and make status's
result (DagStatus from the metrics file of that DAGMan; each failed node with its one-line error
or hold reason, or DAGMan's own reason; how to go on).
"""

from __future__ import annotations

from pathlib import Path

from loanpipe import config, pipeline
from loanpipe.dagman import metrics as dag_metrics
from loanpipe.dagman import rescue_files
from loanpipe.dagman import state as ds
from loanpipe.dagman.events import EventLogError, pre_skipped, read_events
from loanpipe.dagman.status import DagStatus
from loanpipe.errors import EXIT_FAILURE
from loanpipe.pool.rundir import PoolError, Run


def verdict(run_: Run, job: ds.DagmanJob) -> tuple[int, list[str]]:
    """(exit code, lines) for a DAGMan job that has ended."""
    metrics = dag_metrics.read(run_.file(".metrics"), job.cluster)
    status = dag_metrics.dag_status(metrics) if metrics else None
    if not job.done:
        head = f"DAGMan job {job.cluster} left the queue without an end in {run_.name}.dagman.log"
    elif job.removed:
        head = f"DAGMan job {job.cluster} was removed (condor_rm)"
    elif job.signal:
        head = f"DAGMan job {job.cluster} was killed by signal {job.signal}"
    else:
        head = f"DAGMan job {job.cluster} exited with code {job.exit_code}"
    if status is not None:
        head += f": DagStatus {status} ({DagStatus.describe(status)})"
    page = report_page(run_)
    skipped = skipped_line(run_, job)
    if status == 0 and job.exit_code == 0:
        return 0, [f"{head}; every node succeeded", *skipped, *page]
    lines = [head]
    rescues = [p for _, p in rescue_files(run_.dag) if p.stat().st_mtime >= job.submitted - 1]
    if job.removed:  # its nodes were removed with it: not failures of theirs
        lines += removal_lines(run_, job, rescues)
        lines[-1:-1] = page  # the resume command last
        return EXIT_FAILURE, lines
    lines += failure_lines(run_, job)
    lines += page
    if len(lines) == 1:
        lines.append(f"no failed node and no DAGMan error found: see {run_.file('.dagman.out')}")
    lines += skipped
    if rescues:
        lines.append(f"fix the cause, then `{run_.hint('submit')}` resumes from {rescues[-1].name}")
    else:
        lines.append(f"fix the cause, then `{run_.hint('submit')}`")
    return EXIT_FAILURE, lines


def report_page(run_: Run) -> list[str]:
    """Where the FINAL node wrote the run's report, when it did."""
    try:
        page = config.Layout(Path(run_.base_dir())).report_dir / "report.html"
    except PoolError:
        return []
    return [f"report: {page}"] if page.is_file() else []


def removal_lines(run_: Run, job: ds.DagmanJob, rescues: list[Path]) -> list[str]:
    """A DAG removed with condor_rm: what had finished, and how to go on."""
    status = ds.read_status_file(run_.file(".status"))
    lines = []
    if status is not None and status.timestamp >= job.submitted - 1:
        done = status.counts["done"]
        lines.append(
            f"removed by condor_rm with {done} of {status.counts['total']} nodes done; "
            "the node jobs it had submitted were removed with it"
        )
    if rescues:
        lines.append(f"`make submit` resumes from {rescues[-1].name} (the nodes done are kept)")
    else:
        lines.append("`make submit` runs it again")
    return lines


def skipped_line(run_: Run, job: ds.DagmanJob) -> list[str]:
    """The nodes this run skipped (PRE_SKIP: unchanged since their last success), if any."""
    try:
        skipped = pre_skipped(read_events(run_.file(".nodes.log"), partial=True), job.submitted)
    except EventLogError:
        return []
    if not skipped:
        return []
    return [f"skipped (PRE_SKIP, unchanged): {len(skipped)} nodes: {', '.join(skipped)}"]


def failure_lines(run_: Run, job: ds.DagmanJob) -> list[str]:
    """Each failed node with its one-line error or hold reason; else DAGMan's own reason."""
    lines: list[str] = []
    status = ds.read_status_file(run_.file(".status"))
    if status is not None and status.timestamp >= job.submitted - 1:
        try:
            base = run_.base_dir()
        except PoolError:
            base = None
        holds = {h.node: h for h in ds.node_holds(run_.file(".nodes.log"), job.submitted)}
        failed = [node.name for node in status.nodes if node.state == 6]
        for node in status.nodes:
            if node.state != 6:
                continue
            if node.name == pipeline.FINAL_NODE and len(failed) > 1:
                continue  # the report fails on purpose when another node failed
            why = node.details
            err = ds.node_error_file(base, node.name, node.retries) if base else None
            message = ds.one_line_error(err) if err else None
            item = ds.job_item(err, node.name, node.retries) if err else None
            if item:  # a node of many jobs: which of them failed (the search's candidate)
                why = f"{why}; job {item} failed"
            if message:
                why = f"{why}; {err}: {message}"
            elif node.name in holds:
                why = f"{why}; {holds[node.name].line()}"
            lines.append(f"failed node {node.name}: {why}")
    if not lines:
        reason = ds.dagman_reason(run_.file(".dagman.out"), job.cluster)
        if reason:
            lines.append(f"DAGMan: {reason}")
    return lines
