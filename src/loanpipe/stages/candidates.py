"""The model search's candidate table and settings, shared by the search stages and make check.

The table (``search/candidates.txt``) is read twice: by HTCondor, whose submit file says
``queue CANDIDATE, FAMILY, PARAMS from .../candidates.txt`` (one job per line), and by this module
(make check, select_model). So it follows HTCondor's rules for ``queue ... from``: every line is a
job; the first two fields are separated by commas, spaces or tabs; the last variable (PARAMS) takes
the rest of the line. HTCondor turns a comment line or a blank line into a job too, so neither is
allowed. A line::

    hgb-03  hist_gradient_boosting  learning_rate=0.1 max_leaf_nodes=31 max_iter=200

PARAMS are ``name=value`` words (no commas or quotes: they travel as command-line words), values
parsed as int, float, True/False/None, else text. Every row is checked against its estimator by
constructing it with ``set_params`` and fitting it on a tiny synthetic data set; the first problem
is a ``PipelineError`` naming the table, the line and the candidate.

The companion settings (``search/search.conf``): ``scoring`` (a scikit-learn scorer name, default
f1), ``folds`` (stratified k-fold CV, default 5), ``seed`` (fold shuffling and every estimator's
random_state, default 42). ``name = value`` lines, ``#`` comments.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loanpipe import config
from loanpipe.errors import PipelineError

TABLE = config.CANDIDATE_TABLE
SETTINGS = config.SEARCH_SETTINGS
VERSION = "v3"  # the model version the search's winner is evaluated and deployed as

# family -> (display name, estimator class path, fixed settings the table cannot change)
FAMILIES: dict[str, tuple[str, str, dict[str, Any]]] = {
    "logistic_regression": (
        "Logistic Regression",
        "sklearn.linear_model.LogisticRegression",
        {"max_iter": 1000},
    ),
    "decision_tree": ("Decision Tree", "sklearn.tree.DecisionTreeClassifier", {}),
    "hist_gradient_boosting": (
        "Histogram Gradient Boosting",
        "sklearn.ensemble.HistGradientBoostingClassifier",
        {},
    ),
}
SCORINGS = ("f1", "precision", "recall", "accuracy", "balanced_accuracy", "roc_auc")
DEFAULT_SETTINGS: dict[str, Any] = {"scoring": "f1", "folds": 5, "seed": 42}
FORBIDDEN_PARAMS = {
    "n_jobs": "a job gets one CPU (request_cpus = 1); parallelism comes from the pool",
    "random_state": "set by the settings' seed, the same for every candidate",
    "verbose": "not a model setting",
}
CANDIDATE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
SEPARATORS = re.compile(r"[, \t]+")


@dataclass(frozen=True)
class Candidate:
    """One row of the table."""

    id: str
    family: str
    params: dict[str, Any] = field(default_factory=dict)
    line: int = 0

    @property
    def name(self) -> str:
        return FAMILIES[self.family][0]

    def params_text(self) -> str:
        return " ".join(f"{key}={format_value(value)}" for key, value in self.params.items())


def parse_value(text: str) -> Any:
    """``3`` -> 3, ``0.1`` -> 0.1, ``True``/``False``/``None``, anything else stays text."""
    if text in ("True", "False", "None"):
        return {"True": True, "False": False, "None": None}[text]
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def format_value(value: Any) -> str:
    return repr(value) if isinstance(value, float) else str(value)


def parse_params(words: list[str], where: str) -> dict[str, Any]:
    """``["C=0.1", "penalty=l2"]`` -> ``{"C": 0.1, "penalty": "l2"}``; PipelineError otherwise."""
    params: dict[str, Any] = {}
    for word in words:
        name, sep, value = word.partition("=")
        if not sep or not name or not value:
            raise PipelineError(where, f"parameter {word!r} is not name=value")
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise PipelineError(where, f"parameter name {name!r} is not a valid name")
        if any(c in value for c in "\"'$,"):
            raise PipelineError(where, f"value of {name} holds a quote, comma or $: {value!r}")
        if name in params:
            raise PipelineError(where, f"parameter {name} is given twice")
        if name in FORBIDDEN_PARAMS:
            raise PipelineError(where, f"parameter {name} is not allowed: {FORBIDDEN_PARAMS[name]}")
        params[name] = parse_value(value)
    return params


def parse_row(text: str, where: str) -> tuple[str, str, list[str]]:
    """Split one line as HTCondor's ``queue CANDIDATE, FAMILY, PARAMS from`` does."""
    stripped = text.strip(" \t")
    parts = SEPARATORS.split(stripped, maxsplit=2)
    if len(parts) < 2 or not parts[1]:
        raise PipelineError(where, "expected: candidate-id family [name=value ...]")
    rest = parts[2] if len(parts) > 2 else ""
    return parts[0], parts[1], rest.split()


