"""The model search (issue 11): candidate table, CV on training rows only, selection, deployment.

Stage scripts run as a user would (subprocesses); the table check also runs through make check's
loanpipe.check on a rendered tune DAG; the whole tune DAG runs through `make local DAG=tune` with a
three-row table in a copy of the checkout.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from conftest import REPO, overlay_venv, run_stage

from loanpipe import errors
from loanpipe.stages import candidates

SVG = "{http://www.w3.org/2000/svg}"

SPLIT = ("process.py", "split.py")


def search(base: Path, ident: str, family: str, *params: str, check: bool = True):
    return run_stage(
        "search.py",
        base,
        "--candidate",
        ident,
        "--family",
        family,
        "--params",
        *params,
        check=check,
    )


@pytest.fixture
def split_base(base_dir: Path) -> Path:
    for stage in SPLIT:
        run_stage(stage, base_dir)
    return base_dir


# ---------------------------------------------------------------------------- the table


def write_table(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "candidates.txt"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("line", "fragment"),
    [
        ("dt-9 decision_tree max_depht=3", "Invalid parameter 'max_depht'"),
        ("dt-9 decision_tree max_depth=-3", "'max_depth' parameter"),
        ("lr-9 logistic_regression penalty=l1", "penalty"),  # lbfgs refuses l1 at fit time
        ("hgb-9 hist_gradient_boosting learning_rate=fast", "'learning_rate' parameter"),
        ("rf-9 random_forest n_estimators=10", "unknown family 'random_forest'"),
        ("dt-9 decision_tree n_jobs=-1", "n_jobs is not allowed"),
        ("dt-9 decision_tree max_depth", "is not name=value"),
        ("dt-9 decision_tree criterion='gini'", "quote"),
        ("lr-01 decision_tree", "duplicate candidate id"),
        ("# a comment", "comment line"),
        ("", "blank line"),
    ],
)
def test_bad_rows_are_refused_in_one_line_naming_the_line(tmp_path, line, fragment) -> None:
    good = "lr-01 logistic_regression C=1.0 solver=liblinear\n"
    path = write_table(tmp_path, good + line + "\n" + good.replace("lr-01", "lr-02"))
    with pytest.raises(candidates.PipelineError) as caught:
        candidates.read_table(path, validate=True)
    message = str(caught.value)
    assert message.startswith(f"{path}:2"), message
    assert fragment in message and "\n" not in message


def test_the_repository_table_is_valid_and_spans_the_three_families() -> None:
    rows = candidates.read_table(validate=True)
    assert len(rows) >= 24
    assert {row.family for row in rows} == set(candidates.FAMILIES)
    assert candidates.read_settings() == {"scoring": "f1", "folds": 5, "seed": 42}


def test_rows_split_as_htcondor_queue_from_splits_them(tmp_path) -> None:
    """The bindings' itemdata and our reader agree on every row of the repository's table."""
    os.environ.setdefault("CONDOR_CONFIG", "/dev/null")
    from loanpipe.dagman import submit

    macros = {"PROJECT_DIR": str(REPO), "BASE_DIR": str(tmp_path), "PYTHON": "/x"}
    macros.update(JOB="s", RETRY="0")
    # loaded as condor_submit reads it (SUBMIT_FILE defined, includes resolved); the rows as
    # the bindings' own itemdata() splits them
    items = list(submit.load(REPO / "submit" / "search.sub", macros).itemdata())
    rows = candidates.read_table()
    assert [(i["CANDIDATE"], i["FAMILY"], i["PARAMS"]) for i in items] == [
        (r.id, r.family, r.params_text()) for r in rows
    ]


def test_bad_settings_are_refused(tmp_path) -> None:
    path = tmp_path / "search.conf"
    path.write_text("scoring = f2\n")
    with pytest.raises(candidates.PipelineError, match="scoring 'f2'"):
        candidates.read_settings(path)
    path.write_text("folds = 1\n")
    with pytest.raises(candidates.PipelineError, match="folds must be between"):
        candidates.read_settings(path)


def copy_checkout(tmp_path: Path) -> Path:
    """The parts of the checkout a DAG run needs, so a test may change its table."""
    project = tmp_path / "project"
    for name in ("src", "dag", "scripts", "search", "submit"):
        shutil.copytree(REPO / name, project / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("Makefile", "requirements.txt", "pyproject.toml"):
        shutil.copy(REPO / name, project / name)
    overlay_venv(project / ".venv", Path(sys.prefix), project / "src")
    return project


def make(project: Path, target: str, base: Path, *extra: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAKE") and k != "BASE_DIR"}
    env["CONDOR_CONFIG"] = "/dev/null"
    return subprocess.run(
        ["make", "--no-print-directory", "-C", str(project), target, f"BASE_DIR={base}", *extra],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )


def test_make_check_refuses_a_bad_row_before_anything_runs(tmp_path) -> None:
    project = copy_checkout(tmp_path)
    table = project / "search" / "candidates.txt"
    lines = table.read_text().splitlines()
    lines[4] = lines[4] + " max_depht=3"
    table.write_text("\n".join(lines) + "\n")
    base = tmp_path / "base"
    base.mkdir()
    result = make(project, "check", base, "DAG=tune")
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    assert f"{table}:5 (candidate {lines[4].split()[0]})" in errors[0]
    assert "max_depht" in errors[0]
    assert make(project, "check", base).returncode == 0, "the default DAG has no search"


# ---------------------------------------------------------------------------- CV, training only


def test_search_scores_by_cv_on_the_training_rows_only(split_base: Path) -> None:
    split = split_base / "staging" / "split_data"
    train_rows = len((split / "y_train.csv").read_text().splitlines()) - 1
    # Without the test split the search still runs: it never reads it ...
    for name in ("X_test.csv", "y_test.csv"):
        (split / name).rename(split / f"{name}.hidden")
    search(split_base, "dt-a", "decision_tree", "max_depth=4")
    result = json.loads((split_base / "staging/search/candidates/dt-a.json").read_text())
    # ... and its folds partition exactly the training rows.
    folds = result["folds_detail"]
    assert len(folds) == 5 == len(result["fold_scores"])
    assert sum(f["validation_rows"] for f in folds) == train_rows == result["train_rows"]
    assert all(f["train_rows"] + f["validation_rows"] == train_rows for f in folds)
    assert result["mean"] == pytest.approx(sum(result["fold_scores"]) / 5)
    assert result["params"] == {"max_depth": 4} and result["scoring"] == "f1"
    # Selection and the refit read no test row either.
    table = split_base / "table.txt"
    table.write_text("dt-a decision_tree max_depth=4\n")
    run_stage("select_model.py", split_base, "--table", str(table))
    selection = json.loads((split_base / "staging/search/selection.json").read_text())
    assert selection["winner"]["candidate"] == "dt-a" and selection["train_rows"] == train_rows
    assert (split_base / "staging/model/trained_model_v3.pkl").is_file()


def test_search_is_deterministic_and_a_bad_row_exits_2(split_base: Path) -> None:
    path = split_base / "staging/search/candidates/lr-a.json"
    search(split_base, "lr-a", "logistic_regression", "C=0.5", "solver=liblinear")
    first = json.loads(path.read_text())
    search(split_base, "lr-a", "logistic_regression", "C=0.5", "solver=liblinear")
    assert json.loads(path.read_text())["fold_scores"] == first["fold_scores"]
    bad = search(split_base, "lr-b", "logistic_regression", "C=-1", check=False)
    assert bad.returncode == errors.EXIT_BAD_INPUT
    assert len(bad.stderr.strip().splitlines()) == 1 and "candidate lr-b" in bad.stderr
    assert not (split_base / "staging/search/candidates/lr-b.json").exists()
    # Valid values that this data cannot be fitted with are bad input too (no retry).
    unfit = search(
        split_base,
        "hgb-x",
        "hist_gradient_boosting",
        "early_stopping=True",
        "validation_fraction=0.0001",
        check=False,
    )
    assert unfit.returncode == errors.EXIT_BAD_INPUT, unfit.stderr
    assert unfit.stderr.strip().splitlines()[-1].startswith("search: error: candidate hgb-x:")
    assert "cannot be fitted" in unfit.stderr


# ---------------------------------------------------------------------------- selection rule


def fake_results(base: Path, table: Path, scores: dict[str, tuple[float, float]]) -> None:
    """Result files as model_search writes them, with chosen means and spreads."""
    training = candidates.read_training(base)
    for row in candidates.read_table(table):
        mean, std = scores[row.id]
        result = {
            "candidate": row.id, "family": row.family, "params": row.params,
            "scoring": "f1", "folds": 5, "seed": 42, "train_sha256": training.sha256,
            "mean": mean, "std": std, "fold_scores": [mean] * 5, "elapsed_s": 1.0,
        }  # fmt: skip
        path = candidates.result_path(base, row.id)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result))


@pytest.mark.parametrize(
    ("scores", "winner", "rule"),
    [
        ({"a": (0.80, 0.01), "b": (0.82, 0.05), "c": (0.81, 0.00)}, "b", "mean"),
        ({"a": (0.80, 0.02), "b": (0.81, 0.03), "c": (0.81, 0.01)}, "c", "std"),
        ({"a": (0.80, 0.02), "b": (0.81, 0.01), "c": (0.81, 0.01)}, "b", "order"),
    ],
)
def test_selection_by_mean_then_spread_then_table_order(split_base, scores, winner, rule) -> None:
    table = split_base / "table.txt"
    table.write_text(
        "a decision_tree max_depth=2\nb decision_tree max_depth=3\nc decision_tree max_depth=4\n"
    )
    fake_results(split_base, table, scores)
    run_stage("select_model.py", split_base, "--table", str(table))
    selection = json.loads((split_base / "staging/search/selection.json").read_text())
    assert selection["winner"]["candidate"] == winner and selection["rule"] == rule
    assert [e["rank"] for e in selection["leaderboard"]] == [1, 2, 3]
    assert selection["leaderboard"][0]["std"] == scores[winner][1]  # the spread is recorded
    depth = {"a": 2, "b": 3, "c": 4}[winner]
    import joblib

    model = joblib.load(split_base / "staging/model/trained_model_v3.pkl")
    assert model.named_steps["classifier"].max_depth == depth  # the winner was refitted


def test_selection_refuses_a_stale_or_missing_result(split_base: Path) -> None:
    table = split_base / "table.txt"
    table.write_text("a decision_tree max_depth=2\nb decision_tree max_depth=3\n")
    fake_results(split_base, table, {"a": (0.8, 0.0), "b": (0.7, 0.0)})
    table.write_text("a decision_tree max_depth=2\nb decision_tree max_depth=5\n")  # edited row
    stale = run_stage("select_model.py", split_base, "--table", str(table), check=False)
    assert (
        stale.returncode == errors.EXIT_BAD_INPUT
        and "b.json" in stale.stderr
        and "stale" in stale.stderr
    )
    candidates.result_path(split_base, "b").unlink()
    missing = run_stage("select_model.py", split_base, "--table", str(table), check=False)
    # A missing file is an OS error (it may yet appear on NFS): exit 1, which the DAG retries.
    assert missing.returncode == errors.EXIT_FAILURE and "not found" in missing.stderr
    assert not (split_base / "staging/search/selection.json").exists()


# ---------------------------------------------------------------------------- deploy among three


def fake_metrics(base: Path, values: dict[str, tuple[float, float]]) -> None:
    for version, (precision, f1) in values.items():
        metrics = {
            "Model name": f"model {version}", "Accuracy": 0.9, "Precision": precision,
            "Recall": 0.8, "F1 Score": f1,
        }  # fmt: skip
        path = base / "staging" / "metrics" / f"model_metrics_{version}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(metrics))
        model = base / "staging" / "model" / f"trained_model_{version}.pkl"
        model.parent.mkdir(parents=True, exist_ok=True)
        model.write_bytes(f"model {version}".encode())


@pytest.mark.parametrize(
    ("values", "winner", "rule"),
    [
        ({"v1": (0.77, 0.75), "v2": (0.76, 0.77), "v3": (0.88, 0.84)}, "v3", "precision"),
        ({"v1": (0.80, 0.75), "v2": (0.80, 0.79), "v3": (0.80, 0.78)}, "v2", "f1"),
        ({"v1": (0.70, 0.75), "v2": (0.80, 0.79), "v3": (0.80, 0.79)}, "v2", "tie"),
    ],
)
def test_deploy_chooses_among_three_by_the_original_rule(base_dir, values, winner, rule) -> None:
    fake_metrics(base_dir, values)
    run_stage("deploy.py", base_dir, "--models", "v1", "v2", "v3")
    manifest = json.loads((base_dir / "model/deployed_model.json").read_text())
    assert (manifest["candidate"], manifest["rule"]) == (winner, rule)
    assert sorted(manifest["candidates"]) == ["v1", "v2", "v3"]
    deployed = (base_dir / "model/deployed_model.pkl").read_bytes()
    assert deployed == f"model {winner}".encode()


def test_default_deploy_ignores_a_stale_v3(base_dir) -> None:
    fake_metrics(base_dir, {"v1": (0.77, 0.75), "v2": (0.76, 0.77), "v3": (0.95, 0.9)})
    run_stage("deploy.py", base_dir)
    manifest = json.loads((base_dir / "model/deployed_model.json").read_text())
    assert manifest["candidate"] == "v1" and manifest["considered"] == ["v1", "v2"]
    assert "v3" not in manifest["candidates"]


# ---------------------------------------------------------------------------- the tune DAG


def test_make_local_tune_runs_the_search_and_deploys_among_three(tmp_path, sample_csv) -> None:
    project = copy_checkout(tmp_path)
    (project / "search" / "candidates.txt").write_text(
        "lr-a logistic_regression C=1.0 solver=liblinear\n"
        "dt-a decision_tree max_depth=5\n"
        "hgb-a hist_gradient_boosting max_iter=30\n"
    )
    base = tmp_path / "base"
    base.mkdir()
    shutil.copy(sample_csv, base / "loan_data.csv")
    result = make(project, "local", base, "DAG=tune", "JOBS=2")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "model_search       3 jobs: 3 ok" in result.stdout
    for ident in ("lr-a", "dt-a", "hgb-a"):
        assert (base / f"staging/search/candidates/{ident}.json").is_file()
        assert (base / f"output/model_search.{ident}.0.out").is_file()
    metrics = json.loads((base / "staging/metrics/model_metrics_v3.json").read_text())
    selection = json.loads((base / "staging/search/selection.json").read_text())
    assert metrics["candidate"]["candidate"] == selection["winner"]["candidate"]
    assert metrics["candidate"]["params"] == selection["winner"]["params"]
    for key in ("Model name", "Accuracy", "Precision", "Recall", "F1 Score"):
        assert key in metrics
    manifest = json.loads((base / "model/deployed_model.json").read_text())
    assert manifest["considered"] == ["v1", "v2", "v3"]
    best = max(
        manifest["candidates"].items(), key=lambda kv: (kv[1]["Precision"], kv[1]["F1 Score"])
    )
    assert manifest["candidate"] == best[0]
    status = (base / "dags" / "tune.dag.local.jsonl").read_text()
    assert '"proc_end"' in status
    # The report shows the leaderboard, its chart and the decision among the three.
    report = make(project, "report", base, "DAG=tune")
    assert report.returncode == 0, report.stdout + report.stderr
    text = (base / "report" / "report.md").read_text()
    assert "## Model search" in text and "](search_leaderboard.svg)" in text
    chart = ET.parse(base / "report" / "search_leaderboard.svg").getroot()
    bars = [r for r in chart.iter(SVG + "rect") if r.get("class") == "mark"]
    assert chart.get("data-chart") == "search_leaderboard.svg"
    assert len(bars) == len(selection["leaderboard"])  # one bar per candidate
    for ident in ("lr-a", "dt-a", "hgb-a"):
        assert f"| {ident}" in text
    # A later default-DAG run deploys among v1 and v2 only; its report leaves the stale v3 out.
    again = make(project, "local", base, "FRESH=1")
    assert again.returncode == 0, again.stdout + again.stderr
    manifest = json.loads((base / "model/deployed_model.json").read_text())
    assert manifest["considered"] == ["v1", "v2"] and manifest["candidate"] in ("v1", "v2")
    report = make(project, "report", base, "REPORT_ARGS=--json")
    facts = json.loads(report.stdout[report.stdout.index("{") :])
    assert [m["version"] for m in facts["results"]["models"]] == ["v1", "v2"]
    assert facts["search"] is None, "the default DAG's run has no search to show"
    assert not (base / "report" / "search_leaderboard.svg").exists()  # nor the tune run's chart


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))


def test_make_check_fits_every_row_and_refuses_one_that_cannot_be_fitted(tmp_path) -> None:
    """Valid values that clash only at fit time (a validation set of no rows), in any position
    of the table: refused by make check, naming the line, before anything runs."""
    project = copy_checkout(tmp_path)
    table = project / "search" / "candidates.txt"
    rows = table.read_text().splitlines()
    unfit = "hgb-x   hist_gradient_boosting  early_stopping=True validation_fraction=0.0001"
    base = tmp_path / "base"
    base.mkdir()
    assert make(project, "check", base, "DAG=tune").returncode == 0  # the table as it is
    for position in (0, len(rows)):  # first and last: every row is fitted
        table.write_text("\n".join([*rows[:position], unfit, *rows[position:]]) + "\n")
        result = make(project, "check", base, "DAG=tune")
        assert result.returncode != 0
        errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1, result.stderr
        assert f"{table}:{position + 1} (candidate hgb-x)" in errors[0]
        assert "hist_gradient_boosting cannot be fitted" in errors[0]
