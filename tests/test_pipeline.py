"""The one spec of the stage graph (loanpipe.pipeline) against the original system and the DAGs.

Everything else (make check, the memory model, the benchmark, the other tests) takes the graph
from the spec; this module pins the spec itself, literally, so that a change to it is deliberate,
and holds both static DAG files to it.
"""

from __future__ import annotations

import pytest

from loanpipe import config, pipeline
from loanpipe.dagman import parse_dag

ORIGINAL_NODES = [
    "data_processing",
    "train_test_split",
    "modeling_v1",
    "modeling_v2",
    "evaluate_model_v1",
    "evaluate_model_v2",
    "deploy_best_model",
    "loan_prediction",
]
ORIGINAL_EDGES = {
    ("data_processing", "train_test_split"),
    ("train_test_split", "modeling_v1"),
    ("train_test_split", "modeling_v2"),
    ("modeling_v1", "evaluate_model_v1"),
    ("modeling_v2", "evaluate_model_v2"),
    ("evaluate_model_v1", "deploy_best_model"),
    ("evaluate_model_v2", "deploy_best_model"),
    ("deploy_best_model", "loan_prediction"),
}


def test_the_default_graph_is_the_original_systems() -> None:
    assert list(pipeline.DEFAULT_NODES) == ORIGINAL_NODES
    assert pipeline.DEFAULT_EDGES == ORIGINAL_EDGES
    assert pipeline.graph(search=False) == ORIGINAL_EDGES


def test_the_search_adds_three_nodes_between_the_split_and_deploy() -> None:
    added = pipeline.graph(search=True) - ORIGINAL_EDGES
    assert added == {
        ("train_test_split", "model_search"),
        ("model_search", "select_model"),
        ("select_model", "evaluate_model_v3"),
        ("evaluate_model_v3", "deploy_best_model"),
    }
    assert pipeline.SEARCH_NODES == ("model_search", "select_model", "evaluate_model_v3")


@pytest.mark.parametrize("search", [False, True])
def test_stages_are_listed_parents_first(search: bool) -> None:
    seen: set[str] = set()
    for stage in pipeline.stages(search):
        assert set(stage.parents) <= seen, stage.node
        seen.add(stage.node)


def test_every_stage_names_a_submit_file_and_script_of_the_checkout() -> None:
    for stage in pipeline.stages(search=True):
        assert (config.SUBMIT_DIR / stage.submit).is_file(), stage.submit
        assert (config.SCRIPTS_DIR / stage.script).is_file(), stage.script
        assert stage.args == (("--model", stage.model) if stage.model else ())


@pytest.mark.parametrize("name, search", [("dagfile.dag", False), ("tune.dag", True)])
def test_the_static_dags_say_what_the_spec_says(name: str, search: bool) -> None:
    dag = parse_dag(config.DAG_DIR / name)
    assert set(dag.nodes) == {s.node for s in pipeline.stages(search)} | {pipeline.FINAL_NODE}
    assert dag.final_node is not None and dag.final_node.name == pipeline.FINAL_NODE
    assert dag.final_node.submit_path.name == pipeline.FINAL.submit  # one, from dagfile.dag
    assert set(dag.edges()) == pipeline.graph(search)
    for stage in pipeline.stages(search):
        node = dag.nodes[stage.node]
        assert node.submit_path.name == stage.submit, stage.node
        assert node.vars.get("MODEL") == stage.model, stage.node
    deploy = dag.nodes["deploy_best_model"].vars.get("MODELS", " ".join(pipeline.DEFAULT_MODELS))
    assert tuple(deploy.split()) == (pipeline.SEARCH_MODELS if search else pipeline.DEFAULT_MODELS)
