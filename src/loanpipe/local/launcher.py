#!/usr/bin/env python3
"""Start node jobs from a warm interpreter: fork instead of exec (used by loanpipe.local.attempts).

Every stage pays 1 to 2 s importing pandas and scikit-learn before it does any work. The local
runner starts, per job environment, one server process (``-m loanpipe.local.launcher --serve``) that
imports those libraries once (PRELOAD); each job that is ``<that python> script.py args`` is then
a fork of it that behaves like ``python script.py args``:

- one process per job, in its own session (the runner kills its process group), a child of the
  runner (the runner is a child subreaper, the server double-forks), so the runner reaps it with
  ``os.wait4`` and reads its exit status and resource usage (peak RSS) as for an exec'd job;
- ``sys.argv``, ``__main__`` (``runpy.run_path``), ``sys.path[0]`` = the script's directory,
  cwd = Iwd, the environment = the job ad's (the server is started with exactly that
  environment: variables read at interpreter or library start, PYTHON* or OMP_NUM_THREADS, are
  the job's), stdin/stdout/stderr = the job's In/Out/Err files, the exit code from SystemExit as
  the interpreter computes it (an uncaught exception prints its traceback and exits 1), atexit
  handlers run;
- only modules are preloaded, for jobs never the project's own (its scripts/ directory is not on
  the server's path), and no data: each job gets a fresh copy of the server's memory, so nothing one
  job does reaches another. The random module and numpy's global generator are reseeded from the
  OS as a new interpreter would be.

PRE and POST scripts that are ``<python> script.py args`` are forked the same way, from a server of
their own (the DAGMan process's environment, not a job's) that preloads SCRIPT_PRELOAD: what the
project's scripts (``scripts/fingerprint.py``, every node's) import, a few of the project's own
modules among them. A preloaded module whose file lies outside the interpreter's installation (the
project's, installed editable) is hashed when loaded; a forked process whose such files changed
since drops them all and imports them again, as a new interpreter would.

Anything else (another program, interpreter options, a server that cannot start or has more than
one thread) is exec'd as before: ``Launcher.spawn`` returns None and the caller uses Popen.

Peak RSS of a forked job includes the pages it shares with the server (the preloaded libraries,
about 150 MiB), as a script importing them would; ``floor_mib`` in the reply is the server's RSS
at fork time.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import re
import select
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

# The libraries the stages import, in the order the DAG needs them, so that a job asking early
# gets the fork with what is already loaded (the server answers between two imports).
PRELOAD = (
    "pyarrow",
    "pyarrow.csv",
    "pyarrow.compute",
    "numpy",
    "joblib",
    "pandas",
    # scikit-learn's first import is 1.5 s, most of it scipy's: in steps, so that a job asking
    # meanwhile waits a fraction of it
    "scipy.sparse",
    "scipy.special",
    "scipy.linalg",
    "scipy.optimize",
    "scipy.stats",
    "sklearn.base",
    "sklearn.utils",
    "sklearn.compose",
    "sklearn.impute",
    "sklearn.preprocessing",
    "sklearn.pipeline",
    "sklearn.linear_model",
    "sklearn.tree",
    "sklearn.metrics",
    "sklearn.model_selection",
    # the search's gradient-boosting rows (and their refit): 0.1-0.2 s each job saves, last
    # because the eight stages of the default DAG never need it
    "sklearn.ensemble",
)
# What PRE and POST scripts import (scripts/fingerprint.py): the standard library's part, then the
# project's modules that read nothing of the process at import time (loanpipe.stages.common reads
# sys.argv[0], so it is left to the script). Checked for changes before each fork (see above).
SCRIPT_PRELOAD = (
    "argparse",
    "ast",
    "dataclasses",
    "hashlib",
    "json",
    "pathlib",
    "tempfile",
    "traceback",
    "typing",
    "loanpipe.errors",
    "loanpipe.config",
    "loanpipe.pipeline",
    "loanpipe.dagman.parser",
    "loanpipe.fingerprint.core",
    "loanpipe.fingerprint.cli",
)
PRELOADS = {"jobs": PRELOAD, "scripts": SCRIPT_PRELOAD}
PYTHON_NAME = re.compile(r"python(\d+(\.\d+)?)?")
PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
# A server answers between two imports, within a second or so; one that has not answered after
# this long is killed (before anything else runs the job) and the job is exec'd instead.
SERVER_TIMEOUT_S = 300.0
LAUNCHER = Path(__file__).resolve()


def prctl(option: int, value: int) -> bool:
    """Linux prctl(2); False where it is not available."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(option, value, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def script_job(argv: list[str]) -> bool:
    """True for ``<python> script.py [args]``: an interpreter, no options, an existing .py file."""
    if len(argv) < 2 or not os.path.isabs(argv[0]):
        return False
    if not PYTHON_NAME.fullmatch(os.path.basename(argv[0])):
        return False
    script = argv[1]
    return not script.startswith("-") and script.endswith(".py") and os.path.isfile(script)


