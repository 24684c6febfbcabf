"""Shared fixtures: the repository's paths, stage runners and generated base directories."""

from __future__ import annotations

import importlib.util
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from types import ModuleType

import pytest

from loanpipe import pipeline

REPO = Path(__file__).resolve().parent.parent
SCRIPTS = REPO / "scripts"
# The real 45,000-row data set lives beside the checkout on the development machine; tests that
# need it are skipped elsewhere. LOAN_DATA_CSV points at another copy.
REAL_DATA = Path(os.environ.get("LOAN_DATA_CSV", REPO.parent / "shared" / "data" / "loan_data.csv"))
# The files of a real DAGMan run of the original pipeline (HTCondor 23.10), beside the checkout
# on the development machine; DAGMAN_FIXTURE points at another copy.
DAGMAN_FIXTURE = Path(
    os.environ.get("DAGMAN_FIXTURE", REPO.parent / "shared" / "fixtures" / "dagman-run-23.10")
)
needs_fixture = pytest.mark.skipif(
    not DAGMAN_FIXTURE.is_dir(), reason=f"DAGMan fixture not found at {DAGMAN_FIXTURE}"
)
SMALL_ROWS = 3000


# The local runner (make local), as the runner tests start it.
RUNNER = (sys.executable, "-m", "loanpipe.local")
SAFETY_TIMEOUT = 120  # a hung runner fails the test instead of hanging it; never asserted on


def load_script(name: str) -> ModuleType:
    """scripts/NAME.py imported as a module (a stage script does no work at import time)."""
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def overlay_venv(target: Path, packages_from: Path, src: Path, python: str | None = None) -> Path:
    """A venv at ``target`` that runs this project's package from ``src`` (a copy of the
    checkout's) with the third-party packages of the venv ``packages_from``: what ``make setup``
    would install there, in a fraction of a second. Two .pth lines, no pip: the copy's src/ first,
    then the other venv's site-packages (whose own editable install, a .pth there, is not read)."""
    python = python or getattr(sys, "_base_executable", sys.executable)
    subprocess.run([python, "-m", "venv", "--without-pip", str(target)], check=True)
    site = next(target.glob("lib/python3*/site-packages"))
    shared = next(packages_from.glob("lib/python3*/site-packages"))
    (site / "a_project_src.pth").write_text(f"{src}\n")
    (site / "b_pinned_packages.pth").write_text(f"{shared}\n")
    (target / ".installed").touch()  # make setup: nothing to do
    return target


