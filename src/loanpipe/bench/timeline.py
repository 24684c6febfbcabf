"""Where the seconds of one DAGMan run went, from the DAG's own files (``make bench``'s pool
section; offline, any DAGMan run: this project's or the original's).

Read with the official bindings (``htcondor2.JobEventLog``, through loanpipe.dagman.events):
``<dag>.nodes.log`` (every node job's submit, execute, terminate and DAGMan's POST script
events, the job tied to its node by ``DAG Node: <name>``), ``<dag>.dagman.log`` (the DAGMan job:
submitted, started, exited) and, when present, ``<dag>.dagman.out`` for PRE script times.

Per node (its last attempt):
- ``dagman``: its parents' end (the last parent's job terminated; DAGMan's start for a first
  node) to its job's submission: DAGMan noticing the end, POST and PRE scripts, its submit cycle;
- ``scripts``: of that, the parents' POST script and its own PRE script (1 s resolution);
- ``waiting``: submitted to executing: a slot (a negotiation cycle, or a claim held for it);
- ``running``: executing to terminated (the job, with its start and end on the execute node).

Per DAG level (depth in the graph; the FINAL node last): from the previous level's end to this
level's end, split the same way along the node that ended last, so that the head (DAGMan
submitted to started), the levels and the tail (last job's end to DAGMan's exit) add up to the
whole run.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from loanpipe.dagman import parse_dag
from loanpipe.dagman.events import dag_node, read_events

DAGMAN_OUT_TIME = re.compile(r"^(\d\d/\d\d/\d\d \d\d:\d\d:\d\d) (.*)$")
PRE_START = re.compile(r"Running PRE script of Node (\S+?)\.\.\.")
PRE_END = re.compile(r"PRE Script of [Nn]ode (\S+) (?:completed|failed)")


@dataclass
class NodeTimes:
    name: str
    level: int
    ready: float  # the parents' end (DAGMan's start for a first node)
    submit: float
    execute: float
    terminate: float
    scripts: float = 0.0

    @property
    def dagman(self) -> float:
        return self.submit - self.ready

    @property
    def waiting(self) -> float:
        return self.execute - self.submit

    @property
    def running(self) -> float:
        return self.terminate - self.execute


@dataclass
class LevelTimes:
    level: int
    nodes: list[str]
    dagman: float
    scripts: float
    waiting: float
    running: float


@dataclass
class Timeline:
    submitted: float  # the DAGMan job
    started: float
    exited: float
    nodes: list[NodeTimes] = field(default_factory=list)
    levels: list[LevelTimes] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # no job ran (PRE_SKIP, not reached)

    @property
    def total(self) -> float:
        return self.exited - self.submitted

    @property
    def head(self) -> float:
        return self.started - self.submitted

    @property
    def tail(self) -> float:
        return self.exited - max((n.terminate for n in self.nodes), default=self.started)


def dagman_times(log: Path) -> tuple[float, float, float]:
    """The DAGMan job's submission, start and exit (epoch seconds) from its own event log."""
    if not log.is_file():
        raise ValueError(f"{log}: no such file: the DAG has not run here")
    times = {}
    for event in read_events(log):
        times.setdefault(event["type"], event["time"])
    missing = {"SUBMIT", "EXECUTE", "JOB_TERMINATED"} - set(times)
    if missing:
        raise ValueError(f"{log}: no {', '.join(sorted(missing))} event: the run did not end")
    return times["SUBMIT"], times["EXECUTE"], times["JOB_TERMINATED"]


def job_times(nodes_log: Path) -> tuple[dict[str, dict[str, float]], dict[str, float]]:
    """node -> {SUBMIT, EXECUTE, JOB_TERMINATED} of its last job, and node -> POST script
    seconds (its POST_SCRIPT_TERMINATED event after the job's end)."""
    cluster_node: dict[int, str] = {}
    jobs: dict[str, dict[str, float]] = {}
    post: dict[str, float] = {}
    for event in read_events(nodes_log):
        kind, cluster = event["type"], event["cluster"]
        if kind == "SUBMIT" and dag_node(event):
            cluster_node[cluster] = dag_node(event)
            jobs[cluster_node[cluster]] = {"SUBMIT": event["time"]}
        node = cluster_node.get(cluster)
        if node is None:
            continue
        if kind in ("EXECUTE", "JOB_TERMINATED"):
            jobs[node].setdefault(kind, event["time"])
        elif kind == "POST_SCRIPT_TERMINATED" and "JOB_TERMINATED" in jobs[node]:
            post[node] = event["time"] - jobs[node]["JOB_TERMINATED"]
    return jobs, post


def pre_script_seconds(dagman_out: Path) -> dict[str, float]:
    """node -> seconds of its last PRE script, from DAGMan's debug log (1 s resolution)."""
    if not dagman_out.is_file():
        return {}
    started: dict[str, float] = {}
    out: dict[str, float] = {}
    for line in dagman_out.read_text(errors="replace").splitlines():
        match = DAGMAN_OUT_TIME.match(line)
        if not match:
            continue
        stamp = time.mktime(time.strptime(match.group(1), "%m/%d/%y %H:%M:%S"))
        if begin := PRE_START.search(match.group(2)):
            started[begin.group(1)] = stamp
        elif (end := PRE_END.search(match.group(2))) and end.group(1) in started:
            out[end.group(1)] = stamp - started[end.group(1)]
    return out


