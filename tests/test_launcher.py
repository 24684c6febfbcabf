"""loanpipe.local.launcher: jobs forked from a warm interpreter behave like ``python script.py``.

Each test builds a small DAG in tmp_path whose nodes run Python scripts with this interpreter
(``executable = <python>``, ``arguments = <script> <args>``), runs the local runner as a subprocess,
once forking (the default) and, where the point is equivalence, once with ``--exec``, and compares
what the jobs saw and what the runner recorded.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

from conftest import RUNNER, SAFETY_TIMEOUT
from conftest import run_runner as run

from loanpipe.local import launcher

REPO = Path(__file__).resolve().parent.parent
LAUNCHER = launcher.LAUNCHER  # the warm server runs this file


SUBMIT = """\
executable = {python}
arguments = "$(script) $(args)"
initialdir = {iwd}
output = out/$(JOB).$(RETRY).out
error = err/$(JOB).$(RETRY).err
log = log/$(JOB).log
environment = "PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 OMP_NUM_THREADS=1 MY_VAR='a b'"
request_memory = 64MB
request_cpus = 1
queue
"""
# What a job sees of its process: argv, cwd, environment, __main__, sys.path[0], stdio.
SHOW = """\
import json, os, sys
print("to stdout")
print("to stderr", file=sys.stderr)
env = {k: v for k, v in os.environ.items() if k in ("MY_VAR", "OMP_NUM_THREADS", "PATH")}
print(json.dumps({"argv": sys.argv, "cwd": os.getcwd(), "env": env, "name": __name__,
                  "path0": sys.path[0], "file": __file__, "pgid": os.getpgid(0) == os.getpid(),
                  "stdin": sys.stdin.read(), "buffering": sys.stdout.write_through}))
