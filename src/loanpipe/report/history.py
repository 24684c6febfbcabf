"""Run history: ``make runs`` lists a base directory's runs, ``make compare`` puts two side by side.

Every report of a run (the FINAL node's, or ``make report`` by hand) leaves one summary of that
run in ``BASE_DIR/dags/runs/<id>.json`` (``config.Layout.history_dir``, beside DAGMan's other
run records, so ``make clean`` keeps it). The id names the DAG and the run: DAGMan's job id for
a pool run (``$(DAGManJobId)`` in the FINAL node, the metrics file's ``dagman_id`` by hand), the
start of a local run; a later report of the same run replaces its summary.

A summary holds: when the run started and how long it took, the DAG, pool or local, the outcome
(DAG status, failed nodes and their error line), the input's sha256 and rows, and what this run
produced: each model's metrics and parameters, the deployment decision. A file older than the
run (say the metrics of an earlier run, when this one failed at its first node) is not this
run's and is left out.

    python -m loanpipe.report.history runs --base-dir DIR
    python -m loanpipe.report.history compare --base-dir DIR [A [B]]

A and B are run ids (or a unique start of one) of DIR, or base directories (their latest run);
by default the two latest runs of DIR. Exit codes: 0 ok; 2 no such run, nothing recorded yet,
an unreadable summary, bad usage.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from loanpipe import config
from loanpipe.errors import EXIT_OK, EXIT_USAGE
from loanpipe.report.render import METRIC_KEYS, fmt, text_table
from loanpipe.report.sources import ReportError, read_json, utc
from loanpipe.stages import common  # atomic writes, sha256

SLACK_S = 2.0  # clocks of the submit and execute nodes may differ a little


# ---------------------------------------------------------------------------- writing


def run_identity(facts: dict[str, Any], dagman_job_id: str | None) -> tuple[str, float | None]:
    """The run's id and start time."""
    run = facts["run"] or {}
    stem = Path(str(run.get("dag") or config.DEFAULT_DAG)).stem
    metrics = run.get("metrics") or {}
    if run.get("kind") == "local":
        start = ((run.get("local") or {}).get("run_start") or {}).get("time")
        start = start if start is not None else metrics.get("start_time")
        stamp = utc(start).replace(":", "").replace("-", "") if start else "unknown"
        return f"{stem}-local-{stamp}", start
    job = dagman_job_id or str((metrics.get("raw") or {}).get("dagman_id") or "")
    start = metrics.get("start_time") or run.get("since")
    job = job.split(".")[0] or (f"t{int(start)}" if start else "unknown")
    return f"{stem}-dagman-{job}", start


def this_run(path: Path | str | None, start: float | None) -> bool:
    """Whether a file was written by the run that started at ``start``."""
    if not path or start is None:
        return start is None
    try:
        return Path(path).stat().st_mtime >= start - SLACK_S
    except OSError:
        return False


def input_facts(base: Path, start: float | None, models: list[dict[str, Any]]) -> dict[str, Any]:
    """The input's sha256 and rows: data_processing's record when this run wrote it, else the
    input file hashed now; rows from the provenance of a model this run evaluated."""
    layout = config.Layout(base)
    source = layout.processed_source
    provenances = [m.get("provenance") or {} for m in models if this_run(m.get("file"), start)]
    rows = next((p["input_rows"] for p in provenances if p.get("input_rows")), None)
    if source.is_file() and this_run(source, start):
        try:
            data = json.loads(source.read_text(encoding="utf-8"))
            return {"sha256": data.get("input_sha256"), "rows": rows}
        except (OSError, ValueError, AttributeError):
            pass
    try:
        return {"sha256": common.sha256_file(layout.raw_csv), "rows": rows}
    except OSError:
        return {"sha256": None, "rows": None}


