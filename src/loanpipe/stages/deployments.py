"""Deployments as one switch: each in its own immutable folder, the deployed one named by a symlink.

    BASE_DIR/model/deployments/<id>/   deployed_model.pkl, deployed_model.json, previous
    BASE_DIR/model/current          -> deployments/<id>            (replaced in one rename)
    BASE_DIR/model/deployed_model.pkl  -> current/deployed_model.pkl   (fixed links: joblib.load
    BASE_DIR/model/deployed_model.json -> current/deployed_model.json   and readers keep working)

A deployment's folder is written under a temporary name and renamed whole; the deployment is
switched by renaming a new ``current`` symlink over the old one. Model, manifest and the record of
the deployment it replaced (``previous``, its id) therefore change together or not at all, whatever
fails (space, permissions, a killed job). The history is the chain of ``previous`` links from the
current deployment: a rollback switches to the current one's ``previous``, and repeated rollbacks
walk back through it. Folders that are not on the chain (an attempt killed after writing its folder,
a deployment rolled back from) are not history; a retry reuses such a folder when it holds the
same model over the same predecessor, so retries leave what one attempt would.

Base directories of releases before 2.1 (plain files and ``archive/<time>/`` copies) are adopted
on the first deploy or rollback: their archive becomes the chain, oldest first.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loanpipe.config import Layout
from loanpipe.stages import common

MODEL = "deployed_model.pkl"
MANIFEST = "deployed_model.json"
PREVIOUS = "previous"
TEMPORARY = ".tmp-"


@dataclass(frozen=True)
class Deployment:
    folder: Path

    @property
    def id(self) -> str:
        return self.folder.name

    @property
    def model(self) -> Path:
        return self.folder / MODEL

    @property
    def manifest_file(self) -> Path:
        return self.folder / MANIFEST

    def manifest(self) -> dict[str, Any]:
        data = common.read_json(self.manifest_file, "deployment manifest")
        return data if isinstance(data, dict) else {}

    def previous_id(self) -> str | None:
        try:
            text = (self.folder / PREVIOUS).read_text(encoding="utf-8").strip()
        except OSError:
            return None
        return text or None

    def intact(self) -> bool:
        return intact(self.model, self.manifest_file)

    def describe(self) -> str:
        """``<id> (Model name v1, deployed at <time>)``."""
        try:
            data = self.manifest()
        except (OSError, common.PipelineError):
            return f"{self.id} (manifest unreadable)"
        return (
            f"{self.id} ({data.get('model_name')} {data.get('candidate')}, "
            f"deployed at {data.get('deployed_at')})"
        )


def intact(model: Path, manifest: Path) -> bool:
    """Whether a model file and its manifest belong together (the manifest holds its sha256)."""
    try:
        data = json.loads(manifest.read_text(encoding="utf-8"))
        return isinstance(data, dict) and data.get("sha256") == common.sha256_file(model)
    except (OSError, ValueError):
        return False


def current(layout: Layout) -> Deployment | None:
    """The deployment ``current`` names, or None (none yet, or a base directory before 2.1)."""
    link = layout.current_deployment
    if not link.is_symlink():
        return None
    folder = layout.deployments_dir / Path(os.readlink(link)).name
    return Deployment(folder) if folder.is_dir() else None


def deployed_pair(layout: Layout) -> tuple[Path, Path]:
    """The deployed model and manifest files, both from the folder ``current`` names when read:
    a switch between reading one and the other cannot pair two deployments."""
    links = [layout.deployed_model, layout.manifest]
    through_current = all(
        p.is_symlink() and os.readlink(p) == f"{layout.current_deployment.name}/{p.name}"
        for p in links
    )
    if through_current and layout.current_deployment.is_symlink():
        folder = Path(os.path.realpath(layout.current_deployment))
        return folder / MODEL, folder / MANIFEST
    return layout.deployed_model, layout.manifest


def by_id(layout: Layout, deployment_id: str | None) -> Deployment | None:
    if not deployment_id or deployment_id.startswith(".") or "/" in deployment_id:
        return None
    folder = layout.deployments_dir / deployment_id
    return Deployment(folder) if folder.is_dir() else None


def history(layout: Layout) -> list[Deployment]:
    """The current deployment and those it replaced, newest first."""
    chain: list[Deployment] = []
    found = current(layout)
    while found is not None and found.id not in {d.id for d in chain}:
        chain.append(found)
        found = by_id(layout, found.previous_id())
    return chain


# ---------------------------------------------------------------------------- writing


def _symlink(target: str, path: Path) -> None:
    """Point ``path`` at ``target`` in one rename (a new link beside it, renamed over it)."""
    tmp = path.with_name(f"{TEMPORARY}{path.name}.{os.getpid()}")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    os.symlink(target, tmp)
    try:
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    common.fsync_dir(path.parent)


def create(
    layout: Layout,
    deployment_id: str,
    model: Path,
    manifest: dict[str, Any],
    previous: str | None,
) -> Deployment:
    """Write a deployment folder under a temporary name, then rename it whole into place."""
    layout.deployments_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=TEMPORARY, dir=layout.deployments_dir))
    try:
        common.copy_file(model, tmp / MODEL)
        common.write_json(manifest, tmp / MANIFEST)
        common.write_text((previous or "") + "\n", tmp / PREVIOUS)
        os.chmod(tmp, 0o755)
        os.rename(tmp, layout.deployments_dir / deployment_id)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    common.fsync_dir(layout.deployments_dir)
    return Deployment(layout.deployments_dir / deployment_id)


def new_id(layout: Layout, digest: str) -> str:
    """``<UTC time>-<sha256 prefix>``, unique in deployments_dir."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + digest[:12]
    name, number = stamp, 1
    while (layout.deployments_dir / name).exists():
        number += 1
        name = f"{stamp}-{number}"
    return name


