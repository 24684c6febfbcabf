"""loanpipe.report on the real DAGMan run (fixture) and on synthetic pool and local runs."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent

os.environ.setdefault("CONDOR_CONFIG", os.devnull)

from conftest import DAGMAN_FIXTURE, needs_fixture  # noqa: E402  (imported once CONDOR_CONFIG is set)

from loanpipe.report import builder, render, sources  # noqa: E402  (imported once CONDOR_CONFIG is set)

FIXTURE = DAGMAN_FIXTURE
SVG = "{http://www.w3.org/2000/svg}"

# Figures read off the fixture's files: log/*.log and dags/dagfile.dag.nodes.log (execute ->
# terminated times, "Memory (MB)" usage and request, return values), dags/dagfile.dag.metrics.
FIXTURE_WALL = {
    "data_processing:0": 3,
    "train_test_split:0": 4,
    "modeling_v2:0": 4,
    "modeling_v1:0": 5,
    "evaluate_model_v2:0": 2,
    "evaluate_model_v1:0": 2,
    "deploy_best_model:0": 1,
    "loan_prediction:0": 2,
}
FIXTURE_MEMORY = {  # used, requested (MiB)
    "data_processing:0": (29, 128),
    "train_test_split:0": (13, 128),
    "modeling_v2:0": (18, 200),
    "modeling_v1:0": (78, 200),
    "evaluate_model_v2:0": (1, 128),
    "evaluate_model_v1:0": (1, 128),
    "deploy_best_model:0": (1, 128),
    "loan_prediction:0": (1, 128),
}


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "CONDOR_CONFIG": os.devnull, **(env or {})}
    full_env.pop("BASE_DIR", None)
    return subprocess.run(
        [sys.executable, "-m", "loanpipe.report", *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=120,
    )


def check_svg(path: Path) -> None:
    """A standalone SVG document (parses as XML; size, viewBox, a title, its own file name in
    data-chart) with something drawn: bars or cells."""
    root = ET.parse(path).getroot()
    assert root.tag == SVG + "svg", path
    width, height = float(root.get("width")), float(root.get("height"))
    assert width >= 200 and height >= 150, (path, width, height)
    assert root.get("viewBox") == f"0 0 {root.get('width')} {root.get('height')}"
    assert root.get("data-chart") == path.name
    assert root.find(SVG + "title").text
    drawn = [
        r for r in root.iter(SVG + "rect") if r.get("class", "").split()[:1] in (["mark"], ["cell"])
    ]
    assert drawn, f"{path} draws nothing"


def nodes_by_name(facts: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {node["name"]: node for node in facts["run"]["nodes"]}


# ---------------------------------------------------------------------------- the real run


@needs_fixture
def test_fixture_figures() -> None:
    facts = builder.build_facts(FIXTURE, None, [])
    metrics = facts["run"]["metrics"]
    assert facts["run"]["kind"] == "pool"
    assert facts["run"]["dag_dir"] == str(FIXTURE / "dags")
    assert metrics["format"] == 1
    assert metrics["dag_status"] == 0 and metrics["dag_status_name"] == "ok"
    assert (
        metrics["nodes"] == 8 and metrics["nodes_succeeded"] == 8 and metrics["nodes_failed"] == 0
    )
    assert metrics["duration"] == pytest.approx(96.24)
    nodes = nodes_by_name(facts)
    assert list(nodes) == list(FIXTURE_WALL)  # DAG file order
    for name, node in nodes.items():
        assert node["status"] == "ok"
        assert node["attempts"] == 1
        assert node["exit_code"] == 0 and node["signal"] is None
        assert node["wall_s"] == pytest.approx(FIXTURE_WALL[name])
        assert (node["memory_used_mib"], node["memory_request_mib"]) == FIXTURE_MEMORY[name]
        assert node["holds"] == []
    assert nodes["data_processing:0"]["queued_s"] == pytest.approx(20)
    # Flags: none above 80%; requests over 5x the use (128/13, 200/18, 128/1) are flagged.
    assert nodes["modeling_v1:0"]["memory_flags"] == []
    assert nodes["data_processing:0"]["memory_flags"] == []  # 128/29 = 4.4x
    assert nodes["train_test_split:0"]["memory_flags"] == ["requests 9.8x its use"]
    assert nodes["evaluate_model_v1:0"]["memory_flags"] == ["requests 128.0x its use"]
    # Results: SEED's keys only, no manifest: derived decision.
    models = {m["version"]: m for m in facts["results"]["models"]}
    assert models["v1"]["Precision"] == pytest.approx(0.774798927613941)
    assert models["v2"]["name"] == "Decision Tree"
    deployment = facts["results"]["deployment"]
    assert deployment["source"] == "derived"
    assert (deployment["candidate"], deployment["rule"]) == ("v1", "precision")
    assert deployment["margin"]["value"] == pytest.approx(0.774798927613941 - 0.6561443066516347)


def writable_fixture(tmp_path: Path) -> Path:
    """A copy of the read-only DAGMan fixture that a test may change."""
    base = tmp_path / "run"
    shutil.copytree(FIXTURE, base, copy_function=shutil.copyfile)
    for path in [base, *base.rglob("*")]:
        path.chmod(path.stat().st_mode | stat.S_IWUSR)
    return base


@needs_fixture
def test_resumed_pool_run_shows_rescued_nodes_as_done_earlier(tmp_path: Path) -> None:
    """A DAGMan run resumed from rescue DAG N skips the nodes it marks DONE: not 'not run'."""
    base = writable_fixture(tmp_path)
    dags = base / "dags"
    dag_text = (dags / "dagfile.dag").read_text()
    (dags / "dagfile.dag").write_text(dag_text + "JOB earlier:0 data_processing.sub\n")
    metrics = json.loads((dags / "dagfile.dag.metrics").read_text())
    (dags / "dagfile.dag.metrics").write_text(json.dumps({**metrics, "rescue_dag_number": 1}))
    facts = builder.build_facts(base, None, [])
    assert nodes_by_name(facts)["earlier:0"]["status"] == "not run"  # no rescue file yet
    (dags / "dagfile.dag.rescue001").write_text("# Rescue DAG file\nDONE earlier:0\n")
    facts = builder.build_facts(base, None, [])
    nodes = nodes_by_name(facts)
    assert nodes["earlier:0"]["status"] == "done (earlier run)"
    assert nodes["modeling_v1:0"]["status"] == "ok"


@needs_fixture
def test_fixture_per_node_event_logs(tmp_path: Path) -> None:
    """Without the nodes log, the nodes' own logs (found via the submit files) give the same."""
    base = writable_fixture(tmp_path)
    (base / "dags" / "dagfile.dag.nodes.log").unlink()
    facts = builder.build_facts(base, None, [])
    nodes = nodes_by_name(facts)
    assert {n: v["wall_s"] for n, v in nodes.items()} == pytest.approx(FIXTURE_WALL)
    assert {n: (v["memory_used_mib"], v["memory_request_mib"]) for n, v in nodes.items()} == (
        FIXTURE_MEMORY
    )
    assert str(base / "log" / "data_modeling_v1.log") in facts["run"]["sources"]


