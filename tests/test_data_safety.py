"""Data safety (issue 12): values that cannot be trusted are refused at data_processing, naming
loan_data.csv, the column, the line (as an editor numbers it) and the value; sample data never
lands in a used base directory; a refusal changes nothing on disk. Each case runs through the
stage script and through `make local`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from conftest import SCRIPTS, run_stage
from test_local_pipeline import last_run_attempts, make

from loanpipe import errors
from loanpipe.pipeline import FINAL_NODE as FINAL
from loanpipe.stages import common, csvfiles, modeling

RAW = "loan_data.csv"
# What a run writes besides its results: job logs and run records. Everything else under a base
# directory (the input, staging outputs, the deployed model, its archive) must not change.
RUN_FILES = {"output", "error", "log", "dags", "report", ".pipeline.lock"}


def snapshot(base: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(base)): p.read_bytes()
        for p in sorted(base.rglob("*"))
        if p.is_file() and p.relative_to(base).parts[0] not in RUN_FILES
    }


def edit(base: Path, change) -> None:
    """Rewrite loan_data.csv through pandas (one record per line: record i is on line i + 2)."""
    frame = pd.read_csv(base / RAW, keep_default_na=False, dtype=str)
    change(frame).to_csv(base / RAW, index=False, lineterminator="\n")


def set_value(column: str, value: str, rows) -> callable:
    def change(frame):
        frame.loc[rows(frame.index), column] = value
        return frame

    return change


def truncate_last_line(base: Path) -> None:
    """The last line cut after its seventh field, as an interrupted copy leaves it."""
    lines = (base / RAW).read_text().splitlines(keepends=True)
    lines[-1] = ",".join(lines[-1].split(",")[:7])
    (base / RAW).write_text("".join(lines))


def extra_field(base: Path) -> None:
    lines = (base / RAW).read_text().splitlines(keepends=True)
    lines[100] = lines[100].rstrip("\n") + ",42\n"
    (base / RAW).write_text("".join(lines))


def blank_line_and_quoted_newline(base: Path) -> None:
    """Line numbers as an editor shows them: a blank line and a field spanning two lines first."""
    lines = (base / RAW).read_text().splitlines(keepends=True)
    header = lines[0].rstrip("\n").split(",")
    first = lines[1].rstrip("\n").split(",")
    first[header.index("person_education")] = '"Bach\nelor"'
    third = lines[3].rstrip("\n").split(",")
    third[header.index("credit_score")] = "n/a-unknown"
    lines[1], lines[3] = ",".join(first) + "\n", ",".join(third) + "\n"
    (base / RAW).write_text(lines[0] + "\n" + "".join(lines[1:]))


def few_rows(count: int, positives: int | None = None):
    def change(frame):
        frame = frame.head(count).copy()
        if positives is not None:
            frame["loan_status"] = ["1"] * positives + ["0"] * (count - positives)
        return frame

    return change


# case: (damage to loan_data.csv, the one error line's expected text after "loan_data.csv: ")
REFUSED = {
    "text in a numeric column": (
        lambda b: edit(b, set_value("person_income", "n/a-unknown", lambda i: i % 7 == 3)),
        "column 'person_income' holds numbers but also text: line 5 has 'n/a-unknown' "
        "(429 such value(s) in all",
    ),
    "inf": (
        lambda b: edit(b, set_value("loan_amnt", "inf", lambda i: i == 10)),
        "column 'loan_amnt' holds a number that is not finite: line 12 has inf",
    ),
    "-inf": (
        lambda b: edit(b, set_value("loan_int_rate", "-inf", lambda i: i >= 40)),
        "column 'loan_int_rate' holds a number that is not finite: line 42 has -inf "
        "(2960 such value(s) in all",
    ),
    "truncated last line": (truncate_last_line, "line 3001 has 7 field(s) but the header has 14"),
    "a row with an extra field": (extra_field, "line 101 has 15 field(s) but the header has 14"),
    "line numbers as in an editor": (
        blank_line_and_quoted_newline,
        "column 'credit_score' holds numbers but also text: line 6 has 'n/a-unknown'",
    ),
    "too few rows": (
        lambda b: edit(b, few_rows(8)),
        "too few rows to split: 8 row(s) with a label (need at least 10)",
    ),
    "a class the split leaves out": (
        lambda b: edit(b, few_rows(30, positives=1)),
        "too few rows to split: the ",
    ),
    "one class": (
        lambda b: edit(b, few_rows(50, positives=0)),
        "target column 'loan_status' has a single class [0]",
    ),
}


def assert_one_error(output: str, text: str, code_seen: int, code: int) -> None:
    assert code_seen == code, output
    assert "Traceback" not in output, output
    errors = [line for line in output.splitlines() if "error: " in line and RAW in line]
    assert errors, output
    assert len({e[e.index("error: ") :] for e in errors}) == 1, errors
    assert f"{RAW}: {text}" in errors[0], errors[0]


@pytest.fixture
def deployed(finished_base, tmp_path) -> Path:
    """A copy of a base directory after a complete run: a deployment, staging outputs."""
    base = tmp_path / "base"
    shutil.copytree(finished_base, base)
    (base / "model/archive/20260101T000000Z").mkdir(parents=True)
    shutil.copy(base / "model/deployed_model.pkl", base / "model/archive/20260101T000000Z")
    return base


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_refused_by_the_stage_changing_nothing(deployed, case):
    damage, text = REFUSED[case]
    damage(deployed)
    before = snapshot(deployed)
    result = run_stage("process.py", deployed, check=False)
    assert_one_error(result.stderr, text, result.returncode, errors.EXIT_BAD_INPUT)
    assert snapshot(deployed) == before
    assert not list(deployed.rglob("*.tmp"))


@pytest.mark.parametrize(
    "case", ["text in a numeric column", "inf", "truncated last line", "too few rows"]
)
def test_refused_by_make_local_changing_nothing(deployed, case):
    damage, text = REFUSED[case]
    damage(deployed)
    before = snapshot(deployed)
    dag_dir = deployed / "dags"  # where make paths renders the DAG and the runs are recorded
    result = make("local", dag_dir, deployed)
    assert result.returncode != 0
    assert_one_error(result.stdout, text, 65, errors.EXIT_BAD_INPUT)
    attempts = last_run_attempts(dag_dir)
    # not retried; then the FINAL node reports and exits 1, so that the DAG stays failed
    assert [(r["node"], r["exit_code"]) for r in attempts] == [("data_processing", 65), (FINAL, 1)]
    assert "generating" not in result.stdout
    assert snapshot(deployed) == before


# ---------------------------------------------------------------------------- valid but odd


def test_missing_markers_codes_and_padded_numbers_are_valid(base_dir):
    """NA markers and empty fields are missing values (imputed later); a column of a handful of
    number-like codes is categorical; numbers padded with spaces are numbers."""

    def change(frame):
        frame.loc[frame.index % 5 == 0, "person_income"] = ""
        for i, marker in enumerate(["NA", "N/A", "null", "NaN", "None", "n/a"]):
            frame.loc[i * 7 + 1, "loan_amnt"] = marker
        frame["dependents"] = [("0", "1", "2", "3+")[i % 4] for i in frame.index]
        frame["score_text"] = [f" {v} " for v in frame["credit_score"]]
        return frame

    edit(base_dir, change)
    run_stage("process.py", base_dir)
    processed = csvfiles.read_csv(base_dir / "staging/split_data/processed_data.csv")
    numeric, categorical = modeling.split_columns(processed.drop(columns=["loan_status"]))
    assert {"person_income", "loan_amnt", "score_text"} <= set(numeric)
    assert "dependents" in categorical
    assert processed["person_income"].isna()[processed.index % 5 == 0].all()
    assert processed["loan_amnt"].isna().sum() == 6
    assert sorted(processed["dependents"].unique()) == ["0", "1", "2", "3+"]
    run_stage("split.py", base_dir)
    run_stage("train.py", base_dir, "--model", "v1")  # the odd columns train without a hitch


def test_mostly_words_with_some_numbers_stays_categorical(base_dir):
    edit(base_dir, set_value("loan_intent", "12", lambda i: i % 3 == 0))
    run_stage("process.py", base_dir)


def test_a_count_with_words_in_it_is_refused(base_dir):
    # Many distinct numbers and some text: a measurement with junk in it, not codes.
    edit(base_dir, set_value("person_emp_exp", "unknown", lambda i: i % 50 == 0))
    result = run_stage("process.py", base_dir, check=False)
    assert_one_error(
        result.stderr,
        "column 'person_emp_exp' holds numbers but also text: line 2 has 'unknown'",
        result.returncode,
        errors.EXIT_BAD_INPUT,
    )


# ---------------------------------------------------------------------------- OS errors


def without_dac_override(command: list[str]) -> list[str]:
    """Root reads any file whatever its mode: drop the capabilities that allow it."""
    if os.geteuid() != 0:
        return command
    if not shutil.which("setpriv"):
        pytest.skip("running as root without setpriv to drop CAP_DAC_OVERRIDE")
    return ["setpriv", "--bounding-set", "-dac_override,-dac_read_search", *command]


def test_unreadable_input_is_exit_1_in_one_line_and_retried_by_make_local(deployed):
    before = snapshot(deployed)
    (deployed / RAW).chmod(0)
    stage = [sys.executable, str(SCRIPTS / "process.py"), "--base-dir", str(deployed)]
    result = subprocess.run(without_dac_override(stage), capture_output=True, text=True)
    assert_one_error(result.stderr, "raw loan data: no permission", result.returncode, 1)
    assert "EACCES" in result.stderr

    dag_dir = deployed / "dags"  # where make paths renders the DAG and the runs are recorded
    command = ["make", "--no-print-directory", "-C", str(SCRIPTS.parent), "local",
               f"BASE_DIR={deployed}"]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAKE") and k != "BASE_DIR"}
    env["CONDOR_CONFIG"] = "/dev/null"
    result = subprocess.run(
        without_dac_override(command), capture_output=True, text=True, env=env, timeout=900
    )
    assert result.returncode != 0
    attempts = last_run_attempts(dag_dir)
    assert [(r["node"], r["exit_code"]) for r in attempts] == [("data_processing", 1)] * 3 + [
        (FINAL, 1)  # the FINAL node (the report) passes the failure on
    ]
    (deployed / RAW).chmod(0o644)
    assert snapshot(deployed) == before


# ---------------------------------------------------------------------------- sample data


def generate(folder: Path) -> subprocess.CompletedProcess:
    return run_stage(
        "generate_data.py", folder, "--rows", "50", "--only-new-base-dir", "--output",
        str(folder / RAW), check=False,
    )  # fmt: skip


def test_sample_data_only_into_a_new_or_empty_base_directory(tmp_path):
    assert generate(tmp_path / "new" / "base").returncode == 0
    (tmp_path / "empty").mkdir()
    assert generate(tmp_path / "empty").returncode == 0
    rendered = tmp_path / "rendered"  # `make paths` ran first: a rendered DAG, empty log folders
    for name in ("dags", "output", "error", "log"):
        (rendered / name).mkdir(parents=True)
    (rendered / "dags/dagfile.dag").write_text("JOB a a.sub\n")
    assert generate(rendered).returncode == 0
    for name in ("new/base", "empty", "rendered"):
        assert (tmp_path / name / RAW).is_file(), name


def test_make_paths_then_make_local_still_gets_sample_data(tmp_path):
    base = tmp_path / "base"
    assert make("paths", base / "dags", base).returncode == 0  # dags/, empty output/ error/ log/
    result = make("data", base / "dags", base)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (base / RAW).is_file()


@pytest.mark.parametrize(
    "holds", ["model/deployed_model.pkl", "staging/x/", "dags/dagfile.dag.metrics", "notes.txt"]
)
def test_sample_data_refused_in_a_used_base_directory(tmp_path, holds):
    base = tmp_path / "base"
    (base / holds).parent.mkdir(parents=True, exist_ok=True)
    if holds.endswith("/"):
        (base / holds).mkdir()
    else:
        (base / holds).write_text("x\n")
    before = sorted(str(p) for p in base.rglob("*"))
    result = generate(base)
    assert result.returncode == errors.EXIT_BAD_INPUT
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if "error:" in line]
    assert len(lines) == 1 and "not a new base directory" in lines[0], result.stderr
    assert holds.split("/")[0] in lines[0]
    assert sorted(str(p) for p in base.rglob("*")) == before


def test_make_local_never_deploys_sample_data_over_a_deployment(deployed):
    (deployed / RAW).unlink()  # an unmounted share, a typo, a moved file
    before = snapshot(deployed)
    dag_dir = deployed / "dags"  # where make paths renders the DAG and the runs are recorded
    result = make("local", dag_dir, deployed)  # sample data only when asked for
    assert result.returncode != 0
    output = result.stdout + result.stderr
    errors = [line for line in output.splitlines() if "error:" in line]
    assert len(errors) == 1 and f"`make data BASE_DIR={deployed}`" in errors[0], output
    result = make("data local", dag_dir, deployed)  # asked for: never over a deployment
    assert result.returncode != 0
    output = result.stdout + result.stderr
    errors = [line for line in output.splitlines() if "error:" in line]
    assert len(errors) == 1 and "not a new base directory (it holds model/" in errors[0], output
    assert not (deployed / RAW).exists()
    assert snapshot(deployed) == before
    assert not (dag_dir / "dagfile.dag.local.jsonl").exists()  # no run started


# ---------------------------------------------------------------------------- the split


@pytest.mark.parametrize(
    ("rows", "test_size", "seed"), [(10, 0.2, 42), (45000, 0.2, 42), (1001, 0.33, 7)]
)
def test_split_rows_is_scikit_learns_train_test_split(rows, test_size, seed):
    import numpy as np
    from sklearn.model_selection import train_test_split

    expected = train_test_split(np.arange(rows), test_size=test_size, random_state=seed)
    for got, want in zip(common.split_rows(rows, test_size, seed), expected, strict=True):
        assert np.array_equal(got, want)


def test_stages_import_only_what_they_use(base_dir):
    """data_processing and train_test_split read and write with pyarrow: no pandas, no sklearn."""
    probe = (
        "import os, runpy, sys; sys.argv = [sys.argv[1], '--base-dir', sys.argv[2]]\n"
        "def leave(code): raise SystemExit(code)\n"
        "os._exit = leave  # exit_stage ends the process at once; look at it first\n"
        "code = 0\n"
        "try: runpy.run_path(sys.argv[0], run_name='__main__')\n"
        "except SystemExit as exc: code = exc.code\n"
        "print(sorted(m for m in ('pandas', 'sklearn') if m in sys.modules), code)"
    )
    for script in ("process.py", "split.py"):
        result = subprocess.run(
            [sys.executable, "-c", probe, str(SCRIPTS / script), str(base_dir)],
            capture_output=True, text=True, cwd=SCRIPTS,
        )  # fmt: skip
        assert result.stdout.strip() == "[] 0", script + result.stdout + result.stderr