"""
EXITS = {
    "exit3.py": "import sys\nsys.exit(3)\n",
    "exitmsg.py": "raise SystemExit('bad input here')\n",
    "boom.py": "def main():\n    raise ValueError('boom here')\nmain()\n",
    "ok_atexit.py": "import atexit\natexit.register(lambda: print('atexit ran'))\n",
    "kill_self.py": "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n",
}
# No state leaks: the first job changes a preloaded module and the environment; the second
# (its child) must not see it.
LEAK_WRITE = "import os, numpy\nnumpy.leaked = 1\nos.environ['LEAKED'] = '1'\n"
LEAK_READ = """\
import os, sys, numpy
sys.exit(4 if hasattr(numpy, "leaked") or "LEAKED" in os.environ else 0)
"""
FLAKY = """\
import sys
from pathlib import Path
counter = Path("counter")
n = int(counter.read_text()) if counter.exists() else 0
counter.write_text(str(n + 1))
sys.exit(0 if n >= 1 else 1)
"""
BIG = "data = bytearray(300 * 2**20)\nfor i in range(0, len(data), 4096):\n    data[i] = 1\n"


def make_dag(
    tmp_path: Path, scripts: dict[str, str], nodes: dict[str, str], extra: str = ""
) -> Path:
    """A DAG with one node per entry of ``nodes`` (name -> "script args")."""
    for d in ("work/out", "work/err", "work/log", "scripts"):
        (tmp_path / d).mkdir(parents=True, exist_ok=True)
    for name, text in scripts.items():
        (tmp_path / "scripts" / name).write_text(text)
    (tmp_path / "node.sub").write_text(SUBMIT.format(python=sys.executable, iwd=tmp_path / "work"))
    lines = []
    for name, command in nodes.items():
        script, _, args = command.partition(" ")
        lines.append(f"JOB {name} node.sub")
        lines.append(f'VARS {name} script="{tmp_path / "scripts" / script}" args="{args}"')
    dag = tmp_path / "test.dag"
    dag.write_text("\n".join(lines) + "\n" + textwrap.dedent(extra))
    return dag


def records(dag: Path) -> list[dict[str, Any]]:
    lines = Path(f"{dag}.local.jsonl").read_text().splitlines()
    recs = [json.loads(line) for line in lines]
    start = max(i for i, r in enumerate(recs) if r.get("event") == "run_start")
    return recs[start:]


def forked(dag: Path) -> dict[str, bool]:
    """node -> whether its (last) job was forked from a warm interpreter."""
    return {
        r["node"]: r["cmd"][1:] == [str(LAUNCHER), "--serve"]
        for r in records(dag)
        if r.get("event") == "job_start"
    }


def attempts(dag: Path) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for r in records(dag):
        if "event" not in r:
            out.setdefault(r["node"], []).append(r)
    return out


def test_forked_job_sees_what_an_execd_job_sees(tmp_path: Path) -> None:
    dag = make_dag(tmp_path, {"show.py": SHOW}, {"show": "show.py --flag 'two words' x"})
    seen = {}
    for mode in ((), ("--exec",)):
        result = run(dag, "--fresh", *mode)
        assert result.returncode == 0, result.stderr
        assert forked(dag) == {"show": not mode}
        out = (tmp_path / "work/out/show.0.out").read_text().splitlines()
        err = (tmp_path / "work/err/show.0.err").read_text()
        assert out[0] == "to stdout" and err == "to stderr\n"
        seen[bool(mode)] = json.loads(out[1])
    assert seen[False] == seen[True]
    job = seen[False]
    script = str(tmp_path / "scripts/show.py")
    assert job["argv"] == [script, "--flag", "two words", "x"]
    assert job["cwd"] == str(tmp_path / "work") and job["name"] == "__main__"
    assert job["path0"] == str(tmp_path / "scripts") and job["file"] == script
    assert job["env"] == {"MY_VAR": "a b", "OMP_NUM_THREADS": "1"}  # no PATH: the ad's only
    assert job["pgid"] is True and job["stdin"] == "" and job["buffering"] is True


def test_exit_codes_tracebacks_atexit_and_signals_as_the_interpreter_gives_them(
    tmp_path: Path,
) -> None:
    nodes = {name.removesuffix(".py"): name for name in EXITS}
    dag = make_dag(tmp_path, EXITS, nodes)
    result = run(dag)
    assert result.returncode == 1  # nodes failed
    assert all(forked(dag).values())
    last = {name: recs[-1] for name, recs in attempts(dag).items()}
    assert last["exit3"]["exit_code"] == 3
    assert last["exitmsg"]["exit_code"] == 1
    assert last["boom"]["exit_code"] == 1
    assert last["ok_atexit"]["exit_code"] == 0
    assert last["kill_self"]["signal"] == signal.SIGKILL
    err = tmp_path / "work/err"
    assert (err / "exitmsg.0.err").read_text() == "bad input here\n"
    boom = (err / "boom.0.err").read_text()
    assert boom.startswith("Traceback") and "ValueError: boom here" in boom
    assert (tmp_path / "work/out/ok_atexit.0.out").read_text() == "atexit ran\n"


def test_retries_fresh_state_per_job_and_peak_memory(tmp_path: Path) -> None:
    scripts = {"flaky.py": FLAKY, "write.py": LEAK_WRITE, "read.py": LEAK_READ, "big.py": BIG}
    nodes = {"flaky": "flaky.py", "write": "write.py", "read": "read.py", "big": "big.py"}
    dag = make_dag(tmp_path, scripts, nodes, "RETRY flaky 1\nPARENT write CHILD read\n")
    result = run(dag)
    assert result.returncode == 0, result.stdout + result.stderr
    assert all(forked(dag).values())
    runs = attempts(dag)
    assert [r["exit_code"] for r in runs["flaky"]] == [1, 0]
    assert runs["read"][-1]["exit_code"] == 0
    assert runs["big"][-1]["peak_rss_mib"] > 300
    assert runs["read"][-1]["peak_rss_mib"] < 300


def test_interrupt_kills_forked_jobs_and_stops_the_warm_interpreter(tmp_path: Path) -> None:
    sleeper = "import os, time\nprint(os.getpid(), flush=True)\ntime.sleep(300)\n"
    dag = make_dag(tmp_path, {"sleep.py": sleeper}, {"a": "sleep.py", "b": "sleep.py"})
    proc = subprocess.Popen(
        [*RUNNER, "--dag", str(dag)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "CONDOR_CONFIG": "/dev/null"},
    )
    out = tmp_path / "work/out"
    deadline = time.time() + SAFETY_TIMEOUT
    while time.time() < deadline and not all(
        (out / f"{n}.0.out").is_file() and (out / f"{n}.0.out").read_text() for n in "ab"
    ):
        time.sleep(0.1)
    pids = [int((out / f"{n}.0.out").read_text()) for n in "ab"]
    servers = [  # this runner's warm interpreters (other tests may run their own meanwhile)
        int(p)
        for p in os.listdir("/proc")
        if p.isdigit() and f"{LAUNCHER}" in cmdline(int(p)) and parent(int(p)) == proc.pid
    ]
    assert servers
    proc.send_signal(signal.SIGINT)
    stdout, _ = proc.communicate(timeout=SAFETY_TIMEOUT)
    assert proc.returncode == 128 + signal.SIGINT, stdout
    for pid in pids + servers:
        assert not alive(pid), pid
    assert {r["status"] for r in attempts(dag).values() for r in r} == {"interrupted"}


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def parent(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def alive(pid: int) -> bool:
    """True while the process exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_only_plain_python_scripts_are_forked(tmp_path: Path) -> None:
    script = tmp_path / "s.py"
    script.write_text("")
    py = sys.executable
    assert launcher.script_job([py, str(script), "--x"])
    assert not launcher.script_job([py, "-c", "print(1)"])  # interpreter options
    assert not launcher.script_job([py, "-m", "json.tool"])
    assert not launcher.script_job([py, str(tmp_path / "missing.py")])
    assert not launcher.script_job(["/bin/sh", str(script)])  # not a Python interpreter
    assert not launcher.script_job(["python3", str(script)])  # relative: resolved by exec only


