"""Rerun only what changed, through make as a user runs it: make local, make plan, FORCE, FRESH.

A second `make local` with nothing changed skips every node through DAGMan's PRE_SKIP (the same
PRE scripts DAGMan runs on a pool: tests/test_tune_pool.py) and rewrites no output; a touched or
copied loan_data.csv is unchanged; one changed data row reruns every stage; a candidate added
to the search table fits that candidate only. The pool's side is in test_tune_pool.py.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, SEED_NODES
from test_search import copy_checkout, make

from loanpipe import pipeline
from loanpipe.fingerprint import cli, core

OUTPUT_DIRS = ("staging", "model", "predictions")


def snapshot(base: Path) -> dict[str, tuple[bytes, int]]:
    """Every output file's bytes and mtime (a rewrite with the same bytes changes the mtime)."""
    return {
        str(p.relative_to(base)): (p.read_bytes(), p.stat().st_mtime_ns)
        for folder in OUTPUT_DIRS
        for p in sorted((base / folder).rglob("*"))
        if p.is_file()
    }


def last_run(base: Path, dag: str = "dagfile.dag") -> dict[str, str]:
    """stage -> status in the local runner's last run_end record (the FINAL node, which writes
    the report, runs every time and is left out)."""
    lines = (base / "dags" / f"{dag}.local.jsonl").read_text().splitlines()
    ends = [json.loads(line) for line in lines if '"run_end"' in line]
    return {n: s for n, s in ends[-1]["nodes"].items() if n != pipeline.FINAL_NODE}


def plan(project: Path, base: Path, *extra: str) -> dict[str, tuple[str, str]]:
    """make plan: stage -> (run|skip, why) (the FINAL node always runs: checked, left out)."""
    proc = make(project, "plan", base, *extra)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = {}
    for line in proc.stdout.splitlines():
        words = line.split(maxsplit=2)
        if len(words) >= 2 and words[0] in ("run", "skip"):
            out[words[1]] = (words[0], words[2] if len(words) > 2 else "")
    assert out.pop(pipeline.FINAL_NODE)[0] == "run"
    return out


def dag_status(base: Path, dag: str = "dagfile.dag") -> int:
    return json.loads((base / "dags" / f"{dag}.metrics").read_text())["DagStatus"]


@pytest.fixture(scope="module")
def finished(tmp_path_factory, sample_csv) -> Path:
    """A base directory after one full make local of the default DAG (copied by each test)."""
    base = tmp_path_factory.mktemp("rerun") / "base"
    base.mkdir()
    shutil.copy(sample_csv, base / "loan_data.csv")
    proc = make(REPO, "local", base, "JOBS=2")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert set(last_run(base).values()) == {"done"}
    return base


@pytest.fixture
def base(finished, tmp_path) -> Path:
    """A copy of the finished base directory (new mtimes, same bytes: still unchanged)."""
    copy = tmp_path / "base"
    shutil.copytree(finished, copy)
    return copy


def test_unchanged_and_touched_input_skip_every_node_and_rewrite_nothing(base) -> None:
    before = snapshot(base)
    archived = sorted(p.name for p in (base / "model" / "archive").glob("*"))
    os.utime(base / "loan_data.csv")  # touch: same bytes, new mtime
    assert plan(REPO, base) == {n: ("skip", "unchanged") for n in SEED_NODES}
    proc = make(REPO, "local", base, "JOBS=2")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert last_run(base) == {n: "pre_skipped" for n in SEED_NODES}
    assert dag_status(base) == 0
    assert snapshot(base) == before, "a skipped node rewrote an output"
    assert sorted(p.name for p in (base / "model" / "archive").glob("*")) == archived
    assert "PRE_SKIP" in proc.stdout
    # The report says which nodes were skipped.
    report = make(REPO, "report", base)
    assert report.returncode == 0, report.stdout + report.stderr
    text = (base / "report" / "report.md").read_text()
    assert "| deploy_best_model | skipped |" in text.replace("  ", " "), text


