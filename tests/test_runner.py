"""Tests for loanpipe.local.runner, the local DAG runner.

Each test builds a small DAG in tmp_path whose nodes run shell commands through one submit file
(``executable = /bin/sh``, ``arguments = "-c '$(cmd)'"``, the command in the node's VARS), runs
the runner as a subprocess and checks its exit code, its records and the files it wrote.
Timing facts (overlap, serialisation) are read from the recorded job start/end times.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import RUNNER, SAFETY_TIMEOUT
from conftest import run_runner as run

from loanpipe.local import jobspec

REPO = Path(__file__).resolve().parent.parent


SUBMIT = """\
executable = /bin/sh
arguments = "-c '$(cmd)'"
output = out/$(JOB).$(RETRY).out
error = err/$(JOB).$(RETRY).err
log = log/$(JOB).log
request_memory = 64MB
request_cpus = 1
getenv = PATH
queue
"""


def make_dag(tmp_path: Path, body: str, dirs: bool = True) -> Path:
    (tmp_path / "node.sub").write_text(SUBMIT)
    if dirs:
        for d in ("out", "err", "log"):
            (tmp_path / d).mkdir(exist_ok=True)
    dag = tmp_path / "test.dag"
    dag.write_text(textwrap.dedent(body).lstrip("\n"))
    return dag


def all_records(dag: Path) -> list[dict[str, Any]]:
    path = Path(f"{dag}.local.jsonl")
    return [json.loads(line) for line in path.read_text().splitlines()]


def last_run(dag: Path) -> list[dict[str, Any]]:
    """Attempt records of the most recent run."""
    recs = all_records(dag)
    starts = [i for i, r in enumerate(recs) if r.get("event") == "run_start"]
    return [r for r in recs[starts[-1] :] if "event" not in r]


def by_node(recs: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for r in recs:
        out.setdefault(r["node"], []).append(r)
    return out


def metrics(dag: Path) -> dict[str, Any]:
    return json.loads(Path(f"{dag}.metrics").read_text())


def overlap(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return a["job_start"] < b["job_end"] and b["job_start"] < a["job_end"]


DIAMOND = """
    JOB A node.sub
    JOB B node.sub
    JOB C node.sub
    JOB D node.sub
    PARENT A CHILD B C
    PARENT B C CHILD D
    VARS ALL_NODES cmd="echo $(JOB) attempt $(RETRY); echo $(JOB) >> trace.txt; sleep 0.3"
"""


def test_diamond_runs_in_dependency_order_and_overlaps(tmp_path: Path) -> None:
    dag = make_dag(tmp_path, DIAMOND)
    res = run(dag, "-j", "4")
    assert res.returncode == 0, res.stdout + res.stderr
    recs = by_node(last_run(dag))
    assert {n: [r["status"] for r in rs] for n, rs in recs.items()} == {n: ["done"] for n in "ABCD"}
    a, b, c, d = (recs[n][0] for n in "ABCD")
    assert a["job_end"] <= b["job_start"] and a["job_end"] <= c["job_start"]
    assert max(b["job_end"], c["job_end"]) <= d["job_start"]
    assert overlap(b, c), "independent nodes B and C should run at the same time"
    # Output files come from the submit file, expanded with JOB and RETRY.
    assert (tmp_path / "out" / "B.0.out").read_text() == "B attempt 0\n"
    assert a["cmd"][:2] == ["/bin/sh", "-c"] and a["iwd"] == str(tmp_path)
    assert a["stdout"] == str(tmp_path / "out" / "A.0.out")
    assert a["log"] == str(tmp_path / "log" / "A.log")
    assert a["request_memory_mib"] == 64 and a["request_cpus"] == 1
    assert a["exit_code"] == 0 and a["signal"] is None and a["peak_rss_mib"] > 0
    m = metrics(dag)
    assert (m["DagStatus"], m["exitcode"], m["nodes"], m["nodes_succeeded"]) == (0, 0, 4, 4)
    assert m["metrics_version"] == 2
    assert not list(tmp_path.glob("test.dag.rescue*"))
    assert not Path(f"{dag}.lock").exists(), "the lock must be released"
    end = all_records(dag)[-1]
    assert end["event"] == "run_end" and end["DagStatus"] == 0


def test_j1_serialises_independent_nodes(tmp_path: Path) -> None:
    dag = make_dag(tmp_path, DIAMOND)
    assert run(dag, "-j", "1").returncode == 0
    recs = by_node(last_run(dag))
    assert not overlap(recs["B"][0], recs["C"][0])


def test_maxjobs_limits_a_category(tmp_path: Path) -> None:
    dag = make_dag(
        tmp_path,
        """
        JOB A node.sub
        JOB B node.sub
        JOB C node.sub
        JOB D node.sub
        VARS ALL_NODES cmd="sleep 0.3"
        CATEGORY A heavy
        CATEGORY B heavy
        CATEGORY C heavy
        MAXJOBS heavy 1
        """,
    )
    res = run(dag, "-j", "4")
    assert res.returncode == 0, res.stdout + res.stderr
    recs = by_node(last_run(dag))
    heavy = [recs[n][0] for n in "ABC"]
    for i, x in enumerate(heavy):
        for y in heavy[i + 1 :]:
            assert not overlap(x, y), "MAXJOBS heavy 1 must keep A, B, C apart"
    # D is not in the category: it runs alongside one of them.
    assert any(overlap(recs["D"][0], x) for x in heavy)


FAILING = """
    JOB A node.sub
    JOB B node.sub
    JOB C node.sub
    JOB D node.sub
    JOB E node.sub
    PARENT A CHILD B C
    PARENT B CHILD D
    PARENT C CHILD E
    VARS ALL_NODES cmd="echo $(JOB) >> ran.txt"
    VARS B cmd="echo B >> ran.txt; test -f fixed"
