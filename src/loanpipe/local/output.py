"""The local runner's output: one line per node event, a live status line on a terminal, and
the run records (``<dag>.local.jsonl``: one JSON record per node attempt and per event)."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import IO, Any

from loanpipe.local.nodes import NodeState, Proc

STATUS_EVERY_S = 0.5  # refresh of the live status line on a terminal


class RunOutput:
    """What ``loanpipe.local.runner.Runner`` prints and records (a mixin of it)."""

    out: IO[str]
    live: bool
    status_shown: float
    t0: float
    width: int
    states: dict[str, NodeState]
    procs: dict[int, Proc]
    jsonl: Path

    def say(self, name: str, text: str) -> None:
        self.clear_status()
        print(f"[{time.time() - self.t0:6.1f}s] {name:<{self.width}}  {text}", file=self.out)
        self.out.flush()

    # A live status line under the log lines, on a terminal only (logs and pipes get plain lines).

    def status_line(self) -> str:
        counts: dict[str, int] = {}
        for st in self.states.values():
            key = st.final or st.status
            counts[key] = counts.get(key, 0) + 1
        jobs: dict[str, int] = {}
        for p in self.procs.values():
            if p.kind == "JOB":
                jobs[p.state.node.name] = jobs.get(p.state.node.name, 0) + 1
        running = [name if n == 1 else f"{name} x{n}" for name, n in jobs.items()]
        done = counts.get("done", 0) + counts.get("pre_skipped", 0) + counts.get("noop", 0)
        line = f"[{time.time() - self.t0:6.1f}s] {done}/{len(self.states)} done"
        if counts.get("failed"):
            line += f", {counts['failed']} failed"
        return line + (f"; running: {', '.join(sorted(running))}" if running else "")

    def show_status(self) -> None:
        if self.live and time.time() - self.status_shown >= STATUS_EVERY_S:
            self.out.write(
                "\r\033[K" + self.status_line()[: shutil.get_terminal_size().columns - 1]
            )
            self.out.flush()
            self.status_shown = time.time()

    def clear_status(self) -> None:
        if self.live and self.status_shown:
            self.out.write("\r\033[K")
            self.status_shown = 0.0

    def record(self, rec: dict[str, Any]) -> None:
        # Written through at once (a killed runner's records are read back by records.recover),
        # not fsynced: the runner's loop would wait on the disk for each of a run's ~20 records,
        # and a record a power cut loses only makes recovery rerun that node.
        with open(self.jsonl, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(rec, sort_keys=False) + "\n")

    def attempt_record(self, st: NodeState, status: str, will_retry: bool = False) -> None:
        end = time.time()
        st.wall += end - st.attempt_start
        spec = st.spec
        rec: dict[str, Any] = {
            "node": st.node.name,
            "attempt": st.attempts,
            "retry": st.retry,
            "start": st.attempt_start,
            "end": end,
            "job_start": st.job_start,
            "job_end": st.job_end,
            "exit_code": st.retval,
            "job_exit_code": st.job_exit,
            "signal": st.job_signal,
            "pre_exit_code": st.pre_exit,
            "status": status,
            "will_retry": will_retry,
            "peak_rss_mib": st.peak_rss_mib,
            "peak_rss_floor_mib": st.rss_floor_mib,
            "request_memory_mib": spec.request_memory_mib if spec else None,
            "request_cpus": spec.request_cpus if spec else None,
            "cmd": spec.argv if spec else None,
            "iwd": str(spec.iwd) if spec else None,
            "stdout": str(spec.stdout) if spec else None,
            "stderr": str(spec.stderr) if spec else None,
            "log": str(spec.log) if spec and spec.log else None,
            "error": st.error,
        }
        self.record(rec)
