"""A DAG node's submit file, expanded offline the way DAGMan submits it: the one reader of
submit files (make check, make local, make report).

No HTCondor needs to be installed (``CONDOR_CONFIG=/dev/null``): the file is parsed and its
macros expanded by the official bindings (``htcondor2.Submit``, 24.0 and 25.0 wheels alike),
``include :`` lines and ``$INT()``/``$Fp()`` functions included. ``htcondor2.Submit.jobs()``
is not implemented, so the job ClassAd is built here, attribute by attribute, with
condor_submit's rules (``src/condor_utils/submit_utils.cpp``); the pool test
``tests/test_submit_dry_run.py`` holds every attribute below against ``condor_submit -dry-run``:

- DAGMan's macros (``dagman_submit.cpp``, ``init_vars``): ``JOB``, ``RETRY``, ``DAG_STATUS``,
  ``FAILED_COUNT``, then the node's VARS, all before the file's own lines (the default,
  prepended VARS); ``SUBMIT_FILE`` is the file's path. DAGMan runs in the node's directory, so
  relative ``include`` and ``queue ... from`` paths resolve there.
- One job per queue item. ``queue ... from FILE`` is read with HTCondor's rules
  (``getline_trim`` then ``SubmitForeachArgs::split_item``): every line is a row, comment lines
  included; a blank line sets no variable, so its job repeats the previous row's values; the
  first variables take one comma/space/tab-separated field each, the last the rest of the line.
  Other queue forms (``in``, ``matching``) come from ``Submit.itemdata()``.
- ``Cmd``, ``UserLog`` and a relative ``initialdir`` are made absolute (``Iwd`` from the node's
  directory, the others from ``Iwd``); ``In``/``Out``/``Err`` stay as written (``/dev/null`` by
  default); ``request_memory`` is MiB and ``request_disk`` KiB when no unit is written; an
  ``environment`` becomes its canonical ``Environment`` (sorted by name); quoted arguments are
  ``Arguments`` (V2), others ``Args`` (V1, its words joined by one space).

Usage::

    ads = node_job_ads(node, retry)      # one classad2.ClassAd per job of the node's cluster
    values = read_submit(path)           # the file's own macros, unexpanded (the report)
"""

from __future__ import annotations

import contextlib
import fnmatch
import math
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from loanpipe.dagman import bindings
from loanpipe.dagman.dag import Node
from loanpipe.errors import LoanpipeError

__all__ = [
    "SubmitError",
    "node_macros",
    "load",
    "queue_items",
    "job_ad",
    "node_job_ads",
    "node_job_ad",
    "read_submit",
    "expand_value",
    "size_in",
    "split_args_v2",
]

SEPARATORS = ", \t"
SIZE = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([KMGTP]?)(?:I?B)?\s*", re.IGNORECASE)
UNIT_SHIFT = {"": None, "K": 10, "M": 20, "G": 30, "T": 40, "P": 50}
QUEUE_FROM = re.compile(r"(?:(\d+)\s+)?(.*?)\s*\bfrom\s+(.+)", re.IGNORECASE | re.DOTALL)
QUEUE_OTHER = re.compile(r"(?:(\d+)\s*)?(.*)", re.DOTALL)
# submit command -> (job attribute, kind): path | upper | bool | request unit (MiB/KiB) | int
PLAIN = {
    "input": ("In", "file"),
    "output": ("Out", "file"),
    "error": ("Err", "file"),
    "should_transfer_files": ("ShouldTransferFiles", "upper"),
    "when_to_transfer_output": ("WhenToTransferOutput", "upper"),
    "transfer_executable": ("TransferExecutable", "bool"),
    "request_memory": ("RequestMemory", 20),
    "request_disk": ("RequestDisk", 10),
    "request_cpus": ("RequestCpus", "int"),
    "keep_claim_idle": ("KeepClaimIdle", "int"),
}


class SubmitError(LoanpipeError, ValueError):
    """A submit file condor_submit (or DAGMan) would refuse: one line naming it and why."""


@contextlib.contextmanager
def _cwd(path: Path | None) -> Iterator[None]:
    old = os.getcwd()
    try:
        if path is not None:
            os.chdir(path)
        yield
    finally:
        os.chdir(old)


