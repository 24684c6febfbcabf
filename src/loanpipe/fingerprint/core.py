"""A node's fingerprint, its record, and the decision: run it, or skip it (PRE_SKIP) and why.

A node's *fingerprint* is a flat mapping ``key -> digest`` of everything its result depends on:

    input:<path in BASE_DIR>       sha256 of each file the stage reads ("missing" when absent)
    code:<path in the checkout>    sha256 of its stage script, the loanpipe modules that script
                                   imports (followed transitively, read with ast), its submit file
                                   and submit/common.sub
    pins:requirements.txt          sha256 of the pinned requirements
    vars:<NAME>                    the node's VARS values (MODEL, MODELS; not the paths)
    settings:search/search.conf    the model search's settings (model_search, select_model)
    candidate:<id>                 sha256 of one row of search/candidates.txt (same two nodes)

When the node succeeded, its children's PRE scripts (the last node's POST script) write the
*record*, ``BASE_DIR/dags/fingerprints/<node>.json``: the fingerprint its PRE script computed
before the job ran, plus the sha256 of every output file. The node's next PRE script skips it
when the fingerprint is the same and every output still has its recorded sha256. Content only:
a touched or copied file with the same bytes is unchanged; mtimes are never read.

``FORCE=node`` and ``FRESH=1`` replace records by *tombstones* (``{"forced": "..."}``) before the
DAG starts, so the decision needs nothing but the files: it is the same on the submit node of a
pool, in ``make local`` and in ``make plan``, and a rescue DAG resumed later still reruns them.
"""

from __future__ import annotations

import ast
import contextlib
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loanpipe import config, pipeline

FORMAT = 1  # the record's "format"
RECORD_DIR = "fingerprints"  # under BASE_DIR/dags
MISSING = "missing"
# VARS that name places, not parameters: moving a checkout or a base directory changes no result.
PATH_VARS = frozenset({"BASE_DIR", "PROJECT_DIR", "PYTHON", "MEMORY_MB"})
SEARCH_INPUT_NODES = frozenset({pipeline.SEARCH_NODE, "select_model"})
PINS = config.PROJECT_DIR / "requirements.txt"
SRC_DIR = config.PROJECT_DIR / "src"


def sha256_file(path: Path) -> str:
    """The file's sha256, or ``MISSING``. Content only (no mtime, no size shortcut)."""
    digest = hashlib.sha256()
    try:
        with path.open("rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
    except FileNotFoundError:
        return MISSING
    return digest.hexdigest()


def record_dir(base: Path) -> Path:
    return config.Layout(base).run_dir / RECORD_DIR


def record_path(base: Path, node: str) -> Path:
    return record_dir(base) / f"{node}.json"


def pending_path(base: Path, node: str) -> Path:
    """The fingerprint a PRE script computed for the attempt now running (promote() records it)."""
    return record_dir(base) / f"{node}.pending.json"


# ---- what a node reads and writes


def node_files(node: str, base: Path, models: tuple[str, ...]) -> tuple[list[Path], list[Path]]:
    """(inputs, outputs) of ``node`` under ``base``; ``models``: what deploy chooses among."""
    lay = config.Layout(base)
    split = [lay.split_csv(n) for n in ("X_train", "y_train", "X_test", "y_test")]
    train = [lay.split_csv("X_train"), lay.split_csv("y_train")]
    stage = pipeline.by_node()[node]
    if node == "data_processing":
        return [lay.raw_csv], [lay.processed_csv, lay.processed_source]
    if node == "train_test_split":
        return [lay.processed_csv], split
    if stage.script == "train.py":
        return train, [lay.trained_model(stage.model or "")]
    if stage.script == "evaluate.py":
        version = stage.model or ""
        inputs = [lay.trained_model(version), *split[1:], lay.processed_source]
        if version == "v3":
            inputs.append(lay.selection)
        return inputs, [lay.metrics(version)]
    if node == "deploy_best_model":
        inputs = [lay.metrics(v) for v in models] + [lay.trained_model(v) for v in models]
        return inputs, [lay.deployed_model, lay.manifest]
    if node == "loan_prediction":
        return [lay.deployed_model, lay.manifest, lay.split_csv("X_test")], [lay.predictions]
    rows = [c.id for c in _candidates()]
    results = [lay.candidate_result(c) for c in rows]
    if node == pipeline.SEARCH_NODE:
        return train, results
    if node == "select_model":
        return [*results, *train], [lay.trained_model("v3"), lay.selection]
    raise KeyError(node)


def _candidates() -> list[Any]:
    from loanpipe.stages import candidates  # reads text only; no scikit-learn

    return candidates.read_table(config.CANDIDATE_TABLE)


# ---- the code a node runs


def module_file(name: str) -> Path | None:
    """The source of a loanpipe (or loanfeatures) module in this checkout, if it is one."""
    parts = name.split(".")
    if parts[0] not in ("loanpipe", "loanfeatures"):
        return None
    base = SRC_DIR.joinpath(*parts)
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def imported_modules(source: bytes, filename: str) -> list[str]:
    """This project's module names ``source`` imports anywhere (top level or inside functions),
    with their parent packages (importing a module runs its packages' __init__ too)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source, filename=filename)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    with_parents = set()
    for name in names:
        parts = name.split(".")
        with_parents.update(".".join(parts[: i + 1]) for i in range(len(parts)))
    return sorted(n for n in with_parents if n.split(".")[0] in ("loanpipe", "loanfeatures"))


def code_digests(script: Path, cache: dict[str, list[str]] | None = None) -> dict[Path, str]:
    """sha256 of ``script`` and of every checkout module it imports, transitively.

    ``cache`` maps a file's sha256 to its imports (parsing is most of a PRE script's time); it is
    keyed by content, so an edited file is parsed again and a touched one is not.
    """
    cache = {} if cache is None else cache
    seen: dict[Path, str] = {}
    todo = [script]
    while todo:
        path = todo.pop()
        source = path.read_bytes()
        digest = seen[path] = hashlib.sha256(source).hexdigest()
        if digest not in cache:
            cache[digest] = imported_modules(source, str(path))
        for name in cache[digest]:
            found = module_file(name)
            if found is not None and found not in seen and found not in todo:
                todo.append(found)
    return dict(sorted(seen.items()))


def code_files(script: Path) -> list[Path]:
    """``script`` and every checkout module it imports, transitively (importing runs them)."""
    return list(code_digests(script))


def imports_cache(base: Path) -> tuple[Path, dict[str, list[str]]]:
    path = record_dir(base) / "imports.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        data = {}
    return path, data if isinstance(data, dict) else {}


# ---- the fingerprint


def _rel(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def candidate_digest(candidate: Any) -> str:
    row = f"{candidate.id} {candidate.family} {candidate.params_text()}"
    return hashlib.sha256(row.encode()).hexdigest()


@dataclass
class Node:
    """What the fingerprint of one node needs: its name, VARS, and the DAG's deploy models."""

    name: str
    vars: dict[str, str]
    base: Path

    @property
    def models(self) -> tuple[str, ...]:
        text = self.vars.get("MODELS")
        return tuple(text.split()) if text else pipeline.DEFAULT_MODELS

    def files(self) -> tuple[list[Path], list[Path]]:
        return node_files(self.name, self.base, self.models)


