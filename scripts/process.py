#!/usr/bin/env python3
"""Stage data_processing: validate and clean the raw loan applications.

Reads   BASE_DIR/loan_data.csv (or --input; plain or gzip-compressed CSV)
Writes  BASE_DIR/staging/split_data/processed_data.csv (no index column)

Everything that can be checked against the user's file is checked here, and a refusal names
loan_data.csv (and a line where there is one): readable, comma-separated, a header and rows, unique
column names, every row with as many fields as the header; the target must hold the two labels 0
and 1; a numeric column must not hold text nor inf/-inf (loanlib.check_numbers draws the line);
no column may be empty in every row; enough labelled rows that the default 80/20 split (seed 42)
leaves both classes in the training and in the test set. ID-like columns (id, *_id, Unnamed: 0...)
are dropped so they never become features; rows without a target are dropped. Imputation and
encoding are not done here: they are fitted on the training rows only, inside the model pipeline
(see scripts/train.py). Nothing is written unless every check passes.
"""

from __future__ import annotations

import sys
from pathlib import Path

import loanlib
from loanlib import Layout, PipelineError, log

EXACT_SPLIT_CHECK = 1000


def parse_args(argv: list[str] | None):
    parser = loanlib.stage_parser(__doc__)
    parser.add_argument("--input", type=Path, help="raw CSV (default: BASE_DIR/loan_data.csv)")
    parser.add_argument(
        "--target", default=loanlib.DEFAULT_TARGET, help="target column (default: %(default)s)"
    )
    parser.add_argument(
        "--drop-columns",
        default="auto",
        help="comma-separated columns to drop, 'auto' for ID-like names (id, *_id, Unnamed: 0), "
        "'' for none (default: %(default)s)",
    )
    return parser.parse_args(argv)


def clean_target(frame, target: str, path: Path):
    """Rows with a 0/1 target, the target as int; PipelineError for anything else."""
    import pandas as pd

    if target not in frame.columns:
        raise PipelineError(
            path, f"target column '{target}' not found (columns: {', '.join(frame.columns)})"
        )
    labels = frame[target]
    if pd.api.types.is_bool_dtype(labels.dtype):
        labels = labels.astype("int64")
    present = labels.dropna()
    if not pd.api.types.is_numeric_dtype(present.dtype):
        examples = ", ".join(repr(v) for v in present.astype(str).unique()[:3])
        raise PipelineError(
            path, f"target column '{target}' must hold 0/1 labels, found {examples}"
        )
    classes = sorted(present.unique().tolist())
    if len(classes) < 2:
        raise PipelineError(
            path, f"target column '{target}' has a single class {classes}; need 0 and 1"
        )
    if classes != [0, 1]:
        shown = ", ".join(str(c) for c in classes[:6])
        raise PipelineError(
            path, f"target column '{target}' must be binary 0/1, found classes {shown}"
        )
    dropped = int(labels.isna().sum())
    if dropped:
        log(f"dropping {dropped} row(s) without a '{target}' value")
    frame = frame.loc[labels.notna()].copy()
    frame[target] = labels[labels.notna()].astype("int64")
    return frame


def check_splittable(labels, path: Path) -> None:
    """Refuse too few labelled rows for the default split, or a class the split would leave out.

    The exact split (scikit-learn's, the same arguments as split.py's defaults) is computed only
    when a class has fewer than EXACT_SPLIT_CHECK rows; above that a class missing from one side
    of a random 80/20 split is out of reach (probability below 0.8**1000).
    """
    import numpy as np

    rows = len(labels)
    if rows < loanlib.MIN_ROWS:
        raise PipelineError(
            path,
            f"too few rows to split: {rows} row(s) with a label (need at least {loanlib.MIN_ROWS})",
        )
    counts = np.bincount(labels.to_numpy(), minlength=2)
    if counts.min() >= EXACT_SPLIT_CHECK:
        return
    from sklearn.model_selection import train_test_split

    train, test = train_test_split(
        labels.to_numpy(), test_size=loanlib.DEFAULT_TEST_SIZE, random_state=loanlib.DEFAULT_SEED
    )
    for name, part in (("training", train), ("test", test)):
        lacking = sorted({0, 1} - set(np.unique(part).tolist()))
        if lacking:
            raise PipelineError(
                path,
                f"too few rows to split: the {name} set of the 80/20 split of {rows} rows would "
                f"have no row of class {lacking[0]} (class counts: 0: {counts[0]}, 1: {counts[1]})",
            )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    layout = Layout(args.base_dir)
    source = args.input or layout.raw_csv
    frame = loanlib.read_csv(source, "raw loan data")
    log(f"read {len(frame)} rows, {len(frame.columns)} columns from {source}")

    frame = clean_target(frame, args.target, source)
    if args.drop_columns == "auto":
        drop = loanlib.id_like_columns([c for c in frame.columns if c != args.target])
    else:
        drop = [c.strip() for c in args.drop_columns.split(",") if c.strip()]
        unknown = [c for c in drop if c not in frame.columns]
        if unknown:
            raise PipelineError(
                source, f"--drop-columns names unknown column(s): {', '.join(unknown)}"
            )
        if args.target in drop:
            raise PipelineError(source, f"--drop-columns would drop the target '{args.target}'")
    if drop:
        log(f"dropping ID-like column(s): {', '.join(drop)}")
        frame = frame.drop(columns=drop)

    empty = [c for c in frame.columns if frame[c].isna().all()]
    if empty:
        raise PipelineError(source, f"column(s) empty in every row: {', '.join(empty)}")
    if len(frame.columns) < 2:
        raise PipelineError(source, "no feature columns besides the target")
    frame = loanlib.check_numbers(frame, source, skip=(args.target,))
    check_splittable(frame[args.target], source)

    features = frame.drop(columns=[args.target])
    numeric, categorical = loanlib.split_columns(features)
    missing = int(features.isna().sum().sum())
    log(
        f"{len(numeric)} numeric, {len(categorical)} categorical features; {missing} missing values"
    )
    loanlib.write_csv(frame, layout.processed_csv)
    log(f"wrote {layout.processed_csv}")
    return loanlib.EXIT_OK


if __name__ == "__main__":
    sys.exit(loanlib.run_stage(main))
