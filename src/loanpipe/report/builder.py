#!/usr/bin/env python3
"""Report on the latest pipeline run: results, deployment decision, the DAG run, provenance.

``make report`` runs this. It reads, under the base directory (the original system's names):

- ``staging/metrics/model_metrics_*.json``: every evaluated model (the original system's keys;
  the project's extra keys ``confusion_matrix``, ``test_rows``, ``provenance`` are used when
  present);
- ``model/deployed_model.json`` (deployment manifest) and the deployment it replaced
  (``model/deployments/<id>/``, or ``model/archive/<stamp>/`` of a release before 2.1);
  without a manifest the decision is derived from the metrics with the deploy rule;

and, beside the DAG (``--dag``; default ``BASE_DIR/dags/dagfile.dag``, the DAG make paths
renders for the base directory, as in the original layout; one rendered for another base
directory is refused):

- ``dagfile.dag.metrics`` (DAGMan's metrics file, version 1 or 2);
- a pool run: ``dagfile.dag.nodes.log`` (read with the htcondor bindings), or each node job's own
  event log when there is no nodes log; stderr files via the submit files' paths, else by name;
- a local run (``python -m loanpipe.local``): ``dagfile.dag.local.jsonl``, one record per node
  attempt.

It writes ``report.md`` plus SVG charts into ``BASE_DIR/report/`` (or ``--output DIR``), prints
a summary and the report's path (``--json``: the same facts as JSON on stdout). When the base
directory is not writable (e.g. the read-only fixture) and no ``--output`` is given, the report
goes to a new temporary directory whose path is printed, with a note on stderr.

Exit codes: 0 report written; 2 nothing to report yet (no metrics, no DAG records), an
unreadable input (one line naming the file) or bad usage; 1 the report could not be written.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from loanpipe import config, hints, pipeline, sample
from loanpipe.errors import EXIT_FAILURE, EXIT_OK, EXIT_USAGE
from loanpipe.report import history, leaderboard  # run summaries; the search's leaderboard
from loanpipe.report.html import fallback_page, render_html  # report.html, self-contained
from loanpipe.report.outcome import outcome  # succeeded or failed, and why
from loanpipe.report.render import (
    CHARTS,
    METRIC_KEYS,
    OLD_PNG,
    make_charts,
    render_console,
    render_markdown,
)
from loanpipe.report.runs import load_run  # a DAG run's records, read into facts
from loanpipe.report.sources import DAG_NAME, RUN_DIR, ReportError, number, read_json, utc
from loanpipe.stages import (
    common,  # atomic writes
    deployments,  # the deployment history
    modeling,  # the deployment rule
)

REPORT_VERSION = 1


# ---------------------------------------------------------------------------- results


def load_models(base: Path) -> list[dict[str, Any]]:
    """Every ``staging/metrics/model_metrics_<version>.json``, sorted by version."""
    models = []
    for path in sorted(config.Layout(base).metrics_dir.glob("model_metrics_*.json")):
        data = read_json(path, "metrics file")
        if not isinstance(data, dict):
            raise ReportError(f"cannot read metrics file {path}: not a JSON object")
        for key in METRIC_KEYS:
            if number(data.get(key)) is None:
                raise ReportError(
                    f"cannot read metrics file {path}: '{key}' missing or not a number"
                )
        version = path.stem.removeprefix("model_metrics_")
        model = {
            "version": data.get("model_version") or version,
            "name": data.get("Model name") or version,
            "file": str(path),
            **{key: float(data[key]) for key in METRIC_KEYS},
            "confusion_matrix": None,
            "test_rows": data.get("test_rows"),
            "provenance": data.get("provenance")
            if isinstance(data.get("provenance"), dict)
            else None,
        }
        cm = data.get("confusion_matrix")
        if (
            isinstance(cm, list)
            and len(cm) == 2
            and all(isinstance(row, list) and len(row) == 2 for row in cm)
            and all(number(v) is not None for row in cm for v in row)
        ):
            model["confusion_matrix"] = [[int(v) for v in row] for row in cm]
        models.append(model)
    return models


def decide(models: list[dict[str, Any]]) -> tuple[str, str, dict[str, Any]]:
    """the deployment rule (modeling.choose_deployment, the one the deploy stage applies)."""
    if len(models) == 1:
        return models[0]["version"], "only model", {"metric": "Precision", "value": None}
    return modeling.choose_deployment({m["version"]: m for m in models})


def metric_values(data: Any) -> dict[str, float]:
    if not isinstance(data, dict):
        return {}
    return {key: float(data[key]) for key in METRIC_KEYS if number(data.get(key)) is not None}


def derived_deployment(models: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Without a manifest: the decision the deployment rule makes from the metrics files."""
    if not models:
        return None
    version, rule, margin = decide(models)
    chosen = next(m for m in models if m["version"] == version)
    return {
        "source": "derived",
        "candidate": version,
        "model_name": chosen["name"],
        "rule": rule,
        "margin": margin,
        "metrics": {key: chosen[key] for key in METRIC_KEYS},
        "note": "no deployment manifest (model/deployed_model.json): decision derived from "
        "the metrics files with the deployment rule",
        "earlier": None,
    }


