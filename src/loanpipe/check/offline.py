#!/usr/bin/env python3
"""make check: validate the DAG and its submit files offline, with the HTCondor Python bindings.

No pool is needed. The DAG rendered for a base directory (BASE_DIR/dags/dagfile.dag, written by
make paths) is parsed with loanpipe.dagman.dag, then:

- the graph is acyclic and is exactly the pipeline's eight nodes and edges and its FINAL node
  `report` (given the rendered DAG as DAG_FILE), plus, in a DAG with the model search
  (dag/tune.dag), the search's nodes and edges; there every row of the candidate table is
  validated against its estimator and must be one job of model_search
  (loanpipe.check.search_table);
- every node retries transient failures but not exit code 65 (RETRY n UNLESS-EXIT 65), the DAG
  has its CONFIG file (with DAGMAN_MAX_JOB_HOLDS and DAGMAN_USER_LOG_SCAN_INTERVAL) and a
  NODE_STATUS_FILE;
- every node's submit file is expanded (loanpipe.dagman.submit, on htcondor2.Submit) with the
  node's VARS plus JOB and RETRY (each attempt), exactly as DAGMan would submit it, and the
  job ClassAd is checked: the interpreter exists and is executable, the stage script exists
  and is readable (the interpreter runs it: no exec bit needed), the arguments are the stage's
  (--base-dir, --model), Iwd/Out/Err/UserLog are absolute and under BASE_DIR, no $( is left,
  one CPU, thread limits in the environment, integer memory and disk requests;
- no CRLF line ends in any DAG, config or submit file, every request_memory/request_disk
  names its unit, and n_jobs=-1 appears nowhere in the stages, submit or DAG files.

Prints one line per problem and exits 1 if there is any, else one summary line and exits 0.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from loanpipe import config, pipeline
from loanpipe.check import search_table
from loanpipe.dagman import Dag, DagError, Node, parse_dag
from loanpipe.dagman.submit import node_job_ads
from loanpipe.errors import EXIT_BAD_INPUT

PATH_VARS = ("BASE_DIR", "PROJECT_DIR", "PYTHON")
REQUIRED_ENV = ("PYTHONUNBUFFERED=1", "OMP_NUM_THREADS=1")
REQUIRED_CONFIG = ("DAGMAN_MAX_JOB_HOLDS", "DAGMAN_USER_LOG_SCAN_INTERVAL")
REQUEST_LINE = re.compile(r"^\s*(request_memory|request_disk)\s*=\s*(.*?)\s*$", re.IGNORECASE)
HAS_UNIT = re.compile(r"[0-9)]\s*[KMGT](i?B)?$", re.IGNORECASE)
N_JOBS_ALL = re.compile(r"n_jobs\s*=\s*-\s*1(?![0-9])")


class Problems:
    """Collects "where: what" lines."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def add(self, where: object, what: str) -> None:
        self.lines.append(f"{where}: {what}")


def check_graph(dag: Dag, out: Problems) -> None:
    """The nodes and edges are exactly the pipeline's (loanpipe.pipeline), with the search's in
    a search DAG (tune.dag)."""
    search = search_table.is_search_dag(dag)
    edges_wanted = pipeline.graph(search)
    nodes, expected = set(dag.nodes), set(pipeline.by_node(search)) | {pipeline.FINAL_NODE}
    final = dag.final_node
    if final is not None and final.name != pipeline.FINAL_NODE:
        out.add(f"{final.file}:{final.line}", f"the FINAL node must be {pipeline.FINAL_NODE}")
    elif final is None and pipeline.FINAL_NODE in dag.nodes:
        node = dag.nodes[pipeline.FINAL_NODE]
        out.add(f"{node.file}:{node.line}", f"{node.name} must be the DAG's FINAL node")
    if final is not None and final.vars.get("DAG_FILE") != str(dag.path):
        out.add(
            f"{final.file}:{final.line}",
            f"the FINAL node reports DAG_FILE={final.vars.get('DAG_FILE')!r}, not this DAG "
            "(make paths gives it VARS DAG_FILE)",
        )
    for name in sorted(expected - nodes):
        out.add(dag.path, f"node {name} is missing (the pipeline's graph has it)")
    for name in sorted(nodes - expected):
        out.add(dag.path, f"node {name} is not in the pipeline's graph")
    edges = set(dag.edges())
    for parent, child in sorted(edges_wanted - edges):
        out.add(dag.path, f"edge {parent} -> {child} is missing (the pipeline's graph has it)")
    for parent, child in sorted(edges - edges_wanted):
        out.add(dag.edge_where.get((parent, child), dag.path), f"extra edge {parent} -> {child}")


def check_skip_scripts(node: Node, where: str, out: Problems) -> None:
    """Rerun only what changed: scripts/fingerprint.py as every node's PRE (with a PRE_SKIP
    code; it records the parents' success), and as POST of a node without children (passing
    $RETURN on, so RETRY ... UNLESS-EXIT still sees the job's exit code)."""
    pre, post = node.pre, node.post
    if pre is None or "pre" not in pre.args or node.pre_skip is None:
        out.add(where, f"node {node.name} needs SCRIPT PRE fingerprint.py pre and a PRE_SKIP code")
    if node.children:
        return
    if post is None or "post" not in post.args or "$RETURN" not in post.args:
        out.add(
            where,
            f"node {node.name} has no child to record its success: it needs SCRIPT POST "
            "fingerprint.py post ... $RETURN",
        )


