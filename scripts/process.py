#!/usr/bin/env python3
"""Stage data_processing: validate and clean the raw loan applications.

Reads   BASE_DIR/loan_data.csv (or --input; plain or gzip-compressed CSV)
Writes  BASE_DIR/staging/split_data/processed_data.csv (no index column; the input copied byte for
        byte when nothing needed cleaning: rows, columns, types, encoding and line endings kept)
        and processed_data.source.json beside it (the input's name, sha256 and size)

Everything that can be checked against the user's file is checked here, and a refusal names
loan_data.csv (and a line where there is one): readable, comma-separated, a header and rows, unique
column names, every row with as many fields as the header; the target must hold the two labels 0
and 1; a numeric column must not hold text nor inf/-inf (csvfiles.check_numbers draws the line);
no column may be empty in every row; enough labelled rows that the default 80/20 split (seed 42)
leaves both classes in the training and in the test set. ID-like columns (id, *_id, Unnamed: 0...)
are dropped so they never become features; rows without a target are dropped. Imputation and
encoding are not done here: they are fitted on the training rows only, inside the model pipeline
(see scripts/train.py). Nothing is written unless every check passes.
"""

from __future__ import annotations

from pathlib import Path

from loanpipe import errors
from loanpipe.config import Layout
from loanpipe.errors import PipelineError
from loanpipe.stages import common, csvfiles
from loanpipe.stages.common import log


def parse_args(argv: list[str] | None):
    parser = common.stage_parser(__doc__)
    parser.add_argument("--input", type=Path, help="raw CSV (default: BASE_DIR/loan_data.csv)")
    parser.add_argument(
        "--target", default=common.DEFAULT_TARGET, help="target column (default: %(default)s)"
    )
    parser.add_argument(
        "--drop-columns",
        default="auto",
        help="comma-separated columns to drop, 'auto' for ID-like names (id, *_id, Unnamed: 0), "
        "'' for none (default: %(default)s)",
    )
    return parser.parse_args(argv)


