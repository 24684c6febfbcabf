"""The project's own DAG run on one machine: loanpipe.local and `make local` (issues 4 and 6).

Each test uses its own temporary base directory; `make paths` renders the DAG into its dags/,
where the runner keeps its records, so the checkout is never touched.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REAL_DATA, REPO, RUNNER

from loanpipe import pipeline

NODES = [
    "data_processing", "train_test_split", "modeling_v1", "modeling_v2",
    "evaluate_model_v1", "evaluate_model_v2", "deploy_best_model", "loan_prediction",
]  # fmt: skip
FINAL = pipeline.FINAL_NODE  # both DAGs' FINAL node: the report, after every run
ROWS = "3000"


def make_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAKE") and k != "BASE_DIR"}
    env["CONDOR_CONFIG"] = "/dev/null"
    return env


def make(target: str, dag_dir: Path, base: Path, *extra: str) -> subprocess.CompletedProcess:
    """``make target`` for base directory ``base`` (whose DAG and records are in ``dag_dir``)."""
    assert dag_dir == base / "dags"
    command = ["make", "--no-print-directory", "-C", str(REPO), *target.split(),
               f"BASE_DIR={base}", f"ROWS={ROWS}", *extra]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, env=make_env(), timeout=900)


def start_runner(dag_dir: Path) -> subprocess.Popen:
    """bin/run_dag.py on the rendered DAG, in the background."""
    command = [*RUNNER, "--dag", str(dag_dir / "dagfile.dag")]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, env=make_env())


def records(dag_dir: Path) -> list[dict]:
    lines = (dag_dir / "dagfile.dag.local.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def last_run_attempts(dag_dir: Path) -> list[dict]:
    recs = records(dag_dir)
    start = max(i for i, r in enumerate(recs) if r.get("event") == "run_start")
    return [r for r in recs[start:] if "event" not in r]


@pytest.fixture
def fresh(tmp_path) -> tuple[Path, Path]:
    """An empty base directory and the directory its DAG and run records will be in."""
    base = tmp_path / "base"
    base.mkdir()
    return base / "dags", base


def test_make_local_generates_data_runs_the_dag_and_reports(fresh):
    dag_dir, base = fresh
    # A new base directory gets sample data only when asked for (a typo in BASE_DIR must not
    # train and deploy a model on synthetic data).
    refused = make("local", dag_dir, base)
    assert refused.returncode != 0 and list(base.iterdir()) == []
    assert [ln for ln in refused.stderr.splitlines() if not ln.startswith("make")] == [
        f"error: no loan_data.csv in {base}: put your data there, or "
        f"`make data BASE_DIR={base}` writes generated sample data"
    ]
    result = make("data local", dag_dir, base)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"No loan_data.csv in {base}: generating {ROWS} sample rows" in result.stdout
    # ... and the run says so: its summary, its run record, its report.
    said = f"generated sample data ({ROWS} rows, seed 42)"
    assert f"note: this run used {said}, not real applications" in result.stdout
    assert f"next: `make report BASE_DIR={base}`" in result.stdout
    start = next(r for r in records(dag_dir) if r.get("event") == "run_start")
    assert start["sample_data"] == said
    for name in (
        "model/deployed_model.pkl",
        "predictions/predictions.csv",
        "staging/metrics/model_metrics_v1.json",
        "staging/metrics/model_metrics_v2.json",
    ):
        assert (base / name).is_file(), name  # fmt: skip
    manifest = json.loads((base / "model/deployed_model.json").read_text())
    assert f"deployed: {manifest['model_name']} ({manifest['candidate']})" in result.stdout
    assert "DAG succeeded" in result.stdout

    attempts = {r["node"]: r for r in last_run_attempts(dag_dir)}
    assert sorted(attempts) == sorted([*NODES, FINAL])  # the FINAL node wrote the report
    assert attempts[FINAL]["start"] >= max(attempts[n]["end"] for n in NODES)
    assert 'data-dag-status="0"' in (base / "report" / "report.html").read_text()
    assert all(r["status"] == "done" and r["exit_code"] == 0 for r in attempts.values())
    # The submit files' expansion chose the command, the logs and the memory request.
    train = attempts["modeling_v2"]
    assert train["cmd"][1:] == [str(REPO / "scripts/train.py"), "--base-dir", str(base),
                                "--model", "v2"]  # fmt: skip
    assert train["stderr"] == str(base / "error/modeling_v2.0.err")
    # make paths sized the request from the generated input (loanpipe.sizing).
    assert train["request_memory_mib"] == 384
    assert 50 < train["peak_rss_mib"] < 384
    # Parents finish before children start; the two model branches overlap in time.
    for parent, child in (
        ("train_test_split", "modeling_v1"),
        ("deploy_best_model", "loan_prediction"),
    ):
        assert attempts[parent]["end"] <= attempts[child]["start"]
    first, second = attempts["modeling_v1"], attempts["modeling_v2"]
    assert first["job_start"] < second["job_end"] and second["job_start"] < first["job_end"]

    metrics = json.loads((dag_dir / "dagfile.dag.metrics").read_text())
    assert (metrics["DagStatus"], metrics["nodes_succeeded"], metrics["nodes_failed"]) == (0, 9, 0)

    # make clean removes intermediate files and logs, never the input data nor the deployment;
    # the run records stay in dags/ (they are the base directory's history).
    assert make("clean", dag_dir, base).returncode == 0
    assert sorted(p.name for p in base.iterdir() if not p.name.startswith(".")) == [
        "dags",
        "loan_data.csv",
        "loan_data.sample.json",
        "model",
    ]
    assert (base / "model/deployed_model.pkl").is_file()
    assert make("local", dag_dir, base).returncode == 0  # the DAG recreates what clean removed

    report = subprocess.run(
        [sys.executable, "-m", "loanpipe.report", "--base-dir", str(base),
         "--dag", str(dag_dir / "dagfile.dag"), "--json"],
        capture_output=True, text=True, env=make_env(),
    )  # fmt: skip
    assert report.returncode == 0, report.stderr
    assert (base / "report/report.md").is_file()
    assert f"the input is {said}, not real applications" in (base / "report/report.md").read_text()


def test_killed_run_resumes_with_only_the_unfinished_nodes(fresh):
    dag_dir, base = fresh
    assert make("paths", dag_dir, base).returncode == 0
    assert make("data", dag_dir, base).returncode == 0
    runner = start_runner(dag_dir)
    jsonl = dag_dir / "dagfile.dag.local.jsonl"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and runner.poll() is None:
        done = [
            r for r in (records(dag_dir) if jsonl.exists() else []) if r.get("status") == "done"
        ]
        if any(r["node"] == "train_test_split" for r in done):
            break
        time.sleep(0.05)
    runner.send_signal(signal.SIGKILL)  # no chance to write a rescue file
    runner.wait()
    finished = {r["node"] for r in records(dag_dir) if r.get("status") == "done"}
    assert {"data_processing", "train_test_split"} <= finished and len(finished) < 8

    result = make("local", dag_dir, base)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "recovering: the previous run died" in result.stdout
    rerun = {r["node"] for r in last_run_attempts(dag_dir)}
    assert rerun == set(NODES) - finished | {FINAL}  # a FINAL node is never DONE: it reruns
    assert (base / "predictions/predictions.csv").is_file()


def test_bad_input_fails_the_dag_once_with_the_stage_message(fresh):
    dag_dir, base = fresh
    (base / "loan_data.csv").write_text("a,b,loan_status\n1,2,0\n3,4,0\n")
    result = make("local", dag_dir, base)
    assert result.returncode != 0
    assert "data_processing failed" in result.stdout
    assert "loan_data.csv: target column 'loan_status' has a single class" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr
    attempts = last_run_attempts(dag_dir)
    # no retry; the FINAL node reports, then exits 1 so that the DAG stays failed
    assert [(r["node"], r["exit_code"]) for r in attempts] == [("data_processing", 65), (FINAL, 1)]
    assert (dag_dir / "dagfile.dag.rescue001").is_file()
    assert not (base / "staging/split_data/processed_data.csv").exists()


def test_clean_after_a_failed_run_drops_the_rescue_dag(fresh, sample_csv):
    """A rescue DAG marks nodes DONE; after make clean removed their outputs it must go too."""
    dag_dir, base = fresh
    shutil.copy(sample_csv, base / "loan_data.csv")
    assert make("paths", dag_dir, base).returncode == 0
    (dag_dir / "dagfile.dag.rescue001").write_text(
        "# a rescue DAG from an interrupted run\nDONE data_processing\nDONE train_test_split\n"
    )
    assert make("clean", dag_dir, base).returncode == 0
    assert not list(dag_dir.glob("dagfile.dag.rescue*"))
    result = make("local", dag_dir, base)
    assert result.returncode == 0, result.stdout + result.stderr
    assert {r["node"] for r in last_run_attempts(dag_dir)} == {*NODES, FINAL}


def test_a_second_run_on_the_same_base_directory_is_refused(fresh, tmp_path):
    dag_dir, base = fresh
    assert make("data", dag_dir, base).returncode == 0
    assert make("paths", dag_dir, base).returncode == 0
    first = start_runner(dag_dir)
    try:
        lock = base / ".pipeline.lock"
        deadline = time.monotonic() + 60
        while not (lock.exists() and lock.read_text().strip()) and time.monotonic() < deadline:
            time.sleep(0.02)
        second = make("local", dag_dir, base)
        assert second.returncode != 0
        holder = f"BASE_DIR {base} is in use by `make local` (pid {first.pid} on "
        assert holder in second.stderr and f"DAG {dag_dir}/dagfile.dag)" in second.stderr
        # Another DAG over the same base directory (another checkout's rendering): refused too.
        other = tmp_path / "other" / "dagfile.dag"
        other.parent.mkdir()
        shutil.copy(dag_dir / "dagfile.dag", other)
        third = subprocess.run(
            [*RUNNER, "--dag", str(other)],
            capture_output=True, text=True, env=make_env(),
        )  # fmt: skip
        assert third.returncode != 0
        assert holder in third.stderr
    finally:
        first.send_signal(signal.SIGINT)
        first.wait(timeout=60)


@pytest.mark.skipif(not REAL_DATA.is_file(), reason=f"real data set not found at {REAL_DATA}")
def test_real_data_through_the_dag(fresh):
    dag_dir, base = fresh
    shutil.copy(REAL_DATA, base / "loan_data.csv")
    result = make("local", dag_dir, base)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "deployed: Logistic Regression (v1): higher precision, by 0.0111" in result.stdout
    assert "generating" not in result.stdout  # make data never replaces a user's loan_data.csv
    assert (base / "loan_data.csv").read_bytes() == REAL_DATA.read_bytes()


def test_make_rollback_restores_the_previous_deployment(fresh):
    dag_dir, base = fresh
    assert make("data local", dag_dir, base).returncode == 0
    first = (base / "model/deployed_model.json").read_bytes()
    manifest = json.loads(first)
    loser = "v2" if manifest["candidate"] == "v1" else "v1"
    metrics_file = base / f"staging/metrics/model_metrics_{loser}.json"
    metrics = json.loads(metrics_file.read_text())
    metrics["Precision"] = 1.0
    metrics_file.write_text(json.dumps(metrics))
    subprocess.run([sys.executable, str(REPO / "scripts/deploy.py"), "--base-dir", str(base)],
                   check=True, capture_output=True)  # fmt: skip
    assert json.loads((base / "model/deployed_model.json").read_text())["candidate"] == loser
    result = make("rollback", dag_dir, base)
    assert result.returncode == 0, result.stderr
    assert (base / "model/deployed_model.json").read_bytes() == first
    assert "rolled back from " in result.stderr
    assert f"({manifest['model_name']} {manifest['candidate']}, deployed at" in result.stderr


def test_relative_base_dir_means_where_the_user_runs_make(tmp_path):
    """A relative BASE_DIR is taken from where the user stands (the shell's PWD), also with
    make -C, and made one absolute path for the data, the DAG and the jobs."""
    env = dict(make_env(), PWD=str(tmp_path))
    dry = subprocess.run(
        ["make", "--no-print-directory", "-n", "-C", str(REPO), "data", "local",
         "BASE_DIR=some/where"],
        capture_output=True, text=True, env=env, cwd=tmp_path,
    )  # fmt: skip
    assert dry.returncode == 0, dry.stderr
    absolute = str(tmp_path / "some/where")
    assert f"--output {absolute}/loan_data.csv" in dry.stdout
    assert f'--base-dir "{absolute}"' in dry.stdout
    assert "some/where" not in dry.stdout.replace(absolute, "")


def test_the_dag_source_is_not_run_by_mistake():
    """bin/run_dag.py on dag/dagfile.dag (no paths) says to run the rendered one instead."""
    result = subprocess.run(
        [*RUNNER, "--dag", str(REPO / "dag/dagfile.dag")],
        capture_output=True, text=True, env=make_env(),
    )  # fmt: skip
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.strip().splitlines() == [
        f"error: {REPO}/dag/dagfile.dag is the DAG's source; run the DAG `make paths` renders "
        "for a base directory (BASE_DIR/dags/dagfile.dag)"
    ]


def test_two_base_directories_keep_their_own_runs(tmp_path):
    """A failed run over A leaves A's rescue DAG in A/dags; B runs meanwhile; A then resumes."""
    a, b = tmp_path / "a", tmp_path / "b"
    for base in (a, b):
        base.mkdir()
        assert make("data", base / "dags", base).returncode == 0
    good = (a / "loan_data.csv").read_bytes()
    (a / "loan_data.csv").write_text("loan_status,x\n1,2\n")  # too small: data_processing fails
    failed = make("local", a / "dags", a)
    assert failed.returncode != 0
    assert (a / "dags/dagfile.dag.rescue001").is_file()
    other = make("local", b / "dags", b)  # not blocked by A's rescue DAG, no FRESH=1 needed
    assert other.returncode == 0, other.stdout + other.stderr
    assert not list((b / "dags").glob("*.rescue*"))
    assert (a / "dags/dagfile.dag.rescue001").is_file()  # A's rescue waits for A
    (a / "loan_data.csv").write_bytes(good)
    resumed = make("local", a / "dags", a)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "resuming from dagfile.dag.rescue001" in resumed.stdout
