"""The report's charts as SVG text: metrics by model, confusion matrices, node timeline, memory,
and the model search's leaderboard.

Each chart is a standalone SVG document (``width``/``height``/``viewBox``, a ``<title>``, the
file name in ``data-chart``) that report.md links as a file and report.html embeds inline. Plain
string building: no plotting library, nothing to import at run time, and the same facts give the
same bytes (coordinates rounded to 0.1, no clock read unless a node is still running, when the
caller's ``now`` closes its bar). Every text from the files (model, node, candidate names) is
XML-escaped.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Sequence
from typing import Any

NS = "http://www.w3.org/2000/svg"
FONT = 'font-family="DejaVu Sans,system-ui,sans-serif" font-size="11"'
# matplotlib's default cycle (tab10), so the colours read as before
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2")
STATE = {"queued": "#cfd8dc", "ok": "#2e7d32", "failed": "#c62828", "held": "#ef6c00"}
USED = "#1565c0"
HIGH_USE_TICK = "#ef6c00"


def esc(value: Any) -> str:
    """Text or attribute value, XML-escaped (quotes too)."""
    return html.escape(str(value), quote=True)


def n(value: float) -> str:
    """A coordinate: one decimal, no "-0.0" (deterministic text)."""
    text = f"{value:.1f}"
    return "0.0" if text == "-0.0" else text


def document(name: str, title: str, width: float, height: float, body: list[str]) -> str:
    """A standalone SVG document for chart ``name`` (its file name) titled ``title``."""
    return "\n".join(
        [
            f'<svg xmlns="{NS}" width="{n(width)}" height="{n(height)}" '
            f'viewBox="0 0 {n(width)} {n(height)}" role="img" aria-label="{esc(title)}" '
            f'data-chart="{esc(name)}" {FONT}>',
            f"<title>{esc(title)}</title>",
            f'<rect width="{n(width)}" height="{n(height)}" fill="#ffffff"/>',
            f'<text x="{n(width / 2)}" y="18" text-anchor="middle" font-size="13" '
            f'font-weight="bold">{esc(title)}</text>',
            *body,
            "</svg>",
            "",
        ]
    )


def text(x: float, y: float, label: Any, anchor: str = "middle", extra: str = "") -> str:
    return f'<text x="{n(x)}" y="{n(y)}" text-anchor="{anchor}"{extra}>{esc(label)}</text>'


def rect(x: float, y: float, w: float, h: float, fill: str, cls: str = "", tip: str = "") -> str:
    klass = f' class="{cls}"' if cls else ""
    head = f'<rect{klass} x="{n(x)}" y="{n(y)}" width="{n(w)}" height="{n(h)}" fill="{fill}"'
    return f"{head}><title>{esc(tip)}</title></rect>" if tip else f"{head}/>"


def line(x1: float, y1: float, x2: float, y2: float, stroke: str, width: float = 1) -> str:
    return (
        f'<line x1="{n(x1)}" y1="{n(y1)}" x2="{n(x2)}" y2="{n(y2)}" stroke="{stroke}" '
        f'stroke-width="{n(width)}"/>'
    )


def legend(x: float, y: float, items: Sequence[tuple[str, str]]) -> list[str]:
    """One swatch and label per line, from (x, y) down."""
    out = []
    for i, (colour, label) in enumerate(items):
        top = y + i * 15
        out.append(rect(x, top, 10, 10, colour))
        out.append(text(x + 14, top + 9, label, "start", ' class="legend"'))
    return out


def nice_span(low: float, high: float, count: int = 6) -> tuple[float, float, float]:
    """``low``..``high`` widened to round ticks about ``count`` apart (step 1, 2, 2.5 or 5 x
    10^k): (low, high, step)."""
    raw = (high - low) / count if high > low else 1.0
    power = 10.0 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw - 1e-12)
    return math.floor(low / step + 1e-9) * step, math.ceil(high / step - 1e-9) * step, step


def x_axis(
    left: float, width: float, top: float, bottom: float, span: tuple[float, ...], fmt: str
) -> list[str]:
    """Vertical grid lines with their values under the plot, for a horizontal-bar chart; ``span``:
    (low, high, step) from nice_span."""
    low, high, step = span
    out = []
    for i in range(round((high - low) / step) + 1):
        value = low + i * step
        x = left + (value - low) / (high - low) * width
        out.append(line(x, top, x, bottom, "#e0e0e0"))
        out.append(text(x, bottom + 14, format(value, fmt)))
    return out


def hbar_frame(
    labels: list[str],
    span: tuple[float, float, float],
    xlabel: str,
    draw: Callable[[int, float, Callable[[float], float]], list[str]],
    fmt: str = ".2f",
    bold: str | None = None,
) -> tuple[list[str], float, float]:
    """A horizontal-bar chart's frame: one row per label, ``draw(row, top, x_of)`` its bars,
    ``span`` the x axis (nice_span). Returns the body, the width and the height (the caller adds
    a legend below)."""
    left, width, row, top = 170.0, 520.0, 24.0, 32.0
    bottom = top + row * len(labels)
    low, high, _ = span

    def x_of(value: float) -> float:
        return left + (value - low) / (high - low) * width

    body = x_axis(left, width, top, bottom, span, fmt)
    for i, label in enumerate(labels):
        y = top + i * row
        weight = ' font-weight="bold"' if label == bold else ""
        body.append(text(left - 6, y + row / 2 + 4, label, "end", weight))
        body += draw(i, y, x_of)
    body.append(line(left, bottom, left + width, bottom, "#555555"))
    body.append(text(left + width / 2, bottom + 30, xlabel))
    return body, left + width + 20, bottom + 40


# ---------------------------------------------------------------------------- the five charts


def model_label(model: dict[str, Any], deployed: str | None) -> str:
    return f"{model['version']} {model['name']}" + (
        " (deployed)" if model["version"] == deployed else ""
    )


def metrics_by_model(
    models: list[dict[str, Any]], keys: Sequence[str], deployed: str | None
) -> str:
    """Grouped bars: per metric, one bar per model, its value (3 decimals) above it."""
    left, top, plot_h, group = 60.0, 36.0, 240.0, 150.0
    width = left + group * len(keys) + 20
    bottom = top + plot_h

    def y_of(value: float) -> float:
        return bottom - max(0.0, min(value, 1.1)) / 1.1 * plot_h

    body = []
    for value in (0.0, 0.2, 0.4, 0.6, 0.8, 1.0):
        body.append(line(left, y_of(value), width - 20, y_of(value), "#e0e0e0"))
        body.append(text(left - 5, y_of(value) + 4, f"{value:.1f}", "end"))
    bar = group * 0.8 / len(models)
    for j, key in enumerate(keys):
        x0 = left + j * group + group * 0.1
        body.append(text(left + j * group + group / 2, bottom + 15, key))
        for i, model in enumerate(models):
            value, x = float(model[key]), x0 + i * bar
            tip = f"{model_label(model, deployed)} {key} {value:.4f}"
            colour = PALETTE[i % len(PALETTE)]
            body.append(rect(x, y_of(value), bar * 0.92, bottom - y_of(value), colour, "mark", tip))
            body.append(
                text(x + bar * 0.46, y_of(value) - 3, f"{value:.3f}", extra=' font-size="8"')
            )
    body.append(line(left, bottom, width - 20, bottom, "#555555"))
    body.append(
        text(
            16,
            top + plot_h / 2,
            "score on the test split",
            extra=f' transform="rotate(-90 16 {n(top + plot_h / 2)})"',
        )
    )
    items = [(PALETTE[i % len(PALETTE)], model_label(m, deployed)) for i, m in enumerate(models)]
    body += legend(left, bottom + 28, items)
    height = bottom + 36 + 15 * len(items)
    return document("metrics_by_model.svg", "Metrics by model", width, height, body)


def blues(share: float) -> str:
    """White to dark blue (matplotlib's "Blues" ends), by ``share`` of the largest count."""
    low, high = (247, 251, 255), (8, 48, 107)
    r, g, b = (round(lo + (hi - lo) * share) for lo, hi in zip(low, high, strict=True))
    return f"#{r:02x}{g:02x}{b:02x}"


def confusion_panel(model: dict[str, Any], x0: float, top: float) -> list[str]:
    cm, cell = model["confusion_matrix"], 70.0
    peak = max(max(row) for row in cm) or 1
    body = [text(x0 + cell, top - 8, f"{model['version']} {model['name']}")]
    for r in range(2):
        body.append(text(x0 - 6, top + r * cell + cell / 2 + 4, f"true {r}", "end"))
        for c in range(2):
            count, x, y = cm[r][c], x0 + c * cell, top + r * cell
            tip = f"{model['version']} {model['name']}: true {r}, predicted {c}: {count}"
            body.append(rect(x, y, cell, cell, blues(count / peak), "cell", tip))
            colour = "#ffffff" if count > peak / 2 else "#000000"
            body.append(text(x + cell / 2, y + cell / 2 + 4, count, extra=f' fill="{colour}"'))
    for c in range(2):
        body.append(text(x0 + c * cell + cell / 2, top + 2 * cell + 15, f"pred {c}"))
    return body


def confusion_matrices(models: list[dict[str, Any]]) -> str:
    """One 2x2 panel per model, the count in each cell, shaded by its share of the largest."""
    panel, top = 220.0, 60.0
    body = []
    for i, model in enumerate(models):
        body += confusion_panel(model, 60 + i * panel, top)
    width, height = 40 + panel * len(models), top + 140 + 30
    return document(
        "confusion_matrices.svg", "Confusion matrices (test split)", width, height, body
    )


def attempt_kind(attempt: dict[str, Any]) -> str:
    """How a timeline colours an attempt (a key of STATE): held, ok (also while it still runs)
    or failed. The page's Gantt (report.html) and timeline.svg both use it."""
    if attempt.get("state") == "held":
        return "held"
    if attempt.get("ended") is None and attempt.get("state") == "running":
        return "ok"
    return "ok" if attempt.get("exit_code") == 0 and not attempt.get("signal") else "failed"


def attempt_marks(
    attempt: dict[str, Any], y: float, x_of: Callable[[float], float], label: str, now: float
) -> list[str]:
    out = []
    submitted, started = attempt.get("submitted"), attempt.get("started")
    if submitted is not None and started is not None:
        tip = f"{label} queued {started - submitted:.1f} s"
        width = max(x_of(started) - x_of(submitted), 0.0)
        out.append(rect(x_of(submitted), y + 6, width, 12, STATE["queued"], "queued", tip))
    kind = attempt_kind(attempt)
    for start, end in attempt.get("segments") or []:
        end = end if end is not None else now
        tip = f"{label} ran {end - start:.1f} s ({kind})"
        width = max(x_of(end) - x_of(start), 2.0)
        out.append(rect(x_of(start), y + 6, width, 12, STATE[kind], f"mark {kind}", tip))
    return out


def timeline(ran: list[dict[str, Any]], now: float) -> str:
    """One row per node that ran: queued time grey, run segments by outcome."""
    times = [
        t
        for node in ran
        for a in node["attempt_list"]
        for t in (a.get("submitted"), a.get("started"), *(e for s in a["segments"] for e in s))
        if t is not None
    ]
    t0 = min(times) if times else 0.0
    t1 = max(max(times) if times else 1.0, t0 + 1.0)
    if any(end is None for node in ran for a in node["attempt_list"] for _, end in a["segments"]):
        t1 = max(t1, now)

    def draw(i: int, y: float, x_of: Callable[[float], float]) -> list[str]:
        marks = []
        for k, attempt in enumerate(ran[i]["attempt_list"]):
            label = f"{ran[i]['name']} attempt {k + 1}"
            marks += attempt_marks(attempt, y, lambda t: x_of(t - t0), label, now)
        return marks

    body, width, height = hbar_frame(
        [node["name"] for node in ran],
        nice_span(0.0, t1 - t0),
        "seconds since the first job was submitted",
        draw,
        fmt="g",
    )
    items = [(STATE[k], t) for k, t in (("queued", "queued"), ("ok", "ran ok"))]
    items += [(STATE["failed"], "failed"), (STATE["held"], "held")]
    body += legend(20, height - 4, items)
    return document("timeline.svg", "Node timeline", width, height + 60, body)


def memory(measured: list[dict[str, Any]], high_use: float, flagged: str) -> str:
    """Per node: the request (grey), the peak used (blue; orange when flagged), a tick at
    ``high_use`` of the request."""
    peak = max(
        [float(node["memory_request_mib"] or 0) for node in measured]
        + [float(node["memory_used_mib"] or 0) for node in measured]
        + [1.0]
    )

    def draw(i: int, y: float, x_of: Callable[[float], float]) -> list[str]:
        node, marks = measured[i], []
        request, used = node["memory_request_mib"], node["memory_used_mib"]
        if request:
            tip = f"{node['name']} requested {request:g} MiB"
            marks.append(
                rect(x_of(0), y + 3, x_of(request) - x_of(0), 18, STATE["queued"], "", tip)
            )
            tick = x_of(request * high_use)
            marks.append(line(tick, y + 2, tick, y + 22, HIGH_USE_TICK, 1.5))
        if used is not None:
            colour = flagged if node["memory_flags"] else USED
            tip = f"{node['name']} used {used:g} MiB"
            marks.append(rect(x_of(0), y + 7, x_of(used) - x_of(0), 10, colour, "mark", tip))
            marks.append(text(x_of(used) + 3, y + 16, f"{used:g}", "start", ' font-size="8"'))
        return marks

    body, width, height = hbar_frame(
        [node["name"] for node in measured],
        nice_span(0.0, peak * 1.05),
        f"MiB (orange tick: {high_use:.0%} of the request)",
        draw,
        fmt="g",
    )
    items = [(STATE["queued"], "requested"), (USED, "used (peak)"), (flagged, "used, flagged")]
    body += legend(20, height - 4, items)
    return document("memory.svg", "Memory used against memory requested", width, height + 45, body)


def search_leaderboard(search: dict[str, Any], family_colours: dict[str, str], name: str) -> str:
    """Every candidate's mean CV score (bar) with its spread (whisker), by family; the winner's
    label bold."""
    board = search["leaderboard"]
    means = [float(e["mean"]) for e in board]
    stds = [float(e.get("std") or 0.0) for e in board]
    low = max(0.0, min(m - s for m, s in zip(means, stds, strict=True)) - 0.02)
    high = min(1.0, max(means) + max(stds) + 0.02)
    span = nice_span(low, high)  # the frame's axis: the bars start at its left
    low, high = span[0], span[1]

    def draw(i: int, y: float, x_of: Callable[[float], float]) -> list[str]:
        entry, mean, std = board[i], means[i], stds[i]
        colour = family_colours.get(entry.get("family"), "#8172b2")
        tip = f"{entry['candidate']} mean {mean:.4f} std {std:.4f}"
        marks = [rect(x_of(low), y + 5, x_of(mean) - x_of(low), 14, colour, "mark", tip)]
        a, b = x_of(max(mean - std, low)), x_of(min(mean + std, high))
        marks += [line(a, y + 12, b, y + 12, "#333333"), line(a, y + 8, a, y + 16, "#333333")]
        marks.append(line(b, y + 8, b, y + 16, "#333333"))
        marks.append(text(b + 4, y + 16, f"{mean:.3f}", "start", ' font-size="8"'))
        return marks

    title = f"Model search: {len(board)} candidates, winner {search['winner']}"
    xlabel = f"mean CV {search.get('scoring')} over {search.get('folds')} folds (bar: +/- std)"
    labels = [str(e["candidate"]) for e in board]
    body, width, height = hbar_frame(labels, span, xlabel, draw, fmt=".3f", bold=search["winner"])
    body += legend(20, height - 4, [(c, f) for f, c in family_colours.items() if f])
    return document(name, title, width, height + 15 * len(family_colours) + 5, body)
