"""A DAG as plain Python objects: ``Dag``, ``Node``, ``Script``, and ``DagError``.

``loanpipe.dagman.parser`` reads DAG files into these; the local runner, ``make check``, ``make
graph`` and the report use them. Node names are case-sensitive; ``+`` is not allowed in them
(``ILLEGAL_NAME_CHARS``, parse.cpp's ILLEGAL_CHARS in 24.0 and 25.0: ``.`` is allowed).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from loanpipe.errors import LoanpipeError

ALL_NODES = "ALL_NODES"
RESERVED_WORDS = ("PARENT", "CHILD", ALL_NODES)
ILLEGAL_NAME_CHARS = "+"


class DagError(LoanpipeError):
    """A problem in a DAG file; the message is always ``FILE:LINE: problem``."""


@dataclass
class Script:
    """A PRE or POST script: ``SCRIPT [DEFER status time] PRE|POST node executable args...``.

    ``args`` are the raw whitespace-separated words; DAGMan substitutes ``$JOB``, ``$RETRY``,
    ``$MAX_RETRIES``, ``$RETURN`` (POST), ``$PRE_SCRIPT_RETURN`` (POST) when it runs the script.
    """

    kind: str
    executable: str
    args: list[str]
    defer_status: int | None = None
    defer_time: int | None = None


@dataclass
class Node:
    """One DAG node (``JOB`` line plus everything other commands attach to it)."""

    name: str
    submit: str
    dir: str | None = None
    noop: bool = False
    done: bool = False
    final: bool = False  # the FINAL node: runs last, whatever happened (one per DAG at most)
    vars: dict[str, str] = field(default_factory=dict)
    retry: int = 0
    unless_exit: int | None = None
    pre: Script | None = None
    post: Script | None = None
    pre_skip: int | None = None
    category: str | None = None
    abort_dag_on: tuple[int, int | None] | None = None
    parents: set[str] = field(default_factory=set)
    children: set[str] = field(default_factory=set)
    # Where the JOB line is, and the submit file / node directory resolved against the DAG's cwd.
    file: Path | None = None
    line: int = 0
    submit_path: Path | None = None
    node_dir: Path | None = None


@dataclass
class Dag:
    """A parsed DAG.  ``nodes`` keeps the order of the JOB lines."""

    path: Path
    nodes: dict[str, Node] = field(default_factory=dict)
    maxjobs: dict[str, int] = field(default_factory=dict)
    config: Path | None = None
    node_status_file: tuple[Path, int | None] | None = None
    jobstate_log: Path | None = None
    dot: Path | None = None
    cwd: Path = field(default_factory=Path.cwd)
    files: list[Path] = field(default_factory=list)
    # "FILE:LINE" of the PARENT line that first declared each edge (for error messages).
    edge_where: dict[tuple[str, str], str] = field(default_factory=dict, repr=False)

    @property
    def final_node(self) -> Node | None:
        """The DAG's FINAL node, if it has one."""
        return next((node for node in self.nodes.values() if node.final), None)

    def edges(self) -> list[tuple[str, str]]:
        """All (parent, child) pairs, parents in node order, children in node order."""
        order = {name: i for i, name in enumerate(self.nodes)}
        out: list[tuple[str, str]] = []
        for name, node in self.nodes.items():
            for child in sorted(node.children, key=order.__getitem__):
                out.append((name, child))
        return out

    def topological_order(self) -> list[str]:
        """Nodes so that every parent comes before its children (ties in file order).

        Raises DagError naming a cycle (``a -> b -> a``) if there is one.
        """
        indeg = {name: len(node.parents) for name, node in self.nodes.items()}
        order = {name: i for i, name in enumerate(self.nodes)}
        ready = [name for name, d in indeg.items() if d == 0]
        out: list[str] = []
        while ready:
            ready.sort(key=order.__getitem__)
            name = ready.pop(0)
            out.append(name)
            for child in self.nodes[name].children:
                indeg[child] -= 1
                if indeg[child] == 0:
                    ready.append(child)
        if len(out) != len(self.nodes):
            cycle = self._find_cycle({n for n, d in indeg.items() if d > 0})
            where = self.edge_where.get((cycle[-2], cycle[-1]), f"{self.path}:0")
            raise DagError(f"{where}: cycle in the DAG: {' -> '.join(cycle)}")
        return out

    def _find_cycle(self, candidates: set[str]) -> list[str]:
        order = {name: i for i, name in enumerate(self.nodes)}
        state: dict[str, int] = {}  # 1 = on stack, 2 = finished
        stack: list[str] = []

        def visit(name: str) -> list[str] | None:
            state[name] = 1
            stack.append(name)
            for child in sorted(self.nodes[name].children, key=order.__getitem__):
                if child not in candidates:
                    continue
                if state.get(child) == 1:
                    return stack[stack.index(child) :] + [child]
                if child not in state:
                    found = visit(child)
                    if found:
                        return found
            stack.pop()
            state[name] = 2
            return None

        for name in sorted(candidates, key=order.__getitem__):
            if name not in state:
                found = visit(name)
                if found:
                    return found
        return sorted(candidates)  # unreachable in practice

    def ancestors(self, name: str) -> set[str]:
        """Every node that must succeed before ``name`` may run."""
        return self._reach(name, "parents")

    def descendants(self, name: str) -> set[str]:
        """Every node that can only run after ``name`` succeeded."""
        return self._reach(name, "children")

    def _reach(self, name: str, direction: str) -> set[str]:
        """The nodes reachable from ``name`` following ``parents`` or ``children`` links."""
        seen: set[str] = set()
        todo = list(getattr(self.nodes[name], direction))
        while todo:
            n = todo.pop()
            if n not in seen:
                seen.add(n)
                todo.extend(getattr(self.nodes[n], direction))
        return seen