@dataclass
class Launched:
    """A job forked by a server: its pid (a child of the runner) and the server's RSS then."""

    pid: int
    floor_mib: float
    cmdline: list[str]


class Worker:
    """A helper process that answers one JSON line per JSON line on its stdin, kept for reuse.

    ``request`` returns None (and the worker is dropped) when it died, timed out or answered
    something else; the caller then falls back or reports.
    """

    def __init__(self, argv: list[str], env: dict[str, str], cwd: str | None = None) -> None:
        self.cmdline = argv
        self.errors = tempfile.TemporaryFile()  # noqa: SIM115 - read by stderr_tail, closed by close
        self.proc = subprocess.Popen(  # noqa: S603 - our own helper
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.errors,
            env=env,
            cwd=cwd,
            start_new_session=True,  # Ctrl-C on the terminal reaches the runner only
        )
        self.broken = False
        self.last_stderr = ""

    def request(self, message: dict[str, Any], timeout: float | None = None) -> Any:
        """Send one request and wait for its reply (at most ``timeout`` seconds, if given)."""
        if self.broken or self.proc.poll() is not None:
            self.broken = True
            return None
        assert self.proc.stdin is not None and self.proc.stdout is not None
        try:
            self.proc.stdin.write((json.dumps(message) + "\n").encode())
            self.proc.stdin.flush()
            ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
            line = self.proc.stdout.readline() if ready else b""
            reply = json.loads(line) if line else None
        except (OSError, ValueError):
            reply = None
        if not isinstance(reply, dict):
            self.broken = True
            with contextlib.suppress(OSError):
                self.proc.kill()  # a late fork must not run the job a second time
            self.close()
            return None
        return reply

    def stderr_tail(self) -> str:
        """The last line the worker wrote to stderr."""
        if self.errors.closed:
            return self.last_stderr
        with contextlib.suppress(OSError, ValueError):
            self.errors.seek(0)
            lines = self.errors.read().decode(errors="replace").strip().splitlines()
            return lines[-1] if lines else ""
        return ""

    def close(self, kill: bool = False) -> None:
        with contextlib.suppress(OSError):
            if self.proc.stdin is not None:
                self.proc.stdin.close()
        if kill:
            with contextlib.suppress(OSError):
                self.proc.kill()
        try:
            self.proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        if not self.errors.closed:
            self.last_stderr = self.stderr_tail()
            self.errors.close()


