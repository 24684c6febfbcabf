"""Deployment as one switch (scripts/deploy.py, loanpipe.stages.deployments).

A deploy or rollback that fails at any step (a full disk, a read-only directory, a kill) leaves
the old deployment or the new one, whole; a retry then leaves what one undisturbed attempt leaves.
Rollbacks reach the deployment before the current one and walk back through the history. Base
directories of earlier releases (plain files, ``archive/<time>/``) still roll back.

Faults are injected into a forked child running the deploy stage in-process: the K-th call to one
of the filesystem operations that change a deployment raises ENOSPC or EACCES, or ends the process
as a kill would (os._exit, no clean-up), for every K the stage reaches.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
from pathlib import Path

import pytest
from conftest import load_script, run_stage

from loanpipe import errors
from loanpipe.config import Layout
from loanpipe.report import builder
from loanpipe.stages import common, deployments

deploy_script = load_script("deploy")

# The operations a deploy or rollback changes the base directory with (tempfile uses os.open and
# os.mkdir; every file's data is fsynced before its rename).
TRAPPED = ("open", "mkdir", "fsync", "rename", "replace", "symlink", "unlink", "chmod")


def deploy_files(finished_base: Path, target: Path) -> Layout:
    """What deploy reads and writes of a finished base directory (its links kept as links)."""
    for part in ("staging/metrics", "staging/model", "staging/split_data", "model"):
        shutil.copytree(finished_base / part, target / part, symlinks=True)
    return Layout(target)


def make_loser_win(layout: Layout) -> str:
    """Raise the precision of the version that lost; return it."""
    old = json.loads(layout.manifest.read_text())["candidate"]
    loser = "v2" if old == "v1" else "v1"
    data = json.loads(layout.metrics(loser).read_text())
    data["Precision"] = 0.999
    layout.metrics(loser).write_text(json.dumps(data))
    return loser


def state(layout: Layout, temporaries: bool = True) -> dict:
    """What a reader sees: the deployed pair, the history, and the deployment folders (and the
    temporary names of a killed attempt unless ``temporaries`` is false)."""

    def names(folder: Path) -> list[str]:
        return sorted(
            p.name for p in folder.iterdir() if temporaries or not p.name.startswith(".tmp-")
        )

    return {
        "pair": (layout.deployed_model.read_bytes(), layout.manifest.read_bytes()),
        "history": [d.id for d in deployments.history(layout)],
        "folders": names(layout.deployments_dir),
        "model_dir": names(layout.deploy_dir),
    }


def run_with_fault(
    layout: Layout, args: list[str], fault: str, at: int, trapped: tuple[str, ...] = TRAPPED
) -> tuple[int, int]:
    """Run deploy.py ARGS in a forked child whose AT-th trapped call fails with FAULT.

    Returns (exit status, trapped calls made); the status is 137 for a kill."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: trap, run the stage, report the number of calls
        os.close(read)
        calls = [0]

        def trap(name, real):
            def wrapper(*a, **k):
                calls[0] += 1
                if calls[0] == at:
                    if fault == "kill":
                        os.write(write, str(calls[0]).encode())
                        os._exit(137)
                    code = errno.ENOSPC if fault == "full" else errno.EACCES
                    named = () if name == "fsync" else (str(a[0]),)  # as the real call names it
                    raise OSError(code, os.strerror(code), *named)
                return real(*a, **k)

            return wrapper

        for name in trapped:
            setattr(os, name, trap(name, getattr(os, name)))
        code = common.run_stage(lambda: deploy_script.main(["--base-dir", str(layout.base), *args]))
        os.write(write, str(calls[0]).encode())
        os._exit(code)
    os.close(write)
    with os.fdopen(read) as pipe:
        calls = int(pipe.read() or 0)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), calls


@pytest.fixture(scope="module")
def reference(finished_base, tmp_path_factory) -> dict:
    """An undisturbed deploy of the other model, then an undisturbed rollback."""
    layout = deploy_files(finished_base, tmp_path_factory.mktemp("reference"))
    before = state(layout)
    make_loser_win(layout)
    run_stage("deploy.py", layout.base)
    after = state(layout)
    run_stage("deploy.py", layout.base, "--rollback")
    return {"before": before, "after": after, "rolled_back": state(layout)}