def switch(layout: Layout, deployment: Deployment) -> None:
    """Make ``deployment`` the deployed one: one rename of the ``current`` symlink."""
    _symlink(f"{layout.deployments_dir.name}/{deployment.id}", layout.current_deployment)
    link_files(layout)


def link_files(layout: Layout) -> None:
    """deployed_model.pkl and .json as the fixed links through ``current``."""
    for name in (MODEL, MANIFEST):
        path = layout.deploy_dir / name
        target = f"{layout.current_deployment.name}/{name}"
        if not (path.is_symlink() and os.readlink(path) == target):
            _symlink(target, path)


def reusable(layout: Layout, digest: str, previous: str | None) -> Deployment | None:
    """A folder off the history holding this model over the same predecessor (a retry's)."""
    if not layout.deployments_dir.is_dir():
        return None
    on_chain = {d.id for d in history(layout)}
    for folder in sorted(layout.deployments_dir.iterdir()):
        found = Deployment(folder)
        if folder.name.startswith(".") or found.id in on_chain or not folder.is_dir():
            continue
        if found.previous_id() == previous and found.intact():
            with contextlib.suppress(OSError, common.PipelineError):
                if found.manifest().get("sha256") == digest:
                    return found
    return None


def remove_temporaries(layout: Layout) -> None:
    """Folders and links of attempts killed before their rename."""
    for parent in (layout.deployments_dir, layout.deploy_dir):
        if parent.is_dir():
            for path in parent.glob(f"{TEMPORARY}*"):
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    with contextlib.suppress(OSError):
                        path.unlink()


# ---------------------------------------------------------------------------- adopting


def adopt(layout: Layout) -> None:
    """Bring a base directory of an earlier release (or one copied without its symlinks) to this
    layout without changing what is deployed: plain files become a deployment folder, the
    archive the chain behind it. Safe to interrupt and repeat."""
    remove_temporaries(layout)
    copied = layout.current_deployment
    copied_previous = None
    if copied.is_dir() and not copied.is_symlink():  # copied with its links followed
        copied_previous = Deployment(copied).previous_id()
        stale = Path(tempfile.mkdtemp(prefix=TEMPORARY, dir=layout.deploy_dir))
        os.replace(copied, stale / "current")
        shutil.rmtree(stale, ignore_errors=True)
    files = [layout.deploy_dir / MODEL, layout.deploy_dir / MANIFEST]
    if any(p.exists() and not p.is_symlink() for p in files):
        if intact(*files):
            deployment = _adopt_files(layout, copied_previous)
            switch(layout, deployment)
        # A pair that does not match (killed half-way by a release before 2.1) is not adopted:
        # the next deploy replaces it; until then predict refuses it, as before.
    elif current(layout) is not None:
        link_files(layout)


def _adopt_files(layout: Layout, previous: str | None) -> Deployment:
    """A folder for the deployed plain files: an equal one already there, else a new one."""
    model, manifest = layout.deploy_dir / MODEL, layout.deploy_dir / MANIFEST
    text = manifest.read_bytes()
    if layout.deployments_dir.is_dir():
        for folder in sorted(layout.deployments_dir.iterdir()):
            if folder.name.startswith("."):
                continue
            found = Deployment(folder)
            with contextlib.suppress(OSError):
                if found.manifest_file.read_bytes() == text and found.intact():
                    return found
    if previous is None:
        previous = _adopt_archive(layout, json.loads(text).get("sha256"))
    return create(layout, new_id(layout, common.sha256_file(model)), model, json.loads(text),
                  previous)  # fmt: skip


def _adopt_archive(layout: Layout, current_sha: str | None) -> str | None:
    """The archive of a release before 2.1 as a chain of folders (oldest first); its newest id.

    Left out, as that release's rollback left them out: rolled-back and mismatched pairs; copies
    of the same model in a row (its retried deploys archived the current model each time)."""
    if not layout.archive_dir.is_dir():
        return None
    kept: list[tuple[Path, str]] = []
    for folder in sorted(layout.archive_dir.iterdir()):
        model, manifest = folder / MODEL, folder / MANIFEST
        if folder.name.endswith(("-rolled-back", "-incomplete")) or not intact(model, manifest):
            continue
        sha = common.sha256_file(model)
        if not kept or kept[-1][1] != sha:
            kept.append((folder, sha))
    while kept and kept[-1][1] == current_sha:
        kept.pop()
    previous = None
    for folder, _ in kept:
        name = f"archive-{folder.name}"
        if by_id(layout, name) is None:
            manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
            create(layout, name, folder / MODEL, manifest, previous)
        previous = name
    return previous
