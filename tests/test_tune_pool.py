"""The model search on a real HTCondor pool: `make submit DAG=tune`, then watch, status, report.

Needs the personal pool beside the checkout (../shared/htcondor/personal-pool, HTCondor 24.0.23)
and root (the pool and its jobs run as POOL_USER, default condoruser, because HTCondor refuses
jobs owned by root); skipped otherwise, or with LOAN_POOL_TESTS=0. The scenario runs in its own
copy of the checkout owned by the pool user, outside /tmp (DAGMan refuses node logs under /tmp),
with a venv made from /usr/bin/python3 and cached across sessions, on generated sample data and a
six-row candidate table (two per family) so that it takes about a minute.

This is a minimal harness of its own; tests/pool_harness.py (issue 9) does the same more fully,
and the scenario moves onto it when that lands.
"""

from __future__ import annotations

import hashlib
import json
import os
import pwd
import shlex
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SCRIPT = Path(
    os.environ.get("PERSONAL_POOL", REPO.parent / "shared" / "htcondor" / "personal-pool")
)
BASE_PYTHON = "/usr/bin/python3"
USER = os.environ.get("POOL_USER", "condoruser")
TABLE = """\
lr-a   logistic_regression     C=1.0 solver=liblinear
lr-b   logistic_regression     C=0.1 solver=liblinear class_weight=balanced
dt-a   decision_tree           max_depth=6
dt-b   decision_tree           max_depth=10 min_samples_leaf=20
hgb-a  hist_gradient_boosting  max_iter=50
hgb-b  hist_gradient_boosting  learning_rate=0.2 max_iter=50
"""
KEEP_ENV = ("LANG", "LC_ALL", "TZ", "http_proxy", "https_proxy", "no_proxy")


def skip_reason() -> str | None:
    if os.environ.get("LOAN_POOL_TESTS") == "0":
        return "pool tests turned off (LOAN_POOL_TESTS=0)"
    if not SCRIPT.is_file():
        return f"no personal pool at {SCRIPT}"
    if os.geteuid() != 0:
        return "the personal pool needs root (it runs jobs as the pool user)"
    if not Path(BASE_PYTHON).is_file():
        return f"{BASE_PYTHON} missing"
    return None


pytestmark = pytest.mark.skipif(skip_reason() is not None, reason=str(skip_reason()))