@needs_fixture
def test_fixture_cli_read_only_base(tmp_path: Path) -> None:
    before = sorted(p.name for p in FIXTURE.iterdir())
    result = run_cli("--base-dir", str(FIXTURE), env={"TMPDIR": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert sorted(p.name for p in FIXTURE.iterdir()) == before  # nothing written there
    assert "is not writable: report written to" in result.stdout
    report_line = result.stdout.strip().splitlines()[-1]
    assert report_line.startswith("Report: ")
    path = Path(report_line.removeprefix("Report: "))
    assert path.is_file() and path.is_relative_to(tmp_path)
    text = path.read_text()
    assert "DAG status 0 (ok)" in text and "duration 96.24 s" in text
    assert "| modeling_v1:0 | ok | 1 | 0 |" in text
    for name in ("metrics_by_model.svg", "timeline.svg", "memory.svg"):
        check_svg(path.parent / name)
        assert f"]({name})" in text
    assert "DAG status 0 (ok)" in result.stdout


@needs_fixture
def test_fixture_json(tmp_path: Path) -> None:
    result = run_cli("--base-dir", str(FIXTURE), "--output", str(tmp_path / "out"), "--json")
    assert result.returncode == 0, result.stderr
    facts = json.loads(result.stdout)
    assert facts["run"]["metrics"]["dag_status"] == 0
    assert len(facts["run"]["nodes"]) == 8
    assert facts["report_file"] == str(tmp_path / "out" / "report.md")
    assert (tmp_path / "out" / "report.json").is_file()


# ---------------------------------------------------------------------------- synthetic inputs

PROVENANCE = {
    "input_file": "loan_data.csv",
    "input_sha256": "ab" * 32,
    "input_rows": 45000,
    "parameters": {"seed": 42, "test_size": 0.2},
    "versions": {"python": "3.11.7", "scikit-learn": "1.9.1"},
    "git_commit": "0123456789abcdef0123456789abcdef01234567",
    "host": "submit-node",
}


def metrics_file(version: str, name: str, values: tuple[float, ...], cm: list) -> dict[str, Any]:
    return {
        "Model name": name,
        **dict(zip(builder.METRIC_KEYS, values, strict=True)),
        "model_version": version,
        "confusion_matrix": cm,
        "test_rows": sum(sum(row) for row in cm),
        "provenance": PROVENANCE,
    }


def write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2))


