"""Tests of the HTCondor layer: submit files, the DAG, render_paths, check, graph, pool targets.

Every test works on a copy of dag/ and submit/ in tmp_path (the DAG refers to ../submit/, so
the copy keeps that layout), rendered for a base directory in tmp_path (BASE_DIR/dags/). The
make targets run with DAG_SRC pointing at the copy and with stub condor_* executables (they
record argv and cwd) on a PATH that holds nothing else.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import SEED_NODES

PROJECT = Path(__file__).resolve().parent.parent
os.environ.setdefault("CONDOR_CONFIG", "/dev/null")

from loanpipe import pipeline  # noqa: E402
from loanpipe.dagman import parse_dag, render  # noqa: E402  (imported once CONDOR_CONFIG is set)
from loanpipe.dagman.submit import node_job_ad  # noqa: E402  (imported once CONDOR_CONFIG is set)

PYTHON = str(PROJECT / ".venv" / "bin" / "python")
MAKE = shutil.which("make")

SEED_EDGES = pipeline.DEFAULT_EDGES
# node -> (submit file, stage script, model), from the one spec (tests/test_pipeline.py pins it)
NODES = {s.node: (s.submit, s.script, s.model) for s in pipeline.DEFAULT}
# Peak RSS measured at 45,000 rows (MiB), as quoted in the submit files.
MEASURED_PEAK_MIB = {
    "process.sub": 122,
    "split.sub": 130,
    "train.sub": 234,
    "evaluate.sub": 217,
    "deploy.sub": 19,
    "predict.sub": 201,
    "search.sub": 249,  # the model search (dag/tune.dag): one job per candidate
    "select.sub": 246,
    "report.sub": 39,  # the FINAL node: the report (SVG charts), the same at any input size
}


# --------------------------------------------------------------------------- fixtures


@pytest.fixture
def work(tmp_path: Path) -> dict[str, Path]:
    """A copy of dag/ and submit/ (src), rendered for tmp_path/nfs/loans into its dags/ (dag)."""
    src, submit_dir = tmp_path / "dag", tmp_path / "submit"
    src.mkdir()
    for name in ("dagfile.dag", "dagman.config"):
        shutil.copy(PROJECT / "dag" / name, src / name)
    shutil.copytree(PROJECT / "submit", submit_dir)
    base = tmp_path / "nfs" / "loans"
    args = ["--dag", str(src / "dagfile.dag"), "--base-dir", str(base)]
    assert render.main([*args, "--project-dir", str(PROJECT)]) == 0
    return {"root": tmp_path, "src": src, "dag": base / "dags", "submit": submit_dir, "base": base}


def node_ads(work: dict[str, Path]):
    """(node, retry, ad) for every node and attempt, expanded as DAGMan would."""
    dag = parse_dag(work["dag"] / "dagfile.dag")
    for node in dag.nodes.values():
        for retry in range(node.retry + 1):
            yield node, retry, node_job_ad(node, retry)


# --------------------------------------------------------------------------- submit files


@pytest.mark.parametrize("name", SEED_NODES)
def test_submit_file_expands_for_node(work: dict[str, Path], name: str) -> None:
    base = str(work["base"])
    sub, script, model = NODES[name]
    ads = [(r, ad) for node, r, ad in node_ads(work) if node.name == name]
    assert [r for r, _ in ads] == [0, 1, 2]
    memory = {}
    for retry, ad in ads:
        assert ad["Cmd"] == PYTHON
        expected_args = [f"{PROJECT}/scripts/{script}", "--base-dir", base]
        if model:
            expected_args += ["--model", model]
        if name == "deploy_best_model":  # the default DAG chooses among v1 and v2
            expected_args += ["--models", "v1", "v2"]
        assert ad["Args"].split() == expected_args
        assert ad["Iwd"] == base
        assert ad["Out"] == f"{base}/output/{name}.{retry}.out"
        assert ad["Err"] == f"{base}/error/{name}.{retry}.err"
        assert ad["UserLog"] == f"{base}/log/{name}.log"
        env = ad["Environment"].split()
        for item in ("PYTHONUNBUFFERED=1", "OMP_NUM_THREADS=1", "OPENBLAS_NUM_THREADS=1"):
            assert item in env
        assert ad["RequestCpus"] == 1
        assert ad["ShouldTransferFiles"] == "IF_NEEDED"
        assert ad["TransferExecutable"] is False
        assert ad.eval("RequestDisk") == 128 * 1024  # KiB
        memory[retry] = ad.eval("RequestMemory")
    # First attempt: measured peak plus headroom; each retry asks for 2x, then 4x.
    assert memory[0] >= 1.25 * MEASURED_PEAK_MIB[sub]
    assert memory[0] >= 128
    assert (memory[1], memory[2]) == (2 * memory[0], 4 * memory[0])


def test_submit_files_write_units_and_comment_measurements() -> None:
    common = (PROJECT / "submit" / "common.sub").read_text()
    assert "request_memory = $INT(MEMORY_REQUEST)MB" in common
    assert "request_disk   = 128MB" in common
    assert "# universe        = container" in common
    # included by the stages, never a job of its own
    assert not [ln for ln in common.splitlines() if ln.lstrip().lower().startswith("queue")]
    skip = ("preflight.sub", "common.sub", "claims.sub")  # claims.sub: no stage, see below
    claims = (PROJECT / "submit" / "claims.sub").read_text()
    assert claims.startswith("# claims.sub: ") and "# Exit codes: " in claims
    assert "\ninclude : $Fp(SUBMIT_FILE)common.sub\n" in claims  # the nodes' very requests
    stage_subs = [p for p in (PROJECT / "submit").glob("*.sub") if p.name not in skip]
    for path in sorted(stage_subs):
        text = path.read_text()
        assert "\r" not in text
        assert "\ninclude : $Fp(SUBMIT_FILE)common.sub\n" in text
        assert text.startswith(f"# {path.name}: ") and "# Exit codes: " in text
        code = [ln.split("=")[0].strip() for ln in text.splitlines() if "=" in ln[:30]]
        assert not {"executable", "environment", "request_memory", "request_disk"} & set(code)
        assert "peak RSS measured at" in text
        assert f"{MEASURED_PEAK_MIB[path.name]} MiB" in text
        assert "n_jobs" not in text
    assert {p.name for p in stage_subs} == set(MEASURED_PEAK_MIB)


def test_include_resolves_beside_the_submit_file_not_the_cwd(tmp_path: Path) -> None:
    """$Fp(SUBMIT_FILE): a copy of submit/ reads its own common.sub, from any directory."""
    copy = tmp_path / "copy"
    shutil.copytree(PROJECT / "submit", copy)
    common = copy / "common.sub"
    common.write_text(common.read_text().replace("128MB", "256MB"))
    (tmp_path / "base").mkdir()
    from loanpipe.dagman import Node

    node = Node(
        name="modeling_v1",
        submit="train.sub",
        vars={"BASE_DIR": str(tmp_path / "base"), "PROJECT_DIR": "/p", "PYTHON": "/py"},
        submit_path=copy / "train.sub",
        node_dir=tmp_path / "base",
    )
    ad = node_job_ad(node, 0)
    assert ad.eval("RequestDisk") == 256 * 1024
    assert ad["Cmd"] == "/py" and ad["Iwd"] == str(tmp_path / "base")
    common.unlink()
    with pytest.raises(ValueError, match="common.sub"):
        node_job_ad(node, 0)


def test_rendering_under_arbitrary_base_dir(work: dict[str, Path]) -> None:
    base = str(work["base"])
    rendered = (work["dag"] / "dagfile.dag").read_text().splitlines()
    # VARS ALL_NODES reaches only the nodes defined before it, and never the FINAL node: it
    # is the last line but one, then the FINAL node's own VARS with the DAG it reports.
    paths = f'BASE_DIR="{base}" PROJECT_DIR="{PROJECT}" PYTHON="{PYTHON}"'
    assert rendered[-2] == f"VARS ALL_NODES {paths}"
    assert rendered[-1] == f'VARS report {paths} DAG_FILE="{work["dag"] / "dagfile.dag"}"'
    for name in ("output", "error", "log", "dags"):
        assert (work["base"] / name).is_dir()
    count = 0
    for node, _retry, ad in node_ads(work):
        for key in ad:
            value = ad.get(key)
            if isinstance(value, str):
                assert "$(" not in value, (node.name, key, value)
        for key in ("Iwd", "Out", "Err", "UserLog"):
            assert ad[key].startswith(base + "/") or ad[key] == base
            assert str(PROJECT / "data") not in ad[key]
        assert str(PROJECT / "data") not in ad["Args"]
        count += 1
    assert count == 8 * 3 + 1  # the FINAL node has no RETRY


def test_python_override_and_default(tmp_path: Path) -> None:
    base = tmp_path / "b"
    out = base / "dags" / "dagfile.dag"  # the default output
    assert render.main(["--base-dir", str(base)]) == 0
    assert f'PYTHON="{PYTHON}"' in out.read_text()
    other = "/shared/venvs/loans/bin/python"
    assert render.main(["--base-dir", str(base), "--python", other]) == 0
    assert f'PYTHON="{other}"' in out.read_text()
    assert not list(out.parent.glob(".dagfile.dag.*"))  # no temporary file left behind


@pytest.mark.parametrize(
    "bad",
    [
        "relative/data",
        "/tmp/with space/loans",
        '/tmp/quo"te',
        "/tmp/it's",
        "/tmp/$(HOME)/loans",
        "/tmp/a#b",
        "/tmp/back\\slash",
        "/tmp/tab\there",
        "/tmp/semi;colon",
        "/tmp/ünïcode",
    ],
)
def test_bad_base_dirs_refused(tmp_path: Path, bad: str) -> None:
    out = tmp_path / "dag" / "dagfile.dag"
    proc = subprocess.run(
        [PYTHON, "-m", "loanpipe.dagman.render", "--base-dir", bad, "--output", str(out)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: BASE_DIR")
    assert "Traceback" not in proc.stderr
    assert not out.exists()


def test_bad_python_path_refused(tmp_path: Path) -> None:
    out = tmp_path / "dagfile.dag"
    code = render.main(
        ["--base-dir", str(tmp_path / "b"), "--python", "/opt/my venv/python", "--output", str(out)]
    )
    assert code == 2
    assert not out.exists()


def test_each_base_dir_renders_its_own_dag(work: dict[str, Path]) -> None:
    """A rescue DAG of one base directory does not stop another from being rendered and run."""
    (work["dag"] / "dagfile.dag.rescue001").write_text("DONE data_processing\n")
    other = work["root"] / "other"
    assert render.main(["--dag", str(work["src"] / "dagfile.dag"), "--base-dir", str(other)]) == 0
    mine, theirs = (
        (work["dag"] / "dagfile.dag").read_text(),
        (other / "dags/dagfile.dag").read_text(),
    )
    assert f'BASE_DIR="{work["base"]}"' in mine and f'BASE_DIR="{other}"' in theirs
    assert (work["dag"] / "dagfile.dag.rescue001").is_file()  # A's rescue waits for A
    assert not list((other / "dags").glob("*.rescue*"))


def test_rendering_makes_file_references_absolute_and_inlines_includes(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.sub").write_text("queue\n")
    (src / "post.sh").write_text("#!/bin/sh\n")
    (src / "more.dag").write_text("JOB B a.sub\n")
    (src / "main.dag").write_text(
        "# comment\nJOB  A   a.sub\nCONFIG dagman.config\nSCRIPT POST A post.sh $JOB\n"
        "INCLUDE more.dag\nPARENT A CHILD B\n"
    )
    base = tmp_path / "base"
    assert render.main(["--dag", str(src / "main.dag"), "--base-dir", str(base)]) == 0
    text = (base / "dags" / "main.dag").read_text()
    assert f"JOB  A   {src}/a.sub" in text
    assert f"CONFIG {src}/dagman.config" in text
    assert f"SCRIPT POST A {src}/post.sh $JOB" in text
    assert f"JOB B {src}/a.sub" in text and "INCLUDE" not in text.replace("# ---- INCLUDE", "")
    dag = parse_dag(base / "dags" / "main.dag")
    assert set(dag.nodes) == {"A", "B"} and dag.nodes["B"].vars["BASE_DIR"] == str(base)


def test_rendering_a_missing_dag_is_one_line(tmp_path: Path, capsys) -> None:
    code = render.main(["--dag", str(tmp_path / "nope.dag"), "--base-dir", str(tmp_path)])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nope.dag: no such DAG" in err[0]


# --------------------------------------------------------------------------- the DAG


def test_dag_graph_is_seeds(work: dict[str, Path]) -> None:
    dag = parse_dag(work["dag"] / "dagfile.dag")
    assert list(dag.nodes) == [*SEED_NODES, pipeline.FINAL_NODE]
    assert dag.final_node is dag.nodes[pipeline.FINAL_NODE]
    assert set(dag.edges()) == SEED_EDGES
    assert dag.topological_order()[0] == "data_processing"
    for name, node in dag.nodes.items():
        if node.final:
            assert (node.retry, node.submit) == (0, str(work["submit"] / "report.sub"))
            assert node.vars["DAG_FILE"] == str(work["dag"] / "dagfile.dag")
            continue
        sub, _script, model = NODES[name]
        assert node.submit == str(work["submit"] / sub)
        assert node.vars.get("MODEL") == model
        assert (node.retry, node.unless_exit) == (2, 65)
        assert set(node.vars) >= {"BASE_DIR", "PROJECT_DIR", "PYTHON"}
    assert dag.config is not None and dag.config.name == "dagman.config"
    assert dag.node_status_file is not None
    assert dag.node_status_file[0].name == "dagfile.dag.status"


def test_dag_layout_rules() -> None:
    lines = [ln.strip() for ln in (PROJECT / "dag" / "dagfile.dag").read_text().splitlines()]
    words = [ln.split()[0].upper() for ln in lines if ln and not ln.startswith("#")]
    # Nodes in the order they run, the edges last; no paths in the source (make paths adds them).
    first_edge = words.index("PARENT")
    assert max(i for i, w in enumerate(words) if w == "JOB") < first_edge
    assert all(w == "PARENT" for w in words[first_edge:])
    assert "INCLUDE" not in words
    assert not [ln for ln in lines if ln.upper().startswith("VARS ALL_NODES")]
    for newer in ("TOLERANCE", "WEAK", "SUBMIT-DESCRIPTION"):
        assert newer not in words
    config = (PROJECT / "dag" / "dagman.config").read_text()
    assert "DAGMAN_MAX_JOB_HOLDS = 1" in config
    assert "DAGMAN_USER_LOG_SCAN_INTERVAL = 1" in config


# --------------------------------------------------------------------------- check.py


def run_check(work: dict[str, Path]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [PYTHON, "-m", "loanpipe.check", "--dag", str(work["dag"] / "dagfile.dag")],
        capture_output=True,
        text=True,
        env=dict(os.environ, CONDOR_CONFIG="/dev/null"),
    )


def test_check_passes_on_the_project(work: dict[str, Path]) -> None:
    proc = run_check(work)
    assert proc.returncode == 0, proc.stderr
    assert "check: ok: 9 nodes, 7 submit files, 8 edges" in proc.stdout


def _append(path: Path, text: str) -> None:
    path.write_text(path.read_text() + text)


MUTATIONS = {
    "crlf": (
        lambda w: (w["submit"] / "deploy.sub").write_bytes(
            (w["submit"] / "deploy.sub").read_bytes().replace(b"\n", b"\r\n")
        ),
        "CRLF",
    ),
    "disk without unit": (
        lambda w: (w["submit"] / "common.sub").write_text(
            (w["submit"] / "common.sub").read_text().replace("128MB", "131072")
        ),
        "request_disk = 131072 has no unit",
    ),
    "extra edge": (
        lambda w: _append(
            w["dag"] / "dagfile.dag", "PARENT data_processing CHILD loan_prediction\n"
        ),
        "extra edge data_processing -> loan_prediction",
    ),
    "retries exit 65": (
        lambda w: (w["dag"] / "dagfile.dag").write_text(
            (w["dag"] / "dagfile.dag").read_text().replace(" UNLESS-EXIT 65", " UNLESS-EXIT 2")
        ),
        "must not retry exit code 65",
    ),
    "n_jobs": (
        lambda w: _append(w["submit"] / "train.sub", "# model uses n_jobs=-1\n"),
        "n_jobs=-1",
    ),
    "wrong model": (
        lambda w: (w["dag"] / "dagfile.dag").write_text(
            (w["dag"] / "dagfile.dag")
            .read_text()
            .replace('modeling_v2        MODEL="v2"', 'modeling_v2        MODEL="v1"')
        ),
        'modeling_v2 needs VARS MODEL="v2"',
    ),
    "missing interpreter": (
        lambda w: (w["dag"] / "dagfile.dag").write_text(
            (w["dag"] / "dagfile.dag").read_text().replace(PYTHON, "/nonexistent/bin/python")
        ),
        "does not exist or is not executable",
    ),
    "no PRE_SKIP": (
        lambda w: (w["dag"] / "dagfile.dag").write_text(
            (w["dag"] / "dagfile.dag").read_text().replace("PRE_SKIP ALL_NODES 97", "")
        ),
        "node data_processing needs SCRIPT PRE fingerprint.py pre and a PRE_SKIP code",
    ),
    "no hold limit": (
        lambda w: (w["src"] / "dagman.config").write_text("DAGMAN_USER_LOG_SCAN_INTERVAL = 1\n"),
        "DAGMAN_MAX_JOB_HOLDS is not set",
    ),
}


@pytest.mark.parametrize("mutation", sorted(MUTATIONS))
def test_check_catches(work: dict[str, Path], mutation: str) -> None:
    mutate, message = MUTATIONS[mutation]
    mutate(work)
    proc = run_check(work)
    assert proc.returncode == 1
    assert message in proc.stderr, proc.stderr


def test_check_reports_cycle(work: dict[str, Path]) -> None:
    _append(work["dag"] / "dagfile.dag", "PARENT loan_prediction CHILD data_processing\n")
    proc = run_check(work)
    assert proc.returncode == 1
    assert "cycle" in proc.stderr


# --------------------------------------------------------------------------- graph


def test_graph_png_from_the_dag_file(work: dict[str, Path]) -> None:
    out = work["dag"] / "dagfile.png"
    proc = subprocess.run(
        [PYTHON, "-m", "loanpipe.graph", "--dag", str(work["dag"] / "dagfile.dag")]
        + ["--output", str(out), "--engine", "matplotlib"],
        capture_output=True,
        text=True,
        env=dict(os.environ, MPLCONFIGDIR=str(work["root"] / "mpl")),
    )
    assert proc.returncode == 0, proc.stderr
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "9 nodes, 8 edges" in proc.stdout


# --------------------------------------------------------------------------- make targets

STUB = """#!{python}
import json, os, sys
with open(os.environ["STUB_LOG"], "a") as log:
    log.write(json.dumps({{"argv": [os.path.basename(sys.argv[0])] + sys.argv[1:],
                          "cwd": os.getcwd()}}) + "\\n")
