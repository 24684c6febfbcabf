"""CSV files of the loan-approval pipeline: reading with every check a user's file needs, and
writing (atomically, through common.atomic_output). pyarrow does the parsing and the writing.

A refusal is a PipelineError naming the file and, where there is one, the line as an
editor numbers it: ragged rows, text or inf in a numeric column, not UTF-8, a header only.
"""

from __future__ import annotations

import csv
import gzip
import io
import itertools
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from loanpipe.errors import PipelineError
from loanpipe.stages.common import atomic_output, check_readable

# Values read as missing (pandas' default set): an empty field, NA, N/A, NaN, NULL, None, ...
NA_MARKERS = (
    "", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN",
    "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null",
)  # fmt: skip
# A text column is a numeric column with junk in it (refused) when more than half of its
# non-missing values are numbers and those numbers take at least this many distinct values;
# fewer distinct numbers ("0", "1", "2", "3+") are codes of a categorical column.
MIN_DISTINCT_NUMBERS = 10
# Rows per slice when write_csv writes chosen rows of a table (a slice is copied, then written).
WRITE_SLICE_ROWS = 500_000
# Bytes per block of pyarrow's CSV reader.
CSV_BLOCK_BYTES = 4 << 20
# Files up to this size are parsed by pyarrow's whole-file reader, on every core (0.15 s instead
# of 0.4 s for 80 MB, 1M rows); larger ones by its streaming reader, one block at a time, which
# keeps the peak lower (at 10M rows, the whole-file reader holds every parsed block at once).
WHOLE_FILE_BYTES = 256 << 20


def write_csv(frame: Any, path: Path, rows: Any = None) -> None:
    """Write a DataFrame (without its index) or a pyarrow Table as CSV, atomically.

    pyarrow's writer: numbers in their shortest form that reads back to the same value (71948.0
    is written 71948), text in double quotes, a missing value as an empty field. The header is
    quoted only where a name needs it. ``rows`` (a pyarrow table only): the row numbers to
    write, in that order, taken a slice at a time so that no copy of the whole part is made.
    """
    import pyarrow as pa
    from pyarrow import csv as pacsv

    table = (
        frame if isinstance(frame, pa.Table) else pa.Table.from_pandas(frame, preserve_index=False)
    )
    header = io.StringIO()
    csv.writer(header, lineterminator="\n").writerow(table.column_names)
    options = pacsv.WriteOptions(include_header=False, quoting_style="needed")
    with atomic_output(path, "wb") as handle:
        handle.write(header.getvalue().encode())
        if rows is None:
            if table.num_rows:
                pacsv.write_csv(table, handle, options)
            return
        for start in range(0, len(rows), WRITE_SLICE_ROWS):
            part = table.take(rows.slice(start, WRITE_SLICE_ROWS))
            pacsv.write_csv(part, handle, options)


def _open_text(path: Path) -> io.TextIOBase:
    """Open a plain or gzip-compressed CSV as text, dropping a UTF-8 byte-order mark."""
    if is_gzip(path):
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8-sig", newline="")
    return path.open("r", encoding="utf-8-sig", newline="")


def is_gzip(path: Path) -> bool:
    """Whether the file starts with gzip's magic bytes (read_table decompresses such files)."""
    with path.open("rb") as probe:
        return probe.read(2) == b"\x1f\x8b"


def _read_header(path: Path) -> list[str]:
    """The header's column names (stripped), after the checks a header can fail."""
    try:
        with _open_text(path) as handle:
            first = handle.readline(1 << 20)
            more = bool(first) and any(line.strip() for line in itertools.islice(handle, 1000))
    except (UnicodeDecodeError, EOFError, gzip.BadGzipFile, zlib.error) as exc:
        problem = "is not UTF-8 text" if isinstance(exc, UnicodeDecodeError) else str(exc)
        raise PipelineError(path, f"cannot read it: {problem}") from None
    if not first.strip():
        raise PipelineError(path, "is empty")
    header = [name.strip() for name in next(csv.reader([first]))]
    if len(header) == 1:
        for delimiter, name in ((";", "semicolons"), ("\t", "tabs"), ("|", "pipes")):
            if delimiter in first:
                raise PipelineError(
                    path,
                    f"columns are separated by {name}, expected commas (a comma-separated CSV)",
                )
    if any(not name for name in header):
        raise PipelineError(path, "the header has an empty column name")
    duplicates = sorted({name for name in header if header.count(name) > 1})
    if duplicates:
        raise PipelineError(path, f"duplicate column names: {', '.join(duplicates)}")
    if not more:
        raise PipelineError(path, "has a header but no data rows")
    return header


