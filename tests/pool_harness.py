"""A real HTCondor pool for the pool tests (tests/test_pool.py), and the project driven on it.

Where HTCondor comes from, in this order:
1. ``LOAN_POOL_TESTS=0`` turns the pool tests off (skipped, with that reason).
2. ``PERSONAL_POOL`` (a ``personal-pool`` script) or ``../shared/htcondor/personal-pool`` beside
   the checkout: a throwaway one-machine pool (HTCondor 25.0.13; HTCONDOR_VERSION=24.0.23 picks
   the previous LTS), started once per test session (``personal-pool start`` is idempotent and
   serialises parallel starts with a lock). It needs root: it runs the pool and every job as
   ``POOL_USER`` (default condoruser), because HTCondor refuses jobs owned by root.
   ``POOL_FAST`` (default 1 here) makes it negotiate every second. It is stopped at the end if
   this session started it and no jobs are left in its queue.
3. ``condor_master`` on PATH: the pool this machine belongs to, used as the current user (not
   root). Jobs must then be able to reach the checkout copies under ``$HOME``.
Otherwise every pool test is skipped with the reason.

Each scenario gets its own copy of the checkout, owned by the pool user, outside /tmp (DAGMan
refuses a node log under /tmp): ``~POOL_USER/loan-pool-tests/<session>/<scenario>/``. It is a
copy of the files git would commit now (tracked files, plus untracked ones that are not
ignored, as they are in the working tree), not a ``git clone`` of HEAD: the tests then check the
code being written, uncommitted edits included; on CI (a clean clone) both are the same. The
copy has no .git (the pool user cannot read a root-owned repository), so the stages record no
commit. All scenarios share one venv made from /usr/bin/python3 (the pool user cannot run
root's pyenv), cached across sessions in ``~POOL_USER/.cache/loan-pipeline-tests/venv-<hash of
requirements.txt and the interpreter>``, built under a file lock and marked complete only
after pip finished, so parallel or interrupted sessions never use a half-built venv.
"""

from __future__ import annotations

import hashlib
import json
import os
import pwd
import shlex
import shutil
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from conftest import overlay_venv

REPO = Path(__file__).resolve().parent.parent
SHARED_POOL = REPO.parent / "shared" / "htcondor" / "personal-pool"
BASE_PYTHON = "/usr/bin/python3"
SAMPLE_ROWS = 2000
# Environment passed to the pool user's shell: nothing of the test process (MAKEFLAGS, BASE_DIR,
# VIRTUAL_ENV, ...) leaks into the project's make targets. pip's own settings are kept.
# HTCONDOR_VERSION and POOL_DIR pick the personal pool's runtime: every personal-pool call of
# a session must see the same ones, or it reaches another version's pool.
KEEP_ENV = ("LANG", "LC_ALL", "TZ", "http_proxy", "https_proxy", "no_proxy", "HTCONDOR_VERSION")
KEEP_ENV += ("POOL_DIR",)


def locate() -> tuple[str, str]:
    """('personal', script) | ('existing', '') | ('skip', reason)."""
    if os.environ.get("LOAN_POOL_TESTS") == "0":
        return "skip", "pool tests turned off (LOAN_POOL_TESTS=0)"
    script = Path(os.environ.get("PERSONAL_POOL", SHARED_POOL))
    if script.is_file():
        if os.geteuid() != 0:
            return "skip", f"{script} needs root to start a personal pool"
        if not Path(BASE_PYTHON).is_file():
            return "skip", f"{BASE_PYTHON} (the jobs' base interpreter) is missing"
        return "personal", str(script)
    if shutil.which("condor_master"):
        if os.geteuid() == 0:
            return "skip", "HTCondor is on PATH but root cannot own jobs: run as a user"
        probe = subprocess.run(["condor_q", "-totals"], capture_output=True, text=True)
        if probe.returncode != 0:
            return "skip", f"condor_master is on PATH but no schedd answers: {probe.stderr[:200]}"
        return "existing", ""
    return "skip", f"no HTCondor: no condor_master on PATH and no {SHARED_POOL}"