# --------------------------------------------------------------------------- reading


def node_macros(
    name: str, node_vars: dict[str, str], retry: int, run: dict[str, str] | None = None
) -> dict[str, str]:
    """What DAGMan defines before node ``name``'s submit file (its VARS ``node_vars``) for
    attempt ``retry`` (0-based); ``run``: the values of the run at submit time (DAG_STATUS,
    FAILED_COUNT), 0 when not given (make check, the report)."""
    return {
        "JOB": name,
        "RETRY": str(retry),
        "DAG_STATUS": "0",
        "FAILED_COUNT": "0",
        **(run or {}),
        **node_vars,
    }


def load(path: Path, macros: dict[str, str], cwd: Path | None = None) -> Any:
    """``htcondor2.Submit`` of the file at ``path`` with ``macros`` defined before its lines,
    parsed in ``cwd`` (where relative includes resolve). SubmitError when it does not parse."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SubmitError(f"cannot read submit file {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise SubmitError(f"{path}: is not UTF-8 text") from None
    defined = {"SUBMIT_FILE": str(path), **macros}
    prefix = "".join(f"{key} = {value}\n" for key, value in defined.items())
    with _cwd(cwd):
        try:
            return bindings.htcondor().Submit(prefix + text)
        except Exception as exc:  # the bindings say only "parse_up_to_q_line() failed"
            why = _why(text, defined, cwd)
            raise SubmitError(f"{path}: condor_submit would fail: {why}") from exc


def _why(text: str, macros: dict[str, str], cwd: Path | None) -> str:
    """The likely reason a submit file does not parse (the bindings do not say)."""
    for number, line in enumerate(text.splitlines(), 1):
        match = re.match(r"\s*include\s*:\s*(\S.*?)\s*$", line, re.IGNORECASE)
        if match:
            try:
                target = Path(expand_value(match.group(1), macros))
            except Exception:  # noqa: BLE001 - a name that does not expand: no better reason
                continue
            target = target if target.is_absolute() else (cwd or Path.cwd()) / target
            if not target.is_file():
                return f"line {number}: include file {target} does not exist"
    return "it does not parse (run condor_submit -dry-run on it for details)"


def expand(submit: Any, key: str) -> str | None:
    """The fully expanded value of submit command ``key`` (None when it is not set)."""
    try:
        return str(submit.expand(key))
    except KeyError:
        return None


def read_submit(path: Path | None) -> dict[str, str]:
    """A submit file's own ``key = value`` definitions (includes read), unexpanded, keys
    lower-cased (``+Attr``/``MY.Attr`` as ``attr``); {} when it is missing or broken."""
    if path is None or not path.is_file():
        return {}
    try:
        submit = load(path, {}, path.parent)
    except SubmitError:
        return {}
    out = {}
    for key in submit:
        name = key.lower().removeprefix("my.")
        if name != "submit_file":
            out[name] = str(submit[key])
    return out


def expand_value(value: str, macros: dict[str, str]) -> str:
    """``value`` with the ``$(...)`` macros and functions of ``macros`` expanded."""
    submit = bindings.htcondor().Submit({**macros, "LOANPIPE_VALUE": value})
    return expand(submit, "LOANPIPE_VALUE") or ""


# --------------------------------------------------------------------------- queue items


def queue_items(submit: Any, cwd: Path | None = None) -> list[dict[str, str]]:
    """The variables of each job the queue statement makes, in ProcId order."""
    qargs = submit.getQArgs().strip()
    if qargs.startswith("$("):  # `queue $(N)`: condor_submit expands a count given as a macro
        submit["LOANPIPE_QUEUE_COUNT"] = qargs
        qargs = (expand(submit, "LOANPIPE_QUEUE_COUNT") or "").strip()
    if not qargs or qargs.isdigit():
        return [{} for _ in range(int(qargs or 1))]
    match = QUEUE_FROM.fullmatch(qargs)
    if match and not match.group(3).lstrip().startswith("("):
        count = int(match.group(1) or 1)
        names = [n for n in re.split(r"[,\s]+", match.group(2)) if n] or ["Item"]
        rows = _table_rows(submit, match.group(3), cwd)
        items = [_split_row(row, names) for row in rows]
    else:
        count = int(QUEUE_OTHER.fullmatch(qargs).group(1) or 1)
        items = [i if isinstance(i, dict) else {"Item": i} for i in submit.itemdata() or []]
    return [item for item in items for _ in range(count)]


def _table_rows(submit: Any, name: str, cwd: Path | None) -> list[str]:
    """The rows of ``queue ... from FILE`` (getline_trim: trimmed, ``\\`` continues a line)."""
    submit["LOANPIPE_ITEMS_FROM"] = name
    path = Path(expand(submit, "LOANPIPE_ITEMS_FROM") or "")
    path = path if path.is_absolute() else (cwd or Path.cwd()) / path
    try:
        lines = path.read_text(encoding="utf-8").split("\n")
    except (OSError, UnicodeDecodeError) as exc:
        why = getattr(exc, "strerror", None) or "not UTF-8 text"
        raise SubmitError(f"queue ... from {path}: cannot read it: {why}") from None
    if lines and lines[-1] == "":
        lines.pop()
    rows: list[str] = []
    pending = ""
    for line in lines:
        line = pending + line.strip()
        if line.endswith("\\"):
            pending = line[:-1]
            continue
        pending = ""
        rows.append(line)
    if pending:
        rows.append(pending)
    return rows


def _split_row(row: str, names: list[str]) -> dict[str, str]:
    """One row's variables (SubmitForeachArgs::split_item, legacy split); {} for a blank row."""
    item = row.strip(" \t")
    if not item:
        return {}
    seps = "\x1f" if "\x1f" in item else SEPARATORS
    values = [item]
    while len(values) < len(names):
        last = values[-1]
        cut = next((i for i, c in enumerate(last) if c in seps), -1)
        if cut < 0:
            values.append("")
            continue
        values[-1] = last[:cut].rstrip(" \t")
        values.append(last[cut + 1 :].lstrip(" \t"))
    return dict(zip(names, values, strict=True))


