#!/usr/bin/env python3
"""Stages evaluate_model_v1 / evaluate_model_v2: score one trained model on the test split.

Reads   BASE_DIR/staging/model/trained_model_<v1|v2>.pkl, staging/split_data/X_test.csv, y_test.csv
        (and y_train.csv and loan_data.csv for the provenance record)
Writes  BASE_DIR/staging/metrics/model_metrics_<v1|v2>.json

The metrics file holds SEED.md's keys ("Model name", "Accuracy", "Precision", "Recall",
"F1 Score") plus the confusion matrix and a provenance record (input hash and rows, parameters,
library versions, git commit, host). No timestamp: the same inputs give a byte-identical file.
"""

from __future__ import annotations

import loanlib
from loanlib import Layout, PipelineError, log


def main(argv: list[str] | None = None) -> int:
    parser = loanlib.stage_parser(__doc__)
    parser.add_argument("--model", choices=sorted(loanlib.MODELS), required=True)
    args = parser.parse_args(argv)

    layout = Layout(args.base_dir)
    model_path = layout.trained_model(args.model)
    model = loanlib.load_model(model_path)
    x_test = loanlib.read_csv(layout.split_csv("X_test"), "test features")
    y_path = layout.split_csv("y_test")
    y_test = loanlib.read_csv(y_path, "test labels")
    if len(x_test) != len(y_test) or len(y_test.columns) != 1:
        raise PipelineError(
            y_path, "does not match X_test.csv (row count or a single label column)"
        )
    try:
        features = loanlib.prepare_features(x_test, *loanlib.model_columns(model))
    except KeyError as exc:
        raise PipelineError(
            layout.split_csv("X_test"), f"lacks the model's column(s) {exc}"
        ) from None
    del x_test
    loanlib.release_memory()
    with loanlib.quiet_unknown_categories():
        predicted = model.predict(features)

    name = loanlib.MODELS[args.model]
    metrics = loanlib.compute_metrics(y_test.iloc[:, 0].to_numpy(), predicted, name)
    train_rows = loanlib.read_table(layout.split_csv("y_train"), "training labels").num_rows
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
    metrics.update(
        {
            "model_version": args.model,
            "test_rows": len(y_test),
            "provenance": loanlib.provenance(layout.raw_csv, train_rows + len(y_test), parameters),
        }
    )
    loanlib.write_json(metrics, layout.metrics(args.model))
    summary = ", ".join(f"{key} {metrics[key]:.4f}" for key in loanlib.METRIC_KEYS)
    log(f"{name}: {summary} -> {layout.metrics(args.model)}")
    return loanlib.EXIT_OK


if __name__ == "__main__":
    loanlib.exit_stage(main)
