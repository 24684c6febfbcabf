"""The model search's shared folds (stages/folds.py): each fold preprocessed once, cached on the
shared filesystem, and every candidate scored on the cached matrices exactly as its whole
pipeline (preprocessing + classifier) fitted per fold scores; a broken cache is rebuilt."""

from __future__ import annotations

import importlib.util
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from conftest import SCRIPTS, run_stage
from sklearn.base import clone
from sklearn.metrics import accuracy_score, f1_score, get_scorer, precision_score, recall_score
from sklearn.model_selection import StratifiedKFold

from loanpipe import config
from loanpipe.stages import candidates, folds
from loanpipe.stages.candidates import Candidate

SETTINGS = {"scoring": "f1", "folds": 3, "seed": 42}
ROWS = [
    Candidate("lr", "logistic_regression", {"C": 0.5, "solver": "liblinear"}),
    Candidate("dt", "decision_tree", {"max_depth": 5}),
    Candidate("hgb", "hist_gradient_boosting", {"max_iter": 15, "class_weight": "balanced"}),
]


def search_script():
    spec = importlib.util.spec_from_file_location("search_script", SCRIPTS / "search.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def split_base(base_dir: Path) -> Path:
    for stage in ("process.py", "split.py"):
        run_stage(stage, base_dir)
    return base_dir


def train_sha(base: Path) -> str:
    layout = config.Layout(base)
    return candidates.training_sha256(layout.split_csv("X_train"), layout.split_csv("y_train"))


def pipeline_scores(base: Path, row: Candidate) -> list[float]:
    """The search as it was: the whole pipeline cloned and fitted per fold on the raw rows."""
    training = candidates.read_training(base)
    template = candidates.build_pipeline(row, training.numeric, training.categorical, 42)
    splitter = StratifiedKFold(SETTINGS["folds"], shuffle=True, random_state=SETTINGS["seed"])
    x, y, scores = training.features, training.labels, []
    for train_idx, val_idx in splitter.split(x, y):
        model = clone(template)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.fit(x.iloc[train_idx], y[train_idx])
        scores.append(float(get_scorer("f1")(model, x.iloc[val_idx], y[val_idx])))
    return scores


def test_cached_folds_score_every_family_as_the_whole_pipeline_does(split_base: Path) -> None:
    search = search_script()
    sha = train_sha(split_base)
    for row in ROWS:
        cv = search.cross_validate(row, folds.folds(split_base, SETTINGS, sha), SETTINGS)
        assert cv["fold_scores"] == pipeline_scores(split_base, row), row.id
    # The first candidate built the folds; the others read them from the cache.
    assert sorted(p.name for p in folds.folds_dir(split_base).iterdir()) == [
        "fold-0.npz",
        "fold-1.npz",
        "fold-2.npz",
    ]
    assert all(not fold.built for fold in folds.folds(split_base, SETTINGS, sha))


def test_search_job_writes_the_same_result_with_or_without_the_cache(split_base: Path) -> None:
    args = ("--candidate", "dt-a", "--family", "decision_tree", "--params", "max_depth=4")
    result = split_base / "staging/search/candidates/dt-a.json"
    run_stage("search.py", split_base, *args)
    first = json.loads(result.read_text())
    assert [f["fold_cached"] for f in first["folds_detail"]] == [False] * 5
    result.unlink()
    run_stage("search.py", split_base, *args)
    second = json.loads(result.read_text())
    assert [f["fold_cached"] for f in second["folds_detail"]] == [True] * 5
    for key in ("fold_scores", "mean", "std", "mean_metrics", "train_rows", "cache_key"):
        assert first[key] == second[key], key


def damage(path: Path, how: str) -> None:
    data = bytearray(path.read_bytes())
    if how == "truncated":
        path.write_bytes(bytes(data[: len(data) // 2]))
    elif how == "flipped":  # one byte inside the first matrix's numbers: only its CRC-32 tells
        data[len(data) // 3] ^= 0xFF
        path.write_bytes(bytes(data))
    else:
        path.write_bytes(b"")


@pytest.mark.parametrize("how", ["truncated", "flipped", "empty"])
def test_a_partial_or_corrupt_fold_file_is_rebuilt_not_trusted(split_base, how) -> None:
    sha = train_sha(split_base)
    original = [fold.x_train.copy() for fold in folds.folds(split_base, SETTINGS, sha)]
    broken = folds.fold_path(split_base, 1)
    damage(broken, how)
    key = folds.cache_key(SETTINGS, sha)
    assert folds.load(broken, key, 1) is None
    again = list(folds.folds(split_base, SETTINGS, sha))
    assert [fold.built for fold in again] == [False, True, True]
    for fold, matrix in zip(again, original, strict=True):
        assert np.array_equal(fold.x_train, matrix)
    assert folds.load(broken, key, 1) is not None  # written again, whole


def test_a_fold_of_other_training_rows_or_settings_is_not_used(split_base) -> None:
    sha = train_sha(split_base)
    list(folds.folds(split_base, SETTINGS, sha))
    path = folds.fold_path(split_base, 0)
    assert folds.load(path, folds.cache_key(SETTINGS, sha), 0) is not None
    assert folds.load(path, folds.cache_key(SETTINGS, "0" * 64), 0) is None
    assert folds.load(path, folds.cache_key({**SETTINGS, "seed": 7}, sha), 0) is None
    other = list(folds.folds(split_base, {**SETTINGS, "seed": 7}, sha))
    assert all(fold.built for fold in other)


def test_label_metrics_equal_scikit_learns_to_the_last_bit() -> None:
    label_metrics = search_script().label_metrics
    rng = np.random.default_rng(0)
    for rows in (1, 2, 7, 100, 7200):
        for share, said in ((0.0, 0.0), (0.3, 0.0), (0.0, 0.4), (0.2, 0.7), (1.0, 1.0)):
            y = (rng.random(rows) < share).astype(int)
            p = (rng.random(rows) < said).astype(int)
            assert label_metrics(y, p) == {
                "precision": float(precision_score(y, p, zero_division=0)),
                "recall": float(recall_score(y, p, zero_division=0)),
                "f1": float(f1_score(y, p, zero_division=0)),
                "accuracy": float(accuracy_score(y, p)),
            }


def test_the_result_key_is_the_fingerprints_candidate_key(tmp_path: Path) -> None:
    """search.py computes core.candidate_key with the PRE script's parsed imports: same key."""
    from loanpipe.fingerprint import core

    result_key = search_script().result_key
    row, sha = ROWS[0], "ab" * 32
    want = core.candidate_key(row, SETTINGS, sha)
    assert result_key(row, SETTINGS, sha, tmp_path) == want  # no imports.json yet
    cache_path, cache = core.imports_cache(tmp_path)
    core.code_digests(SCRIPTS / "search.py", cache)
    cache_path.parent.mkdir(parents=True)
    cache_path.write_text(json.dumps(cache))
    assert result_key(row, SETTINGS, sha, tmp_path) == want
    assert result_key(ROWS[1], SETTINGS, sha, tmp_path) != want


def test_select_model_removes_the_shared_folds_once_the_search_is_over(
    split_base: Path, tmp_path: Path
) -> None:
    table = tmp_path / "candidates.txt"
    table.write_text("lr-a logistic_regression C=1.0 solver=liblinear\ndt-a decision_tree\n")
    for row in candidates.read_table(table):
        words = row.params_text().split()
        run_stage(
            "search.py",
            split_base,
            "--candidate",
            row.id,
            "--family",
            row.family,
            "--params",
            *words,
        )
    assert len(list(folds.folds_dir(split_base).glob("fold-*.npz"))) == 5
    run_stage("select_model.py", split_base, "--table", str(table))
    assert config.Layout(split_base).selection.is_file()
    assert not folds.folds_dir(split_base).exists()


def test_the_fold_key_covers_the_code_that_makes_the_matrices() -> None:
    """Each function folds.build calls to read and preprocess the rows lives in a file of the
    cache key: an edit there makes new folds instead of trusting the old ones."""
    import inspect

    from loanpipe.stages import features, modeling

    makers = (
        candidates.read_training,
        modeling.build_preprocess,
        features.Preprocessor,
        folds.build,
    )
    assert {Path(inspect.getsourcefile(f)).name for f in makers} <= set(folds.CODE)