if "-af:j" in sys.argv:
    sys.stdout.write(os.environ.get("STUB_AF", ""))
sys.exit(int(os.environ.get("STUB_RC", "0")))
"""


def make_stubs(directory: Path, names: tuple[str, ...]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name in names:
        path = directory / name
        path.write_text(STUB.format(python=sys.executable))
        path.chmod(0o755)
    return directory


def run_make(work: dict[str, Path], target: str, path_dir: Path, *extra: str, **env: str):
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("MAKE", "MFLAGS"))}
    environ.pop("BASE_DIR", None)
    environ.update(PATH=str(path_dir), STUB_LOG=str(work["root"] / "calls.jsonl"), **env)
    cmd = [MAKE, "-C", str(PROJECT), "--no-print-directory", target]
    cmd += [f"DAG_SRC={work['src'] / 'dagfile.dag'}", f"BASE_DIR={work['base']}", *extra]
    return subprocess.run(cmd, capture_output=True, text=True, env=environ)


def calls(work: dict[str, Path]) -> list[dict]:
    log = work["root"] / "calls.jsonl"
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines()]


ALL_TOOLS = ("condor_submit_dag", "condor_watch_q", "condor_q")


@pytest.fixture
def stubs(work: dict[str, Path]) -> Path:
    return make_stubs(work["root"] / "stubs", ALL_TOOLS)


@pytest.mark.skipif(MAKE is None, reason="make is not installed")
class TestMakeTargets:
    def test_submit_stops_when_check_fails(self, work: dict[str, Path], stubs: Path) -> None:
        _append(work["src"] / "dagfile.dag", "PARENT data_processing CHILD loan_prediction\n")
        proc = run_make(work, "submit", stubs)
        assert proc.returncode != 0
        assert calls(work) == []

    @pytest.mark.parametrize("target", ["submit", "status", "preflight"])
    def test_no_htcondor_one_liner(self, work: dict[str, Path], target: str) -> None:
        empty = work["root"] / "empty-path"
        empty.mkdir()
        (work["dag"] / "dagfile.dag").unlink()
        proc = run_make(work, target, empty)
        assert proc.returncode != 0
        ours = [ln for ln in proc.stderr.splitlines() if not ln.startswith("make")]
        assert len(ours) == 1, proc.stderr
        assert ours[0].startswith("error: condor_") and "make local" in ours[0]
        assert proc.stdout == ""
        assert not (work["dag"] / "dagfile.dag").exists()  # nothing rendered without a pool
