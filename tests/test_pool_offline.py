"""loanpipe.pool and loanpipe.dagman.state without a pool: DAGMan's files as HTCondor 24.0.23 wrote
them on the personal pool (excerpts), read back; submit's decisions; watch's verdict lines.

The same code runs against a real pool in tests/test_pool.py.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parent.parent
os.environ.setdefault("CONDOR_CONFIG", os.devnull)

from loanpipe.dagman import metrics as dag_metrics  # noqa: E402
from loanpipe.dagman import state as ds  # noqa: E402  (imported once CONDOR_CONFIG is set)
from loanpipe.pool import checks, commands  # noqa: E402  (imported once CONDOR_CONFIG is set)
from loanpipe.pool import submit as pool_submit  # noqa: E402
from loanpipe.pool.rundir import PoolError, Run  # noqa: E402
from loanpipe.pool.status import node_table  # noqa: E402
from loanpipe.pool.verdict import verdict  # noqa: E402

# A node status file as DAGMan 24.0.23 writes it mid-run (Dag::DumpNodeStatus), shortened.
STATUS_RUNNING = """[
  Type = "DagStatus";
  DagFiles = {
    "dagfile.dag"
  };
  Timestamp = 1795836540; /* "Sat Nov 28 03:29:00 2026" */
  DagStatus = 3; /* "STATUS_SUBMITTED ()" */
  NodesTotal = 8;
  NodesDone = 2;
  NodesPre = 0;
  NodesQueued = 2;
  NodesPost = 0;
  NodesReady = 0;
  NodesUnready = 4;
  NodesFutile = 0;
  NodesFailed = 0;
  JobProcsHeld = 0;
  JobProcsIdle = 1; /* includes held */
]
[
  Type = "NodeStatus";
  Node = "train_test_split";
  NodeStatus = 5; /* "STATUS_DONE" */
  StatusDetails = "";
  RetryCount = 0;
  JobProcsQueued = 0;
  JobProcsHeld = 0;
]
[
  Type = "NodeStatus";
  Node = "modeling_v1";
  NodeStatus = 3; /* "STATUS_SUBMITTED" */
  StatusDetails = "not_idle";
  RetryCount = 1;
  JobProcsQueued = 1;
  JobProcsHeld = 0;
]
[
  Type = "NodeStatus";
  Node = "modeling_v2";
  NodeStatus = 3; /* "STATUS_SUBMITTED" */
  StatusDetails = "idle";
  RetryCount = 0;
  JobProcsQueued = 1;
  JobProcsHeld = 0;
]
[
  Type = "NodeStatus";
  Node = "deploy_best_model";
  NodeStatus = 0; /* "STATUS_NOT_READY" */
  StatusDetails = "";
  RetryCount = 0;
  JobProcsQueued = 0;
  JobProcsHeld = 0;
]
[
  Type = "StatusEnd";
  EndTime = 1795836540; /* "Sat Nov 28 03:29:00 2026" */
  NextUpdate = 1795836542; /* "Sat Nov 28 03:29:02 2026" */
]
"""

STATUS_FAILED = """[
  Type = "DagStatus";
  Timestamp = 1795836588; /* "Sat Nov 28 03:29:48 2026" */
  DagStatus = 6; /* "STATUS_ERROR (failed)" */
  NodesTotal = 8;
  NodesDone = 0;
  NodesQueued = 0;
  NodesFailed = 1;
  JobProcsHeld = 0;
  JobProcsIdle = 0; /* includes held */
]
[
  Type = "NodeStatus";
  Node = "data_processing";
  NodeStatus = 6; /* "STATUS_ERROR" */
  StatusDetails = "Job proc (12.0.0) failed with status 2";
  RetryCount = 0;
  JobProcsQueued = 0;
  JobProcsHeld = 0;
]
[
  Type = "NodeStatus";
  Node = "train_test_split";
  NodeStatus = 0; /* "STATUS_NOT_READY" */
  StatusDetails = "";
  RetryCount = 0;
  JobProcsQueued = 0;
  JobProcsHeld = 0;
]
"""

# condor_dagman's own log when it stopped before any node ran (a DAG under /tmp), two runs.
DAGMAN_OUT = """11/28/26 03:20:00 ** condor_scheduniv_exec.9.0 (CONDOR_DAGMAN) STARTING UP
11/28/26 03:20:01 ERROR: an older problem of another run
11/28/26 03:29:33 ** condor_scheduniv_exec.10.0 (CONDOR_DAGMAN) STARTING UP
11/28/26 03:29:33 Warning: failed to get attribute DAGNodeName
11/28/26 03:29:33 Warning: default node log file /tmp/x/dags/./dagfile.dag.nodes.log is in /tmp
11/28/26 03:29:33 ERROR: Warning is fatal error because of DAGMAN_USE_STRICT setting
11/28/26 03:29:33 Aborting DAG...
11/28/26 03:29:33 **** condor_scheduniv_exec.10.0 (condor_DAGMAN) pid 7100 EXITING WITH STATUS 1
"""

HOST = "<127.0.0.1:42789?addrs=127.0.0.1-42789&alias=vm&noUDP&sock=schedd_4944_10b9>"
# A node's job held mid-run and removed by DAGMan (DAGMAN_MAX_JOB_HOLDS = 1), then its retry.
NODES_LOG = f"""000 (029.000.000) 2026-11-28 03:33:16 Job submitted from host: {HOST}
    DAG Node: modeling_v1
