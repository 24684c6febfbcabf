"""A user's first day, through `make` as a user runs it, on this machine (issue 19).

The last run remembered (make watch/status/report/predict follow it; a given BASE_DIR wins),
make predict with the deployed model, the submit-side one-line checks (root, a venv this user
cannot run) and make watch's quiet progress. The same cases on a real pool, as its non-root
user: tests/test_pool.py (first_day).
"""

from __future__ import annotations

import csv
import os
import pwd
import subprocess
from pathlib import Path

import pytest
from conftest import REPO
from test_local_pipeline import make, make_env

from loanpipe.dagman import state as ds
from loanpipe.pool import progress

ROWS = "3000"


def bare_make(cwd: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """make as a user types it in ``cwd`` (PWD too), with no BASE_DIR."""
    environ = dict(env or make_env(), PWD=str(cwd))
    command = ["make", "--no-print-directory", "-C", str(REPO), *args]
    return subprocess.run(
        command, capture_output=True, text=True, env=environ, cwd=cwd, timeout=900
    )


def errors(proc: subprocess.CompletedProcess) -> list[str]:
    """stderr less make's own lines and the note on which run is followed."""
    return [
        ln for ln in proc.stderr.splitlines() if not ln.startswith(("make", "following the last"))
    ]


@pytest.fixture(scope="module")
def sample_run(tmp_path_factory) -> dict:
    """make data local BASE_DIR=B (remembered in LAST_RUN), and applications to score."""
    tmp = tmp_path_factory.mktemp("first-day")
    base, last = tmp / "loans", tmp / "last-run"
    base.mkdir()
    proc = make("data local", base / "dags", base, f"LAST_RUN={last}", "JOBS=2")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    with (base / "loan_data.csv").open() as fh:
        rows = list(csv.reader(fh))[:6]
    with (tmp / "apps.csv").open("w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["application_id", "branch", *rows[0][:-1]])  # no target column
        for i, row in enumerate(rows[1:]):
            out.writerow([f"APP-{i}", f"b{i}", *row[:-1]])
    return {"tmp": tmp, "base": base, "last": last, "local": proc}


def test_make_local_remembers_the_base_directory(sample_run) -> None:
    base, last = sample_run["base"], sample_run["last"]
    assert last.read_text() == f"{base} dagfile\n"
    report = bare_make(sample_run["tmp"], "report", f"LAST_RUN={last}")
    assert report.returncode == 0, report.stderr
    lines = report.stdout.splitlines()
    assert report.stderr.splitlines()[0] == (  # on stderr: --json output stays JSON
        f"following the last run: BASE_DIR={base} DAG=dagfile (give BASE_DIR=... for another)"
    )
    assert f"Report for {base}" in lines
    assert (
        "note: the input is generated sample data (3000 rows, seed 42), not real applications "
        "(make data)" in lines
    )


def test_a_given_base_dir_wins_over_the_remembered_one(sample_run, tmp_path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    last = sample_run["last"]
    report = bare_make(tmp_path, "report", "BASE_DIR=other", f"LAST_RUN={last}")
    assert report.returncode != 0
    assert "following the last run" not in report.stdout + report.stderr
    assert f"no run of dagfile.dag for this base directory: no records in {other}/dags" in (
        report.stderr
    )


def test_the_remembered_dag_is_followed_unless_one_is_given(tmp_path) -> None:
    last = tmp_path / "last-run"
    last.write_text("/nfs/loans tune\n")
    watch = bare_make(tmp_path, "-n", "watch", f"LAST_RUN={last}")
    assert watch.returncode == 0, watch.stderr
    assert '--dag "/nfs/loans/dags/tune.dag" watch' in watch.stdout
    given = bare_make(tmp_path, "-n", "status", "DAG=dagfile", f"LAST_RUN={last}")
    assert '--dag "/nfs/loans/dags/dagfile.dag" status' in given.stdout
    runs = bare_make(tmp_path, "-n", "runs", f"LAST_RUN={last}")
    assert 'loanpipe.report.history --base-dir "/nfs/loans" runs' in runs.stdout
    local = bare_make(tmp_path, "-n", "local", f"LAST_RUN={last}")  # runs never follow
    assert "/nfs/loans" not in local.stdout


def test_make_predict_scores_a_users_file_with_the_deployed_model(sample_run) -> None:
    tmp, last = sample_run["tmp"], sample_run["last"]
    proc = bare_make(tmp, "predict", "INPUT=apps.csv", f"LAST_RUN={last}")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "(row_id: column application_id)" in proc.stderr
    with (tmp / "apps.scored.csv").open() as fh:
        scored = list(csv.DictReader(fh))
    with (tmp / "apps.csv").open() as fh:
        given = list(csv.DictReader(fh))
    assert [r["row_id"] for r in scored] == [f"APP-{i}" for i in range(5)]
    assert list(scored[0])[:3] == ["row_id", "predicted_class", "probability_positive"]
    assert "application_id" not in scored[0]  # it is the row id
    for mine, out in zip(given, scored, strict=True):  # the user's columns come back
        assert {k: out[k] for k in mine if k != "application_id"} == {
            k: v for k, v in mine.items() if k != "application_id"
        }
    assert {r["predicted_class"] for r in scored} <= {"0", "1"}

    with_id = bare_make(
        tmp, "predict", "INPUT=apps.csv", "OUTPUT=by-branch.csv", "ID=branch", f"LAST_RUN={last}"
    )
    assert with_id.returncode == 0, with_id.stderr
    with (tmp / "by-branch.csv").open() as fh:
        assert [r["row_id"] for r in csv.DictReader(fh)] == [f"b{i}" for i in range(5)]

    missing = bare_make(tmp, "predict", f"LAST_RUN={last}")
    assert missing.returncode != 0
    assert errors(missing) == ["error: make predict needs INPUT=your-applications.csv"]


# --------------------------------------------------------------------------- submit-side checks


def stub_tools(tmp_path: Path) -> Path:
    """condor_submit_dag and condor_q that must never be reached."""
    stubs = tmp_path / "stubs"
    stubs.mkdir()
    for tool in ("condor_submit_dag", "condor_submit", "condor_q"):
        (stubs / tool).write_text(f"#!/bin/sh\necho {tool} ran >> {tmp_path}/ran\n")
        (stubs / tool).chmod(0o755)
    return stubs


@pytest.mark.skipif(os.geteuid() != 0, reason="the root check needs root")
@pytest.mark.parametrize("target", ["submit", "preflight"])
def test_root_is_refused_in_one_line_before_htcondor(tmp_path, target) -> None:
    base = tmp_path / "loans"
    base.mkdir()
    (base / "loan_data.csv").write_text("x\n")
    env = dict(make_env(), PATH=f"{stub_tools(tmp_path)}:{os.environ['PATH']}")
    proc = bare_make(tmp_path, target, f"BASE_DIR={base}", env=env)
    assert proc.returncode != 0
    assert len(errors(proc)) == 1 and errors(proc)[0].startswith(
        "error: you are root, and HTCondor does not let root own jobs"
    ), proc.stderr
    assert not (tmp_path / "ran").exists() and not (base / "dags").exists()


def broken_venv(tmp_path: Path) -> Path:
    """A venv whose interpreter this user cannot run (as a copied checkout's would be)."""
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "pyvenv.cfg").write_text("home = /home/someone-else/.pyenv/versions/3.11/bin\n")
    target = tmp_path / "not-executable"
    target.write_text("#!/bin/sh\n")
    target.chmod(0o644)
    (venv / "bin" / "python").symlink_to(target)
    (venv / ".installed").touch()  # an earlier make setup: "nothing to be done"
    return venv


@pytest.mark.parametrize("target", ["submit", "preflight", "report", "local"])
def test_a_venv_this_user_cannot_run_is_one_line(tmp_path, target) -> None:
    venv = broken_venv(tmp_path)
    proc = bare_make(tmp_path, target, f"VENV={venv}", f"BASE_DIR={tmp_path}")
    assert proc.returncode != 0
    assert errors(proc) == [
        f"error: {venv}/bin/python cannot be run by {pwd.getpwuid(os.getuid()).pw_name} (a copied "
        f"checkout? an interpreter under another home?): `make setup` rebuilds {venv}"
    ], proc.stderr
    assert "Permission denied" not in proc.stderr and "126" not in proc.stderr
    dry = bare_make(tmp_path, "-n", "setup", f"VENV={venv}")  # not "Nothing to be done"
    assert f"-m venv --clear {venv}" in dry.stdout


# --------------------------------------------------------------------------- watch's progress


def status_file(states: dict[str, tuple[int, str]]) -> ds.StatusFile:
    nodes = [ds.NodeState(name, state, details) for name, (state, details) in states.items()]
    return ds.StatusFile(dag_state=3, note="", counts={}, nodes=nodes)


def test_watch_off_a_terminal_prints_one_line_per_node_change() -> None:
    watch = progress.NodeProgress()
    first = watch.lines(status_file({"data_processing": (3, "idle"), "train": (0, "")}))
    assert [ln.split(" ", 1)[1].split() for ln in first] == [["data_processing", "idle"]]
    assert watch.lines(status_file({"data_processing": (3, "idle"), "train": (0, "")})) == []
    later = watch.lines(status_file({"data_processing": (5, ""), "train": (6, "exit 65")}))
    assert [ln.split(" ", 1)[1].split(None, 1) for ln in later] == [
        ["data_processing", "done"],
        ["train", "error: exit 65"],
    ]


def test_condor_watch_q_only_on_a_terminal(tmp_path) -> None:
    with open(tmp_path / "out", "w") as fh:
        assert progress.use_watch_q(False, fh) is False  # a file, a pipe, CI
    master, slave = os.openpty()
    try:
        with os.fdopen(slave, "w") as tty:
            assert progress.use_watch_q(False, tty) is True
            assert progress.use_watch_q(True, tty) is False  # --no-watch-q
    finally:
        os.close(master)
