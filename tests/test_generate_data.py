"""The sample-data generator (issue 2, item 5)."""

from __future__ import annotations

import gzip

import pandas as pd
import pytest
from conftest import REAL_DATA, load_script, run_stage

generate_data = load_script("generate_data")
LEVELS, generate = generate_data.LEVELS, generate_data.generate

COLUMNS = [
    "person_age", "person_gender", "person_education", "person_income", "person_emp_exp",
    "person_home_ownership", "loan_amnt", "loan_intent", "loan_int_rate", "loan_percent_income",
    "cb_person_cred_hist_length", "credit_score", "previous_loan_defaults_on_file", "loan_status",
]  # fmt: skip


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path):
    for name, seed in (("a", "1"), ("b", "1"), ("c", "2")):
        run_stage("generate_data.py", tmp_path, "--rows", "500", "--seed", seed,
                  "--output", str(tmp_path / f"{name}.csv"))  # fmt: skip
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()
    assert (tmp_path / "a.csv").read_bytes() != (tmp_path / "c.csv").read_bytes()


def test_schema_ranges_levels_and_balance():
    frame = generate(20000, 42)
    assert list(frame.columns) == COLUMNS
    assert frame["loan_status"].mean() == pytest.approx(0.2222, abs=0.01)
    for column, (levels, _) in LEVELS.items():
        assert set(frame[column].dropna()) == set(levels), column
    assert frame["person_age"].between(20, 144).all()
    assert frame["loan_int_rate"].dropna().between(5.42, 20).all()
    assert frame["loan_amnt"].between(500, 35000).all()
    assert frame["credit_score"].between(390, 850).all()
    # Gaps exist (about 1 % in a few columns) so imputation is exercised; the target has none.
    gaps = frame.isna().mean()
    assert 0.005 < gaps["person_income"] < 0.02 and 0.005 < gaps["person_education"] < 0.02
    assert gaps["loan_status"] == 0
    # As in the real data: no approval follows a previous default.
    assert frame.loc[frame.previous_loan_defaults_on_file == "Yes", "loan_status"].sum() == 0


@pytest.mark.skipif(not REAL_DATA.is_file(), reason=f"real data set not found at {REAL_DATA}")
def test_matches_the_real_data_set_schema():
    real = pd.read_csv(REAL_DATA, nrows=2000)
    sample = generate(2000, 42)
    assert list(sample.columns) == list(real.columns)
    for column in real.columns:
        assert pd.api.types.is_numeric_dtype(real[column]) == pd.api.types.is_numeric_dtype(
            sample[column]
        ), column
    for column in LEVELS:
        assert set(sample[column].dropna()) <= set(real[column])


def test_gzip_output(tmp_path):
    run_stage("generate_data.py", tmp_path, "--rows", "50", "--output", str(tmp_path / "d.csv.gz"))
    with gzip.open(tmp_path / "d.csv.gz", "rt") as handle:
        assert handle.readline().strip().split(",") == COLUMNS