def fingerprint(node: Node) -> dict[str, str]:
    """The node's fingerprint: every input, the code, the pins, the parameters."""
    stage = pipeline.by_node()[node.name]
    project = config.PROJECT_DIR
    inputs, _ = node.files()
    out: dict[str, str] = {}
    for path in inputs:
        out[f"input:{_rel(path, node.base)}"] = sha256_file(path)
    cache_path, cache = imports_cache(node.base)
    known_imports = len(cache)
    for path, digest in code_digests(config.SCRIPTS_DIR / stage.script, cache).items():
        out[f"code:{_rel(path, project)}"] = digest
    if len(cache) != known_imports:
        with contextlib.suppress(OSError):
            write_json(cache, cache_path)
    submit = config.SUBMIT_DIR / stage.submit
    out[f"code:{_rel(submit, project)}"] = sha256_file(submit)
    out["code:submit/common.sub"] = sha256_file(config.SUBMIT_DIR / "common.sub")
    out[f"pins:{PINS.name}"] = sha256_file(PINS)
    for name, value in sorted(node.vars.items()):
        if name not in PATH_VARS:
            out[f"vars:{name}"] = value
    if node.name in SEARCH_INPUT_NODES:
        settings = config.SEARCH_SETTINGS
        out[f"settings:{_rel(settings, project)}"] = sha256_file(settings)
        for candidate in _candidates():
            out[f"candidate:{candidate.id}"] = candidate_digest(candidate)
    return out


def output_digests(node: Node) -> dict[str, str]:
    _, outputs = node.files()
    return {_rel(path, node.base): sha256_file(path) for path in outputs}


# ---- records


