"""Shared pieces of the loan-approval pipeline's stage scripts.

Every stage imports this module: the base-directory layout, reading and validating CSV files,
atomic writes (other jobs read these files over NFS), model and JSON I/O, provenance, errors and
exit codes, logging. The models themselves (features, preprocessing, classifiers, metrics, the
deployment rule) are in loanmodel.py.

Exit codes: 0 success; 65 (EX_DATAERR of sysexits.h) bad input: a retry cannot help, so the DAG
says ``RETRY ... UNLESS-EXIT 65``; 1 anything else, retried: an OS or filesystem error (EACCES,
ESTALE, EIO, an input not there yet on a shared filesystem) as one line, a crash with a traceback.
Python itself exits 2 for a missing script and argparse for bad usage: retried like any other.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import gzip
import hashlib
import io
import itertools
import json
import math
import os
import platform
import socket
import sys
import tempfile
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, NoReturn

EXIT_OK = 0
EXIT_FAILURE = 1  # retried by the DAG: crashes, OS and filesystem errors
EXIT_BAD_INPUT = 65  # sysexits.h EX_DATAERR: the DAG's UNLESS-EXIT code, never retried

PROJECT_DIR = Path(__file__).resolve().parent.parent
DEFAULT_TARGET = "loan_status"
DEFAULT_SEED = 42
# Column names treated as row identifiers and dropped from the features unless told otherwise.
ID_LIKE_NAMES = ("id", "index", "row_id", "rowid", "unnamed: 0")
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
# The split every run uses unless told otherwise (SEED.md: 80/20, random_state=42).
DEFAULT_TEST_SIZE = 0.2
MIN_ROWS = 10

# Seconds to wait between writing a temporary output and renaming it into place: lets the
# crash-safety tests kill a stage while its output is half-way, deterministically.
PAUSE_BEFORE_RENAME = "LOANLIB_PAUSE_BEFORE_RENAME"


class PipelineError(Exception):
    """Bad input (a retry cannot help): one line naming the file, exit code EXIT_BAD_INPUT."""

    def __init__(self, path: Path | str | None, problem: str) -> None:
        self.path = path
        self.problem = problem
        super().__init__(f"{path}: {problem}" if path is not None else problem)


# ---------------------------------------------------------------------------- layout


@dataclass(frozen=True)
class Layout:
    """Where every file lives under the base directory (SEED.md's names)."""

    base: Path

    @property
    def raw_csv(self) -> Path:
        return self.base / "loan_data.csv"

    @property
    def split_dir(self) -> Path:
        return self.base / "staging" / "split_data"

    @property
    def processed_csv(self) -> Path:
        return self.split_dir / "processed_data.csv"

    @property
    def processed_source(self) -> Path:
        """What processed_data.csv was made from: the input's name, sha256 and size."""
        return self.split_dir / "processed_data.source.json"

    def split_csv(self, name: str) -> Path:
        """``name`` is one of X_train, y_train, X_test, y_test."""
        return self.split_dir / f"{name}.csv"

    def trained_model(self, version: str) -> Path:
        return self.base / "staging" / "model" / f"trained_model_{version}.pkl"

    def metrics(self, version: str) -> Path:
        return self.base / "staging" / "metrics" / f"model_metrics_{version}.json"

    @property
    def deploy_dir(self) -> Path:
        return self.base / "model"

    @property
    def deployed_model(self) -> Path:
        return self.deploy_dir / "deployed_model.pkl"

    @property
    def manifest(self) -> Path:
        return self.deploy_dir / "deployed_model.json"

    @property
    def archive_dir(self) -> Path:
        return self.deploy_dir / "archive"

    @property
    def predictions(self) -> Path:
        return self.base / "predictions" / "predictions.csv"


def default_base_dir() -> Path:
    """``$BASE_DIR`` when set, else the repository's ``data/``."""
    env = os.environ.get("BASE_DIR")
    return Path(env) if env else PROJECT_DIR / "data"


# ---------------------------------------------------------------------------- CLI and logging


def stage_parser(doc: str | None) -> argparse.ArgumentParser:
    """An argument parser with the options every stage shares."""
    summary = (doc or "").strip().splitlines()[0] if doc else None
    parser = argparse.ArgumentParser(description=summary)
    parser.add_argument(
        "--base-dir",
        type=Path,
        default=default_base_dir(),
        help="base directory holding loan_data.csv and every output "
        "(default: $BASE_DIR, else the repository's data/)",
    )
    return parser


_STAGE = Path(sys.argv[0]).stem if sys.argv and sys.argv[0] else "stage"


def log(message: str) -> None:
    """One progress line on stderr, prefixed with the stage name."""
    print(f"[{_STAGE}] {message}", file=sys.stderr, flush=True)


def run_stage(main: Callable[[], int]) -> int:
    """Run a stage's ``main``: bad input is one line and EXIT_BAD_INPUT (not retried); an OS or
    filesystem error (EACCES, ESTALE, EIO, ENOSPC, a missing input) one line and EXIT_FAILURE,
    which the DAG retries."""
    try:
        return main()
    except PipelineError as exc:
        print(f"{_STAGE}: error: {exc}", file=sys.stderr, flush=True)
        return EXIT_BAD_INPUT
    except OSError as exc:
        print(f"{_STAGE}: error: {describe_os_error(exc)}", file=sys.stderr, flush=True)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        print(f"{_STAGE}: interrupted", file=sys.stderr, flush=True)
        return 130


def exit_stage(main: Callable[[], int]) -> NoReturn:
    """A stage script's last line: run ``main`` (see run_stage) and end the process with its exit
    code at once, without the interpreter's teardown.

    Native thread pools (OpenMP of the models, Arrow's) can abort a teardown that races their
    start-up ("terminate called without an active exception", exit 134 instead of the stage's
    code, about one run in ten when a stage stops early after loading a model). Every output is
    already written, flushed and renamed by then; only the standard streams need flushing.
    """
    code = run_stage(main)
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


def describe_os_error(exc: OSError) -> str:
    """``FILE: reason (errno NAME; retried)`` for an OSError, on one line."""
    import errno

    name = errno.errorcode.get(exc.errno or 0, "")
    reason = exc.strerror or str(exc) or type(exc).__name__
    where = f"{exc.filename}: " if exc.filename is not None else ""
    code = f"{name}, " if name else ""
    return f"{where}{reason} ({code}an OS or filesystem error: exit 1, the DAG retries it)"


# ---------------------------------------------------------------------------- atomic writes


@contextlib.contextmanager
def atomic_output(path: Path, mode: str = "wb") -> Iterator[IO[Any]]:
    """Yield a temporary file beside ``path``; on success fsync it and rename it over ``path``.

    Readers (other jobs, over NFS) see either the old file or the complete new one, never a part.
    On any error the temporary file is removed and ``path`` is left as it was.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        encoding = None if "b" in mode else "utf-8"
        newline = None if "b" in mode else ""
        with os.fdopen(fd, mode, encoding=encoding, newline=newline) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        if PAUSE_BEFORE_RENAME in os.environ:  # fault injection for the crash-safety tests
            time.sleep(float(os.environ[PAUSE_BEFORE_RENAME]))
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_bytes(data: bytes, path: Path) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_output(path, "wb") as handle:
        handle.write(data)


def write_text(text: str, path: Path) -> None:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    with atomic_output(path, "w") as handle:
        handle.write(text)


def write_json(data: Any, path: Path) -> None:
    """Write ``data`` as indented JSON, atomically. Non-finite floats are refused."""
    write_text(json.dumps(data, indent=2, allow_nan=False) + "\n", path)


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


def save_model(model: Any, path: Path) -> None:
    """Pickle a fitted model with joblib, atomically."""
    import joblib

    with atomic_output(path, "wb") as handle:
        joblib.dump(model, handle)


def copy_file(source: Path, dest: Path) -> str:
    """Copy ``source`` to ``dest`` atomically; return the sha256 of the bytes copied."""
    digest = hashlib.sha256()
    with source.open("rb") as src, atomic_output(dest, "wb") as dst:
        while chunk := src.read(1 << 20):
            digest.update(chunk)
            dst.write(chunk)
    return digest.hexdigest()


# ---------------------------------------------------------------------------- reading


def check_readable(path: Path, what: str = "file") -> None:
    """Raise unless ``path`` is a readable regular file.

    A directory is bad input (PipelineError). A missing or unreadable file raises OSError (exit 1,
    retried): on a shared filesystem that is an unmounted share, a stale handle or a file its
    parent job wrote that this host does not see yet.
    """
    import errno

    if path.is_dir():
        raise PipelineError(path, f"is a directory, expected a {what}")
    if not path.exists():
        raise FileNotFoundError(errno.ENOENT, f"{what} not found", str(path))
    if not os.access(path, os.R_OK):
        raise PermissionError(errno.EACCES, f"{what}: no permission to read it", str(path))


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _open_text(path: Path) -> io.TextIOBase:
    """Open a plain or gzip-compressed CSV as text, dropping a UTF-8 byte-order mark."""
    if _is_gzip(path):
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8-sig", newline="")
    return path.open("r", encoding="utf-8-sig", newline="")


def _is_gzip(path: Path) -> bool:
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


def release_memory() -> None:
    """Hand memory pyarrow has freed back to the system (its allocator keeps it otherwise):
    call after dropping a DataFrame read by read_csv, before the next big step."""
    if "pyarrow" in sys.modules:
        sys.modules["pyarrow"].default_memory_pool().release_unused()


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
        if _is_gzip(path):
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


def read_json(path: Path, what: str = "JSON file") -> Any:
    check_readable(path, what)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PipelineError(path, f"is not valid JSON ({exc})") from None


def load_model(path: Path) -> Any:
    """Load a joblib-pickled model. Only load files this pipeline wrote itself."""
    import joblib

    check_readable(path, "model file")
    try:
        return joblib.load(path)
    except Exception as exc:  # a truncated or foreign pickle raises many different types
        raise PipelineError(path, f"cannot load the model ({type(exc).__name__}: {exc})") from None


# ---------------------------------------------------------------------------- columns


def id_like_columns(columns: list[str]) -> list[str]:
    """Columns whose names mark them as row identifiers (``id``, ``*_id``, ``Unnamed: 0``...)."""
    found = []
    for name in columns:
        lower = name.strip().lower()
        if lower in ID_LIKE_NAMES or lower.endswith("_id") or lower.startswith("unnamed:"):
            found.append(name)
    return found


# A number as a CSV field may hold it (pyarrow's float parser takes all of these), spaces aside.
NUMBER = r"^\s*[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?\s*$|^\s*[+-]?inf(inity)?\s*$"


def check_numbers(table: Any, path: Path, skip: tuple[str, ...] = (), records: Any = None) -> Any:
    """Refuse values a numeric column cannot hold; return ``table`` with all-number text columns
    (e.g. numbers padded with spaces) as float columns.

    The line between "valid but odd" and "refused", per column (missing values never count):
    - a number column: every value must be finite (``inf``, ``-inf`` are refused);
    - a text column where more than half of the values are numbers, taking at least
      MIN_DISTINCT_NUMBERS distinct values, is a numeric column with text in it: refused,
      naming the first such value and its line;
    - a text column whose values are all numbers is a numeric column;
    - any other text column is categorical: mostly words, or a handful of number-like codes.
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


def split_rows(rows: int, test_size: float, seed: int) -> tuple[Any, Any]:
    """(training, test) row numbers: scikit-learn's train_test_split of ``rows`` rows (shuffled
    with numpy's RandomState(seed), the first ceil(test_size * rows) for the test set), without
    importing scikit-learn. tests/test_data_safety.py checks it against train_test_split."""
    import numpy as np

    test = math.ceil(test_size * rows)
    permutation = np.random.RandomState(seed).permutation(rows)
    return permutation[test:], permutation[:test]


# ---------------------------------------------------------------------------- provenance


def git_commit(project: Path = PROJECT_DIR) -> str | None:
    """The checkout's commit, read from .git without running git (execute nodes may lack it)."""
    git = project / ".git"
    try:
        head = (git / "HEAD").read_text().strip()
        if not head.startswith("ref: "):
            return head
        ref = head[5:]
        ref_file = git / ref
        if ref_file.exists():
            return ref_file.read_text().strip()
        for line in (git / "packed-refs").read_text().splitlines():
            if line.endswith(" " + ref):
                return line.split()[0]
    except OSError:
        return None
    return None


def library_versions(
    names: tuple[str, ...] = ("pandas", "numpy", "scikit-learn", "joblib"),
) -> dict[str, str]:
    """Python's version and the installed versions of the named distributions."""
    from importlib import metadata

    versions = {"python": platform.python_version()}
    for name in names:
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[name] = metadata.version(name)
    return versions


def recorded_input_sha256(layout: Layout) -> str | None:
    """The sha256 of the input as data_processing read it (Layout.processed_source), or None."""
    try:
        record = json.loads(layout.processed_source.read_text())
        digest = record["input_sha256"]
    except (OSError, ValueError, TypeError, KeyError):
        return None
    return digest if isinstance(digest, str) and len(digest) == 64 else None


def provenance(
    input_file: Path, input_rows: int, parameters: dict[str, Any], input_sha256: str | None = None
) -> dict[str, Any]:
    """Where a result came from: the input's hash and size, parameters, versions, commit, host.

    ``input_sha256``: the hash data_processing recorded (recorded_input_sha256); the file is hashed
    now only without one (770 MB at 10M rows: a second in every stage that reports provenance).
    """
    if input_sha256 is None and input_file.is_file():
        input_sha256 = sha256_file(input_file)
    return {
        "input_file": input_file.name,
        "input_sha256": input_sha256,
        "input_rows": input_rows,
        "parameters": parameters,
        "versions": library_versions(),
        "git_commit": git_commit(),
        "host": socket.gethostname(),
    }


def utc_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