def line_of_record(path: Path, index: int) -> int:
    """The line number (as an editor shows it: the header is line 1) where data record ``index``
    (0-based, blank lines not counted) starts. Reads the file again: for error messages only."""
    with _open_text(path) as handle:
        reader = csv.reader(handle)
        next(reader, None)
        end = reader.line_num
        seen = -1
        for row in reader:
            start, end = end + 1, reader.line_num
            if row:
                seen += 1
                if seen == index:
                    return start
    return index + 2


def _first_ragged_line(path: Path, fields: int) -> tuple[int | None, int]:
    """(line, field count) of the first record without ``fields`` fields, for error messages."""
    with _open_text(path) as handle:
        reader = csv.reader(handle)
        next(reader, None)
        end = reader.line_num
        for row in reader:
            start, end = end + 1, reader.line_num
            if row and len(row) != fields:
                return start, len(row)
    return None, 0


def read_csv(path: Path, what: str = "CSV file") -> Any:
    """read_table's table as a pandas DataFrame (text columns categorical: see as_frame)."""
    return as_frame(read_table(path, what))


def as_frame(table: Any) -> Any:
    """A pyarrow Table from read_table as a pandas DataFrame, as read_csv gives it.

    Text columns become pandas categoricals (dictionary-encoded by Arrow): one Python string per
    distinct value, and the models' one-hot encoding maps codes instead of hashing every cell
    (0.2 s instead of 0.45 s for 800,000 training rows, and a fraction of the memory).
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    for index, field in enumerate(table.schema):
        if pa.types.is_string(field.type) or pa.types.is_large_string(field.type):
            table = table.set_column(index, field.name, pc.dictionary_encode(table.column(index)))
    return table.to_pandas(split_blocks=True)


def read_in_background(path: Path, what: str = "CSV file") -> Callable[[], Any]:
    """Start ``read_table(path, what)`` on a thread; return a function that waits for the table
    (raising whatever read_table raised). pyarrow parses without holding the GIL, so the stage
    reads its input while its main thread imports scikit-learn or unpickles a model.

    pyarrow is imported here, on the calling thread, first: the reading thread then imports
    nothing the main thread may be importing at the same time.
    """
    from concurrent.futures import ThreadPoolExecutor

    import pyarrow.csv  # noqa: F401

    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"read {path.name}")
    future = executor.submit(read_table, path, what)
    executor.shutdown(wait=False)
    return future.result


def read_table(path: Path, what: str = "CSV file") -> Any:
    """Read a CSV file into a pyarrow Table: one clear PipelineError for each way it can be bad.

    pyarrow's multithreaded reader does the parsing; every row must have as many fields as the
    header (a truncated last line is refused, naming its line). Empty fields and the markers in
    NA_MARKERS are missing values. Text stays text (no dates are parsed); a column empty in every
    row is a float column. Accepts a UTF-8 byte-order mark, CRLF line endings and gzip
    compression (detected by content). A missing or unreadable file raises OSError (retried).
    """
    import pyarrow as pa
    from pyarrow import csv as pacsv

    check_readable(path, what)
    header = _read_header(path)
    bad_rows: list[Any] = []

    def invalid_row(row: Any) -> str:
        bad_rows.append(row)
        return "error"

    def source() -> Any:
        if is_gzip(path):
            with gzip.open(path, "rb") as handle:
                return pa.BufferReader(handle.read())
        return str(path)

    def read(column_types: dict[str, Any] | None = None) -> Any:
        blocks = pacsv.ReadOptions(block_size=CSV_BLOCK_BYTES)
        parse = pacsv.ParseOptions(invalid_row_handler=invalid_row)
        convert = pacsv.ConvertOptions(
            null_values=list(NA_MARKERS), strings_can_be_null=True, column_types=column_types
        )
        if path.stat().st_size <= WHOLE_FILE_BYTES:
            return pacsv.read_csv(source(), blocks, parse, convert)
        try:
            # Streaming: column types from the first block, one block parsed at a time (the
            # whole-file reader keeps every parsed block until it has settled the types).
            reader = pacsv.open_csv(source(), blocks, parse, convert)
            return pa.Table.from_batches(list(reader), schema=reader.schema)
        except pa.ArrowInvalid:
            if bad_rows:
                raise
        # A later block holds what the first block's types cannot (a decimal point in a column
        # of integers, text in a column of numbers): settle the types on the whole file.
        return pacsv.read_csv(source(), blocks, parse, convert)

    try:
        table = read()
        # Arrow infers dates and times; pandas and the models see such columns as text.
        temporal = [f.name for f in table.schema if pa.types.is_temporal(f.type)]
        if temporal:
            table = read({name: pa.string() for name in temporal})
    except (pa.ArrowInvalid, EOFError, gzip.BadGzipFile, zlib.error) as exc:
        if bad_rows:
            line, fields = _first_ragged_line(path, len(header))
            if line is None:  # the csv module and Arrow disagree: say what Arrow saw
                line, fields = bad_rows[0].number, bad_rows[0].actual_columns
            raise PipelineError(
                path,
                f"line {line} has {fields} field(s) but the header has {len(header)} "
                "(a truncated or malformed line)",
            ) from None
        detail = " ".join(str(exc).split())
        if "invalid UTF8" in detail or "UTF-8" in detail:
            raise PipelineError(path, "cannot read it: is not UTF-8 text") from None
        raise PipelineError(path, f"malformed CSV: {detail[:200]}") from None
    if table.num_rows == 0:
        raise PipelineError(path, "has a header but no data rows")
    table = table.rename_columns(header)
    for i, field in enumerate(table.schema):
        if pa.types.is_null(field.type):
            table = table.set_column(i, field.name, table.column(i).cast(pa.float64()))
    return table


# A number as a CSV field may hold it (pyarrow's float parser takes all of these), spaces aside.
NUMBER = r"^\s*[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?\s*$|^\s*[+-]?inf(inity)?\s*$"


def check_numbers(
    table: Any,
    path: Path,
    skip: tuple[str, ...] = (),
    records: Any = None,
    numeric: tuple[str, ...] = (),
) -> Any:
    """Refuse values a numeric column cannot hold; return ``table`` with all-number text columns
    (e.g. numbers padded with spaces) as float columns.

    The line between "valid but odd" and "refused", per column (missing values never count):
    - a number column: every value must be finite (``inf``, ``-inf`` are refused);
    - a text column where more than half of the values are numbers, taking at least
      MIN_DISTINCT_NUMBERS distinct values, is a numeric column with text in it: refused,
      naming the first such value and its line;
    - a text column whose values are all numbers is a numeric column;
    - any other text column is categorical: mostly words, or a handful of number-like codes.
    Columns in ``numeric`` are known to hold numbers (a model's numeric features, when scoring
    new rows): any text in them is refused, however few numbers the column has.
    ``table`` is a pyarrow Table read by read_table; columns in ``skip`` are not looked at.
    ``records[i]`` is row i's record number in ``path`` when rows were dropped since reading.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    # Python scalars in pyarrow.compute calls make pyarrow import pandas (to look for pd.NA):
    # the checks that pass use none.
    def refuse(name: str, mask: Any, what: str) -> None:
        mask = pc.fill_null(mask, False)
        position = pc.index(mask, True).as_py()
        record = records[position].as_py() if records is not None else position
        value = table.column(name)[position].as_py()
        shown = repr(value) if isinstance(value, str) else str(value)
        count = pc.sum(mask).as_py()
        raise PipelineError(
            path,
            f"column '{name}' holds {what}: line {line_of_record(path, record)} has {shown} "
            f"({count} such value(s) in all; leave a field empty for a missing value)",
        )

    for name in table.column_names:
        if name in skip:
            continue
        column = table.column(name)
        kind = column.type
        if pa.types.is_string(kind) or pa.types.is_large_string(kind):
            counts = pc.value_counts(column.drop_null())
            if not len(counts):
                continue
            values, tally = counts.field("values"), counts.field("counts")
            is_number = pc.match_substring_regex(values, NUMBER, ignore_case=True)
            if pc.all(is_number).as_py():
                column = pc.cast(pc.utf8_trim_whitespace(column), pa.float64())
                table = table.set_column(table.column_names.index(name), name, column)
                kind = column.type
            elif name in numeric:
                text = pc.filter(values, pc.invert(is_number))
                refuse(
                    name, pc.is_in(column, value_set=text), "text where the model expects numbers"
                )
            else:
                numbers = pc.sum(pc.filter(tally, is_number)).as_py() or 0
                distinct = pc.sum(is_number).as_py() or 0
                present = len(column) - column.null_count
                if 2 * numbers > present and distinct >= MIN_DISTINCT_NUMBERS:
                    text = pc.filter(values, pc.invert(is_number))
                    refuse(name, pc.is_in(column, value_set=text), "numbers but also text")
                continue
        if pa.types.is_floating(kind):
            infinite = pc.is_inf(column)
            if pc.any(infinite).as_py():
                refuse(name, infinite, "a number that is not finite")
    return table


def arrow_indices(indices: Any) -> Any:
    """A numpy int64 array as a pyarrow array, zero-copy. (pyarrow's own numpy conversions
    import pandas, 0.5 s and 50 MiB, to look for pandas types; stages without pandas avoid them.)
    """
    import numpy as np
    import pyarrow as pa

    indices = np.ascontiguousarray(indices, dtype=np.int64)
    return pa.Array.from_buffers(pa.int64(), len(indices), [None, pa.py_buffer(indices)])
