"""The local runner against condor_dagman: each case runs one tiny DAG both ways and compares
exit codes, DagStatus and node counts, node outcomes, what the jobs and scripts ran (and with
which values) and the rescue DAGs (tests/dagman_diff.py). All cases are submitted to the pool
at once and run locally meanwhile, so the module costs about one DAGMan run.

``python tests/dagman_diff.py [CASE...]`` runs cases by hand and prints both summaries.
"""

from __future__ import annotations

import dataclasses
import os
import re

import dagman_diff as dd
import pool_harness as ph
import pytest

os.environ.setdefault("CONDOR_CONFIG", os.devnull)  # the bindings read the status file offline

MODE, WHERE = ph.locate()
pytestmark = [
    pytest.mark.xdist_group("dagman_parity"),
    pytest.mark.skipif(MODE == "skip", reason=WHERE),
]

# A FINAL node with PRE and POST scripts; the scripts and the job record DAGMan's values.
FINAL_F = """\
FINAL F node.sub
VARS F cmd="echo F job $(DAG_STATUS) $(FAILED_COUNT) >> trace{exit}"
SCRIPT PRE F /bin/sh trace.sh 0 F pre $DAG_STATUS $FAILED_COUNT
SCRIPT POST F /bin/sh trace.sh {post} F post $DAG_STATUS $FAILED_COUNT $RETURN
"""