def make_results(base: Path, with_manifest: bool = True) -> None:
    v1 = metrics_file("v1", "Logistic Regression", (0.8944, 0.7752, 0.7428, 0.7586),
                      [[6500, 430], [510, 1560]])  # fmt: skip
    v2 = metrics_file("v2", "Decision Tree", (0.8972, 0.7650, 0.7791, 0.7720),
                      [[6460, 470], [440, 1630]])  # fmt: skip
    write_json(base / "staging" / "metrics" / "model_metrics_v1.json", v1)
    write_json(base / "staging" / "metrics" / "model_metrics_v2.json", v2)
    if not with_manifest:
        return
    model = base / "model"
    model.mkdir(parents=True)
    (model / "deployed_model.pkl").write_bytes(b"model v1 bytes")
    write_json(
        model / "deployed_model.json",
        {
            "model_file": "deployed_model.pkl",
            "sha256": hashlib.sha256(b"model v1 bytes").hexdigest(),
            "candidate": "v1",
            "model_name": "Logistic Regression",
            "rule": "precision",
            "margin": {"metric": "Precision", "value": 0.7752 - 0.7650},
            "metrics": v1,
            "candidates": {"v1": v1, "v2": v2},
            "deployed_at": "2026-11-20T10:00:00Z",
            "source": "staging/metrics",
        },
    )
    old = {**v2, "Accuracy": 0.9, "Precision": 0.7, "Recall": 0.8, "F1 Score": 0.75}
    for stamp, data in (("20261001T090000Z", {**old, "Precision": 0.1}), ("20261101T090000Z", old)):
        write_json(
            model / "archive" / stamp / "deployed_model.json",
            {"candidate": "v2", "model_name": "Decision Tree", "metrics": data,
             "deployed_at": stamp, "sha256": "00"},
        )  # fmt: skip


DAG = """\
JOB data_processing process.sub
JOB train_test_split split.sub
JOB modeling_v1 train.sub
JOB modeling_v2 train.sub
PARENT data_processing CHILD train_test_split
PARENT train_test_split CHILD modeling_v1 modeling_v2
"""


def attempt(node: str, n: int, start: float, end: float, code: int | None, **extra: Any) -> dict:
    return {
        "node": node,
        "attempt": n,
        "start": start,
        "end": end,
        "exit_code": code,
        "signal": extra.pop("signal", None),
        "status": "ok" if code == 0 else "failed",
        "peak_rss_mib": extra.pop("rss", 100.0),
        "request_memory_mib": extra.pop("request", 256.0),
        "request_cpus": 1,
        "cmd": ["python", f"scripts/{node}.py"],
        "iwd": "/nonexistent",
        "stdout": f"output/{node}.{n}.out",
        "stderr": f"error/{node}.{n}.err",
        "log": f"log/{node}.log",
        **extra,
    }