def visible(found: dict) -> tuple:
    return found["pair"], found["history"]


def same_shape(found: dict, expected: dict) -> bool:
    """Equal but for the new deployment's id (it holds the time) and the manifest's time."""
    pair_model = found["pair"][0] == expected["pair"][0]
    old = json.loads(found["pair"][1])
    new = json.loads(expected["pair"][1])
    old.pop("deployed_at"), new.pop("deployed_at")
    return (
        pair_model
        and old == new
        and len(found["history"]) == len(expected["history"])
        and found["history"][1:] == expected["history"][1:]
        and len(found["folders"]) == len(expected["folders"])
        and found["model_dir"] == expected["model_dir"]
    )


@pytest.mark.parametrize("fault", ["full", "read-only", "kill"])
def test_a_deploy_failing_at_any_step_switches_whole_or_not_at_all(
    finished_base, tmp_path, reference, fault
):
    at, reached = 1, True
    while reached:
        layout = deploy_files(finished_base, tmp_path / f"{fault}-{at}")
        make_loser_win(layout)
        code, calls = run_with_fault(layout, [], fault, at)
        reached = calls >= at
        if not reached:
            assert code == 0
            break
        # 0: a failure the stage may ignore (a directory's fsync) and went on
        assert code in (0, 137 if fault == "kill" else errors.EXIT_FAILURE), at
        # What readers see is the old deployment or the new one; a folder the switch did not
        # reach, and a killed attempt's temporaries, may remain until the retry.
        now = state(layout, temporaries=False)
        old = {k: v for k, v in reference["before"].items() if k != "folders"}
        assert {k: v for k, v in now.items() if k != "folders"} == old or same_shape(
            now, reference["after"]
        ), at
        run_stage("deploy.py", layout.base)  # the DAG's retry
        assert same_shape(state(layout), reference["after"]), at
        assert deployments.current(layout).intact()
        shutil.rmtree(layout.base)
        at += 1
    assert at > 10  # every step of a deploy was failed once


@pytest.mark.parametrize("fault", ["full", "kill"])
def test_a_rollback_failing_at_any_step_switches_whole_or_not_at_all(
    finished_base, tmp_path, reference, fault
):
    at, reached = 1, True
    while reached:
        layout = deploy_files(finished_base, tmp_path / f"{fault}-{at}")
        make_loser_win(layout)
        run_stage("deploy.py", layout.base)
        deployed = state(layout)
        code, calls = run_with_fault(layout, ["--rollback"], fault, at)
        reached = calls >= at
        now = state(layout, temporaries=False)
        assert visible(now) in (visible(deployed), visible(reference["rolled_back"])), at
        if visible(now) == visible(deployed):
            assert code != 0
            run_stage("deploy.py", layout.base, "--rollback")  # the user runs it again
        final = state(layout)
        assert visible(final) == visible(reference["rolled_back"]), at
        assert final["model_dir"] == reference["rolled_back"]["model_dir"], at
        assert len(final["folders"]) == len(reference["rolled_back"]["folders"]), at
        shutil.rmtree(layout.base)
        at += 1
    assert at > 3


def test_rollbacks_walk_back_through_history_and_say_which(finished_base, tmp_path):
    layout = deploy_files(finished_base, tmp_path / "base")
    first = deployments.current(layout)
    loser = make_loser_win(layout)
    for _ in range(3):  # retried attempts add nothing
        run_stage("deploy.py", layout.base)
    second = deployments.current(layout)
    assert [d.id for d in deployments.history(layout)] == [second.id, first.id]
    assert json.loads(layout.manifest.read_text())["candidate"] == loser
    manifest = json.loads(layout.manifest.read_text())
    earlier = builder.earlier_deployment(layout.base, manifest, {})  # what make report compares
    assert (earlier["stamp"], earlier["candidate"]) == (first.id, first.manifest()["candidate"])

    done = run_stage("deploy.py", layout.base, "--rollback")
    assert f"rolled back from {second.id}" in done.stderr
    assert f"to {first.id}" in done.stderr
    assert deployments.current(layout) == first
    assert layout.deployed_model.read_bytes() == first.model.read_bytes()
    run_stage("predict.py", layout.base)
    again = run_stage("deploy.py", layout.base, "--rollback", check=False)
    assert again.returncode == errors.EXIT_BAD_INPUT
    assert "no earlier deployment to roll back to" in again.stderr
    assert deployments.current(layout) == first  # a refused rollback changes nothing

    run_stage("deploy.py", layout.base)  # deploying again puts a new one on top of the first
    third = deployments.current(layout)
    assert [d.id for d in deployments.history(layout)] == [third.id, first.id]


