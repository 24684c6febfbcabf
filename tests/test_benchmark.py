"""Tests for loanpipe.bench (make bench): the data it makes and the table it prints."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from conftest import run_stage

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
