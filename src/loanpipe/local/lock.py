"""The local runner's locks: one run per DAG file and per base directory, even across checkouts.

A lock file reads ``local-runner <pid> <host>`` and is held with ``flock``. A ``dagfile.dag.lock``
in any other form is condor_dagman's and is never taken over.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import socket
from pathlib import Path

from loanpipe.local.jobspec import RunnerError


class PidLock:
    """An exclusive ``flock`` on a file naming its owner; refuses clearly when held elsewhere.

    The file reads ``local-runner <pid> <host>``. A file in any other form was written by
    condor_dagman (``dagfile.dag.lock``, which DAGMan does not flock): a pool run of the DAG may
    be active, so it is never taken over or removed. One of ours that can be locked was left by
    a runner that died (the kernel drops a dead process's flock): it is taken over with a note.
    """

    TAG = "local-runner"

    def __init__(self, path: Path, what: str) -> None:
        self.path = path
        self.what = what
        self.fd: int | None = None

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
                owner = self._owner(self.path.read_bytes() if self.path.exists() else b"")
                raise RunnerError(
                    f"another run (pid {owner[1] if owner else '?'}) is using {self.what} "
                    f"(lock file {self.path}); wait for it to finish or stop it"
                ) from None
            # The file may have been unlinked by its previous owner between open and flock.
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if not same:
                os.close(fd)
                continue
            os.lseek(fd, 0, os.SEEK_SET)
            content = os.read(fd, 256)
            owner = self._owner(content)
            if content.strip() and owner is None:
                os.close(fd)
                raise RunnerError(
                    f"{self.path} was written by condor_dagman: a pool run of this DAG may be "
                    "active (make status); if none is, remove the file and run again"
                )
            note = None
            if owner is not None and owner[1] != os.getpid():
                note = f"taking over stale lock {self.path} from pid {owner[1]} ({owner[2]})"
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
            os.write(fd, f"{self.TAG} {os.getpid()} {socket.gethostname()}\n".encode())
            os.fsync(fd)
            self.fd = fd
            return note
        raise RunnerError(f"could not take lock {self.path} (it keeps changing)")

    @classmethod
    def _owner(cls, content: bytes) -> tuple[str, int, str] | None:
        """(tag, pid, host) from a lock file of ours, None for anything else."""
        parts = content.decode(errors="replace").split()
        if len(parts) == 3 and parts[0] == cls.TAG and parts[1].isdigit():
            return parts[0], int(parts[1]), parts[2]
        return None

    def release(self) -> None:
        if self.fd is None:
            return
        with contextlib.suppress(OSError):
            os.unlink(self.path)
        with contextlib.suppress(OSError):
            os.close(self.fd)
        self.fd = None
