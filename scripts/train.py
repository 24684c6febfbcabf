#!/usr/bin/env python3
"""Stages modeling_v1 / modeling_v2: fit one model on the training split.

Reads   BASE_DIR/staging/split_data/X_train.csv, y_train.csv
Writes  BASE_DIR/staging/model/trained_model_<v1|v2>.pkl (joblib)

v1 is StandardScaler + LogisticRegression (Newton-Cholesky solver), v2 StandardScaler +
DecisionTreeClassifier (seeded). Mean imputation of numeric columns and one-hot encoding of
categorical ones (first level dropped) are part of the saved pipeline, fitted on the training rows
only, so the model takes raw rows.
Single-threaded: HTCondor gives the job one CPU.
"""

from __future__ import annotations

from loanpipe import errors
from loanpipe.config import Layout
from loanpipe.stages import common, modeling
from loanpipe.stages.common import log


def main(argv: list[str] | None = None) -> int:
    parser = common.stage_parser(__doc__)
    parser.add_argument("--model", choices=sorted(modeling.MODELS), required=True)
    parser.add_argument(
        "--seed", type=int, default=common.DEFAULT_SEED, help="default: %(default)s"
    )
    args = parser.parse_args(argv)

    layout = Layout(args.base_dir)
    features, labels, numeric, categorical = modeling.read_training(layout)
    model = modeling.build_model(args.model, numeric, categorical, args.seed)
    log(
        f"fitting {modeling.MODELS[args.model]} on {len(features)} rows "
        f"({len(numeric)} numeric, {len(categorical)} categorical columns)"
    )
    # The pipeline's two steps fitted one after the other (what Pipeline.fit does), so that the
    # raw rows are let go before the classifier's fit: at 10M rows 0.5 GiB off its peak.
    preprocess, classifier = model.named_steps.values()
    matrix = preprocess.fit_transform(features, labels)
    del features
    common.release_memory()
    classifier.fit(matrix, labels)
    common.save_model(model, layout.trained_model(args.model))
    log(f"wrote {layout.trained_model(args.model)}")
    return errors.EXIT_OK


if __name__ == "__main__":
    common.exit_stage(main)
