"""loanpipe.dagman.submit and loanpipe.dagman.events without a pool (CONDOR_CONFIG=/dev/null).

The expectations of the queue-from rows are what condor_submit -dry-run 25.0.13 printed for the
same table (a comment line is a job; a blank line repeats the previous row's values); the full
comparison of every node against condor_submit is tests/test_submit_dry_run.py.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import DAGMAN_FIXTURE, needs_fixture

os.environ.setdefault("CONDOR_CONFIG", os.devnull)

from loanpipe.dagman import (  # noqa: E402
    Node,  # noqa: E402
    events,
    submit,
)


def node_for(tmp_path: Path, text: str, **vars: str) -> Node:
    (tmp_path / "n.sub").write_text(text)
    return Node(
        name="n", submit="n.sub", vars=vars, submit_path=tmp_path / "n.sub", node_dir=tmp_path
    )


def test_queue_from_rows_follow_htcondor(tmp_path: Path) -> None:
    (tmp_path / "tbl.txt").write_text(
        "a1 fam x=1 y=2\n# comment, here x\n\nb2,fam2,z=3\n  c3\tfam3   q=1  \nd4\n"
    )
    node = node_for(
        tmp_path,
        "executable = /bin/echo\narguments = $(A) $(B) $(C)\noutput = o.$(A).$(Process)\n"
        "queue A, B, C from tbl.txt\n",
    )
    ads = submit.node_job_ads(node, 0)
    assert [ad["Args"] for ad in ads] == [
        "a1 fam x=1 y=2",
        "# comment here x",
        "# comment here x",  # the blank line: no variable set, the previous row's values
        "b2 fam2 z=3",
        "c3 fam3 q=1",
        "d4",
    ]
    assert [ad["Out"] for ad in ads] == ["o.a1.0", "o.#.1", "o.#.2", "o.b2.3", "o.c3.4", "o.d4.5"]
    assert [ad["ProcId"] for ad in ads] == list(range(6))


def test_requests_units_and_dagman_macros(tmp_path: Path) -> None:
    node = node_for(
        tmp_path,
        "executable = run\ninitialdir = w\nlog = n.log\n"
        "MR = $(M) * (1 + $(RETRY))\nrequest_memory = $INT(MR)MB\nrequest_disk = 2GB\n"
        "request_cpus = 2\narguments = \"$(JOB) 'a b'\"\nqueue 2\n",
        M="768",
    )
    ads = submit.node_job_ads(node, 1)
    assert len(ads) == 2
    ad = ads[0]
    assert ad["Cmd"] == str(tmp_path / "w" / "run") and ad["Iwd"] == str(tmp_path / "w")
    assert ad["UserLog"] == str(tmp_path / "w" / "n.log")
    assert ad["Arguments"] == "n 'a b'" and "Args" not in ad
    assert ad.eval("RequestDisk") == 2 * 1024 * 1024 and ad["RequestCpus"] == 2
    assert ad.eval("RequestMemory") == 1536  # RETRY 1, DAGMan's macro
    assert submit.size_in("1536MB", 20) == 1536 and submit.size_in("128MB", 10) == 131072
    assert submit.size_in("1000", 20) == 1000 and submit.size_in("MEMORY * 2", 20) is None


def test_a_missing_include_is_one_line_naming_it(tmp_path: Path) -> None:
    node = node_for(tmp_path, "include : $Fp(SUBMIT_FILE)gone.sub\nqueue\n")
    with pytest.raises(submit.SubmitError) as err:
        submit.node_job_ads(node, 0)
    message = str(err.value)
    assert "\n" not in message and str(tmp_path / "n.sub") in message
    assert f"include file {tmp_path / 'gone.sub'} does not exist" in message


def test_read_submit_follows_includes_and_expand_value(tmp_path: Path) -> None:
    (tmp_path / "common.sub").write_text("request_memory = $INT(MEM)MB\n+Extra = 1\n")
    path = tmp_path / "n.sub"
    path.write_text("MEM = 2 * 384\ninclude : $Fp(SUBMIT_FILE)common.sub\nqueue\n")
    values = submit.read_submit(path)
    assert values["request_memory"] == "$INT(MEM)MB" and values["extra"] == "1"
    assert submit.expand_value(values["request_memory"], values) == "768MB"
    assert submit.read_submit(tmp_path / "missing.sub") == {}


@needs_fixture
def test_events_of_a_real_node_log() -> None:
    log = events.read_events(DAGMAN_FIXTURE / "dags" / "dagfile.dag.nodes.log")
    submits = [e for e in log if e["type"] == "SUBMIT"]
    assert len(submits) == 8 and events.dag_node(submits[0]) == "data_processing:0"
    done = [e for e in log if e["type"] == "JOB_TERMINATED"]
    assert len(done) == 8 and all(e["ReturnValue"] == 0 for e in done)
    assert isinstance(done[0]["time"], float) and done[0]["RequestMemory"] == 128


def test_an_unreadable_event_log_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "x.log"
    bad.write_text("not an event log\n")
    assert events.read_events(tmp_path / "none.log") == []
    try:
        got = events.read_events(bad)
    except events.EventLogError as exc:
        assert str(exc).startswith(f"cannot read event log {bad}: ") and "\n" not in str(exc)
    else:
        assert got == []  # the bindings read no event from it
    assert events.read_events(bad, partial=True) == []