def summary(
    facts: dict[str, Any], written_by: str, dagman_job_id: str | None = None
) -> dict[str, Any]:
    """One run's summary, from the report's facts."""
    base = Path(facts["base_dir"])
    run = facts["run"] or {}
    run_id, start = run_identity(facts, dagman_job_id)
    ends = [n["end"] for n in run.get("nodes", []) if n.get("end") is not None]
    metrics = run.get("metrics") or {}
    wall = metrics.get("duration") or ((max(ends) - start) if ends and start else None)
    models = {
        m["version"]: {
            "name": m["name"],
            "metrics": {k: m[k] for k in METRIC_KEYS},
            "parameters": (m.get("provenance") or {}).get("parameters"),
        }
        for m in facts["results"]["models"]
        if this_run(m.get("file"), start)
    }
    deployment = facts["results"]["deployment"] or {}
    deployed = None
    if deployment.get("source") == "manifest" and this_run(deployment.get("file"), start):
        deployed = {k: deployment.get(k) for k in ("candidate", "model_name", "rule", "sha256")}
        deployed["metrics"] = deployment.get("metrics")
        deployed["margin"] = deployment.get("margin")
    out = facts["outcome"]
    return {
        "id": run_id,
        "dag": Path(str(run.get("dag"))).name,
        "kind": run.get("kind"),
        "base_dir": str(base),
        "started": start,
        "wall_s": wall,
        "outcome": {
            "status": out["status"],
            "name": out["name"],
            "failed_count": out["failed_count"],
            "failed_nodes": [
                {"name": n["name"], "exit": n["exit"], "error": n["error"]}
                for n in out["failed_nodes"]
            ],
        },
        "input": input_facts(base, start, facts["results"]["models"]),
        "models": models,
        "deployed": deployed,
        "search_winner": (facts.get("search") or {}).get("winner")
        if this_run((facts.get("search") or {}).get("file"), start)
        else None,
        "report": facts.get("html_file"),
        "written_by": written_by,
    }


def record(facts: dict[str, Any], written_by: str, dagman_job_id: str | None = None) -> Path:
    """Write (or replace) the run's summary; its path."""
    data = summary(facts, written_by, dagman_job_id)
    path = config.Layout(Path(facts["base_dir"])).history_dir / f"{data['id']}.json"
    common.write_text(json.dumps(data, indent=2, default=str) + "\n", path)
    return path


# ---------------------------------------------------------------------------- reading


def load(base: Path) -> list[dict[str, Any]]:
    """Every run summary of ``base``, oldest first."""
    folder = config.Layout(base).history_dir
    runs = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        data = read_json(path, "run summary")
        if not isinstance(data, dict) or "id" not in data:
            raise ReportError(f"cannot read run summary {path}: not a run summary")
        runs.append(data)
    return sorted(runs, key=lambda r: (r.get("started") or 0.0, r["id"]))


def outcome_text(run: dict[str, Any]) -> str:
    out = run["outcome"]
    if out["status"] == 0:
        return "ok"
    failed = ", ".join(
        f"{n['name']} ({n['exit']})" if n.get("exit") else n["name"] for n in out["failed_nodes"]
    )
    return f"{out['name']}" + (f": {failed}" if failed else "")


def runs_table(runs: list[dict[str, Any]]) -> list[str]:
    rows = []
    for run in runs:
        deployed = run.get("deployed") or {}
        metrics = deployed.get("metrics") or {}
        rows.append(
            [
                run["id"],
                utc(run.get("started")) or "-",
                run["dag"],
                (run["input"].get("sha256") or "-")[:12],
                f"{deployed.get('candidate')} {deployed.get('model_name')}" if deployed else "-",
                fmt(metrics.get("Precision")),
                fmt(metrics.get("F1 Score")),
                fmt(run.get("wall_s"), 1),
                outcome_text(run),
            ]
        )
    header = ["run", "started (UTC)", "DAG", "input sha256", "deployed", "precision", "F1"]
    return text_table([*header, "wall s", "outcome"], rows)


