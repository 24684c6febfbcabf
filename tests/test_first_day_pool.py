"""A user's first day on a real HTCondor pool, through make, as the pool's (non-root) user.

One checkout copy (tests/pool_harness.py): a copied .venv this user cannot run is refused in one
line and repaired by make setup; root and a pool that does not answer are refused in one line;
sample data only on request; one DAGMan holds the base directory for its whole life (make local
and make submit DAG=tune refused, naming it); bare make watch/status/report/predict follow the
submitted run; watch off a terminal prints one line per node change and the deployment; after
the DAGMan ended make local takes the lock over with a note. Local counterparts:
tests/test_first_day.py.
"""

from __future__ import annotations

import csv
import os
import re
import subprocess
import sys
import time

import pool_harness as ph
import pytest
from conftest import SEED_NODES, overlay_venv

from loanpipe import pipeline

os.environ.setdefault("CONDOR_CONFIG", os.devnull)  # the bindings read logs offline here

MODE, WHERE = ph.locate()
pytestmark = [
    pytest.mark.xdist_group("pool"),
    pytest.mark.skipif(MODE != "personal", reason=WHERE if MODE == "skip" else "needs root"),
]


def as_user(co: ph.Checkout, command: str, timeout: float = 900) -> subprocess.CompletedProcess:
    """``command`` in the checkout as the pool's user types it (no VENV, no BASE_DIR)."""
    return co.pool.sh(f"cd {co.root} && {command}", timeout=timeout)


def errors(proc: subprocess.CompletedProcess) -> list[str]:
    return [ln for ln in proc.stderr.splitlines() if not ln.startswith("make")]


def wait_for(predicate, timeout: float = 120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.5)
    raise AssertionError(f"gave up after {timeout} s")


@pytest.fixture(scope="module")
def first_day(pool, pool_session) -> dict:
    venv = ph.venv_for(pool)
    co = ph.new_checkout(pool, pool_session, "first-day", venv)
    base = co.base
    out: dict = {"co": co}

    # A copied checkout's venv, made from root's interpreter (under /root: not for this user).
    copied = co.root / "copied-venv"
    overlay_venv(copied, venv, co.root / "src", python=sys._base_executable)
    pool.chown(copied)
    out["copied"] = copied
    out["venv_refused"] = as_user(co, f"make submit VENV={copied} BASE_DIR={base}")
    # make setup rebuilds it with this user's Python. PYTHONPATH shows pip the pinned packages
    # of the shared venv as installed, so that it does not download them again: the Makefile's
    # own steps (rebuild, pip install, the package editable, the stamp) all run.
    shared = next(venv.glob("lib/python3*/site-packages"))
    out["setup"] = as_user(
        co, f"PYTHONPATH={shared} make setup VENV={copied} PYTHON={ph.BASE_PYTHON}", timeout=1200
    )
    out["repaired"] = as_user(co, f"{copied}/bin/python -c 'import loanpipe; print(1)'")

    out["no_data"] = as_user(co, f"make local BASE_DIR={base}")
    out["data"] = as_user(co, f"mkdir -p {base} && make data BASE_DIR={base} ROWS={ph.SAMPLE_ROWS}")
    env_file = subprocess.run(
        [pool.script, "env"], capture_output=True, text=True, env=pool.env(), check=True
    ).stdout.strip()
    out["root"] = subprocess.run(
        ["bash", "-c", f". {env_file} && cd {co.root} && make submit BASE_DIR={base}"],
        capture_output=True, text=True, env=pool.env(), timeout=300,
    )  # fmt: skip
    stopped = co.root / "stopped-pool.config"
    stopped.write_text(f"LOCAL_DIR = {co.root}/stopped\nCONDOR_HOST = 127.0.0.1\n")
    pool.chown(stopped)
    out["stopped"] = as_user(co, f"CONDOR_CONFIG={stopped} make submit BASE_DIR={base}")

    out["submit"] = as_user(co, f"make submit BASE_DIR={base}")
    dag_lock = base / "dags" / "dagfile.dag.lock"  # condor_dagman's own, once it runs
    wait_for(dag_lock.exists)
    out["local_refused"] = as_user(co, f"make local BASE_DIR={base}")
    out["tune_refused"] = as_user(co, f"make submit DAG=tune BASE_DIR={base}")
    out["dag_lock_kept"] = dag_lock.exists()
    out["watch"] = as_user(co, "make watch")  # off a terminal, following the last run
    out["status"] = as_user(co, "make status")
    out["report"] = as_user(co, "make report")
    with (base / "loan_data.csv").open() as fh:
        rows = list(csv.reader(fh))[:4]
    apps = co.root / "apps.csv"
    with apps.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["application_id", *rows[0]])
        writer.writerows([f"A{i}", *row] for i, row in enumerate(rows[1:]))
    pool.chown(apps)
    out["predict"] = as_user(co, "make predict INPUT=apps.csv")
    out["lock_after"] = (base / ".pipeline.lock").read_text()
    out["local_after"] = as_user(co, f"make local BASE_DIR={base} JOBS=2")
    return out