def test_one_changed_data_row_reruns_every_stage(base) -> None:
    lines = (base / "loan_data.csv").read_text().splitlines(keepends=True)
    fields = lines[5].split(",")
    fields[3] = str(int(float(fields[3])) + 1)  # person_income of one row
    lines[5] = ",".join(fields)
    (base / "loan_data.csv").write_text("".join(lines))
    planned = plan(REPO, base)
    assert planned["data_processing"] == ("run", "loan_data.csv changed")
    assert all(verdict == "run" for verdict, _ in planned.values())
    assert planned["train_test_split"][1].startswith("after data_processing runs")
    proc = make(REPO, "local", base, "JOBS=2")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert last_run(base) == {n: "done" for n in SEED_NODES}


def test_force_reruns_a_node_and_its_descendants_and_fresh_reruns_all(base) -> None:
    forced = {"modeling_v2", "evaluate_model_v2", "deploy_best_model", "loan_prediction"}
    planned = plan(REPO, base, "FORCE=modeling_v2")
    assert {n for n, (verdict, _) in planned.items() if verdict == "run"} == forced
    assert planned["modeling_v2"] == ("run", "forced (FORCE=modeling_v2)")
    model_v1 = (base / "staging/model/trained_model_v1.pkl").stat().st_mtime_ns
    proc = make(REPO, "local", base, "JOBS=2", "FORCE=modeling_v2")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    statuses = last_run(base)
    assert {n for n, s in statuses.items() if s == "done"} == forced
    assert {n for n, s in statuses.items() if s == "pre_skipped"} == set(SEED_NODES) - forced
    assert (base / "staging/model/trained_model_v1.pkl").stat().st_mtime_ns == model_v1
    # The force was used up: the next run skips everything again.
    assert set(v for v, _ in plan(REPO, base).values()) == {"skip"}
    proc = make(REPO, "local", base, "JOBS=2", "FRESH=1")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert last_run(base) == {n: "done" for n in SEED_NODES}
    bad = make(REPO, "local", base, "FORCE=modeling_v9")
    assert bad.returncode != 0
    assert "error: FORCE=modeling_v9: modeling_v9 is not a node of" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_plan_says_why_a_node_runs(base) -> None:
    (base / "model" / "deployed_model.pkl").unlink()
    planned = plan(REPO, base)
    assert planned["deploy_best_model"] == ("run", "model/deployed_model.pkl missing")
    assert planned["loan_prediction"] == ("run", "model/deployed_model.pkl missing")
    assert planned["modeling_v1"] == ("skip", "unchanged")
    (base / "staging/model/trained_model_v2.pkl").write_bytes(b"not a model")
    planned = plan(REPO, base)
    assert planned["modeling_v2"] == (
        "run",
        "staging/model/trained_model_v2.pkl changed since it was written",
    )


def test_a_failed_attempt_leaves_no_record_and_post_keeps_the_exit_code(base) -> None:
    assert make(REPO, "paths", base).returncode == 0  # the copy's own DAG
    dag = base / "dags" / "dagfile.dag"
    assert cli.main(["post", str(dag), "modeling_v1", "65"]) == 65  # UNLESS-EXIT still applies
    assert cli.main(["post", str(dag), "modeling_v1", "-1004"]) == 1
    (base / "staging/split_data/X_train.csv").write_text("changed\n")
    assert cli.main(["pre", str(dag), "modeling_v1"]) == 0  # runs
    assert core.read_record(base, "modeling_v1") is None, "the old record must go"
    assert core.pending_path(base, "modeling_v1").is_file()
    assert cli.main(["post", str(dag), "modeling_v1", "1"]) == 1
    assert core.read_record(base, "modeling_v1") is None
    assert cli.main(["pre", str(dag), "data_processing"]) == 97  # the DAG's PRE_SKIP code