class Launcher:
    """Fork ``python script.py`` jobs from warm servers, one per (interpreter, environment)."""

    def __init__(self, enabled: bool = True) -> None:
        # Orphans (the jobs the servers fork) are reparented to us, so os.wait4 sees them.
        self.enabled = enabled and prctl(PR_SET_CHILD_SUBREAPER, 1)
        self.servers: dict[tuple[str, str, tuple[tuple[str, str], ...]], Worker] = {}
        self.last_error: str | None = None

    @staticmethod
    def key(
        python: str, env: dict[str, str], kind: str
    ) -> tuple[str, str, tuple[tuple[str, str], ...]]:
        """One server per interpreter, kind and environment."""
        return (python, kind, tuple(sorted(env.items())))

    def server(self, python: str, env: dict[str, str], kind: str = "jobs") -> Worker | None:
        key = self.key(python, env, kind)
        srv = self.servers.get(key)
        if srv is None or srv.broken:
            argv = [python, str(LAUNCHER), "--serve"]
            argv += ["--preload", kind] if kind != "jobs" else []
            try:
                # Started with exactly the job's environment (PYTHON*, OMP_NUM_THREADS, ...).
                srv = Worker(argv, env, cwd="/")
            except OSError as exc:
                self.last_error = f"cannot start {python}: {exc.strerror or exc}"
                return None
            self.servers[key] = srv
        return srv

    def warm(self, argv: list[str], env: dict[str, str], kind: str = "jobs") -> None:
        """Start the server for jobs like this one now, so its imports overlap other work."""
        if self.enabled and script_job(argv):
            self.server(argv[0], env, kind)

    def discard(self, python: str, env: dict[str, str], kind: str = "jobs") -> None:
        """Stop the server for jobs like these (started on a guess that proved wrong)."""
        srv = self.servers.pop(self.key(python, env, kind), None)
        if srv is not None:
            srv.close(kill=True)

    def spawn(
        self,
        argv: list[str],
        env: dict[str, str],
        cwd: Path,
        stdin: Path,
        stdout: Path,
        stderr: Path,
        kind: str = "jobs",
    ) -> Launched | None:
        """Fork the job (``kind`` "scripts": a PRE or POST script) from a warm server; None when
        it must be exec'd instead."""
        if not self.enabled or not script_job(argv):
            return None
        srv = self.server(argv[0], env, kind)
        if srv is None:
            return None
        reply = srv.request(
            {
                "argv": argv[1:],
                "cwd": str(cwd),
                "stdin": str(stdin),
                "stdout": str(stdout),
                "stderr": str(stderr),
            },
            timeout=SERVER_TIMEOUT_S,
        )
        if reply is None or not reply.get("ok"):
            self.last_error = (reply or {}).get("error", "the warm interpreter stopped")
            return None
        return Launched(int(reply["pid"]), float(reply["floor_mib"]), srv.cmdline)

    def close(self) -> None:
        # A server holds nothing worth an orderly exit (its jobs are the runner's children, in
        # sessions of their own): killed, it does not spend a second tearing down its imports.
        for srv in self.servers.values():
            srv.close(kill=True)
        self.servers.clear()


# --------------------------------------------------------------------------- server side


def rss_mib() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return 0.0


# Threads that survive a fork safely: jemalloc (pyarrow's allocator) stops and restarts its
# background thread around fork() with its own pthread_atfork handlers.
FORK_SAFE_THREADS = ("jemalloc_bg_thd",)


def threads() -> int:
    """This process's threads, not counting FORK_SAFE_THREADS."""
    count = 0
    try:
        for task in os.listdir("/proc/self/task"):
            with contextlib.suppress(OSError):
                name = Path(f"/proc/self/task/{task}/comm").read_text().strip()
                count += name not in FORK_SAFE_THREADS
    except OSError:
        return 1
    return count


# file -> sha256 of the preloaded modules loaded from outside the interpreter's installation
LOADED_SOURCES: dict[str, str] = {}


def installed(path: str) -> bool:
    prefixes = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    return any(path.startswith(os.path.join(p, "")) for p in prefixes)


def file_sha256(path: str) -> str | None:
    import hashlib

    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return None


def note_sources() -> None:
    """Hash the files of loaded modules that are not part of the installation (editable ones)."""
    for name, module in list(sys.modules.items()):
        path = getattr(module, "__file__", None)
        if name == "__main__" or not isinstance(path, str) or installed(path):
            continue
        if path not in LOADED_SOURCES:
            LOADED_SOURCES[path] = file_sha256(path) or ""


def drop_changed_sources() -> None:
    """In a forked job: when a preloaded module's file changed since it was loaded, forget every
    module loaded from outside the installation, so that the job imports them from disk."""
    if all(file_sha256(path) == digest for path, digest in LOADED_SOURCES.items()):
        return
    paths = set(LOADED_SOURCES)
    for name, module in list(sys.modules.items()):
        if name != "__main__" and getattr(module, "__file__", None) in paths:
            del sys.modules[name]