def flatten(run: dict[str, Any]) -> dict[str, str]:
    """The comparable facts of a run, one line each."""
    out = {
        "run": run["id"],
        "base directory": run["base_dir"],
        "DAG": run["dag"],
        "started (UTC)": utc(run.get("started")) or "-",
        "wall s": fmt(run.get("wall_s"), 1),
        "outcome": outcome_text(run),
        "input sha256": run["input"].get("sha256") or "-",
        "input rows": fmt(run["input"].get("rows")),
    }
    deployed = run.get("deployed") or {}
    out["deployed"] = (
        f"{deployed.get('candidate')} {deployed.get('model_name')}" if deployed else "-"
    )
    out["deployment rule"] = fmt(deployed.get("rule"))
    out["search winner"] = fmt(run.get("search_winner"))
    for version, model in sorted(run.get("models", {}).items()):
        for key, value in model["metrics"].items():
            out[f"{version} {key}"] = fmt(value)
        for key, value in sorted(leaves(model.get("parameters") or {}).items()):
            out[f"{version} param {key}"] = json.dumps(value, sort_keys=True)
    return out


def leaves(params: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested parameters as dotted names: classifier_params.C."""
    out: dict[str, Any] = {}
    for key, value in params.items():
        if isinstance(value, dict):
            out.update(leaves(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def compare_table(a: dict[str, Any], b: dict[str, Any], every: bool = False) -> list[str]:
    fa, fb = flatten(a), flatten(b)
    keys = list(dict.fromkeys([*fa, *fb]))
    rows = [
        [key, fa.get(key, "-"), fb.get(key, "-")]
        for key in keys
        if every or key in ("run", "started (UTC)") or fa.get(key) != fb.get(key)
    ]
    same = sum(1 for key in keys if fa.get(key) == fb.get(key))
    lines = text_table(["", "A", "B"], rows)
    return [
        *lines,
        "",
        f"{len(rows) - 2} facts differ, {same} are the same "
        "(python -m loanpipe.report.history compare --all shows them)",
    ]


def resolve(spec: str, base: Path) -> dict[str, Any]:
    """A run: an id (or a unique start of one) of ``base``, or a base directory's latest run."""
    if os.sep in spec or Path(spec).is_dir():
        runs = load(Path(spec).absolute())
        if not runs:
            raise ReportError(f"no runs recorded in {Path(spec).absolute()}")
        return runs[-1]
    matches = [r for r in load(base) if r["id"] == spec] or [
        r for r in load(base) if r["id"].startswith(spec)
    ]
    if len(matches) != 1:
        found = "no run" if not matches else f"{len(matches)} runs"
        raise ReportError(f"{found} of {base} named {spec!r} (make runs lists them)")
    return matches[0]


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m loanpipe.report.history", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--base-dir", default=os.environ.get("BASE_DIR") or str(config.DEFAULT_BASE_DIR)
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("runs", help="list the runs of the base directory")
    compare = sub.add_parser("compare", help="two runs side by side")
    compare.add_argument(
        "a", nargs="?", help="run id or base directory (default: the one before B)"
    )
    compare.add_argument("b", nargs="?", help="run id or base directory (default: the latest run)")
    compare.add_argument("--all", action="store_true", help="show the facts that agree too")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    base = Path(args.base_dir).absolute()
    try:
        runs = load(base)
        if args.command == "runs":
            if not runs:
                raise ReportError(f"no runs recorded in {base} yet (make local or make submit)")
            print("\n".join(runs_table(runs)))
            return EXIT_OK
        picked = [resolve(s, base) for s in (args.a, args.b) if s]
        if len(picked) < 2:
            rest = [r for r in runs if r["id"] not in {p["id"] for p in picked}]
            if len(picked) + len(rest) < 2:
                raise ReportError(f"{base} has fewer than two runs to compare (make runs)")
            picked = (rest[-2:] if not picked else [*picked, rest[-1]])[:2]
        print("\n".join(compare_table(picked[0], picked[1], args.all)))
    except ReportError as exc:
        print(f"history: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
