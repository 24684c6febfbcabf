"""The model search's part of ``make report`` (called by loanpipe.report.builder).

Reads ``BASE_DIR/staging/search/selection.json`` (written by select_model: the leaderboard of
every candidate with its CV mean and spread, the winner and the rule) and, for candidates that
have one, ``staging/search/candidates/<id>.json`` (the job's own wall time, peak memory and host).
Gives the report a leaderboard table (markdown and console), a chart (``search_leaderboard.svg``,
drawn by loanpipe.report.svg: every candidate's mean CV score with its spread, by family, the
winner marked) and the facts for
report.json. A run of a DAG without the search (the default DAG) gives nothing.

Also keeps the results table honest after runs of both DAGs on one base directory: a metrics file
of a version the deployment did not choose among (say ``model_metrics_v3.json`` left by a tune
run, then a default-DAG run) is left out of the table, with a note.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from loanpipe import config, pipeline

CHART = "search_leaderboard.svg"
FAMILY_COLOURS = {
    "logistic_regression": "#4c72b0",
    "decision_tree": "#55a868",
    "hist_gradient_boosting": "#c44e52",
}


def searched(run: dict[str, Any] | None) -> bool:
    """Whether the reported run's DAG has the search (a default-DAG run shows no leaderboard,
    even when an earlier tune run left its selection in the base directory)."""
    return any(node.get("name") == pipeline.SEARCH_NODE for node in (run or {}).get("nodes", []))


def load(base: Path, notes: list[str]) -> dict[str, Any] | None:
    """The search's facts, or None when this base directory has no model selection."""
    path = config.Layout(base).selection
    if not path.is_file():
        return None
    try:
        selection = json.loads(path.read_text(encoding="utf-8"))
        board = list(selection["leaderboard"])
        winner = selection["winner"]["candidate"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        notes.append(f"cannot read the model selection {path}: {exc}")
        return None
    times = [e["elapsed_s"] for e in board if isinstance(e.get("elapsed_s"), int | float)]
    return {
        "file": str(path),
        "scoring": selection.get("scoring"),
        "folds": selection.get("folds"),
        "seed": selection.get("seed"),
        "winner": winner,
        "rule": selection.get("rule"),
        "margin": selection.get("margin"),
        "train_rows": selection.get("train_rows"),
        "candidates": len(board),
        "job_seconds_total": round(sum(times), 1) if times else None,
        "job_seconds_max": max(times) if times else None,
        "leaderboard": board,
    }


def filter_models(
    models: list[dict[str, Any]], deployment: dict[str, Any] | None, base: Path, notes: list[str]
) -> list[dict[str, Any]]:
    """Only the versions the deployment chose among (its manifest's "considered"), if it says."""
    considered = None
    manifest = config.Layout(base).manifest
    if deployment and deployment.get("source") == "manifest" and manifest.is_file():
        try:
            considered = json.loads(manifest.read_text(encoding="utf-8")).get("considered")
        except (OSError, ValueError, AttributeError):
            considered = None
    if not isinstance(considered, list):
        return models
    kept = [m for m in models if m.get("version") in considered]
    left = sorted(m.get("version") for m in models if m.get("version") not in considered)
    if left:
        notes.append(
            f"left out model_metrics of {', '.join(left)}: the latest deployment chose among "
            f"{' '.join(considered)} only (files of another DAG's run on this base directory)"
        )
    return kept


def _params(entry: dict[str, Any]) -> str:
    params = entry.get("params") or {}
    return " ".join(f"{k}={v}" for k, v in params.items()) or "(defaults)"


def _num(value: Any, digits: int = 4) -> str:
    return f"{value:.{digits}f}" if isinstance(value, int | float) else "-"


def rows(search: dict[str, Any], limit: int | None = None) -> list[list[str]]:
    board = search["leaderboard"][:limit] if limit else search["leaderboard"]
    out = []
    for e in board:
        metrics = e.get("mean_metrics") or {}
        out.append(
            [
                str(e.get("rank")),
                str(e["candidate"]) + (" *" if e["candidate"] == search["winner"] else ""),
                str(e.get("family")),
                _params(e),
                _num(e.get("mean")),
                _num(e.get("std")),
                _num(metrics.get("precision")),
                _num(metrics.get("recall")),
                _num(e.get("elapsed_s"), 1),
                str(e.get("host") or "-"),
            ]
        )
    return out


def header(search: dict[str, Any]) -> list[str]:
    score = str(search.get("scoring") or "score")
    return [
        "rank",
        "candidate",
        "family",
        "parameters",
        f"CV {score} mean",
        "std",
        "CV precision",
        "CV recall",
        "job s",
        "host",
    ]


def summary(search: dict[str, Any]) -> str:
    rule = {
        "mean": "the highest mean CV score",
        "std": "equal mean, the smaller spread across folds",
        "order": "full tie: the earlier row of the table",
        "only": "the only candidate",
    }.get(str(search.get("rule")), str(search.get("rule")))
    margin = search.get("margin") or {}
    text = (
        f"Model search: {search['candidates']} candidates, {search.get('folds')}-fold "
        f"stratified CV on {search.get('train_rows')} training rows (scoring "
        f"{search.get('scoring')}, seed {search.get('seed')}); winner {search['winner']} by "
        f"{rule}"
    )
    if isinstance(margin.get("value"), int | float) and search.get("rule") in ("mean", "std"):
        text += f" (by {margin['value']:.4f})"
    text += "; refitted on every training row as v3."
    if search.get("job_seconds_total") is not None:
        text += (
            f" Job time: {search['job_seconds_total']:.1f} s in all, slowest job "
            f"{search['job_seconds_max']:.1f} s."
        )
    return text


def markdown(search: dict[str, Any] | None, charts: dict[str, Any]) -> list[str]:
    if not search:
        return []
    out = ["## Model search", "", summary(search), ""]
    head = header(search)
    out.append("| " + " | ".join(head) + " |")
    out.append("|" + "---|" * len(head))
    out += ["| " + " | ".join(r) + " |" for r in rows(search)]
    out.append("")
    if CHART in charts:
        out += [f"![Model search leaderboard]({CHART})", ""]
    return out


def console(search: dict[str, Any] | None, top: int = 5) -> list[str]:
    if not search:
        return []
    table = [header(search), *rows(search, top)]
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
    out = ["", summary(search), f"top {min(top, search['candidates'])}:"]
    out += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in table]
    return out