def make_local_run(base: Path, dag_dir: Path) -> None:
    dag_dir.mkdir(parents=True)
    (dag_dir / "dagfile.dag").write_text(DAG)
    t = 1_790_000_000.0
    lines = [
        # An earlier, complete run: must not be reported.
        {"event": "run_start", "time": t - 1000, "resumed_from": None},
        attempt("data_processing", 0, t - 999, t - 990, 0, rss=999.0),
        # The latest run ...
        {"event": "run_start", "time": t, "resumed_from": None, "base_dir": str(base)},
        attempt("data_processing", 0, t + 1, t + 4, 0, rss=230.0, request=256.0),
        attempt("train_test_split", 0, t + 5, t + 6, 1, rss=40.0),
        attempt("train_test_split", 1, t + 7, t + 9, 0, rss=30.0, request=512.0),
        attempt("modeling_v1", 0, t + 10, t + 12, 2, rss=50.0),
        # ... resumed after the failure of modeling_v1 (continues the run above).
        {"event": "run_start", "time": t + 100, "resumed_from": "dagfile.dag.rescue001"},
        attempt("modeling_v2", 0, t + 101, t + 103.5, None, signal=9, rss=120.0),
    ]
    text = "\n".join(json.dumps(line) for line in lines) + "\n"
    (dag_dir / "dagfile.dag.local.jsonl").write_text(text)
    write_json(
        dag_dir / "dagfile.dag.metrics",
        {
            "client": "run_dag.py",
            "version": "local",
            "type": "metrics",
            "metrics_version": 2,
            "start_time": t + 100,
            "end_time": t + 104,
            "duration": 4.0,
            "exitcode": 1,
            "dagman_id": "",
            "parent_dagman_id": "",
            "rescue_dag_number": 1,
            "has_final_node": False,
            "nodes": 4,
            "nodes_failed": 2,
            "nodes_succeeded": 2,
            "total_nodes": 4,
            "total_nodes_run": 4,
            "jobs_submitted": 5,
            "jobs_succeeded": 2,
            "jobs_failed": 3,
            "DagStatus": 2,
        },
    )
    errors = base / "error"
    errors.mkdir(parents=True)
    (errors / "modeling_v1.0.err").write_text(
        "".join(f"noise line {i}\n" for i in range(40))
        + "train: X_train.csv: column 'age' is empty\n"
    )
    (errors / "modeling_v2.0.err").write_text("Killed\n")


