#!/usr/bin/env python3
"""Stage deploy_best_model: deploy the best of the trained models.

Reads   BASE_DIR/staging/metrics/model_metrics_<version>.json of each version in --models
        (default v1 v2; dag/tune.dag passes v1 v2 v3),
        BASE_DIR/staging/model/trained_model_<winner>.pkl
Writes  a new deployment BASE_DIR/model/deployments/<id>/ (the model, its manifest
        deployed_model.json: sha256, the candidate, the rule that chose it, its metrics, the time;
        `previous`: the id of the deployment it replaces), then switches BASE_DIR/model/current
        to it in one rename: BASE_DIR/model/deployed_model.pkl and .json are links through it
        (loanpipe.stages.deployments), so model, manifest and history change together or not at
        all, whatever fails.

The rule (the original system's): the higher precision wins; on a tie the higher F1; on a full
tie the earlier version (v1). Only the versions named by --models take part: a metrics file
another DAG left behind (say model_metrics_v3.json of an earlier tune run) never sways this
one. The current deployment is kept untouched when a metrics file is missing, unparsable or
holds a value that is not a finite number in [0, 1]. --rollback switches back to the deployment
the current one replaced; run again, it walks further back through the history.
"""

from __future__ import annotations

from loanpipe import errors
from loanpipe.config import Layout
from loanpipe.errors import PipelineError
from loanpipe.stages import common, deployments, modeling
from loanpipe.stages.common import log

VERSIONS = ("v1", "v2", "v3")  # v3: the model search's winner (dag/tune.dag)


def rollback(layout: Layout) -> int:
    deployments.adopt(layout)
    now = deployments.current(layout)
    if now is None:
        raise PipelineError(
            layout.deployed_model, "nothing is deployed: no deployment to roll back"
        )
    earlier = deployments.by_id(layout, now.previous_id())
    while earlier is not None and not earlier.intact():
        log(f"skipped {earlier.id}: its model does not match its manifest's sha256")
        earlier = deployments.by_id(layout, earlier.previous_id())
    if earlier is None:
        raise PipelineError(
            now.folder, "no earlier deployment to roll back to (this is the first one)"
        )
    deployments.switch(layout, earlier)
    log(f"rolled back from {now.describe()} to {earlier.describe()}")
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
    manifest = {
        "model_file": deployments.MODEL,
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
    deployments.adopt(layout)
    now = deployments.current(layout)
    name = f"{manifest['model_name']} ({winner})"
    if now is not None and now.intact() and same_decision(now.manifest(), manifest):
        log(f"{name} is already deployed as {now.id}: nothing changed")
        return errors.EXIT_OK
    # The same model with other metrics (evaluated again) replaces the current deployment's
    # record without adding to the history; a new model goes on top of it.
    refresh = now is not None and now.intact() and now.manifest().get("sha256") == digest
    previous = now.previous_id() if refresh and now is not None else (now.id if now else None)
    found = deployments.reusable(layout, digest, previous)
    if found is None or not same_decision(found.manifest(), manifest):
        found = deployments.create(
            layout, deployments.new_id(layout, digest), source, manifest, previous
        )
    else:
        log(f"reusing {found.id}, written by an earlier attempt")
    deployments.switch(layout, found)
    why = {
        "precision": f"higher precision (by {margin['value']:.4f})",
        "f1": f"equal precision, higher F1 (by {margin['value']:.4f})",
        "tie": f"equal precision and F1: the earlier version ({winner}) wins a full tie",
    }[rule]
    replaced = f"; replaces {now.id}" if now is not None and not refresh else ""
    verb = "manifest refreshed for" if refresh else "deployed"
    log(f"{verb} {name} as {found.id}: {why} -> {layout.deployed_model}{replaced}")
    return errors.EXIT_OK


def same_decision(old: dict, new: dict) -> bool:
    """Whether two manifests record the same model and decision (the time aside)."""
    ignored = ("deployed_at",)
    return {k: v for k, v in old.items() if k not in ignored} == {
        k: v for k, v in new.items() if k not in ignored
    }


def main(argv: list[str] | None = None) -> int:
    parser = common.stage_parser(__doc__)
    parser.add_argument(
        "--rollback",
        action="store_true",
        help="switch back to the deployment the current one replaced",
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
