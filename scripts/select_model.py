#!/usr/bin/env python3
"""Stage select_model: pick the search's winner by mean CV score and refit it on all training rows.

Reads   search/candidates.txt and search/search.conf (which candidates must have a result),
        BASE_DIR/staging/search/candidates/<candidate>.json (one per row, from model_search),
        BASE_DIR/staging/split_data/X_train.csv, y_train.csv (the training rows only)
Writes  BASE_DIR/staging/model/trained_model_v3.pkl (the winner refitted on every training row)
        BASE_DIR/staging/search/selection.json: the leaderboard (every candidate's mean and
        standard deviation over the folds, ranked), the winner, the rule that chose it, the
        margin, the model's sha256 and provenance; then removes the search's shared fold
        matrices (BASE_DIR/staging/search/folds/, see stages/folds.py)

The rule: the highest mean CV score (search.conf's scoring, F1 by default); on a tie the smaller
spread (standard deviation over the folds); on a full tie the earlier row of the table. A result
that does not belong to this run (another table row, other settings, other training rows) is an
error (exit 65, bad input), never silently ranked.
"""

from __future__ import annotations

import math
import shutil
import warnings
from pathlib import Path
from typing import Any

from loanpipe import config, errors
from loanpipe.errors import PipelineError
from loanpipe.stages import candidates, common, folds
from loanpipe.stages.candidates import Candidate
from loanpipe.stages.common import log

TIE_DIGITS = 12  # scores equal to 12 decimals are a tie (float noise is not a lead)


def load_result(base: Path, candidate: Candidate, settings: dict, train_sha: str) -> dict:
    """The candidate's result file, checked against the table row, settings and training rows."""
    path = candidates.result_path(base, candidate.id)
    data = common.read_json(path, f"search result of candidate {candidate.id}")
    if not isinstance(data, dict):
        raise PipelineError(path, "does not hold a JSON object")
    expected = {
        "candidate": candidate.id,
        "family": candidate.family,
        "params": candidate.params,
        "scoring": settings["scoring"],
        "folds": settings["folds"],
        "seed": settings["seed"],
        "train_sha256": train_sha,
    }
    for key, want in expected.items():
        if data.get(key) != want:
            what = "training rows" if key == "train_sha256" else key
            raise PipelineError(
                path,
                f"{what} do not match this run ({data.get(key)!r}, expected {want!r}): "
                "a stale result; rerun the model_search node",
            )
    for key in ("mean", "std"):
        value = data.get(key)
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise PipelineError(path, f"'{key}' is missing or not a finite number")
    return data


def rank(rows: list[Candidate], results: dict[str, dict]) -> list[dict[str, Any]]:
    """The leaderboard: best first by (mean desc, std asc, table order)."""
    order = {row.id: index for index, row in enumerate(rows)}
    board = []
    for row in rows:
        result = results[row.id]
        board.append(
            {
                "candidate": row.id,
                "family": row.family,
                "model_name": row.name,
                "params": row.params,
                "line": row.line,
                "mean": result["mean"],
                "std": result["std"],
                "fold_scores": result.get("fold_scores"),
                "mean_metrics": result.get("mean_metrics"),
                "elapsed_s": result.get("elapsed_s"),
                "peak_rss_mib": result.get("peak_rss_mib"),
                "host": result.get("host"),
            }
        )
    board.sort(
        key=lambda e: (
            -round(e["mean"], TIE_DIGITS),
            round(e["std"], TIE_DIGITS),
            order[e["candidate"]],
        )
    )
    for position, entry in enumerate(board, 1):
        entry["rank"] = position
    return board


def decide(board: list[dict[str, Any]]) -> tuple[str, dict[str, Any]]:
    """Which criterion separated the winner from the runner-up, and by how much."""
    if len(board) < 2:
        return "only", {"metric": "mean", "value": 0.0}
    first, second = board[0], board[1]
    if round(first["mean"], TIE_DIGITS) != round(second["mean"], TIE_DIGITS):
        return "mean", {"metric": "mean", "value": first["mean"] - second["mean"]}
    if round(first["std"], TIE_DIGITS) != round(second["std"], TIE_DIGITS):
        return "std", {"metric": "std", "value": second["std"] - first["std"]}
    return "order", {"metric": "table line", "value": second["line"] - first["line"]}


def main(argv: list[str] | None = None) -> int:
    parser = common.stage_parser(__doc__)
    parser.add_argument("--table", type=Path, default=candidates.TABLE, help="default: %(default)s")
    parser.add_argument(
        "--settings", type=Path, default=candidates.SETTINGS, help="default: %(default)s"
    )
    args = parser.parse_args(argv)

    settings = candidates.read_settings(args.settings)
    rows = candidates.read_table(args.table)
    training = candidates.read_training(args.base_dir)
    results = {row.id: load_result(args.base_dir, row, settings, training.sha256) for row in rows}
    board = rank(rows, results)
    rule, margin = decide(board)
    winner = next(row for row in rows if row.id == board[0]["candidate"])
    log(
        f"winner {winner.id} ({winner.name} {winner.params_text() or 'defaults'}): "
        f"{settings['scoring']} {board[0]['mean']:.4f} +/- {board[0]['std']:.4f} of "
        f"{len(board)} candidates; refitting on {len(training.labels)} training rows"
    )
    model = candidates.build_pipeline(
        winner, training.numeric, training.categorical, settings["seed"]
    )
    from threadpoolctl import threadpool_limits

    with warnings.catch_warnings(), threadpool_limits(limits=1):  # one thread, as the job's CPU
        warnings.simplefilter("ignore")
        model.fit(training.features, training.labels)
    layout = config.Layout(args.base_dir)
    model_path = layout.trained_model(candidates.VERSION)
    common.save_model(model, model_path)
    selection = {
        "version": candidates.VERSION,
        "scoring": settings["scoring"],
        "folds": settings["folds"],
        "seed": settings["seed"],
        "winner": board[0],
        "rule": rule,
        "margin": margin,
        "leaderboard": board,
        "model_file": str(model_path.relative_to(args.base_dir)),
        "model_sha256": common.sha256_file(model_path),
        "train_sha256": training.sha256,
        "train_rows": len(training.labels),
        "table": args.table.name,
        "table_sha256": common.sha256_file(args.table),
        "git_commit": common.git_commit(),
        "versions": common.library_versions(),
    }
    common.write_json(selection, candidates.selection_path(args.base_dir))
    log(f"wrote {model_path} and {candidates.selection_path(args.base_dir)}")
    # The search is over: its shared fold matrices (5 x the training rows as float64, 7 GiB at
    # 10M rows) go; a row added later rebuilds them in its own job.
    shutil.rmtree(folds.folds_dir(args.base_dir), ignore_errors=True)
    return errors.EXIT_OK


if __name__ == "__main__":
    common.exit_stage(main)
