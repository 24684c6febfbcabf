"""Multi-job nodes in the local runner (loanpipe.local.cluster): DAGMan's rules.

A node whose submit file queues many jobs (``queue N``, ``queue X from table``) is one cluster:
its jobs run in parallel under ``-j``; the node fails when any job fails (the others are
removed); RETRY reruns every job of the node; a rescue DAG marks it DONE only when all
succeeded; a POST script sees the first failed job's exit code.
"""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
from pathlib import Path
from typing import Any

from conftest import RUNNER, SAFETY_TIMEOUT, run_runner

from loanpipe.local.cluster import Cluster

REPO = Path(__file__).resolve().parent.parent


# One job per row of rows.txt: the row's name and the command the job runs.
MULTI = """\
executable = /bin/sh
arguments = "-c '$(cmd)'"
output = out/$(JOB).$(NAME).$(RETRY).out
error = err/$(JOB).$(NAME).$(RETRY).err
log = log/$(JOB).log
request_memory = 64MB
request_cpus = 1
getenv = PATH
queue NAME, cmd from rows.txt
"""
SINGLE = MULTI.replace("$(NAME).", "").replace("queue NAME, cmd from rows.txt", "queue")


def make_dag(tmp_path: Path, rows: list[str], body: str) -> Path:
    (tmp_path / "multi.sub").write_text(MULTI)
    (tmp_path / "single.sub").write_text(SINGLE)
    (tmp_path / "rows.txt").write_text("".join(row + "\n" for row in rows))
    for d in ("out", "err", "log", "marks"):
        (tmp_path / d).mkdir(exist_ok=True)
    dag = tmp_path / "test.dag"
    dag.write_text(textwrap.dedent(body).lstrip("\n"))
    return dag