def read_table(path: Path = TABLE, validate: bool = False, seed: int = 42) -> list[Candidate]:
    """Every row of the table, in order; ``validate`` also checks each against its estimator."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise PipelineError(path, f"cannot read the candidate table: {exc.strerror}") from None
    if b"\r" in raw:
        raise PipelineError(path, "has CR line ends; HTCondor reads LF-separated rows")
    try:
        lines = raw.decode("utf-8").split("\n")
    except UnicodeDecodeError:
        raise PipelineError(path, "is not UTF-8 text") from None
    if lines and lines[-1] == "":
        lines.pop()
    if not lines:
        raise PipelineError(path, "holds no candidates")
    seen: dict[str, int] = {}
    rows = []
    for number, text in enumerate(lines, 1):
        where = f"{path}:{number}"
        if not text.strip():
            raise PipelineError(where, "blank line (HTCondor would queue a job for it)")
        if text.lstrip().startswith("#"):
            raise PipelineError(where, "comment line (HTCondor would queue a job for it)")
        ident, family, words = parse_row(text, where)
        if not CANDIDATE_ID.match(ident):
            raise PipelineError(
                where, f"candidate id {ident!r}: use letters, digits, '-' and '_' (max 64)"
            )
        where = f"{where} (candidate {ident})"
        if ident in seen:
            raise PipelineError(where, f"duplicate candidate id (first on line {seen[ident]})")
        seen[ident] = number
        if family not in FAMILIES:
            raise PipelineError(
                where, f"unknown family {family!r} (expected one of {', '.join(FAMILIES)})"
            )
        candidate = Candidate(ident, family, parse_params(words, where), number)
        if validate:
            check_candidate(candidate, where, seed)
        rows.append(candidate)
    return rows


def estimator(candidate: Candidate, seed: int) -> Any:
    """The candidate's classifier, constructed with set_params (unknown names raise)."""
    import importlib

    _, class_path, fixed = FAMILIES[candidate.family]
    module, name = class_path.rsplit(".", 1)
    cls = getattr(importlib.import_module(module), name)
    model = cls(**fixed, random_state=seed)
    return model.set_params(**candidate.params)


def check_candidate(candidate: Candidate, where: str, seed: int) -> None:
    """Construct the row's estimator and check its values; PipelineError on a problem.

    ``set_params`` refuses unknown names; scikit-learn's own parameter constraints (checked at
    fit time, called here without fitting) refuse bad values. Logistic regression is also fitted
    on a tiny data set, since solver and penalty must agree (checked only when fitting).
    """
    import numpy as np

    try:
        model = estimator(candidate, seed)
        model._validate_params()  # noqa: SLF001 - scikit-learn's constraint check, no fitting
        if candidate.family == "logistic_regression":
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model.fit(np.random.default_rng(0).normal(size=(40, 3)), np.array([0, 1] * 20))
    except (ValueError, TypeError) as exc:
        message = " ".join(str(exc).split())
        raise PipelineError(where, f"invalid parameter for {candidate.family}: {message}") from None


def read_settings(path: Path = SETTINGS) -> dict[str, Any]:
    """The companion settings (scoring, folds, seed), defaults for names not given."""
    settings = dict(DEFAULT_SETTINGS)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise PipelineError(path, f"cannot read the search settings: {exc.strerror}") from None
    for number, line in enumerate(lines, 1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        where = f"{path}:{number}"
        name, sep, value = (part.strip() for part in text.partition("="))
        if not sep or name not in DEFAULT_SETTINGS:
            raise PipelineError(
                where, f"expected one of {', '.join(DEFAULT_SETTINGS)} as name = value"
            )
        if name == "scoring":
            if value not in SCORINGS:
                raise PipelineError(where, f"scoring {value!r} is not one of {', '.join(SCORINGS)}")
            settings[name] = value
            continue
        try:
            settings[name] = int(value)
        except ValueError:
            raise PipelineError(where, f"{name} must be an integer, not {value!r}") from None
    if not 2 <= settings["folds"] <= 20:
        raise PipelineError(path, f"folds must be between 2 and 20, not {settings['folds']}")
    return settings


def input_order(family: str) -> str:
    """The memory order of a family's preprocessed input: column-major for trees, which read
    one column at a time (as build_model's v2), row-major for the others."""
    return "F" if family == "decision_tree" else "C"


def build_pipeline(
    candidate: Candidate, numeric: list[str], categorical: list[str], seed: int
) -> Any:
    """The same preprocessing as v1/v2 (modeling.build_preprocess) before the candidate's model."""
    from sklearn.pipeline import Pipeline

    from loanpipe.stages import modeling

    order = input_order(candidate.family)
    return Pipeline(
        [
            ("preprocess", modeling.build_preprocess(numeric, categorical, order)),
            ("classifier", estimator(candidate, seed)),
        ]
    )


def check_class_counts(base: Path, labels: Any, folds: int) -> None:
    """Stratified k-fold CV needs at least ``folds`` rows of each class."""
    if min(int((labels == c).sum()) for c in (0, 1)) < folds:
        raise PipelineError(
            config.Layout(base).split_csv("y_train"),
            f"each class needs at least {folds} rows for {folds}-fold CV",
        )


def training_sha256(x_path: Path, y_path: Path) -> str:
    """One digest for the training rows (features and labels): results from other data differ."""
    import hashlib

    from loanpipe.stages import common

    return hashlib.sha256(
        (common.sha256_file(x_path) + common.sha256_file(y_path)).encode()
    ).hexdigest()


def result_path(base: Path, candidate_id: str) -> Path:
    return config.Layout(base).candidate_result(candidate_id)


def selection_path(base: Path) -> Path:
    return config.Layout(base).selection


@dataclass
class Training:
    """The training rows only (never the test split), ready for the pipelines."""

    features: Any
    labels: Any
    numeric: list[str]
    categorical: list[str]
    sha256: str


def read_training(base: Path) -> Training:
    """The training split (modeling.read_training, as train.py reads it) and its hash."""
    from loanpipe.stages import modeling

    layout = config.Layout(base)
    x_path, y_path = layout.split_csv("X_train"), layout.split_csv("y_train")
    features, labels, numeric, categorical = modeling.read_training(layout)
    return Training(features, labels, numeric, categorical, training_sha256(x_path, y_path))