"""


def test_failure_stops_descendants_only_and_resume_runs_the_rest(tmp_path: Path) -> None:
    dag = make_dag(tmp_path, FAILING)
    res = run(dag)
    assert res.returncode == 1
    assert (tmp_path / "ran.txt").read_text().split().count("D") == 0
    recs = by_node(last_run(dag))
    assert recs["B"][0]["status"] == "failed" and recs["B"][0]["exit_code"] == 1
    assert [recs[n][0]["status"] for n in "ACE"] == ["done"] * 3
    assert "D" not in recs
    assert all_records(dag)[-1]["nodes"]["D"] == "futile"
    rescue = Path(f"{dag}.rescue001")
    text = rescue.read_text()
    assert text.startswith("# Rescue DAG file, created after running\n#   the test.dag DAG file\n")
    assert "# Rescue DAG version: 2.0.1 (partial)" in text
    assert "#   B,<ENDLIST>" in text
    assert [ln for ln in text.splitlines() if ln.startswith("DONE")] == [
        "DONE A",
        "DONE C",
        "DONE E",
    ]
    m = metrics(dag)
    assert (m["DagStatus"], m["exitcode"], m["nodes_failed"], m["nodes_futile"]) == (2, 1, 1, 1)

    (tmp_path / "fixed").write_text("")
    res2 = run(dag)
    assert res2.returncode == 0, res2.stdout + res2.stderr
    assert "resuming from test.dag.rescue001" in res2.stdout
    assert sorted(r["node"] for r in last_run(dag)) == ["B", "D"]
    start = [r for r in all_records(dag) if r.get("event") == "run_start"][-1]
    assert start["resumed_from"] == str(rescue)
    assert metrics(dag)["rescue_dag_number"] == 1

    # That run succeeded: the rescue DAG has nothing left to resume (make submit's rule too).
    res3 = run(dag)
    assert res3.returncode == 0, res3.stdout + res3.stderr
    assert (
        "the DAG succeeded after test.dag.rescue001 was written: nothing to resume" in res3.stdout
    )
    assert sorted(r["node"] for r in last_run(dag)) == list("ABCDE")
    assert not rescue.exists()


def test_second_failure_writes_next_rescue_number(tmp_path: Path) -> None:
    dag = make_dag(tmp_path, FAILING)
    assert run(dag).returncode == 1
    assert run(dag).returncode == 1
    assert Path(f"{dag}.rescue001").exists() and Path(f"{dag}.rescue002").exists()
    assert sorted(r["node"] for r in last_run(dag)) == ["B"]


def test_fresh_removes_rescue_files_and_reruns_everything(tmp_path: Path) -> None:
    dag = make_dag(tmp_path, FAILING)
    assert run(dag).returncode == 1
    (tmp_path / "fixed").write_text("")
    res = run(dag, "--fresh")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "removed 1 rescue file" in res.stdout
    assert sorted(r["node"] for r in last_run(dag)) == list("ABCDE")
    assert not list(tmp_path.glob("test.dag.rescue*"))


def test_retry_counts_and_retry_macro(tmp_path: Path) -> None:
    dag = make_dag(
        tmp_path,
        """
        JOB never node.sub
        JOB second node.sub
        VARS never cmd="exit 1"
        VARS second cmd="test $(RETRY) -ge 1"
        RETRY never 2
        RETRY second 3
        """,
    )
    assert run(dag).returncode == 1
    recs = by_node(last_run(dag))
    assert [r["retry"] for r in recs["never"]] == [0, 1, 2]
    assert [r["will_retry"] for r in recs["never"]] == [True, True, False]
    assert [r["status"] for r in recs["second"]] == ["failed", "done"]
    assert sorted(p.name for p in (tmp_path / "err").glob("never.*")) == [
        "never.0.err",
        "never.1.err",
        "never.2.err",
    ]
    assert "RETRY never 2" in Path(f"{dag}.rescue001").read_text()


def test_unless_exit_stops_retries(tmp_path: Path) -> None:
    dag = make_dag(
        tmp_path,
        """
        JOB perm node.sub
        JOB trans node.sub
        VARS perm cmd="exit 2"
        VARS trans cmd="exit 1"
        RETRY ALL_NODES 2 UNLESS-EXIT 2
        """,
    )
    assert run(dag).returncode == 1
    recs = by_node(last_run(dag))
    assert len(recs["perm"]) == 1 and recs["perm"][0]["exit_code"] == 2
    assert len(recs["trans"]) == 3


def test_pre_skip_and_pre_script_rerun_on_retry(tmp_path: Path) -> None:
    (tmp_path / "pre.sh").write_text('#!/bin/sh\necho "$1 $2" >> pre.log\nexit "$3"\n')
    (tmp_path / "pre.sh").chmod(0o755)
    dag = make_dag(
        tmp_path,
        """
        JOB skipped node.sub
        JOB kid node.sub
        JOB retried node.sub
        PARENT skipped CHILD kid
        VARS ALL_NODES cmd="echo $(JOB) >> ran.txt"
        VARS retried cmd="exit 1"
        SCRIPT PRE skipped pre.sh $JOB $RETRY 7
        PRE_SKIP skipped 7
        SCRIPT PRE retried pre.sh $JOB $RETRY 0
        RETRY retried 1
        """,
    )
    assert run(dag).returncode == 1
    ran = (tmp_path / "ran.txt").read_text().split()
    assert "skipped" not in ran and "kid" in ran
    recs = by_node(last_run(dag))
    assert recs["skipped"][0]["status"] == "pre_skipped"
    assert recs["skipped"][0]["pre_exit_code"] == 7
    assert not (tmp_path / "out" / "skipped.0.out").exists()
    # RETRY reruns the whole node, PRE script included, with $RETRY incremented.
    pre_log = (tmp_path / "pre.log").read_text().splitlines()
    assert "retried 0" in pre_log and "retried 1" in pre_log


def test_post_script_exit_code_replaces_the_jobs(tmp_path: Path) -> None:
    (tmp_path / "post.sh").write_text('#!/bin/sh\necho "$1 $2" >> post.log\nexit "$3"\n')
    (tmp_path / "post.sh").chmod(0o755)
    dag = make_dag(
        tmp_path,
        """
        JOB rescued node.sub
        JOB spoiled node.sub
        VARS rescued cmd="exit 4"
        VARS spoiled cmd="true"
        SCRIPT POST rescued post.sh $JOB $RETURN 0
        SCRIPT POST spoiled post.sh $JOB $RETURN 3
        """,
    )
    assert run(dag).returncode == 1
    recs = by_node(last_run(dag))
    assert recs["rescued"][0]["status"] == "done" and recs["rescued"][0]["job_exit_code"] == 4
    assert recs["spoiled"][0]["status"] == "failed" and recs["spoiled"][0]["exit_code"] == 3
    assert sorted((tmp_path / "post.log").read_text().splitlines()) == ["rescued 4", "spoiled 0"]


def test_abort_dag_on_kills_running_nodes(tmp_path: Path) -> None:
    dag = make_dag(
        tmp_path,
        """
        JOB bad node.sub
        JOB slow node.sub
        JOB after node.sub
        PARENT slow CHILD after
        VARS bad cmd="sleep 0.5; exit 5"
        VARS slow cmd="exec sleep 60"
        VARS after cmd="true"
        ABORT-DAG-ON bad 5 RETURN 1
        RETRY bad 3
        """,
    )
    res = run(dag, "-j", "4")
    assert res.returncode == 1
    recs = by_node(last_run(dag))
    assert len(recs["bad"]) == 1, "an abort overrides RETRY"
    assert recs["slow"][0]["status"] == "aborted"
    assert recs["slow"][0]["signal"] == signal.SIGTERM
    assert "after" not in recs
    assert metrics(dag)["DagStatus"] == 3
    assert Path(f"{dag}.rescue001").exists()


def test_abort_without_return_exits_with_the_node_code(tmp_path: Path) -> None:
    dag = make_dag(tmp_path, 'JOB a node.sub\nVARS a cmd="exit 6"\nABORT-DAG-ON a 6\n')
    assert run(dag).returncode == 6


def test_missing_output_directory_fails_the_node_clearly(tmp_path: Path) -> None:
    dag = make_dag(tmp_path, 'JOB a node.sub\nVARS a cmd="true"\n', dirs=False)
    res = run(dag)
    assert res.returncode == 1
    rec = last_run(dag)[0]
    assert rec["status"] == "failed"
    assert "directory" in rec["error"] and "does not exist" in rec["error"]
    assert "does not exist" in res.stdout


def test_unknown_command_is_refused_with_file_and_line(tmp_path: Path) -> None:
    dag = make_dag(tmp_path, 'JOB a node.sub\nVARS a cmd="true"\nSPLICE s other.dag\n')
    res = run(dag)
    assert res.returncode == 2
    assert res.stderr.strip().splitlines() == [
        f"error: {dag}:3: SPLICE is not supported by this project's DAG tools"
    ]
    assert "Traceback" not in res.stderr
    assert not Path(f"{dag}.local.jsonl").exists()


def base_dag(tmp_path: Path) -> tuple[Path, Path]:
    base = tmp_path / "base"
    base.mkdir()
    dag = make_dag(
        tmp_path,
        f'JOB a node.sub\nVARS a cmd="true"\nVARS ALL_NODES BASE_DIR="{base}"\n',
    )
    return dag, base


def test_lock_refuses_a_second_run_on_the_same_base_dir(tmp_path: Path) -> None:
    dag, base = base_dag(tmp_path)
    with open(base / ".pipeline.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fh.write(f"local-runner {os.getpid()} thishost\n")
        fh.flush()
        res = run(dag)
    assert res.returncode == 1
    assert res.stderr.splitlines() == [
        f"error: BASE_DIR {base} is in use by `make local` (pid {os.getpid()} on thishost): "
        f"wait for it to finish or stop it (lock file {base / '.pipeline.lock'})"
    ]
    assert not Path(f"{dag}.local.jsonl").exists(), "a refused run must not start nodes"
    assert not Path(f"{dag}.lock").exists(), "the base directory is refused before the DAG"


def test_lock_refuses_a_second_run_of_the_same_dag(tmp_path: Path) -> None:
    dag, _ = base_dag(tmp_path)
    with open(f"{dag}.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fh.write(f"local-runner {os.getpid()} thishost\n")
        fh.flush()
        res = run(dag)
    assert res.returncode == 1
    assert f"DAG {dag} is in use by `make local` (pid {os.getpid()} on thishost)" in res.stderr


# make submit's DAGMan job holds the base directory for its whole life (loanpipe.local.lock).
DAGMAN_ENDED = """000 (123.000.000) 2026-11-28 03:29:33 Job submitted from host: <127.0.0.1:9618>
...
005 (123.000.000) 2026-11-28 03:29:34 Job terminated.
\t(1) Normal termination (return value 0)
\t\tUsr 0 00:00:00, Sys 0 00:00:00  -  Run Remote Usage
\t\tUsr 0 00:00:00, Sys 0 00:00:00  -  Run Local Usage
\t\tUsr 0 00:00:00, Sys 0 00:00:00  -  Total Remote Usage
\t\tUsr 0 00:00:00, Sys 0 00:00:00  -  Total Local Usage
\t0  -  Run Bytes Sent By Job
\t0  -  Run Bytes Received By Job
\t0  -  Total Bytes Sent By Job
\t0  -  Total Bytes Received By Job
...
"""


def test_a_dagman_holding_the_base_dir_refuses_make_local(tmp_path: Path) -> None:
    dag, base = base_dag(tmp_path)
    other = base / "dags" / "tune.dag"  # another DAG over the same base directory
    lock = base / ".pipeline.lock"
    lock.write_text(f"condor-dagman 123 submithost {other}\n")
    res = run(dag)  # CONDOR_CONFIG=/dev/null: no schedd to ask, no log of job 123
    assert res.returncode == 1
    assert res.stderr.splitlines() == [
        f"error: BASE_DIR {base} is in use by DAGMan job 123 of {other} (submitted from "
        "submithost) (its log shows no end yet): follow it with "
        f"`make watch BASE_DIR={base} DAG=tune` or remove it with condor_rm 123 (lock file {lock})"
    ]
    assert lock.read_text() == f"condor-dagman 123 submithost {other}\n"  # never removed
    assert not Path(f"{dag}.local.jsonl").exists()

    other.parent.mkdir(exist_ok=True)
    Path(f"{other}.dagman.log").write_text(DAGMAN_ENDED)  # DAGMan's own log: job 123 ended
    res = run(dag)
    assert res.returncode == 0, res.stdout + res.stderr
    assert f"note: taking over {lock} from DAGMan job 123: it has ended" in res.stdout
    assert not lock.exists()


def test_stale_lock_from_dead_pid_is_taken_over(tmp_path: Path) -> None:
    dag, base = base_dag(tmp_path)
    dead = subprocess.Popen(["true"])
    dead.wait()
    (base / ".pipeline.lock").write_text(f"local-runner {dead.pid} somehost\n")
    res = run(dag)
    assert res.returncode == 0, res.stdout + res.stderr
    assert f"taking over stale lock {base / '.pipeline.lock'} from pid {dead.pid}" in res.stdout
    assert not (base / ".pipeline.lock").exists()


def test_dagman_lock_file_is_never_taken_over(tmp_path: Path) -> None:
    """condor_dagman does not flock its lock file: its presence means a pool run may be active."""
    dag, base = base_dag(tmp_path)
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        lock = Path(f"{dag}.lock")
        lock.write_text(f"{sleeper.pid} 1 0 1 1 1\n")  # DAGMan's format: pid and process ids
        res = run(dag)
        assert res.returncode != 0
        assert f"{lock} was written by condor_dagman" in res.stderr
        assert lock.read_text() == f"{sleeper.pid} 1 0 1 1 1\n"  # left as it was
        assert not (base / ".pipeline.lock").exists()
        assert not Path(f"{dag}.local.jsonl").exists()  # nothing ran
    finally:
        sleeper.kill()
        sleeper.wait()


def test_sigint_kills_nodes_writes_rescue_and_releases_locks(tmp_path: Path) -> None:
    dag, base = base_dag(tmp_path)
    dag.write_text(
        dag.read_text()
        + 'JOB b node.sub\nVARS b cmd="echo $$ > b.pid; exec sleep 60"\nPARENT a CHILD b\n'
    )
    env = {**os.environ, "CONDOR_CONFIG": "/dev/null"}
    proc = subprocess.Popen(
        [*RUNNER, "--dag", str(dag)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    for line in proc.stdout:  # wait for the event, not for a time
        if "b" in line.split() and "running" in line:
            break
    pid_file = tmp_path / "b.pid"
    deadline = time.time() + SAFETY_TIMEOUT  # and for the job to have written its pid
    while not (pid_file.is_file() and pid_file.read_text().strip()):
        assert time.time() < deadline
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=SAFETY_TIMEOUT)
    assert proc.returncode == 128 + signal.SIGINT
    assert "interrupted by SIGINT" in out
    job_pid = int((tmp_path / "b.pid").read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(job_pid, 0)
    assert "DONE a" in Path(f"{dag}.rescue001").read_text()
    assert by_node(last_run(dag))["b"][0]["status"] == "interrupted"
    assert metrics(dag)["DagStatus"] == 4
    assert not (base / ".pipeline.lock").exists() and not Path(f"{dag}.lock").exists()


def test_environment_and_arguments_parsing() -> None:
    assert jobspec.split_args_v2("-c echo' 'a' '1") == ["-c", "echo a 1"]
    assert jobspec.split_args_v2("a b' '' 'c ''") == ["a", "b ' c", ""]
    ad = {"Environment": "A=1 B=two' 'words C=\"q\" D=it''''s E="}
    assert jobspec.parse_environment(ad) == {
        "A": "1",
        "B": "two words",
        "C": '"q"',
        "D": "it's",
        "E": "",
    }
    assert jobspec.parse_environment({"Env": "X=1;Y=2 3"}) == {"X": "1", "Y": "2 3"}


def test_submit_expansion_with_the_bindings(tmp_path: Path, monkeypatch: Any) -> None:
    """VARS reach the submit file as macros defined *before* it (DAGMan's default PREPEND)."""
    monkeypatch.setenv("CONDOR_CONFIG", "/dev/null")
    monkeypatch.setenv("SOME_VAR", "from-submitter")
    (tmp_path / "w").mkdir()
    (tmp_path / "s.sub").write_text(
        "executable = /bin/echo\n"
        "arguments = \"$(JOB) $(RETRY) $(x) '$(y)'\"\n"
        "y = set in the submit file\n"
        "initialdir = $(dir)\n"
        "output = $(JOB).out\n"
        "getenv = SOME_VAR\n"
        "environment = \"A=1 B='two words'\"\n"
        "request_memory = 1GB\n"
        "queue\n"
    )
    from loanpipe.dagman import Node

    node = Node(
        name="n",
        submit="s.sub",
        vars={"x": "vx", "y": "from VARS", "dir": "w"},
        submit_path=tmp_path / "s.sub",
        node_dir=tmp_path,
    )
    (spec,) = jobspec.expand_submit(node, 2)
    assert spec.argv == ["/bin/echo", "n", "2", "vx", "set in the submit file"]
    assert spec.iwd == tmp_path / "w"
    assert spec.stdout == tmp_path / "w" / "n.out"  # relative Out resolves against Iwd
    assert spec.env == {"A": "1", "B": "two words", "SOME_VAR": "from-submitter"}
    assert spec.request_memory_mib == 1024
    assert jobspec.expand_in_helper(node, 2) == [spec]


def test_live_status_line_on_a_terminal_only(tmp_path: Path) -> None:
    import pty

    body = 'JOB slow node.sub\nVARS slow cmd="sleep 3"\nJOB quick node.sub\nVARS quick cmd="true"\n'
    dag = make_dag(tmp_path, body)
    plain = run(dag)
    assert plain.returncode == 0 and "\x1b[" not in plain.stdout  # pipes get plain lines

    leader, follower = pty.openpty()
    env = {**os.environ, "CONDOR_CONFIG": "/dev/null", "TERM": "xterm"}
    proc = subprocess.Popen(
        [*RUNNER, "--dag", str(dag), "--fresh"],
        stdout=follower, stderr=follower, env=env,
    )  # fmt: skip
    os.close(follower)
    output = b""
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # the terminal closed: the runner is gone
            break
        if not chunk:
            break
        output += chunk
    os.close(leader)
    assert proc.wait(timeout=SAFETY_TIMEOUT) == 0
    text = output.decode()
    assert "\r\x1b[K" in text
    assert "1/2 done; running: slow" in text  # quick finished, slow still running
    assert "DAG succeeded" in text


def test_sigterm_runs_the_final_node_as_a_removed_dag_does(tmp_path: Path) -> None:
    """Like condor_rm of the DAGMan job (checked on the pool): the running nodes are killed,
    the rescue DAG is written, then the FINAL node runs with DAG_STATUS 4 and, succeeding,
    makes the exit code 0 while DagStatus stays 4."""
    dag = make_dag(
        tmp_path,
        """
        JOB a node.sub
        VARS a cmd="echo $$ > a.pid; exec sleep 60"
        FINAL f node.sub
        VARS f cmd="echo $(DAG_STATUS) > final.txt"
        """,
    )
    proc = subprocess.Popen(
        [*RUNNER, "--dag", str(dag)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "CONDOR_CONFIG": "/dev/null"},
    )
    pid_file = tmp_path / "a.pid"
    deadline = time.time() + SAFETY_TIMEOUT
    while not (pid_file.is_file() and pid_file.read_text().strip()):
        assert time.time() < deadline and proc.poll() is None
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=SAFETY_TIMEOUT)
    assert proc.returncode == 0, out + err
    assert (tmp_path / "final.txt").read_text() == "4\n"
    assert "FINAL node f succeeded" in out
    recs = by_node(last_run(dag))
    assert recs["a"][0]["status"] == "interrupted" and recs["f"][0]["status"] == "done"
    assert metrics(dag)["DagStatus"] == 4
    rescue = Path(f"{dag}.rescue001").read_text().splitlines()
    assert "# Nodes premarked DONE: 0" in rescue
    assert not [line for line in rescue if line.startswith("DONE")]  # never the FINAL node


