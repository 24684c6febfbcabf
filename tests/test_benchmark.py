"""Tests for loanpipe.bench (make bench): the data it makes and the table it prints."""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import DAGMAN_FIXTURE, SEED_NODES, needs_fixture, run_stage

from loanpipe import bench


def sample(tmp_path: Path, rows: int) -> Path:
    run_stage("generate_data.py", tmp_path, "--rows", str(rows))
    return tmp_path / "loan_data.csv"


def test_resample_draws_rows_of_the_source_with_its_header(tmp_path: Path) -> None:
    source = sample(tmp_path, 50)
    lines = source.read_text().splitlines()
    dest = tmp_path / "big.csv"
    assert bench.resample(source, 1234, dest, seed=1) is True
    out = dest.read_text().splitlines()
    assert out[0] == lines[0] and len(out) == 1235
    assert set(out[1:]) <= set(lines[1:])
    again = tmp_path / "again.csv"
    bench.resample(source, 1234, again, seed=1)
    assert again.read_text() == dest.read_text()  # seeded
    assert bench.resample(source, 50, tmp_path / "same.csv") is False
    assert (tmp_path / "same.csv").read_bytes() == source.read_bytes()


def test_bench_prints_stages_against_requests_and_the_dag_time(tmp_path: Path) -> None:
    source = sample(tmp_path, 400)
    work = tmp_path / "work"
    work.mkdir()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "loanpipe.bench",
            "--only",
            "stages",
            "--rows",
            "600",
            "--work-dir",
            str(work),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "LOAN_DATA_CSV": str(source), "CONDOR_CONFIG": "/dev/null"},
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "600 rows" in out and f"resampled from {source}" in out
    assert "request_memory for every node (make paths): 384 MiB" in out
    for node, *_ in bench.STAGES:
        line = next(line for line in out.splitlines() if line.startswith(node + " "))
        seconds, peak, share = line.split()[1:4]
        assert float(seconds) > 0 and 0 < float(peak) < 384 and share.endswith("%")
    assert "OVER REQUEST" not in out
    assert "jobs forked from a warm interpreter): " in out and out.rstrip().endswith(", ok")
    assert list(work.iterdir()) == []  # the base directory is removed afterwards


def test_peaks_are_the_stages_own_not_the_benchmarks() -> None:
    """Linux carries a parent's memory high-water mark into its forked child's ru_maxrss: a
    small stage measured from a big benchmark process must still show its own small peak."""
    ballast = bytearray(400 * 2**20)  # 400 MiB resident in this process
    ballast[::4096] = b"x" * len(ballast[::4096])
    seconds, peak = bench.measure([sys.executable, "-c", "pass"])
    assert seconds > 0 and 1 < peak < 100, peak
    seconds, peak = bench.measure(
        [sys.executable, "-c", "block = bytearray(200 * 2**20); block[::4096] = b'x' * 51200"]
    )
    assert 200 < peak < 300, peak
    del ballast


# ---------------------------------------------------------------- pool section (offline parts)

POOL_RUN = Path(__file__).parent / "fixtures" / "pool-run-25.0.13" / "dagfile.dag"


def adds_up(line) -> bool:
    """Head, levels and tail account for the whole run, second for second."""
    levels = sum(lv.dagman + lv.waiting + lv.running for lv in line.levels)
    return abs(line.head + levels + line.tail - line.total) < 1e-6


@needs_fixture
def test_timeline_of_the_original_run_on_a_real_pool() -> None:
    from loanpipe.bench import timeline

    line = timeline.read_timeline(DAGMAN_FIXTURE / "dags" / "dagfile.dag")
    nodes = {n.name: n for n in line.nodes}
    assert line.total == 96 and adds_up(line)
    assert [lv.nodes for lv in line.levels][2] == ["modeling_v1:0", "modeling_v2:0"]
    # the first match waited a negotiation cycle, the 200 MB trainers another one
    assert nodes["data_processing:0"].waiting == 20 and nodes["modeling_v1:0"].waiting == 17
    assert nodes["train_test_split:0"].dagman == 7  # DAGMan polling its logs every 5 s
    assert all(n.scripts == 0 for n in line.nodes) and not line.skipped
    text = "\n".join(timeline.format_timeline("original", line))
    assert "original: 96 s from submission to DAGMan's exit" in text
    assert "total 96 s = DAGMan 38 s (scripts 0) + waiting for slots 41 s + running 17 s" in text


