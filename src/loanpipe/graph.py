#!/usr/bin/env python3
"""make graph: draw a DAG (default dag/dagfile.dag) into a PNG or SVG file.

The graph comes from the DAG file itself (loanpipe.dagman.dag), so the picture cannot drift from
what DAGMan runs. Graphviz `dot` draws it when it is on PATH; otherwise matplotlib (pinned in
the venv) draws a layered layout: each node in the row of its longest path from a root.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from loanpipe import config
from loanpipe.dagman import Dag, DagError, parse_dag


def node_label(dag: Dag, name: str) -> str:
    """Node name plus its submit file and model, e.g. ``modeling_v1\\ntrain.sub v1``."""
    node = dag.nodes[name]
    extra = Path(node.submit).name
    if "MODEL" in node.vars:
        extra += f" {node.vars['MODEL']}"
    return f"{name}\n{extra}"


def to_dot(dag: Dag) -> str:
    """Graphviz source for the DAG."""
    lines = [
        "digraph dagfile {",
        "  rankdir=TB;",
        '  node [shape=box, style="rounded,filled", fillcolor="#e8f0fe", fontname="Helvetica"];',
    ]
    for name in dag.topological_order():
        label = node_label(dag, name).replace("\n", "\\n")
        lines.append(f'  "{name}" [label="{label}"];')
    lines += [f'  "{parent}" -> "{child}";' for parent, child in dag.edges()]
    lines.append("}")
    return "\n".join(lines) + "\n"


def layers(dag: Dag) -> dict[str, int]:
    """Row of each node: the length of its longest path from a root."""
    depth: dict[str, int] = {}
    for name in dag.topological_order():
        parents = dag.nodes[name].parents
        depth[name] = 1 + max((depth[p] for p in parents), default=-1)
    return depth


def draw_dot(dag: Dag, output: Path, dot: str) -> None:
    fmt = output.suffix.lstrip(".") or "png"
    subprocess.run([dot, f"-T{fmt}", "-o", str(output)], input=to_dot(dag), text=True, check=True)


def draw_matplotlib(dag: Dag, output: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    depth = layers(dag)
    rows: dict[int, list[str]] = {}
    for name in dag.topological_order():
        rows.setdefault(depth[name], []).append(name)
    width = max(len(r) for r in rows.values())
    pos: dict[str, tuple[float, float]] = {}
    for row, names in rows.items():
        for i, name in enumerate(names):
            pos[name] = ((i + 0.5) * width / len(names), -row)

    fig, ax = plt.subplots(figsize=(3.2 * width + 1, 1.3 * len(rows) + 0.6))
    for parent, child in dag.edges():
        (x0, y0), (x1, y1) = pos[parent], pos[child]
        ax.annotate(
            "",
            xy=(x1, y1 + 0.22),
            xytext=(x0, y0 - 0.22),
            arrowprops={"arrowstyle": "-|>", "color": "#444444", "lw": 1.2},
        )
    for name, (x, y) in pos.items():
        ax.text(
            x,
            y,
            node_label(dag, name),
            ha="center",
            va="center",
            fontsize=10,
            bbox={"boxstyle": "round,pad=0.4", "fc": "#e8f0fe", "ec": "#3366cc"},
        )
    ax.set_xlim(0, width)
    ax.set_ylim(-len(rows) + 0.4, 0.6)
    ax.set_title(dag.path.name)
    ax.axis("off")
    fig.tight_layout()
    fig.savefig(output, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m loanpipe.graph", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--dag", type=Path, default=config.DAG_DIR / config.DEFAULT_DAG)
    parser.add_argument(
        "--output", type=Path, help="image to write, .png or .svg (default: next to the DAG)"
    )
    parser.add_argument(
        "--engine", choices=("auto", "dot", "matplotlib"), default="auto", help="default: auto"
    )
    args = parser.parse_args(argv)
    output: Path = args.output or args.dag.with_suffix(".png")
    if output.suffix.lower() not in (".png", ".svg"):
        print(f"error: {output}: write a .png or .svg file", file=sys.stderr)
        return 2
    try:
        dag = parse_dag(args.dag)
    except (DagError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    dot = shutil.which("dot") if args.engine in ("auto", "dot") else None
    if args.engine == "dot" and dot is None:
        print("error: Graphviz `dot` is not on PATH", file=sys.stderr)
        return 1
    output.parent.mkdir(parents=True, exist_ok=True)
    # Draw into a temporary file and rename it, so a failed drawing leaves no half image.
    fd, tmp_name = tempfile.mkstemp(suffix=output.suffix, dir=output.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        if dot is not None:
            draw_dot(dag, tmp, dot)
        else:
            draw_matplotlib(dag, tmp)
        tmp.chmod(0o644)  # mkstemp makes it private; the picture is for everyone
        tmp.replace(output)
    finally:
        tmp.unlink(missing_ok=True)
    engine = "Graphviz dot" if dot else "matplotlib"
    print(f"graph: {output} ({len(dag.nodes)} nodes, {len(dag.edges())} edges, {engine})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