CASES = [
    # A node fails: its child is futile, the others run, then FINAL sees DAG_STATUS 2 and one
    # failure; its success makes the DAG's exit code 0, while DagStatus and the rescue DAG
    # (written before FINAL ran, without FINAL) keep the failure.
    dd.Case(
        "final_after_failure",
        """\
        JOB A node.sub
        VARS A cmd="echo A $(DAG_STATUS) $(FAILED_COUNT) >> trace; exit 3"
        JOB B node.sub
        VARS B cmd="echo B >> trace"
        JOB C node.sub
        VARS C cmd="echo C >> trace"
        PARENT A CHILD B
        RETRY ALL_NODES 1
        """
        + FINAL_F.format(exit="", post=0),
    ),
    # Every node succeeds, FINAL fails (its POST turns the job's 0 into 4): the DAG fails.
    dd.Case(
        "final_fails",
        """\
        JOB A node.sub
        VARS A cmd="echo A >> trace"
        VARS ALL_NODES cmd="echo A all >> trace"
        """
        + FINAL_F.format(exit="", post=4),
    ),
    # ABORT-DAG-ON stops the DAG; FINAL still runs, with DAG_STATUS 3, and fails.
    dd.Case(
        "final_after_abort",
        """\
        JOB A node.sub
        VARS A cmd="echo A >> trace; exit 3"
        JOB B node.sub
        VARS B cmd="echo B >> trace"
        PARENT A CHILD B
        ABORT-DAG-ON A 3
        """
        + FINAL_F.format(exit="; exit 5", post="$RETURN"),
    ),
    # The same with a FINAL node that succeeds: exit code 0, DagStatus 3.
    dd.Case(
        "final_after_abort_ok",
        """\
        JOB A node.sub
        VARS A cmd="echo A >> trace; exit 3"
        ABORT-DAG-ON A 3
        """
        + FINAL_F.format(exit="", post=0),
    ),
    # ABORT-DAG-ON ... RETURN 0 and a FINAL node that succeeds.
    dd.Case(
        "final_after_abort_return_0",
        """\
        JOB A node.sub
        VARS A cmd="echo A >> trace; exit 3"
        JOB B node.sub
        VARS B cmd="echo B >> trace"
        PARENT A CHILD B
        ABORT-DAG-ON A 3 RETURN 0
        """
        + FINAL_F.format(exit="", post=0),
    ),
]
CASES += [
    # DAG file grammar: a comment ending in a backslash does not swallow the RETRY line below
    # it, a commented-out continuation line is blank, continued lines join with nothing in
    # between, a Latin-1 byte in a comment is fine, and '.' is legal in a node name.
    dd.Case(
        "grammar",
        "# caf\xe9: a Latin-1 byte in a comment that ends in a backslash \\\n"
        "RETRY A.1 1\n"
        "JOB A.1 node.sub\n"
        'VARS A.1 cmd="echo $(JOB) $(RETRY) >> trace; test $(RETRY) = 1"\n'
        "JOB B node.sub\n"
        'VARS B cmd="echo B >> trace"\n'
        "PARENT A.1 \\\n"
        "# a commented-out continuation line \\\n"
        "CHILD B\n"
        "JOB C node.sub\n"
        'VARS C cmd="echo C\\\n'
        ' >> trace"\n',
    ),
]
CASES += [
    # NOOP nodes run their PRE and POST scripts around a job that succeeds without running
    # ($RETURN 0); a failing POST script fails the node (RETRY applies; its child is futile).
    dd.Case(
        "noop_scripts",
        """\
        JOB N node.sub NOOP
        SCRIPT PRE N /bin/sh trace.sh 0 N pre $RETRY
        SCRIPT POST N /bin/sh trace.sh 3 N post $RETURN $RETRY $PRE_SCRIPT_RETURN
        RETRY N 1
        JOB M node.sub NOOP
        SCRIPT POST M /bin/sh trace.sh 0 M post $RETURN
        JOB C node.sub
        VARS C cmd="echo C >> trace"
        PARENT N CHILD C
        JOB D node.sub
        VARS D cmd="echo D >> trace"
        PARENT M CHILD D
        """,
    ),
    # ABORT-DAG-ON node 0 aborts when the node succeeds: exit code 0, DagStatus 3, no rescue DAG.
    dd.Case(
        "abort_on_zero",
        """\
        JOB A node.sub
        VARS A cmd="echo A >> trace"
        ABORT-DAG-ON A 0
        JOB B node.sub
        VARS B cmd="echo B >> trace"
        PARENT A CHILD B
        """,
    ),
    # ... and is checked after the PRE script too: the job never runs.
    dd.Case(
        "abort_on_zero_pre",
        """\
        JOB A node.sub
        VARS A cmd="echo A >> trace"
        SCRIPT PRE A /bin/sh trace.sh 0 A pre
        ABORT-DAG-ON A 0
        """,
    ),
]
CASES += [
    # Script arguments: only a whole word is a macro, in any case; x$JOB stays as written.
    dd.Case(
        "macro_words",
        """\
        JOB A node.sub
        VARS A cmd="echo A >> trace; exit 2"
        SCRIPT PRE A /bin/sh trace.sh 0 A pre x$JOB $job $Retry $max_retries $NODE_COUNT
        SCRIPT POST A /bin/sh trace.sh 0 A post $return $Exit_Codes $exit_code_counts $success
        """,
    ),
    # $RETURN in a PRE script: DAGMan stops the DAG (DagStatus 1) before running it. (With a
    # FINAL node, DAGMan 25.0.13 asserts "! _finalNodeRun" and the schedd restarts it, again
    # and again; the local runner runs the FINAL node.)
    dd.Case(
        "pre_return",
        """\
        JOB A node.sub
        VARS A cmd="echo A >> trace"
        SCRIPT PRE A /bin/sh trace.sh 0 A pre $RETURN
        JOB B node.sub
        VARS B cmd="echo B >> trace"
        """,
    ),
    # An unknown $MACRO in a POST script: the same, once the job has run.
    dd.Case(
        "unknown_macro",
        """\
        JOB A node.sub
        VARS A cmd="echo A >> trace"
        SCRIPT POST A /bin/sh trace.sh 0 A post $NOSUCH
        JOB B node.sub
        VARS B cmd="echo B >> trace"
        PARENT A CHILD B
        """,
    ),
]
# What DAGMan gives every job: $(DAG_PARENT_NAMES), VARS node +attr (a job attribute, also
# the macro My.attr), $$() replaced at match time; ClusterIds (in "clusters": each job
# appends its own) must be distinct per node.
VALUES_SUB = """\
executable = /bin/sh
arguments = "-c 'echo $(JOB) parents=$(DAG_PARENT_NAMES) weight=$(My.Weight) shade=$(shade) \
mem=$$([RequestMemory*2]) cpus=$$(Cpus) >> trace; echo $(Cluster).$(Process) >> clusters'"
request_memory = 64
log = nodes.log
queue
"""
CASES += [
    dd.Case(
        "job_values",
        """\
        JOB A values.sub
        JOB B values.sub
        VARS B +Weight="7" shade="dark"
        PARENT A CHILD B
        JOB C values.sub
        PARENT A B CHILD C
        """,
        files={"values.sub": VALUES_SUB},
    ),
]
# A job HTCondor holds before it runs (its output directory is missing) under
# DAGMAN_MAX_JOB_HOLDS = 1, as the project's DAGs say: removed at the hold, its POST script
# runs with $RETURN -1002 and decides the node (H succeeds); without one the node fails (I).
CASES += [
    dd.Case(
        "held_post",
        """\
        CONFIG holds.config
        JOB H held.sub
        SCRIPT POST H /bin/sh trace.sh 0 H post $RETURN $JOB_ABORT_COUNT
        JOB I held.sub
        JOB J node.sub
        VARS J cmd="echo J >> trace"
        PARENT I CHILD J
        """,
        files={
            "holds.config": "DAGMAN_MAX_JOB_HOLDS = 1\n",
            "held.sub": "executable = /bin/true\noutput = missing/$(JOB).out\nlog = nodes.log\n"
            "queue\n",
        },
    ),
]
# A job condor_submit refuses (its submit file names no executable): DAGMan gives up the node's
# retries and runs its POST script with $RETURN -1001 (S), or fails it (T). One submit
# attempt here; DAGMan's default, 6, only waits longer first.
CASES += [
    dd.Case(
        "submit_failure",
        """\
        CONFIG submits.config
        JOB S nosuch.sub
        SCRIPT POST S /bin/sh trace.sh 0 S post $RETURN $RETRY
        JOB T nosuch.sub
        SCRIPT PRE T /bin/sh trace.sh 0 T pre $RETRY
        RETRY T 2
        """,
        files={
            "submits.config": "DAGMAN_MAX_SUBMIT_ATTEMPTS = 1\n",
            "nosuch.sub": "arguments = x\nlog = nodes.log\nqueue\n",
        },
    ),
]
FINAL_CASES = [c.name for c in CASES if c.name.startswith("final")]


