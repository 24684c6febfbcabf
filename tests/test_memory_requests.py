"""Tests for loanpipe.sizing and its use by make paths: requests that follow the input."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parent.parent
os.environ.setdefault("CONDOR_CONFIG", "/dev/null")

from loanpipe import sizing  # noqa: E402  (imported once CONDOR_CONFIG is set)
from loanpipe.dagman import parse_dag, render  # noqa: E402  (imported once CONDOR_CONFIG is set)
from loanpipe.dagman.submit import node_job_ad  # noqa: E402  (imported once CONDOR_CONFIG is set)

MIB = 2**20
# Peak RSS (MiB) measured with loanpipe.bench per stage at 3.4, 76.5 and 765.2 MiB of input
# (45,000 real rows; 1M and 10M resampled), the points the model was fitted to.
MEASURED = {
    3.44: {"data_processing": 122, "train_test_split": 130, "modeling": 234,
           "evaluate_model": 217, "deploy_best_model": 19, "loan_prediction": 201,
           "model_search": 249, "select_model": 246},
    76.5: {"data_processing": 404, "train_test_split": 409, "modeling": 569,
           "evaluate_model": 337, "deploy_best_model": 20, "loan_prediction": 319,
           "model_search": 804, "select_model": 745},
    765.2: {"data_processing": 1800, "train_test_split": 2216, "modeling": 3654,
            "evaluate_model": 1319, "deploy_best_model": 20, "loan_prediction": 1198,
            "model_search": 5955, "select_model": 5359},
}  # fmt: skip


SEARCH = ("model_search", "select_model")


@pytest.mark.parametrize("size", sorted(MEASURED))
@pytest.mark.parametrize("dag", ["dagfile", "tune"])
def test_model_covers_every_measured_peak_with_headroom(size: float, dag: str) -> None:
    stages = sizing.DEFAULT_STAGES + (SEARCH if dag == "tune" else ())
    measured = {stage: MEASURED[size][stage] for stage in stages}
    predicted = sizing.stage_peaks_mib(size, stages)
    request = sizing.memory_mb(size, stages)
    for stage, peak in measured.items():
        assert predicted[stage] >= peak, stage
        assert request >= sizing.HEADROOM * peak, stage
    assert request % sizing.ROUND_MIB == 0
    # Not wastefully large either: within one rounding step of the largest peak plus headroom.
    largest = max(measured.values()) * sizing.HEADROOM
    assert request < largest * 1.05 + sizing.ROUND_MIB


def test_only_a_dag_with_the_model_search_asks_for_its_memory(tmp_path: Path) -> None:
    """At 1M rows a search job peaks above the default DAG's request (804 MiB against 768):
    tune.dag's nodes ask for more, dagfile.dag's do not."""
    base = tmp_path / "base"
    base.mkdir()
    with open(base / "loan_data.csv", "wb") as fh:
        fh.truncate(int(76.5 * MIB))
    requests = {}
    for name in ("dagfile", "tune"):
        argv = ["--base-dir", str(base), "--project-dir", str(PROJECT)]
        assert render.main([*argv, "--dag", str(PROJECT / "dag" / f"{name}.dag")]) == 0
        dag = parse_dag(base / "dags" / f"{name}.dag")
        rendered = (base / "dags" / f"{name}.dag").read_text()
        requests[name] = {
            node_job_ad(node, 0).eval("RequestMemory")
            for node in dag.nodes.values()
            if node.name != "model_search"  # one job per candidate: its submit file is shared
            and not node.final  # the report: VARS ALL_NODES skips it, see below
        } | {int(rendered.split('VARS ALL_NODES MEMORY_MB="')[1].split('"')[0])}
    assert requests["dagfile"] == {sizing.memory_mb(76.5)}
    assert requests["tune"] == {sizing.memory_mb(76.5, sizing.DEFAULT_STAGES + SEARCH)}
    assert max(requests["tune"]) >= sizing.HEADROOM * MEASURED[76.5]["model_search"]
    assert max(requests["tune"]) > max(requests["dagfile"])


def test_requests_grow_with_the_input() -> None:
    sizes = [0.0, 3.4, 10, 76.5, 200, 765.2, 2000]
    requests = [sizing.memory_mb(s) for s in sizes]
    assert requests == sorted(requests) and requests[0] < requests[-1]
    assert sizing.memory_mb(3.44) == 384


def render_for(tmp_path: Path, input_bytes: int | None) -> Path:
    """The project's DAG rendered for a base directory holding an input of that size."""
    base = tmp_path / "base"
    base.mkdir()
    if input_bytes is not None:
        with open(base / "loan_data.csv", "wb") as fh:
            fh.truncate(input_bytes)  # sparse: only the size matters
    code = render.main(["--base-dir", str(base), "--project-dir", str(PROJECT)])
    assert code == 0
    return base / "dags" / "dagfile.dag"


@pytest.mark.parametrize("input_mib", [None, 3.4, 76.5, 765.2])
def test_every_node_asks_for_the_rendered_request(tmp_path: Path, input_mib: float | None) -> None:
    dag_file = render_for(tmp_path, None if input_mib is None else int(input_mib * MIB))
    expected = sizing.memory_mb(input_mib or 0.0)
    assert f'VARS ALL_NODES MEMORY_MB="{expected}"' in dag_file.read_text()
    dag = parse_dag(dag_file)
    assert len(dag.nodes) == 9
    for node in dag.nodes.values():
        if node.final:  # VARS ALL_NODES skips the FINAL node: common.sub's default, no retries
            assert node_job_ad(node, 0).eval("RequestMemory") == 384 and node.retry == 0
            continue
        requests = [node_job_ad(node, retry).eval("RequestMemory") for retry in range(3)]
        # Equal along the chain (claim reuse); retries grow 2x, then 4x.
        assert requests == [expected, 2 * expected, 4 * expected], node.name


def test_submit_files_fall_back_without_the_vars(tmp_path: Path) -> None:
    # every job of a DAG, the model search's too, asks for the rendered request; without it 384
    from loanpipe.dagman.dag import Node
    from loanpipe.dagman.submit import node_job_ads, read_submit

    stages = [p for p in sorted((PROJECT / "submit").glob("*.sub")) if p.name != "common.sub"]
    assert len(stages) == 11  # the stages', preflight.sub and claims.sub (the nodes' requests)
    for path in stages:
        if path.name == "preflight.sub":  # not a DAG node: a fixed, tiny request
            continue
        assert "memory_mb" not in read_submit(path), path.name  # it would win over VARS
        node = Node(
            name="n",
            submit=path.name,
            vars={"BASE_DIR": str(tmp_path), "PROJECT_DIR": str(PROJECT), "PYTHON": "/py"},
            submit_path=path,
            node_dir=tmp_path,
        )
        if path.name == "claims.sub":  # not a DAG node, never retried: the first attempt's
            assert [ad.eval("RequestMemory") for ad in node_job_ads(node, 0)] == [384, 384]
            continue
        for retry, mib in enumerate((384, 768, 1536)):
            for ad in node_job_ads(node, retry):
                assert ad.eval("RequestMemory") == mib, (path.name, retry)