...
001 (029.000.000) 2026-11-28 03:33:16 Job executing on host: {HOST}
...
012 (029.000.000) 2026-11-28 03:33:16 Job was held.
\tvia condor_hold (by user condoruser)
\tCode 1 Subcode 0
...
009 (029.000.000) 2026-11-28 03:33:17 Job was aborted.
\tDAG Limit: Max number of held jobs was reached. (by user condoruser)
...
000 (031.000.000) 2026-11-28 03:33:19 Job submitted from host: {HOST}
    DAG Node: modeling_v1
...
"""

# The DAGMan job's own event log: submitted, running, exited with 1.
DAGMAN_LOG = f"""000 (010.000.000) 2026-11-28 03:29:33 Job submitted from host: {HOST}
...
001 (010.000.000) 2026-11-28 03:29:33 Job executing on host: {HOST}
...
005 (010.000.000) 2026-11-28 03:29:34 Job terminated.
\t(1) Normal termination (return value 1)
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


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    """A rendered DAG in BASE_DIR/dags (two nodes are enough for pool.py)."""
    base = tmp_path / "base"
    dags = base / "dags"
    write(base / "loan_data.csv", "a,b\n1,2\n")
    write(
        dags / "dagfile.dag",
        "JOB data_processing /p/submit/process.sub\nJOB train_test_split /p/submit/split.sub\n"
        "PARENT data_processing CHILD train_test_split\n"
        f'VARS ALL_NODES BASE_DIR="{base}" PROJECT_DIR="/p" PYTHON="/p/.venv/bin/python"\n',
    )
    return dags


# --------------------------------------------------------------------------- reading DAGMan's files


def test_status_file_states_are_node_states(tmp_path: Path) -> None:
    status = ds.read_status_file(write(tmp_path / "s", STATUS_RUNNING))
    assert status is not None
    assert status.dag_state == 3 and status.label == "running"  # not "aborted": a node state
    assert status.counts["done"] == 2 and status.counts["total"] == 8
    labels = {n.name: (n.label, n.retries) for n in status.nodes}
    assert labels == {
        "train_test_split": ("done", 0),
        "modeling_v1": ("running", 1),
        "modeling_v2": ("idle", 0),
        "deploy_best_model": ("not ready", 0),
    }
    assert ds.progress_line(status) == ("2/8 nodes done, 2 submitted (1 idle, 0 held), 0 failed")
    table = node_table(status)
    assert table[0].startswith("DAG: running; 2/8 nodes done")
    assert table[3].split()[:3] == ["modeling_v1", "running", "1"]