def as_user(command: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    """One shell command as the pool user, with the pool's tools on PATH."""
    home = pwd.getpwnam(USER).pw_dir
    env = {k: v for k, v in os.environ.items() if k in KEEP_ENV or k.startswith("PIP_")}
    env.update(
        PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", HOME=home, USER=USER
    )
    return subprocess.run(
        [str(SCRIPT), "run", command],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
    )


def shared_venv(home: Path) -> Path:
    """A venv from /usr/bin/python3 with the pinned requirements, built once under a lock."""
    reqs = (REPO / "requirements.txt").read_bytes()
    key = hashlib.sha256(reqs + os.path.realpath(BASE_PYTHON).encode()).hexdigest()[:16]
    cache = home / ".cache" / "loan-pipeline-tests"
    venv = cache / f"venv-{key}"
    staged = cache / f"requirements-{key}.txt"
    cache.mkdir(parents=True, exist_ok=True)
    staged.write_bytes(reqs)
    subprocess.run(["chown", "-R", f"{USER}:", str(home / ".cache")], check=True)
    build = (
        f"test -f {venv}/.complete || {{ rm -rf {venv} && {BASE_PYTHON} -m venv {venv} && "
        f"{venv}/bin/python -m pip install --quiet --disable-pip-version-check -r {staged} "
        f"&& touch {venv}/.complete; }}"
    )
    proc = as_user(f"flock {cache}/.lock bash -c {shlex.quote(build)}", timeout=1200)
    assert proc.returncode == 0, f"venv build failed: {proc.stdout}{proc.stderr}"
    return venv


@pytest.fixture(scope="module")
def pool_venv() -> Path:
    start = subprocess.run(
        [str(SCRIPT), "start"],
        capture_output=True,
        text=True,
        env={**os.environ, "POOL_FAST": os.environ.get("POOL_FAST", "1")},
        timeout=300,
        check=False,
    )
    assert start.returncode == 0, start.stdout + start.stderr
    return shared_venv(Path(pwd.getpwnam(USER).pw_dir))


def scenario(venv: Path, table: str) -> dict:
    """A copy of the checkout with ``table`` as its candidate table, run with make submit."""
    home = Path(pwd.getpwnam(USER).pw_dir)
    work = home / "loan-tune-tests" / uuid.uuid4().hex[:8]
    project = work / "project"
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for name in filter(None, (f.decode() for f in files)):
        source = REPO / name
        if source.is_file():
            (project / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, project / name)
    (project / "search" / "candidates.txt").write_text(table)
    (project / ".venv").symlink_to(venv)
    (venv / ".installed").touch()
    base = work / "base"
    base.mkdir(parents=True)
    subprocess.run(["chown", "-R", f"{USER}:", str(work)], check=True)
    make = f"cd {project} && make --no-print-directory BASE_DIR={base} DAG=tune"
    data = as_user(f"{make} data ROWS=2000")
    assert data.returncode == 0, data.stdout + data.stderr
    submit = as_user(f"{make} submit BATCH=tune-test")
    watch = as_user(f"{make} watch", timeout=900)
    status = as_user(f"{make} status")
    report = as_user(f"{make} report")
    return {
        "work": work,
        "project": project,
        "base": base,
        "make": make,
        "submit": submit,
        "watch": watch,
        "status": status,
        "report": report,
    }


@pytest.fixture(scope="module")
def tune_run(pool_venv: Path) -> dict:
    run = scenario(pool_venv, TABLE)
    yield run
    if os.environ.get("POOL_KEEP") != "1":
        shutil.rmtree(run["work"], ignore_errors=True)


# Passes make check (every value is valid for the estimator) but cannot be fitted on this data:
# a validation split of 0.01% is empty. The job exits 2, a permanent error.
UNFITTABLE = "hgb-x  hist_gradient_boosting  early_stopping=True validation_fraction=0.0001\n"


@pytest.fixture(scope="module")
def failing_run(pool_venv: Path) -> dict:
    run = scenario(pool_venv, TABLE + UNFITTABLE)
    yield run
    if os.environ.get("POOL_KEEP") != "1":
        shutil.rmtree(run["work"], ignore_errors=True)


def events(path: Path) -> list[dict]:
    os.environ.setdefault("CONDOR_CONFIG", "/dev/null")
    import htcondor

    out = []
    for event in htcondor.JobEventLog(str(path)).events(stop_after=0):
        out.append(
            {"type": event.type.name, "cluster": event.cluster, "proc": event.proc,
             "time": event.timestamp, **dict(event.items())}
        )  # fmt: skip
    return out


def test_submit_runs_the_search_as_one_cluster_in_parallel(tune_run) -> None:
    submit, watch = tune_run["submit"], tune_run["watch"]
    assert submit.returncode == 0, submit.stdout + submit.stderr
    assert "6 candidates" in submit.stdout  # make check validated the table first
    assert watch.returncode == 0, watch.stdout + watch.stderr
    dags = tune_run["base"] / "dags"
    metrics = json.loads((dags / "tune.dag.metrics").read_text())
    assert metrics["DagStatus"] == 0 and metrics["jobs_succeeded"] == 11
    log = events(tune_run["base"] / "log" / "model_search.log")
    submits = [e for e in log if e["type"] == "SUBMIT"]
    assert len({e["cluster"] for e in submits}) == 1, "one cluster for the node"
    assert sorted(e["proc"] for e in submits) == list(range(6))
    spans = {}
    for e in log:
        if e["type"] == "EXECUTE":
            spans[e["proc"]] = [e["time"], None]
        elif e["type"] == "JOB_TERMINATED":
            spans[e["proc"]][1] = e["time"]
            assert e["ReturnValue"] == 0
    overlap = max(
        sum(1 for s, t in spans.values() if s <= start < t) for start, _ in spans.values()
    )
    assert overlap >= 2, f"the search's jobs ran one at a time: {spans}"
    for ident in ("lr-a", "lr-b", "dt-a", "dt-b", "hgb-a", "hgb-b"):
        assert (tune_run["base"] / f"staging/search/candidates/{ident}.json").is_file()


def test_deploys_among_three_and_reports_the_leaderboard(tune_run) -> None:
    base = tune_run["base"]
    manifest = json.loads((base / "model/deployed_model.json").read_text())
    assert manifest["considered"] == ["v1", "v2", "v3"]
    best = max(
        manifest["candidates"].items(), key=lambda kv: (kv[1]["Precision"], kv[1]["F1 Score"])
    )
    assert manifest["candidate"] == best[0]
    selection = json.loads((base / "staging/search/selection.json").read_text())
    v3 = json.loads((base / "staging/metrics/model_metrics_v3.json").read_text())
    assert v3["candidate"]["candidate"] == selection["winner"]["candidate"]
    report = tune_run["report"]
    assert report.returncode == 0, report.stdout + report.stderr
    assert "Model search: 6 candidates" in report.stdout
    assert "model_search       ok      1" in report.stdout  # one attempt of six jobs
    assert "## Model search" in (base / "report" / "report.md").read_text()
    status = tune_run["status"]
    assert status.returncode == 0, status.stdout + status.stderr
    assert "model_search" in status.stdout


def test_a_failed_job_fails_the_node_once_and_the_local_runner_agrees(failing_run) -> None:
    """DAGMan: the node fails with its job's exit code 2 (UNLESS-EXIT 2: no retry), its
    descendants never run, the other branches finish, the rescue DAG leaves it out."""
    watch = failing_run["watch"]
    assert failing_run["submit"].returncode == 0, failing_run["submit"].stderr
    assert watch.returncode != 0
    base, dags = failing_run["base"], failing_run["base"] / "dags"
    metrics = json.loads((dags / "tune.dag.metrics").read_text())
    dagman_out = (dags / "tune.dag.dagman.out").read_text().splitlines()
    assert metrics["DagStatus"] == 2, "\n".join(dagman_out[-60:])
    log = events(base / "log" / "model_search.log")
    submits = [e for e in log if e["type"] == "SUBMIT"]
    assert len({e["cluster"] for e in submits}) == 1, "no retry of a node whose job exited 2"
    failed = [e for e in log if e["type"] == "JOB_TERMINATED" and e["ReturnValue"] != 0]
    assert [e["ReturnValue"] for e in failed] == [2]
    rescue = (dags / "tune.dag.rescue001").read_text()
    done = {line.split()[1] for line in rescue.splitlines() if line.startswith("DONE ")}
    assert {"evaluate_model_v1", "evaluate_model_v2"} <= done
    assert not done & {"model_search", "select_model", "evaluate_model_v3", "deploy_best_model"}
    assert "hgb-x" in (base / "error" / "model_search.hgb-x.0.err").read_text()
    # The same DAG under make local (fresh records) ends the same way.
    local = as_user(f"{failing_run['make']} local FRESH=1 JOBS=2")
    assert local.returncode != 0
    assert "model_search       failed" in local.stdout
    lines = (dags / "tune.dag.local.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    start = max(i for i, r in enumerate(records) if r.get("event") == "run_start")
    search = [r for r in records[start:] if "event" not in r and r["node"] == "model_search"]
    assert [(r["status"], r["exit_code"], r["will_retry"]) for r in search] == [
        ("failed", 2, False)
    ]
    rescue = (dags / "tune.dag.rescue001").read_text()
    local_done = {line.split()[1] for line in rescue.splitlines() if line.startswith("DONE ")}
    assert local_done == done
