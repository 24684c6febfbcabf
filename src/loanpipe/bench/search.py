"""The search section of ``make bench``: the model search against what a data scientist would
write instead, scikit-learn's GridSearchCV on one machine.

The reference (``python -m loanpipe.bench.search --csv ... --table ...``, a process of its own):
pandas reads loan_data.csv, rows without a label are dropped and ID-like columns too, as
data_processing does; train_test_split(test_size=0.2, random_state=42) as train_test_split
does; a ColumnTransformer (mean imputation + StandardScaler for numbers, most-frequent imputation
+ OneHotEncoder(drop="first") for the rest) before each candidate of search/candidates.txt;
GridSearchCV(n_jobs=2, refit=True) with search.conf's scoring and StratifiedKFold(folds,
shuffle=True, random_state=seed). It prints one JSON line: winner, its CV score, every score.

This project: ``make local DAG=tune FRESH=1 JOBS=2`` in a new base directory per run (the whole
tune DAG: the eight stages, the search, selection, v3's evaluation, deployment, the report).
Alternating, ``--repeats`` times each; both winners and CV scores are printed (they must agree)
and the ratio of the medians, held to the goal of 0.5. The real 45,000 rows only (the CSV of
bench.common.REAL_DATA); without them the section says why and is skipped.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from loanpipe import config
from loanpipe.bench import common

GOAL = 0.5
REFERENCE = "GridSearchCV(n_jobs=2)"
TARGET = "loan_status"


def id_like(name: str) -> bool:
    """The columns data_processing drops by default (--drop-columns auto)."""
    lower = name.strip().lower()
    return lower == "id" or lower.endswith("_id") or lower.startswith("unnamed:")


def reference(csv: Path, table: Path, settings_path: Path, jobs: int = 2) -> dict[str, Any]:
    """GridSearchCV over the table's candidates, as a notebook would run it."""
    import pandas as pd
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.model_selection import GridSearchCV, StratifiedKFold, train_test_split
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    from loanpipe.stages import candidates

    start = time.perf_counter()
    settings = candidates.read_settings(settings_path)
    rows = candidates.read_table(table)
    data = pd.read_csv(csv)
    data = data.dropna(subset=[TARGET]).drop(columns=[c for c in data.columns if id_like(c)])
    x, y = data.drop(columns=[TARGET]), data[TARGET].astype(int)
    x_train, _, y_train, _ = train_test_split(x, y, test_size=0.2, random_state=42)
    numeric = [c for c in x.columns if x[c].dtype != bool and pd.api.types.is_numeric_dtype(x[c])]
    categorical = [c for c in x.columns if c not in numeric]
    numbers = Pipeline([("impute", SimpleImputer()), ("scale", StandardScaler())])
    encode = OneHotEncoder(drop="first", handle_unknown="ignore", sparse_output=False)
    texts = Pipeline([("impute", SimpleImputer(strategy="most_frequent")), ("encode", encode)])
    preprocess = ColumnTransformer([("num", numbers, numeric), ("cat", texts, categorical)])
    models = [candidates.estimator(row, settings["seed"]) for row in rows]
    pipeline = Pipeline([("preprocess", preprocess), ("classifier", models[0])])
    folds = StratifiedKFold(settings["folds"], shuffle=True, random_state=settings["seed"])
    search = GridSearchCV(
        pipeline,
        [{"classifier": [model]} for model in models],
        scoring=settings["scoring"],
        cv=folds,
        n_jobs=jobs,
        refit=True,
    )
    search.fit(x_train, y_train)
    means = [float(m) for m in search.cv_results_["mean_test_score"]]
    return {
        "winner": rows[search.best_index_].id,
        "score": float(search.best_score_),
        "scores": {row.id: mean for row, mean in zip(rows, means, strict=True)},
        "fit_s": {
            row.id: float(t) * settings["folds"]
            for row, t in zip(rows, search.cv_results_["mean_fit_time"], strict=True)
        },
        "seconds": time.perf_counter() - start,
    }


