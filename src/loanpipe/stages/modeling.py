"""The models of the loan-approval pipeline: features, preprocessing, the two classifiers,
metrics and the deployment rule. Used by the stages that train, evaluate, deploy and search.

Importing it is cheap (pandas and scikit-learn are imported inside the functions that need them),
so deploy.py and the report tools use it without paying for scikit-learn.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from loanpipe.config import Layout
from loanpipe.errors import PipelineError
from loanpipe.stages import common, csvfiles

MODELS: dict[str, str] = {"v1": "Logistic Regression", "v2": "Decision Tree"}
METRIC_KEYS = ("Accuracy", "Precision", "Recall", "F1 Score")


# ---------------------------------------------------------------------------- features


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


def prepare_features(frame: Any, numeric: list[str], categorical: list[str]) -> Any:
    """The model's feature columns in a fixed order and type: numbers as floats, categories as text
    (a pandas categorical of strings, as csvfiles.as_frame gives text columns, is kept as it is).

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
        if isinstance(column.dtype, pd.CategoricalDtype) and pd.api.types.is_string_dtype(
            column.cat.categories
        ):
            out[name] = column
            continue
        # One Python string per distinct value, shared by its rows (as pandas' own CSV parser
        # does): converting row by row costs a string object per cell, 200 MiB at 1M rows.
        codes, levels = pd.factorize(column, use_na_sentinel=True)
        text = np.array(
            [np.nan] + [v if isinstance(v, float) else str(v) for v in levels], dtype=object
        )
        out[name] = pd.Series(text[codes + 1], index=frame.index, dtype=object)
    return out


# ---------------------------------------------------------------------------- models


def build_preprocess(numeric: list[str], categorical: list[str], order: str = "C") -> Any:
    """Imputation, scaling and one-hot encoding, fitted with the classifier on training rows only
    (features.Preprocessor; ``order`` of its output array). Shared by the two models and the
    search's candidates."""
    from loanpipe.stages.features import Preprocessor

    return Preprocessor(numeric=list(numeric), categorical=list(categorical), order=order)


def read_training(layout: Layout) -> tuple[Any, Any, list[str], list[str]]:
    """The training split, checked and ready for a pipeline: ``(features, labels, numeric,
    categorical)`` from ``X_train.csv`` and ``y_train.csv`` (never the test rows)."""
    x_path, y_path = layout.split_csv("X_train"), layout.split_csv("y_train")
    x_table = csvfiles.read_in_background(x_path, "training features")
    y_table = csvfiles.read_in_background(y_path, "training labels")
    # Whoever reads the training rows fits a model: scikit-learn's import (most of a second)
    # runs while the CSV files are parsed.
    import sklearn.pipeline  # noqa: F401

    import loanpipe.stages.features  # noqa: F401

    x_train, y_train = csvfiles.as_frame(x_table()), csvfiles.as_frame(y_table())
    if len(x_train) != len(y_train):
        raise PipelineError(y_path, f"has {len(y_train)} rows but {x_path.name} has {len(x_train)}")
    if len(y_train.columns) != 1:
        raise PipelineError(y_path, f"expected one label column, found {len(y_train.columns)}")
    numeric, categorical = split_columns(x_train)
    features = prepare_features(x_train, numeric, categorical)
    del x_train  # the model needs only the features: at 10M rows this is 2 GiB less at the peak
    common.release_memory()
    return features, y_train.iloc[:, 0].to_numpy(), numeric, categorical


def build_model(version: str, numeric: list[str], categorical: list[str], seed: int) -> Any:
    """Preprocessing fitted together with the classifier, so the model scores raw rows.

    v1: StandardScaler + LogisticRegression (Newton-Cholesky solver); v2: StandardScaler +
    DecisionTreeClassifier (seeded); each after build_preprocess.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.tree import DecisionTreeClassifier

    if version == "v1":
        # Newton-Cholesky: scikit-learn's choice when rows far outnumber columns (here about 20
        # after one-hot encoding). It reaches the optimum in about 8 iterations; lbfgs at its
        # default tolerance stopped short of it after 27 (45k rows) to 45 (1M rows), twice the time.
        classifier = LogisticRegression(solver="newton-cholesky", max_iter=1000, random_state=seed)
    elif version == "v2":
        classifier = DecisionTreeClassifier(random_state=seed)
    else:
        raise ValueError(f"unknown model version {version!r}")
    order = "F" if version == "v2" else "C"  # see features.Preprocessor
    return Pipeline(
        [("preprocess", build_preprocess(numeric, categorical, order)), ("classifier", classifier)]
    )


def model_columns(model: Any) -> tuple[list[str], list[str]]:
    """The (numeric, categorical) raw columns a fitted pipeline from build_model expects: its
    Preprocessor's, or for a model from before it (an archived one) its ColumnTransformer's."""
    preprocess = model.named_steps["preprocess"]
    if hasattr(preprocess, "transformers_"):
        transformers = {name: cols for name, _, cols in preprocess.transformers_}
        return list(transformers.get("numeric", [])), list(transformers.get("categorical", []))
    return list(preprocess.numeric), list(preprocess.categorical)


@contextlib.contextmanager
def quiet_unknown_categories() -> Iterator[None]:
    """Silence scikit-learn's warning that a category unseen in training was encoded as zeros
    (models from before features.Preprocessor, which encodes it as zeros silently)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*unknown categories.*")
        yield


def compute_metrics(y_true: Any, y_pred: Any, model_name: str) -> dict[str, Any]:
    """The original system's metric keys (binary scores, positive class 1) and the confusion
    matrix."""
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
    """Validate a metrics file's content: the original system's keys, each a finite number in
    [0, 1]."""
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
    """The deployment rule: higher precision; on a tie higher F1; on a full tie v1 (the lowest
    version).

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
