"""Parse an HTCondor DAGMan input file (``dagfile.dag``) into ``loanpipe.dagman.dag`` objects.

Shared by the local runner (``loanpipe.local``), ``make check``, ``make graph`` and the report.
Only the subset of DAGMan's language this project uses is accepted; every other command is an
error naming the file and line (``DagError("FILE:LINE: problem")``), never silently skipped.

Semantics follow ``condor_dagman``'s parser (``src/condor_dagman/parse.cpp``, 23.x/24.x):

- A file is read in two passes: pass 1 defines the nodes (``JOB``), pass 2 runs every other
  command in file order.  So ``PARENT``/``VARS``/... may name a node defined further down.
- ``INCLUDE file`` is parsed (both passes) when pass 2 reaches it; its path is relative to the
  directory DAGMan runs in (``cwd``), not to the including file.
- ``ALL_NODES`` applies to every node defined *at that moment*: all nodes of the files parsed so
  far (the whole current file, thanks to pass 1), not nodes of a later ``INCLUDE``.
- When several commands set the same property of a node, the *last* one wins; this includes
  ``VARS`` (``VARS A x="1"`` then ``VARS ALL_NODES x="2"`` gives ``x=2`` for A).
- ``VARS`` values must be double-quoted; inside, only ``\\"`` and ``\\\\`` are escapes.
- ``RETRY ... UNLESS-EXIT 0`` is ignored by DAGMan (0 means "unset"); so it is here.
- Keywords (and ``ALL_NODES``) are case-insensitive; node names are case-sensitive.
- ``FINAL name submit [DIR d] [NOOP]``: at most one; no PARENT/CHILD, DONE, RETRY,
  ABORT-DAG-ON or CATEGORY for it, and ``ALL_NODES`` skips it (``Dag::FindAllNodesByName``).

Usage::

    from loanpipe.dagman import DagError, parse_dag
    dag = parse_dag("dag/dagfile.dag")          # cwd defaults to the DAG file's directory
    for name in dag.topological_order(): ...
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from loanpipe.dagman.dag import (
    ALL_NODES,
    ILLEGAL_NAME_CHARS,
    RESERVED_WORDS,
    Dag,
    DagError,
    Node,
    Script,
)

MAX_INCLUDE_DEPTH = 20

SUPPORTED = {
    "JOB",
    "FINAL",
    "PARENT",
    "VARS",
    "RETRY",
    "SCRIPT",
    "PRE_SKIP",
    "ABORT-DAG-ON",
    "CATEGORY",
    "MAXJOBS",
    "CONFIG",
    "INCLUDE",
    "NODE_STATUS_FILE",
    "JOBSTATE_LOG",
    "DOT",
    "DONE",
}
# Real DAGMan commands this project deliberately does not support (clearer message than "unknown").
UNSUPPORTED = {
    "NODE",
    "DATA",
    "SUBDAG",
    "SPLICE",
    "SERVICE",
    "PROVISIONER",
    "SET_JOB_ATTR",
    "ENV",
    "PRIORITY",
    "REJECT",
    "CONNECT",
    "PIN_IN",
    "PIN_OUT",
    "SAVE_POINT_FILE",
    "SUBMIT-DESCRIPTION",
    "TOLERANCE",
    "WEAK",
}


# --------------------------------------------------------------------------- parsing


@dataclass
class _Line:
    number: int
    text: str
    words: list[str]


C_SPACE = " \t\n\v\f\r"  # isspace() in the C locale: what DAGMan trims


def _read_lines(path: Path) -> list[_Line]:
    """Non-blank, non-comment lines, read as DAGMan's ``getline`` reads them (options
    COMMENT_DOESNT_CONTINUE and CONTINUE_MAY_BE_COMMENTED_OUT, ``condor_utils/config.cpp``).

    Each line is trimmed; one ending in ``\\`` continues on the next, joined with nothing in
    between (the backslash removed). A comment line never continues; a ``#`` line inside a
    continuation counts as blank (only its last character is kept, so its own trailing
    backslash continues). Lines are bytes: a non-UTF-8 byte is fine in a comment (DAGMan
    accepts it), and refused, naming the line, in a command.
    """
    try:
        raw = path.read_bytes().split(b"\n")
    except OSError as exc:
        raise DagError(f"{path}:0: cannot read DAG file: {exc.strerror or exc}") from None
    if raw and raw[-1] == b"":
        raw.pop()
    out: list[_Line] = []
    i = 0
    while i < len(raw):
        start = i
        text = raw[i].decode("utf-8", "surrogateescape").strip(C_SPACE)
        comment = text.startswith("#")
        while text.endswith("\\") and not comment and i + 1 < len(raw):
            i += 1
            more = raw[i].decode("utf-8", "surrogateescape").strip(C_SPACE)
            text = text[:-1] + (more[-1:] if more.startswith("#") else more)
        i += 1
        if not text or comment:
            continue
        if text.endswith("\\") and i == len(raw):
            text = text[:-1].strip(C_SPACE)
        bad = next((c for c in text if "\udc80" <= c <= "\udcff"), None)
        if bad is not None:
            raise DagError(
                f"{path}:{start + 1}: byte 0x{ord(bad) - 0xDC00:02x} is not UTF-8 text "
                "(this project's DAG tools read commands as UTF-8)"
            )
        out.append(_Line(start + 1, text, text.split()))
    return out


_VAR_NAME = re.compile(r"[A-Za-z0-9_.+]+")


def _parse_vars_text(text: str, where: str) -> list[tuple[str, str]]:
    """``name="value" name2="value2"`` with DAGMan's rules (see get_next_var in parse.cpp)."""
    pairs: list[tuple[str, str]] = []
    i, n = 0, len(text)
    while True:
        while i < n and text[i].isspace():
            i += 1
        if i >= n:
            break
        m = _VAR_NAME.match(text, i)
        if not m:
            raise DagError(f"{where}: unexpected character {text[i]!r} in VARS")
        name = m.group(0)
        if "+" in name[1:]:
            raise DagError(f"{where}: '+' can only be the first character of a macro name")
        if name == "+":
            raise DagError(f"{where}: macro name must contain an alphanumeric character")
        i = m.end()
        while i < n and text[i].isspace():
            i += 1
        if i >= n or text[i] != "=":
            if name in ("PREPEND", "APPEND"):
                raise DagError(f"{where}: {name} must come before all the variables")
            raise DagError(f"{where}: expected '=' after macro name {name!r}")
        i += 1
        while i < n and text[i].isspace():
            i += 1
        if i >= n or text[i] != '"':
            raise DagError(f'{where}: value of {name} must be double-quoted ({name}="...")')
        i += 1
        value: list[str] = []
        while True:
            if i >= n:
                raise DagError(f"{where}: missing end quote in value of {name}")
            c = text[i]
            if c == "\\":
                if i + 1 >= n:
                    raise DagError(f"{where}: missing end quote in value of {name}")
                nxt = text[i + 1]
                if nxt not in ('"', "\\"):
                    raise DagError(
                        f'{where}: unknown escape sequence "\\{nxt}" in value of {name} '
                        '(only \\" and \\\\ are allowed)'
                    )
                value.append(nxt)
                i += 2
                continue
            if c == '"':
                i += 1
                break
            value.append(c)
            i += 1
        if name.lower().startswith("queue"):
            raise DagError(f"{where}: macro names cannot begin with 'queue' ({name})")
        if name.startswith("+"):
            name = "My." + name[1:]
        pairs.append((name, "".join(value)))
    return pairs


