"""``report.html``: the whole report as one self-contained page.

Everything is inside the one file, so it opens from NFS (or as a mail attachment) in any browser:
the styles are inline, the node timeline is an inline SVG drawn here (a Gantt chart: one row
per node, one bar per attempt, queued time grey, holds marked), and the other charts are the
SVG documents of ``render.make_charts`` (loanpipe.report.svg) embedded inline, each keeping its
``data-chart`` file name. No script, no external link, nothing fetched.

Sections (ids for links and for the tests): ``outcome`` (succeeded or failed, and why),
``results`` (metrics, the deployment decision), ``search`` (the model search's leaderboard, tune
runs), ``timeline``, ``memory``, ``nodes`` (start, end, attempts, holds, exit per node),
``failures`` (stderr of failed nodes), ``provenance``.
"""

from __future__ import annotations

import html
import time
from typing import Any

from loanpipe.report import leaderboard
from loanpipe.report.render import (
    METRIC_KEYS,
    NODE_HEADER,
    decision_line,
    model_rows,
    node_rows,
    provenance_rows,
    run_summary,
    signed,
)
from loanpipe.report.sources import utc
from loanpipe.report.svg import (
    STATE,
    attempt_kind,
)  # one palette and colour rule for both timelines

STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5em auto;max-width:72em;color:#222;padding:0 1em}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:1.6em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;margin:.6em 0;font-size:.88em}
td,th{border:1px solid #ccc;padding:.25em .5em;text-align:left;vertical-align:top}
th{background:#f2f2f2}.ok{background:#e8f5e9;border-left:6px solid #2e7d32}
.failed{background:#ffebee;border-left:6px solid #c62828}
.unknown{background:#fff8e1;border-left:6px solid #ef6c00}
.banner{padding:.7em 1em;margin:1em 0;font-size:1.05em}
pre{background:#f7f7f7;padding:.6em;overflow-x:auto;font-size:.85em}
img,figure.chart svg{max-width:100%;height:auto}figure.chart{margin:.6em 0}
#gantt text{font-size:11px;font-family:system-ui,sans-serif}
.notes li{color:#8a4b00}
"""


def esc(value: Any) -> str:
    return html.escape("-" if value is None else str(value))


def table(header: list[str], rows: list[list[Any]], cls: str = "") -> str:
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def image(charts: dict[str, str], name: str, alt: str) -> str:
    """Chart ``name`` inline: its SVG document (which carries ``data-chart`` and its title)."""
    if name not in charts:
        return ""
    return f'<figure class="chart" aria-label="{esc(alt)}">{charts[name]}</figure>'


# ---------------------------------------------------------------------------- sections


def outcome_section(facts: dict[str, Any]) -> str:
    out = facts["outcome"]
    cls = "ok" if out["ok"] else ("unknown" if out["status"] is None else "failed")
    parts = [
        '<section id="outcome"><h2>Outcome</h2>',
        f'<div class="banner {cls}" data-dag-status="{esc(out["status"])}">'
        f"<strong>{esc(out['headline'])}</strong><br>"
        f"DAG status {esc(out['status'])} ({esc(out['name'])}), failed nodes "
        f"{esc(out['failed_count'])}; from the {esc(out['source'])}.</div>",
    ]
    if out["failed_nodes"]:
        rows = [
            [n["name"], n["status"], n["attempts"], n["exit"], n["error"], n["stderr_file"]]
            for n in out["failed_nodes"]
        ]
        parts.append(table(["failed node", "status", "attempts", "exit", "error", "stderr"], rows))
    run = facts["run"]
    if run:
        parts.append("<p>" + "<br>".join(esc(line) for line in run_summary(run)) + "</p>")
    return "".join(parts) + "</section>"


def results_section(facts: dict[str, Any], charts: dict[str, str]) -> str:
    results = facts["results"]
    parts = ['<section id="results"><h2>Deployment decision and metrics</h2>']
    parts.append(f'<p id="decision">{esc(decision_line(results["deployment"]))}</p>')
    if results["models"]:
        header = ["version", "model", *METRIC_KEYS, "test rows", "deployed"]
        parts.append(table(header, model_rows(facts)))
    else:
        parts.append("<p>No metrics files yet (staging/metrics/model_metrics_*.json).</p>")
    deployment = results["deployment"] or {}
    earlier = deployment.get("earlier")
    if earlier:
        parts.append(
            f"<p>Against the earlier deployment ({esc(earlier['candidate'])} "
            f"{esc(earlier['model_name'])}, archived {esc(earlier['stamp'])}):</p>"
        )
        rows = [
            [
                k,
                earlier["metrics"].get(k),
                deployment["metrics"].get(k),
                signed(earlier["change"].get(k)),
            ]
            for k in METRIC_KEYS
        ]
        parts.append(table(["metric", "earlier", "now", "change"], rows))
    if deployment.get("sha256_check"):
        parts.append(
            f"<p>Deployed model file against its manifest: {esc(deployment['sha256_check'])}.</p>"
        )
    parts.append(image(charts, "metrics_by_model.svg", "Metrics by model"))
    parts.append(image(charts, "confusion_matrices.svg", "Confusion matrices"))
    return "".join(parts) + "</section>"


def search_section(facts: dict[str, Any], charts: dict[str, str]) -> str:
    search = facts.get("search")
    if not search:
        return ""
    return (
        '<section id="search"><h2>Model search leaderboard</h2>'
        f"<p>{esc(leaderboard.summary(search))}</p>"
        + table(leaderboard.header(search), leaderboard.rows(search))
        + image(charts, leaderboard.CHART, "Model search leaderboard")
        + "</section>"
    )


def gantt(nodes: list[dict[str, Any]], now: float) -> str:
    """An SVG Gantt chart: per node, each attempt's queued time and run segments, holds."""
    ran = [n for n in nodes if n["attempt_list"]]
    times = [
        t
        for n in ran
        for a in n["attempt_list"]
        for t in (a.get("submitted"), a.get("started"), a.get("ended"))
        if t is not None
    ]
    if not times:
        return "<p>No node has started yet.</p>"
    t0, t1 = min(times), max(max(times), min(times) + 1.0)
    if any(a.get("ended") is None for n in ran for a in n["attempt_list"]):
        t1 = max(t1, now)
    left, width, row = 170, 640, 24
    scale = width / (t1 - t0)
    height = row * len(ran) + 40
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" id="gantt" width="{left + width + 20}" '
        f'height="{height}" role="img" aria-label="Node timeline">'
    ]
    for i in range(6):  # time axis
        x = left + i * width / 5
        out.append(f'<line x1="{x:.1f}" y1="0" x2="{x:.1f}" y2="{height - 25}" stroke="#eee"/>')
        out.append(
            f'<text x="{x:.1f}" y="{height - 10}" text-anchor="middle">'
            f"{(t1 - t0) * i / 5:.{0 if t1 - t0 >= 50 else 1}f} s</text>"
        )
    for y, node in enumerate(ran):
        top = y * row + 4
        out.append(
            f'<text x="{left - 6}" y="{top + 13}" text-anchor="end">{esc(node["name"])}</text>'
        )
        for number, attempt in enumerate(node["attempt_list"]):
            out += attempt_bars(node, number, attempt, top, left, t0, scale, now)
        for hold in node["holds"]:
            x = left + (hold["time"] - t0) * scale
            out.append(
                f'<path class="hold" d="M{x:.1f} {top} l5 8 l-5 8 l-5 -8 z" fill="{STATE["held"]}">'
                f"<title>{esc(node['name'])} held at {esc(utc(hold['time']))}: "
                f"{esc(hold['reason'])}</title></path>"
            )
    out.append("</svg>")
    legend = (
        "<p>Seconds since the first job was queued. Grey: queued; green: ran and succeeded; red: "
        "failed; orange: held (diamond: the hold). Hover a bar for its times.</p>"
    )
    return "".join(out) + legend


def attempt_bars(
    node: dict[str, Any],
    number: int,
    attempt: dict[str, Any],
    top: float,
    left: float,
    t0: float,
    scale: float,
    now: float,
) -> list[str]:
    bars = []
    submitted, started = attempt.get("submitted"), attempt.get("started")
    label = f"{node['name']} attempt {number + 1}"
    if submitted is not None and started is not None and started > submitted:
        x, w = left + (submitted - t0) * scale, (started - submitted) * scale
        bars.append(
            f'<rect x="{x:.1f}" y="{top + 3}" width="{max(w, 1):.1f}" height="10" '
            f'fill="{STATE["queued"]}"><title>{esc(label)} queued {started - submitted:.1f} s'
            "</title></rect>"
        )
    kind = attempt_kind(attempt)
    for start, end in attempt.get("segments") or []:
        end = end if end is not None else now
        x, w = left + (start - t0) * scale, (end - start) * scale
        bars.append(
            f'<rect class="bar {kind}" x="{x:.1f}" y="{top}" width="{max(w, 2):.1f}" '
            f'height="16" fill="{STATE[kind]}"><title>{esc(label)}: {esc(utc(start))} to '
            f"{esc(utc(end))} ({end - start:.1f} s), exit {esc(attempt.get('exit_code'))}"
            "</title></rect>"
        )
    return bars


def run_sections(facts: dict[str, Any], charts: dict[str, str]) -> str:
    run = facts["run"] or {"nodes": [], "sources": []}
    nodes = run["nodes"]
    parts = ['<section id="timeline"><h2>Node timeline</h2>', gantt(nodes, time.time())]
    parts.append("</section>")
    parts.append('<section id="nodes"><h2>Nodes</h2>')
    rows = [
        [
            n["name"],
            n["status"],
            utc(n["start"]),
            utc(n["end"]),
            n["attempts"],
            len(n["holds"]),
            "; ".join(str(h.get("reason")) for h in n["holds"]),
            n.get("host"),
        ]
        for n in nodes
    ]
    header = ["node", "status", "start", "end", "attempts", "holds", "hold reasons", "host"]
    parts.append(table(header, rows))
    parts.append("</section>")
    parts.append('<section id="memory"><h2>Memory against requests</h2>')
    parts.append(table(NODE_HEADER, node_rows(nodes)))
    parts.append(image(charts, "memory.svg", "Memory used against memory requested"))
    parts.append(
        "<p>HTCondor samples memory periodically: a job of a few seconds can report far less "
        "than its real peak.</p></section>"
    )
    failed = [n for n in nodes if n.get("stderr_tail") is not None]
    if failed:
        parts.append('<section id="failures"><h2>Failed nodes: the end of stderr</h2>')
        for node in failed:
            parts.append(f"<h3>{esc(node['name'])}: {esc(node['status'])}</h3>")
            parts.append(f"<p>{esc(node['stderr_file'])}</p>")
            parts.append("<pre>" + esc("\n".join(node["stderr_tail"]) or "(empty)") + "</pre>")
        parts.append("</section>")
    return "".join(parts)


def provenance_section(facts: dict[str, Any]) -> str:
    prov = facts["provenance"]
    rows = provenance_rows(prov)
    own = prov["report"]
    sources = (facts["run"] or {}).get("sources") or []
    return (
        '<section id="provenance"><h2>Provenance</h2>'
        + (
            table(
                ["model", "input", "sha256", "rows", "parameters", "versions", "git", "host"], rows
            )
            if rows
            else "<p>The metrics files carry no provenance.</p>"
        )
        + f"<p>This page: <code>{esc(own['command'])}</code> on {esc(own['host'])}, git commit "
        f"{esc(own['git_commit'])}, "
        + esc(", ".join(f"{k} {v}" for k, v in own["versions"].items()))
        + ". Read from: "
        + esc(", ".join(sources))
        + "</p></section>"
    )


def render_html(facts: dict[str, Any], charts: dict[str, str]) -> str:
    """The page for ``facts`` (builder.build_facts) with ``charts`` (SVG text by file name)."""
    notes = "".join(f"<li>{esc(n)}</li>" for n in facts["notes"])
    title = f"Loan pipeline report: {facts['outcome']['name']}"
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            f"<title>{esc(title)}</title><style>{STYLE}</style></head><body>",
            "<h1>Loan-approval pipeline report</h1>",
            f"<p>Base directory <code>{esc(facts['base_dir'])}</code>; generated "
            f"{esc(facts['generated_at'])}.</p>",
            f'<ul class="notes">{notes}</ul>' if notes else "",
            outcome_section(facts),
            results_section(facts, charts),
            search_section(facts, charts),
            run_sections(facts, charts),
            provenance_section(facts),
            "</body></html>",
            "",
        ]
    )


def fallback_page(base: Any, final: dict[str, Any], error: str) -> str:
    """A short page for the FINAL node when the full report could not be made."""
    from loanpipe.dagman.status import DagStatus

    status = final.get("dag_status")
    ok = status == DagStatus.OK and not final.get("failed_count")
    cls = "ok" if ok else "failed"
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            f"<title>Loan pipeline report: {esc(DagStatus.describe(status))}</title>",
            f"<style>{STYLE}</style></head><body><h1>Loan-approval pipeline report</h1>",
            f"<p>Base directory <code>{esc(base)}</code>; generated {esc(utc(time.time()))}.</p>",
            f'<section id="outcome"><div class="banner {cls}" data-dag-status="{esc(status)}">'
            f"DAG status {esc(status)} ({esc(DagStatus.describe(status))}), failed nodes "
            f"{esc(final.get('failed_count'))}; from the FINAL node.</div>",
            f"<p>The full report could not be made: {esc(error)}</p></section>",
            "</body></html>",
            "",
        ]
    )
