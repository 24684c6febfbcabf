"""loanfeatures.Preprocessor computes what scikit-learn's ColumnTransformer of imputers, scaler and
one-hot encoder computes (the models' preprocessing before it), faster; and old models still load.
"""

from __future__ import annotations

import pickle

import joblib
import numpy as np
import pandas as pd
import pytest
from conftest import REAL_DATA
from sklearn.base import clone
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from loanpipe.stages import modeling
from loanpipe.stages.features import Preprocessor


def reference(numeric: list[str], categorical: list[str]) -> ColumnTransformer:
    """The models' preprocessing up to this change, all scikit-learn."""
    return ColumnTransformer(
        [
            (
                "numeric",
                Pipeline([("impute", SimpleImputer()), ("scale", StandardScaler())]),
                numeric,
            ),
            (
                "categorical",
                Pipeline(
                    [
                        ("impute", SimpleImputer(strategy="most_frequent")),
                        ("encode", OneHotEncoder(drop="first", handle_unknown="ignore")),
                    ]
                ),
                categorical,
            ),
        ],
        sparse_threshold=0.0,
    )


def frames(rows: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(training, unseen) frames as the stages prepare them: numbers with gaps, a constant and a
    huge-valued column, text levels with gaps, a tie for the most frequent level, and levels the
    unseen rows have but training lacked."""
    rng = np.random.default_rng(seed)

    def make(n: int, levels: list[str]) -> pd.DataFrame:
        frame = pd.DataFrame(
            {
                "income": rng.lognormal(11, 0.6, n),
                "age": rng.integers(18, 80, n).astype(float),
                "constant": np.full(n, 7.0),
                "huge": rng.normal(1e9, 1.0, n),
                "home": rng.choice(levels, n).astype(object),
                "tie": np.array(["b", "a"] * (n // 2) + ["b"] * (n % 2), dtype=object),
            }
        )
        for name in ("income", "age", "home"):
            frame.loc[rng.random(n) < 0.1, name] = np.nan
        return modeling.prepare_features(
            frame, ["income", "age", "constant", "huge"], ["home", "tie"]
        )

    training = make(rows, ["RENT", "OWN", "MORTGAGE", "OTHER"])
    training.loc[training.index[-1], "tie"] = "a"  # equal counts of "a" and "b" when rows is even
    return training, make(rows // 3, ["RENT", "OWN", "CASTLE", "BOAT"])


NUMERIC, CATEGORICAL = ["income", "age", "constant", "huge"], ["home", "tie"]


def test_same_numbers_as_scikit_learns_column_transformer():
    training, unseen = frames(2000, seed=3)
    ours = Preprocessor(NUMERIC, CATEGORICAL)
    theirs = reference(NUMERIC, CATEGORICAL)
    np.testing.assert_allclose(
        ours.fit_transform(training), theirs.fit_transform(training), rtol=0, atol=1e-9
    )
    # unseen levels (CASTLE, BOAT) become all zeros in both, missing ones the training mode
    with pytest.warns(UserWarning, match="unknown categories"):
        expected = theirs.transform(unseen)
    np.testing.assert_allclose(ours.transform(unseen), expected, rtol=0, atol=1e-9)
    assert list(ours.get_feature_names_out()) == [
        "income", "age", "constant", "huge",
        "home_OTHER", "home_OWN", "home_RENT", "tie_b",
    ]  # fmt: skip


def test_column_major_output_for_trees_holds_the_same_numbers():
    training, unseen = frames(1000, seed=4)
    rows = Preprocessor(NUMERIC, CATEGORICAL).fit(training).transform(unseen)
    columns = Preprocessor(NUMERIC, CATEGORICAL, order="F").fit(training).transform(unseen)
    assert rows.flags.c_contiguous and columns.flags.f_contiguous
    np.testing.assert_array_equal(rows, columns)
    assert modeling.build_model("v2", NUMERIC, CATEGORICAL, seed=1)[0].order == "F"


def test_text_read_as_categoricals_gives_the_same_numbers_as_text_objects():
    """loancsv.as_frame hands text columns over as pandas categoricals; unused categories (a
    level only the test rows have) must not become levels of the model."""
    training, unseen = frames(1500, seed=6)
    levels = ["BOAT", "CASTLE", "MORTGAGE", "OTHER", "OWN", "RENT"]
    as_categories = {"home": pd.CategoricalDtype(levels), "tie": "category"}
    categorical_training = training.astype(as_categories)
    ours = Preprocessor(NUMERIC, CATEGORICAL).fit(categorical_training)
    assert list(ours.categories_[0]) == ["MORTGAGE", "OTHER", "OWN", "RENT"]
    expected = Preprocessor(NUMERIC, CATEGORICAL).fit(training).transform(unseen)
    np.testing.assert_array_equal(ours.transform(unseen.astype(as_categories)), expected)
    prepared = modeling.prepare_features(unseen.astype(as_categories), NUMERIC, CATEGORICAL)
    assert prepared["home"].dtype == as_categories["home"]  # kept, not converted cell by cell


def test_most_frequent_level_ties_go_to_the_smallest_like_simple_imputer():
    training = pd.DataFrame({"tie": np.array(["b", "a", "b", "a", np.nan], dtype=object)})
    ours = Preprocessor([], ["tie"]).fit(training)
    assert ours.modes_ == ["a"]
    # the missing row takes "a", the dropped first level: all zeros, as the reference does
    np.testing.assert_array_equal(ours.transform(training)[:, 0], [1, 0, 1, 0, 0])
    np.testing.assert_array_equal(
        ours.transform(training), reference([], ["tie"]).fit_transform(training)
    )


def test_transform_leaves_the_callers_frame_alone():
    training, unseen = frames(500, seed=5)
    before = unseen.copy()
    Preprocessor(NUMERIC, CATEGORICAL).fit(training).transform(unseen)
    pd.testing.assert_frame_equal(unseen, before)


def test_clones_pickles_and_cross_validates_like_any_scikit_learn_step():
    training, _ = frames(600, seed=7)
    labels = (training["income"].fillna(0) > training["income"].median()).to_numpy(int)
    model = Pipeline(
        [("preprocess", Preprocessor(NUMERIC, CATEGORICAL)), ("classifier", LogisticRegression())]
    )
    assert clone(model).get_params()["preprocess__categorical"] == CATEGORICAL
    scores = cross_val_score(model, training, labels, cv=3)
    assert scores.min() > 0.7  # it learns: half of the rows are positive
    fitted = model.fit(training, labels)
    again = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_array_equal(again.predict(training), fitted.predict(training))


@pytest.mark.skipif(not REAL_DATA.is_file(), reason=f"real data set not found at {REAL_DATA}")
def test_same_numbers_on_the_real_data_with_gaps():
    raw = pd.read_csv(REAL_DATA).drop(columns="loan_status")
    rng = np.random.default_rng(11)
    for name in ("person_income", "loan_int_rate", "person_education", "loan_intent"):
        raw.loc[rng.random(len(raw)) < 0.05, name] = np.nan
    numeric, categorical = modeling.split_columns(raw)
    features = modeling.prepare_features(raw, numeric, categorical)
    np.testing.assert_allclose(
        Preprocessor(numeric, categorical).fit_transform(features),
        reference(numeric, categorical).fit_transform(features),
        rtol=0,
        atol=1e-9,
    )


def test_models_saved_before_the_preprocessor_still_name_their_columns(tmp_path):
    training, unseen = frames(300, seed=13)
    labels = np.arange(len(training)) % 2
    old = Pipeline(
        [("preprocess", reference(NUMERIC, CATEGORICAL)), ("classifier", LogisticRegression())]
    ).fit(training, labels)
    new = modeling.build_model("v1", NUMERIC, CATEGORICAL, seed=42).fit(training, labels)
    for model in (old, new):
        joblib.dump(model, tmp_path / "model.pkl")
        loaded = joblib.load(tmp_path / "model.pkl")
        assert modeling.model_columns(loaded) == (NUMERIC, CATEGORICAL)
        with modeling.quiet_unknown_categories():
            # text as objects or as categoricals (as the stages now read it): same predictions
            categorical = unseen.astype({name: "category" for name in CATEGORICAL})
            np.testing.assert_array_equal(loaded.predict(categorical), loaded.predict(unseen))
