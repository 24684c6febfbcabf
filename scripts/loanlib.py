"""Shared pieces of the loan-approval pipeline's stage scripts.

Every stage imports this module and nothing else of the project: the base-directory layout, reading
and validating CSV files, atomic writes (other jobs read these files over NFS), model and JSON I/O,
column inference, the two model pipelines, metrics, the deployment rule, provenance, errors and
exit codes, logging.

Exit codes: 0 success; 2 a permanent error (bad input or usage: a retry cannot help, so the DAG
says ``RETRY ... UNLESS-EXIT 2``); 1 anything else (a crash, possibly transient, so it is retried).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import gzip
import hashlib
import io
import json
import math
import os
import platform
import socket
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_PERMANENT = 2

PROJECT_DIR = Path(__file__).resolve().parent.parent
DEFAULT_TARGET = "loan_status"
DEFAULT_SEED = 42
# Column names treated as row identifiers and dropped from the features unless told otherwise.
ID_LIKE_NAMES = ("id", "index", "row_id", "rowid", "unnamed: 0")
# A text column whose values are at least this share numbers is a numeric column with junk in it.
NUMERIC_SHARE_FOR_JUNK = 0.9

# Seconds to wait between writing a temporary output and renaming it into place: lets the
# crash-safety tests kill a stage while its output is half-way, deterministically.
PAUSE_BEFORE_RENAME = "LOANLIB_PAUSE_BEFORE_RENAME"

MODELS: dict[str, str] = {"v1": "Logistic Regression", "v2": "Decision Tree"}
METRIC_KEYS = ("Accuracy", "Precision", "Recall", "F1 Score")


class PipelineError(Exception):
    """A permanent error caused by the input: reported as one line naming the file, exit code 2."""

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
    """Run a stage's ``main``, turning a PipelineError into one line and exit code 2."""
    try:
        return main()
    except PipelineError as exc:
        print(f"{_STAGE}: error: {exc}", file=sys.stderr, flush=True)
        return EXIT_PERMANENT
    except KeyboardInterrupt:
        print(f"{_STAGE}: interrupted", file=sys.stderr, flush=True)
        return 130


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


def write_csv(frame: Any, path: Path) -> None:
    """Write a DataFrame as CSV without its index, atomically."""
    with atomic_output(path, "w") as handle:
        frame.to_csv(handle, index=False, lineterminator="\n")


def save_model(model: Any, path: Path) -> None:
    """Pickle a fitted model with joblib, atomically."""
    import joblib

    with atomic_output(path, "wb") as handle:
        joblib.dump(model, handle)


def copy_file(source: Path, dest: Path) -> None:
    """Copy ``source`` to ``dest`` atomically."""
    with source.open("rb") as src, atomic_output(dest, "wb") as dst:
        while chunk := src.read(1 << 20):
            dst.write(chunk)


# ---------------------------------------------------------------------------- reading


def check_readable(path: Path, what: str = "file") -> None:
    """Raise a PipelineError unless ``path`` is a readable regular file."""
    if not path.exists():
        raise PipelineError(path, f"{what} not found")
    if path.is_dir():
        raise PipelineError(path, f"is a directory, expected a {what}")
    if not os.access(path, os.R_OK):
        raise PipelineError(path, "no permission to read it")


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _open_text(path: Path) -> io.TextIOBase:
    """Open a plain or gzip-compressed CSV as text, dropping a UTF-8 byte-order mark."""
    with path.open("rb") as probe:
        magic = probe.read(2)
    if magic == b"\x1f\x8b":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8-sig", newline="")
    return path.open("r", encoding="utf-8-sig", newline="")


