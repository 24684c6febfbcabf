"""Tests for loanpipe.dagman.dag, the DAG-file parser of the runner, check, graph and report."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from conftest import DAGMAN_FIXTURE, needs_fixture

from loanpipe.dagman import DagError, apply_rescue, parse_dag

REPO = Path(__file__).resolve().parent.parent


FIXTURE_DAG = DAGMAN_FIXTURE / "dags" / "dagfile.dag"


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def test_diamond_structure_and_order(tmp_path: Path) -> None:
    dag = parse_dag(
        write(
            tmp_path / "d.dag",
            """
            # a comment
            JOB A a.sub
            job B b.sub
            JOB C c.sub DIR sub NOOP
            JOB D d.sub DONE

            parent A child B C
            PARENT B C CHILD D
            """,
        )
    )
    assert list(dag.nodes) == ["A", "B", "C", "D"]
    assert dag.edges() == [("A", "B"), ("A", "C"), ("B", "D"), ("C", "D")]
    assert dag.topological_order() == ["A", "B", "C", "D"]
    assert dag.nodes["D"].parents == {"B", "C"}
    assert dag.nodes["C"].noop and dag.nodes["C"].dir == "sub"
    assert dag.nodes["C"].submit_path == tmp_path / "sub" / "c.sub"
    assert dag.nodes["D"].done and not dag.nodes["A"].done
    assert dag.nodes["A"].submit == "a.sub"
    assert dag.descendants("A") == {"B", "C", "D"}


def test_parent_may_name_nodes_defined_later(tmp_path: Path) -> None:
    # DAGMan parses JOB lines first (two passes); the real 23.10 DAG relies on it.
    dag = parse_dag(write(tmp_path / "f.dag", "PARENT A CHILD B\nJOB A a.sub\nJOB B b.sub\n"))
    assert dag.edges() == [("A", "B")]


@needs_fixture
def test_real_dagman_fixture_parses() -> None:
    dag = parse_dag(FIXTURE_DAG)
    assert len(dag.nodes) == 8
    assert ("train_test_split:0", "modeling_v1:0") in dag.edges()
    order = dag.topological_order()
    assert order[0] == "data_processing:0" and order[-1] == "loan_prediction:0"


def test_vars_quoting_and_escapes(tmp_path: Path) -> None:
    dag = parse_dag(
        write(
            tmp_path / "v.dag",
            r"""
            JOB A a.sub
            VARS A x = "two words"  q="say \"hi\"" b="back\\slash" empty="" +Attr="\"s\""
            """,
        )
    )
    assert dag.nodes["A"].vars == {
        "x": "two words",
        "q": 'say "hi"',
        "b": "back\\slash",
        "empty": "",
        "My.Attr": '"s"',
    }


@pytest.mark.parametrize(
    "line, fragment",
    [
        ("VARS A x=1", "must be double-quoted"),
        ('VARS A x="open', "missing end quote"),
        (r'VARS A x="bad \n escape"', "unknown escape"),
        ('VARS A queue_it="1"', "cannot begin with 'queue'"),
        ("VARS A", "VARS needs"),
    ],
)
def test_vars_errors_name_file_and_line(tmp_path: Path, line: str, fragment: str) -> None:
    path = write(tmp_path / "e.dag", f"JOB A a.sub\n{line}\n")
    with pytest.raises(DagError) as exc:
        parse_dag(path)
    assert str(exc.value).startswith(f"{path}:2: ")
    assert fragment in str(exc.value)


def test_all_nodes_last_definition_wins_in_file_order(tmp_path: Path) -> None:
    # The manual's ALL_NODES example: a later command overrides an earlier one.
    dag = parse_dag(
        write(
            tmp_path / "a.dag",
            """
            JOB A a.sub
            JOB B b.sub
            VARS A name="A"
            VARS ALL_NODES name="X"
            VARS B name="nodeB"
            RETRY all_nodes 3
            RETRY B 1 UNLESS-EXIT 2
            """,
        )
    )
    assert dag.nodes["A"].vars["name"] == "X"
    assert dag.nodes["B"].vars["name"] == "nodeB"
    assert (dag.nodes["A"].retry, dag.nodes["A"].unless_exit) == (3, None)
    assert (dag.nodes["B"].retry, dag.nodes["B"].unless_exit) == (1, 2)


@pytest.mark.parametrize("include_first", [True, False])
def test_include_with_all_nodes_before_or_after_the_jobs(
    tmp_path: Path, include_first: bool
) -> None:
    write(tmp_path / "paths.dag", 'VARS ALL_NODES BASE_DIR="/data/x" PYTHON="/venv/bin/python"\n')
    jobs = 'JOB A a.sub\nJOB B b.sub\nVARS A stage="a"\n'
    body = ("INCLUDE paths.dag\n" + jobs) if include_first else (jobs + "INCLUDE paths.dag\n")
    dag = parse_dag(write(tmp_path / "main.dag", body))
    for name in ("A", "B"):
        assert dag.nodes[name].vars["BASE_DIR"] == "/data/x"
        assert dag.nodes[name].vars["PYTHON"] == "/venv/bin/python"
    assert dag.nodes["A"].vars["stage"] == "a"
    assert dag.files == [tmp_path / "main.dag", tmp_path / "paths.dag"]


def test_all_nodes_does_not_reach_nodes_of_a_later_include(tmp_path: Path) -> None:
    # INCLUDE is parsed when pass 2 reaches it, so its nodes do not exist yet above it.
    write(tmp_path / "more.dag", "JOB C c.sub\n")
    dag = parse_dag(
        write(tmp_path / "m.dag", 'JOB A a.sub\nVARS ALL_NODES k="v"\nINCLUDE more.dag\n')
    )
    assert dag.nodes["A"].vars == {"k": "v"}
    assert dag.nodes["C"].vars == {}


def test_scripts_retry_abort_category_and_files(tmp_path: Path) -> None:
    dag = parse_dag(
        write(
            tmp_path / "s.dag",
            """
            JOB A a.sub
            SCRIPT PRE A pre.sh $JOB $RETRY
            SCRIPT DEFER 4 10 POST A post.sh $RETURN
            PRE_SKIP A 7
            ABORT-DAG-ON A 3 RETURN 1
            CATEGORY ALL_NODES heavy
            MAXJOBS heavy 2
            CONFIG dagman.config
            NODE_STATUS_FILE status.txt 30
            JOBSTATE_LOG jobstate.log
            DOT dag.dot UPDATE
            """,
        ),
        cwd=tmp_path / "run",
    )
    a = dag.nodes["A"]
    assert a.pre is not None and a.pre.kind == "PRE" and a.pre.executable == "pre.sh"
    assert a.pre.args == ["$JOB", "$RETRY"]
    assert a.post is not None and (a.post.defer_status, a.post.defer_time) == (4, 10)
    assert a.pre_skip == 7 and a.abort_dag_on == (3, 1) and a.category == "heavy"
    assert dag.maxjobs == {"heavy": 2}
    # Relative paths resolve against cwd, not against the DAG file's directory.
    assert dag.config == tmp_path / "run" / "dagman.config"
    assert dag.node_status_file == (tmp_path / "run" / "status.txt", 30)
    assert dag.jobstate_log == tmp_path / "run" / "jobstate.log"
    assert dag.dot == tmp_path / "run" / "dag.dot"
    assert a.submit_path == tmp_path / "run" / "a.sub"


def test_abort_without_return_and_unless_exit_zero_is_unset(tmp_path: Path) -> None:
    dag = parse_dag(
        write(tmp_path / "x.dag", "JOB A a.sub\nABORT-DAG-ON A 2\nRETRY A 2 UNLESS-EXIT 0\n")
    )
    assert dag.nodes["A"].abort_dag_on == (2, None)
    assert dag.nodes["A"].unless_exit is None  # DAGMan ignores UNLESS-EXIT 0


@pytest.mark.parametrize(
    "body, lineno, fragment",
    [
        ("JOB A a.sub\nJOB A b.sub\n", 2, "duplicate node 'A'"),
        ('JOB A a.sub\n# caf\xe9\nVARS A x="caf\xe9"\n', 3, "byte 0xe9 is not UTF-8"),
        ("JOB A+x a.sub\n", 1, "illegal character"),
        ("JOB PARENT a.sub\n", 1, "reserved word"),
        ("JOB A a.sub\nPARENT A CHILD B\n", 2, "unknown node 'B'"),
        ("JOB A a.sub\nRETRY B 2\n", 2, "unknown node 'B'"),
        ("JOB A a.sub\nRETRY A two\n", 2, "invalid RETRY count"),
        ("JOB A a.sub\nRETYR A 2\n", 2, "unknown command 'RETYR'"),
        ("JOB A a.sub\n\n# c\nSPLICE s s.dag\n", 4, "SPLICE is not supported"),
        ("FINAL F f.sub\nFINAL G g.sub\n", 2, "a second FINAL node 'G'"),
        ("JOB A a.sub\nFINAL F f.sub\nPARENT A CHILD F\n", 3, "cannot have parents"),
        ("FINAL F f.sub\nRETRY F 2\n", 2, "RETRY cannot name the FINAL node"),
        ("FINAL F f.sub\nABORT-DAG-ON F 1\n", 2, "ABORT-DAG-ON cannot name the FINAL node"),
        ("FINAL F f.sub\nCATEGORY F c\n", 2, "CATEGORY cannot name the FINAL node"),
        ("FINAL F f.sub\nDONE F\n", 2, "cannot be set to DONE"),
        ("FINAL F f.sub DONE\n", 1, "cannot be set to DONE"),
        ("JOB A a.sub\nSUBDAG EXTERNAL S s.dag\n", 2, "SUBDAG is not supported"),
        ("JOB A a.sub\nSERVICE S s.sub\n", 2, "SERVICE is not supported"),
        ("JOB A a.sub\nPROVISIONER P p.sub\n", 2, "PROVISIONER is not supported"),
        ("JOB A a.sub\nSET_JOB_ATTR x = 1\n", 2, "SET_JOB_ATTR is not supported"),
        ("JOB A a.sub\nTOLERANCE 1\n", 2, "TOLERANCE is not supported"),
        ("JOB A a.sub\nABORT-DAG-ON A 1 RETURN 300\n", 2, "between 0 and 255"),
        ("JOB A a.sub\nSCRIPT HOLD A h.sh\n", 2, "HOLD is not supported"),
        ("JOB A a.sub\nINCLUDE missing.dag\n", 2, "does not exist"),
    ],
)
def test_errors_are_file_and_line(tmp_path: Path, body: str, lineno: int, fragment: str) -> None:
    path = tmp_path / "bad.dag"
    path.write_bytes(body.encode("latin-1"))
    with pytest.raises(DagError) as exc:
        parse_dag(path)
    assert str(exc.value).startswith(f"{path}:{lineno}: "), str(exc.value)
    assert fragment in str(exc.value)


def test_lines_are_read_as_dagman_reads_them(tmp_path: Path) -> None:
    """condor_utils' getline: a comment never continues, a commented-out continuation line is
    blank, continued lines join with nothing in between; a Latin-1 byte in a comment is fine;
    ``.`` is a legal node-name character (only ``+`` is not)."""
    path = tmp_path / "g.dag"
    path.write_bytes(
        b"# caf\xe9, a comment ending in a backslash \\\n"
        b"RETRY A.1 1\n"
        b"JOB A.1 a.sub\r\n"
        b"JOB B b.sub\n"
        b"PARENT A.1 \\\n"
        b"  # commented out \\\n"
        b"CHILD B\n"
        b'VARS B x="1\\\n'
        b'2"\n'
    )
    dag = parse_dag(path)
    assert dag.nodes["A.1"].retry == 1  # not swallowed by the comment above it
    assert dag.nodes["A.1"].children == {"B"}
    assert dag.nodes["B"].vars == {"x": "12"}
    assert dag.nodes["B"].line == 4


def test_all_nodes_skips_the_final_node(tmp_path: Path) -> None:
    """ALL_NODES never reaches the FINAL node (Dag::FindAllNodesByName); naming it does."""
    dag = parse_dag(
        write(
            tmp_path / "f.dag",
            'JOB A a.sub\nfinal F f.sub NOOP\nRETRY ALL_NODES 2\nVARS ALL_NODES x="1"\n'
            "SCRIPT PRE ALL_NODES pre.sh\nPRE_SKIP ALL_NODES 3\nCATEGORY ALL_NODES c\n"
            'VARS F y="2"\nSCRIPT POST F post.sh $DAG_STATUS\n',
        )
    )
    a, f = dag.nodes["A"], dag.nodes["F"]
    assert dag.final_node is f and f.final and f.noop and not a.final
    assert (a.retry, a.vars, a.category, a.pre_skip) == (2, {"x": "1"}, "c", 3)
    assert (f.retry, f.vars, f.category, f.pre, f.pre_skip) == (0, {"y": "2"}, None, None, None)
    assert f.post is not None and f.post.args == ["$DAG_STATUS"]


def test_error_inside_include_names_the_included_file(tmp_path: Path) -> None:
    inc = write(tmp_path / "inc.dag", 'VARS ALL_NODES a="1"\nBOGUS x\n')
    with pytest.raises(DagError) as exc:
        parse_dag(write(tmp_path / "m.dag", "JOB A a.sub\nINCLUDE inc.dag\n"))
    assert str(exc.value).startswith(f"{inc}:2: ")


def test_cycle_is_named(tmp_path: Path) -> None:
    path = write(
        tmp_path / "c.dag",
        "JOB A a.sub\nJOB B b.sub\nJOB C c.sub\nPARENT A CHILD B\nPARENT B CHILD C\n"
        "PARENT C CHILD A\n",
    )
    with pytest.raises(DagError) as exc:
        parse_dag(path)
    msg = str(exc.value)
    assert msg.startswith(f"{path}:6: cycle")
    assert "A -> B -> C -> A" in msg


def test_apply_rescue_marks_done(tmp_path: Path) -> None:
    dag = parse_dag(write(tmp_path / "r.dag", "JOB A a.sub\nJOB B b.sub\nPARENT A CHILD B\n"))
    rescue = write(
        tmp_path / "r.dag.rescue001",
        """
        # Rescue DAG file, created after running
        #   the r.dag DAG file
        # Rescue DAG version: 2.0.1 (partial)
        #   B,<ENDLIST>

        DONE A
        RETRY B 2 UNLESS-EXIT 2
        """,
    )
    assert apply_rescue(dag, rescue) == ["A"]
    assert (dag.nodes["B"].retry, dag.nodes["B"].unless_exit) == (2, 2)
    write(rescue, "DONE Z\n")
    with pytest.raises(DagError, match=r"r\.dag\.rescue001:1: unknown node 'Z'"):
        apply_rescue(dag, rescue)
