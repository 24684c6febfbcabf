#!/usr/bin/env python3
"""Stage deploy_best_model: deploy the best of the trained models.

Reads   BASE_DIR/staging/metrics/model_metrics_<version>.json of each version in --models
        (default v1 v2; dag/tune.dag passes v1 v2 v3),
        BASE_DIR/staging/model/trained_model_<winner>.pkl
Writes  BASE_DIR/model/deployed_model.pkl and its manifest BASE_DIR/model/deployed_model.json
        (sha256 of the model, the candidate, the rule that chose it, its metrics, the time);
        the deployment it replaces goes to BASE_DIR/model/archive/<UTC time>/

The rule (the original system's): the higher precision wins; on a tie the higher F1; on a full
tie the earlier version (v1). Only the versions named by --models take part: a metrics file
another DAG left behind (say model_metrics_v3.json of an earlier tune run) never sways this
one. The current deployment is kept untouched when a metrics file is missing, unparsable or
holds a value that is not a finite number in [0, 1]. --rollback restores the newest archived
deployment.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from loanpipe import errors
from loanpipe.config import Layout
from loanpipe.errors import PipelineError
from loanpipe.stages import common, modeling
from loanpipe.stages.common import log

VERSIONS = ("v1", "v2", "v3")  # v3: the model search's winner (dag/tune.dag)


def intact(model: Path, manifest: Path) -> bool:
    """Whether a model file and its manifest belong together (the manifest holds its sha256).

    The two files are each written atomically, but not together: a deployment killed between
    them leaves a new model beside the old manifest. Such a pair is never restored.
    """
    try:
        data = json.loads(manifest.read_text(encoding="utf-8"))
        return isinstance(data, dict) and data.get("sha256") == common.sha256_file(model)
    except (OSError, ValueError):
        return False


def archive_current(layout: Layout, suffix: str = "") -> None:
    """Copy the current deployment (model and manifest) into a new archive folder."""
    if not layout.deployed_model.exists():
        return
    if not intact(layout.deployed_model, layout.manifest):
        suffix += "-incomplete"
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + suffix
    folder = layout.archive_dir / stamp
    number = 1
    while folder.exists():
        number += 1
        folder = layout.archive_dir / f"{stamp}-{number}"
    for source in (layout.deployed_model, layout.manifest):
        if source.exists():
            common.copy_file(source, folder / source.name)
    log(f"archived the current deployment in {folder}")


def previous_deployments(layout: Layout) -> list[Path]:
    """Archived deployments that can be restored, oldest first.

    Rolled-back deployments and model/manifest pairs that do not match are left out.
    """
    if not layout.archive_dir.is_dir():
        return []
    return sorted(
        folder
        for folder in layout.archive_dir.iterdir()
        if folder.is_dir()
        and not folder.name.endswith(("-rolled-back", "-incomplete"))
        and intact(folder / "deployed_model.pkl", folder / "deployed_model.json")
    )


def rollback(layout: Layout) -> int:
    archived = previous_deployments(layout)
    if not archived:
        raise PipelineError(layout.archive_dir, "no earlier deployment to roll back to")
    newest = archived[-1]
    archive_current(layout, "-rolled-back")
    # Model first, then manifest, then the archive entry: a rollback killed half-way is redone
    # by running it again (the entry is still the newest intact one).
    common.copy_file(newest / "deployed_model.pkl", layout.deployed_model)
    common.copy_file(newest / "deployed_model.json", layout.manifest)
    shutil.rmtree(newest)
    manifest = common.read_json(layout.manifest, "deployment manifest")
    log(
        f"rolled back to {manifest.get('model_name')} ({manifest.get('candidate')}) deployed at "
        f"{manifest.get('deployed_at')}"
    )
    return errors.EXIT_OK


def deploy(layout: Layout, versions: list[str]) -> int:
    candidates = {}
    for version in versions:
        path = layout.metrics(version)
        candidates[version] = modeling.check_metrics(common.read_json(path, "metrics file"), path)
    winner, rule, margin = modeling.choose_deployment(candidates)
    source = layout.trained_model(winner)
    common.check_readable(source, "trained model")
    digest = common.sha256_file(source)

    deployed = layout.deployed_model
    if (
        deployed.is_file()
        and common.sha256_file(deployed) == digest
        and intact(deployed, layout.manifest)
    ):
        log(
            f"{candidates[winner]['Model name']} ({winner}) is already deployed; manifest refreshed"
        )
    else:
        archive_current(layout)
        common.copy_file(source, deployed)
    manifest = {
        "model_file": layout.deployed_model.name,
        "sha256": digest,
        "candidate": winner,
        "model_name": candidates[winner]["Model name"],
        "rule": rule,
        "margin": margin,
        "metrics": candidates[winner],
        "candidates": candidates,
        "considered": versions,
        "deployed_at": common.utc_now(),
        "source": str(source.relative_to(layout.base)),
    }
    common.write_json(manifest, layout.manifest)
    why = {
        "precision": f"higher precision (by {margin['value']:.4f})",
        "f1": f"equal precision, higher F1 (by {margin['value']:.4f})",
        "tie": f"equal precision and F1: the earlier version ({winner}) wins a full tie",
    }[rule]
    log(f"deployed {manifest['model_name']} ({winner}): {why} -> {layout.deployed_model}")
    return errors.EXIT_OK


def main(argv: list[str] | None = None) -> int:
    parser = common.stage_parser(__doc__)
    parser.add_argument(
        "--rollback", action="store_true", help="restore the newest archived deployment"
    )
    parser.add_argument(
        "--models",
        nargs="+",
        choices=VERSIONS,
        default=sorted(modeling.MODELS),
        help="the model versions to choose among (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    versions = sorted(set(args.models))
    if len(versions) < 2 and not args.rollback:
        parser.error("--models needs at least two different versions to choose among")
    layout = Layout(args.base_dir)
    return rollback(layout) if args.rollback else deploy(layout, versions)


if __name__ == "__main__":
    common.exit_stage(main)
