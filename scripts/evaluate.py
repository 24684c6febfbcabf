#!/usr/bin/env python3
"""Stages evaluate_model_v1 / _v2 / _v3: score one trained model on the test split.

Reads   BASE_DIR/staging/model/trained_model_<v1|v2|v3>.pkl, staging/split_data/X_test.csv,
        y_test.csv (and y_train.csv and loan_data.csv for the provenance record); for v3 (the
        model search's winner, dag/tune.dag) also staging/search/selection.json
Writes  BASE_DIR/staging/metrics/model_metrics_<v1|v2|v3>.json

The metrics file holds the original system's keys ("Model name", "Accuracy", "Precision", "Recall",
"F1 Score") plus the confusion matrix and a provenance record (input hash and rows, parameters,
library versions, git commit, host). No timestamp: the same inputs give a byte-identical file.
For v3 the file also holds "candidate": the winner's id, family, parameters and CV score (mean
and spread), from the selection that wrote the model (its sha256 must match the model file).
"""

from __future__ import annotations

from pathlib import Path

from loanpipe import errors
from loanpipe.config import Layout
from loanpipe.errors import PipelineError
from loanpipe.stages import candidates, common, csvfiles, modeling
from loanpipe.stages.common import log

VERSIONS = sorted([*modeling.MODELS, candidates.VERSION])


def search_winner(layout: Layout, model_path: Path) -> tuple[str, dict]:
    """(model name, candidate record) of the search's winner, checked against the model file."""
    path = candidates.selection_path(layout.base)
    selection = common.read_json(path, "model selection")
    winner = selection.get("winner") if isinstance(selection, dict) else None
    if not isinstance(winner, dict) or "candidate" not in winner:
        raise PipelineError(path, "holds no winner")
    if selection.get("model_sha256") != common.sha256_file(model_path):
        raise PipelineError(
            path, f"describes another model than {model_path.name}: rerun select_model"
        )
    record = {
        key: winner.get(key)
        for key in ("candidate", "family", "params", "mean", "std", "fold_scores", "rank")
    }
    record["scoring"] = selection.get("scoring")
    record["folds"] = selection.get("folds")
    record["candidates_ranked"] = len(selection.get("leaderboard") or [])
    return f"{winner.get('model_name')} ({winner['candidate']})", record


def main(argv: list[str] | None = None) -> int:
    parser = common.stage_parser(__doc__)
    parser.add_argument("--model", choices=VERSIONS, required=True)
    args = parser.parse_args(argv)

    layout = Layout(args.base_dir)
    model_path = layout.trained_model(args.model)
    y_path = layout.split_csv("y_test")
    x_table = csvfiles.read_in_background(layout.split_csv("X_test"), "test features")
    y_table = csvfiles.read_in_background(y_path, "test labels")
    train_table = csvfiles.read_in_background(layout.split_csv("y_train"), "training labels")
    model = common.load_model(model_path)  # imports scikit-learn while the CSV files are parsed
    x_test, y_test = csvfiles.as_frame(x_table()), csvfiles.as_frame(y_table())
    if len(x_test) != len(y_test) or len(y_test.columns) != 1:
        raise PipelineError(
            y_path, "does not match X_test.csv (row count or a single label column)"
        )
    try:
        features = modeling.prepare_features(x_test, *modeling.model_columns(model))
    except KeyError as exc:
        raise PipelineError(
            layout.split_csv("X_test"), f"lacks the model's column(s) {exc}"
        ) from None
    del x_test
    common.release_memory()
    with modeling.quiet_unknown_categories():
        predicted = model.predict(features)

    candidate = None
    if args.model == candidates.VERSION:
        name, candidate = search_winner(layout, model_path)
    else:
        name = modeling.MODELS[args.model]
    metrics = modeling.compute_metrics(y_test.iloc[:, 0].to_numpy(), predicted, name)
    train_rows = train_table().num_rows
    classifier = model.named_steps["classifier"]
    parameters = {
        "model": args.model,
        "target": str(y_test.columns[0]),
        "classifier": type(classifier).__name__,
        "classifier_params": {
            key: value
            for key, value in sorted(classifier.get_params(deep=False).items())
            if isinstance(value, str | int | float | bool | type(None))
        },
        "train_rows": train_rows,
        "test_rows": len(y_test),
    }
    if candidate is not None:
        metrics["candidate"] = candidate
    metrics.update(
        {
            "model_version": args.model,
            "test_rows": len(y_test),
            "provenance": common.provenance(
                layout.raw_csv,
                train_rows + len(y_test),
                parameters,
                common.recorded_input_sha256(layout),
            ),
        }
    )
    common.write_json(metrics, layout.metrics(args.model))
    summary = ", ".join(f"{key} {metrics[key]:.4f}" for key in modeling.METRIC_KEYS)
    log(f"{name}: {summary} -> {layout.metrics(args.model)}")
    return errors.EXIT_OK


if __name__ == "__main__":
    common.exit_stage(main)