def test_status_file_of_a_failed_dag(tmp_path: Path) -> None:
    status = ds.read_status_file(write(tmp_path / "s", STATUS_FAILED))
    assert status is not None and status.label == "error (failed)"
    assert [(n.name, n.label) for n in status.nodes] == [
        ("data_processing", "error"),
        ("train_test_split", "not ready"),
    ]
    assert ds.read_status_file(tmp_path / "missing") is None
    assert ds.read_status_file(write(tmp_path / "half", STATUS_FAILED[:40])) is None


def test_dagman_reason_is_the_error_of_that_run(tmp_path: Path) -> None:
    out = write(tmp_path / "dagfile.dag.dagman.out", DAGMAN_OUT)
    reason = ds.dagman_reason(out, 10)
    assert reason == (
        "Warning: default node log file /tmp/x/dags/./dagfile.dag.nodes.log is in /tmp "
        "(ERROR: Warning is fatal error because of DAGMAN_USE_STRICT setting)"
    )
    assert ds.dagman_reason(out, 9) == "ERROR: an older problem of another run"
    assert ds.dagman_reason(out, 11) is None


def test_dagman_log_gives_the_jobs_end(tmp_path: Path) -> None:
    log = ds.DagmanLog(write(tmp_path / "dagfile.dag.dagman.log", DAGMAN_LOG))
    job = log.update()
    assert job is not None and job.cluster == 10 and job.done and job.exit_code == 1
    assert ds.DagmanLog(tmp_path / "none").update() is None


def test_hold_reasons_come_from_the_node_log(tmp_path: Path) -> None:
    log = write(tmp_path / "dagfile.dag.nodes.log", NODES_LOG)
    holds = ds.node_holds(log)
    assert [(h.node, h.cluster, h.code, h.subcode) for h in holds] == [("modeling_v1", 29, 1, 0)]
    assert "via condor_hold (by user condoruser)" in holds[0].line()
    assert "HoldReasonCode 1/0" in holds[0].line()
    assert ds.node_holds(log, since=holds[0].time + 60) == []  # an older run's hold


def test_reading_logs_keeps_the_pools_configuration(tmp_path: Path, monkeypatch) -> None:
    """make watch and make status read DAGMan's logs, then ask the schedd: reading a log must
    not point the bindings at CONDOR_CONFIG=/dev/null, or on a pool configured through
    /etc/condor (CONDOR_CONFIG unset) the schedd could no longer be found."""
    monkeypatch.delenv("CONDOR_CONFIG")
    ds.DagmanLog(write(tmp_path / "dagfile.dag.dagman.log", DAGMAN_LOG)).update()
    ds.node_holds(write(tmp_path / "dagfile.dag.nodes.log", NODES_LOG))
    assert "CONDOR_CONFIG" not in os.environ


def test_one_line_error(tmp_path: Path) -> None:
    stage = write(tmp_path / "a.err", "[process] read\nprocess: error: x.csv: bad\n")
    assert ds.one_line_error(stage) == "process: error: x.csv: bad"
    crash = write(tmp_path / "b.err", "Traceback (most recent call last):\n  ...\nOSError: boom\n")
    assert ds.one_line_error(crash) == "OSError: boom"
    assert ds.one_line_error(write(tmp_path / "c.err", "")) is None


def test_metrics_belong_to_their_dagman(tmp_path: Path) -> None:
    path = write(tmp_path / "m", '{"dagman_id": "41", "DagStatus": 2}')
    assert dag_metrics.read(path, 41) == {"dagman_id": "41", "DagStatus": 2}
    assert dag_metrics.read(path, 42) is None  # an older run's metrics
    assert dag_metrics.dag_status(dag_metrics.read(path)) == 2


# --------------------------------------------------------------------------- submit


