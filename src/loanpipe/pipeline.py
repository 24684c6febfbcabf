"""The pipeline's stage graph, defined once: every node of both DAGs, what it runs, what it needs.

``dag/dagfile.dag`` and ``dag/tune.dag`` are the DAGs DAGMan runs; this module is what the
project expects them to say. ``make check`` holds each rendered DAG against it, the memory
model (``sizing``) sizes its stages, the benchmark runs its stages one by one, the report and
the tests list its nodes, all from here.

Default DAG (dagfile.dag), eight nodes::

    data_processing -> train_test_split -> modeling_v1 -> evaluate_model_v1 -> deploy_best_model
                                        -> modeling_v2 -> evaluate_model_v2 ->  -> loan_prediction

The search DAG (tune.dag) adds model_search -> select_model -> evaluate_model_v3 between
train_test_split and deploy_best_model, which then chooses among v1, v2 and v3.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Stage:
    """One node: its name in the DAG, the submit file and stage script it runs, the model
    version it passes (``--model``), its parents, and its row in the memory model."""

    node: str
    submit: str
    script: str
    model: str | None = None
    parents: tuple[str, ...] = ()
    sizing: str = ""  # the memory model's stage (sizing.MODEL); several nodes may share one

    @property
    def args(self) -> tuple[str, ...]:
        """The stage script's arguments besides --base-dir."""
        return ("--model", self.model) if self.model else ()


def _stage(node: str, submit: str, script: str, parents: tuple[str, ...] = (), **kw) -> Stage:
    return Stage(node, submit, script, parents=parents, sizing=kw.pop("sizing", node), **kw)


# The default DAG, in the order its nodes run (parents before children).
DEFAULT: tuple[Stage, ...] = (
    _stage("data_processing", "process.sub", "process.py"),
    _stage("train_test_split", "split.sub", "split.py", ("data_processing",)),
    _stage(
        "modeling_v1", "train.sub", "train.py", ("train_test_split",), model="v1", sizing="modeling"
    ),
    _stage(
        "modeling_v2", "train.sub", "train.py", ("train_test_split",), model="v2", sizing="modeling"
    ),
    _stage(
        "evaluate_model_v1",
        "evaluate.sub",
        "evaluate.py",
        ("modeling_v1",),
        model="v1",
        sizing="evaluate_model",
    ),
    _stage(
        "evaluate_model_v2",
        "evaluate.sub",
        "evaluate.py",
        ("modeling_v2",),
        model="v2",
        sizing="evaluate_model",
    ),
    _stage(
        "deploy_best_model", "deploy.sub", "deploy.py", ("evaluate_model_v1", "evaluate_model_v2")
    ),
    _stage("loan_prediction", "predict.sub", "predict.py", ("deploy_best_model",)),
)

SEARCH_NODE = "model_search"
# What dag/tune.dag adds; deploy_best_model gains evaluate_model_v3 as a parent there.
SEARCH: tuple[Stage, ...] = (
    _stage(SEARCH_NODE, "search.sub", "search.py", ("train_test_split",)),
    _stage("select_model", "select.sub", "select_model.py", (SEARCH_NODE,)),
    _stage(
        "evaluate_model_v3",
        "evaluate.sub",
        "evaluate.py",
        ("select_model",),
        model="v3",
        sizing="evaluate_model",
    ),
)
SEARCH_DEPLOY_PARENT = "evaluate_model_v3"

# Both DAGs' FINAL node (dagfile.dag declares it, tune.dag INCLUDEs it; a DAG has at most one):
# DAGMan runs it after every other node ended, whatever happened (a failed node, ABORT-DAG-ON,
# condor_rm of the DAG), and it writes the report. It has no parents or children (DAGMan refuses
# any edge, RETRY or ABORT-DAG-ON on a FINAL node); its arguments carry $(DAG_STATUS) and
# $(FAILED_COUNT), and it exits non-zero when the DAG failed, because a FINAL node that
# succeeds makes DAGMan call the whole DAG successful (dag.cpp, Dag::DoneSuccess).
FINAL = _stage("report", "report.sub", "report.py")
FINAL_NODE = FINAL.node

# The model versions deploy_best_model chooses among (VARS MODELS), per DAG.
DEFAULT_MODELS = ("v1", "v2")
SEARCH_MODELS = ("v1", "v2", "v3")

DEFAULT_NODES: tuple[str, ...] = tuple(s.node for s in DEFAULT)
SEARCH_NODES: tuple[str, ...] = tuple(s.node for s in SEARCH)


def edges(stages: tuple[Stage, ...]) -> frozenset[tuple[str, str]]:
    """(parent, child) pairs of ``stages``."""
    return frozenset((p, s.node) for s in stages for p in s.parents)


DEFAULT_EDGES = edges(DEFAULT)
SEARCH_EDGES = edges(SEARCH) | {(SEARCH_DEPLOY_PARENT, "deploy_best_model")}


def stages(search: bool = False) -> tuple[Stage, ...]:
    """Every stage of the default DAG, or of the search DAG (the default's plus the search's)."""
    return DEFAULT + SEARCH if search else DEFAULT


def graph(search: bool = False) -> frozenset[tuple[str, str]]:
    """Every edge of the default DAG, or of the search DAG."""
    return DEFAULT_EDGES | SEARCH_EDGES if search else DEFAULT_EDGES


def by_node(search: bool = True) -> dict[str, Stage]:
    return {s.node: s for s in stages(search)}
