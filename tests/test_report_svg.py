"""The report's charts as SVG (loanpipe.report.svg via render.make_charts): each parses as XML,
draws one mark per fact, carries the values as text, escapes names from files, and the same
facts give the same bytes."""

from __future__ import annotations

import copy
import xml.etree.ElementTree as ET
from typing import Any

import pytest

from loanpipe.report import leaderboard
from loanpipe.report.html import attempt_bars
from loanpipe.report.render import CHARTS, OLD_PNG, make_charts
from loanpipe.report.svg import STATE, nice_span

SVG = "{http://www.w3.org/2000/svg}"
HOSTILE = "<script>alert(\"x\")</script> & 'q'"
NOW = 1_800_000_100.0


def model(version: str, name: str, values: tuple[float, ...], cm: list[list[int]]) -> dict:
    keys = ("Accuracy", "Precision", "Recall", "F1 Score")
    return {
        "version": version,
        "name": name,
        **dict(zip(keys, values, strict=True)),
        "confusion_matrix": cm,
    }


def node(name: str, start: float, end: float | None, used: float | None, **extra: Any) -> dict:
    attempt = {
        "submitted": start - 1.0,
        "started": start,
        "segments": [[start, end]],
        "exit_code": extra.pop("exit_code", 0),
        "signal": None,
        "state": extra.pop("state", "done"),
    }
    return {
        "name": name,
        "attempt_list": [attempt],
        "memory_used_mib": used,
        "memory_request_mib": 128.0,
        "memory_flags": extra.pop("flags", []),
    }


def facts(model_name: str = "Decision Tree", node_name: str = "modeling_v2") -> dict[str, Any]:
    t = 1_800_000_000.0
    return {
        "results": {
            "models": [
                model(
                    "v1",
                    "Logistic Regression",
                    (0.8944, 0.7752, 0.7428, 0.7586),
                    [[6560, 430], [519, 1491]],
                ),
                model(
                    "v2", model_name, (0.8972, 0.7650, 0.7791, 0.7720), [[6509, 481], [444, 1566]]
                ),
            ],
            "deployment": {"candidate": "v1"},
        },
        "run": {
            "nodes": [
                node("data_processing", t, t + 2.0, 91.1),
                node(node_name, t + 3.0, t + 9.5, 171.3, exit_code=1),
                node(
                    "deploy_best_model",
                    t + 10.0,
                    t + 11.0,
                    140.0,
                    flags=["uses 109% of its request"],
                ),
                {
                    "name": "never_ran",
                    "attempt_list": [],
                    "memory_used_mib": None,
                    "memory_request_mib": None,
                    "memory_flags": [],
                },
            ]
        },
        "search": {
            "leaderboard": [
                {
                    "candidate": "hgb-09",
                    "family": "hist_gradient_boosting",
                    "mean": 0.8378,
                    "std": 0.004,
                },
                {
                    "candidate": "lr-01",
                    "family": "logistic_regression",
                    "mean": 0.7512,
                    "std": 0.01,
                },
                {"candidate": "dt-03", "family": "decision_tree", "mean": 0.7321, "std": 0.02},
            ],
            "winner": "hgb-09",
            "scoring": "f1",
            "folds": 5,
        },
    }


def parse(text: str) -> ET.Element:
    root = ET.fromstring(text)
    assert root.tag == SVG + "svg"
    return root


def marks(root: ET.Element, kind: str = "mark") -> list[ET.Element]:
    return [r for r in root.iter(SVG + "rect") if kind in r.get("class", "").split()]


def texts(root: ET.Element) -> list[str]:
    return ["".join(t.itertext()) for t in root.iter(SVG + "text")]


@pytest.fixture(scope="module")
def charts() -> dict[str, str]:
    return make_charts(facts(), now=NOW)


def test_every_chart_is_a_standalone_svg_document(charts) -> None:
    assert sorted(charts) == sorted(CHARTS)
    assert leaderboard.CHART == "search_leaderboard.svg"
    for name, text in charts.items():
        root = parse(text)
        width, height = root.get("width"), root.get("height")
        assert float(width) >= 200 and float(height) >= 150, name
        assert root.get("viewBox") == f"0 0 {width} {height}"
        assert root.get("data-chart") == name
        title = root.find(SVG + "title")
        assert title is not None and title.text and title.text in texts(root), name


def test_metrics_by_model_one_bar_per_model_and_metric_with_its_value(charts) -> None:
    root = parse(charts["metrics_by_model.svg"])
    assert len(marks(root)) == 2 * 4
    labels = texts(root)
    for value in ("0.894", "0.775", "0.743", "0.759", "0.897", "0.765", "0.779", "0.772"):
        assert value in labels
    assert "v1 Logistic Regression (deployed)" in labels and "v2 Decision Tree" in labels
    assert {"Accuracy", "Precision", "Recall", "F1 Score", "score on the test split"} <= set(labels)
    heights = [float(r.get("height")) for r in marks(root)]
    assert heights[0] < heights[1]  # Accuracy 0.8944 (v1) below 0.8972 (v2)


