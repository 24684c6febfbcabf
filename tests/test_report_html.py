"""report.html, make runs and make compare, as a user meets them: runs through make on one base
directory (a run that fails at its first node, then a good one), the page opened in headless
Chromium (Debian's `chromium`; those tests are skipped, with the reason, where it is missing).
"""

from __future__ import annotations

import html.parser
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import REPO, SEED_NODES, chromium_probe, chromium_screenshot, needs_chromium

BAD_CSV = "a,b\n1,2\n3,4\n"


def make(target: str, base: Path, *assignments: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("BASE_DIR", "MAKEFLAGS", "MFLAGS")}
    return subprocess.run(
        ["make", "--no-print-directory", "-C", str(REPO), target, f"BASE_DIR={base}", *assignments],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )


@pytest.fixture(scope="module")
def runs(tmp_path_factory, sample_csv) -> dict:
    """One base directory: a run whose input is bad (data_processing fails, exit 65), its page
    kept; the input fixed; a good run. A snapshot of the base directory after the bad run is
    a second base directory for make compare."""
    base = tmp_path_factory.mktemp("history") / "base"
    base.mkdir()
    (base / "loan_data.csv").write_text(BAD_CSV)
    out: dict = {"base": base, "bad": make("local", base, "JOBS=2")}
    out["bad_page"] = (base / "report" / "report.html").read_text()  # the FINAL node's
    out["bad_facts"] = json.loads((base / "report" / "report.json").read_text())
    out["bad_snapshot"] = tmp_path_factory.mktemp("snapshot") / "base"
    shutil.copytree(base, out["bad_snapshot"])
    shutil.copy(sample_csv, base / "loan_data.csv")
    out["good"] = make("local", base, "JOBS=2")
    out["good_final_page"] = (base / "report" / "report.html").read_text()
    out["good_report"] = make("report", base)  # by hand too: the same run, its page again
    out["runs"] = make("runs", base)
    out["compare"] = make("compare", base)
    out["compare_dirs"] = make("compare", base, f"RUN_A={out['bad_snapshot']}", f"RUN_B={base}")
    return out


class Page(html.parser.HTMLParser):
    """What a browser would fetch for a page, its sections and its Gantt bars."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.fetches: list[str] = []
        self.ids: list[str] = []
        self.bars: list[dict[str, str]] = []
        self.images: list[str] = []
        self.charts: list[str] = []
        self.tags: set[str] = set()
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        self.tags.add(tag)
        self.ids += [a["id"]] if "id" in a else []
        for key in ("src", "href", "data", "poster"):
            if key in a:
                self.fetches.append(a[key])
        if tag == "img":
            self.images.append(a.get("data-chart", ""))
        if tag == "svg" and "data-chart" in a:
            self.charts.append(a["data-chart"])
        if tag == "rect" and "bar" in a.get("class", ""):
            self.bars.append(a)


def test_a_run_that_fails_at_its_first_node_has_a_page_naming_it(runs) -> None:
    """Written by the DAG's FINAL node: make local alone, no make report."""
    assert runs["bad"].returncode != 0
    assert "DAG FAILED (DagStatus 2)" in runs["bad"].stdout
    facts = runs["bad_facts"]
    assert facts["run"]["final"] is True and facts["outcome"]["source"] == "FINAL node"
    assert "python -m loanpipe.report --base-dir" in facts["provenance"]["report"]["command"]
    assert "--final --dag-status 2 --failed-count 1" in facts["provenance"]["report"]["command"]
    page = runs["bad_page"]
    assert 'data-dag-status="2"' in page
    outcome = page.split('<section id="outcome">', 1)[1].split("</section>", 1)[0]
    assert "The run failed: DAG status 2 (a node failed). Node data_processing failed" in outcome
    assert "(exit 65)" in outcome
    assert "target column &#x27;loan_status&#x27; not found" in outcome


def test_the_final_node_of_a_good_run_writes_the_page_and_succeeds(runs) -> None:
    assert runs["good"].returncode == 0, runs["good"].stdout + runs["good"].stderr
    assert 'data-dag-status="0"' in runs["good_final_page"]
    assert "The run succeeded" in runs["good_final_page"]
    assert "from the FINAL node" in runs["good_final_page"]
    assert runs["good_report"].returncode == 0, runs["good_report"].stderr
    assert "from the local runner metrics" in (runs["base"] / "report" / "report.html").read_text()