def model_file_check(base: Path, manifest: dict[str, Any], notes: list[str]) -> str | None:
    """The deployed model file against the manifest's sha256: matches, MISMATCH or missing."""
    if not manifest.get("model_file"):
        return None
    model_dir = config.Layout(base).deploy_dir
    model_file = Path(str(manifest["model_file"]))
    if not model_file.is_absolute():
        candidates = [model_dir / model_file, base / model_file, model_dir / model_file.name]
        model_file = next((p for p in candidates if p.exists()), candidates[0])
    if not model_file.exists():
        notes.append(f"deployed model file {model_file} is missing")
        return "model file missing"
    if common.sha256_file(model_file) == manifest.get("sha256"):
        return "matches"
    notes.append(
        f"{model_file} does not match the manifest's sha256: the deployed model "
        "was replaced after the manifest was written"
    )
    return "MISMATCH"


def note_stale_metrics(
    manifest: dict[str, Any], models: list[dict[str, Any]], notes: list[str]
) -> None:
    """Say so when the decision was made from other metrics than staging/metrics holds now."""
    candidates = manifest.get("candidates") if isinstance(manifest.get("candidates"), dict) else {}
    for model in models:
        seen = metric_values(candidates.get(model["version"]))
        now = {key: model[key] for key in METRIC_KEYS}
        if seen and any(abs(seen[k] - now[k]) > 1e-12 for k in seen):
            notes.append(
                f"the deployment manifest was made from other metrics for {model['version']} "
                "than staging/metrics holds now (evaluated again without deploying?)"
            )
            return


def earlier_deployment(
    base: Path, manifest: dict[str, Any], now: dict[str, float]
) -> dict[str, Any] | None:
    """The deployment the current one replaced (model/deployments/), or for a base directory of
    a release before 2.1 the newest archived one that is not the current one; and the metrics'
    change."""
    layout = config.Layout(base)
    chain = deployments.history(layout)
    if chain:
        entries = [d.manifest_file for d in chain[1:2]]
    elif layout.archive_dir.is_dir():
        entries = sorted(layout.archive_dir.glob("*/deployed_model.json"))[::-1]
    else:
        entries = []
    for entry in entries:
        earlier = read_json(entry, "archived deployment manifest")
        if not isinstance(earlier, dict):
            raise ReportError(
                f"cannot read archived deployment manifest {entry}: not a JSON object"
            )
        same = earlier.get("deployed_at") == manifest.get("deployed_at")
        if same and earlier.get("sha256") == manifest.get("sha256"):
            continue
        before = metric_values(earlier.get("metrics"))
        return {
            "file": str(entry),
            "stamp": entry.parent.name,
            "candidate": earlier.get("candidate"),
            "model_name": earlier.get("model_name"),
            "deployed_at": earlier.get("deployed_at"),
            "metrics": before,
            "change": {k: now[k] - before[k] for k in METRIC_KEYS if k in now and k in before},
        }
    return None


def load_deployment(
    base: Path, models: list[dict[str, Any]], notes: list[str]
) -> dict[str, Any] | None:
    """The deployment manifest (or a decision derived from the metrics), plus the earlier one."""
    manifest_path = config.Layout(base).manifest
    if not manifest_path.exists():
        return derived_deployment(models)
    manifest = read_json(manifest_path, "deployment manifest")
    if not isinstance(manifest, dict) or "candidate" not in manifest:
        raise ReportError(f"cannot read deployment manifest {manifest_path}: no 'candidate'")
    margin = manifest.get("margin") if isinstance(manifest.get("margin"), dict) else {}
    deployment: dict[str, Any] = {
        "source": "manifest",
        "file": str(manifest_path),
        "candidate": manifest.get("candidate"),
        "model_name": manifest.get("model_name"),
        "rule": manifest.get("rule"),
        "margin": {"metric": margin.get("metric"), "value": number(margin.get("value"))},
        "metrics": metric_values(manifest.get("metrics")),
        "deployed_at": manifest.get("deployed_at"),
        "model_file": manifest.get("model_file"),
        "sha256": manifest.get("sha256"),
        "earlier": None,
    }
    check = model_file_check(base, manifest, notes)
    if check is not None:
        deployment["sha256_check"] = check
    note_stale_metrics(manifest, models, notes)
    deployment["earlier"] = earlier_deployment(base, manifest, deployment["metrics"])
    return deployment


