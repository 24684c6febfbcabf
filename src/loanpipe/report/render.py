"""The rendering half of ``make report``: charts (SVG, drawn by loanpipe.report.svg), report.md
and the console summary, from the facts loanpipe.report.builder gathers (loanpipe.report.runs
reads the run records)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from loanpipe.report import leaderboard, svg
from loanpipe.report.runs import is_failed
from loanpipe.report.sources import HIGH_USE, OVER_REQUEST, utc
from loanpipe.stages.modeling import METRIC_KEYS  # one source: the stages' metric keys


def fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def signed(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:+.{digits}f}"


# ---------------------------------------------------------------------------- charts

CHARTS = (  # every chart file the report writes (or leaves out when it has nothing to show)
    "metrics_by_model.svg",
    "confusion_matrices.svg",
    "timeline.svg",
    "memory.svg",
    leaderboard.CHART,
)
# the PNG charts of releases before the SVG ones: removed when a report is written, so that
# none lingers beside report.md as if it were current
OLD_PNG = tuple(name.removesuffix(".svg") + ".png" for name in CHARTS)


def make_charts(facts: dict[str, Any], now: float | None = None) -> dict[str, str]:
    """SVG charts by file name: metrics by model, confusion matrices, node timeline, memory,
    the search's leaderboard (each only when there is something to draw). ``now`` ends the bar
    of a node still running (default: the clock)."""
    charts: dict[str, str] = {}
    models = facts["results"]["models"]
    deployed = (facts["results"]["deployment"] or {}).get("candidate")
    if models:
        charts[CHARTS[0]] = svg.metrics_by_model(models, METRIC_KEYS, deployed)
    with_cm = [m for m in models if m["confusion_matrix"]]
    if with_cm:
        charts[CHARTS[1]] = svg.confusion_matrices(with_cm)
    ran = [n for n in (facts["run"] or {}).get("nodes", []) if n["attempt_list"]]
    if ran:
        charts[CHARTS[2]] = svg.timeline(ran, time.time() if now is None else now)
    measured = [n for n in ran if n["memory_used_mib"] is not None or n["memory_request_mib"]]
    if measured:
        charts[CHARTS[3]] = svg.memory(measured, HIGH_USE, svg.HIGH_USE_TICK)
    if facts.get("search"):
        charts[CHARTS[4]] = svg.search_leaderboard(
            facts["search"], leaderboard.FAMILY_COLOURS, leaderboard.CHART
        )
    return charts


# ---------------------------------------------------------------------------- rendering


def md_table(header: list[str], rows: list[list[Any]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in rows]
    return out


def text_table(header: list[str], rows: list[list[Any]]) -> list[str]:
    cells = [header] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return lines


def model_rows(facts: dict[str, Any]) -> list[list[Any]]:
    deployed = (facts["results"]["deployment"] or {}).get("candidate")
    return [
        [
            m["version"],
            m["name"],
            *(fmt(m[k]) for k in METRIC_KEYS),
            fmt(m["test_rows"]),
            "yes" if m["version"] == deployed else "",
        ]
        for m in facts["results"]["models"]
    ]


def decision_line(deployment: dict[str, Any] | None) -> str:
    if not deployment:
        return "No model evaluated or deployed yet."
    margin = deployment["margin"] or {}
    rule = {
        "precision": "higher precision",
        "f1": "equal precision, higher F1 (tie-break)",
        "tie": "full tie on precision and F1: the earlier version by rule",
        "only model": "the only evaluated model",
    }.get(str(deployment["rule"]), str(deployment["rule"]))
    text = (
        f"Deployed: {deployment['candidate']} ({deployment['model_name']}), rule: {rule}"
        f"; margin {margin.get('metric')} {signed(margin.get('value'))}"
    )
    if deployment["source"] == "manifest":
        text += f" (deployment manifest, deployed at {deployment.get('deployed_at')})"
    else:
        text += " (derived: " + deployment["note"] + ")"
    return text


def node_rows(nodes: list[dict[str, Any]]) -> list[list[Any]]:
    rows = []
    for n in nodes:
        exit_text = f"signal {n['signal']}" if n["signal"] else fmt(n["exit_code"])
        share = n.get("memory_use_share")
        rows.append(
            [
                n["name"],
                n["status"],
                n["attempts"],
                exit_text,
                fmt(n["queued_s"], 0) if n["queued_s"] is not None else "-",
                fmt(n["wall_s"], 1) if n["wall_s"] is not None else "-",
                f"{fmt(n['memory_used_mib'], 0)} / {fmt(n['memory_request_mib'], 0)}",
                f"{share:.0%}" if share is not None else "-",
                "; ".join(n["memory_flags"]) or "",
            ]
        )
    return rows


NODE_HEADER = [
    "node",
    "status",
    "attempts",
    "exit",
    "queued s",
    "wall s",
    "MiB used / req",
    "use",
    "flag",
]


def run_summary(run: dict[str, Any]) -> list[str]:
    lines = []
    metrics = run["metrics"]
    kind = {"pool": "HTCondor pool (DAGMan)", "local": "local runner", None: "unknown"}[run["kind"]]
    lines.append(f"Run: {kind}; DAG directory {run['dag_dir']}")
    if metrics:
        lines.append(
            f"DAG status {metrics['dag_status']} ({metrics['dag_status_name']}), exit code "
            f"{metrics['exitcode']}, duration {fmt(metrics['duration'], 2)} s "
            f"({utc(metrics['start_time'])} to {utc(metrics['end_time'])}); "
            f"nodes {metrics['nodes']}: {metrics['nodes_succeeded']} succeeded, "
            f"{metrics['nodes_failed']} failed"
            + (
                f"; jobs submitted {metrics['jobs_submitted']}, failed {metrics['jobs_failed']}"
                if metrics["format"] == 2
                else ""
            )
            + f" [{Path(run['dag']).name}.metrics format v{metrics['format']}, {metrics['client']} "
            f"{metrics['version']}]"
        )
    elif run.get("final"):
        name = Path(run["dag"]).name
        lines.append(
            f"Written by the DAG's FINAL node as the run ends ({name}.metrics comes after)"
        )
    else:
        name = Path(run["dag"]).name
        lines.append(f"No {name}.metrics (DAG still running, or it never finished)")
    walls = [n["wall_s"] for n in run["nodes"] if n["wall_s"] is not None]
    if walls:
        skipped = sum(1 for n in run["nodes"] if n["status"] == "skipped")
        ran = sum(1 for n in run["nodes"] if n["attempts"] and n["status"] != "skipped")
        busy, took = sum(walls), (metrics or {}).get("duration")
        comparison = ""
        if took and not (run["local"] or {}).get("resumed"):
            comparison = (
                f" (the DAG took {took:.1f} s: the rest is queueing, scheduling and waiting "
                "for parents)"
                if busy <= took
                else f" (the DAG took {took:.1f} s: nodes ran in parallel)"
            )
        lines.append(
            f"{ran} of {len(run['nodes'])} nodes ran"
            + (f", {skipped} skipped (PRE_SKIP: unchanged)" if skipped else "")
            + f"; {busy:.1f} s of job run time in all"
            + comparison
        )
    return lines


def md_results(facts: dict[str, Any]) -> list[str]:
    """## Results: every model's metrics, the deployment decision, against the earlier one."""
    results = facts["results"]
    out = ["## Results", ""]
    if results["models"]:
        out += md_table(
            ["version", "model", *METRIC_KEYS, "test rows", "deployed"], model_rows(facts)
        )
    else:
        out.append("No metrics files yet (`staging/metrics/model_metrics_*.json`).")
    out += ["", decision_line(results["deployment"]), ""]
    deployment = results["deployment"] or {}
    if deployment.get("sha256_check"):
        out += [
            f"Deployed model file against the manifest's sha256: {deployment['sha256_check']}.",
            "",
        ]
    earlier = deployment.get("earlier")
    if earlier:
        out += [
            f"Against the earlier deployment ({earlier['candidate']} {earlier['model_name']}, "
            f"{earlier['stamp']}):",
            "",
        ]
        changes = [
            [
                k,
                fmt(earlier["metrics"].get(k)),
                fmt(deployment["metrics"].get(k)),
                signed(earlier["change"].get(k)),
            ]
            for k in METRIC_KEYS
        ]
        out += md_table(["metric", "earlier", "now", "change"], changes) + [""]
    elif deployment.get("source") == "manifest":
        out += ["No earlier deployment (`model/deployments/`).", ""]
    for chart, title in (
        ("metrics_by_model.svg", "Metrics by model"),
        ("confusion_matrices.svg", "Confusion matrices"),
    ):
        if chart in facts["charts"]:
            out += [f"![{title}]({chart})", ""]
    return out