def open_job_files(req: dict[str, Any]) -> tuple[int, int, int]:
    """Open In, Out, Err as the starter would (Out/Err truncated; one file when they are equal)."""
    fin = os.open(req["stdin"], os.O_RDONLY)
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    fout = os.open(req["stdout"], flags, 0o666)
    ferr = fout if req["stderr"] == req["stdout"] else os.open(req["stderr"], flags, 0o666)
    return fin, fout, ferr


def reopen_stdio() -> None:
    """New sys.stdin/stdout/stderr on fds 0-2, configured as the server's were at startup."""
    for name, fd, mode in (("stdin", 0, "r"), ("stdout", 1, "w"), ("stderr", 2, "w")):
        old = getattr(sys, f"__{name}__")
        new = open(  # noqa: SIM115 - becomes sys.<name>
            fd,
            mode,
            encoding=old.encoding,
            errors=old.errors,
            closefd=False,
            buffering=-1,
        )
        if mode == "w":
            new.reconfigure(line_buffering=old.line_buffering, write_through=old.write_through)
        setattr(sys, name, new)
        setattr(sys, f"__{name}__", new)


def exit_code(exc: SystemExit) -> int:
    """The exit status the interpreter gives ``raise SystemExit(code)``."""
    code = exc.code
    if code is None:
        return 0
    if isinstance(code, int) and not isinstance(code, bool):
        return code & 0xFF
    if isinstance(code, bool):
        return int(code)
    print(code, file=sys.stderr)
    return 1


def run_job(req: dict[str, Any], fds: tuple[int, int, int]) -> int:
    """In the forked job: become ``python script.py args`` and run it. Returns the exit status."""
    import atexit
    import runpy

    for target, fd in enumerate(fds):
        os.dup2(fd, target)
    os.closerange(3, 1 << 16)
    reopen_stdio()
    os.chdir(req["cwd"])
    drop_changed_sources()
    argv = [str(a) for a in req["argv"]]
    script = argv[0]
    sys.argv = argv
    sys.path[0] = os.path.dirname(os.path.realpath(script))  # as the interpreter sets it
    signal.signal(signal.SIGINT, signal.default_int_handler)
    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGPIPE, signal.SIGXFSZ):
        with contextlib.suppress(OSError, ValueError):
            signal.signal(
                sig, signal.SIG_IGN if sig in (signal.SIGPIPE, signal.SIGXFSZ) else signal.SIG_DFL
            )
    if "random" in sys.modules:
        sys.modules["random"].seed()
    if "numpy" in sys.modules:
        sys.modules["numpy"].random.seed()
    try:
        runpy.run_path(script, run_name="__main__")
        code = 0
    except SystemExit as exc:
        code = exit_code(exc)
    except BaseException:  # noqa: BLE001 - the interpreter prints any uncaught exception
        sys.excepthook(*sys.exc_info())
        code = 1
    with contextlib.suppress(BaseException):
        atexit._run_exitfuncs()  # noqa: SLF001 - what interpreter shutdown does
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            code = code or 120  # Python's status when flushing stdout at exit fails
    return code


def fork_job(req: dict[str, Any]) -> dict[str, Any]:
    """Fork an intermediate that forks the job and exits; the job reports its pid once it leads
    its own session, so the runner can always kill its process group."""
    if threads() != 1:
        return {"ok": False, "error": "the warm interpreter has threads: the job is exec'd"}
    try:
        fds = open_job_files(req)
    except OSError as exc:
        return {"ok": False, "error": f"{exc.filename}: {exc.strerror}"}
    floor = round(rss_mib(), 1)
    rd, wr = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    middle = os.fork()
    if middle == 0:
        try:
            os.close(rd)
            if os.fork() == 0:
                os.setsid()
                os.write(wr, f"{os.getpid()}\n".encode())
                os.close(wr)
                code = 1
                try:
                    code = run_job(req, fds)
                finally:
                    os._exit(code)
        finally:
            os._exit(0)
    os.close(wr)
    for fd in set(fds):
        os.close(fd)
    os.waitpid(middle, 0)
    with os.fdopen(rd, "rb") as fh:
        line = fh.readline().strip()
    if not line.isdigit():
        return {"ok": False, "error": "the forked job did not start"}
    return {"ok": True, "pid": int(line), "floor_mib": floor}