def test_exit_code_follows_the_interpreter() -> None:
    assert launcher.exit_code(SystemExit()) == 0
    assert launcher.exit_code(SystemExit(None)) == 0
    assert launcher.exit_code(SystemExit(2)) == 2
    assert launcher.exit_code(SystemExit(258)) == 2
    assert launcher.exit_code(SystemExit(True)) == 1
    assert launcher.exit_code(SystemExit("message")) == 1


def test_worker_replies_and_reports_a_crash() -> None:
    echo = (
        "import json, sys\n"
        "for line in sys.stdin:\n"
        "    print(json.dumps({'got': json.loads(line)}), flush=True)\n"
    )
    worker = launcher.Worker([sys.executable, "-c", echo], dict(os.environ))
    assert worker.request({"a": 1}) == {"got": {"a": 1}}
    assert worker.request({"b": 2}) == {"got": {"b": 2}}  # the same process, reused
    worker.close()
    crash = "import sys\nprint('it broke', file=sys.stderr)\nsys.exit(3)\n"
    worker = launcher.Worker([sys.executable, "-c", crash], dict(os.environ))
    assert worker.request({"a": 1}) is None and worker.broken
    assert worker.stderr_tail() == "it broke"


def test_a_server_with_threads_does_not_fork() -> None:
    import threading

    before = launcher.threads()
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait)
    thread.start()
    try:
        assert launcher.threads() == before + 1
        devnull = {"stdin": "/dev/null", "stdout": "/dev/null", "stderr": "/dev/null"}
        reply = launcher.fork_job(devnull)  # refused before anything is forked
        assert reply["ok"] is False and "threads" in reply["error"]
    finally:
        stop.set()
        thread.join()


# A PRE or POST script that shows what it saw: argv, cwd, stdio, an environment variable, and
# whether it was forked (the warm interpreter has imported ctypes; `python script.py` has not).
SCRIPT_SHOW = """\
import json, os, sys
from pathlib import Path
warm = "ctypes" in sys.modules
seen = {"argv": sys.argv, "cwd": os.getcwd(), "stdin": sys.stdin.read(), "name": __name__,
        "env": os.environ.get("SCRIPT_VAR"), "pgid": os.getpgid(0) == os.getpid()}
print("to the void")
log = Path(sys.argv[1])
with log.open("a") as fh:
    fh.write(json.dumps({"warm": warm, **seen}) + "\\n")
sys.exit(int(sys.argv[-1]))
"""