def test_a_childs_pre_script_records_its_parents_success(base) -> None:
    """Only the last node has a POST script: each PRE records its parents' success (DAGMan runs
    it only once they all succeeded), so no level of the DAG waits for a POST script's tick."""
    assert make(REPO, "paths", base).returncode == 0
    dag = base / "dags" / "dagfile.dag"
    text = dag.read_text()
    posts = [line.split()[2] for line in text.splitlines() if line.startswith("SCRIPT POST")]
    assert posts == ["loan_prediction"] and "SCRIPT PRE ALL_NODES" in " ".join(text.split())
    recorded = core.read_record(base, "train_test_split")
    assert cli.main(["pre", str(dag), "train_test_split"]) == 97
    (base / "staging/split_data/processed_data.csv").write_text("changed\n")
    assert cli.main(["pre", str(dag), "train_test_split"]) == 0  # will run: record gone
    assert core.read_record(base, "train_test_split") is None
    # the attempt "succeeded"; its children's PRE scripts record it (both may: same record)
    assert cli.main(["pre", str(dag), "modeling_v1"]) == 97
    assert cli.main(["pre", str(dag), "modeling_v2"]) == 97
    again = core.read_record(base, "train_test_split")
    assert again is not None and again["outputs"] == recorded["outputs"]
    assert again["fingerprint"] != recorded["fingerprint"]  # the changed input's
    assert not core.pending_path(base, "train_test_split").exists()
    # the last node records itself, also when its PRE could not leave a pending fingerprint
    core.remove(core.record_path(base, "loan_prediction"))
    assert cli.main(["post", str(dag), "loan_prediction", "0"]) == 0
    assert core.read_record(base, "loan_prediction") is not None
    # make check wants that POST script on every node without a child
    dag.write_text("".join(line for line in text.splitlines(True) if "SCRIPT POST" not in line))
    proc = subprocess.run(
        [sys.executable, "-m", "loanpipe.check", "--dag", str(dag)],
        capture_output=True,
        text=True,
        env={**os.environ, "CONDOR_CONFIG": os.devnull},
        check=False,
    )
    assert proc.returncode != 0
    assert "node loan_prediction has no child to record its success" in proc.stderr + proc.stdout


def test_code_of_a_node_is_its_script_and_the_modules_it_imports() -> None:
    names = {str(p.relative_to(REPO)) for p in core.code_files(REPO / "scripts" / "train.py")}
    assert {"scripts/train.py", "src/loanpipe/stages/modeling.py"} <= names
    assert "src/loanpipe/stages/common.py" in names
    process = {str(p.relative_to(REPO)) for p in core.code_files(REPO / "scripts" / "process.py")}
    assert "src/loanpipe/stages/modeling.py" not in process
    assert "src/loanpipe/stages/csvfiles.py" in process


TABLE = "lr-a logistic_regression C=1.0 solver=liblinear\ndt-a decision_tree max_depth=5\n"


def test_a_candidate_added_fits_that_candidate_only(tmp_path, sample_csv) -> None:
    project = copy_checkout(tmp_path)
    table = project / "search" / "candidates.txt"
    table.write_text(TABLE)
    base = tmp_path / "base"
    base.mkdir()
    shutil.copy(sample_csv, base / "loan_data.csv")
    first = make(project, "local", base, "DAG=tune", "JOBS=2")
    assert first.returncode == 0, first.stdout + first.stderr
    results = base / "staging" / "search" / "candidates"
    kept = {p.name: p.stat().st_mtime_ns for p in results.glob("*.json")}
    table.write_text(TABLE + "hgb-a hist_gradient_boosting max_iter=30\n")
    planned = plan(project, base, "DAG=tune")
    assert planned["model_search"] == ("run", "candidate hgb-a added")
    again = make(project, "local", base, "DAG=tune", "JOBS=2")
    assert again.returncode == 0, again.stdout + again.stderr
    statuses = last_run(base, "tune.dag")
    skipped = {"data_processing", "train_test_split", "modeling_v1", "modeling_v2"}
    skipped |= {"evaluate_model_v1", "evaluate_model_v2"}
    assert {n for n, s in statuses.items() if s == "pre_skipped"} >= skipped
    assert statuses["model_search"] == statuses["select_model"] == "done"
    assert {p.name: p.stat().st_mtime_ns for p in results.glob("*.json") if p.name in kept} == kept
    assert (results / "hgb-a.json").is_file()
    fitted = [
        p.name
        for p in (base / "error").glob("model_search.*.0.err")
        if "not fitted again" not in p.read_text()
    ]
    assert fitted == ["model_search.hgb-a.0.err"]
    # A code change reruns the nodes that run that code, and says so.
    with (project / "scripts" / "train.py").open("a") as handle:
        handle.write("# a comment\n")
    planned = plan(project, base, "DAG=tune")
    assert planned["modeling_v1"] == ("run", "scripts/train.py changed")
    assert planned["data_processing"] == ("skip", "unchanged")
    assert planned["model_search"] == ("skip", "unchanged")