def source_file(name: str) -> str | None:
    """The source file of module ``name`` on sys.path outside the installation (the project's,
    editable), found without importing anything; None for any other module."""
    parts = name.split(".")
    for entry in sys.path:
        base = os.path.join(entry or ".", *parts)
        for path in (base + ".py", os.path.join(base, "__init__.py")):
            if os.path.isfile(path):
                return None if installed(os.path.abspath(path)) else path
    return None


def imported_names(script: str, cache: dict[str, set[str]]) -> set[str]:
    """The dotted names ``script`` imports anywhere (``a.b`` and, for ``from a.b import c``,
    ``a.b.c``), directly or through the project's modules it imports (read with ast, not run):
    what its fork should find loaded."""
    import ast

    if script in cache:
        return cache[script]
    names: set[str] = set()
    seen, todo = {script}, [script]
    while todo:
        path = todo.pop()
        try:
            tree = ast.parse(Path(path).read_bytes(), filename=path)
        except (OSError, SyntaxError, ValueError):
            continue
        for node in ast.walk(tree):
            found = []
            if isinstance(node, ast.Import):
                found = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
            for name in found:
                names.add(name)
                source = source_file(name)
                if source is not None and source not in seen:
                    seen.add(source)
                    todo.append(source)
    cache[script] = names
    return names


def still_needed(pending: list[str], names: set[str]) -> int:
    """How many of ``pending`` (in load order) to import before forking a job that imports
    ``names``: through the last one it imports, or a module inside it (the modules before it
    are what it imports in turn). A trainer waits for sklearn.tree, not for the search's
    sklearn.ensemble after it."""
    wanted = [
        i
        for i, module in enumerate(pending)
        if any(n == module or n.startswith(module + ".") for n in names)
    ]
    return max(wanted) + 1 if wanted else 0


def serve(requests: IO[bytes], replies: IO[bytes], preload: tuple[str, ...] = PRELOAD) -> int:
    """Import ``preload`` one module at a time, answering fork requests in between; then serve.

    A request for a script that imports a module still waiting in ``preload`` (sklearn.tree
    for a trainer) is answered once that module is loaded (still_needed): forked earlier, the
    job would import it itself, at the same time as the server, on a machine with a core or two."""
    prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() == 1:
        return 0
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != LAUNCHER.parent]
    pending = list(preload)
    scanned: dict[str, set[str]] = {}

    def load_next() -> None:
        name = pending.pop(0)
        with contextlib.suppress(Exception):
            __import__(name)
        note_sources()

    while True:
        timeout = 0.0 if pending else None
        ready, _, _ = select.select([requests], [], [], timeout)
        if not ready:
            load_next()
            continue
        line = requests.readline()
        if not line:
            return 0
        try:
            req = json.loads(line)
            if pending:
                script = os.path.join(req["cwd"], str(req["argv"][0]))
                for _ in range(still_needed(pending, imported_names(script, scanned))):
                    load_next()
            reply = fork_job(req)
        except (ValueError, KeyError, TypeError, OSError) as exc:
            reply = {"ok": False, "error": f"bad request: {exc}"}
        replies.write((json.dumps(reply) + "\n").encode())
        replies.flush()


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    kind = args[2] if len(args) == 3 and args[1] == "--preload" else "jobs"
    if args not in (["--serve"], ["--serve", "--preload", kind]) or kind not in PRELOADS:
        print(
            f"usage: launcher.py --serve [--preload {'|'.join(PRELOADS)}] "
            "(started by loanpipe.local.runner)",
            file=sys.stderr,
        )
        return 2
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    # The jobs get fresh stdio; the protocol stays on duplicates of the pipes.
    requests = os.fdopen(os.dup(stdin.fileno()), "rb", buffering=0)
    replies = os.fdopen(os.dup(stdout.fileno()), "wb")
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)
    os.close(devnull)
    return serve(requests, replies, PRELOADS[kind])


if __name__ == "__main__":
    sys.exit(main())