def test_timeline_of_this_projects_run_with_scripts_and_final_node() -> None:
    from loanpipe.bench import timeline

    line = timeline.read_timeline(POOL_RUN)
    nodes = {n.name: n for n in line.nodes}
    assert line.total == 37 and adds_up(line)
    assert len(line.nodes) == 9 and nodes["report"].level == 6  # FINAL: after the deepest
    assert nodes["report"].ready == nodes["loan_prediction"].terminate
    # claims held: no node waited more than a second for a slot, the trainers ran side by side
    assert max(n.waiting for n in line.nodes) <= 1
    v1, v2 = nodes["modeling_v1"], nodes["modeling_v2"]
    assert v1.execute < v2.terminate and v2.execute < v1.terminate
    # POST of the parent + own PRE, seen in the node log and dagman.out
    assert nodes["loan_prediction"].scripts == 1 and nodes["data_processing"].scripts == 0
    assert sum(lv.scripts for lv in line.levels) == 4


def test_timeline_refuses_a_run_that_did_not_end(tmp_path: Path) -> None:
    from loanpipe.bench import timeline

    for name in ("dagfile.dag", "dagfile.dag.nodes.log"):
        (tmp_path / name).write_bytes((POOL_RUN.parent / name).read_bytes())
    log = (POOL_RUN.parent / "dagfile.dag.dagman.log").read_text()
    (tmp_path / "dagfile.dag.dagman.log").write_text(log.split("005 (")[0])
    with pytest.raises(ValueError, match="no JOB_TERMINATED event"):
        timeline.read_timeline(tmp_path / "dagfile.dag")


def test_original_submit_files_get_path_and_one_queue(tmp_path: Path) -> None:
    from loanpipe.bench import pool

    sub = tmp_path / "a.sub"
    sub.write_text("executable = /b/s.py\nenvironment = SEED_BASE_DIR=/b\nqueue\n\nqueue")
    pool.fix_original_submit(sub, Path("/v/bin"))
    assert sub.read_text() == (
        'executable = /b/s.py\nenvironment = "SEED_BASE_DIR=/b PATH=/v/bin:/usr/bin:/bin"\nqueue\n'
    )
    sub.write_text("environment = X=1\nqueue\n")  # as the 24.0 bindings write it
    pool.fix_original_submit(sub, Path("/v/bin"))
    assert sub.read_text().endswith('PATH=/v/bin:/usr/bin:/bin"\nqueue\n')


def test_pool_section_says_why_it_does_not_run_as_root_or_without_a_pool(monkeypatch, capsys):
    from loanpipe.bench import pool

    monkeypatch.setattr(pool.os, "geteuid", lambda: 0)
    assert pool.run(argparse.Namespace(work_dir=None, repeats=1)) == 0
    assert "pool: skipped: root cannot own HTCondor jobs" in capsys.readouterr().out
    monkeypatch.setattr(pool.os, "geteuid", lambda: 1000)
    monkeypatch.setattr(pool.shutil, "which", lambda tool: None)
    assert pool.run(argparse.Namespace(work_dir=None, repeats=1)) == 0
    assert "HTCondor's tools are not on PATH" in capsys.readouterr().out


