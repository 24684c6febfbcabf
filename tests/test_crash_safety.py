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

from loanpipe.stages import common

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


def kill_while_writing(stage: tuple[str, ...], base: Path, target: Path) -> bool:
    """Run the stage and SIGKILL it while ``target``'s temporary file is written, before the rename.

    loanlib's fault-injection pause holds every finished temporary file back from its rename, so
    the kill lands while the write is in progress. Returns whether it did (False when the stage
    ended first, e.g. with an error).
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, str(SCRIPTS / stage[0]), "--base-dir", str(base), *stage[1:]]
    env = {**os.environ, common.PAUSE_BEFORE_RENAME: "0.5"}
    process = subprocess.Popen(command, stderr=subprocess.DEVNULL, env=env)
    pattern = f"**/.{target.name}.*.tmp"  # deploy writes in a folder under model/
    try:
        while process.poll() is None:
            if any(target.parent.glob(pattern)):
                process.send_signal(signal.SIGKILL)
                process.wait()
                return process.returncode == -signal.SIGKILL
            time.sleep(0.005)
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

    for stage in PIPELINE:
        outputs = [crashed / name for name in OUTPUTS[stage]]
        reference = {p: content(clean / p.relative_to(crashed)) for p in outputs}
        # Kill while writing the last output (earlier ones are then complete), then half-way.
        assert kill_while_writing(stage, crashed, outputs[-1]), f"{stage} ended before the kill"
        assert not outputs[-1].exists()
        kill_after(stage, crashed, seconds_per_stage / 2)
        for path in outputs:
            if path.exists():
                assert content(path) == reference[path], f"{path} partial after a kill"
        run_stage(*stage[:1], crashed, *stage[1:])
        for path in outputs:
            assert content(path) == reference[path], f"{path} differs after the rerun"

    for stage_outputs in OUTPUTS.values():
        for name in stage_outputs:
            assert content(crashed / name) == content(clean / name), name


def test_deployment_killed_while_writing_its_manifest(finished_base, tmp_path):
    """Killed with the new model written and its manifest half-way: nothing switched, the old
    deployment serves; the rerun switches model and manifest together; rollback returns."""
    base = tmp_path / "base"
    shutil.copytree(finished_base, base, symlinks=True)
    first = {
        n: (base / "model" / n).read_bytes() for n in ("deployed_model.pkl", "deployed_model.json")
    }
    winner = json.loads(first["deployed_model.json"])["candidate"]
    loser = "v2" if winner == "v1" else "v1"
    metrics_file = base / f"staging/metrics/model_metrics_{loser}.json"
    metrics_file.write_text(
        metrics_file.read_text().replace('"Precision": 0.', '"Precision": 0.99')
    )

    assert kill_while_writing(("deploy.py",), base, base / "model/deployed_model.json")
    for name, data in first.items():
        assert (base / "model" / name).read_bytes() == data
    run_stage("predict.py", base)

    run_stage("deploy.py", base)  # the rerun finishes the deployment
    assert json.loads((base / "model/deployed_model.json").read_text())["candidate"] == loser
    run_stage("predict.py", base)
    assert not list((base / "model").glob("**/.tmp-*"))  # the killed attempt's folder is gone

    run_stage("deploy.py", base, "--rollback")
    for name, data in first.items():
        assert (base / "model" / name).read_bytes() == data
    run_stage("predict.py", base)