def test_submit_refuses_a_dag_under_tmp_and_missing_data(tmp_path: Path) -> None:
    with pytest.raises(PoolError, match="is under /tmp: DAGMan refuses"):
        pool_submit.check_inputs(Path("/tmp/x/dags"), tmp_path)
    with pytest.raises(PoolError, match="is under /tmp"):
        pool_submit.check_inputs(Path("/tmpdata/dags"), tmp_path)  # DAGMan's test is a prefix test
    home = Path("/home/u/base/dags")
    with pytest.raises(PoolError, match="loan_data.csv: no such file"):
        pool_submit.check_inputs(home, tmp_path)
    write(tmp_path / "loan_data.csv", "x\n")
    pool_submit.check_inputs(home, tmp_path)


def touch(path: Path, text: str = "x\n", mtime: float | None = None) -> None:
    write(path, text)
    if mtime is not None:
        os.utime(path, (mtime, mtime))


@pytest.mark.parametrize(
    ("files", "fresh", "force", "note"),
    [
        ({}, False, False, "first run"),
        ({}, True, True, "FRESH=1"),
        ({".condor.sub": 100}, False, True, "nothing to resume"),
        ({".condor.sub": 100, ".rescue001": 200}, False, False, "resuming from"),
        # DAGMan keeps the rescue DAG it resumed from after the DAG succeeded
        ({".condor.sub": 100, ".rescue001": 200, ".metrics": 300}, False, True, "succeeded after"),
    ],
)
def test_submit_command(run_dir: Path, files: dict, fresh: bool, force: bool, note: str) -> None:
    for suffix, mtime in files.items():
        text = '{"DagStatus": 0}' if suffix == ".metrics" else "x\n"
        touch(run_dir / f"dagfile.dag{suffix}", text, mtime)
    cmd, said = pool_submit.submit_command(Run(run_dir / "dagfile.dag"), fresh, "loans")
    assert cmd[:3] == ["condor_submit_dag", "-batch-name", "loans"]
    assert cmd[-1] == "dagfile.dag"
    assert ("-f" in cmd) is force
    assert note in said


def test_failed_run_metrics_do_not_force_a_rerun(run_dir: Path) -> None:
    touch(run_dir / "dagfile.dag.rescue001", "DONE data_processing\n", 200)
    touch(run_dir / "dagfile.dag.metrics", '{"DagStatus": 2}', 300)
    cmd, said = pool_submit.submit_command(Run(run_dir / "dagfile.dag"), False, "b")
    assert "-f" not in cmd and "resuming from dagfile.dag.rescue001" in said