def read_csv(path: Path, what: str = "CSV file") -> Any:
    """Read a CSV file into a DataFrame, with one clear PipelineError for each way it can be bad.

    Accepts a UTF-8 byte-order mark, CRLF line endings and gzip compression (detected by content).
    """
    import pandas as pd

    check_readable(path, what)
    try:
        with _open_text(path) as handle:
            text = handle.read()
    except (UnicodeDecodeError, EOFError, OSError, gzip.BadGzipFile) as exc:
        problem = "is not UTF-8 text" if isinstance(exc, UnicodeDecodeError) else str(exc)
        raise PipelineError(path, f"cannot read it: {problem}") from None
    lines = text.splitlines()
    if not text.strip():
        raise PipelineError(path, "is empty")
    header = [name.strip() for name in next(csv.reader([lines[0]]))]
    if len(header) == 1:
        for delimiter, name in ((";", "semicolons"), ("\t", "tabs"), ("|", "pipes")):
            if delimiter in lines[0]:
                raise PipelineError(
                    path,
                    f"columns are separated by {name}, expected commas (a comma-separated CSV)",
                )
    blank = [name for name in header if not name.strip()]
    if blank:
        raise PipelineError(path, "the header has an empty column name")
    duplicates = sorted({name for name in header if header.count(name) > 1})
    if duplicates:
        raise PipelineError(path, f"duplicate column names: {', '.join(duplicates)}")
    if not any(line.strip() for line in lines[1:]):
        raise PipelineError(path, "has a header but no data rows")
    try:
        frame = pd.read_csv(io.StringIO(text), skipinitialspace=False)
    except (pd.errors.ParserError, ValueError) as exc:
        detail = " ".join(str(exc).split())
        raise PipelineError(path, f"malformed CSV: {detail}") from None
    frame.columns = [str(name).strip() for name in frame.columns]
    return frame


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


def split_columns(frame: Any) -> tuple[list[str], list[str]]:
    """(numeric, categorical) column names, inferred from the DataFrame's types."""
    import pandas as pd

    numeric, categorical = [], []
    for name in frame.columns:
        dtype = frame[name].dtype
        if pd.api.types.is_bool_dtype(dtype) or not pd.api.types.is_numeric_dtype(dtype):
            categorical.append(name)
        else:
            numeric.append(name)
    return numeric, categorical


def find_numeric_junk(frame: Any, path: Path) -> None:
    """Raise when a text column is almost all numbers: a numeric column with junk in it."""
    import pandas as pd

    _, categorical = split_columns(frame)
    for name in categorical:
        values = frame[name].dropna()
        if values.empty:
            continue
        parsed = pd.to_numeric(values, errors="coerce")
        bad = parsed.isna()
        if bad.sum() > 0 and (1 - bad.mean()) >= NUMERIC_SHARE_FOR_JUNK:
            row = int(values.index[bad.to_numpy()][0])
            value = values[bad].iloc[0]
            raise PipelineError(
                path,
                f"column '{name}' is numeric but line {row + 2} holds {value!r} "
                f"({int(bad.sum())} non-numeric value(s) in all)",
            )


def prepare_features(frame: Any, numeric: list[str], categorical: list[str]) -> Any:
    """The model's feature columns in a fixed order and type: numbers as floats, categories as text.

    Missing values stay missing (the pipeline imputes them); a non-numeric value in a numeric
    column becomes missing. Raises KeyError naming absent columns.
    """
    import numpy as np
    import pandas as pd

    missing = [name for name in numeric + categorical if name not in frame.columns]
    if missing:
        raise KeyError(", ".join(missing))
    out = pd.DataFrame(index=frame.index)
    for name in numeric:
        out[name] = pd.to_numeric(frame[name], errors="coerce").astype("float64")
    for name in categorical:
        column = frame[name]
        text = column.astype(object).where(column.notna(), np.nan)
        out[name] = text.map(lambda v: v if isinstance(v, float) else str(v)).astype(object)
    return out


# ---------------------------------------------------------------------------- models