def md_failures(nodes: list[dict[str, Any]]) -> list[str]:
    """Each hold, then each failed node with the last lines of its stderr."""
    out = []
    for node in nodes:
        for hold in node["holds"]:
            out.append(
                f"- **{node['name']} held** at {utc(hold['time'])} (code {hold['code']}, "
                f"subcode {hold['subcode']}): {hold['reason']}"
            )
    if any(n["holds"] for n in nodes):
        out.append("")
    for node in nodes:
        if is_failed(node):
            out += [f"### {node['name']}: {node['status']}", ""]
            if node.get("stderr_tail") is not None:
                out += [f"Last lines of `{node['stderr_file']}`:", "", "```"]
                out += node["stderr_tail"] or ["(empty)"]
                out += ["```", ""]
            else:
                out += ["No stderr file found for this node.", ""]
    return out


def md_run(facts: dict[str, Any]) -> list[str]:
    """## The run: its summary, the node table, holds and failures, the charts."""
    run = facts["run"]
    out = ["## The run", ""]
    if not run:
        return out + ["No DAG records (no metrics file, nodes log or local run records).", ""]
    out += [f"{line}." if not line.endswith(")") else line for line in run_summary(run)] + [""]
    if run["nodes"]:
        out += md_table(NODE_HEADER, node_rows(run["nodes"]))
        out += [
            "",
            "_wall s_: time on an execute slot (all attempts); _queued s_: submit to start. "
            f"Flags: use above {HIGH_USE:.0%} of the request (risk of a hold on pools that "
            f"enforce memory), or a request over {OVER_REQUEST:g}x the use. HTCondor samples "
            "memory periodically: a job of a few seconds can report far less than its real "
            "peak (1 MiB = not sampled), so measure before cutting a request.",
            "",
        ]
    out += md_failures(run["nodes"])
    for chart, title in (("timeline.svg", "Node timeline"), ("memory.svg", "Memory")):
        if chart in facts["charts"]:
            out += [f"![{title}]({chart})", ""]
    return out + ["Read from: " + ", ".join(f"`{s}`" for s in run["sources"]), ""]