def test_local_run(tmp_path: Path) -> None:
    base, dag_dir, out = tmp_path / "base", tmp_path / "dag", tmp_path / "out"
    make_results(base)
    make_local_run(base, dag_dir)
    code = builder.main(
        ["--base-dir", str(base), "--dag", str(dag_dir / "dagfile.dag"), "--output", str(out)]
    )
    assert code == 0
    facts = json.loads((out / "report.json").read_text())
    run = facts["run"]
    assert run["kind"] == "local"
    assert run["metrics"]["format"] == 2
    assert (run["metrics"]["dag_status"], run["metrics"]["dag_status_name"]) == (2, "a node failed")
    assert (run["metrics"]["nodes"], run["metrics"]["jobs_submitted"]) == (4, 5)
    assert run["local"]["resumed"] is True
    nodes = nodes_by_name(facts)
    dp = nodes["data_processing"]
    assert (dp["status"], dp["attempts"], dp["wall_s"]) == ("ok", 1, pytest.approx(3.0))
    assert dp["memory_used_mib"] == 230.0  # not the earlier run's 999
    assert dp["memory_flags"] == ["uses 90% of its request"]
    tts = nodes["train_test_split"]
    assert (tts["status"], tts["attempts"], tts["exit_code"]) == ("ok", 2, 0)
    assert tts["wall_s"] == pytest.approx(3.0)
    assert tts["memory_used_mib"] == 40.0 and tts["memory_request_mib"] == 512.0
    assert tts["memory_flags"] == ["requests 12.8x its use"]
    m1 = nodes["modeling_v1"]
    assert (m1["status"], m1["exit_code"]) == ("failed", 2)
    assert m1["stderr_tail"][-1] == "train: X_train.csv: column 'age' is empty"
    assert len(m1["stderr_tail"]) == sources.STDERR_TAIL_LINES
    m2 = nodes["modeling_v2"]
    assert (m2["status"], m2["signal"], m2["stderr_tail"]) == ("failed", 9, ["Killed"])
    # Results and deployment from the manifest, compared with the newest archived deployment.
    deployment = facts["results"]["deployment"]
    assert (deployment["source"], deployment["candidate"], deployment["rule"]) == (
        "manifest",
        "v1",
        "precision",
    )
    assert deployment["margin"]["value"] == pytest.approx(0.0102)
    assert deployment["sha256_check"] == "matches"
    earlier = deployment["earlier"]
    assert earlier["stamp"] == "20261101T090000Z"
    assert earlier["change"]["Precision"] == pytest.approx(0.7752 - 0.7)
    assert earlier["change"]["Accuracy"] == pytest.approx(0.8944 - 0.9)
    assert facts["notes"] == ["the local run was resumed 1 time(s): attempts of all parts shown"]
    text = (out / "report.md").read_text()
    assert "| v1 | Logistic Regression | 0.8944 | 0.7752 | 0.7428 | 0.7586 | 9000 | yes |" in text
    assert "rule: higher precision; margin Precision +0.0102" in text
    assert "| Precision | 0.7000 | 0.7752 | +0.0752 |" in text
    assert "### modeling_v1: failed" in text and "column 'age' is empty" in text
    assert "ab" * 32 in text and '{"seed": 42, "test_size": 0.2}' in text
    assert "0123456789abcdef0123456789abcdef01234567" in text and "submit-node" in text
    assert "This report: `python -m loanpipe.report --base-dir" in text
    charts = ("metrics_by_model.svg", "confusion_matrices.svg", "timeline.svg", "memory.svg")
    for name in charts:
        check_svg(out / name)
    assert sorted(facts["charts"]) == sorted(charts)


