"""The bad-input catalogue of issue 6, driven through the stage scripts.

Each bad input gives one line naming the file and the problem, exit code 65 (the DAG's
UNLESS-EXIT code, so it is not retried), no traceback, and leaves earlier outputs untouched. An
input that is missing or unreadable is an OS or filesystem error instead: one line, exit code 1,
which the DAG retries (on a shared filesystem it may be there on the next try).
"""

from __future__ import annotations

import gzip
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from conftest import SCRIPTS, load_script, run_stage

from loanpipe import errors
from loanpipe.config import Layout
from loanpipe.stages import common, csvfiles, deployments

PROCESSED = "staging/split_data/processed_data.csv"


def good_rows(base: Path, count: int = 200) -> pd.DataFrame:
    return pd.read_csv(base / "loan_data.csv").head(count)


def assert_refused(
    result: subprocess.CompletedProcess,
    path_part: str,
    problem: str,
    code: int = errors.EXIT_BAD_INPUT,
) -> None:
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1, result.stderr
    assert path_part in errors[0], errors[0]
    assert problem in errors[0], errors[0]


@pytest.fixture
def processed_once(base_dir):
    """A base directory with an earlier good processed_data.csv, and its bytes."""
    run_stage("process.py", base_dir)
    return base_dir, (base_dir / PROCESSED).read_bytes()


def write_text(base: Path, text: str) -> None:
    (base / "loan_data.csv").write_text(text)


def edit_frame(base: Path, change) -> None:
    frame = good_rows(base)
    frame = change(frame)
    frame.to_csv(base / "loan_data.csv", index=False)


CASES = {
    "empty file": (lambda b: write_text(b, ""), "is empty"),
    "header only": (lambda b: write_text(b, "a,b,loan_status\n"), "has a header but no data rows"),
    "target missing": (
        lambda b: edit_frame(b, lambda f: f.drop(columns=["loan_status"])),
        "target column 'loan_status' not found",
    ),
    "one class": (
        lambda b: edit_frame(b, lambda f: f.assign(loan_status=0)),
        "single class",
    ),
    "three classes": (
        lambda b: edit_frame(b, lambda f: f.assign(loan_status=f.index % 3)),
        "must be binary 0/1, found classes 0, 1, 2",
    ),
    "text labels": (
        lambda b: edit_frame(
            b, lambda f: f.assign(loan_status=f.loan_status.map({0: "no", 1: "yes"}))
        ),
        "must hold 0/1 labels",
    ),
    "junk in a numeric column": (
        lambda b: edit_frame(
            b,
            lambda f: f.assign(
                person_income=f.person_income.astype(object).where(f.index != 7, "n/a!")
            ),
        ),
        "column 'person_income' holds numbers but also text: line 9 has 'n/a!'",
    ),
    "an empty column": (
        lambda b: edit_frame(b, lambda f: f.assign(credit_score=None)),
        "empty in every row: credit_score",
    ),
    "duplicate column names": (
        lambda b: write_text(b, "x,x,loan_status\n1,2,0\n3,4,1\n"),
        "duplicate column names: x",
    ),
    "duplicates up to spaces": (
        lambda b: write_text(b, "a, a ,loan_status\n1,2,0\n3,4,1\n"),
        "duplicate column names: a",
    ),
    "semicolons": (
        lambda b: write_text(b, "a;b;loan_status\n1;2;0\n3;4;1\n"),
        "separated by semicolons",
    ),
    "directory": (
        lambda b: ((b / "loan_data.csv").unlink(), (b / "loan_data.csv").mkdir()),
        "is a directory",
    ),
    "not UTF-8": (
        lambda b: (b / "loan_data.csv").write_bytes(b"a,b,loan_status\n\xff\xfe,1,0\n"),
        "not UTF-8",
    ),
    "ragged rows": (
        lambda b: write_text(b, "a,b,loan_status\n1,2,0\n1,2,3,4,5\n"),
        "line 3 has 5 field(s) but the header has 3",
    ),
}


@pytest.mark.parametrize("case", sorted(set(CASES) - {"directory"}))
def test_streaming_reader_for_large_files_refuses_as_the_whole_file_reader(
    processed_once, case, monkeypatch, tmp_path
):
    """Files above csvfiles.WHOLE_FILE_BYTES are read block by block: the same tables and the
    same refusals as the whole-file reader gives the small files the other tests use."""
    base = shutil.copytree(processed_once[0], tmp_path / "copy")
    damage, problem = CASES[case]
    damage(base)
    path = base / "loan_data.csv"

    def outcome():
        try:
            return csvfiles.read_table(path).to_pylist()
        except errors.PipelineError as exc:
            return str(exc)

    whole = outcome()
    monkeypatch.setattr(csvfiles, "WHOLE_FILE_BYTES", 0)
    monkeypatch.setattr(csvfiles, "CSV_BLOCK_BYTES", 4096)  # many blocks even for a short file
    assert outcome() == whole