def run_runner(dag: Path, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """python -m loanpipe.local --dag DAG ARGS, without a pool's configuration, captured."""
    return subprocess.run(
        [*RUNNER, "--dag", str(dag), *args],
        capture_output=True,
        text=True,
        env={**os.environ, "CONDOR_CONFIG": "/dev/null"},
        timeout=SAFETY_TIMEOUT,
        check=False,
        cwd=cwd,
    )


# The default DAG's nodes, in the order they run (loanpipe.pipeline, pinned by test_pipeline.py).
SEED_NODES = list(pipeline.DEFAULT_NODES)

# Stage invocations in DAG order (the arguments the submit files pass).
PIPELINE = [(s.script, *s.args) for s in pipeline.DEFAULT]


def run_stage(
    script: str, base: Path, *args: str, check: bool = True
) -> subprocess.CompletedProcess:
    """Run one stage script as a user would, from a shell, on base directory ``base``."""
    env = {k: v for k, v in os.environ.items() if k != "BASE_DIR"}
    result = subprocess.run(
        [sys.executable, str(SCRIPTS / script), "--base-dir", str(base), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"{script} {args} failed ({result.returncode}):\n{result.stderr}")
    return result


def run_pipeline(base: Path) -> None:
    for stage in PIPELINE:
        run_stage(stage[0], base, *stage[1:])


@pytest.fixture(scope="session")
def sample_csv(tmp_path_factory) -> Path:
    """A small generated loan_data.csv, made once per session."""
    folder = tmp_path_factory.mktemp("sample")
    run_stage("generate_data.py", folder, "--rows", str(SMALL_ROWS), "--seed", "7")
    return folder / "loan_data.csv"


@pytest.fixture
def base_dir(tmp_path, sample_csv) -> Path:
    """An empty base directory holding only a generated loan_data.csv."""
    base = tmp_path / "base"
    base.mkdir()
    shutil.copy(sample_csv, base / "loan_data.csv")
    return base


@pytest.fixture(scope="session")
def finished_base(tmp_path_factory, sample_csv) -> Path:
    """A base directory after one complete run of the eight stages (read-only use)."""
    base = tmp_path_factory.mktemp("finished")
    shutil.copy(sample_csv, base / "loan_data.csv")
    run_pipeline(base)
    return base


# ---- the real HTCondor pool (tests/pool_harness.py), shared by test_pool and test_tune_pool
#
# Started by the first test that asks for it (in whichever xdist worker), stopped once, by the
# controlling process after every worker has finished, and only if this test run started it:
# a worker that stopped the pool at its own end could pull it from under another worker.
POOL_MARK = "LOAN_POOL_STARTED_MARK"


def pytest_configure(config) -> None:
    # make local / make submit remember the last run (Makefile LAST_RUN): the tests' runs must
    # not become what a bare `make report` in this checkout follows afterwards.
    if "LAST_RUN" not in os.environ:
        os.environ["LAST_RUN"] = str(Path(tempfile.mkdtemp(prefix="loan-last-run-")) / "last-run")
    if not hasattr(config, "workerinput"):  # the controller (or a run without xdist)
        fd, path = tempfile.mkstemp(prefix="loan-pool-started-")
        os.close(fd)
        os.unlink(path)
        os.environ[POOL_MARK] = path  # inherited by the xdist workers


def pytest_sessionfinish(session) -> None:
    mark = os.environ.get(POOL_MARK)
    if hasattr(session.config, "workerinput") or not mark or not os.path.exists(mark):
        return
    import pool_harness as ph

    os.unlink(mark)
    mode, where = ph.locate()
    user = os.environ.get("POOL_USER", "condoruser")
    ph.stop_pool(ph.Pool(mode, where, user, Path(pwd.getpwnam(user).pw_dir), started=True))


@pytest.fixture(scope="session")
def pool():
    """The personal pool (started if needed; see pytest_sessionfinish for its end)."""
    import pool_harness as ph

    mode, where = ph.locate()
    if mode == "skip":
        pytest.skip(where)
    started = ph.start_pool(mode, where)
    if started.started and os.environ.get(POOL_MARK):
        Path(os.environ[POOL_MARK]).touch()
    return started


@pytest.fixture(scope="session")
def pool_session(pool) -> Path:
    """This session's folder for checkouts, owned by the pool's user, outside /tmp."""
    import pool_harness as ph

    path = ph.session_dir(pool)
    yield path
    if os.environ.get("POOL_KEEP") != "1":
        shutil.rmtree(path, ignore_errors=True)


# ---- headless Chromium (Debian's `chromium`), for report.html: skipped where it is missing

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="no headless Chromium (Debian: apt-get install chromium)"
)


def chromium(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", *args],
        capture_output=True,
        text=True,
        timeout=SAFETY_TIMEOUT,
        check=False,
        cwd=cwd,
        env={**os.environ, "HOME": str(cwd)},
    )


# Appended to a copy of the page: what Chromium made of it, in the DOM it dumps.
PROBE = """<script>
window.addEventListener("load", () => {
  const imgs = [...document.images];
  const bars = [...document.querySelectorAll("#gantt rect.bar")];
  const charts = [...document.querySelectorAll("svg[data-chart]")];
  document.body.dataset.probe = JSON.stringify({
    images: imgs.length,
    decoded: imgs.filter(i => i.complete && i.naturalWidth > 100).length,
    charts: charts.map(c => c.dataset.chart),
    charts_drawn: charts.filter(c => c.getBoundingClientRect().width > 100
      && c.querySelectorAll("rect.mark, rect.cell").length > 0).length,
    bars: bars.length,
    drawn: bars.filter(b => b.getBBox().width > 0).length,
    sections: [...document.querySelectorAll("section")].map(s => s.id),
  });
});
</script>"""


def chromium_probe(page: Path, work: Path) -> dict:
    """What Chromium rendered of ``page``: images and how many decoded, the inline SVG charts
    (their data-chart names) and how many were laid out with marks drawn, Gantt bars and how many
    were drawn, the sections in order (a probe script in a copy of the page, read back from
    the DOM Chromium dumps)."""
    import html
    import json

    probe = work / "probe.html"
    probe.write_text(page.read_text().replace("</body>", PROBE + "</body>"))
    dom = chromium("--virtual-time-budget=5000", "--dump-dom", probe.as_uri(), cwd=work)
    assert dom.returncode == 0, dom.stderr[-2000:]
    start = dom.stdout.index("data-probe=") + len("data-probe=") + 1
    quote = dom.stdout[start - 1]
    return json.loads(html.unescape(dom.stdout[start : dom.stdout.index(quote, start)]))


def chromium_screenshot(page: Path, work: Path) -> int:
    """Chromium's screenshot of ``page`` (the page itself, no probe): its number of colours."""
    from PIL import Image

    shot = work / "page.png"
    proc = chromium("--window-size=1200,2400", f"--screenshot={shot}", page.as_uri(), cwd=work)
    assert proc.returncode == 0 and shot.is_file(), proc.stderr[-2000:]
    with Image.open(shot) as image:
        colours = image.convert("RGB").getcolors(maxcolors=1 << 20)
    return len(colours or [])