def check_dag_settings(dag: Dag, out: Problems) -> None:
    """RETRY ... UNLESS-EXIT 65 everywhere, CONFIG with the two knobs, a node status file."""
    for node in dag.nodes.values():
        where = f"{node.file}:{node.line}"
        if node.final:
            continue  # DAGMan allows no RETRY on a FINAL node
        if node.retry < 1:
            out.add(where, f"node {node.name} has no RETRY for transient failures")
        if node.unless_exit != EXIT_BAD_INPUT:
            out.add(
                where,
                f"node {node.name} must not retry exit code 65, bad input (RETRY n UNLESS-EXIT 65)",
            )
        check_skip_scripts(node, where, out)
    if dag.config is None:
        out.add(dag.path, "no CONFIG file (DAGMAN_MAX_JOB_HOLDS, DAGMAN_USER_LOG_SCAN_INTERVAL)")
    elif not dag.config.is_file():
        out.add(dag.path, f"CONFIG file {dag.config} does not exist")
    else:
        text = dag.config.read_text(encoding="utf-8")
        for knob in REQUIRED_CONFIG:
            if not re.search(rf"^\s*{knob}\s*=\s*\S", text, re.MULTILINE):
                out.add(dag.config, f"{knob} is not set")
    if dag.node_status_file is None:
        out.add(dag.path, "no NODE_STATUS_FILE (make status reads it)")


def is_executable(path: str) -> bool:
    return os.path.isfile(path) and os.access(path, os.X_OK)


def check_ad(node: Node, retry: int, ad: Any, out: Problems) -> None:
    """Everything a node job's ClassAd must hold for attempt ``retry``."""
    where = f"{node.submit_path} (node {node.name}, RETRY {retry})"
    if ad.get("ProcId", 0):
        where = f"{node.submit_path} (node {node.name}, job {ad.get('ProcId')}, RETRY {retry})"
    v = node.vars
    base, python = v["BASE_DIR"], v["PYTHON"]
    stage = pipeline.by_node().get(node.name)
    script_name, model = (stage.script, stage.model) if stage else (None, None)

    leftovers = sorted(k for k in ad if isinstance(ad.get(k), str) and "$(" in ad.get(k))
    for key in leftovers:
        out.add(where, f"{key} = {ad.get(key)!r} still holds an unexpanded $( macro")

    cmd = ad.get("Cmd", "")
    if cmd != python:
        out.add(where, f"executable is {cmd!r}, expected $(PYTHON) = {python!r}")
    if not is_executable(cmd):
        out.add(where, f"executable {cmd!r} does not exist or is not executable")

    args = str(ad.get("Args", ad.get("Arguments", ""))).split()
    if node.final:  # the report: the DAG it reports, DAGMan's outcome macros
        final = pipeline.FINAL
        expected = [f"{v['PROJECT_DIR']}/scripts/{final.script}", "--base-dir", base, "--dag"]
        expected += [v.get("DAG_FILE", "$(DAG_FILE)"), "--final", "--dag-status"]
        if args[: len(expected)] != expected:
            out.add(where, f"arguments are {' '.join(args)!r}, expected {' '.join(expected)} ...")
    elif script_name is not None:
        expected = [f"{v['PROJECT_DIR']}/scripts/{script_name}", "--base-dir", base]
        if model is not None:
            expected += ["--model", model]
        expected += search_table.extra_args(node, ad)
        if args != expected:
            out.add(where, f"arguments are {' '.join(args)!r}, expected {' '.join(expected)!r}")
    # The interpreter runs the script (its first argument): it must be readable, no exec bit.
    if args and not (os.path.isfile(args[0]) and os.access(args[0], os.R_OK)):
        out.add(where, f"stage script {args[0]!r} does not exist or is not readable")

    if ad.get("Iwd") != base:
        out.add(where, f"initialdir is {ad.get('Iwd')!r}, expected $(BASE_DIR) = {base!r}")
    name = search_table.output_name(node, ad)  # node, or node.candidate for a search job
    files = {
        "Out": f"{base}/output/{name}.{retry}.out",
        "Err": f"{base}/error/{name}.{retry}.err",
        "UserLog": f"{base}/log/{node.name}.log",
    }
    for key, want in files.items():
        got = ad.get(key)
        if got != want:
            out.add(where, f"{key} is {got!r}, expected {want!r}")
        elif not os.path.isdir(os.path.dirname(want)):
            out.add(where, f"directory {os.path.dirname(want)} does not exist (make paths)")

    env = str(ad.get("Environment", "")).split()
    for item in REQUIRED_ENV:
        if item not in env:
            out.add(where, f"environment lacks {item}")
    if ad.get("RequestCpus") != 1:
        out.add(where, f"request_cpus is {ad.get('RequestCpus')!r}, expected 1")
    for key in ("RequestMemory", "RequestDisk"):
        try:
            value = ad.eval(key)
        except Exception as exc:  # a broken expression: report it, keep checking
            out.add(where, f"{key} does not evaluate: {exc}")
            continue
        if not isinstance(value, int) or value <= 0:
            out.add(where, f"{key} evaluates to {value!r}, expected a positive integer")
    if str(ad.get("ShouldTransferFiles", "")).upper() not in ("NO", "IF_NEEDED"):
        out.add(where, "should_transfer_files must be NO or IF_NEEDED (shared filesystem)")