def test_default_output_under_base(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = tmp_path / "base"
    make_results(base, with_manifest=False)
    make_local_run(base, base / "dags")  # the default place of a base directory's runs
    # An earlier release's PNG charts, and a leaderboard of an earlier tune run: not current.
    stale = [*render.OLD_PNG, "search_leaderboard.svg"]
    (base / "report").mkdir()
    for name in stale:
        (base / "report" / name).write_bytes(b"old")
    (base / "report" / "notes.png").write_bytes(b"the user's")
    assert builder.main(["--base-dir", str(base)]) == 0
    left = sorted(p.name for p in (base / "report").iterdir())
    assert not set(stale) & set(left) and "notes.png" in left, left
    out = capsys.readouterr().out
    assert out.strip().splitlines()[-1] == f"Report: {base / 'report' / 'report.md'}"
    assert "derived: no deployment manifest" in out
    assert f"DAG directory {base / 'dags'}" in out
    check_svg(base / "report" / "confusion_matrices.svg")
    assert not list((base / "report").glob(".*.tmp"))  # atomic writes leave no temporaries


NODES_LOG = """\
000 (301.000.000) 2026-01-11 10:56:34 Job submitted from host: <10.0.0.1:9618>
    DAG Node: data_processing
...
001 (301.000.000) 2026-01-11 10:56:40 Job executing on host: <10.0.0.2:9618?alias=exec-1.pool>
...
006 (301.000.000) 2026-01-11 10:56:45 Image size of job updated: 250000
\t240  -  MemoryUsage of job (MB)
\t245000  -  ResidentSetSize of job (KB)
...
012 (301.000.000) 2026-01-11 10:56:46 Job was held.
\tJob has gone over cgroup memory limit of 200 megabytes. Peak usage: 240 megabytes.
\tCode 34 Subcode 0
...
009 (301.000.000) 2026-01-11 10:56:47 Job was aborted.
\tvia condor_rm (by user condor)
...
000 (302.000.000) 2026-01-11 10:56:50 Job submitted from host: <10.0.0.1:9618>
    DAG Node: data_processing
...
001 (302.000.000) 2026-01-11 10:56:52 Job executing on host: <10.0.0.2:9618?alias=exec-1.pool>
...
005 (302.000.000) 2026-01-11 10:56:59 Job terminated.
\t(1) Normal termination (return value 1)
\t\tUsr 0 00:00:01, Sys 0 00:00:00  -  Run Remote Usage
\t\tUsr 0 00:00:00, Sys 0 00:00:00  -  Run Local Usage
\t\tUsr 0 00:00:01, Sys 0 00:00:00  -  Total Remote Usage
\t\tUsr 0 00:00:00, Sys 0 00:00:00  -  Total Local Usage
\t0  -  Run Bytes Sent By Job
\t0  -  Run Bytes Received By Job
\t0  -  Total Bytes Sent By Job
\t0  -  Total Bytes Received By Job
\tPartitionable Resources :    Usage  Request Allocated
\t   Cpus                 :        0        1         1
\t   Disk (KB)            :       19  1048576   1048576
\t   Memory (MB)          :      190      300       300
...
"""


def test_pool_run_with_hold_and_failure(tmp_path: Path) -> None:
    base, dag_dir, out = tmp_path / "base", tmp_path / "dag", tmp_path / "out"
    dag_dir.mkdir(parents=True)
    (dag_dir / "dagfile.dag").write_text(
        "JOB data_processing process.sub\nJOB train_test_split split.sub\n"
    )
    (dag_dir / "process.sub").write_text(
        "request_memory = 200MB\nerror = $(BASE)/error/$(JOB).$(RETRY).err\nqueue\n"
    )
    (dag_dir / "dagfile.dag").write_text(
        (dag_dir / "dagfile.dag").read_text() + f'VARS ALL_NODES BASE="{base}"\n'
    )
    (dag_dir / "dagfile.dag.nodes.log").write_text(NODES_LOG)
    (dag_dir / "dagfile.dag.rescue001").write_text("")
    (base / "error").mkdir(parents=True)
    (base / "error" / "data_processing.1.err").write_text("Traceback ...\nMemoryError\n")
    code = builder.main(
        ["--base-dir", str(base), "--dag", str(dag_dir / "dagfile.dag"), "--output", str(out)]
    )
    assert code == 0
    facts = json.loads((out / "report.json").read_text())
    assert facts["run"]["metrics"] is None
    nodes = nodes_by_name(facts)
    dp = nodes["data_processing"]
    assert (dp["status"], dp["attempts"], dp["exit_code"]) == ("failed", 2, 1)
    assert dp["wall_s"] == pytest.approx(6 + 7)  # 10:56:40-46 held, 10:56:52-59
    assert dp["queued_s"] == pytest.approx(6 + 2)
    # The held attempt's peak (240 MiB) against its request from the submit file (200MB).
    assert (dp["memory_used_mib"], dp["memory_request_mib"]) == (240.0, 200.0)
    assert dp["memory_flags"] == ["uses 120% of its request"]
    assert [h["code"] for h in dp["holds"]] == [34]
    assert "cgroup memory limit" in dp["holds"][0]["reason"]
    assert dp["stderr_file"] == str(base / "error" / "data_processing.1.err")
    assert dp["stderr_tail"] == ["Traceback ...", "MemoryError"]
    assert dp["host"] == "exec-1"
    assert nodes["train_test_split"]["status"] == "not run"
    assert any("rescue001" in note for note in facts["notes"])
    text = (out / "report.md").read_text()
    assert "**data_processing held**" in text and "code 34" in text
    assert "MemoryError" in text
    check_svg(out / "timeline.svg")


# ---------------------------------------------------------------------------- rule and errors


def model(version: str, precision: float, f1: float) -> dict[str, Any]:
    return {"version": version, "Precision": precision, "F1 Score": f1}


def test_decision_rule() -> None:
    assert builder.decide([model("v1", 0.7, 0.5), model("v2", 0.8, 0.1)])[:2] == ("v2", "precision")
    version, rule, margin = builder.decide([model("v1", 0.7, 0.5), model("v2", 0.7, 0.6)])
    assert (version, rule, margin["metric"]) == ("v2", "f1", "F1 Score")
    assert margin["value"] == pytest.approx(0.1)
    assert builder.decide([model("v2", 0.7, 0.5), model("v1", 0.7, 0.5)])[:2] == ("v1", "tie")


def test_nothing_to_report(tmp_path: Path) -> None:
    (tmp_path / "base").mkdir()
    (tmp_path / "dag").mkdir()
    result = run_cli(
        "--base-dir", str(tmp_path / "base"), "--dag", str(tmp_path / "dag" / "dagfile.dag")
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1
    assert result.stderr.startswith("report: no run of dagfile.dag for this base directory")
    assert not (tmp_path / "base" / "report").exists()


def test_results_without_a_run_of_this_base_dir_are_refused(tmp_path: Path) -> None:
    """Metrics files alone (stages run by hand, or an empty dags/) are no run to report."""
    base = tmp_path / "base"
    make_results(base)
    result = run_cli("--base-dir", str(base))
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.strip() == (
        f"report: no run of dagfile.dag for this base directory: no records in {base / 'dags'} "
        f"(run the pipeline first: `make local BASE_DIR={base}` or `make submit BASE_DIR={base}`)"
    )


def test_a_dag_rendered_for_another_base_dir_is_not_reported(tmp_path: Path) -> None:
    """make report BASE_DIR=B --dag A/dags/dagfile.dag must not show A's run as B's."""
    a, b = tmp_path / "a", tmp_path / "b"
    make_results(a)
    make_local_run(a, a / "dags")
    dag = a / "dags" / "dagfile.dag"
    dag.write_text(dag.read_text() + f'VARS ALL_NODES BASE_DIR="{a}"\n')
    assert builder.main(["--base-dir", str(a), "--output", str(tmp_path / "ra")]) == 0
    make_results(b)
    result = run_cli("--base-dir", str(b), "--dag", str(dag))
    assert result.returncode == 2 and result.stdout == ""
    assert f"{dag} was rendered for BASE_DIR={a}, not {b}" in result.stderr
    assert not (b / "report").exists()


@pytest.mark.parametrize(
    ("relative", "content", "expected"),
    [
        ("staging/metrics/model_metrics_v1.json", "{not json", "not valid JSON"),
        ("staging/metrics/model_metrics_v1.json", '{"Accuracy": 1}', "'Precision' missing"),
        ("dag/dagfile.dag.metrics", "[1, 2", "not valid JSON"),
        ("dag/dagfile.dag.nodes.log", "this is not an event log\n", "no HTCondor events"),
        ("dag/dagfile.dag.local.jsonl", '{"node": "a"}\n{oops\n{"node": "b"}\n', "line 2"),
    ],
)
def test_unreadable_input(tmp_path: Path, relative: str, content: str, expected: str) -> None:
    base, dag_dir = tmp_path / "base", tmp_path / "dag"
    base.mkdir()
    dag_dir.mkdir()
    path = tmp_path / relative if relative.startswith("dag/") else base / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content)
    result = run_cli("--base-dir", str(base), "--dag", str(dag_dir / "dagfile.dag"))
    assert result.returncode == 2, result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr
    assert str(path) in lines[0] and expected in lines[0]


def test_missing_base_dir(tmp_path: Path) -> None:
    result = run_cli("--base-dir", str(tmp_path / "nope"))
    assert result.returncode == 2
    assert result.stderr.strip() == f"report: base directory {tmp_path / 'nope'} does not exist"


def test_an_unreadable_base_directory_is_one_line(tmp_path: Path, monkeypatch, capsys) -> None:
    """A base directory the user may not read (the refusal is injected: root reads anything)."""
    import builtins
    import io

    base = tmp_path / "base"
    make_results(base)
    inside = str(base) + os.sep

    def refuse(real):
        def call(path, *args, **kwargs):
            if isinstance(path, str | os.PathLike) and os.fspath(path).startswith(inside):
                raise PermissionError(13, "Permission denied", os.fspath(path))
            return real(path, *args, **kwargs)

        return call

    for module, name in ((os, "stat"), (os, "scandir"), (os, "listdir"), (os, "open"),
                         (io, "open"), (builtins, "open")):  # fmt: skip
        monkeypatch.setattr(module, name, refuse(getattr(module, name)))
    code = builder.main(["--base-dir", str(base), "--output", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1, err
    assert err[0].startswith(f"report: cannot read {base}") and "Permission denied" in err[0]