def test_timeline_command_prints_the_tables_or_one_line(tmp_path: Path, capsys) -> None:
    from loanpipe.bench import timeline

    assert timeline.main([str(POOL_RUN)]) == 0
    out = capsys.readouterr().out
    assert "6 (report)" in out and out.rstrip().endswith("running 17 s")
    assert timeline.main([str(tmp_path / "dagfile.dag")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"error: {tmp_path}/dagfile.dag.dagman.log: no such file: the DAG has not run here"
    ]


def test_a_failing_step_of_the_pool_section_is_one_line() -> None:
    from loanpipe.bench import pool

    with pytest.raises(RuntimeError, match=r"exit 1: boom$"):  # the last line of stderr
        pool.checked([sys.executable, "-c", "import sys; print('x'); sys.exit('a\\nboom')"])
    with pytest.raises(RuntimeError, match=r"exit 3: boom$"):
        pool.checked(["sh", "-c", "echo boom; exit 3"])  # or of stdout
    pool.checked(["true"])


SEARCH_TABLE = (
    "lr-a logistic_regression C=1.0 solver=liblinear\n"
    "dt-a decision_tree max_depth=5\n"
    "hgb-a hist_gradient_boosting max_iter=20\n"
)


def test_bench_search_runs_gridsearchcv_and_the_tune_dag_to_the_same_winner(
    tmp_path: Path, sample_csv: Path
) -> None:
    from test_search import copy_checkout

    project = copy_checkout(tmp_path)
    (project / "search" / "candidates.txt").write_text(SEARCH_TABLE)
    work = tmp_path / "work"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAKE") and k != "BASE_DIR"}
    proc = subprocess.run(
        [str(project / ".venv/bin/python"), "-m", "loanpipe.bench", "--only", "search"]
        + ["--repeats", "1", "--work-dir", str(work)],
        capture_output=True,
        text=True,
        env={**env, "LOAN_DATA_CSV": str(sample_csv), "CONDOR_CONFIG": "/dev/null"},
        timeout=900,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    ref = next(line for line in lines if line.startswith("GridSearchCV(n_jobs=2): winner "))
    ours = next(line for line in lines if line.startswith("make local DAG=tune: winner "))
    assert ref.split("winner ")[1] == ours.split("winner ")[1]  # the same id and CV score
    assert ref.split()[2].rstrip(",") in ("lr-a", "dt-a", "hgb-a")
    assert "winners and every candidate's CV score agree" in lines
    ratio = next(line for line in lines if line.startswith("model search, whole tune DAG: "))
    assert "GridSearchCV(n_jobs=2) " in ratio and "ratio " in ratio and "(goal <= 0.50: " in ratio
    assert list(work.iterdir()) == []  # base directories removed


def test_bench_search_is_skipped_without_the_real_rows(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "loanpipe.bench", "--only", "search", "--work-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        env={**os.environ, "LOAN_DATA_CSV": str(tmp_path / "absent.csv")},
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert f"skipped: the real rows are not at {tmp_path / 'absent.csv'}" in proc.stdout


def run_bench(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "loanpipe.bench", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "CONDOR_CONFIG": "/dev/null", **env},
        timeout=600,
        check=False,
    )


def test_original_section_runs_both_alternately_and_prints_the_ratio(tmp_path: Path) -> None:
    source = sample(tmp_path, 400)
    fake = tmp_path / "original"
    fake.mkdir()
    # A stand-in for the original's run script: it must get the base directory with the input.
    (fake / "run_seed.sh").write_text(
        '#!/usr/bin/env bash\nset -e\ntest -s "$1/loan_data.csv"\n'
        'python -c "import pandas" && echo ran > "$1/original_ran.txt"\n'
    )
    work = tmp_path / "work"
    work.mkdir()
    proc = run_bench(
        ["--only", "original", "--rows", "600", "--repeats", "1", "--work-dir", str(work)],
        {"LOAN_DATA_CSV": str(source), "LOAN_ORIGINAL_DIR": str(fake)},
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert any(line.startswith(f"600 rows (resampled from {source})") for line in lines)
    pattern = (
        r"600 rows, whole pipeline on one machine \(make local FRESH=1\): "
        r"original \d+\.\d s, this project \d+\.\d s: "
        r"ratio \d+\.\d\d  \(goal <= 0\.15: (NOT )?met\)"
    )
    assert any(re.fullmatch(pattern, line) for line in lines), proc.stdout
    # Both really ran: the fake original wrote its one file, make local deployed a model.
    last = next(line for line in lines if line.startswith("  last runs:"))
    assert "the original left 1 files" in last
    assert re.search(r"this project deployed v[12] \(.+\), DagStatus 0$", last), last
    # Where our last run's seconds went: every node of the DAG once (siblings in either order),
    # in the order they became ready, the FINAL report node last.
    at = next(i for i, line in enumerate(lines) if line.startswith("  this project's last run: "))
    table = lines[at + 2 : at + 2 + len(SEED_NODES) + 1]
    names = [row.split()[0] for row in table]
    assert sorted(names[:-1]) == sorted(SEED_NODES) and names[-1] == "report"
    assert names[0] == "data_processing" and names[1] == "train_test_split"
    ready = [float(row.split()[1]) for row in table]
    assert ready == sorted(ready)
    assert all(row.split()[-1] == "done" for row in table)
    assert lines[at + 2 + len(table)].split()[:2] == ["runner", "ends"]
    assert list(work.iterdir()) == []  # the base directories are removed afterwards
    assert not (tmp_path / ".last-run").exists()


def test_local_timeline_reads_the_last_run_from_the_runners_records(tmp_path: Path) -> None:
    """Seconds from the runner's start; a resumed run includes the run it continues; a node
    skipped by its PRE script has no job."""
    from loanpipe.bench import local_timeline

    dag = tmp_path / "x.dag"
    t0 = 1000.0
    records = [
        {"event": "run_start", "time": 900.0, "resumed_from": None},  # an older run
        {"node": "a", "start": 901.0, "end": 902.0, "job_start": 901.0, "job_end": 902.0},
        {"event": "run_start", "time": t0, "resumed_from": None},
        {"node": "a", "attempt": 1, "start": t0 + 0.2, "end": t0 + 0.9, "job_start": t0 + 0.3,
         "job_end": t0 + 0.8, "status": "done"},
        {"node": "b", "attempt": 1, "start": t0 + 0.9, "end": t0 + 1.0, "job_start": None,
         "job_end": None, "status": "pre_skipped"},
        {"event": "run_start", "time": t0 + 5, "resumed_from": "x.dag.rescue001"},
        {"node": "c", "attempt": 1, "start": t0 + 5.1, "end": t0 + 6.0, "job_start": t0 + 5.2,
         "job_end": t0 + 5.9, "status": "done"},
        {"event": "run_end", "time": t0 + 6.5},
    ]  # fmt: skip
    Path(f"{dag}.local.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    line = local_timeline.read_local_timeline(dag)
    assert line.total == pytest.approx(6.5)
    assert [(a.node, a.job is None) for a in line.attempts] == [
        ("a", False),
        ("b", True),
        ("c", False),
    ]
    a = line.attempts[0]
    assert (a.ready, a.job, a.end) == pytest.approx((0.2, 0.3, 0.8))
    assert line.attempts[1].end == pytest.approx(1.0)
    text = local_timeline.format_local_timeline("run", line)
    assert text[0] == "run: 6.50 s from the runner's start to its end"
    assert text[2].split() == ["a", "0.20", "0.30", "0.80", "0.50", "done"]
    assert text[3].split() == ["b", "0.90", "-", "1.00", "-", "pre_skipped"]
    assert text[-1].split() == ["runner", "ends", "6.50"]
    Path(f"{dag}.local.jsonl").write_text("")
    with pytest.raises(ValueError, match="holds no local run"):
        local_timeline.read_local_timeline(dag)


def test_original_section_says_why_it_cannot_run(tmp_path: Path) -> None:
    proc = run_bench(
        ["--only", "original", "--rows", "600", "--repeats", "1"],
        {"LOAN_ORIGINAL_DIR": str(tmp_path / "nowhere")},
    )
    assert proc.returncode == 0, proc.stderr
    assert (
        f"original: skipped: the original system's scripts are not in {tmp_path / 'nowhere'} "
        "(set LOAN_ORIGINAL_DIR)" in proc.stdout.splitlines()
    )
    assert "ratio" not in proc.stdout