@dataclass
class Pool:
    mode: str  # personal | existing
    script: str
    user: str
    home: Path
    started: bool = False

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k in KEEP_ENV or k.startswith("PIP_")}
        env.update(
            PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            HOME=str(self.home),
            USER=self.user,
        )
        if self.mode == "existing":
            env["PATH"] = os.environ["PATH"]
            for key in ("CONDOR_CONFIG",):
                if key in os.environ:
                    env[key] = os.environ[key]
        return env

    def sh(self, command: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
        """Run one shell command as the pool user, with the pool's tools on PATH."""
        personal = self.mode == "personal"
        argv = [self.script, "run", command] if personal else ["bash", "-c", command]
        return subprocess.run(
            argv, capture_output=True, text=True, env=self.env(), timeout=timeout, check=False
        )

    def condor(self, command: str) -> str:
        proc = self.sh(command, timeout=120)
        assert proc.returncode == 0, f"{command}: {proc.stdout}\n{proc.stderr}"
        return proc.stdout

    def chown(self, path: Path) -> None:
        if self.mode == "personal":
            subprocess.run(["chown", "-R", f"{self.user}:", str(path)], check=True)


def start_pool(mode: str, script: str) -> Pool:
    if mode == "existing":
        return Pool(mode, script, pwd.getpwuid(os.getuid()).pw_name, Path.home())
    env = dict(os.environ, POOL_FAST=os.environ.get("POOL_FAST", "1"))
    proc = subprocess.run(
        [script, "start"], capture_output=True, text=True, env=env, timeout=300, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(f"personal-pool start failed: {proc.stdout}{proc.stderr}")
    user = os.environ.get("POOL_USER", "condoruser")
    home = Path(pwd.getpwnam(user).pw_dir)
    return Pool(mode, script, user, home, started="already running" not in proc.stdout)


def stop_pool(pool: Pool) -> None:
    """Stop the personal pool if this session started it and nobody has jobs in it."""
    if pool.mode != "personal" or not pool.started or os.environ.get("POOL_KEEP") == "1":
        return
    totals = pool.sh("condor_q -allusers -totals", timeout=60).stdout
    if "Total for all users: 0 jobs" in totals:
        subprocess.run([pool.script, "stop"], capture_output=True, timeout=120, check=False)


def venv_for(pool: Pool) -> Path:
    """The shared venv of the pool scenarios (built once, cached across sessions)."""
    reqs = (REPO / "requirements.txt").read_bytes()
    key = hashlib.sha256(reqs + os.path.realpath(BASE_PYTHON).encode()).hexdigest()[:16]
    cache = pool.home / ".cache" / "loan-pipeline-tests"
    venv = cache / f"venv-{key}"
    staged = cache / f"requirements-{key}.txt"
    cache.mkdir(parents=True, exist_ok=True)
    staged.write_bytes(reqs)
    pool.chown(pool.home / ".cache")
    script = (
        f"test -f {venv}/.complete || {{ rm -rf {venv} && {BASE_PYTHON} -m venv {venv} && "
        f"{venv}/bin/python -m pip install --quiet --disable-pip-version-check "
        f"-r {staged} && touch {venv}/.complete; }}"
    )
    proc = pool.sh(f"flock {cache}/.lock bash -c {shlex.quote(script)}", timeout=1200)
    if proc.returncode != 0:
        raise RuntimeError(f"cannot build {venv}: {proc.stderr[-2000:]}")
    return venv


def tracked_files() -> list[str]:
    out = subprocess.run(
        ["git", "-C", str(REPO), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        capture_output=True,
        check=True,
    ).stdout
    return [name for name in out.decode().split("\0") if name and (REPO / name).is_file()]


@dataclass
class Checkout:
    """One scenario's copy of the project, its base directory, and make as the pool user."""

    pool: Pool
    root: Path
    venv: Path

    @property
    def base(self) -> Path:
        return self.root / "base"

    @property
    def run_dir(self) -> Path:
        """Where DAGMan and the local runner write their records for this base directory."""
        static = (self.root / "dag" / "dagfile.dag").read_text()
        return self.root / "dag" if "INCLUDE paths.dag" in static else self.base / "dags"

    def dag_file(self, suffix: str = "") -> Path:
        return self.run_dir / f"dagfile.dag{suffix}"

    def make(self, target: str, *assignments: str, timeout: float = 900):
        args = " ".join(shlex.quote(a) for a in assignments)
        cmd = (
            f"make -C {self.root} --no-print-directory {target} VENV={self.venv} "
            f"BASE_DIR={self.base} PYTHON={BASE_PYTHON} {args}"
        )
        return self.pool.sh(cmd, timeout=timeout)

    def put_data(self, sample: Path, text: str | None = None) -> None:
        """loan_data.csv into the base directory: the sample, or ``text``."""
        self.base.mkdir(parents=True, exist_ok=True)
        target = self.base / "loan_data.csv"
        if text is None:
            shutil.copyfile(sample, target)
        else:
            target.write_text(text)
        self.pool.chown(self.base)


def new_checkout(pool: Pool, session: Path, name: str, venv: Path) -> Checkout:
    root = session / name
    for rel in tracked_files():
        dest = root / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / rel, dest)
    # The copy's own venv: the shared venv's pinned packages and this copy's src/ (the package
    # installed editable, as make setup would), so that jobs import the code of this copy.
    overlay_venv(root / ".venv", venv, root / "src", python=BASE_PYTHON)
    pool.chown(root)
    return Checkout(pool, root, root / ".venv")


def session_dir(pool: Pool) -> Path:
    stamp = time.strftime("%Y%m%dT%H%M%S")
    path = pool.home / "loan-pool-tests" / f"{stamp}-{uuid.uuid4().hex[:6]}"
    path.mkdir(parents=True)
    pool.chown(pool.home / "loan-pool-tests")
    return path


# --------------------------------------------------------------------------- run facts


def metrics_counts(path: Path) -> dict[str, int | None]:
    """DagStatus and node counts from a metrics file, version 1 (24.0) or 2 alike."""
    data = json.loads(path.read_text())
    v2 = "nodes" in data
    return {
        "DagStatus": data.get("DagStatus"),
        "nodes": data["nodes" if v2 else "jobs"],
        "succeeded": data["nodes_succeeded" if v2 else "jobs_succeeded"],
        "failed": data["nodes_failed" if v2 else "jobs_failed"],
    }


def rescue_done(path: Path) -> set[str]:
    return {
        line.split()[1]
        for line in path.read_text().splitlines()
        if line.startswith("DONE ") and len(line.split()) == 2
    }


# Node outcomes compared between the runners: done, failed, or not run. "Futile" (an ancestor
# failed) counts as not run: DAGMan 24.0.23 marks descendants futile only when the failed node
# has no RETRY (dag.cpp: `!node->DoRetry()`); with this project's RETRY ALL_NODES 2 its final
# status file leaves them NOT_READY (0), while the local runner calls them futile.
POOL_STATES = {5: "done", 6: "failed"}


def pool_outcomes(status_file: Path) -> dict[str, str]:
    """node -> done/failed/not run, from DAGMan's final node status file."""
    import classad2

    out = {}
    for ad in classad2.parseAds(status_file.read_text(), classad2.ParserType.New):
        if ad.get("Type") == "NodeStatus":
            out[str(ad["Node"])] = POOL_STATES.get(int(ad["NodeStatus"]), "not run")
    return out


def local_outcomes(jsonl: Path) -> dict[str, str]:
    """node -> done/failed/not run, from the local runner's last run_end record."""
    ends = [
        json.loads(line)
        for line in jsonl.read_text().splitlines()
        if line.startswith("{") and '"run_end"' in line
    ]
    nodes = ends[-1]["nodes"]
    return {n: s if s in ("done", "failed") else "not run" for n, s in nodes.items()}


def submitted_nodes(nodes_log: Path, since: float) -> list[str]:
    """Node names of the jobs submitted at or after ``since`` (from the shared node log)."""
    from loanpipe.dagman.events import dag_node, read_events

    names = []
    for event in read_events(nodes_log):
        if event["type"] == "SUBMIT" and event["time"] >= since and dag_node(event):
            names.append(dag_node(event))
    return names


def local_attempts(jsonl: Path, node: str) -> int:
    """Attempts of ``node`` the local runner recorded (all runs in the file)."""
    count = 0
    for line in jsonl.read_text().splitlines():
        record = json.loads(line)
        if record.get("node") == node and "event" not in record and "attempt" in record:
            count += 1
    return count
