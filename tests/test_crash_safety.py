"""SIGKILL each stage at several moments, including while it writes, then rerun (issue 6).

After every kill each output file either does not exist or is complete (equal to a clean run's),
so no later stage can read a partial file; after the reruns the base directory equals a clean
run's.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from conftest import PIPELINE, SCRIPTS, run_pipeline, run_stage

ROWS = 20000
OUTPUTS = {
    ("process.py",): ["staging/split_data/processed_data.csv"],
    ("split.py",): [
        f"staging/split_data/{n}.csv" for n in ("X_train", "y_train", "X_test", "y_test")
    ],
    ("train.py", "--model", "v1"): ["staging/model/trained_model_v1.pkl"],
    ("train.py", "--model", "v2"): ["staging/model/trained_model_v2.pkl"],
    ("evaluate.py", "--model", "v1"): ["staging/metrics/model_metrics_v1.json"],
    ("evaluate.py", "--model", "v2"): ["staging/metrics/model_metrics_v2.json"],
    ("deploy.py",): ["model/deployed_model.pkl", "model/deployed_model.json"],
    ("predict.py",): ["predictions/predictions.csv"],
}


def content(path: Path) -> bytes:
    """A file's bytes; for the manifest, its content without the deployment time."""
    if path.name == "deployed_model.json":
        data = json.loads(path.read_text())
        data.pop("deployed_at")
        return json.dumps(data, sort_keys=True).encode()
    return path.read_bytes()


def kill_while_writing(stage: tuple[str, ...], base: Path, outputs: list[Path]) -> bool:
    """Start the stage and SIGKILL it as soon as a temporary output file appears.

    Returns whether the kill landed during a write (False when the stage finished first).
    """
    folders = {p.parent for p in outputs}
    for folder in folders:
        folder.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, str(SCRIPTS / stage[0]), "--base-dir", str(base), *stage[1:]]
    process = subprocess.Popen(command, stderr=subprocess.DEVNULL)
    try:
        while process.poll() is None:
            for folder in folders:
                if any(name.endswith(".tmp") for name in os.listdir(folder)):
                    process.send_signal(signal.SIGKILL)
                    process.wait()
                    return process.returncode == -signal.SIGKILL
            time.sleep(0.0005)
        return False
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def kill_after(stage: tuple[str, ...], base: Path, seconds: float) -> None:
    command = [sys.executable, str(SCRIPTS / stage[0]), "--base-dir", str(base), *stage[1:]]
    process = subprocess.Popen(command, stderr=subprocess.DEVNULL)
    try:
        process.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGKILL)
        process.wait()


def test_killed_and_rerun_pipeline_ends_like_a_clean_run(tmp_path):
    clean, crashed = tmp_path / "clean", tmp_path / "crashed"
    run_stage("generate_data.py", clean, "--rows", str(ROWS))
    crashed.mkdir()
    shutil.copy(clean / "loan_data.csv", crashed / "loan_data.csv")
    started = time.monotonic()
    run_pipeline(clean)
    seconds_per_stage = (time.monotonic() - started) / len(PIPELINE)

    during_write = 0
    for stage in PIPELINE:
        outputs = [crashed / name for name in OUTPUTS[stage]]
        reference = {p: content(clean / p.relative_to(crashed)) for p in outputs}
        for kill in ("write", "half-way"):
            if kill == "write":
                during_write += kill_while_writing(stage, crashed, outputs)
            else:
                kill_after(stage, crashed, seconds_per_stage / 2)
            for path in outputs:
                if path.exists():
                    assert content(path) == reference[path], f"{path} partial after a kill"
        run_stage(*stage[:1], crashed, *stage[1:])
        for path in outputs:
            assert content(path) == reference[path], f"{path} differs after the rerun"
    assert during_write >= len(PIPELINE) // 2, "too few kills landed during a write"

    for stage_outputs in OUTPUTS.values():
        for name in stage_outputs:
            assert content(crashed / name) == content(clean / name), name
