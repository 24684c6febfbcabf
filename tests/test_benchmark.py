"""Tests for loanpipe.bench (make bench): the data it makes and the table it prints."""

from __future__ import annotations

import os
import re
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
    assert list(work.iterdir()) == []  # the base directories are removed afterwards
    assert not (tmp_path / ".last-run").exists()


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