def test_a_type_settled_late_in_a_large_file_reads_as_in_a_small_one(tmp_path, monkeypatch):
    path = tmp_path / "loan_data.csv"
    path.write_text("a,b,loan_status\n" + "1,x,0\n" * 2000 + "2.5,y,1\n")  # 12 kB
    small = csvfiles.read_table(path)
    monkeypatch.setattr(csvfiles, "WHOLE_FILE_BYTES", 0)
    monkeypatch.setattr(csvfiles, "CSV_BLOCK_BYTES", 4096)
    large = csvfiles.read_table(path)
    assert large.equals(small) and str(large.schema.field("a").type) == "double"


@pytest.mark.parametrize("case", sorted(CASES))
def test_raw_csv_catalogue(processed_once, case):
    base, before = processed_once
    damage, problem = CASES[case]
    damage(base)
    result = run_stage("process.py", base, check=False)
    assert_refused(result, "loan_data.csv", problem)
    assert (base / PROCESSED).read_bytes() == before
    assert not [p for p in (base / PROCESSED).parent.iterdir() if p.name.endswith(".tmp")]


def test_no_read_permission(base_dir):
    (base_dir / "loan_data.csv").chmod(0)
    command = [sys.executable, str(SCRIPTS / "process.py"), "--base-dir", str(base_dir)]
    if os.geteuid() == 0:
        # Root reads any file whatever its mode: drop the capabilities that allow it.
        if not shutil.which("setpriv"):
            pytest.skip("running as root without setpriv to drop CAP_DAC_OVERRIDE")
        command = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search", *command]
    result = subprocess.run(command, capture_output=True, text=True)
    assert_refused(result, "loan_data.csv", "no permission to read it", errors.EXIT_FAILURE)


def test_missing_input_is_retried_not_refused(processed_once):
    base, before = processed_once
    (base / "loan_data.csv").unlink()
    result = run_stage("process.py", base, check=False)
    assert_refused(result, "loan_data.csv", "not found", errors.EXIT_FAILURE)
    assert "ENOENT" in result.stderr and "retries" in result.stderr
    assert (base / PROCESSED).read_bytes() == before


def test_inputs_read_in_background_fail_as_they_would_in_the_foreground(finished_base, tmp_path):
    """Training, evaluation and prediction parse their CSV files on a thread while scikit-learn
    is imported: the table and every refusal reach the stage as a plain read_table gives them."""
    base = shutil.copytree(finished_base, tmp_path / "base")
    layout = Layout(base)
    x_test = layout.split_csv("X_test")
    assert csvfiles.read_in_background(x_test)().equals(csvfiles.read_table(x_test))
    x_test.write_text(x_test.read_text() + "1,2\n")  # a short last line
    with pytest.raises(errors.PipelineError, match=r"line \d+ has 2 field\(s\)"):
        csvfiles.read_in_background(x_test, "test features")()
    for version in ("v1", "v2"):
        result = run_stage("evaluate.py", base, "--model", version, check=False)
        assert_refused(result, "X_test.csv", "has 2 field(s) but the header has")
    result = run_stage("predict.py", base, check=False)
    assert_refused(result, "X_test.csv", "has 2 field(s) but the header has")
    layout.split_csv("X_train").unlink()
    result = run_stage("train.py", base, "--model", "v1", check=False)
    assert_refused(result, "X_train.csv", "not found", errors.EXIT_FAILURE)


def test_too_few_rows_to_split_is_caught_by_split_too(base_dir):
    # data_processing refuses this for loan_data.csv (tests/test_data_safety.py); split.py keeps
    # its own check for a processed file written by something else.
    edit_frame(base_dir, lambda f: f.head(6))
    processed = base_dir / PROCESSED
    processed.parent.mkdir(parents=True)
    shutil.copy(base_dir / "loan_data.csv", processed)
    result = run_stage("split.py", base_dir, check=False)
    assert_refused(result, "processed_data.csv", "too few rows to split")
    assert not (base_dir / "staging/split_data/X_train.csv").exists()


def test_bom_crlf_and_gzip_simply_work(base_dir):
    run_stage("process.py", base_dir)
    expected = (base_dir / PROCESSED).read_bytes()
    raw = (base_dir / "loan_data.csv").read_bytes()
    variants = {
        "bom": b"\xef\xbb\xbf" + raw,
        "crlf": raw.replace(b"\n", b"\r\n"),
        "gzip": gzip.compress(raw),
        "all three": gzip.compress(b"\xef\xbb\xbf" + raw.replace(b"\n", b"\r\n")),
    }
    for name, content in variants.items():
        (base_dir / "loan_data.csv").write_bytes(content)
        (base_dir / PROCESSED).unlink()
        run_stage("process.py", base_dir)
        assert (base_dir / PROCESSED).read_bytes() == expected, name


