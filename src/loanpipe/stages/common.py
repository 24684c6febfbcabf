"""Shared pieces of the loan-approval pipeline's stage scripts.

Every stage imports this module: the base-directory layout, atomic writes (other jobs read these
files over NFS), model and JSON I/O, provenance, errors and exit codes, logging. CSV reading and
writing are in csvfiles.py; the models (features, preprocessing, classifiers, metrics, the
deployment rule) in modeling.py.

Exit codes: 0 success; 65 (EX_DATAERR of sysexits.h) bad input: a retry cannot help, so the DAG
says ``RETRY ... UNLESS-EXIT 65``; 1 anything else, retried: an OS or filesystem error (EACCES,
ESTALE, EIO, an input not there yet on a shared filesystem) as one line, a crash with a traceback.
Python itself exits 2 for a missing script and argparse for bad usage: retried like any other.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import math
import os
import platform
import socket
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any, NoReturn

from loanpipe.config import PROJECT_DIR, Layout, default_base_dir
from loanpipe.errors import EXIT_BAD_INPUT, EXIT_FAILURE, PipelineError

DEFAULT_TARGET = "loan_status"
DEFAULT_SEED = 42
# Column names treated as row identifiers and dropped from the features unless told otherwise.
ID_LIKE_NAMES = ("id", "index", "row_id", "rowid", "unnamed: 0")
# The split every run uses unless told otherwise: 80/20, random_state=42, as the original system.
DEFAULT_TEST_SIZE = 0.2
MIN_ROWS = 10

# Seconds to wait between writing a temporary output and renaming it into place: lets the
# crash-safety tests kill a stage while its output is half-way, deterministically.
PAUSE_BEFORE_RENAME = "LOANLIB_PAUSE_BEFORE_RENAME"


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
def atomic_output(path: Path, mode: str = "wb", durable: bool = True) -> Iterator[IO[Any]]:
    """Yield a temporary file beside ``path``; on success fsync it and rename it over ``path``.

    Readers (other jobs, over NFS) see either the old file or the complete new one, never a part.
    On any error the temporary file is removed and ``path`` is left as it was. ``durable=False``
    skips the two fsyncs (file and folder, 5-10 ms each on a local disk, a COMMIT each over NFS):
    only for bookkeeping whose loss after a power cut costs a rerun, never for results. The
    rename stays atomic, and NFS's close-to-open flush still shows other hosts the whole file.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        encoding = None if "b" in mode else "utf-8"
        newline = None if "b" in mode else ""
        with os.fdopen(fd, mode, encoding=encoding, newline=newline) as handle:
            yield handle
            handle.flush()
            if durable:
                os.fsync(handle.fileno())
        if PAUSE_BEFORE_RENAME in os.environ:  # fault injection for the crash-safety tests
            time.sleep(float(os.environ[PAUSE_BEFORE_RENAME]))
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(exc, OSError) and exc.filename in (None, tmp):
            # a full disk fails in write(), a rename names the temporary: name the file
            exc.filename, exc.filename2 = str(path), None
        raise
    if durable:
        fsync_dir(path.parent)


def fsync_dir(directory: Path) -> None:
    """Make a rename in ``directory`` durable (errors ignored: not every filesystem allows it)."""
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


def write_text(text: str, path: Path, durable: bool = True) -> None:
    """Write UTF-8 ``text`` to ``path`` atomically (``durable``: see atomic_output)."""
    with atomic_output(path, "w", durable) as handle:
        handle.write(text)


def write_json(data: Any, path: Path, durable: bool = True) -> None:
    """Write ``data`` as indented JSON, atomically. Non-finite floats are refused."""
    write_text(json.dumps(data, indent=2, allow_nan=False) + "\n", path, durable)


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


def release_memory() -> None:
    """Hand memory pyarrow has freed back to the system (its allocator keeps it otherwise):
    call after dropping a DataFrame read by read_csv, before the next big step."""
    if "pyarrow" in sys.modules:
        sys.modules["pyarrow"].default_memory_pool().release_unused()


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


def split_rows(rows: int, test_size: float, seed: int) -> tuple[Any, Any]:
    """(training, test) row numbers: scikit-learn's train_test_split of ``rows`` rows (shuffled
    with numpy's RandomState(seed), the first ceil(test_size * rows) for the test set), without
    importing scikit-learn. tests/test_data_safety.py checks it against train_test_split."""
    import numpy as np

    test = math.ceil(test_size * rows)
    permutation = np.random.RandomState(seed).permutation(rows)
    return permutation[test:], permutation[:test]


# ---------------------------------------------------------------------------- provenance


def git_dirs(project: Path) -> tuple[Path, Path]:
    """The checkout's git directory (HEAD) and common directory (refs): both ``.git`` in a clone;
    in a ``git worktree`` ``.git`` is a file naming its own directory, whose ``commondir`` file
    names the shared one."""
    git = project / ".git"
    if git.is_file():
        pointer = git.read_text().strip()
        if not pointer.startswith("gitdir: "):
            raise OSError(f"{git}: not a gitdir pointer")
        git = (project / pointer[len("gitdir: ") :]).resolve()
    common = git / "commondir"
    return git, (git / common.read_text().strip()).resolve() if common.is_file() else git


def git_commit(project: Path = PROJECT_DIR) -> str | None:
    """The checkout's commit, read from .git without running git (execute nodes may lack it)."""
    try:
        git, common = git_dirs(project)
        head = (git / "HEAD").read_text().strip()
        if not head.startswith("ref: "):
            return head
        ref = head[5:]
        for ref_file in (git / ref, common / ref):
            if ref_file.exists():
                return ref_file.read_text().strip()
        for line in (common / "packed-refs").read_text().splitlines():
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
