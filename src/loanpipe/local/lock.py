"""One run per base directory and per DAG file, whatever runs it (make local or make submit).

A lock file names its holder in one line and is held with ``flock`` while its process lives:

    local-runner <pid> <host> [<dag>]         a make local run (its process holds the flock)
    condor-dagman <cluster> <host> <dag>      a DAGMan job submitted by make submit

make submit takes the base directory's lock like make local, then hands it to the DAGMan job it
submitted (``hand_over``): the file stays, unflocked, for the DAGMan's whole life. A later run
finds it stale when that job has ended (its ``.dagman.log`` says so, or the schedd no longer
has it) and takes it over with a note; while the job lives, or when neither can tell, the later
run is refused in one line naming the holder. A ``dagfile.dag.lock`` in any other form is
condor_dagman's own and is never taken over. A lock is only ever removed by the run holding it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import socket
from pathlib import Path

from loanpipe import hints
from loanpipe.local.jobspec import RunnerError

LOCAL_TAG = "local-runner"
POOL_TAG = "condor-dagman"


def dagman_ended(cluster: int, dag: Path) -> bool | None:
    """Whether DAGMan job ``cluster`` of ``dag`` has ended: its event log, else the schedd
    (None when neither can tell)."""
    from loanpipe.dagman import state as ds

    try:
        job = ds.DagmanLog(Path(f"{dag}.dagman.log")).update()
    except Exception:  # an unreadable log says nothing either way
        job = None
    if job is not None and job.cluster == cluster and job.done:
        return True
    queued = ds.in_queue(cluster)
    return None if queued is None else not queued


class Holder:
    """Who a lock file names: a make local run or a DAGMan job (None for anything else)."""

    def __init__(self, tag: str, ident: int, host: str, dag: str) -> None:
        self.tag, self.ident, self.host, self.dag = tag, ident, host, dag

    @classmethod
    def parse(cls, content: bytes) -> Holder | None:
        parts = content.decode(errors="replace").split()
        if len(parts) in (3, 4) and parts[0] in (LOCAL_TAG, POOL_TAG) and parts[1].isdigit():
            return cls(parts[0], int(parts[1]), parts[2], parts[3] if len(parts) == 4 else "")
        return None

    def describe(self) -> str:
        if self.tag == POOL_TAG:
            return f"DAGMan job {self.ident} of {self.dag} (submitted from {self.host})"
        dag = f", DAG {self.dag}" if self.dag else ""
        return f"`make local` (pid {self.ident} on {self.host}{dag})"

    def follow(self) -> str:
        """The next command for the user of a refused run."""
        if self.tag == POOL_TAG and self.dag:
            dag = Path(self.dag)
            watch = hints.make_command("watch", dag.parent.parent, dag)
            return f"follow it with `{watch}` or remove it with condor_rm {self.ident}"
        return "wait for it to finish or stop it"


class PidLock:
    """An exclusive ``flock`` on a file naming its holder; refuses clearly when held elsewhere."""

    TAG = LOCAL_TAG

    def __init__(self, path: Path, what: str, dag: Path | None = None) -> None:
        self.path = path
        self.what = what
        self.dag = dag  # the DAG of the run taking the lock, named in the file
        self.fd: int | None = None

    def _refuse(self, holder: Holder | None, extra: str = "") -> RunnerError:
        if holder is None:
            return RunnerError(
                f"another run is using {self.what} (lock file {self.path}); wait for it to "
                "finish or stop it"
            )
        return RunnerError(
            f"{self.what} is in use by {holder.describe()}{extra}: {holder.follow()} "
            f"(lock file {self.path})"
        )

    def acquire(self) -> str | None:
        """Take the lock; returns a note when a stale lock was taken over."""
        for _ in range(10):
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                os.close(fd)
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                content = self.path.read_bytes() if self.path.exists() else b""
                raise self._refuse(Holder.parse(content)) from None
            # The file may have been unlinked by its previous owner between open and flock.
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if not same:
                os.close(fd)
                continue
            try:
                note = self._check_holder(fd)
            except RunnerError:
                os.close(fd)
                raise
            self._write(fd, f"{self.TAG} {os.getpid()} {socket.gethostname()}")
            self.fd = fd
            return note
        raise RunnerError(f"could not take lock {self.path} (it keeps changing)")

    def _check_holder(self, fd: int) -> str | None:
        """With the flock held: refuse a live holder; the note for a stale one taken over."""
        os.lseek(fd, 0, os.SEEK_SET)
        content = os.read(fd, 4096)
        holder = Holder.parse(content)
        if content.strip() and holder is None:
            raise RunnerError(
                f"{self.path} was written by condor_dagman: a pool run of this DAG may be "
                "active (make status); if none is, remove the file and run again"
            )
        if holder is None or (holder.tag == LOCAL_TAG and holder.ident == os.getpid()):
            return None
        if holder.tag == LOCAL_TAG:  # its process died: the kernel dropped its flock
            return f"taking over stale lock {self.path} from pid {holder.ident} ({holder.host})"
        ended = dagman_ended(holder.ident, Path(holder.dag))
        if ended is None:
            raise self._refuse(holder, " (its log shows no end yet)")
        if not ended:
            raise self._refuse(holder)
        return f"taking over {self.path} from DAGMan job {holder.ident}: it has ended"

    def _write(self, fd: int, line: str) -> None:
        if self.dag is not None:
            line += f" {self.dag}"
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, f"{line}\n".encode())
        os.fsync(fd)

    def hand_over(self, cluster: int) -> None:
        """Leave the lock to DAGMan job ``cluster`` for its whole life: the file names it and
        stays; our flock is dropped."""
        if self.fd is None:
            return
        self._write(self.fd, f"{POOL_TAG} {cluster} {socket.gethostname()}")
        os.close(self.fd)
        self.fd = None

    def release(self) -> None:
        if self.fd is None:
            return
        with contextlib.suppress(OSError):
            os.unlink(self.path)
        with contextlib.suppress(OSError):
            os.close(self.fd)
        self.fd = None