def check_nodes(dag: Dag, out: Problems) -> set[Path]:
    """Expand every node's submit file for every attempt; returns the submit files seen."""
    seen: set[Path] = set()
    for node in dag.nodes.values():
        where = f"{node.file}:{node.line}"
        missing = [name for name in PATH_VARS if not node.vars.get(name)]
        if missing:
            out.add(where, f"node {node.name} lacks VARS {', '.join(missing)} (make paths)")
            continue
        stage = pipeline.by_node().get(node.name)
        if stage and stage.model != node.vars.get("MODEL"):
            out.add(where, f'node {node.name} needs VARS MODEL="{stage.model}"')
        path = node.submit_path
        if path is None or not path.is_file():
            out.add(where, f"submit file {path} does not exist")
            continue
        seen.add(path)
        if not os.path.isdir(node.vars["BASE_DIR"]):
            out.add(where, f"BASE_DIR {node.vars['BASE_DIR']} does not exist (make paths)")
            continue
        for retry in range(node.retry + 1):
            try:
                ads = node_job_ads(node, retry)
            except Exception as exc:  # the bindings raise their own error types
                out.add(path, f"does not expand for node {node.name}: {exc}")
                break
            if search_table.table_broken(node):
                break  # its one line is already reported; the jobs follow the broken table
            search_table.check_job_count(node, ads, out)
            for ad in ads:
                check_ad(node, retry, ad, out)
    return seen


def check_text(paths: Iterable[Path], stage_scripts: Iterable[Path], out: Problems) -> None:
    """CRLF, units on requests, n_jobs=-1."""
    for path in sorted(set(paths)):
        data = path.read_bytes()
        if b"\r" in data:
            out.add(path, "has CRLF (or CR) line ends; condor_submit and DAGMan want LF")
        text = data.decode("utf-8", errors="replace")
        for number, line in enumerate(text.splitlines(), 1):
            match = REQUEST_LINE.match(line)
            if match and not HAS_UNIT.search(match.group(2)):
                out.add(
                    f"{path}:{number}",
                    f"{match.group(1)} = {match.group(2)} has no unit "
                    "(request_disk without one is KiB, request_memory MiB): write MB or GB",
                )
            if N_JOBS_ALL.search(line):
                out.add(f"{path}:{number}", "n_jobs=-1 (jobs get one CPU)")
    for path in sorted(set(stage_scripts)):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if N_JOBS_ALL.search(line):
                out.add(f"{path}:{number}", "n_jobs=-1 (jobs get one CPU)")


def run_checks(dag_path: Path) -> tuple[list[str], str]:
    """All checks; returns (problems, summary)."""
    out = Problems()
    try:
        dag = parse_dag(dag_path)
    except DagError as exc:
        return [str(exc)], ""
    check_graph(dag, out)
    check_dag_settings(dag, out)
    search_table.check_deploy_models(dag, out)
    table = search_table.check_table(dag, out)  # every row against its estimator
    submit_files = check_nodes(dag, out)
    text_files = set(dag.files) | submit_files
    if dag.config is not None and dag.config.is_file():
        text_files.add(dag.config)
    for directory in {p.parent for p in submit_files}:
        text_files.update(directory.glob("*.sub"))
    projects = {Path(n.vars["PROJECT_DIR"]) for n in dag.nodes.values() if "PROJECT_DIR" in n.vars}
    scripts = [p for project in projects for p in sorted((project / "scripts").glob("*.py"))]
    check_text(text_files, scripts, out)
    summary = (
        f"check: ok: {len(dag.nodes)} nodes, {len(submit_files)} submit files, "
        f"{len(dag.edges())} edges, the pipeline's graph"
        + (f" plus the search, {table}" if table else "")
    )
    return out.lines, summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m loanpipe.check", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--dag",
        type=Path,
        default=config.Layout(config.DEFAULT_BASE_DIR).dag_file(),
        help="the DAG rendered by make paths, parsed from its own directory (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    os.environ.setdefault("CONDOR_CONFIG", "/dev/null")  # bindings without a pool: no warning
    if not args.dag.is_file():
        print(f"error: {args.dag}: no such DAG file", file=sys.stderr)
        return 1
    problems, summary = run_checks(args.dag)
    for line in problems:
        print(f"error: {line}", file=sys.stderr)
    if problems:
        print(f"check: {len(problems)} problem(s)", file=sys.stderr)
        return 1
    print(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
