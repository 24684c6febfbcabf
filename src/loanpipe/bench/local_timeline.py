"""Where the seconds of one ``make local`` run went, from the local runner's own records
(``<dag>.local.jsonl``, read as the report reads them: loanpipe.report.local_run). ``make bench``
prints it for this project's last run of each size; the pool's counterpart, from DAGMan's event
logs, is bench/timeline.py.

Per node attempt, in seconds from the runner's start (its ``run_start`` record):
- ``ready``: its PRE script started (or its job, when it has none): its parents had ended;
- ``job``: its job was started, forked from the warm interpreter (a forked job that imports a
  module the interpreter is still loading waits for it inside the job's time) or exec'd;
- ``end``: its job ended (for a node skipped by its PRE script: the script ended).
The runner asks for one fork at a time: a job ready while another's fork waits for a module
shows that wait between its ``ready`` and ``job``.
The last line is the runner's end (its ``run_end`` record): after the FINAL node, the rescue
file, the metrics file and the closing tables.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from loanpipe.report.local_run import latest_run, read_records
from loanpipe.report.sources import number


@dataclass
class LocalAttempt:
    node: str
    ready: float
    job: float | None  # None: no job ran (skipped by its PRE script, or failed before)
    end: float
    status: str


@dataclass
class LocalTimeline:
    started: float
    ended: float | None  # None: the run has not ended (or its runner was killed)
    attempts: list[LocalAttempt]

    @property
    def total(self) -> float | None:
        return None if self.ended is None else self.ended - self.started


def read_local_timeline(dag_file: Path) -> LocalTimeline:
    """The last local run of ``dag_file`` (with the runs it resumed).

    ValueError when its records hold no run; ReportError when they cannot be read.
    """
    notes: list[str] = []
    records = latest_run(read_records(Path(f"{dag_file}.local.jsonl"), notes))
    starts = [number(r.get("time")) for r in records if r.get("event") == "run_start"]
    if not starts or starts[0] is None:
        raise ValueError(f"{dag_file}.local.jsonl holds no local run")
    t0 = starts[0]
    ends = [number(r.get("time")) for r in records if r.get("event") == "run_end"]
    attempts = []
    for r in records:
        ready, end = number(r.get("start")), number(r.get("end"))
        if r.get("event") is not None or "node" not in r or ready is None or end is None:
            continue
        job = number(r.get("job_start"))
        job_end = number(r.get("job_end"))
        attempts.append(
            LocalAttempt(
                node=str(r["node"]),
                ready=ready - t0,
                job=None if job is None else job - t0,
                end=(job_end if job_end is not None else end) - t0,
                status=str(r.get("status")),
            )
        )
    attempts.sort(key=lambda a: (a.ready, a.end))
    return LocalTimeline(t0, ends[-1] if ends and ends[-1] is not None else None, attempts)


def format_local_timeline(title: str, line: LocalTimeline) -> list[str]:
    """One line per node attempt (seconds from the runner's start), then the runner's end."""
    total = f"{line.total:.2f} s" if line.total is not None else "not ended"
    rows = [f"{title}: {total} from the runner's start to its end"]
    rows.append(f"  {'node':<22} {'ready':>6} {'job':>6} {'end':>6} {'job s':>6}  status")
    for a in line.attempts:
        job = f"{a.job:>6.2f}" if a.job is not None else f"{'-':>6}"
        took = f"{a.end - a.job:>6.2f}" if a.job is not None else f"{'-':>6}"
        rows.append(f"  {a.node:<22} {a.ready:>6.2f} {job} {a.end:>6.2f} {took}  {a.status}")
    if line.total is not None:
        rows.append(f"  {'runner ends':<22} {'':>6} {'':>6} {line.total:>6.2f}")
    return rows


def main(argv: list[str] | None = None) -> int:
    """``python -m loanpipe.bench.local_timeline BASE_DIR/dags/dagfile.dag``: its last local run."""
    import argparse
    import sys

    from loanpipe.report.sources import ReportError

    parser = argparse.ArgumentParser(prog="python -m loanpipe.bench.local_timeline")
    parser.add_argument("dag", type=Path, help="a DAG file that make local has run")
    args = parser.parse_args(argv)
    try:
        print("\n".join(format_local_timeline(str(args.dag), read_local_timeline(args.dag))))
    except (ValueError, ReportError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main())
