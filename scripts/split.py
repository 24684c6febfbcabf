#!/usr/bin/env python3
"""Stage train_test_split: split the processed rows into training and test sets.

Reads   BASE_DIR/staging/split_data/processed_data.csv
Writes  BASE_DIR/staging/split_data/X_train.csv, y_train.csv, X_test.csv, y_test.csv

An 80/20 random split with a fixed seed (SEED.md: random_state=42). X files keep the raw feature
columns, so the test rows double as raw loan applications for the prediction stage.
"""

from __future__ import annotations

import sys

import loanlib
from loanlib import Layout, PipelineError, log


def main(argv: list[str] | None = None) -> int:
    from sklearn.model_selection import train_test_split

    parser = loanlib.stage_parser(__doc__)
    parser.add_argument("--target", default=loanlib.DEFAULT_TARGET, help="default: %(default)s")
    parser.add_argument(
        "--test-size", type=float, default=loanlib.DEFAULT_TEST_SIZE, help="default: %(default)s"
    )
    parser.add_argument(
        "--seed", type=int, default=loanlib.DEFAULT_SEED, help="default: %(default)s"
    )
    args = parser.parse_args(argv)
    if not 0 < args.test_size < 1:
        parser.error("--test-size must be between 0 and 1")

    layout = Layout(args.base_dir)
    source = layout.processed_csv
    frame = loanlib.read_csv(source, "processed data")
    if args.target not in frame.columns:
        raise PipelineError(source, f"target column '{args.target}' not found")
    # data_processing refuses these for loan_data.csv with the default split; this catches
    # other --test-size/--seed values and a processed file written by something else.
    if len(frame) < loanlib.MIN_ROWS:
        raise PipelineError(
            source, f"too few rows to split: {len(frame)} (need at least {loanlib.MIN_ROWS})"
        )
    features = frame.drop(columns=[args.target])
    target = frame[[args.target]]
    x_train, x_test, y_train, y_test = train_test_split(
        features, target, test_size=args.test_size, random_state=args.seed
    )
    for name, part in (("training", y_train), ("test", y_test)):
        if part[args.target].nunique() < 2:
            raise PipelineError(
                source,
                f"too few rows to split: the {name} split of {len(frame)} rows lacks one of the "
                "classes 0 and 1",
            )
    for name, part in (
        ("X_train", x_train),
        ("y_train", y_train),
        ("X_test", x_test),
        ("y_test", y_test),
    ):
        loanlib.write_csv(part, layout.split_csv(name))
    log(
        f"split {len(frame)} rows: {len(x_train)} training, {len(x_test)} test "
        f"-> {layout.split_dir}"
    )
    return loanlib.EXIT_OK


if __name__ == "__main__":
    sys.exit(loanlib.run_stage(main))
