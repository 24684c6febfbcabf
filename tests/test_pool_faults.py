"""Faults of the pool during a run, on a real (personal) HTCondor pool, as a user meets them.

One run meets, in turn: ``condor_vacate_job`` of a trainer and ``kill -9`` of condor_dagman, a
schedd restart, and a whole-pool restart with ``make status`` asked while nothing answers and
``make watch`` following throughout. DAGMan recovers each time; the run must end with the same
deployment and predictions as an undisturbed run (``make local``, shared by the scenarios), no
half-written file, and a report whose nodes, times and duration are the whole run's. A second
run is removed with ``condor_rm`` and submitted again.

These faults restart daemons, so they run on a private personal pool (its own POOL_DIR and
port), never on the pool the other pool tests share.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pool_harness as ph
import pytest
from conftest import SEED_NODES

from loanpipe.dagman.state import DagmanLog

os.environ.setdefault("CONDOR_CONFIG", os.devnull)  # the bindings read logs offline here

MODE, WHERE = ph.locate()
pytestmark = [
    pytest.mark.xdist_group("pool"),
    pytest.mark.skipif(MODE != "personal", reason=WHERE or "faults need a personal pool"),
]


@dataclass
class PrivatePool(ph.Pool):
    pool_dir: str = ""

    def env(self) -> dict[str, str]:
        return {**super().env(), "POOL_DIR": self.pool_dir}

    def control(self, action: str) -> str:
        proc = self.tool(action)
        if proc.returncode != 0 and action == "stop":
            self.finish_stop()  # the graceful stop outlasted the tool's 35 s (seen under load)
            proc = self.tool(action)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc.stdout

    def tool(self, action: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.script, action], capture_output=True, text=True, env=self.env(), timeout=300
        )

    def finish_stop(self) -> None:
        """Let the master finish the graceful shutdown the tool asked for (SIGTERM: under the
        full suite's load, with a DAG's jobs running, it outlasts the tool's 35 s); only if it
        is still running two minutes later, SIGQUIT (the fast shutdown, which kills DAGMan and
        the jobs outright: not the outage these tests mean)."""
        try:
            master = int(Path(self.pool_dir, "master.pid").read_text())
        except (OSError, ValueError):
            return
        for signum, wait_s in ((None, 120), (signal.SIGQUIT, 60)):
            if signum is not None:
                with contextlib.suppress(OSError):
                    os.kill(master, signum)
            deadline = time.time() + wait_s
            while Path(f"/proc/{master}").exists() and time.time() < deadline:
                time.sleep(1)
            if not Path(f"/proc/{master}").exists():
                return

    def daemon_pid(self, name: str) -> int:
        master = int(Path(self.pool_dir, "master.pid").read_text())
        for proc in Path("/proc").iterdir():
            try:
                stat = (proc / "stat").read_text()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            if stat.split("(", 1)[1].startswith(name + ")") and int(fields[1]) == master:
                return int(proc.name)
        raise AssertionError(f"no {name} under condor_master {master}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def private_pool(pool_session) -> PrivatePool:  # pool_session: the pool user's session folder
    version = os.environ.get("HTCONDOR_VERSION", "default")
    # One per test process: two pytest-xdist workers must never stop each other's pool.
    pool_dir = Path(f"/tmp/htcondor-loan-faults-{version}-{os.getpid()}")
    (pool_dir / "config.d").mkdir(parents=True, exist_ok=True)
    port = free_port()
    (pool_dir / "config.d" / "50-private-port.conf").write_text(
        f"# a pool of its own beside the shared one\nCOLLECTOR_HOST = 127.0.0.1:{port}\n"
        f"SHARED_PORT_PORT = {port}\n"
    )
    user = os.environ.get("POOL_USER", "condoruser")
    shared = ph.start_pool(MODE, WHERE)
    private = PrivatePool(MODE, WHERE, user, shared.home, pool_dir=str(pool_dir))
    private.control("stop")  # one left by an interrupted session has another port
    private.control("start")
    yield private
    private.control("stop")
    shutil.rmtree(pool_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def checkout(private_pool, pool_session):
    venv = ph.venv_for(private_pool)

    def make(name: str) -> ph.Checkout:
        return ph.new_checkout(private_pool, pool_session, f"faults-{name}", venv)

    return make


@pytest.fixture(scope="module")
def sample(checkout) -> Path:
    co = checkout("sample")
    proc = co.make("data", f"ROWS={ph.SAMPLE_ROWS}")
    assert proc.returncode == 0, proc.stderr
    return co.base / "loan_data.csv"


def ok(proc) -> str:
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def wait_for(predicate, timeout: float = 300, step: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"gave up after {timeout} s waiting for {predicate.__name__}")


def deployment(co: ph.Checkout) -> dict:
    """What a run leaves: the deployed model, its manifest (but its time), the predictions."""
    manifest = json.loads((co.base / "model/deployed_model.json").read_text())
    manifest.pop("deployed_at")
    return {
        "model": (co.base / "model/deployed_model.pkl").read_bytes(),
        "manifest": manifest,
        "predictions": (co.base / "predictions/predictions.csv").read_bytes(),
        "metrics": {
            v: json.loads((co.base / f"staging/metrics/model_metrics_{v}.json").read_text())
            for v in ("v1", "v2")
        },
    }


def half_written(co: ph.Checkout) -> list[str]:
    """Temporary files of an atomic write or a deployment left in the base directory."""
    return [
        str(p.relative_to(co.base))
        for p in co.base.rglob("*")
        if re.match(r"\..*\.tmp$", p.name) or p.name.startswith(".tmp-")
    ]


@pytest.fixture(scope="module")
def reference(checkout, sample) -> dict:
    """The undisturbed run every fault is compared with."""
    co = checkout("reference")
    co.put_data(sample)
    ok(co.make("local", "JOBS=2"))
    return deployment(co)


def started(co: ph.Checkout, node: str) -> bool:
    """Whether a job of ``node`` has started (its own event log has an EXECUTE event)."""
    try:
        return any(ln.startswith("001 ") for ln in (co.base / f"log/{node}.log").open())
    except OSError:
        return False


def dagman_starts(co: ph.Checkout) -> int:
    job = DagmanLog(co.dag_file(".dagman.log")).update()
    return len(job.starts) if job else 0


def dagman_pid(co: ph.Checkout) -> int:
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes().split(b"\0")
            cwd = os.readlink(proc / "cwd")
        except OSError:
            continue
        if cmdline and b"condor_scheduniv_exec" in cmdline[0] and cwd == str(co.run_dir):
            return int(proc.name)
    raise AssertionError("no condor_dagman running for this DAG")


# --------------------------------------------------------------------------- recovery


@pytest.fixture(scope="module")
def recovered(private_pool, checkout, sample) -> dict:
    pool = private_pool
    co = checkout("recovery")
    co.put_data(sample)
    out = {"co": co, "submit": co.make("submit")}
    submitted = time.time()
    wait_for(lambda: started(co, "modeling_v1"))
    out["vacate"] = pool.sh("condor_vacate_job -constraint 'DAGNodeName == \"modeling_v1\"'")
    os.kill(dagman_pid(co), signal.SIGKILL)
    wait_for(lambda: dagman_starts(co) >= 2)

    os.kill(pool.daemon_pid("condor_schedd"), signal.SIGTERM)  # the master starts it again
    wait_for(lambda: dagman_starts(co) >= 3)

    assert not DagmanLog(co.dag_file(".dagman.log")).update().done, "the DAG ended too soon"
    watch = subprocess.Popen(  # make watch, following through the outage
        [
            pool.script,
            "run",
            f"make -C {co.root} --no-print-directory watch VENV={co.venv} BASE_DIR={co.base} "
            f"PYTHON={ph.BASE_PYTHON}",
        ],
        env=pool.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(3)
    pool.control("stop")
    out["status_down"] = co.make("status")
    time.sleep(12)  # watch asks the schedd every 10 s while it does not answer
    pool.control("start")
    out["watch_out"], out["watch_err"] = watch.communicate(timeout=900)
    out["watch_code"] = watch.returncode
    out["elapsed"] = time.time() - submitted
    out["report"] = co.make("report")
    return out


def test_a_recovered_run_deploys_as_an_undisturbed_one(recovered, reference) -> None:
    ok(recovered["submit"])
    ok(recovered["vacate"])
    assert recovered["watch_code"] == 0, recovered["watch_out"] + recovered["watch_err"]
    assert "DagStatus 0 (ok); every node succeeded" in recovered["watch_out"]
    assert deployment(recovered["co"]) == reference
    assert half_written(recovered["co"]) == []


def test_the_report_of_a_recovered_run_is_the_whole_run(recovered) -> None:
    text = ok(recovered["report"])
    ran = re.search(r"(\d+) of (\d+) nodes ran", text)
    assert ran.group(1) == ran.group(2) and int(ran.group(1)) >= len(SEED_NODES), ran.group(0)
    assert "started again" in text and "recovery mode" in text
    duration = float(re.search(r"duration ([0-9.]+) s", text).group(1))
    # from DAGMan's first start: at least the outage and the restarts, which took > 15 s
    assert duration > 15
    assert duration <= recovered["elapsed"] + 5


def test_a_pool_that_stops_answering_is_said_in_one_line(recovered) -> None:
    status = recovered["status_down"]
    lines = [ln for ln in status.stdout.splitlines() if "does not answer" in ln]
    assert len(lines) == 1, status.stdout + status.stderr
    assert "Traceback" not in status.stdout + status.stderr
    assert len(status.stderr.strip().splitlines()) <= 1, status.stderr  # no condor_q dump
    out = recovered["watch_out"]
    silent = [ln for ln in out.splitlines() if "the schedd does not answer" in ln]
    back = [ln for ln in out.splitlines() if "the schedd answers again" in ln]
    assert len(silent) == 1 and len(back) == 1, out
    assert out.index(silent[0]) < out.index(back[0]) < out.index("DagStatus 0 (ok)")


# --------------------------------------------------------------------------- removal


@pytest.fixture(scope="module")
def removed(private_pool, checkout, sample) -> dict:
    pool = private_pool
    co = checkout("removal")
    co.put_data(sample)
    ok(co.make("submit"))
    wait_for(lambda: started(co, "modeling_v1"))
    pool.condor(f"condor_rm -constraint 'JobUniverse == 7 && Iwd == \"{co.run_dir}\"'")
    out = {"co": co, "watch": co.make("watch"), "status": co.make("status")}
    out["submit"] = co.make("submit")
    out["resumed"] = co.make("watch")
    return out


def test_a_removed_dag_reads_as_a_removal_with_the_resume_command(removed, reference) -> None:
    watch = removed["watch"]
    assert watch.returncode != 0
    assert "was removed (condor_rm)" in watch.stdout
    assert "failed node" not in watch.stdout and "STATUS_SUBMITTED" not in watch.stdout
    assert "`make submit` resumes from dagfile.dag.rescue001" in watch.stdout
    assert "`make submit` resumes from dagfile.dag.rescue001" in removed["status"].stdout
    assert "resuming from dagfile.dag.rescue001" in ok(removed["submit"])
    assert "every node succeeded" in ok(removed["resumed"])
    assert deployment(removed["co"]) == reference
    assert half_written(removed["co"]) == []


# --------------------------------------------------------------------------- a failing search job

SEARCH_ROWS = """\
lr-01   logistic_regression     C=1.0 solver=liblinear
dt-02   decision_tree           max_depth=4
hgb-03  hist_gradient_boosting  max_iter=20
"""


@pytest.fixture(scope="module")
def shared_checkout(pool, pool_session):
    """A checkout on the shared pool (conftest's), for a fault that restarts no daemon."""
    venv = ph.venv_for(pool)
    return lambda name: ph.new_checkout(pool, pool_session, f"faults-{name}", venv)


@pytest.fixture(scope="module")
def search_failed(shared_checkout) -> dict:
    """DAG=tune with three candidates; the middle one cannot write its result (a directory is
    in the way): it fails every attempt, its siblings succeed or are removed by DAGMan. On the
    shared pool: nothing here restarts a daemon."""
    co = shared_checkout("search-fails")
    ok(co.make("data", f"ROWS={ph.SAMPLE_ROWS}"))
    (co.root / "search" / "candidates.txt").write_text(SEARCH_ROWS)
    (co.base / "staging/search/candidates/dt-02.json").mkdir(parents=True)
    co.pool.chown(co.root)
    out = {"co": co, "submit": co.make("submit", "DAG=tune")}
    out["watch"] = co.make("watch", "DAG=tune")
    out["status"] = co.make("status", "DAG=tune")
    out["report"] = co.make("report", "DAG=tune")
    return out


def test_a_failed_search_job_names_its_candidate_and_error(search_failed) -> None:
    ok(search_failed["submit"])
    err = "search: error: "
    for name, prefix in (("watch", "watch: failed node model_search:"),
                         ("status", "result: failed node model_search:")):  # fmt: skip
        text = search_failed[name].stdout
        lines = [ln for ln in text.splitlines() if ln.startswith(prefix)]
        assert len(lines) == 1, text
        assert "job dt-02 failed" in lines[0] and "error/model_search.dt-02." in lines[0]
        assert err in lines[0] and "candidates/dt-02.json: Is a directory" in lines[0]
    assert search_failed["watch"].returncode != 0
    report = (
        search_failed["report"].stdout
        + (search_failed["co"].base / "report" / "report.md").read_text()
    )
    assert "candidates/dt-02.json: Is a directory" in report
