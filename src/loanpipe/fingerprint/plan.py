"""make plan (every node: run or skip, and why; nothing runs) and FORCE / FRESH (tombstones).

A node whose own fingerprint and outputs match its record may still run: when a parent runs
first, its PRE script decides on the parent's new outputs, so the plan says "after PARENT runs".
"""

from __future__ import annotations

from pathlib import Path

from loanpipe.dagman.dag import Dag
from loanpipe.dagman.parser import parse_dag
from loanpipe.errors import LoanpipeError
from loanpipe.fingerprint import core


class PlanError(LoanpipeError):
    """A FORCE list naming a node the DAG does not have."""


def forced_set(dag: Dag, names: str) -> set[str]:
    """The nodes ``names`` (comma-separated, or "all") and every descendant of them."""
    wanted = [n.strip() for n in names.split(",") if n.strip()]
    if wanted == ["all"]:
        return set(dag.nodes)
    unknown = [n for n in wanted if n not in dag.nodes]
    if unknown:
        raise PlanError(
            f"FORCE={names}: {', '.join(unknown)} is not a node of {dag.path} "
            f"(its nodes: {', '.join(dag.nodes)})"
        )
    out = set(wanted)
    for name in wanted:
        out |= dag.descendants(name)
    return out


def _parse(dag_path: Path) -> Dag:
    if not dag_path.is_file():
        raise PlanError(f"{dag_path}: no such DAG (make paths renders it)")
    return parse_dag(dag_path)


def lines(dag_path: Path, force: str = "", fresh: bool = False) -> list[tuple[str, str, str]]:
    """(node, "run" or "skip", why) in the order the nodes run."""
    dag = _parse(dag_path)
    forced = set(dag.nodes) if fresh else forced_set(dag, force) if force else set()
    runs: set[str] = set()
    out = []
    for name in dag.topological_order():
        if name in forced:
            why = "FRESH=1" if fresh else f"forced (FORCE={force})"
            runs.add(name)
            out.append((name, "run", why))
            continue
        if not core.known(name):
            runs.add(name)
            final = dag.nodes[name].final
            why = "the FINAL node: runs after every run" if final else "no PRE script"
            out.append((name, "run", why))
            continue
        node, _ = core.dag_node(dag_path, name)
        skip, reasons = core.decide(node)
        running_parents = sorted(p for p in dag.nodes[name].parents if p in runs)
        if skip and running_parents:
            verb = "runs" if len(running_parents) == 1 else "run"
            after = f"after {', '.join(running_parents)} {verb}"
            reasons = [f"{after} (skipped if that changes nothing)"]
            skip = False
        if not skip:
            runs.add(name)
        out.append((name, "skip" if skip else "run", "; ".join(reasons)))
    return out


def show(dag_path: Path, force: str = "", fresh: bool = False) -> int:
    rows = lines(dag_path, force, fresh)
    width = max(len(name) for name, _, _ in rows)
    for name, verdict, why in rows:
        print(f"{verdict:<4}  {name:<{width}}  {why}")
    runs = sum(1 for _, verdict, _ in rows if verdict == "run")
    print(f"plan: {runs} of {len(rows)} nodes run, {len(rows) - runs} skipped ({dag_path.name})")
    return 0


def force(dag_path: Path, names: str) -> int:
    """Tombstones for the nodes and their descendants: they run in the next run (FORCE, FRESH)."""
    dag = _parse(dag_path)
    chosen = forced_set(dag, names)
    why = "FRESH=1" if names.strip() == "all" else f"FORCE={names}"
    order = [n for n in dag.topological_order() if n in chosen and core.known(n)]
    base = core.dag_node(dag_path, order[0])[0].base if order else None
    if base is not None:
        core.invalidate(base, order, why)
    print(f"{why}: {', '.join(order) or 'nothing'} will run")
    return 0
