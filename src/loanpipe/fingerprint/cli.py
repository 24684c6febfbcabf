"""python -m loanpipe.fingerprint pre|post|plan|force: rerun only what changed.

    pre   DAG NODE           every node's PRE script: record its parents' success (they all
                             succeeded, or DAGMan would not run it), then exit with the node's
                             PRE_SKIP code when it is unchanged
    post  DAG NODE RETURN    a node without children's POST script: record its success
    plan  --dag DAG          one line per node: run or skip, and why (runs nothing)
    force --dag DAG NODES    FORCE=...: those nodes and their descendants run next time ("all":
                             every node, FRESH=1)

The DAG is the one rendered by make paths (BASE_DIR/dags/<name>.dag): the node's VARS and
PRE_SKIP code come from it. PRE and POST never fail a node for a problem of their own: a PRE
that cannot decide lets the node run, a POST that cannot record leaves the node to run next time.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from pathlib import Path

from loanpipe.errors import EXIT_OK, EXIT_USAGE, LoanpipeError
from loanpipe.fingerprint import core


def warn(text: str) -> None:
    print(f"fingerprint: {text}", file=sys.stderr)


def promote_parents(parents: list[core.Node]) -> None:
    """DAGMan runs a PRE script only once every parent succeeded: record the parents' success
    here, instead of in a POST script of theirs (each POST costs DAGMan a one-second tick before
    the child can start). Two children of one parent may both do it: the same record, written
    atomically."""
    for parent in parents:
        try:
            core.promote(parent)
        except Exception:  # noqa: BLE001 - without a record the parent runs next time
            warn(f"{parent.name}: cannot record\n{traceback.format_exc()}")


def cmd_pre(dag: Path, name: str) -> int:
    if not core.known(name):
        return EXIT_OK  # not a stage of this pipeline (a FINAL node): it runs
    try:
        node, skip_code, parents = core.dag_node_and_parents(dag, name)
    except Exception:  # noqa: BLE001 - never block a node: run it
        warn(f"{name}: cannot decide, running it\n{traceback.format_exc()}")
        return EXIT_OK
    promote_parents(parents)
    try:
        prints = core.fingerprint(node)
        skip, reasons = core.decide(node, prints)
    except Exception:  # noqa: BLE001 - never block a node: run it
        warn(f"{name}: cannot decide, running it\n{traceback.format_exc()}")
        return EXIT_OK
    print(f"{name}: {'skip' if skip else 'run'}: {'; '.join(reasons)}")
    if skip and skip_code is not None:
        core.remove(core.pending_path(node.base, name))  # nothing of an older attempt to promote
        return skip_code
    try:
        pending = {"format": core.FORMAT, "fingerprint": prints}
        core.write_json(pending, core.pending_path(node.base, name))
        record = core.read_record(node.base, name)
        if record is not None and "forced" not in record:  # a failed attempt leaves no record
            core.remove(core.record_path(node.base, name))
    except OSError as exc:
        warn(f"{name}: {exc}")
    return EXIT_OK


def cmd_post(dag: Path, name: str, retval: str) -> int:
    try:
        code = int(retval)
    except ValueError:
        code = 1
    if code != 0:  # the job's exit code stays the node's (RETRY ... UNLESS-EXIT 65)
        return code if 0 < code < 256 else 1
    if not core.known(name):
        return EXIT_OK
    try:
        core.promote(core.dag_node(dag, name)[0], ran=True)
    except Exception:  # noqa: BLE001 - the job succeeded; without a record it runs next time
        warn(f"{name}: cannot record\n{traceback.format_exc()}")
    return EXIT_OK


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m loanpipe.fingerprint", description=__doc__.split("\n\n")[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    pre = sub.add_parser("pre", help="a node's PRE script")
    pre.add_argument("dag", type=Path)
    pre.add_argument("node")
    post = sub.add_parser("post", help="a node's POST script")
    post.add_argument("dag", type=Path)
    post.add_argument("node")
    post.add_argument("retval")
    plan = sub.add_parser("plan", help="one line per node: run or skip, and why")
    plan.add_argument("--dag", type=Path, required=True)
    plan.add_argument("--force", default="", help="nodes FORCE would rerun (comma-separated)")
    plan.add_argument("--fresh", action="store_true", help="as FRESH=1: every node runs")
    force = sub.add_parser("force", help="make nodes and their descendants run next time")
    force.add_argument("--dag", type=Path, required=True)
    force.add_argument("nodes", help="comma-separated node names, or 'all'")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.command == "pre":
        return cmd_pre(args.dag, args.node)
    if args.command == "post":
        return cmd_post(args.dag, args.node, args.retval)
    from loanpipe.fingerprint import plan

    try:
        if args.command == "plan":
            return plan.show(args.dag, args.force, args.fresh)
        return plan.force(args.dag, args.nodes)
    except LoanpipeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
