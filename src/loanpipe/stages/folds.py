"""The model search's cross-validation folds, preprocessed once and shared by every candidate.

Every candidate's pipeline starts with the same preprocessing (features.Preprocessor, fitted on
each fold's training part), so the 26 candidates x 5 folds of the search would fit it 130 times
on the same rows and read the training CSV 26 times. Instead the first search job that needs a
fold writes it, preprocessed, to ``BASE_DIR/staging/search/folds/fold-<k>.npz`` and every other
job loads it: fitting the classifier on the cached matrices gives exactly the numbers the whole
pipeline gives (Pipeline.fit is the preprocessor's fit_transform, then the classifier's fit;
tests/test_search_folds.py holds them equal).

A fold file holds the fold's preprocessed training and validation matrices (float64, row-major,
as the Preprocessor's default output), their labels and the cache key: the sha256 of the training
rows, the fold settings (folds, seed), this format and the code that makes the matrices (this
module, candidates.py, features.py, modeling.py, csvfiles.py) and the pins. Written atomically
(a temporary file renamed over the old one: two jobs building the same fold at once both write
the same bytes);
read back only when its key matches and every array reads whole (a zip member's CRC-32 is checked
as it is read): a partial, corrupt or stale file is rebuilt, never trusted.
"""

from __future__ import annotations

import hashlib
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loanpipe import config
from loanpipe.errors import PipelineError
from loanpipe.stages import common

FORMAT = "loanpipe-search-fold-1"
# The code whose output the matrices are: a change to any of them makes a new key.
CODE = ("folds.py", "candidates.py", "features.py", "modeling.py", "csvfiles.py")
ARRAYS = ("x_train", "y_train", "x_val", "y_val")


@dataclass
class Fold:
    """One fold: the preprocessed training part and validation part, with their labels."""

    number: int
    x_train: Any
    y_train: Any
    x_val: Any
    y_val: Any
    built: bool = False  # made by this process (False: loaded from the cache)


def folds_dir(base: Path) -> Path:
    return config.Layout(base).search_dir / "folds"


def fold_path(base: Path, number: int) -> Path:
    return folds_dir(base) / f"fold-{number}.npz"


def cache_key(settings: dict[str, Any], train_sha256: str) -> str:
    """What the fold matrices depend on: training rows, folds and seed, format, code, pins."""
    here = Path(__file__).resolve().parent
    parts = [FORMAT, train_sha256, str(settings["folds"]), str(settings["seed"])]
    parts += [common.sha256_file(here / name) for name in CODE]
    parts.append(common.sha256_file(config.PROJECT_DIR / "requirements.txt"))
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def load(path: Path, key: str, number: int) -> Fold | None:
    """The fold in ``path`` if it is whole and has this key; None otherwise (to be rebuilt)."""
    import numpy as np

    try:
        with np.load(path, allow_pickle=False) as data:
            if str(data["key"]) != key:
                return None
            arrays = [data[name] for name in ARRAYS]  # each read whole: CRC-32 checked
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None
    x_train, y_train, x_val, y_val = arrays
    if x_train.ndim != 2 or x_val.ndim != 2 or x_train.shape[1] != x_val.shape[1]:
        return None
    if len(x_train) != len(y_train) or len(x_val) != len(y_val):
        return None
    return Fold(number, x_train, y_train, x_val, y_val)


def save(fold: Fold, path: Path, key: str) -> bool:
    """Write one fold atomically (uncompressed: loading it costs a read, not a decompression);
    False when it cannot be written (the cache only saves time: the job goes on without it)."""
    import numpy as np

    arrays = {name: getattr(fold, name) for name in ARRAYS}
    try:
        with common.atomic_output(path, "wb") as handle:
            np.savez(handle, key=np.array(key), **arrays)
    except OSError as exc:
        common.log(f"fold {fold.number} not cached: {common.describe_os_error(exc)}")
        return False
    return True


def build(base: Path, settings: dict[str, Any]) -> Iterator[Fold]:
    """Every fold from the training CSV: stratified k-fold (shuffled with the seed) and the
    Preprocessor fitted on each fold's training part, as the search's pipelines do."""
    from sklearn.model_selection import StratifiedKFold

    from loanpipe.stages import candidates, modeling

    training = candidates.read_training(base)
    candidates.check_class_counts(base, training.labels, settings["folds"])
    splitter = StratifiedKFold(
        n_splits=settings["folds"], shuffle=True, random_state=settings["seed"]
    )
    x, y = training.features, training.labels
    for number, (train_idx, val_idx) in enumerate(splitter.split(x, y)):
        preprocess = modeling.build_preprocess(training.numeric, training.categorical, "C")
        x_train = preprocess.fit_transform(x.iloc[train_idx])
        x_val = preprocess.transform(x.iloc[val_idx])
        yield Fold(number, x_train, y[train_idx], x_val, y[val_idx], built=True)


def build_all(base: Path, settings: dict[str, Any], key: str) -> dict[int, Fold]:
    """Build and write every fold, one in memory at a time (jobs starting meanwhile find the
    whole cache soon); the folds that could not be written, kept in memory."""
    kept = {}
    for fold in build(base, settings):
        if not save(fold, fold_path(base, fold.number), key):
            kept[fold.number] = fold
    return kept


def folds(base: Path, settings: dict[str, Any], train_sha256: str) -> Iterator[Fold]:
    """The search's folds, one at a time, from the cache; a fold missing or broken there first
    has every fold built from the training CSV and written again."""
    key = cache_key(settings, train_sha256)
    kept: dict[int, Fold] | None = None
    for number in range(settings["folds"]):
        path = fold_path(base, number)
        fold = load(path, key, number)
        if fold is None and kept is None:
            kept = build_all(base, settings, key)
            fold = load(path, key, number)
        if fold is None and kept is not None:
            fold = kept.pop(number, None)
        if fold is None:
            raise PipelineError(path, "written but cannot be read back (a full or failing disk?)")
        fold.built = kept is not None
        yield fold