# --------------------------------------------------------------------------- the job ad


def split_args_v2(raw: str) -> list[str]:
    """Split a V2 (new-syntax) ``Arguments``/``Environment`` attribute value.

    Whitespace separates words; single quotes group (whitespace included); inside single
    quotes ``''`` is a literal single quote.  Double quotes are ordinary characters.
    """
    words: list[str] = []
    cur: list[str] = []
    have = False
    i, n = 0, len(raw)
    while i < n:
        c = raw[i]
        if c == "'":
            have = True
            i += 1
            while i < n:
                if raw[i] == "'":
                    if i + 1 < n and raw[i + 1] == "'":
                        cur.append("'")
                        i += 2
                        continue
                    break
                cur.append(raw[i])
                i += 1
            i += 1  # closing quote
        elif c.isspace():
            if have:
                words.append("".join(cur))
                cur, have = [], False
            i += 1
        else:
            cur.append(c)
            have = True
            i += 1
    if have:
        words.append("".join(cur))
    return words


def size_in(value: str, shift: int) -> int | None:
    """A request with an optional unit in units of 2**shift bytes (no unit: those units),
    rounded up as condor_submit does; None when it is an expression, not a size."""
    match = SIZE.fullmatch(value)
    if not match:
        return None
    unit = UNIT_SHIFT[match.group(2).upper()]
    number = float(match.group(1))
    return math.ceil(number if unit is None else number * 2.0 ** (unit - shift))


def _getenv(names: str) -> dict[str, str]:
    """The submitter's variables ``getenv`` copies: true (all) or names, ``*`` patterns and
    ``-name`` exclusions (condor_submit's rules; for a DAG node the submitter is DAGMan)."""
    words = [w for w in re.split(r"[,\s]+", names.strip()) if w]
    if len(words) == 1 and words[0].lower() in ("true", "yes", "t", "y", "1"):
        return dict(os.environ)
    if len(words) == 1 and words[0].lower() in ("false", "no", "f", "n", "0"):
        return {}
    keep = [w for w in words if not w.startswith("-")]
    drop = [w[1:] for w in words if w.startswith("-")]
    return {
        key: value
        for key, value in os.environ.items()
        if any(fnmatch.fnmatchcase(key, w) for w in keep)
        and not any(fnmatch.fnmatchcase(key, w) for w in drop)
    }