def run_reference(csv: Path, project: Path) -> dict[str, Any]:
    """The reference in a new interpreter (its imports count, as a notebook's would)."""
    search = project / "search"
    command = [sys.executable, "-m", "loanpipe.bench.search", "--csv", str(csv)]
    command += [
        "--table",
        str(search / "candidates.txt"),
        "--settings",
        str(search / "search.conf"),
    ]
    proc = subprocess.run(command, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{REFERENCE} failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run_tune_dag(csv: Path, project: Path, work: Path) -> dict[str, Any]:
    """make local DAG=tune FRESH=1 in a new base directory; the winner and its CV score."""
    base = Path(tempfile.mkdtemp(prefix="tune-", dir=work))
    shutil.copy(csv, base / "loan_data.csv")
    try:
        common.make_local(project, base, "DAG=tune", "JOBS=2")
        selection = json.loads(config.Layout(base).selection.read_text(encoding="utf-8"))
        board = selection["leaderboard"]
        return {
            "winner": selection["winner"]["candidate"],
            "score": selection["winner"]["mean"],
            "scores": {entry["candidate"]: entry["mean"] for entry in board},
        }
    finally:
        shutil.rmtree(base, ignore_errors=True)


def compare(csv: Path, project: Path, work: Path, repeats: int) -> int:
    """Alternate the two, ``repeats`` rounds; print winners, agreement and the ratio."""
    outcomes: dict[str, list[dict[str, Any]]] = {"reference": [], "ours": []}
    runs = {
        "reference": lambda: outcomes["reference"].append(run_reference(csv, project)),
        "ours": lambda: outcomes["ours"].append(run_tune_dag(csv, project, work)),
    }
    seconds = common.alternate(runs, repeats)
    ref, ours = outcomes["reference"][-1], outcomes["ours"][-1]
    print(f"{REFERENCE}: winner {ref['winner']}, CV {ref['score']:.4f}")
    print(f"make local DAG=tune: winner {ours['winner']}, CV {ours['score']:.4f}")
    differ = [
        ident
        for ident, score in ref["scores"].items()
        if abs(score - ours["scores"].get(ident, float("nan"))) > 1e-12
    ]
    agree = ref["winner"] == ours["winner"] and not differ
    print(
        "winners and every candidate's CV score agree"
        if agree
        else f"DISAGREE: winners {ref['winner']} / {ours['winner']}, scores differ for {differ}"
    )
    line = common.ratio_line(
        "model search, whole tune DAG", seconds["reference"], seconds["ours"], GOAL, REFERENCE
    )
    print(line)
    return 0 if agree else 1


def run(args: argparse.Namespace) -> int:
    """The section: the real rows only, else one line saying why it is skipped."""
    if not common.REAL_DATA.is_file():
        print(f"skipped: the real rows are not at {common.REAL_DATA} (set LOAN_DATA_CSV)")
        return 0
    print(f"{common.REAL_DATA}, {REFERENCE} against make local DAG=tune FRESH=1 JOBS=2")
    with tempfile.TemporaryDirectory(prefix="loan-bench-search-", dir=args.work_dir) as tmp:
        try:
            return compare(common.REAL_DATA, config.PROJECT_DIR, Path(tmp), args.repeats)
        except (RuntimeError, OSError, ValueError, KeyError) as exc:
            print(f"error: search section: {exc}", file=sys.stderr)
            return 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loanpipe.bench.search", description=REFERENCE)
    parser.add_argument("--csv", type=Path, required=True)
    parser.add_argument("--table", type=Path, default=config.CANDIDATE_TABLE)
    parser.add_argument("--settings", type=Path, default=config.SEARCH_SETTINGS)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args(argv)
    print(json.dumps(reference(args.csv, args.table, args.settings, args.jobs)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