def read_record(base: Path, node: str) -> dict[str, Any] | None:
    """The node's record or tombstone, or None (none, or unreadable: then the node runs)."""
    try:
        data = json.loads(record_path(base, node).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("format") == FORMAT else None


def write_json(data: dict[str, Any], path: Path) -> None:
    """Atomically (temporary file in the same folder, rename): other jobs read over NFS.

    Not fsynced: every PRE script writes one or two of these on the DAG's critical path, and a
    record lost or emptied by a power cut reads as no record (read_record), so the node reruns.
    """
    from loanpipe.stages import common

    path.parent.mkdir(parents=True, exist_ok=True)
    common.write_json(data, path, durable=False)


def remove(path: Path) -> None:
    path.unlink(missing_ok=True)


def invalidate(base: Path, nodes: list[str], why: str) -> None:
    """Replace each node's record by a tombstone saying why it must run (FORCE, FRESH)."""
    for name in nodes:
        write_json({"format": FORMAT, "node": name, "forced": why}, record_path(base, name))


def make_record(node: Node, prints: dict[str, str]) -> dict[str, Any]:
    from loanpipe.stages.common import utc_now

    return {
        "format": FORMAT,
        "node": node.name,
        "fingerprint": prints,
        "outputs": output_digests(node),
        "recorded_at": utc_now(),
    }


# ---- the decision


def _label(key: str) -> str:
    return key.partition(":")[2]


def differences(old: dict[str, str], new: dict[str, str]) -> list[str]:
    """Why two fingerprints differ, one short phrase per difference."""
    reasons = []
    for key in sorted(old.keys() | new.keys()):
        was, now = old.get(key), new.get(key)
        if was == now:
            continue
        kind, _, name = key.partition(":")
        if kind == "candidate":
            verb = "added" if was is None else "removed" if now is None else "changed"
            reasons.append(f"candidate {name} {verb}")
        elif kind == "vars":
            reasons.append(f"VARS {name} changed ({was or '-'} -> {now or '-'})")
        elif now == MISSING:
            reasons.append(f"{_label(key)} missing")
        elif was is None:
            reasons.append(f"{_label(key)} is new")
        elif now is None:
            reasons.append(f"{_label(key)} no longer used")
        else:
            reasons.append(f"{_label(key)} changed")
    return reasons


def decide(node: Node, prints: dict[str, str] | None = None) -> tuple[bool, list[str]]:
    """(skip, reasons): skip only when the record matches the fingerprint and every output."""
    record = read_record(node.base, node.name)
    if record is None:
        return False, ["no record of a successful run"]
    if "forced" in record:
        return False, [f"forced ({record['forced']})"]
    prints = fingerprint(node) if prints is None else prints
    reasons = differences(record.get("fingerprint") or {}, prints)
    recorded = record.get("outputs") or {}
    changed = bool(reasons)
    for rel, digest in sorted(output_digests(node).items()):
        if changed and rel not in recorded:
            continue  # a new output (a candidate added): its reason is already given
        if digest == MISSING:
            reasons.append(f"{rel} missing")
        elif recorded.get(rel) != digest:
            reasons.append(f"{rel} changed since it was written")
    if reasons:
        return False, reasons
    return True, ["unchanged"]


def known(name: str) -> bool:
    return name in pipeline.by_node()


def dag_node(dag_path: Path, name: str) -> tuple[Node, int | None]:
    """The node ``name`` of a rendered DAG: its fingerprint inputs and its PRE_SKIP code."""
    node, skip_code, _ = dag_node_and_parents(dag_path, name)
    return node, skip_code


def dag_node_and_parents(dag_path: Path, name: str) -> tuple[Node, int | None, list[Node]]:
    """dag_node, and the node's parents in the DAG (their fingerprint inputs)."""
    from loanpipe.dagman.parser import parse_dag

    dag = parse_dag(dag_path)
    entry = dag.nodes[name]

    def as_node(n: Any) -> Node:
        base = n.vars.get("BASE_DIR") or os.environ.get("BASE_DIR") or config.DEFAULT_BASE_DIR
        return Node(n.name, dict(n.vars), Path(base))

    parents = [as_node(dag.nodes[p]) for p in sorted(entry.parents) if known(p)]
    return as_node(entry), entry.pre_skip, parents


def promote(node: Node, ran: bool = False) -> bool:
    """Record the node's success: the fingerprint its PRE script saved for the attempt that
    succeeded, with its outputs' sha256 (recomputed when the saved one is unreadable, or missing
    when ``ran``: the job just succeeded). False when there is nothing to promote (no attempt
    ran since the last record)."""
    pending = pending_path(node.base, node.name)
    if not ran and not pending.exists():
        return False
    try:
        prints = read_pending(pending)
    except (OSError, ValueError):
        prints = fingerprint(node)
    write_json(make_record(node, prints), record_path(node.base, node.name))
    remove(pending)
    return True


def read_pending(path: Path) -> dict[str, str]:
    """The fingerprint a PRE script saved for the attempt that just ended."""
    data = json.loads(path.read_text(encoding="utf-8"))
    prints = data.get("fingerprint") if isinstance(data, dict) else None
    if not isinstance(prints, dict):
        raise ValueError(f"{path}: no fingerprint")
    return prints


def candidate_key(candidate: Any, settings: dict[str, Any], train_sha256: str) -> str:
    """What one model search result depends on: the row, the settings, the training rows, the
    code that fits it (scripts/search.py and its imports) and the pins. Same key: same result."""
    parts = [candidate_digest(candidate), json.dumps(settings, sort_keys=True), train_sha256]
    parts += list(code_digests(config.SCRIPTS_DIR / "search.py").values())
    parts.append(sha256_file(PINS))
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()