def clean_target(table, target: str, path: Path):
    """(table, records): rows with a 0/1 target, the target as int64, and each kept row's record
    number in ``path`` (None when every row was kept); PipelineError for anything else."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if target not in table.column_names:
        raise PipelineError(
            path, f"target column '{target}' not found (columns: {', '.join(table.column_names)})"
        )
    labels = table.column(target)
    if pa.types.is_boolean(labels.type):
        labels = labels.cast(pa.int64())
    present = pc.unique(labels.drop_null())
    if not (pa.types.is_integer(labels.type) or pa.types.is_floating(labels.type)):
        examples = ", ".join(repr(str(v)) for v in present.to_pylist()[:3])
        raise PipelineError(
            path, f"target column '{target}' must hold 0/1 labels, found {examples}"
        )
    classes = sorted(present.to_pylist())
    if len(classes) < 2:
        raise PipelineError(
            path, f"target column '{target}' has a single class {classes}; need 0 and 1"
        )
    if classes != [0, 1]:
        shown = ", ".join(f"{c:g}" if isinstance(c, float) else str(c) for c in classes[:6])
        raise PipelineError(
            path, f"target column '{target}' must be binary 0/1, found classes {shown}"
        )
    records = None
    if labels.null_count:
        log(f"dropping {labels.null_count} row(s) without a '{target}' value")
        valid = pc.is_valid(labels)
        records = pc.indices_nonzero(valid)
        table, labels = table.filter(valid), labels.filter(valid)
    index = table.column_names.index(target)
    return table.set_column(index, target, labels.cast(pa.int64())), records


def check_splittable(labels, path: Path) -> None:
    """Refuse too few labelled rows for the default split, or a class it would leave out of the
    training or the test set (the split is split.py's with its defaults: 80/20, seed 42)."""
    import pyarrow.compute as pc

    rows = len(labels)
    if rows < common.MIN_ROWS:
        raise PipelineError(
            path,
            f"too few rows to split: {rows} row(s) with a label (need at least {common.MIN_ROWS})",
        )
    counts = {c["values"]: c["counts"] for c in pc.value_counts(labels).to_pylist()}
    parts = common.split_rows(rows, common.DEFAULT_TEST_SIZE, common.DEFAULT_SEED)
    for name, part in zip(("training", "test"), parts, strict=True):
        present = pc.unique(labels.take(csvfiles.arrow_indices(part))).to_pylist()
        lacking = sorted({0, 1} - set(present))
        if lacking:
            raise PipelineError(
                path,
                f"too few rows to split: the {name} set of the 80/20 split of {rows} rows would "
                f"have no row of class {lacking[0]} (class counts: 0: {counts.get(0, 0)}, "
                f"1: {counts.get(1, 0)})",
            )


def main(argv: list[str] | None = None) -> int:
    import pyarrow as pa

    args = parse_args(argv)
    layout = Layout(args.base_dir)
    source = args.input or layout.raw_csv
    state = file_state(source)
    table = csvfiles.read_table(source, "raw loan data")
    log(f"read {table.num_rows} rows, {table.num_columns} columns from {source}")

    read_schema = table.schema
    table, records = clean_target(table, args.target, source)
    names = table.column_names
    if args.drop_columns == "auto":
        drop = common.id_like_columns([c for c in names if c != args.target])
    else:
        drop = [c.strip() for c in args.drop_columns.split(",") if c.strip()]
        unknown = [c for c in drop if c not in names]
        if unknown:
            raise PipelineError(
                source, f"--drop-columns names unknown column(s): {', '.join(unknown)}"
            )
        if args.target in drop:
            raise PipelineError(source, f"--drop-columns would drop the target '{args.target}'")
    if drop:
        log(f"dropping ID-like column(s): {', '.join(drop)}")
        table = table.drop_columns(drop)

    empty = [f.name for f in table.schema if table.column(f.name).null_count == table.num_rows]
    if empty:
        raise PipelineError(source, f"column(s) empty in every row: {', '.join(empty)}")
    if table.num_columns < 2:
        raise PipelineError(source, "no feature columns besides the target")
    table = csvfiles.check_numbers(table, source, skip=(args.target,), records=records)
    check_splittable(table.column(args.target), source)

    features = [f for f in table.schema if f.name != args.target]
    numeric = [f for f in features if pa.types.is_integer(f.type) or pa.types.is_floating(f.type)]
    missing = sum(table.column(f.name).null_count for f in features)
    log(
        f"{len(numeric)} numeric, {len(features) - len(numeric)} categorical features; "
        f"{missing} missing values"
    )
    # Nothing cleaned (every row and column kept, no column's type changed, plain LF-terminated
    # UTF-8): the checked file is copied as it is, much faster than writing the table out again.
    # If the file changed while it was read or copied, the table that was checked is written.
    cleaned = records is not None or not table.schema.equals(read_schema)
    if not cleaned and state is not None and file_state(source) == state and is_plain(source):
        digest = common.copy_file(source, layout.processed_csv)
        if file_state(source) == state:
            record_source(layout, source, digest)
            log(f"wrote {layout.processed_csv} (the input as it is: nothing to clean)")
            return errors.EXIT_OK
    csvfiles.write_csv(table, layout.processed_csv)
    record_source(layout, source, common.sha256_file(source))
    log(f"wrote {layout.processed_csv}")
    return errors.EXIT_OK


def record_source(layout: Layout, source: Path, digest: str) -> None:
    """Layout.processed_source: the input's name, sha256 and size, for the provenance of every
    later result (hashed once here instead of again by each stage that reports it)."""
    common.write_json(
        {"input_file": source.name, "input_sha256": digest, "input_bytes": source.stat().st_size},
        layout.processed_source,
    )


def is_plain(path: Path) -> bool:
    """True for a file without gzip compression, byte-order mark or carriage returns: what
    write_csv would write, as far as line endings and encoding go."""
    if csvfiles.is_gzip(path):
        return False
    with path.open("rb") as handle:
        start = handle.read(3)
        if start == b"\xef\xbb\xbf" or b"\r" in start:
            return False
        while chunk := handle.read(1 << 22):
            if b"\r" in chunk:
                return False
    return True


def file_state(path: Path) -> tuple[int, int, int] | None:
    """(inode, size, modification time in ns) of a file, None if it cannot be had."""
    try:
        info = path.stat()
    except OSError:
        return None
    return info.st_ino, info.st_size, info.st_mtime_ns


if __name__ == "__main__":
    common.exit_stage(main)