def ok(proc) -> str:
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def test_a_copied_venv_is_refused_in_one_line_and_make_setup_repairs_it(first_day) -> None:
    copied, user = first_day["copied"], first_day["co"].pool.user
    assert errors(first_day["venv_refused"]) == [
        f"error: {copied}/bin/python cannot be run by {user} (a copied checkout? an interpreter "
        f"under another home?): `make setup` rebuilds {copied}"
    ]
    setup = ok(first_day["setup"])
    assert f"setup: {copied}/bin/python cannot be run by {user}: rebuilding {copied}" in setup
    assert ok(first_day["repaired"]).strip() == "1"
    assert (copied / ".installed").is_file()


def test_root_and_a_pool_that_does_not_answer_are_one_line(first_day) -> None:
    root = first_day["root"]
    assert root.returncode != 0
    assert len(errors(root)) == 1, root.stderr
    assert errors(root)[0].startswith("error: you are root, and HTCondor does not let root own")
    assert "condor_submit_dag" not in root.stdout
    stopped = first_day["stopped"]
    config = first_day["co"].root / "stopped-pool.config"
    assert stopped.returncode != 0
    assert len(errors(stopped)) == 1, stopped.stderr
    assert errors(stopped)[0].startswith("error: no HTCondor pool answers here (")
    assert f"CONDOR_CONFIG={config}: start the pool" in errors(stopped)[0]


def test_sample_data_only_on_request(first_day) -> None:
    base = first_day["co"].base
    assert errors(first_day["no_data"]) == [
        f"error: no loan_data.csv in {base}: put your data there, or "
        f"`make data BASE_DIR={base}` writes generated sample data"
    ]
    ok(first_day["data"])
    assert (base / "loan_data.sample.json").is_file()


def test_one_dagman_holds_the_base_directory_for_its_whole_life(first_day) -> None:
    base = first_day["co"].base
    submit = ok(first_day["submit"])
    assert f"follow it with `make watch BASE_DIR={base}`" in submit
    cluster = re.search(r"DAGMan job (\d+) ", first_day["watch"].stdout).group(1)
    holder = f"BASE_DIR {base} is in use by DAGMan job {cluster} of {base}/dags/dagfile.dag"
    for key in ("local_refused", "tune_refused"):
        proc = first_day[key]
        assert proc.returncode != 0
        assert len(errors(proc)) == 1 and errors(proc)[0].startswith(f"error: {holder}"), (
            proc.stderr
        )
        assert f"`make watch BASE_DIR={base}`" in errors(proc)[0]
    assert first_day["dag_lock_kept"], "condor_dagman's own lock file must survive"
    assert first_day["lock_after"].startswith(f"condor-dagman {cluster} ")
    local = ok(first_day["local_after"])  # the DAGMan has ended: the lock is stale
    assert f"note: taking over {base}/.pipeline.lock from DAGMan job {cluster}: it has ended" in (
        local
    )
    assert not (base / ".pipeline.lock").exists()


def test_bare_watch_follows_the_run_quietly_and_names_the_deployed_model(first_day) -> None:
    base = first_day["co"].base
    lines = ok(first_day["watch"]).splitlines()
    follows = first_day["watch"].stderr.splitlines()
    assert follows == [
        f"following the last run: BASE_DIR={base} DAG=dagfile (give BASE_DIR=... for another)"
    ]
    assert "DagStatus 0 (ok); every node succeeded" in first_day["watch"].stdout
    changes = [ln for ln in lines if re.match(r"watch: \d\d:\d\d:\d\d \S+ +\S", ln)]
    nodes = {*SEED_NODES, pipeline.FINAL_NODE}  # the FINAL node writes the report page
    assert {ln.split()[2] for ln in changes} == nodes
    done = {ln.split()[2] for ln in changes if ln.split()[-1] == "done"}
    assert done >= set(SEED_NODES), changes  # (the FINAL node's end may not reach the file)
    assert len(lines) < 80  # no condor_watch_q frames off a terminal
    deployed = [ln for ln in lines if ln.startswith("deployed: ")]
    assert len(deployed) == 1 and re.match(r"deployed: .+ \(v[12]\): ", deployed[0])
    assert f"note: this run used generated sample data ({ph.SAMPLE_ROWS} rows, seed 42)" in (
        first_day["watch"].stdout
    )
    assert f"next: `make report BASE_DIR={base}`" in lines


def test_bare_status_report_and_predict_follow_the_run(first_day) -> None:
    base = first_day["co"].base
    for key in ("status", "report", "predict"):
        ok(first_day[key])
        assert first_day[key].stderr.startswith(f"following the last run: BASE_DIR={base} ")
    assert "(finished)" in first_day["status"].stdout
    assert "generated sample data" in first_day["report"].stdout
    with (first_day["co"].root / "apps.scored.csv").open() as fh:
        scored = list(csv.DictReader(fh))
    assert [r["row_id"] for r in scored] == ["A0", "A1", "A2"]
    assert "person_income" in scored[0]