@pytest.fixture(scope="module")
def runs(pool, pool_session, tmp_path_factory) -> dict[str, tuple[dd.Summary, dd.Summary]]:
    return dd.run_cases(pool, pool_session, tmp_path_factory.mktemp("parity"), CASES)


def dagman_series(summary: dd.Summary, name: str) -> str:
    """'24.0', '25.0', ...: the series of the condor_dagman that ran a case (its .dagman.out)."""
    out = (summary.folder / f"{name}.dag.dagman.out").read_text(errors="replace")
    found = re.search(r"CondorVersion: (\d+\.\d+)\.", out)
    return found.group(1) if found else "unknown"


def older_dagman(name: str, series: str, dagman: dd.Summary) -> dd.Summary:
    """The local runner does what the current LTS (25.0) does. Where the previous one (24.0) is
    known to differ, assert that it does, and give back its facts as 25.0 would have them."""
    if name == "macro_words" and series == "24.0":
        # DAGMan 24.0 gives a POST script $SUCCESS True after the job exited 2; 25.0 False.
        post = [line for line in dagman.trace if line.startswith("A post ")]
        assert post and post[0].endswith(" True"), dagman.trace
        trace = [
            line.removesuffix(" True") + " False" if line in post else line for line in dagman.trace
        ]
        return dataclasses.replace(dagman, trace=trace)
    return dagman


@pytest.mark.parametrize("name", [c.name for c in CASES])
def test_local_runner_does_what_dagman_does(runs, name) -> None:
    dagman, local = runs[name]
    assert dagman.exit is not None, dd.explain(name, dagman, local)
    expected = older_dagman(name, dagman_series(dagman, name), dagman)
    assert local.facts() == expected.facts(), dd.explain(name, dagman, local)


@pytest.mark.parametrize("name", FINAL_CASES)
def test_final_node_runs_last_with_the_dag_status(runs, name) -> None:
    for summary in runs[name]:
        final = [i for i, line in enumerate(summary.order) if line.startswith("F ")]
        assert final and final[0] == len(summary.order) - len(final), summary.order
        assert summary.nodes["F"] in ("done", "failed")


def test_every_node_job_has_its_own_cluster_id(runs) -> None:
    for summary in runs["job_values"]:
        clusters = (summary.folder / "clusters").read_text().split()
        assert len(clusters) == 3 and len(set(clusters)) == 3, clusters
        assert all(c.endswith(".0") for c in clusters)
