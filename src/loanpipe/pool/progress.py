"""make watch's quiet progress and closing summary (off a terminal, or without condor_watch_q).

``NodeProgress`` turns each new node status file (DAGMan's NODE_STATUS_FILE, read by
loanpipe.dagman.state) into one line per node whose state changed, as make local prints them;
``closing_summary`` prints which model the run deployed (the deployment manifest, as make local's
summary does) and whether the input was generated sample data.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import IO

from loanpipe import hints, sample
from loanpipe.dagman import state as ds
from loanpipe.dagman.status import NodeStatus


def use_watch_q(no_watch_q: bool, out: IO[str] = sys.stdout) -> bool:
    """condor_watch_q redraws a screen: only on a terminal, never into a file or a pipe."""
    return not no_watch_q and out.isatty()


class NodeProgress:
    """One line per node state change between status files; nodes not yet ready are quiet."""

    def __init__(self) -> None:
        self.states: dict[str, str] = {}

    def lines(self, status: ds.StatusFile) -> list[str]:
        out = []
        width = max((len(node.name) for node in status.nodes), default=0)
        for node in status.nodes:
            label = node.label
            if self.states.get(node.name, NodeStatus.NOT_READY.label) == label:
                continue
            self.states[node.name] = label
            retry = f" (retry {node.retries})" if node.retries else ""
            details = f": {node.details}" if node.state == NodeStatus.ERROR and node.details else ""
            out.append(f"{time.strftime('%H:%M:%S')} {node.name:<{width}}  {label}{retry}{details}")
        return out


def closing_summary(base_dir: Path | None, dag: Path, since: float, succeeded: bool) -> None:
    """Which model is deployed (and whether this run deployed it); sample data; what next."""
    from loanpipe.local.records import print_deployment

    if base_dir is None:
        return
    print_deployment([base_dir], since, sys.stdout)
    note = sample.describe(base_dir)
    if note:
        print(f"\nnote: this run used {note}, not real applications")
    if succeeded:
        print(f"next: `{hints.make_command('report', base_dir, dag)}`")