def test_a_base_directory_of_an_earlier_release_rolls_back(finished_base, tmp_path):
    """Plain files and archive/<time>/ copies: the retried deploys' duplicates [A, B, B, B] and a
    rolled-back entry do not count; the rollback reaches A, the next one refuses."""
    layout = deploy_files(finished_base, tmp_path / "base")
    a_model, a_manifest = layout.trained_model("v1"), json.loads(layout.manifest.read_text())
    b_model = layout.trained_model("v2")
    shutil.rmtree(layout.deploy_dir)

    def legacy(folder: Path, model: Path, candidate: str) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(model, folder / "deployed_model.pkl")
        manifest = dict(a_manifest, candidate=candidate, sha256=common.sha256_file(model))
        (folder / "deployed_model.json").write_text(json.dumps(manifest))

    archive = layout.archive_dir
    legacy(archive / "20260101T000000Z", a_model, "v1")
    legacy(archive / "20260102T000000Z-rolled-back", a_model, "v1")
    for stamp in ("20260103T000000Z", "20260103T000001Z", "20260103T000002Z"):
        legacy(archive / stamp, b_model, "v2")
    legacy(layout.deploy_dir, b_model, "v2")  # the current deployment, B, as plain files

    done = run_stage("deploy.py", layout.base, "--rollback")
    assert "to archive-20260101T000000Z" in done.stderr
    assert layout.deployed_model.read_bytes() == a_model.read_bytes()
    assert json.loads(layout.manifest.read_text())["candidate"] == "v1"
    refused = run_stage("deploy.py", layout.base, "--rollback", check=False)
    assert "no earlier deployment" in refused.stderr
    assert sorted(p.name for p in archive.iterdir())[0] == "20260101T000000Z"  # left as it was


def test_a_base_directory_copied_with_links_followed_still_deploys(finished_base, tmp_path):
    layout = deploy_files(finished_base, tmp_path / "linked")
    copy = Layout(shutil.copytree(layout.base, tmp_path / "copy"))  # follows the links
    assert not copy.current_deployment.is_symlink()
    first = json.loads(copy.manifest.read_text())
    make_loser_win(copy)
    run_stage("deploy.py", copy.base)
    assert copy.current_deployment.is_symlink() and copy.deployed_model.is_symlink()
    run_stage("deploy.py", copy.base, "--rollback")
    assert json.loads(copy.manifest.read_text()) == first


def test_the_deployed_model_is_a_link_that_loads_with_joblib(finished_base):
    import joblib

    layout = Layout(finished_base)
    assert layout.deployed_model.is_symlink()
    assert os.readlink(layout.deployed_model) == "current/deployed_model.pkl"
    assert joblib.load(layout.deployed_model).predict is not None


def test_a_full_disk_names_the_file(finished_base, tmp_path, capfd):
    """ENOSPC comes from write/fsync/close, which name no file: the stage names the one it was
    writing."""
    layout = deploy_files(finished_base, tmp_path / "base")
    before = state(layout)
    make_loser_win(layout)
    code, _ = run_with_fault(layout, [], "full", 1, trapped=("fsync",))
    assert code == errors.EXIT_FAILURE
    line = capfd.readouterr().err.strip().splitlines()[-1]
    assert "deployed_model.pkl: No space left on device (ENOSPC" in line
    assert str(layout.deployments_dir) in line
    assert state(layout) == before