def provenance_rows(prov: dict[str, Any]) -> list[list[Any]]:
    """One row per model: model, input, sha256, rows, parameters, versions, git commit, host
    (the provenance table of report.md and report.html)."""
    return [
        [
            version,
            p.get("input_file"),
            p.get("input_sha256"),
            p.get("input_rows"),
            json.dumps(p.get("parameters"), sort_keys=True),
            ", ".join(f"{k} {v}" for k, v in (p.get("versions") or {}).items()),
            p.get("git_commit"),
            p.get("host"),
        ]
        for version, p in prov["models"].items()
    ]


def md_provenance(prov: dict[str, Any]) -> list[str]:
    """## Provenance: where each model's figures came from, and this report."""
    out = ["## Provenance", ""]
    if prov["models"]:
        out += md_table(
            ["model", "input", "sha256", "rows", "parameters", "versions", "git commit", "host"],
            provenance_rows(prov),
        )
    else:
        out.append("The metrics files carry no provenance (the original pipeline wrote none).")
    own = prov["report"]
    return out + [
        "",
        f"This report: `{own['command']}` on {own['host']}, git commit {own['git_commit']}, "
        + ", ".join(f"{k} {v}" for k, v in own["versions"].items())
        + ".",
        "",
    ]


def render_markdown(facts: dict[str, Any]) -> str:
    out = ["# Loan-approval pipeline report", ""]
    out.append(f"Base directory `{facts['base_dir']}`; generated {facts['generated_at']}.")
    out.append("")
    if facts["notes"]:
        out += ["**Notes**", ""] + [f"- {note}" for note in facts["notes"]] + [""]
    out += md_results(facts)
    out += leaderboard.markdown(facts.get("search"), facts["charts"])
    out += md_run(facts)
    out += md_provenance(facts["provenance"])
    return "\n".join(out)


def render_console(facts: dict[str, Any]) -> str:
    out = [f"Report for {facts['base_dir']}"]
    out += [f"note: {note}" for note in facts["notes"]]
    out.append("")
    if facts["results"]["models"]:
        out += text_table(
            ["version", "model", *METRIC_KEYS, "test rows", "deployed"], model_rows(facts)
        )
    else:
        out.append("No metrics files yet.")
    out.append(decision_line(facts["results"]["deployment"]))
    out += leaderboard.console(facts.get("search"))
    earlier = (facts["results"]["deployment"] or {}).get("earlier")
    if earlier:
        out.append(
            f"Change against the earlier deployment ({earlier['stamp']}): "
            + ", ".join(f"{k} {signed(v)}" for k, v in earlier["change"].items())
        )
    run = facts["run"]
    out.append("")
    if run:
        out += run_summary(run)
        if run["nodes"]:
            out += text_table(NODE_HEADER, node_rows(run["nodes"]))
        if any(
            n["memory_used_mib"] is not None and n["memory_used_mib"] <= 1 for n in run["nodes"]
        ):
            out.append(
                "memory: a use of 1 MiB means HTCondor did not sample the job before it ended; "
                "measure peak RSS before cutting such a request"
            )
        for node in run["nodes"]:
            for hold in node["holds"]:
                out.append(f"{node['name']} held (code {hold['code']}): {hold['reason']}")
            if is_failed(node):
                out.append(
                    f"{node['name']} {node['status']}; stderr tail ({node.get('stderr_file')}):"
                )
                out += ["    " + line for line in (node.get("stderr_tail") or ["(none)"])[-10:]]
    else:
        out.append("No DAG records.")
    return "\n".join(out)