def _environment(raw: str, getenv: str) -> str:
    """condor_submit's canonical V2 ``Environment``: ``getenv``'s variables, then the
    ``environment``'s (which win), sorted by name."""
    if raw.startswith('"') and raw.endswith('"') and len(raw) > 1:
        items = split_args_v2(raw[1:-1].replace('""', '"'))
    else:
        items = [item for item in raw.split(";") if item.strip()]
    env = {**_getenv(getenv), **dict(item.partition("=")[::2] for item in items)}
    words = []
    for key in sorted(env):
        word = f"{key}={env[key]}"
        if any(c.isspace() or c == "'" for c in word):
            word = "'" + word.replace("'", "''") + "'"
        words.append(word)
    return " ".join(words)


def _value(kind: Any, raw: str, classad2: Any) -> Any:
    if kind == "file":
        return raw
    if kind == "upper":
        return raw.upper()
    if kind == "bool":
        return raw.strip().lower() in ("true", "yes", "1", "t", "y")
    if isinstance(kind, int):
        size = size_in(raw, kind)
        return size if size is not None else classad2.ExprTree(raw)
    return int(raw) if raw.strip().isdigit() else classad2.ExprTree(raw)


def job_ad(submit: Any, proc: int, cwd: Path) -> Any:
    """The job ClassAd of job ``proc`` of ``submit`` (its queue item already set as macros)."""
    classad2 = bindings.classad()

    for key in ("Process", "ProcId"):
        submit[key] = str(proc)
    ad = classad2.ClassAd()
    ad["ProcId"] = proc
    iwd = Path(expand(submit, "initialdir") or expand(submit, "iwd") or cwd)
    iwd = iwd if iwd.is_absolute() else cwd / iwd
    ad["Iwd"] = os.path.normpath(iwd)
    exe = expand(submit, "executable")
    if exe:
        ad["Cmd"] = exe if os.path.isabs(exe) else os.path.normpath(iwd / exe)
    args = expand(submit, "arguments")
    if args and args.startswith('"') and args.endswith('"') and len(args) > 1:
        ad["Arguments"] = args[1:-1].replace('""', '"')
    elif args and args.split():
        ad["Args"] = " ".join(args.split())  # V1: words split on whitespace, joined by one space
    env, getenv = expand(submit, "environment") or "", expand(submit, "getenv") or ""
    if env or getenv:
        ad["Environment"] = _environment(env, getenv)
    for key in ("In", "Out", "Err"):
        ad[key] = "/dev/null"
    log = expand(submit, "log")
    if log:
        ad["UserLog"] = log if os.path.isabs(log) else os.path.normpath(iwd / log)
    for key, (attr, kind) in PLAIN.items():
        raw = expand(submit, key)
        if raw:
            ad[attr] = _value(kind, raw, classad2)
    for key in submit:
        if key.lower().startswith("my."):
            ad[key[3:]] = classad2.ExprTree(expand(submit, key) or "undefined")
    return ad


def node_job_ads(node: Node, retry: int, run: dict[str, str] | None = None) -> list[Any]:
    """The job ClassAds DAGMan would submit for attempt ``retry`` (0-based) of ``node``: one
    per job of its cluster (``run``: see :func:`node_macros`). SubmitError when condor_submit
    would refuse the file or it queues no job."""
    if node.submit_path is None or node.node_dir is None:
        raise SubmitError(f"node {node.name} has no submit file")
    cwd = node.node_dir
    with _cwd(cwd):
        submit = load(node.submit_path, node_macros(node.name, node.vars, retry, run), cwd)
        items = queue_items(submit, cwd)
        ads = []
        for proc, item in enumerate(items):
            for key, value in item.items():
                submit[key] = value
            ads.append(job_ad(submit, proc, cwd))
    if not ads:
        raise SubmitError(f"{node.submit_path}: 'queue {submit.getQArgs()}' queues no job")
    return ads


def node_job_ad(node: Node, retry: int) -> Any:
    """The job ClassAd of a one-job node (see :func:`node_job_ads`); SubmitError for more."""
    ads = node_job_ads(node, retry)
    if len(ads) != 1:
        raise SubmitError(f"{node.submit_path}: queues {len(ads)} jobs, one expected")
    return ads[0]