def _int(word: str, where: str, what: str, minimum: int | None = None) -> int:
    try:
        value = int(word)
    except ValueError:
        raise DagError(f"{where}: invalid {what} {word!r} (expected an integer)") from None
    if minimum is not None and value < minimum:
        raise DagError(f"{where}: invalid {what} {value} (must be >= {minimum})")
    return value


def _quoted_or_word(rest: str) -> tuple[str, str]:
    """First token of ``rest`` (double quotes allowed around it, like DAGMan) and the remainder."""
    rest = rest.lstrip()
    if rest.startswith('"'):
        end = rest.find('"', 1)
        if end < 0:
            return rest[1:], ""
        return rest[1:end], rest[end + 1 :]
    parts = rest.split(None, 1)
    return parts[0], (parts[1] if len(parts) > 1 else "")


class _Parser:
    def __init__(self, dag: Dag) -> None:
        self.dag = dag
        self.stack: list[Path] = []

    def resolve(self, name: str) -> Path:
        p = Path(name)
        return p if p.is_absolute() else self.dag.cwd / p

    def targets(self, name: str, where: str, final_refused: str = "") -> list[Node]:
        """The node named ``name``, or every node for ALL_NODES. ALL_NODES skips the FINAL node
        (``Dag::FindAllNodesByName``); naming it is an error for the commands that give
        ``final_refused`` (RETRY, ABORT-DAG-ON, CATEGORY: ``parse.cpp``)."""
        if name.upper() == ALL_NODES:
            return [node for node in self.dag.nodes.values() if not node.final]
        node = self.dag.nodes.get(name)
        if node is None:
            raise DagError(f"{where}: unknown node {name!r}")
        if node.final and final_refused:
            raise DagError(f"{where}: {final_refused} cannot name the FINAL node {name!r}")
        return [node]

    def parse_file(self, path: Path) -> None:
        resolved = path.resolve()
        if resolved in self.stack:
            raise DagError(f"{path}:0: INCLUDE loop: {' -> '.join(map(str, self.stack))}")
        if len(self.stack) >= MAX_INCLUDE_DEPTH:
            raise DagError(f"{path}:0: INCLUDE nested more than {MAX_INCLUDE_DEPTH} deep")
        self.stack.append(resolved)
        self.dag.files.append(path)
        lines = _read_lines(path)
        # Pass 1: check every keyword (file order) and define the nodes.
        for ln in lines:
            where = f"{path}:{ln.number}"
            kw = ln.words[0].upper()
            if kw in UNSUPPORTED:
                raise DagError(
                    f"{where}: {ln.words[0]} is not supported by this project's DAG tools"
                )
            if kw not in SUPPORTED:
                raise DagError(
                    f"{where}: unknown command {ln.words[0]!r} (expected one of "
                    f"{', '.join(sorted(SUPPORTED))})"
                )
            if kw in ("JOB", "FINAL"):
                self.cmd_job(ln, path, where)
        # Pass 2: everything else, in file order.
        for ln in lines:
            where = f"{path}:{ln.number}"
            kw = ln.words[0].upper()
            if kw not in ("JOB", "FINAL"):
                getattr(self, "cmd_" + kw.lower().replace("-", "_"))(ln, where)
        self.stack.pop()

    # -- node definition

    def cmd_job(self, ln: _Line, path: Path, where: str) -> None:
        """``JOB`` or ``FINAL``: a node (FINAL: run last, whatever happened; one per DAG)."""
        kw = ln.words[0].upper()
        usage = f"usage: {kw} name submitfile [DIR directory] [NOOP]" + (
            " [DONE]" if kw == "JOB" else ""
        )
        parts = ln.text.split(None, 2)
        if len(parts) < 3:
            raise DagError(f"{where}: {kw} needs a node name and a submit file ({usage})")
        name = parts[1]
        if name.upper() in RESERVED_WORDS:
            raise DagError(f"{where}: node name {name!r} is a reserved word")
        bad = sorted({c for c in name if c in ILLEGAL_NAME_CHARS})
        if bad:
            raise DagError(
                f"{where}: node name {name!r} contains illegal character(s) "
                + ", ".join(repr(c) for c in bad)
            )
        submit, rest = _quoted_or_word(parts[2])
        if submit.startswith("{"):
            raise DagError(f"{where}: inline submit descriptions are not supported")
        words = rest.split()
        directory: str | None = None
        noop = done = False
        if words and words[0].upper() == "DIR":
            if len(words) < 2:
                raise DagError(f"{where}: DIR needs a directory ({usage})")
            directory, rest = _quoted_or_word(rest.lstrip()[3:])
            words = rest.split()
        if words and words[0].upper() == "NOOP":
            noop = True
            words = words[1:]
        if words and words[0].upper() == "DONE":
            done = True
            words = words[1:]
        if words:
            raise DagError(f"{where}: invalid parameter {words[0]!r} ({usage})")
        if kw == "FINAL" and done:
            raise DagError(f"{where}: a FINAL node cannot be set to DONE")
        final = self.dag.final_node
        if kw == "FINAL" and final is not None:
            raise DagError(
                f"{where}: a second FINAL node {name!r} (the DAG's FINAL node is {final.name!r}, "
                f"{final.file}:{final.line})"
            )
        if name in self.dag.nodes:
            first = self.dag.nodes[name]
            raise DagError(f"{where}: duplicate node {name!r} (first at {first.file}:{first.line})")
        node_dir = self.resolve(directory) if directory else self.dag.cwd
        sub = Path(submit)
        self.dag.nodes[name] = Node(
            name=name,
            submit=submit,
            dir=directory,
            noop=noop,
            done=done,
            final=kw == "FINAL",
            file=path,
            line=ln.number,
            submit_path=sub if sub.is_absolute() else node_dir / sub,
            node_dir=node_dir,
        )

    # -- pass-2 commands

    def cmd_parent(self, ln: _Line, where: str) -> None:
        words = ln.words[1:]
        upper = [w.upper() for w in words]
        if "CHILD" not in upper:
            raise DagError(
                f"{where}: PARENT without CHILD (usage: PARENT p1 [p2 ...] CHILD c1 ...)"
            )
        k = upper.index("CHILD")
        parents, children = words[:k], words[k + 1 :]
        if not parents:
            raise DagError(f"{where}: PARENT needs at least one parent node")
        if not children:
            raise DagError(f"{where}: CHILD needs at least one child node")
        for name in parents + children:
            if name not in self.dag.nodes:
                raise DagError(f"{where}: unknown node {name!r}")
            if self.dag.nodes[name].final:
                raise DagError(f"{where}: FINAL node {name!r} cannot have parents or children")
        for p in parents:
            for c in children:
                if p == c:
                    raise DagError(f"{where}: node {p!r} cannot be its own parent")
                self.dag.nodes[p].children.add(c)
                self.dag.nodes[c].parents.add(p)
                self.dag.edge_where.setdefault((p, c), where)

    def cmd_vars(self, ln: _Line, where: str) -> None:
        parts = ln.text.split(None, 2)
        if len(parts) < 3:
            raise DagError(f'{where}: VARS needs a node and name="value" pairs')
        rest = parts[2]
        m = re.match(r"(PREPEND|APPEND)(\s+|$)", rest)
        if m:
            rest = rest[m.end() :]
        pairs = _parse_vars_text(rest, where)
        if not pairs:
            raise DagError(f'{where}: VARS has no name="value" pairs')
        for node in self.targets(parts[1], where):
            for key, value in pairs:
                node.vars.pop(key, None)  # keep "last definition wins" visible in dict order
                node.vars[key] = value

    def cmd_retry(self, ln: _Line, where: str) -> None:
        w = ln.words
        if len(w) not in (3, 5):
            raise DagError(f"{where}: usage: RETRY node|ALL_NODES N [UNLESS-EXIT code]")
        count = _int(w[2], where, "RETRY count", 0)
        unless: int | None = None
        if len(w) == 5:
            if w[3].upper() != "UNLESS-EXIT":
                raise DagError(f"{where}: invalid RETRY option {w[3]!r} (expected UNLESS-EXIT)")
            unless = _int(w[4], where, "UNLESS-EXIT code") or None  # DAGMan: 0 means unset
        for node in self.targets(w[1], where, "RETRY"):
            node.retry = count
            if unless is not None:
                node.unless_exit = unless

    def cmd_script(self, ln: _Line, where: str) -> None:
        usage = "usage: SCRIPT [DEFER status time] PRE|POST node executable [args...]"
        w = ln.words[1:]
        defer_status = defer_time = None
        if w and w[0].upper() == "DEFER":
            if len(w) < 3:
                raise DagError(f"{where}: DEFER needs a status and a time ({usage})")
            defer_status = _int(w[1], where, "DEFER status", 1)
            defer_time = _int(w[2], where, "DEFER time", 0)
            w = w[3:]
        if not w:
            raise DagError(f"{where}: missing PRE or POST ({usage})")
        kind = w[0].upper()
        if kind in ("HOLD", "DEBUG"):
            raise DagError(f"{where}: SCRIPT {w[0]} is not supported by this project's DAG tools")
        if kind not in ("PRE", "POST"):
            raise DagError(f"{where}: expected PRE or POST after SCRIPT, found {w[0]!r} ({usage})")
        if len(w) < 3:
            raise DagError(f"{where}: SCRIPT {kind} needs a node and an executable ({usage})")
        for node in self.targets(w[1], where):
            script = Script(kind, w[2], list(w[3:]), defer_status, defer_time)
            if kind == "PRE":
                node.pre = script
            else:
                node.post = script

    def cmd_pre_skip(self, ln: _Line, where: str) -> None:
        w = ln.words
        if len(w) != 3:
            raise DagError(f"{where}: usage: PRE_SKIP node|ALL_NODES exitcode")
        code = _int(w[2], where, "PRE_SKIP exit code")
        for node in self.targets(w[1], where):
            node.pre_skip = code

    def cmd_abort_dag_on(self, ln: _Line, where: str) -> None:
        w = ln.words
        if len(w) not in (3, 5):
            raise DagError(f"{where}: usage: ABORT-DAG-ON node|ALL_NODES exitcode [RETURN value]")
        code = _int(w[2], where, "ABORT-DAG-ON exit code")
        ret: int | None = None
        if len(w) == 5:
            if w[3].upper() != "RETURN":
                raise DagError(f"{where}: invalid ABORT-DAG-ON option {w[3]!r} (expected RETURN)")
            ret = _int(w[4], where, "RETURN value", 0)
            if ret > 255:
                raise DagError(f"{where}: RETURN value must be between 0 and 255, not {ret}")
        for node in self.targets(w[1], where, "ABORT-DAG-ON"):
            node.abort_dag_on = (code, ret)

    def cmd_category(self, ln: _Line, where: str) -> None:
        w = ln.words
        if len(w) != 3:
            raise DagError(f"{where}: usage: CATEGORY node|ALL_NODES category")
        for node in self.targets(w[1], where, "CATEGORY"):
            node.category = w[2]

    def cmd_maxjobs(self, ln: _Line, where: str) -> None:
        w = ln.words
        if len(w) != 3:
            raise DagError(f"{where}: usage: MAXJOBS category N")
        self.dag.maxjobs[w[1]] = _int(w[2], where, "MAXJOBS value", 0)

    def cmd_config(self, ln: _Line, where: str) -> None:
        w = ln.words
        if len(w) != 2:
            raise DagError(f"{where}: usage: CONFIG file")
        new = self.resolve(w[1])
        if self.dag.config is not None and self.dag.config != new:
            raise DagError(f"{where}: a second CONFIG file ({self.dag.config} already given)")
        self.dag.config = new

    def cmd_include(self, ln: _Line, where: str) -> None:
        w = ln.words
        if len(w) != 2:
            raise DagError(f"{where}: usage: INCLUDE file")
        target = self.resolve(w[1])
        if not target.is_file():
            raise DagError(f"{where}: INCLUDE file {target} does not exist")
        self.parse_file(target)

    def cmd_node_status_file(self, ln: _Line, where: str) -> None:
        w = ln.words
        if not 2 <= len(w) <= 4:
            raise DagError(f"{where}: usage: NODE_STATUS_FILE file [min-update-seconds]")
        secs = _int(w[2], where, "NODE_STATUS_FILE update time") if len(w) > 2 else None
        if len(w) == 4 and w[3].upper() != "ALWAYS-UPDATE":
            raise DagError(f"{where}: invalid parameter {w[3]!r}")
        # DAGMan keeps the first one (Dag::SetNodeStatusFileName warns about later ones), so a
        # DAG that INCLUDEs another can name its own status file before the INCLUDE line.
        if self.dag.node_status_file is None:
            self.dag.node_status_file = (self.resolve(w[1]), secs)

    def cmd_jobstate_log(self, ln: _Line, where: str) -> None:
        w = ln.words
        if len(w) != 2:
            raise DagError(f"{where}: usage: JOBSTATE_LOG file")
        self.dag.jobstate_log = self.resolve(w[1])

    def cmd_dot(self, ln: _Line, where: str) -> None:
        w = ln.words
        if len(w) < 2:
            raise DagError(f"{where}: usage: DOT file [UPDATE|DONT-UPDATE] [OVERWRITE|...]")
        opts = [x.upper() for x in w[2:]]
        for i, opt in enumerate(opts):
            if opt == "INCLUDE" or (i and opts[i - 1] == "INCLUDE"):
                continue
            if opt not in ("UPDATE", "DONT-UPDATE", "OVERWRITE", "DONT-OVERWRITE"):
                raise DagError(f"{where}: invalid DOT option {w[2 + i]!r}")
        self.dag.dot = self.resolve(w[1])

    def cmd_done(self, ln: _Line, where: str) -> None:
        w = ln.words
        if len(w) != 2:
            raise DagError(f"{where}: usage: DONE node")
        if w[1] not in self.dag.nodes:
            raise DagError(f"{where}: unknown node {w[1]!r}")
        if self.dag.nodes[w[1]].final:
            raise DagError(f"{where}: FINAL node {w[1]!r} cannot be set to DONE")
        self.dag.nodes[w[1]].done = True


def parse_dag(path: str | Path, cwd: str | Path | None = None) -> Dag:
    """Parse ``path`` (and its INCLUDEs).

    Relative paths (INCLUDE, CONFIG, submit files, DIR, status files) resolve against ``cwd``,
    which defaults to the DAG file's directory (the project runs DAGMan from ``BASE_DIR/dags/``).
    Raises DagError("FILE:LINE: problem"); a cycle is reported too.
    """
    path = Path(path)
    base = Path(cwd) if cwd is not None else (path.parent if str(path.parent) else Path("."))
    dag = Dag(path=path, cwd=base.absolute())
    parser = _Parser(dag)
    parser.parse_file(path)
    dag.topological_order()  # reject cycles up front
    return dag


def parse_into(dag: Dag, path: str | Path) -> None:
    """Parse another file of DAG commands (a rescue DAG) on top of a parsed ``dag``."""
    _Parser(dag).parse_file(Path(path))
