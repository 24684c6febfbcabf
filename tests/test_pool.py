"""The project on a real HTCondor pool, driven exactly as a user drives it.

`make submit`, `make watch`, `make status`, `make report`, resubmission and `make preflight`, run
as the pool's user on copies of this checkout (see tests/pool_harness.py for where HTCondor comes
from, the copies and the shared venv; every test here is skipped, with the reason, when no
HTCondor is at hand). The same scenarios also run through `make local`, and the two runners must
agree on node outcomes, the rescue DAG's DONE lines, DagStatus and node counts.

All tests of this module share one pool and run in one pytest-xdist worker (xdist_group "pool";
`make test` runs pytest with --dist loadgroup).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import time
import uuid
from pathlib import Path

import pool_harness as ph
import pytest
from conftest import SEED_NODES, chromium_probe, chromium_screenshot, needs_chromium

from loanpipe.pipeline import FINAL_NODE  # the report, after every run (dag/dagfile.dag)

os.environ.setdefault("CONDOR_CONFIG", os.devnull)  # the bindings read logs offline here

MODE, WHERE = ph.locate()
pytestmark = [
    pytest.mark.xdist_group("pool"),
    pytest.mark.skipif(MODE == "skip", reason=WHERE),
]


@pytest.fixture(scope="module")
def venv(pool) -> Path:
    return ph.venv_for(pool)


@pytest.fixture(scope="module")
def checkout(pool, pool_session, venv):
    def make(name: str) -> ph.Checkout:
        return ph.new_checkout(pool, pool_session, name, venv)

    return make


@pytest.fixture(scope="module")
def sample(checkout) -> Path:
    """Small sample data, made as a user makes it: make data ROWS=..."""
    co = checkout("sample")
    proc = co.make("data", f"ROWS={ph.SAMPLE_ROWS}")
    assert proc.returncode == 0, proc.stderr
    return co.base / "loan_data.csv"


def ok(proc) -> str:
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def error_lines(proc) -> list[str]:
    return [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]


def wait_for(predicate, timeout: float = 120, step: float = 0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"gave up after {timeout} s")


def facts(co: ph.Checkout, local: bool) -> dict:
    rescues = sorted(co.run_dir.glob("dagfile.dag.rescue[0-9][0-9][0-9]"))
    outcomes = (
        ph.local_outcomes(co.dag_file(".local.jsonl"))
        if local
        else ph.pool_outcomes(co.dag_file(".status"))
    )
    return {
        "metrics": ph.metrics_counts(co.dag_file(".metrics")),
        "outcomes": outcomes,
        "rescue_done": ph.rescue_done(rescues[-1]) if rescues else None,
    }


# --------------------------------------------------------------------------- clean run


@pytest.fixture(scope="module")
def clean_run(checkout, sample) -> dict:
    """One clean pool run, with a second submit and `make status` while it runs."""
    co = checkout("clean")
    co.put_data(sample)
    out = {"co": co, "submit": co.make("submit"), "again": co.make("submit")}

    def mid_run():
        proc = co.make("status")
        return proc if "NODE_STATUS_FILE" in proc.stdout and "(running)" in proc.stdout else None

    out["status"] = wait_for(mid_run)
    out["watch"] = co.make("watch")
    out["facts"] = facts(co, local=False)
    out["page"] = co.base / "report" / "report.html"  # the FINAL node's
    shutil.copy(out["page"], co.root / "final-page.html")
    out["page"] = co.root / "final-page.html"
    out["report"] = co.make("report")
    return out


def test_clean_run_watch_exits_0_with_every_output(clean_run) -> None:
    co = clean_run["co"]
    ok(clean_run["submit"])
    watch = ok(clean_run["watch"])
    assert "DagStatus 0 (ok); every node succeeded" in watch
    for rel in (
        "predictions/predictions.csv",
        "model/deployed_model.pkl",
        "model/deployed_model.json",
        "staging/metrics/model_metrics_v1.json",
        "staging/metrics/model_metrics_v2.json",
    ):
        assert (co.base / rel).is_file(), rel
    assert clean_run["facts"]["metrics"] == {
        "DagStatus": 0,
        "nodes": 9,  # the eight stages and the FINAL node
        "succeeded": 9,
        "failed": 0,
    }
    assert f"report: {co.base / 'report' / 'report.html'}" in watch
    assert set(clean_run["facts"]["outcomes"].values()) == {"done"}


def test_second_submit_while_the_dag_runs_is_refused(clean_run) -> None:
    again = clean_run["again"]
    assert again.returncode != 0
    errors = error_lines(again)
    base = clean_run["co"].base  # the DAGMan holds the base directory's lock
    assert len(errors) == 1, again.stderr
    assert errors[0].startswith(f"error: BASE_DIR {base} is in use by DAGMan job "), errors[0]
    assert f"follow it with `make watch BASE_DIR={base}`" in errors[0]
    assert "condor_submit_dag" not in again.stdout  # nothing was submitted, no -f


def test_status_mid_run_labels_node_states(clean_run) -> None:
    text = ok(clean_run["status"])
    table = text.split("NODE_STATUS_FILE)\n", 1)[1].splitlines()
    assert table[0].startswith("DAG: running;"), table[0]
    states = {line.split()[0]: line.split()[1] for line in table[2:10]}
    assert set(states) == set(SEED_NODES)
    # "PRE"/"POST": a node's fingerprint script running (DAGMan's first node status file always
    # shows the first node in its PRE script)
    assert set(states.values()) <= {"done", "running", "idle", "ready", "not", "PRE", "POST"}
    assert "aborted" not in text and "error" not in states.values()
    assert "condor_q -dag -nobatch" in text


@needs_chromium
def test_the_final_node_page_renders_in_chromium_with_its_charts(clean_run, tmp_path) -> None:
    page = clean_run["page"]
    assert 'data-dag-status="0"' in page.read_text() and "from the FINAL node" in page.read_text()
    probed = chromium_probe(page, tmp_path)
    assert probed["images"] == 0 and probed["charts_drawn"] == len(probed["charts"]) == 3, probed
    assert probed["bars"] == probed["drawn"] >= len(SEED_NODES), probed
    assert probed["sections"][:3] == ["outcome", "results", "timeline"], probed
    assert chromium_screenshot(page, tmp_path) > 50


def test_report_reads_the_pool_run(clean_run) -> None:
    text = ok(clean_run["report"])
    assert "Run: HTCondor pool (DAGMan)" in text
    assert "DAG status 0 (ok)" in text
    assert (clean_run["co"].base / "report" / "report.md").is_file()


def test_local_runner_agrees_on_a_clean_run(clean_run, checkout, sample) -> None:
    co = checkout("clean-local")
    co.put_data(sample)
    ok(co.make("local", "JOBS=2"))
    assert facts(co, local=True) == clean_run["facts"]


# --------------------------------------------------------------------------- bad input


BAD_CSV = "a,b\n1,2\n3,4\n"


@pytest.fixture(scope="module")
def bad_input(checkout, sample) -> dict:
    """Bad loan_data.csv: data_processing fails (exit 65, not retried); fix it; resume."""
    co = checkout("bad-input")
    co.put_data(sample, BAD_CSV)
    ok(co.make("submit"))
    out = {"fail": co.make("watch"), "failed": facts(co, local=False)}
    out["page"] = (co.base / "report" / "report.html").read_text()  # the FINAL node's
    co.put_data(sample)
    since = time.time()
    out["submit"] = co.make("submit")
    out["resume"] = co.make("watch")
    out["ran"] = ph.submitted_nodes(co.dag_file(".nodes.log"), since)
    out["resumed"] = facts(co, local=False)
    out["report"] = co.make("report")
    # DAGMan keeps rescue001 after the resumed run succeeded: the next submit must not resume
    # from it again. Removed (condor_rm): watch must say so and exit non-zero.
    since = time.time()
    # FORCE: with nothing changed every stage would be skipped (PRE_SKIP) and the removal below
    # would meet only the FINAL node, which already has the DAG's status.
    # The first node's job is submitted on hold, so that the removal meets it queued: a node job
    # that ends (here in under a second) just as DAGMan starts its FINAL node after a condor_rm
    # makes DAGMan (24.0 and 25.0) abort ("Assertion ERROR on (! _finalNodeRun)", dag.cpp) with
    # no report.
    process_sub = co.root / "submit" / "process.sub"
    text = process_sub.read_text()
    assert text.count("\nqueue\n") == 1
    process_sub.write_text(text.replace("\nqueue\n", "\nhold = True\nqueue\n"))
    try:
        out["again"] = co.make("submit", "FORCE=data_processing")
        # Once DAGMan runs (its first node submitted): removed before it started, it would run
        # no FINAL node; removed while it runs, it runs the FINAL node (the report) with
        # DAG_STATUS 4.
        wait_for(lambda: ph.submitted_nodes(co.dag_file(".nodes.log"), since))
        co.pool.condor(f"condor_rm -constraint 'JobUniverse == 7 && Iwd == \"{co.run_dir}\"'")
    finally:
        process_sub.write_text(text)
    out["removed"] = co.make("watch")
    out["removed_page"] = (co.base / "report" / "report.html").read_text()
    out["runs"] = co.make("runs")
    return out


def test_bad_input_watch_names_the_node_and_its_error(bad_input) -> None:
    fail = bad_input["fail"]
    assert fail.returncode != 0, fail.stdout + fail.stderr
    lines = [ln for ln in fail.stdout.splitlines() if ln.startswith("watch: failed node")]
    assert len(lines) == 1, fail.stdout
    assert lines[0].startswith("watch: failed node data_processing:")
    assert "error/data_processing.0.err" in lines[0]
    assert "target column 'loan_status' not found" in lines[0]
    assert "DagStatus 2 (a node failed)" in fail.stdout
    failed = bad_input["failed"]
    # The FINAL node exits 1 when the DAG failed (else DAGMan would call the DAG successful):
    # the metrics count it among the failed nodes.
    assert failed["metrics"] == {"DagStatus": 2, "nodes": 9, "succeeded": 0, "failed": 2}
    assert failed["rescue_done"] == set()
    assert failed["outcomes"]["data_processing"] == "failed"
    assert failed["outcomes"][FINAL_NODE] == "failed"


def test_a_run_that_fails_at_its_first_node_leaves_a_page_naming_it(bad_input) -> None:
    """Written by the FINAL node, before anyone ran make report."""
    page = bad_input["page"]
    outcome = page.split('<section id="outcome">', 1)[1].split("</section>", 1)[0]
    assert 'data-dag-status="2"' in outcome and "from the FINAL node" in outcome
    assert "Node data_processing failed after 1 attempt(s) (exit 65)" in outcome
    assert "target column &#x27;loan_status&#x27; not found" in outcome
    assert "report: " in bad_input["fail"].stdout
    assert "failed node report" not in bad_input["fail"].stdout  # it failed on purpose


def test_a_removed_dag_leaves_a_page_and_make_runs_lists_every_run(bad_input) -> None:
    """condor_rm of DAGMan: its FINAL node still runs and says so; make runs lists the failed
    run, the resumed good one and the removed one."""
    assert 'data-dag-status="4"' in bad_input["removed_page"]
    assert "The run was removed: DAG status 4 (removed (condor_rm))" in bad_input["removed_page"]
    lines = ok(bad_input["runs"]).splitlines()[2:]
    assert len(lines) == 3, lines
    assert [line.split()[0].startswith("dagfile-dagman-") for line in lines] == [True] * 3
    assert "a node failed: data_processing (exit 65)" in lines[0]
    assert lines[1].endswith(" ok") and "Regression" in lines[1] or "Tree" in lines[1]
    assert "removed (condor_rm)" in lines[2]  # and the node DAGMan removed with it


def test_bad_input_fixed_resumes_from_the_rescue_dag(bad_input) -> None:
    assert "resuming from dagfile.dag.rescue001" in ok(bad_input["submit"])
    assert "-f" not in bad_input["submit"].stdout.split()
    assert "every node succeeded" in ok(bad_input["resume"])
    # only the nodes the rescue DAG did not mark DONE ran (here: all of them, once each)
    assert sorted(bad_input["ran"]) == sorted(
        {*SEED_NODES, FINAL_NODE} - bad_input["failed"]["rescue_done"]
    )
    assert bad_input["resumed"]["metrics"]["DagStatus"] == 0


def test_after_a_resumed_run_succeeded_submit_reruns_everything(bad_input) -> None:
    assert "submitting again resumes" not in ok(bad_input["report"])
    again = ok(bad_input["again"])
    assert "the DAG succeeded after dagfile.dag.rescue001" in again
    assert "-f" in again.split()
    removed = bad_input["removed"]
    assert removed.returncode != 0
    assert "was removed (condor_rm)" in removed.stdout


def test_local_runner_agrees_on_bad_input(bad_input, checkout, sample) -> None:
    """The failure only: resuming is compared on the retried node below (saves a full run)."""
    co = checkout("bad-input-local")
    co.put_data(sample, BAD_CSV)
    fail = co.make("local")
    assert fail.returncode != 0
    assert "target column 'loan_status' not found" in fail.stdout + fail.stderr
    assert facts(co, local=True) == bad_input["failed"]


# ------------------------------------------------------------------- a node that keeps failing


def blocked_then_resume(co: ph.Checkout, sample: Path, local: bool) -> dict:
    """BASE_DIR/predictions is a file: loan_prediction fails 3 times (RETRY 2); remove it; resume.

    Every other node succeeds first, so the rescue DAG marks seven nodes DONE and the resumed
    run must run loan_prediction alone.
    """
    co.put_data(sample)
    blocker = co.base / "predictions"
    blocker.write_text("not a directory\n")
    out = {}
    if local:
        out["fail"] = co.make("local")
        out["attempts"] = ph.local_attempts(co.dag_file(".local.jsonl"), "loan_prediction")
    else:
        out["submit1"] = co.make("submit", "PREFLIGHT=1")
        out["fail"] = co.make("watch")
        out["attempts"] = ph.submitted_nodes(co.dag_file(".nodes.log"), 0).count("loan_prediction")
    out["failed"] = facts(co, local)
    blocker.unlink()
    since = time.time()
    if local:
        out["resume"] = co.make("local")
    else:
        out["submit"] = co.make("submit")
        # This watch runs on a terminal (script(1) gives it one) and meets a condor_watch_q that
        # cannot start (exec format error, as when its #! interpreter lacks the bindings): it
        # must follow the DAG without it. (Off a terminal condor_watch_q is never started.)
        broken = co.root / "broken-bin"
        broken.mkdir()
        (broken / "condor_watch_q").write_bytes(b"\x7fELF\x00garbage")
        (broken / "condor_watch_q").chmod(0o755)
        co.pool.chown(broken)
        watch = f"make -C {co.root} --no-print-directory watch VENV={co.venv} BASE_DIR={co.base}"
        out["resume"] = co.pool.sh(
            f"PATH={broken}:$PATH script -qec {shlex.quote(watch)} /dev/null"
        )
        out["ran"] = ph.submitted_nodes(co.dag_file(".nodes.log"), since)
    out["resumed"] = facts(co, local)
    return out


@pytest.fixture(scope="module")
def blocked(checkout, sample) -> dict:
    return blocked_then_resume(checkout("blocked"), sample, local=False)


def test_failing_node_is_retried_then_only_it_runs_on_resume(blocked) -> None:
    assert "preflight: ok" in ok(blocked["submit1"])
    fail = blocked["fail"]
    assert fail.returncode != 0
    assert "watch: failed node loan_prediction:" in fail.stdout
    assert "File exists" in fail.stdout  # the stage's last stderr line, not a traceback dump
    assert blocked["attempts"] == 3
    failed = blocked["failed"]
    assert failed["rescue_done"] == set(SEED_NODES) - {"loan_prediction"}  # never the FINAL node
    assert failed["metrics"] == {"DagStatus": 2, "nodes": 9, "succeeded": 7, "failed": 2}
    assert "resuming from dagfile.dag.rescue001" in ok(blocked["submit"])
    assert "every node succeeded" in ok(blocked["resume"])
    assert blocked["ran"] == ["loan_prediction", FINAL_NODE]


def test_watch_follows_the_dag_where_condor_watch_q_cannot_start(blocked) -> None:
    resume = blocked["resume"]
    assert "Traceback" not in resume.stdout + resume.stderr
    assert "watch: condor_watch_q cannot start (Exec format error)" in resume.stdout
    # then one line per node state change, from DAGMan's node status file
    assert re.search(r"^watch: \d\d:\d\d:\d\d loan_prediction +done\r?$", resume.stdout, re.M)
    assert "every node succeeded" in resume.stdout
    fail = blocked["fail"]  # off a terminal: condor_watch_q is not started at all
    assert "condor_watch_q" not in fail.stdout
    assert re.search(r"^watch: \d\d:\d\d:\d\d loan_prediction +error", fail.stdout, re.M)


def test_local_runner_agrees_on_retries_rescue_and_resume(blocked, checkout, sample) -> None:
    local = blocked_then_resume(checkout("blocked-local"), sample, local=True)
    assert local["fail"].returncode != 0
    assert local["failed"] == blocked["failed"]
    assert local["resumed"]["metrics"]["DagStatus"] == blocked["resumed"]["metrics"]["DagStatus"]
    assert local["resumed"]["outcomes"] == blocked["resumed"]["outcomes"]
    assert local["attempts"] == blocked["attempts"] == 3


# --------------------------------------------------------------------------- a held job


@pytest.fixture(scope="module")
def held(pool, checkout, sample) -> dict:
    """condor_hold on modeling_v1 while it runs; DAGMan removes it and RETRY runs it again."""
    co = checkout("hold")
    co.put_data(sample)
    ok(co.make("submit"))
    # Once the job's own event log says it executes (JobStatus 2 comes earlier, while the slot
    # is still being activated), hold it: the stage is then importing or training.
    # The starter creates the job's stderr file as the process starts: waiting for it too keeps
    # a hold on a fresh pool from landing before the EXECUTE event (seen twice in ten runs).
    log, err = co.base / "log" / "modeling_v1.log", co.base / "error" / "modeling_v1.0.err"
    hold = pool.sh(
        f"for i in $(seq 1500); do grep -q '^001 ' {log} 2>/dev/null && test -e {err} && "
        "exec condor_hold -constraint 'DAGNodeName == \"modeling_v1\"'; sleep 0.1; done; exit 1",
        timeout=300,
    )
    out = {"co": co, "hold": hold, "watch": co.make("watch"), "status": co.make("status")}
    out["report"] = co.make("report")
    return out


def test_held_job_is_retried_with_more_memory_and_the_dag_succeeds(held, pool) -> None:
    from loanpipe.dagman.events import read_events

    assert held["hold"].returncode == 0, "modeling_v1 was never seen running"
    assert "DagStatus 0 (ok); every node succeeded" in ok(held["watch"])
    log = held["co"].base / "log" / "modeling_v1.log"  # the node's own job event log
    events = read_events(log)
    kinds = [(e["cluster"], e["type"]) for e in events]
    held_cluster = next(c for c, t in kinds if t == "JOB_HELD")
    assert (held_cluster, "EXECUTE") in kinds  # held mid-run, not while idle
    assert kinds.index((held_cluster, "EXECUTE")) < kinds.index((held_cluster, "JOB_HELD"))
    assert (held_cluster, "JOB_ABORTED") in kinds  # DAGMan removed it
    done = [e for e in events if e["type"] == "JOB_TERMINATED"]
    assert len(done) == 1 and done[0]["cluster"] != held_cluster
    first = int(pool.condor(f"condor_history {held_cluster} -limit 1 -af RequestMemory").split()[0])
    assert int(done[0]["RequestMemory"]) > first


def test_status_and_report_show_the_hold_reason(held) -> None:
    status = ok(held["status"])
    assert "held: modeling_v1" in status and "via condor_hold" in status
    assert "HoldReasonCode 1/" in status
    report = ok(held["report"])
    assert "modeling_v1 held (code 1)" in report


# --------------------------------------------------------------------------- under /tmp


@pytest.fixture(scope="module")
def under_tmp(pool, venv) -> ph.Checkout:
    root = Path("/tmp") / f"loan-pool-tests-{uuid.uuid4().hex[:8]}"
    co = ph.new_checkout(pool, root, "co", venv)
    yield co
    shutil.rmtree(root, ignore_errors=True)


def test_dag_under_tmp_is_refused_before_submitting(under_tmp, sample) -> None:
    co = under_tmp
    co.put_data(sample)
    proc = co.make("submit")
    assert proc.returncode != 0
    errors = error_lines(proc)
    assert len(errors) == 1 and "is under /tmp" in errors[0], proc.stderr
    assert "Traceback" not in proc.stderr
    assert not co.dag_file(".dagman.log").exists()  # condor_submit_dag never ran


def test_watch_says_why_dagman_exited_early(under_tmp, pool, sample) -> None:
    co = under_tmp
    co.put_data(sample)
    ok(co.make("paths"))
    pool.condor(f"cd {co.run_dir} && condor_submit_dag dagfile.dag")  # by hand, past make
    watch = co.make("watch")
    assert watch.returncode != 0, watch.stdout + watch.stderr
    assert "DAGMan: Warning: default node log file" in watch.stdout
    assert "is in /tmp" in watch.stdout
    assert "every node succeeded" not in watch.stdout


# --------------------------------------------------------------------------- preflight


def test_preflight_passes_and_names_a_missing_interpreter(clean_run) -> None:
    co = clean_run["co"]
    good = co.make("preflight")
    assert "preflight: ok:" in ok(good)
    missing = co.make("preflight", "JOB_PYTHON=/nonexistent/bin/python3")
    assert missing.returncode != 0
    line = [ln for ln in missing.stdout.splitlines() if ln.startswith("preflight: FAILED")]
    assert len(line) == 1 and "HoldReasonCode 6/2" in line[0], missing.stdout
    assert "/nonexistent/bin/python3" in line[0]


def test_preflight_says_base_dir_is_not_writable(clean_run, pool) -> None:
    co = clean_run["co"]
    pool.condor(f"chmod 555 {co.base}")
    try:
        proc = co.make("preflight")
    finally:
        pool.condor(f"chmod 755 {co.base}")
    assert proc.returncode != 0
    assert f"preflight: FAILED: BASE_DIR {co.base} is not writable" in proc.stdout