def test_input_with_nothing_to_clean_is_copied_and_a_changing_one_is_not(base_dir, monkeypatch):
    raw = (base_dir / "loan_data.csv").read_bytes()
    result = run_stage("process.py", base_dir)
    assert "the input as it is: nothing to clean" in result.stderr
    assert (base_dir / PROCESSED).read_bytes() == raw
    # loan_data.csv changes while it is copied: the rows that were checked are written instead.
    process = load_script("process")

    def change_then_copy(source, dest):  # a row lands just before the copy reads the file
        with open(source, "ab") as handle:
            handle.write(raw.splitlines(keepends=True)[1])
        shutil.copy(source, dest)

    monkeypatch.setattr(common, "copy_file", change_then_copy)
    assert process.main(["--base-dir", str(base_dir)]) == errors.EXIT_OK
    rows = pd.read_csv(base_dir / PROCESSED)
    assert len(rows) == raw.count(b"\n") - 1  # the appended row is not there
    assert (base_dir / PROCESSED).read_bytes() != (base_dir / "loan_data.csv").read_bytes()


# ---------------------------------------------------------------------------- deployment safety


@pytest.fixture
def deployed(finished_base, tmp_path) -> Layout:
    base = tmp_path / "base"
    shutil.copytree(finished_base, base)
    return Layout(base)


def snapshot(layout: Layout) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in (layout.deployed_model, layout.manifest)}


@pytest.mark.parametrize(
    ("damage", "problem"),
    [
        (lambda p: p.write_text("{not json"), "is not valid JSON"),
        (lambda p: p.write_text(re.sub(r'"Precision": [0-9.]+', '"Precision": NaN', p.read_text())),
         "metric 'Precision' is nan"),
        (lambda p: p.write_text(json.dumps({"Model name": "Decision Tree", "Accuracy": 1})),
         "metric 'Precision' is missing"),
    ],
    ids=["unparsable", "nan", "incomplete"],
)  # fmt: skip
def test_deploy_keeps_current_model_on_bad_metrics(deployed, damage, problem):
    before = snapshot(deployed)
    damage(deployed.metrics("v2"))
    result = run_stage("deploy.py", deployed.base, check=False)
    assert_refused(result, "model_metrics_v2.json", problem)
    assert snapshot(deployed) == before
    assert len(list(deployed.deployments_dir.iterdir())) == 1


def test_replaced_model_is_archived_and_rollback_restores_it(deployed):
    before = snapshot(deployed)
    old = json.loads(deployed.manifest.read_text())
    loser = "v2" if old["candidate"] == "v1" else "v1"
    data = json.loads(deployed.metrics(loser).read_text())
    data["Precision"] = 0.999
    deployed.metrics(loser).write_text(json.dumps(data))
    run_stage("deploy.py", deployed.base)
    new = json.loads(deployed.manifest.read_text())
    assert new["candidate"] == loser and new["rule"] == "precision"
    earlier = deployments.history(deployed)[1]
    assert earlier.model.read_bytes() == before["deployed_model.pkl"]
    assert earlier.manifest_file.read_bytes() == before["deployed_model.json"]

    run_stage("deploy.py", deployed.base, "--rollback")
    assert snapshot(deployed) == before
    run_stage("predict.py", deployed.base)
    result = run_stage("deploy.py", deployed.base, "--rollback", check=False)
    assert_refused(result, earlier.id, "no earlier deployment")


def test_redeploying_the_same_model_does_not_archive(deployed):
    before = snapshot(deployed)
    run_stage("deploy.py", deployed.base)
    assert len(list(deployed.deployments_dir.iterdir())) == 1
    assert snapshot(deployed) == before


def test_tampered_model_is_refused(deployed):
    with deployed.deployed_model.open("ab") as handle:  # (through the links)
        handle.write(b"\0")
    result = run_stage("predict.py", deployed.base, check=False)
    assert_refused(result, "deployed_model.pkl", "does not match the deployment manifest")
    assert not deployed.predictions.with_name("x").exists()


def test_missing_metrics_or_manifest_is_retried(deployed):
    before = snapshot(deployed)
    deployed.metrics("v2").unlink()
    result = run_stage("deploy.py", deployed.base, check=False)
    assert_refused(result, "model_metrics_v2.json", "metrics file not found", errors.EXIT_FAILURE)
    assert snapshot(deployed) == before
    deployed.manifest.unlink()
    result = run_stage("predict.py", deployed.base, check=False)
    assert_refused(
        result, "deployed_model.json", "deployment manifest not found", errors.EXIT_FAILURE
    )


def test_truncated_model_is_refused(finished_base, tmp_path):
    base = tmp_path / "base"
    shutil.copytree(finished_base, base)
    layout = Layout(base)
    model = layout.trained_model("v1")
    model.write_bytes(model.read_bytes()[:100])
    result = run_stage("evaluate.py", base, "--model", "v1", check=False)
    assert_refused(result, "trained_model_v1.pkl", "cannot load the model")