def test_submit_asks_the_schedd_before_anything(run_dir: Path, monkeypatch, capsys) -> None:
    calls = []
    monkeypatch.setattr(checks, "submit_side", lambda tool: None)  # test_first_day
    monkeypatch.setattr(pool_submit, "under_tmp", lambda path: False)  # tmp_path is in /tmp
    monkeypatch.setattr(shutil, "which", lambda tool: f"/bin/{tool}")
    monkeypatch.setattr(pool_submit, "run", lambda cmd, cwd: calls.append((cmd, cwd)) or 0)
    monkeypatch.setattr(ds, "queued_dagmans", lambda d, n: [{"ClusterId": 77}])
    code = commands.main(["--dag", str(run_dir / "dagfile.dag"), "submit"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and calls == []
    assert len(err) == 1 and "already in the queue (job 77)" in err[0]

    monkeypatch.setattr(ds, "queued_dagmans", lambda d, n: [])
    touch(run_dir / "dagfile.dag.lock")
    assert commands.main(["--dag", str(run_dir / "dagfile.dag"), "submit"]) == 1
    assert "dagfile.dag.lock exists" in capsys.readouterr().err
    (run_dir / "dagfile.dag.lock").unlink()

    argv = ["--dag", str(run_dir / "dagfile.dag"), "submit", "--batch-name", "n"]
    assert commands.main(argv) == 0
    assert calls == [(["condor_submit_dag", "-batch-name", "n", "dagfile.dag"], run_dir)]
    lock = run_dir.parent / ".pipeline.lock"
    assert not lock.exists()  # no DAGMan job to hand it to, and the user is told
    assert "is not locked for it" in capsys.readouterr().out

    # The DAGMan job found: the base directory's lock names it and stays for its whole life.
    monkeypatch.setattr(pool_submit, "submitted_cluster", lambda run_, since: 78)
    assert commands.main(argv) == 0
    tag, cluster, _host, dag = lock.read_text().split()
    assert (tag, cluster, dag) == ("condor-dagman", "78", str(run_dir / "dagfile.dag"))


def test_submit_without_a_schedd_says_so_in_one_line(run_dir: Path, monkeypatch, capsys) -> None:
    def unreachable(run_dir: Path, name: str) -> list:
        raise OSError("cannot ask the schedd which DAGs are queued: no schedd")

    monkeypatch.setattr(pool_submit, "under_tmp", lambda path: False)
    monkeypatch.setattr(shutil, "which", lambda tool: f"/bin/{tool}")
    monkeypatch.setattr(ds, "queued_dagmans", unreachable)
    monkeypatch.setattr(checks, "submit_side", lambda tool: None)
    assert commands.main(["--dag", str(run_dir / "dagfile.dag"), "submit"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: cannot ask the schedd which DAGs are queued: no schedd"]


# --------------------------------------------------------------------------- watch's verdict


def test_verdict_names_the_failed_node_and_its_error(run_dir: Path) -> None:
    base = run_dir.parent
    write(run_dir / "dagfile.dag.status", STATUS_FAILED)
    write(run_dir / "dagfile.dag.metrics", '{"dagman_id": "12", "DagStatus": 2}')
    write(base / "error" / "data_processing.0.err", "process: error: x.csv: target missing\n")
    job = ds.DagmanJob(cluster=12, submitted=1795836500.0, ended=1.0, exit_code=1)
    code, lines = verdict(Run(run_dir / "dagfile.dag"), job)
    assert code == 1
    assert lines[0] == "DAGMan job 12 exited with code 1: DagStatus 2 (a node failed)"
    assert lines[1] == (
        "failed node data_processing: Job proc (12.0.0) failed with status 2; "
        f"{base}/error/data_processing.0.err: process: error: x.csv: target missing"
    )
    write(run_dir / "dagfile.dag.rescue001", "# nothing DONE\n")
    assert verdict(Run(run_dir / "dagfile.dag"), job)[1][-1] == (
        f"fix the cause, then `make submit BASE_DIR={base}` resumes from dagfile.dag.rescue001"
    )


def test_verdict_gives_dagmans_reason_when_no_node_ran(run_dir: Path) -> None:
    write(run_dir / "dagfile.dag.dagman.out", DAGMAN_OUT)
    write(run_dir / "dagfile.dag.status", STATUS_FAILED)  # an older run's: ignored
    job = ds.DagmanJob(cluster=10, submitted=1795836600.0, ended=1.0, exit_code=1)
    code, lines = verdict(Run(run_dir / "dagfile.dag"), job)
    assert code == 1
    assert lines[0] == "DAGMan job 10 exited with code 1"
    assert lines[1].startswith("DAGMan: Warning: default node log file /tmp/x/dags/")


def test_verdict_is_0_only_for_dagstatus_0(run_dir: Path) -> None:
    write(run_dir / "dagfile.dag.metrics", '{"dagman_id": "5", "DagStatus": 0}')
    job = ds.DagmanJob(cluster=5, submitted=0.0, ended=1.0, exit_code=0)
    assert verdict(Run(run_dir / "dagfile.dag"), job)[0] == 0
    removed = ds.DagmanJob(cluster=5, submitted=0.0, ended=1.0, removed=True)
    code, lines = verdict(Run(run_dir / "dagfile.dag"), removed)
    assert code == 1 and "removed (condor_rm)" in lines[0]
    other = ds.DagmanJob(cluster=6, submitted=0.0, ended=1.0, exit_code=0)  # no metrics of it
    assert verdict(Run(run_dir / "dagfile.dag"), other)[0] == 1
    lost = ds.DagmanJob(cluster=7, submitted=0.0)  # the schedd lost it: no end event
    code, lines = verdict(Run(run_dir / "dagfile.dag"), lost)
    assert code == 1 and "left the queue without an end" in lines[0]
    # no rescue DAG of this run; the exact command for this base directory
    assert lines[-1] == f"fix the cause, then `make submit BASE_DIR={run_dir.parent}`"


def test_watch_of_a_finished_dag_returns_at_once(run_dir: Path, capsys) -> None:
    write(run_dir / "dagfile.dag.dagman.log", DAGMAN_LOG)
    write(run_dir / "dagfile.dag.dagman.out", DAGMAN_OUT)
    assert commands.main(["--dag", str(run_dir / "dagfile.dag"), "watch"]) == 1
    out = capsys.readouterr().out
    assert "following" not in out  # nothing to follow: the verdict only
    assert "watch: DAGMan: Warning: default node log file" in out


def test_watch_before_any_submit(run_dir: Path, capsys) -> None:
    assert commands.main(["--dag", str(run_dir / "dagfile.dag"), "watch"]) == 1
    assert "nothing submitted" in capsys.readouterr().err


# --------------------------------------------------------------------------- make check


def test_check_needs_no_exec_bit_on_stage_scripts(tmp_path: Path) -> None:
    """The submit files run $(PYTHON) with the script as an argument: readable is enough."""
    from loanpipe.check import offline
    from loanpipe.dagman import render

    project = tmp_path / "project"
    for name in ("dag", "submit", "scripts"):
        shutil.copytree(PROJECT / name, project / name)
    for script in (project / "scripts").glob("*.py"):
        script.chmod(0o644)
    base = tmp_path / "base"
    args = ["--dag", str(project / "dag" / "dagfile.dag"), "--base-dir", str(base)]
    python = str(PROJECT / ".venv" / "bin" / "python")
    assert render.main([*args, "--project-dir", str(project), "--python", python]) == 0
    problems, summary = offline.run_checks(base / "dags" / "dagfile.dag")
    assert problems == [] and summary.startswith("check: ok")
    (project / "scripts" / "train.py").chmod(0o000)
    if os.access(project / "scripts" / "train.py", os.R_OK):  # root reads anything
        return
    problems, _ = offline.run_checks(base / "dags" / "dagfile.dag")
    assert any("train.py' does not exist or is not readable" in p for p in problems)


# --------------------------------------------------------------------------- preflight's job script


def run_preflight_script(python: str, base: Path, requirements: Path):
    import subprocess

    cmd = [python, str(PROJECT / "scripts" / "preflight.py"), "--base-dir", str(base)]
    cmd += ["--project-dir", str(PROJECT), "--requirements", str(requirements)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300)


def verdict_line(stdout: str) -> str:
    return [ln for ln in stdout.splitlines() if ln.startswith("verdict:")][-1]


def test_preflight_script_ok_and_version_mismatch(tmp_path: Path) -> None:
    reqs = PROJECT / "requirements.txt"
    ok = run_preflight_script(sys.executable, tmp_path, reqs)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert verdict_line(ok.stdout) == "verdict: ok"
    assert list(tmp_path.iterdir()) == []  # its probe file is gone
    pinned = write(tmp_path / "r.txt", reqs.read_text().replace("pandas==", "pandas==0.0.0#"))
    bad = run_preflight_script(sys.executable, tmp_path / "missing", pinned)
    assert bad.returncode == 1
    assert "FAIL: pandas is " in bad.stdout and "requirements.txt pins 0.0.0" in bad.stdout
    assert "FAIL: BASE_DIR " in bad.stdout and "is not there (not mounted" in bad.stdout
    assert verdict_line(bad.stdout).startswith("verdict: pandas is ")


@pytest.mark.skipif(
    not Path("/usr/bin/python3").exists(), reason="no system python3 to lack the stack"
)
def test_preflight_script_names_an_import_error(tmp_path: Path) -> None:
    import subprocess

    probe = subprocess.run(["/usr/bin/python3", "-c", "import numpy"], capture_output=True)
    if probe.returncode == 0:
        pytest.skip("the system python3 has numpy: no import error to see")
    proc = run_preflight_script("/usr/bin/python3", tmp_path, PROJECT / "requirements.txt")
    assert proc.returncode == 1
    assert "Traceback" not in proc.stdout + proc.stderr
    assert verdict_line(proc.stdout).startswith("verdict: import numpy failed: ModuleNotFound")


@pytest.mark.parametrize("position", [0, 1, 2])
def test_verdict_names_the_failing_job_of_a_node_of_many(run_dir: Path, position: int) -> None:
    """The model search: one stderr file per candidate; the failing one (in any position, its
    siblings removed by DAGMan after it, so newer and empty) is named, not a sibling's."""
    base = run_dir.parent
    write(run_dir / "dagfile.dag.status", STATUS_FAILED.replace("data_processing", "model_search"))
    write(run_dir / "dagfile.dag.metrics", '{"dagman_id": "12", "DagStatus": 2}')
    names = ["dt-01", "hgb-02", "lr-03"]
    bad = names[position]
    for i, name in enumerate(names):
        text = f"search: error: candidate {name}: decision_tree cannot be fitted: boom\n"
        touch(base / "error" / f"model_search.{name}.0.err", text if name == bad else "",
              mtime=1795836000.0 + (0 if name == bad else 10 + i))  # fmt: skip
    job = ds.DagmanJob(cluster=12, submitted=1795836500.0, ended=1.0, exit_code=1)
    _, lines = verdict(Run(run_dir / "dagfile.dag"), job)
    assert lines[1] == (
        f"failed node model_search: Job proc (12.0.0) failed with status 2; job {bad} failed; "
        f"{base}/error/model_search.{bad}.0.err: "
        f"search: error: candidate {bad}: decision_tree cannot be fitted: boom"
    )


def test_verdict_of_a_removed_dag_is_a_removal_with_the_resume_command(run_dir: Path) -> None:
    write(run_dir / "dagfile.dag.status", STATUS_FAILED)  # DAGMan marks removed nodes failed
    write(run_dir / "dagfile.dag.metrics", '{"dagman_id": "12", "DagStatus": 4}')
    write(run_dir / "dagfile.dag.rescue001", "# nothing DONE\n")
    job = ds.DagmanJob(cluster=12, submitted=1795836500.0, ended=1.0, removed=True)
    code, lines = verdict(Run(run_dir / "dagfile.dag"), job)
    assert code == 1
    assert lines[0].startswith("DAGMan job 12 was removed (condor_rm)")
    assert not any(line.startswith("failed node") for line in lines)
    assert lines[-1] == "`make submit` resumes from dagfile.dag.rescue001 (the nodes done are kept)"


# ------------------------------------------------------------------ claims ahead of the DAG


def test_claims_ask_what_the_nodes_ask_for_the_widest_level() -> None:
    from loanpipe.dagman import parse_dag
    from loanpipe.pool import claims

    repo = Path(__file__).resolve().parent.parent
    assert claims.widest_level(parse_dag(repo / "dag" / "dagfile.dag")) == 2  # the two branches
    assert claims.widest_level(parse_dag(repo / "dag" / "tune.dag", cwd=repo / "dag")) == 3
    # the submit file includes the nodes' common.sub: same requests, same requirements
    text = (repo / "submit" / "claims.sub").read_text()
    assert "include : $Fp(SUBMIT_FILE)common.sub" in text and "keep_claim_idle" in text
    assert text.rstrip().endswith("queue $(CLAIMS:2)")


def test_claims_command_takes_the_rendered_dags_values(run_dir: Path) -> None:
    from loanpipe.pool import claims

    dag = run_dir / "dagfile.dag"
    cmd = claims.claims_command(dag)
    assert (
        cmd[:3] == ["condor_submit", "-batch-name", "claims"] and cmd[-1] == "/p/submit/claims.sub"
    )
    assert f"BASE_DIR={run_dir.parent}" in cmd and "PYTHON=/p/.venv/bin/python" in cmd
    assert "CLAIMS=1" in cmd and f"CLAIMS_LOG={dag}.claims.log" in cmd  # one node per level
    assert "CLAIMS=3" in claims.claims_command(dag, 3)
    write(dag, "JOB a /p/a.sub\n")  # not rendered by make paths
    with pytest.raises(claims.DagError, match="no VARS ALL_NODES BASE_DIR, PROJECT_DIR, PYTHON"):
        claims.claims_command(dag)


def fake_condor(bin_dir: Path, name: str, script: str) -> None:
    write(bin_dir / name, f"#!/bin/sh\n{script}\n")
    (bin_dir / name).chmod(0o755)


def test_claims_are_queued_without_a_reschedule_and_removed_when_the_dag_is_not(
    run_dir: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    bin_dir = tmp_path / "bin"
    seen = tmp_path / "seen"
    fake_condor(
        bin_dir,
        "condor_submit",
        f'echo "$_CONDOR_SUBMIT_SEND_RESCHEDULE $*" > {seen}; '
        'echo "1 job(s) submitted to cluster 41."',
    )
    fake_condor(bin_dir, "condor_rm", f'echo "rm $*" >> {seen}')
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.setattr(checks, "submit_side", lambda tool: None)
    monkeypatch.setattr(pool_submit, "under_tmp", lambda path: False)
    monkeypatch.setattr(ds, "queued_dagmans", lambda d, n: [])
    monkeypatch.setattr(pool_submit, "run", lambda cmd, cwd: 1)  # condor_submit_dag fails
    assert commands.main(["--dag", str(run_dir / "dagfile.dag"), "submit"]) == 1
    said = seen.read_text().splitlines()
    assert said[0].startswith("False -batch-name claims ") and said[0].endswith("claims.sub")
    assert said[1] == "rm 41"  # not left behind for a DAG that was not submitted
    assert "1 claim job(s) queued ahead of the DAG (cluster 41)" in capsys.readouterr().out

    fake_condor(bin_dir, "condor_submit", "echo 'ERROR: no schedd' >&2; exit 1")
    monkeypatch.setattr(pool_submit, "run", lambda cmd, cwd: 0)
    assert commands.main(["--dag", str(run_dir / "dagfile.dag"), "submit", "--claims", "2"]) == 0
    assert "no claims queued ahead of the DAG: ERROR: no schedd" in capsys.readouterr().out


def test_claims_sub_asks_what_a_node_asks(tmp_path: Path) -> None:
    """Expanded by the bindings as condor_submit would: the claims fit every node's slot."""
    from loanpipe.dagman import Node, submit

    repo = Path(__file__).resolve().parent.parent
    values = {"BASE_DIR": str(tmp_path), "PROJECT_DIR": str(repo), "PYTHON": "/v/bin/python"}
    values |= {"MEMORY_MB": "768", "CLAIMS": "3", "CLAIMS_LOG": f"{tmp_path}/d.claims.log"}

    def ads(name: str) -> list:
        path = repo / "submit" / name
        node = Node(name="n", submit=name, vars=dict(values), submit_path=path, node_dir=tmp_path)
        return submit.node_job_ads(node, 0)

    claims, node = ads("claims.sub"), ads("process.sub")[0]
    assert len(claims) == 3
    for key in ("RequestMemory", "RequestDisk", "RequestCpus", "Cmd", "ShouldTransferFiles"):
        assert str(claims[0][key]) == str(node[key]), key
    assert claims[0]["RequestMemory"] == 768 and claims[0]["KeepClaimIdle"] == 30
    assert claims[0]["Args"] == "-I -S -c pass" and claims[0]["UserLog"] == values["CLAIMS_LOG"]
    assert "KeepClaimIdle" not in node  # DAGMan adds it to nodes with children
    assert ads("predict.sub")[0]["KeepClaimIdle"] == 20  # a leaf: for the FINAL node