def test_a_job_htcondor_would_hold_runs_the_post_script_with_return_1002(tmp_path: Path) -> None:
    """As DAGMan does under DAGMAN_MAX_JOB_HOLDS = 1 (tests/test_dagman_parity.py checks it on
    the pool): the job is removed at its hold and the POST script decides the node."""
    (tmp_path / "held.sub").write_text(
        'executable = /bin/echo\narguments = "$$(NoSuchMachineAttribute)"\nqueue\n'
    )
    (tmp_path / "post.sh").write_text('echo "$1" > post.txt\n')
    dag = make_dag(
        tmp_path,
        """
        JOB a held.sub
        SCRIPT POST a /bin/sh post.sh $RETURN
        JOB b held.sub
        """,
    )
    res = run(dag)
    assert res.returncode == 1, res.stdout + res.stderr
    assert (tmp_path / "post.txt").read_text() == "-1002\n"
    recs = by_node(last_run(dag))
    assert recs["a"][0]["status"] == "done"
    assert recs["b"][0]["status"] == "failed"
    assert "cannot expand $$(NoSuchMachineAttribute)" in recs["b"][0]["error"]


@pytest.mark.parametrize(
    "config, fragment",
    [
        ("DAGMAN_MAX_JOB_HOLDS = 3\n", "DAGMAN_MAX_JOB_HOLDS = 3 is not supported"),
        ("# ok\nDAGMAN_USER_LOG_SCAN_INTERVAL = 1\nDAGMAN_USE_STRICT = 0\n", "DAGMAN_USE_STRICT"),
        ("DAGMAN_MAX_JOB_HOLDS = 1\nDAGMAN_ALWAYS_RUN_POST = True\n", "DAGMAN_ALWAYS_RUN_POST"),
    ],
)
def test_config_knobs_it_cannot_honour_are_refused(
    tmp_path: Path, config: str, fragment: str
) -> None:
    (tmp_path / "d.config").write_text(config)
    dag = make_dag(tmp_path, 'CONFIG d.config\nJOB a node.sub\nVARS a cmd="true"\n')
    res = run(dag)
    assert res.returncode == 2
    line = len(config.splitlines())
    assert res.stderr.strip().splitlines() == [
        f"error: {tmp_path / 'd.config'}:{line}: {fragment}"
        + res.stderr.strip().split(fragment, 1)[1]
    ]
    assert not Path(f"{dag}.local.jsonl").exists()