# ---------------------------------------------------------------------------- provenance


def provenance(models: list[dict[str, Any]], argv: list[str], notes: list[str]) -> dict[str, Any]:
    per_model = {m["version"]: m["provenance"] for m in models if m["provenance"]}
    hashes = {p.get("input_sha256") for p in per_model.values() if p.get("input_sha256")}
    if len(hashes) > 1:
        notes.append("the models were evaluated on different input data (input_sha256 differs)")
    return {
        "models": per_model,
        "report": {
            "generated_at": utc(time.time()),
            "host": socket.gethostname(),
            "git_commit": common.git_commit(),
            "command": shlex.join(["python", "-m", "loanpipe.report", *argv]),
            "versions": common.library_versions(("htcondor", "pandas", "scikit-learn", "numpy")),
        },
    }


# ---------------------------------------------------------------------------- output


def writable(directory: Path) -> bool:
    """Whether ``directory`` (or its nearest existing parent) may be written.

    Root passes every permission check, so for root a directory without any write bit counts
    as read-only too: the fixture of a real run must never be written into.
    """
    probe = directory
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    if not os.access(probe, os.W_OK):
        return False
    return not (os.geteuid() == 0 and probe.stat().st_mode & 0o222 == 0)


def choose_output(base: Path, output: str | None, notes: list[str]) -> Path:
    if output:
        return Path(output)
    target = config.Layout(base).report_dir
    if writable(target):
        return target
    fallback = Path(tempfile.mkdtemp(prefix="loan-report-"))
    notes.append(
        f"{base} is not writable: report written to {fallback} instead (choose with --output DIR)"
    )
    return fallback


def build_facts(
    base: Path, dag_path: Path | None, argv: list[str], final: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Everything the report shows; ``final``: the FINAL node's DAG_STATUS and FAILED_COUNT."""
    if not base.is_dir():
        raise ReportError(f"base directory {base} does not exist")
    notes: list[str] = []
    models = load_models(base)
    dag_path = dag_path if dag_path is not None else base / RUN_DIR / DAG_NAME
    run = load_run(base, dag_path, notes, final=final is not None)
    for node in (run or {}).get("nodes", []) if final is not None else []:
        if node["name"] == pipeline.FINAL_NODE:
            node["status"] = "running (writing this report)"
    if run is None:
        raise ReportError(
            f"no run of {dag_path.name} for this base directory: no records in {dag_path.parent}"
            + (f" ({notes[-1]})" if notes else "")
            + f" (run the pipeline first: `{hints.make_command('local', base, dag_path)}` or "
            f"`{hints.make_command('submit', base, dag_path)}`)"
        )
    deployment = load_deployment(base, models, notes)
    models = leaderboard.filter_models(models, deployment, base, notes)
    sample_data = sample.describe(base)
    if sample_data:
        notes.insert(0, f"the input is {sample_data}, not real applications (make data)")
    return {
        "report_version": REPORT_VERSION,
        "generated_at": utc(time.time()),
        "base_dir": str(base),
        "sample_data": sample_data,
        "notes": notes,
        "results": {"models": models, "deployment": deployment},
        "search": leaderboard.load(base, notes) if leaderboard.searched(run) else None,
        "run": run,
        "outcome": outcome(run, final),
        "provenance": provenance(models, argv, notes),
        "charts": {},
        "report_file": None,
        "html_file": None,
    }


def write_report(facts: dict[str, Any], out_dir: Path) -> Path:
    charts = make_charts(facts)
    for name in (*CHARTS, *OLD_PNG):  # none left from an earlier report as if current
        if name not in charts:
            (out_dir / name).unlink(missing_ok=True)
    for name, data in charts.items():
        common.write_text(data, out_dir / name)
        facts["charts"][name] = str(out_dir / name)
    report = out_dir / "report.md"
    facts["report_file"] = str(report)
    facts["html_file"] = str(out_dir / "report.html")
    common.write_text(render_markdown(facts), report)
    common.write_text(render_html(facts, charts), out_dir / "report.html")
    common.write_text(json.dumps(facts, indent=2, default=str) + "\n", out_dir / "report.json")
    return report


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m loanpipe.report",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        epilog="Exit codes: 0 written; 2 nothing to report, unreadable input or bad usage; "
        "1 the report could not be written.",
    )
    parser.add_argument(
        "--base-dir",
        default=os.environ.get("BASE_DIR") or str(config.DEFAULT_BASE_DIR),
        help="the pipeline's base directory (default: $BASE_DIR, else the repository's data/)",
    )
    parser.add_argument(
        "--dag",
        help="the DAG whose run to report; DAGMan's or the local runner's records are beside "
        f"it (default: BASE_DIR/{RUN_DIR}/{DAG_NAME})",
    )
    parser.add_argument(
        "--output",
        metavar="DIR",
        help="write report.md and the charts here (default: BASE_DIR/report/; a new temporary "
        "directory when the base directory is not writable)",
    )
    parser.add_argument("--json", action="store_true", help="print the facts as JSON on stdout")
    final = parser.add_argument_group(
        "as the DAG's FINAL node (submit/report.sub)",
        "the run is still going: its outcome comes from DAGMan's $(DAG_STATUS) and "
        "$(FAILED_COUNT); the exit code is non-zero when the DAG failed (a FINAL node that "
        "succeeds would make DAGMan call the whole DAG successful)",
    )
    final.add_argument("--final", action="store_true", help="report as the FINAL node")
    final.add_argument("--dag-status", type=int, default=0, metavar="N", help="$(DAG_STATUS)")
    final.add_argument("--failed-count", type=int, default=0, metavar="N", help="$(FAILED_COUNT)")
    final.add_argument("--dagman-job-id", default="", metavar="ID", help="$(DAGManJobId)")
    return parser.parse_args(argv)