def build_model(version: str, numeric: list[str], categorical: list[str], seed: int) -> Any:
    """Preprocessing fitted together with the classifier, so the model scores raw rows.

    v1: StandardScaler + LogisticRegression; v2: StandardScaler + DecisionTreeClassifier (seeded).
    Numeric gaps get the training mean; categorical gaps the most frequent training level; a
    category unseen in training encodes as all zeros.
    """
    import numpy as np
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler
    from sklearn.tree import DecisionTreeClassifier

    numeric_steps = Pipeline(
        [("impute", SimpleImputer(strategy="mean")), ("scale", StandardScaler())]
    )
    categorical_steps = Pipeline(
        [
            ("impute", SimpleImputer(strategy="most_frequent", missing_values=np.nan)),
            ("encode", OneHotEncoder(drop="first", handle_unknown="ignore")),
        ]
    )
    preprocess = ColumnTransformer(
        [("numeric", numeric_steps, numeric), ("categorical", categorical_steps, categorical)],
        sparse_threshold=0.0,
    )
    if version == "v1":
        classifier = LogisticRegression(max_iter=1000, random_state=seed)
    elif version == "v2":
        classifier = DecisionTreeClassifier(random_state=seed)
    else:
        raise ValueError(f"unknown model version {version!r}")
    return Pipeline([("preprocess", preprocess), ("classifier", classifier)])


def model_columns(model: Any) -> tuple[list[str], list[str]]:
    """The (numeric, categorical) raw columns a fitted pipeline from build_model expects."""
    transformers = dict(
        (name, cols) for name, _, cols in model.named_steps["preprocess"].transformers_
    )
    return list(transformers.get("numeric", [])), list(transformers.get("categorical", []))


@contextlib.contextmanager
def quiet_unknown_categories() -> Iterator[None]:
    """Silence scikit-learn's warning that a category unseen in training was encoded as zeros."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*unknown categories.*")
        yield


def compute_metrics(y_true: Any, y_pred: Any, model_name: str) -> dict[str, Any]:
    """SEED.md's metric keys (binary scores, positive class 1) plus the confusion matrix."""
    from sklearn.metrics import (
        accuracy_score,
        confusion_matrix,
        f1_score,
        precision_score,
        recall_score,
    )

    return {
        "Model name": model_name,
        "Accuracy": float(accuracy_score(y_true, y_pred)),
        "Precision": float(precision_score(y_true, y_pred, zero_division=0)),
        "Recall": float(recall_score(y_true, y_pred, zero_division=0)),
        "F1 Score": float(f1_score(y_true, y_pred, zero_division=0)),
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=[0, 1]).tolist(),
    }


def check_metrics(data: Any, path: Path) -> dict[str, Any]:
    """Validate a metrics file's content: SEED.md's keys, each a finite number in [0, 1]."""
    if not isinstance(data, dict):
        raise PipelineError(path, "metrics file does not hold a JSON object")
    for key in METRIC_KEYS:
        value = data.get(key)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise PipelineError(path, f"metric '{key}' is missing or not a number")
        if not math.isfinite(value) or not 0 <= value <= 1:
            raise PipelineError(path, f"metric '{key}' is {value}, expected a number in [0, 1]")
    return data


def choose_deployment(metrics: dict[str, dict[str, Any]]) -> tuple[str, str, dict[str, Any]]:
    """SEED.md's rule: higher precision; on a tie higher F1; on a full tie v1 (the lowest version).

    ``metrics`` maps version to metrics. Returns (version, rule, margin) where rule is
    "precision", "f1" or "tie" and margin says by how much the winner led on that metric.
    """
    ranked = sorted(
        metrics.items(), key=lambda item: (-item[1]["Precision"], -item[1]["F1 Score"], item[0])
    )
    (best, first), (_, second) = ranked[0], ranked[1]
    if first["Precision"] != second["Precision"]:
        return (
            best,
            "precision",
            {"metric": "Precision", "value": first["Precision"] - second["Precision"]},
        )
    if first["F1 Score"] != second["F1 Score"]:
        return best, "f1", {"metric": "F1 Score", "value": first["F1 Score"] - second["F1 Score"]}
    return best, "tie", {"metric": "F1 Score", "value": 0.0}


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


def provenance(input_file: Path, input_rows: int, parameters: dict[str, Any]) -> dict[str, Any]:
    """Where a result came from: the input's hash and size, parameters, versions, commit, host."""
    return {
        "input_file": input_file.name,
        "input_sha256": sha256_file(input_file) if input_file.is_file() else None,
        "input_rows": input_rows,
        "parameters": parameters,
        "versions": library_versions(),
        "git_commit": git_commit(),
        "host": socket.gethostname(),
    }


def utc_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