def run(dag: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_runner(dag, *args, cwd=dag.parent)


def records(dag: Path) -> list[dict[str, Any]]:
    lines = Path(f"{dag}.local.jsonl").read_text().splitlines()
    recs = [json.loads(line) for line in lines]
    start = max(i for i, r in enumerate(recs) if r.get("event") == "run_start")
    return recs[start:]


def proc_ends(recs: list[dict[str, Any]], node: str) -> list[dict[str, Any]]:
    return [r for r in recs if r.get("event") == "proc_end" and r["node"] == node]


def attempts(recs: list[dict[str, Any]], node: str) -> list[dict[str, Any]]:
    return [r for r in recs if "event" not in r and r.get("node") == node]


def test_cluster_bookkeeping_follows_dagman() -> None:
    cluster = Cluster(specs=["a", "b", "c", "d"])
    for proc in (0, 1):
        cluster.start(proc)
    assert cluster.next_proc() == 2
    assert cluster.ended(1, 0) is False
    assert cluster.ended(0, 3) is True  # first failure: remove the rest
    assert cluster.next_proc() is None  # nothing more starts after a failure
    assert cluster.all_done and cluster.retval == 3 and cluster.failed_proc == 0
    ok = Cluster(specs=["a", "b"])
    ok.start(0)
    ok.start(1)
    ok.ended(1, 0)
    assert not ok.all_done
    ok.ended(0, 0)
    assert ok.all_done and ok.retval == 0
    late = Cluster(specs=["a", "b"])
    late.start(0)
    late.start(1)
    late.ended(0, -9)  # killed by a signal: the node's value is -signal
    assert late.ended(1, 5) is False  # a later failure does not change the node's value
    assert late.retval == -9


# Each job marks itself running, waits (up to 3 s) until two jobs are marked, notes how many it
# saw, and unmarks itself: with -j 2 the first two jobs see each other, none sees three.
BARRIER = (
    "touch marks/run.{i}; n=0; while [ $(ls marks | grep -c ^run) -lt 2 ] && [ $n -lt 30 ]; "
    "do sleep 0.1; n=$((n+1)); done; ls marks | grep -c ^run > seen.{i}; sleep 0.2; "
    "rm marks/run.{i}; echo {i} > done.{i}"
)


def test_jobs_of_one_node_run_in_parallel_and_children_wait_for_all(tmp_path: Path) -> None:
    rows = [f"r{i} " + BARRIER.format(i=i) for i in range(4)]
    dag = make_dag(
        tmp_path,
        rows,
        """
        JOB search multi.sub
        JOB after single.sub
        VARS after cmd="ls done.* | wc -l > count.txt"
        PARENT search CHILD after
        """,
    )
    result = run(dag, "-j", "2")
    assert result.returncode == 0, result.stdout + result.stderr
    recs = records(dag)
    assert sorted(r["proc"] for r in proc_ends(recs, "search")) == [0, 1, 2, 3]
    seen = [int((tmp_path / f"seen.{i}").read_text()) for i in range(4)]
    assert max(seen) == 2, f"two jobs of the node ran at once under -j 2: {seen}"
    assert (tmp_path / "count.txt").read_text().strip() == "4"  # after ran after all four
    for i in range(4):
        assert (tmp_path / "out" / f"search.r{i}.0.out").exists()  # one output per job
    assert [r["status"] for r in attempts(recs, "search")] == ["done"]


def test_never_more_jobs_than_j(tmp_path: Path) -> None:
    rows = [f"r{i} " + BARRIER.format(i=i).replace("-lt 2", "-lt 3") for i in range(3)]
    dag = make_dag(tmp_path, rows, "JOB search multi.sub\n")
    result = run(dag, "-j", "2")
    assert result.returncode == 0, result.stdout + result.stderr
    assert max(int((tmp_path / f"seen.{i}").read_text()) for i in range(3)) == 2


def test_one_failed_job_fails_the_node_and_removes_the_others(tmp_path: Path) -> None:
    rows = ["bad sleep 0.5; exit 3", "slow sleep 30; touch marks/slow", "slow2 sleep 30"] + [
        f"later{i} touch marks/later{i}" for i in range(3)
    ]
    dag = make_dag(
        tmp_path,
        rows,
        """
        JOB search multi.sub
        JOB after single.sub
        VARS after cmd="touch marks/after"
        PARENT search CHILD after
        """,
    )
    result = run(dag, "-j", "3")
    assert result.returncode == 1
    recs = records(dag)
    (attempt,) = attempts(recs, "search")
    assert attempt["status"] == "failed" and attempt["exit_code"] == 3
    assert not (tmp_path / "marks" / "slow").exists(), "the running sibling was removed"
    assert not list((tmp_path / "marks").glob("later*")), "waiting jobs never started"
    assert not (tmp_path / "marks" / "after").exists()
    rescue = Path(f"{dag}.rescue001").read_text()
    assert "DONE search" not in rescue and "DONE after" not in rescue


def test_retry_reruns_every_job_of_the_node(tmp_path: Path) -> None:
    # proc "flaky" fails on the first attempt only; all three jobs run again on the retry.
    rows = [
        "a echo a >> marks/a",
        "flaky echo x >> marks/flaky; test $(RETRY) -ge 1",
        "c echo c >> marks/c",
    ]
    dag = make_dag(
        tmp_path,
        rows,
        """
        JOB search multi.sub
        RETRY search 2
        """,
    )
    result = run(dag, "-j", "1")
    assert result.returncode == 0, result.stdout + result.stderr
    recs = records(dag)
    assert [r["status"] for r in attempts(recs, "search")] == ["failed", "done"]
    assert len((tmp_path / "marks" / "flaky").read_text().split()) == 2
    # With -j 1 the first attempt stopped at the failure: "c" ran only on the retry, "a" twice.
    assert len((tmp_path / "marks" / "a").read_text().split()) == 2
    assert len((tmp_path / "marks" / "c").read_text().split()) == 1


def test_unless_exit_and_post_script_see_the_first_failed_job(tmp_path: Path) -> None:
    rows = ["a true", "b exit 2", "c exit 5"]
    post = tmp_path / "post.sh"
    post.write_text('#!/bin/sh\necho "$1" > marks/post_return\nexit "$1"\n')
    post.chmod(0o755)
    dag = make_dag(
        tmp_path,
        rows,
        f"""
        JOB search multi.sub
        RETRY search 2 UNLESS-EXIT 2
        SCRIPT POST search {post} $RETURN
        """,
    )
    result = run(dag, "-j", "1")
    assert result.returncode == 1
    recs = records(dag)
    assert [r["status"] for r in attempts(recs, "search")] == ["failed"], "no retry of exit 2"
    assert (tmp_path / "marks" / "post_return").read_text().strip() == "2"


def test_rescue_marks_the_node_done_only_when_all_jobs_succeeded(tmp_path: Path) -> None:
    rows = ["a touch marks/a", "b sleep 0.5; test -e marks/fixed"]
    dag = make_dag(
        tmp_path,
        rows,
        """
        JOB prep single.sub
        VARS prep cmd="true"
        JOB search multi.sub
        JOB after single.sub
        VARS after cmd="touch marks/after"
        PARENT prep CHILD search
        PARENT search CHILD after
        """,
    )
    first = run(dag, "-j", "2")
    assert first.returncode == 1
    rescue = Path(f"{dag}.rescue001").read_text()
    assert "DONE prep" in rescue and "DONE search" not in rescue
    (tmp_path / "marks" / "fixed").touch()
    (tmp_path / "marks" / "a").unlink(missing_ok=True)
    second = run(dag, "-j", "2")
    assert second.returncode == 0, second.stdout + second.stderr
    assert "resuming from test.dag.rescue001" in second.stdout
    recs = records(dag)
    assert attempts(recs, "prep") == [], "prep was DONE in the rescue DAG"
    assert sorted(r["proc"] for r in proc_ends(recs, "search")) == [0, 1], "all jobs rerun"
    assert (tmp_path / "marks" / "a").exists() and (tmp_path / "marks" / "after").exists()


def test_interrupt_kills_every_job_of_the_node_and_records_one_attempt(tmp_path: Path) -> None:
    import signal
    import time

    rows = [f"r{i} touch marks/started.{i}; sleep 30; touch marks/finished.{i}" for i in range(3)]
    dag = make_dag(tmp_path, rows, "JOB search multi.sub\n")
    runner = subprocess.Popen(
        [*RUNNER, "--dag", str(dag), "-j", "2"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "CONDOR_CONFIG": "/dev/null"},
        cwd=tmp_path,
    )
    try:
        for _ in range(600):  # two jobs started (safety bound only, never asserted)
            if len(list((tmp_path / "marks").glob("started.*"))) >= 2:
                break
            time.sleep(0.1)
        runner.send_signal(signal.SIGINT)
        assert runner.wait(timeout=SAFETY_TIMEOUT) == 128 + signal.SIGINT
    finally:
        if runner.poll() is None:
            runner.kill()
    recs = records(dag)
    assert [r["status"] for r in attempts(recs, "search")] == ["interrupted"]  # one record
    pids = [r["pid"] for r in recs if r.get("event") == "job_start"]
    assert len(pids) == 2, "the third job never started"
    for pid in pids:
        try:
            os.kill(pid, 0)
            alive = Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
        except ProcessLookupError:
            alive = False
        assert not alive, f"job {pid} survived the interrupt"
    assert not list((tmp_path / "marks").glob("finished.*"))
    assert "DONE search" not in Path(f"{dag}.rescue001").read_text()