def final_outcome(args: argparse.Namespace) -> dict[str, Any] | None:
    if not args.final:
        return None
    return {"dag_status": args.dag_status, "failed_count": args.failed_count}


def write_history(facts: dict[str, Any], args: argparse.Namespace) -> None:
    """The run's summary for make runs, where the base directory's run records are writable."""
    if not writable(config.Layout(Path(facts["base_dir"])).history_dir):
        return
    by = "FINAL node" if args.final else "make report"
    try:
        history.record(facts, by, args.dagman_job_id or None)
    except OSError as exc:
        facts["notes"].append(f"cannot write the run's summary (make runs): {exc}")


def write_fallback(base: Path, args: argparse.Namespace, error: str) -> bool:
    """As the FINAL node, when the full report cannot be made: a page with the outcome and
    the reason, so that a run never ends without a report.html. Whether it was written."""
    out_dir = Path(args.output) if args.output else config.Layout(base).report_dir
    try:
        page = fallback_page(base, final_outcome(args) or {}, error)
        common.write_text(page, out_dir / "report.html")
        print(f"report: wrote a short {out_dir / 'report.html'} instead", file=sys.stderr)
        return True
    except OSError as exc:
        print(f"report: cannot write {out_dir / 'report.html'}: {exc}", file=sys.stderr)
        return False


def exit_code(args: argparse.Namespace, written: int) -> int:
    """As the FINAL node: the DAG's own failure first (DAGMan takes the FINAL node's result as
    the DAG's), then the report's."""
    if args.final and (args.dag_status != 0 or args.failed_count != 0):
        print(
            f"report: the DAG failed (DAG status {args.dag_status}, {args.failed_count} failed "
            "node(s)): this FINAL node exits 1 so that it stays failed",
            file=sys.stderr,
        )
        return EXIT_FAILURE
    return written


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    os.environ.setdefault("CONDOR_CONFIG", os.devnull)  # the bindings read logs offline here
    args = parse_args(argv)
    base = Path(args.base_dir).absolute()
    try:
        dag = Path(args.dag).absolute() if args.dag else None
        facts = build_facts(base, dag, argv, final_outcome(args))
        out_dir = choose_output(base, args.output, facts["notes"])
        try:
            report = write_report(facts, out_dir)
        except OSError as exc:
            print(f"report: cannot write the report into {out_dir}: {exc}", file=sys.stderr)
            return exit_code(args, EXIT_FAILURE)
        write_history(facts, args)
    except ReportError as exc:
        print(f"report: {exc}", file=sys.stderr)
        if args.final:  # a page with the outcome stands in: the DAG's own result decides
            return exit_code(args, EXIT_OK if write_fallback(base, args, str(exc)) else EXIT_USAGE)
        return EXIT_USAGE
    except OSError as exc:  # an unreadable base directory or DAG folder: one line, no traceback
        where = exc.filename if exc.filename is not None else base
        print(f"report: cannot read {where}: {exc.strerror or exc}", file=sys.stderr)
        return exit_code(args, EXIT_USAGE)
    except KeyboardInterrupt:
        print("report: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # the FINAL node still leaves a page, then fails with a traceback
        if not args.final:
            raise
        write_fallback(base, args, f"the report crashed: {type(exc).__name__}: {exc}")
        raise
    if args.json:
        for note in facts["notes"]:
            print(f"report: note: {note}", file=sys.stderr)
        print(json.dumps(facts, indent=2, default=str))
    else:
        print(render_console(facts))
        print("")
        print(f"Page:   {facts['html_file']}")
        print(f"Report: {report}")
    return exit_code(args, EXIT_OK)


if __name__ == "__main__":
    sys.exit(main())