def test_pre_and_post_scripts_fork_warm_and_behave_as_execd(tmp_path: Path) -> None:
    """`<python> script.py` PRE/POST scripts fork from a warm interpreter of their own: the same
    argv ($JOB, $RETURN), cwd (the DAG's directory), no stdio, DAGMan's environment, exit codes
    (PRE_SKIP, a POST that turns a job's failure into success) as when exec'd."""
    dag = make_dag(
        tmp_path,
        {"exit3.py": EXITS["exit3.py"], "show.py": SCRIPT_SHOW},
        {"a": "exit3.py", "b": "exit3.py"},
    )
    show = tmp_path / "scripts/show.py"
    seen: dict[bool, list[dict[str, Any]]] = {}
    for mode in ((), ("--exec",)):
        log = tmp_path / "scripts.jsonl"
        with dag.open("a") as fh:
            fh.write(
                f"SCRIPT PRE a {sys.executable} {show} {log} $JOB 0\n"
                f"SCRIPT POST a {sys.executable} {show} {log} $JOB $RETURN 0\n"
                f"SCRIPT PRE b {sys.executable} {show} {log} $JOB 97\n"
                "PRE_SKIP b 97\n"
            )
        result = subprocess.run(
            [*RUNNER, "--dag", str(dag), "--fresh", *mode],
            capture_output=True,
            text=True,
            env={**os.environ, "CONDOR_CONFIG": "/dev/null", "SCRIPT_VAR": "dagman's"},
            timeout=SAFETY_TIMEOUT,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr  # POST exit 0: a succeeds
        lines = [json.loads(line) for line in log.read_text().splitlines()]
        log.unlink()
        assert {line["warm"] for line in lines} == {not mode}
        shown = [{k: v for k, v in line.items() if k != "warm"} for line in lines]
        seen[bool(mode)] = sorted(shown, key=json.dumps)  # a's and b's PRE run side by side
        last = {name: recs[-1] for name, recs in attempts(dag).items()}
        assert last["a"]["exit_code"] == 0 and last["a"]["job_exit_code"] == 3
        assert last["b"]["status"] == "pre_skipped"
        dag.write_text(dag.read_text().split("SCRIPT PRE a")[0])
    assert seen[False] == seen[True]
    by_node = {(s["argv"][2], len(s["argv"])): s for s in seen[False]}
    post = by_node[("a", 5)]
    assert post["argv"][3] == "3"  # $RETURN: the job's exit code
    assert post["cwd"] == str(tmp_path) and post["stdin"] == "" and post["name"] == "__main__"
    assert post["env"] == "dagman's" and post["pgid"] is True
    assert ("b", 4) in by_node and len(seen[False]) == 3


CHANGED_SOURCE = """\
import importlib, sys
from pathlib import Path
from loanpipe.local import launcher
import mod_x  # from sys.argv[1], on PYTHONPATH
launcher.note_sources()
launcher.drop_changed_sources()
assert sys.modules["mod_x"] is mod_x and "loanpipe.local.launcher" in sys.modules  # unchanged
Path(sys.argv[1], "mod_x.py").write_text("VALUE = 2\\n")
launcher.drop_changed_sources()
assert "mod_x" not in sys.modules and "loanpipe.local.launcher" not in sys.modules
import mod_x as again
print(again.VALUE)
"""


def test_a_forked_process_reimports_preloaded_modules_whose_files_changed(tmp_path: Path) -> None:
    """A module the server preloaded from outside the installation (the project's, editable)
    whose file changed since is imported again in the fork, with its siblings: new code runs."""
    (tmp_path / "mod_x.py").write_text("VALUE = 1\n")
    result = subprocess.run(
        [sys.executable, "-c", CHANGED_SOURCE, str(tmp_path)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "PYTHONPATH": str(tmp_path)},
        timeout=SAFETY_TIMEOUT,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "2\n"


def test_a_job_forks_once_the_packages_its_code_imports_are_loaded(tmp_path: Path) -> None:
    """The server is still importing when the first job asks; a job whose code imports
    scikit-learn's trees (here only inside a function) is forked once they are loaded, instead
    of importing them a second time itself; a job that needs none of it starts at once."""
    needs = (
        "import sys\n"
        "loaded = 'sklearn.tree' in sys.modules\n"
        "def later():\n    import sklearn.tree\n"
        "sys.exit(0 if loaded else 5)\n"
    )
    plain = "import sys\nsys.exit(6 if 'sklearn.base' in sys.modules else 0)\n"
    dag = make_dag(tmp_path, {"needs.py": needs, "plain.py": plain}, {"first": "plain.py"})
    with dag.open("a") as fh:
        fh.write(f"JOB second {tmp_path / 'node.sub'}\n")
        fh.write(f'VARS second script="{tmp_path / "scripts/needs.py"}" args=""\n')
    result = run(dag)
    assert result.returncode == 0, result.stdout + result.stderr
    assert forked(dag) == {"first": True, "second": True}
    last = {name: recs[-1] for name, recs in attempts(dag).items()}
    assert last["first"]["exit_code"] == 0 and last["second"]["exit_code"] == 0


def test_imported_packages_are_found_through_the_projects_modules(
    tmp_path: Path, monkeypatch: Any
) -> None:
    (tmp_path / "proj").mkdir()
    (tmp_path / "proj/__init__.py").write_text("")
    (tmp_path / "proj/lazy.py").write_text("def f():\n    import sklearn.tree\n")
    script = tmp_path / "job.py"
    script.write_text("import json\nfrom proj import lazy\nfrom os import path\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    names = launcher.imported_names(str(script), {})
    assert {"json", "proj", "proj.lazy", "sklearn.tree", "os", "os.path"} <= names
    assert launcher.source_file("proj.lazy") == str(tmp_path / "proj/lazy.py")
    assert launcher.source_file("json") is None  # the installation's: not followed


# A PRE script that writes how many job servers (``--serve`` without ``--preload``) the runner
# (its parent: the runner is a child subreaper) has started when the script runs. A forked
# script may start before the server's intermediate process (its first parent) has exited.
SERVERS_SEEN = """\
import os, sys, time
from pathlib import Path
while b"--serve" in Path(f"/proc/{os.getppid()}/cmdline").read_bytes():
    time.sleep(0.01)
runner, seen = os.getppid(), 0
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\\0")
    except OSError:
        continue
    if int(stat.rsplit(")", 1)[1].split()[1]) == runner and b"--serve" in argv:
        seen += b"--preload" not in argv
Path(sys.argv[1]).write_text(str(seen))
"""


def test_the_job_server_starts_before_the_first_pre_script(tmp_path: Path) -> None:
    """Its imports (pandas, scikit-learn) are what the first stages wait for: they begin before
    the DAG's first PRE script runs, not after it."""
    dag = make_dag(
        tmp_path, {"exit3.py": EXITS["exit3.py"], "seen.py": SERVERS_SEEN}, {"a": "exit3.py"}
    )
    seen = tmp_path / "seen.txt"
    with dag.open("a") as fh:
        fh.write(f"SCRIPT PRE a {sys.executable} {tmp_path / 'scripts/seen.py'} {seen}\n")
    result = run(dag)
    assert result.returncode == 1, result.stdout + result.stderr  # a's job exits 3
    assert seen.read_text() == "1"
    assert forked(dag) == {"a": True}


def test_the_next_run_starts_the_job_server_from_the_last_runs_record(tmp_path: Path) -> None:
    """A run keeps its first job's interpreter and environment beside the DAG; the next run
    starts that server first thing, before it has expanded any submit file."""
    from loanpipe.dagman import parse_dag
    from loanpipe.local.runner import Runner

    dag = make_dag(tmp_path, {"ok.py": "print('ok')\n"}, {"a": "ok.py"})
    assert run(dag).returncode == 0
    kept = json.loads(Path(f"{dag}.local.warm.json").read_text())
    assert kept["python"] == sys.executable
    assert kept["env"]["MY_VAR"] == "a b" and kept["env"]["OMP_NUM_THREADS"] == "1"
    runner = Runner(parse_dag(dag), 1)
    try:
        runner.warm_from_last_run()
        (key, server), *others = runner.launcher.servers.items()
        assert not others and key == (sys.executable, "jobs", tuple(sorted(kept["env"].items())))
        assert server.proc.poll() is None and server.cmdline[1:] == [str(LAUNCHER), "--serve"]
    finally:
        runner.launcher.close()


def test_a_wrong_guess_of_the_job_server_is_stopped_before_the_first_pre_script(
    tmp_path: Path,
) -> None:
    """When the submit files changed since the last run, the server started on its record is
    stopped once the first job is expanded: one job server imports, not two."""
    dag = make_dag(tmp_path, {"ok.py": "print('ok')\n", "seen.py": SERVERS_SEEN}, {"a": "ok.py"})
    seen = tmp_path / "seen.txt"
    with dag.open("a") as fh:
        fh.write(f"SCRIPT PRE a {sys.executable} {tmp_path / 'scripts/seen.py'} {seen}\n")
    record = Path(f"{dag}.local.warm.json")
    record.write_text(json.dumps({"python": sys.executable, "env": {"MY_VAR": "old"}}))
    assert run(dag).returncode == 0
    assert seen.read_text() == "1"
    assert forked(dag) == {"a": True}
    assert json.loads(record.read_text())["env"]["MY_VAR"] == "a b"  # the next run's guess


def test_a_job_waits_only_for_the_preloaded_modules_it_imports() -> None:
    """In load order, through the last module it imports (or a module inside one)."""
    pending = list(launcher.PRELOAD)
    trainer = {"json", "sklearn.tree", "sklearn.tree.DecisionTreeClassifier", "pandas"}
    assert pending[: launcher.still_needed(pending, trainer)][-1] == "sklearn.tree"
    assert "sklearn.ensemble" in pending[launcher.still_needed(pending, trainer) :]
    assert launcher.still_needed(pending, {"json", "os.path"}) == 0
    assert pending[launcher.still_needed(pending, {"numpy.linalg"}) - 1] == "numpy"
    search = {"sklearn.ensemble.HistGradientBoostingClassifier"}
    assert launcher.still_needed(pending, search) == len(pending)
    assert launcher.still_needed(pending[-1:], {"sklearn"}) == 0  # a parent package only
