#!/usr/bin/env python3
"""Stage train_test_split: split the processed rows into training and test sets.

Reads   BASE_DIR/staging/split_data/processed_data.csv
Writes  BASE_DIR/staging/split_data/X_train.csv, y_train.csv, X_test.csv, y_test.csv

An 80/20 random split with a fixed seed (random_state=42, as the original system). X files keep
the raw feature columns, so the test rows double as raw loan applications for the prediction stage.
"""

from __future__ import annotations

from loanpipe import errors
from loanpipe.config import Layout
from loanpipe.errors import PipelineError
from loanpipe.stages import common, csvfiles
from loanpipe.stages.common import log


def main(argv: list[str] | None = None) -> int:
    parser = common.stage_parser(__doc__)
    parser.add_argument("--target", default=common.DEFAULT_TARGET, help="default: %(default)s")
    parser.add_argument(
        "--test-size", type=float, default=common.DEFAULT_TEST_SIZE, help="default: %(default)s"
    )
    parser.add_argument(
        "--seed", type=int, default=common.DEFAULT_SEED, help="default: %(default)s"
    )
    args = parser.parse_args(argv)
    if not 0 < args.test_size < 1:
        parser.error("--test-size must be between 0 and 1")

    layout = Layout(args.base_dir)
    source = layout.processed_csv
    table = csvfiles.read_table(source, "processed data")
    if args.target not in table.column_names:
        raise PipelineError(source, f"target column '{args.target}' not found")
    rows = table.num_rows
    # data_processing refuses these for loan_data.csv with the default split; this catches
    # other --test-size/--seed values and a processed file written by something else.
    if rows < common.MIN_ROWS:
        raise PipelineError(
            source, f"too few rows to split: {rows} (need at least {common.MIN_ROWS})"
        )
    # scikit-learn's train_test_split, row numbers only: no pandas copy of the data, no import.
    train, test = common.split_rows(rows, args.test_size, args.seed)
    import pyarrow.compute as pc

    train, test = csvfiles.arrow_indices(train), csvfiles.arrow_indices(test)
    labels = table.column(args.target)
    for name, part in (("training", train), ("test", test)):
        if len(pc.unique(labels.take(part))) < 2:
            raise PipelineError(
                source,
                f"too few rows to split: the {name} split of {rows} rows lacks one of the "
                "classes 0 and 1",
            )
    features, target = table.drop_columns([args.target]), table.select([args.target])
    parts = (
        ("X_train", features, train),
        ("y_train", target, train),
        ("X_test", features, test),
        ("y_test", target, test),
    )
    # Two writers: pyarrow formats without holding the GIL, so X_train (the bulk) is written
    # while the other three are; each file is still written atomically on its own.
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=2) as writers:
        written = [
            writers.submit(csvfiles.write_csv, part, layout.split_csv(name), rows=indices)
            for name, part, indices in parts
        ]
    for future in written:
        future.result()  # raises the first writer's error, if any
    log(f"split {rows} rows: {len(train)} training, {len(test)} test -> {layout.split_dir}")
    return errors.EXIT_OK


if __name__ == "__main__":
    common.exit_stage(main)