def test_the_page_is_self_contained(runs) -> None:
    page = Page((runs["base"] / "report" / "report.html").read_text())
    assert "script" not in page.tags and "link" not in page.tags and "iframe" not in page.tags
    assert page.fetches == [] and page.images == []  # the charts are inline SVG: no fetch
    assert sorted(page.charts) == ["confusion_matrices.svg", "memory.svg", "metrics_by_model.svg"]
    for section in ("outcome", "results", "decision", "timeline", "gantt", "nodes", "memory"):
        assert section in page.ids
    assert "provenance" in page.ids and "search" not in page.ids  # no search in this DAG
    # One bar per attempt: the good run resumed the bad one (its rescue DAG), so the page shows
    # both parts: data_processing's failed attempt and the FINAL node's (failing on purpose),
    # then every node's good one and the FINAL node's.
    classes = [b["class"] for b in page.bars]
    assert (classes.count("bar failed"), classes.count("bar ok")) == (2, len(SEED_NODES) + 1)


def test_the_markdown_report_stays(runs) -> None:
    text = (runs["base"] / "report" / "report.md").read_text()
    assert text.startswith("# Loan-approval pipeline report")
    facts = json.loads((runs["base"] / "report" / "report.json").read_text())
    assert facts["outcome"]["status"] == 0 and facts["outcome"]["failed_nodes"] == []
    assert facts["html_file"] == str(runs["base"] / "report" / "report.html")


@needs_chromium
def test_the_page_renders_in_chromium_with_its_charts(runs, tmp_path: Path) -> None:
    probed = chromium_probe(runs["base"] / "report" / "report.html", tmp_path)
    assert probed["images"] == 0 and probed["charts_drawn"] == 3, probed
    assert sorted(probed["charts"]) == [
        "confusion_matrices.svg",
        "memory.svg",
        "metrics_by_model.svg",
    ]
    assert probed["bars"] == probed["drawn"] == len(SEED_NODES) + 3, probed
    assert probed["sections"][:3] == ["outcome", "results", "timeline"], probed
    assert chromium_screenshot(runs["base"] / "report" / "report.html", tmp_path) > 50


def test_make_runs_lists_both_runs(runs) -> None:
    proc = runs["runs"]
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].split()[:3] == ["run", "started", "(UTC)"]
    bad, good = lines[2], lines[3]
    assert len(lines) == 4
    assert bad.startswith("dagfile-local-") and "dagfile.dag" in bad
    assert "a node failed: data_processing (exit 65)" in bad
    assert good.endswith(" ok") and "Logistic Regression" in good or "Decision Tree" in good
    inputs = [line.split()[3] for line in (bad, good)]
    assert inputs[0] != inputs[1] and all(len(h) == 12 for h in inputs)


def test_make_compare_shows_what_differs(runs) -> None:
    for key in ("compare", "compare_dirs"):
        proc = runs[key]
        assert proc.returncode == 0, proc.stderr
        rows = {line.split("  ")[0]: line for line in proc.stdout.splitlines()}
        assert "outcome" in rows and "a node failed" in rows["outcome"] and " ok" in rows["outcome"]
        assert "input sha256" in rows and "deployed" in rows
        assert "v1 Precision" in rows and "v1 param classifier_params.C" in rows
        assert "facts differ" in proc.stdout


def test_compare_names_an_unknown_run(runs) -> None:
    proc = make("compare", runs["base"], "RUN_A=no-such-run")
    assert proc.returncode != 0
    assert proc.stderr.splitlines()[0] == (
        f"history: no run of {runs['base']} named 'no-such-run' (make runs lists them)"
    )
    assert "Traceback" not in proc.stderr


def test_the_final_node_leaves_a_short_page_when_the_report_cannot_be_made(tmp_path: Path) -> None:
    """No run records at all (say the DAG directory was cleaned): the FINAL node still leaves a
    page with the outcome and why the full report is missing, and keeps the DAG failed."""
    from loanpipe.report import builder

    base = tmp_path / "base"
    base.mkdir()
    argv = ["--base-dir", str(base), "--final", "--dag-status", "2", "--failed-count", "1"]
    assert builder.main(argv) == 1
    page = (base / "report" / "report.html").read_text()
    assert 'data-dag-status="2"' in page and "failed nodes 1; from the FINAL node" in page
    assert "The full report could not be made: no run of dagfile.dag" in page
    # A good run whose report cannot be made: the short page stands in, the DAG's success too.
    (base / "report" / "report.html").unlink()
    assert builder.main([*argv[:3], "--dag-status", "0", "--failed-count", "0"]) == 0
    assert 'data-dag-status="0"' in (base / "report" / "report.html").read_text()