def test_render_runs_a_python_script_with_the_jobs_python(base) -> None:
    assert make(REPO, "paths", base).returncode == 0
    text = (base / "dags" / "dagfile.dag").read_text()
    pre = next(line for line in text.splitlines() if line.startswith("SCRIPT PRE"))
    words = pre.split()
    assert words[3].endswith("/python") and words[4].endswith("/scripts/fingerprint.py")
    assert words[6] == str(base / "dags" / "dagfile.dag") and words[7] == "$JOB"
    assert subprocess.run([words[3], "-c", "import loanpipe"], check=False).returncode == 0


def pyc_matches(source: Path) -> bool:
    """True when the interpreter would load ``source`` from its .pyc (timestamp-checked: the
    header holds the source's mtime and size) instead of compiling it."""
    cached = Path(importlib.util.cache_from_source(str(source)))
    if not cached.is_file():
        return False
    header, stat = cached.read_bytes()[:16], source.stat()
    return (
        header[:4] == importlib.util.MAGIC_NUMBER
        and int.from_bytes(header[8:12], "little") == int(stat.st_mtime) & 0xFFFFFFFF
        and int.from_bytes(header[12:16], "little") == stat.st_size & 0xFFFFFFFF
    )


def test_make_paths_compiles_the_package_jobs_import(tmp_path) -> None:
    """Jobs write no .pyc into the shared checkout (PYTHONDONTWRITEBYTECODE in common.sub), so
    make paths (before make local and make submit) compiles the package on the submit side."""
    project = copy_checkout(tmp_path)
    base = tmp_path / "base"
    base.mkdir()
    sources = sorted((project / "src" / "loanpipe").rglob("*.py"))
    assert sources and not any(pyc_matches(s) for s in sources)
    assert make(project, "paths", base).returncode == 0
    assert [s for s in sources if not pyc_matches(s)] == []
    changed = project / "src" / "loanpipe" / "errors.py"
    changed.write_text(changed.read_text() + "\n# changed\n")
    os.utime(changed, (changed.stat().st_atime, changed.stat().st_mtime + 5))
    assert not pyc_matches(changed)
    assert make(project, "paths", base).returncode == 0
    assert pyc_matches(changed)


def test_fingerprint_records_are_atomic_but_not_fsynced(tmp_path, monkeypatch) -> None:
    """Bookkeeping (records, tombstones, pending marks) skips fsync, results keep it; both
    replace the file whole or not at all."""
    from loanpipe.stages import common

    synced: list[int] = []
    monkeypatch.setattr(os, "fsync", synced.append)
    record = tmp_path / "fingerprints" / "node.json"
    core.write_json({"format": 1}, record)
    assert synced == [] and json.loads(record.read_text()) == {"format": 1}
    common.write_json({"result": 1}, tmp_path / "metrics.json")
    assert len(synced) == 2  # the file, then its folder
    with pytest.raises(ValueError):
        core.write_json({"format": float("nan")}, record)
    assert json.loads(record.read_text()) == {"format": 1}
    assert sorted(p.name for p in record.parent.iterdir()) == ["node.json"]  # no temporary left
