#!/usr/bin/env python3
"""Stage loan_prediction: score raw loan applications with the deployed model.

Reads   BASE_DIR/model/deployed_model.pkl and its manifest deployed_model.json,
        the applications: --input, default BASE_DIR/staging/split_data/X_test.csv
Writes  BASE_DIR/predictions/predictions.csv (or --output): row_id, predicted_class,
        probability_positive (probability of class 1), then with --keep-columns the input's
        other columns (make predict passes it)

row_id is the --id-column, else the input's ID-like column (application_id, id, ...; the first
one) when it has one, else the row's position in the input.

Input rows are raw applications, the columns of loan_data.csv (a target column is ignored). A
missing value is imputed and a category never seen in training is encoded as all zeros; text or
inf in a column the model reads as numbers is refused (exit 65), naming the line. The model is
loaded only when its sha256 matches the deployment manifest.
"""

from __future__ import annotations

from pathlib import Path

from loanpipe import errors
from loanpipe.config import Layout
from loanpipe.errors import PipelineError
from loanpipe.stages import common, csvfiles, deployments, modeling
from loanpipe.stages.common import log


def verified_model(layout: Layout):
    """Load the deployed model after checking its hash against the manifest (both read from one
    deployment's folder)."""
    model, manifest_file = deployments.deployed_pair(layout)
    manifest = common.read_json(manifest_file, "deployment manifest")
    common.check_readable(model, "deployed model")
    actual = common.sha256_file(model)
    if not isinstance(manifest, dict) or manifest.get("sha256") != actual:
        raise PipelineError(
            model,
            f"sha256 {actual[:12]}... does not match the deployment manifest "
            f"{manifest_file.name}; refusing to load it (redeploy or `make rollback`)",
        )
    return manifest, common.load_model(model)


def main(argv: list[str] | None = None) -> int:
    import pandas as pd

    parser = common.stage_parser(__doc__)
    parser.add_argument("--input", type=Path, help="CSV of raw applications (default: X_test.csv)")
    parser.add_argument("--output", type=Path, help="default: BASE_DIR/predictions/predictions.csv")
    parser.add_argument(
        "--id-column",
        help="column to use as row_id (default: the input's ID-like column, e.g. application_id, "
        "else the row's position in the input)",
    )
    parser.add_argument(
        "--keep-columns",
        action="store_true",
        help="carry the input's columns into the output, after the scores",
    )
    args = parser.parse_args(argv)

    layout = Layout(args.base_dir)
    source = args.input or layout.split_csv("X_test")
    table = csvfiles.read_in_background(source, "applications to score")
    manifest, model = verified_model(layout)  # imports scikit-learn while the CSV is parsed
    numeric, categorical = modeling.model_columns(model)
    # Text (or inf) in a column the model reads as numbers is refused, naming its line: read as a
    # missing value, it would be imputed and the row scored as if nothing were wrong.
    rows = csvfiles.as_frame(csvfiles.check_numbers(table(), source, numeric=tuple(numeric)))
    if args.id_column and args.id_column not in rows.columns:
        raise PipelineError(source, f"--id-column '{args.id_column}' not found")
    id_column = args.id_column or next(iter(common.id_like_columns(list(rows.columns))), None)
    try:
        features = modeling.prepare_features(rows, numeric, categorical)
    except KeyError as exc:
        raise PipelineError(source, f"lacks the model's column(s) {exc}") from None
    row_id = rows[id_column].to_numpy() if id_column else range(len(rows))
    carried = rows if args.keep_columns else None
    del rows
    common.release_memory()
    with modeling.quiet_unknown_categories():
        probabilities = model.predict_proba(features)
    # The class predict() would give (the most probable; ties to the first class, as both
    # LogisticRegression and the trees break them), without preprocessing the rows twice.
    predicted = model.classes_[probabilities.argmax(axis=1)]
    probability = probabilities[:, list(model.classes_).index(1)]
    result = pd.DataFrame(
        {
            "row_id": row_id,
            "predicted_class": predicted.astype(int),
            "probability_positive": probability.round(6),
        }
    )
    if carried is not None:
        kept = [c for c in carried.columns if c not in result.columns and c != id_column]
        result = pd.concat([result, carried[kept].reset_index(drop=True)], axis=1)
    output = args.output or layout.predictions
    csvfiles.write_csv(result, output)
    log(
        f"scored {len(result)} rows"
        + (f" (row_id: column {id_column})" if id_column else "")
        + f" with {manifest.get('model_name')} "
        f"({manifest.get('candidate')}): "
        f"{int(result.predicted_class.sum())} predicted positive -> {output}"
    )
    return errors.EXIT_OK


if __name__ == "__main__":
    common.exit_stage(main)
