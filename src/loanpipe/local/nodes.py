"""The local runner's per-node and per-process state, and the view of a run its records read."""

from __future__ import annotations

import contextlib
import os
import subprocess
from dataclasses import dataclass, field
from typing import IO, Any, Protocol

from loanpipe.dagman import Node
from loanpipe.local.cluster import Cluster
from loanpipe.local.jobspec import JobSpec


@dataclass
class NodeState:
    node: Node
    status: str = "waiting"  # waiting ready pre job post deferred done failed futile aborted
    retry: int = 0  # 0-based attempt number ($(RETRY))
    attempts: int = 0
    waiting_on: int = 0
    retval: int | None = None
    pre_exit: int | None = None
    job_exit: int | None = None
    job_signal: int | None = None
    job_return: int | None = None  # exit code, or -signal: what a POST script gets as $RETURN
    attempt_start: float = 0.0
    job_start: float | None = None
    job_end: float | None = None
    peak_rss_mib: float | None = None
    rss_floor_mib: float | None = None  # the runner's own peak RSS when it forked the job
    wall: float = 0.0
    spec: JobSpec | None = None
    cluster: Cluster | None = None  # the attempt's jobs (one, or one per row of queue ... from)
    cluster_id: int | None = None  # its ClusterId: a new one per submission, as a schedd gives
    jobs_aborted: int = 0  # jobs of the attempt removed after a hold ($JOB_ABORT_COUNT)
    error: str | None = None
    final: str | None = None  # done, pre_skipped, noop, failed, futile, aborted, ...
    premarked: bool = False
    defer_until: float = 0.0
    defer_kind: str = ""


@dataclass
class Proc:
    pid: int
    kind: str  # PRE, JOB, POST
    state: NodeState
    files: list[IO[Any]] = field(default_factory=list)
    proc: int = 0  # ProcId within the node's cluster (JOB only)
    # Kept alive on purpose: a Popen object that is garbage-collected polls (and so reaps) its
    # child, which would steal the exit status and the rusage from os.wait4 below.
    popen: subprocess.Popen[bytes] | None = None
    # Readable once the process has ended: the runner sleeps on it instead of polling.
    pidfd: int | None = None

    def __post_init__(self) -> None:
        with contextlib.suppress(OSError, AttributeError):  # Linux 5.3 and later
            self.pidfd = os.pidfd_open(self.pid)

    def reaped(self, code: int) -> None:
        """Tell the Popen object its child is gone (we reaped it with os.wait4)."""
        if self.pidfd is not None:
            os.close(self.pidfd)
            self.pidfd = None
        if self.popen is not None:
            self.popen.returncode = code
        for fh in self.files:
            fh.close()


class RunView(Protocol):
    """What the run records (loanpipe.local.records) read of a run: its nodes and job counts."""

    states: dict[str, NodeState]
    jobs_submitted: int
    jobs_succeeded: int
    jobs_failed: int