def levels_of(dag_file: Path) -> tuple[dict[str, int], dict[str, set[str]]]:
    """node -> depth (FINAL node one below the deepest), node -> parents."""
    dag = parse_dag(dag_file)
    depth: dict[str, int] = {}
    for name in dag.topological_order():
        node = dag.nodes[name]
        if not node.final:
            depth[name] = 1 + max((depth[p] for p in node.parents), default=-1)
    final = dag.final_node
    if final is not None:
        depth[final.name] = 1 + max(depth.values(), default=-1)
    return depth, {name: set(node.parents) for name, node in dag.nodes.items()}


def read_timeline(dag_file: Path) -> Timeline:
    """The timeline of the last DAGMan run of ``dag_file`` (its files beside it).

    ValueError / EventLogError when the run's logs are incomplete.
    """
    dag_file = Path(dag_file)
    submitted, started, exited = dagman_times(Path(f"{dag_file}.dagman.log"))
    jobs, post = job_times(Path(f"{dag_file}.nodes.log"))
    pre = pre_script_seconds(Path(f"{dag_file}.dagman.out"))
    depth, parents = levels_of(dag_file)
    line = Timeline(submitted, started, exited)
    done: dict[str, float] = {}
    for name in sorted(depth, key=lambda n: (depth[n], n)):
        times = jobs.get(name, {})
        if not {"SUBMIT", "EXECUTE", "JOB_TERMINATED"} <= set(times):
            line.skipped.append(name)
            continue
        ups = [done[p] for p in parents.get(name, ()) if p in done]
        ready = max(ups) if ups else started
        if depth[name] > 0 and not parents.get(name):  # the FINAL node: after every node
            ready = max(done.values(), default=started)
        scripts = pre.get(name, 0.0) + max(
            (post.get(p, 0.0) for p in parents.get(name, ())), default=0.0
        )
        node = NodeTimes(name, depth[name], ready, times["SUBMIT"], times["EXECUTE"],
                         times["JOB_TERMINATED"], scripts)  # fmt: skip
        line.nodes.append(node)
        done[name] = node.terminate
    line.levels = level_times(line)
    return line


def level_times(line: Timeline) -> list[LevelTimes]:
    """Each level from the previous level's end to its own, along the node that ended last."""
    out = []
    previous_end = line.started
    for level in sorted({n.level for n in line.nodes}):
        nodes = [n for n in line.nodes if n.level == level]
        last = max(nodes, key=lambda n: n.terminate)
        out.append(
            LevelTimes(
                level,
                [n.name for n in nodes],
                dagman=last.submit - previous_end,
                scripts=last.scripts,
                waiting=last.waiting,
                running=last.running,
            )
        )
        previous_end = last.terminate
    return out


def format_timeline(title: str, line: Timeline) -> list[str]:
    """The per-node and per-level tables of one run, as printed by make bench."""
    rows = [f"{title}: {line.total:.0f} s from submission to DAGMan's exit"]
    rows.append(
        f"  {'node':<22} {'level':>5} {'dagman':>7} {'scripts':>8} {'waiting':>8} {'running':>8}"
    )
    for n in line.nodes:
        rows.append(
            f"  {n.name:<22} {n.level:>5} {n.dagman:>6.0f}s {n.scripts:>7.0f}s "
            f"{n.waiting:>7.0f}s {n.running:>7.0f}s"
        )
    rows.append(
        f"  {'level (nodes)':<28} {'dagman':>7} {'scripts':>8} {'waiting':>8} {'running':>8}"
    )
    rows.append(f"  {'DAGMan job starts':<28} {'':>7} {'':>8} {line.head:>7.0f}s {'':>8}")
    for lv in line.levels:
        label = f"{lv.level} ({', '.join(lv.nodes)})"
        label = label if len(label) <= 28 else label[:25] + "..."
        rows.append(
            f"  {label:<28} {lv.dagman:>6.0f}s {lv.scripts:>7.0f}s {lv.waiting:>7.0f}s "
            f"{lv.running:>7.0f}s"
        )
    rows.append(f"  {'DAGMan exits':<28} {line.tail:>6.0f}s")
    sums = [sum(getattr(lv, k) for lv in line.levels) for k in ("dagman", "waiting", "running")]
    rows.append(
        f"  total {line.total:.0f} s = DAGMan {sums[0] + line.tail:.0f} s (scripts "
        f"{sum(lv.scripts for lv in line.levels):.0f}) + waiting for slots "
        f"{sums[1] + line.head:.0f} s + running {sums[2]:.0f} s"
    )
    if line.skipped:
        rows.append(f"  no job ran for: {', '.join(line.skipped)}")
    return rows


def main(argv: list[str] | None = None) -> int:
    """``python -m loanpipe.bench.timeline BASE_DIR/dags/dagfile.dag``: its last run's tables."""
    import argparse
    import sys

    from loanpipe.dagman import DagError
    from loanpipe.dagman.events import EventLogError

    parser = argparse.ArgumentParser(prog="python -m loanpipe.bench.timeline")
    parser.add_argument("dag", type=Path, help="a DAG file whose DAGMan run has ended")
    args = parser.parse_args(argv)
    try:
        print("\n".join(format_timeline(str(args.dag), read_timeline(args.dag))))
    except (ValueError, OSError, DagError, EventLogError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    import os
    import sys

    os.environ.setdefault("CONDOR_CONFIG", "/dev/null")
    sys.exit(main())