def test_confusion_matrices_four_cells_per_model_with_the_counts(charts) -> None:
    root = parse(charts["confusion_matrices.svg"])
    cells = marks(root, "cell")
    assert len(cells) == 2 * 4
    labels = texts(root)
    for count in ("6560", "430", "519", "1491", "6509", "481", "444", "1566"):
        assert count in labels
    assert {"pred 0", "pred 1", "true 0", "true 1"} <= set(labels)
    fills = {"".join(c.itertext()).split(": ")[-1]: c.get("fill") for c in cells}
    assert fills["6560"] != fills["430"]  # shaded by the count


def test_timeline_and_memory_one_row_per_node_that_ran(charts) -> None:
    timeline = parse(charts["timeline.svg"])
    kinds = [r.get("class") for r in marks(timeline)]
    assert kinds == ["mark ok", "mark failed", "mark ok"]
    assert len(marks(timeline, "queued")) == 3
    assert "never_ran" not in texts(timeline)
    assert {"queued", "ran ok", "failed", "held"} <= set(texts(timeline))
    memory = parse(charts["memory.svg"])
    used = marks(memory)
    assert len(used) == 3 and {"91.1", "171.3", "140"} <= set(texts(memory))
    assert used[2].get("fill") != used[0].get("fill")  # the flagged node stands out
    assert "MiB (orange tick: 80% of the request)" in texts(memory)


def test_search_leaderboard_one_bar_per_candidate_winner_bold(charts) -> None:
    root = parse(charts["search_leaderboard.svg"])
    bars = marks(root)
    assert len(bars) == 3
    widths = [float(b.get("width")) for b in bars]
    assert widths == sorted(widths, reverse=True)  # ranked: hgb-09's mean is the highest
    labels = texts(root)
    assert {"0.838", "0.751", "0.732"} <= set(labels)
    bold = [t.text for t in root.iter(SVG + "text") if t.get("font-weight") == "bold"]
    assert "hgb-09" in bold and "lr-01" not in bold
    assert set(leaderboard.FAMILY_COLOURS) <= set(labels)
    assert "mean CV f1 over 5 folds (bar: +/- std)" in labels


def test_names_from_files_are_escaped() -> None:
    charts = make_charts(facts(model_name=HOSTILE, node_name=HOSTILE), now=NOW)
    for name, text in charts.items():
        root = parse(text)  # an unescaped name would not parse
        assert root.find(f".//{SVG}script") is None and root.find(".//script") is None, name
        assert "<script>" not in text
    assert f"v2 {HOSTILE}" in texts(parse(charts["metrics_by_model.svg"]))
    assert f"v2 {HOSTILE}" in texts(parse(charts["confusion_matrices.svg"]))
    assert HOSTILE in texts(parse(charts["timeline.svg"]))
    assert HOSTILE in texts(parse(charts["memory.svg"]))


def test_the_same_facts_give_the_same_bytes(charts) -> None:
    again = make_charts(copy.deepcopy(facts()), now=NOW)
    assert again == charts
    assert make_charts(facts(), now=NOW + 60) == charts  # no bar left open: the clock unused


def test_a_running_node_ends_at_now() -> None:
    running = facts()
    running["run"]["nodes"][0]["attempt_list"][0]["segments"] = [[1_800_000_000.0, None]]
    first = make_charts(running, now=NOW)
    assert make_charts(copy.deepcopy(running), now=NOW) == first
    later = make_charts(running, now=NOW + 100)
    assert later["timeline.svg"] != first["timeline.svg"]  # the bar (and axis) grow with now


def test_charts_are_left_out_without_facts() -> None:
    bare = facts()
    bare["results"]["models"], bare["search"] = [], None
    bare["run"]["nodes"] = bare["run"]["nodes"][-1:]
    assert make_charts(bare, now=NOW) == {}
    assert tuple(name.replace(".svg", ".png") for name in CHARTS) == OLD_PNG


@pytest.mark.parametrize(
    ("low", "high", "expected"),
    [
        (0.0, 12.6, (0.0, 15.0, 2.5)),
        (0.0, 403.0, (0.0, 500.0, 100.0)),
        (0.71, 0.86, (0.7, 0.875, 0.025)),
    ],
)
def test_axis_ticks_are_round(low: float, high: float, expected: tuple[float, ...]) -> None:
    assert nice_span(low, high) == pytest.approx(expected)


def test_a_running_attempt_is_drawn_as_the_page_draws_it() -> None:
    """timeline.svg and the page's Gantt colour an attempt by one rule: still running is ok."""
    running = facts()
    attempt = running["run"]["nodes"][1]["attempt_list"][0]
    attempt.update(segments=[[1_800_000_003.0, None]], exit_code=None, state="running", ended=None)
    kinds = [r.get("class") for r in marks(parse(make_charts(running, now=NOW)["timeline.svg"]))]
    assert kinds == ["mark ok", "mark ok", "mark ok"]
    page_bars = attempt_bars(running["run"]["nodes"][1], 0, attempt, 0, 170, 1.8e9, 1.0, NOW)
    assert 'class="bar ok"' in page_bars[-1] and STATE["ok"] in page_bars[-1]
