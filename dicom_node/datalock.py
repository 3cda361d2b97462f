"""One node per data directory: an exclusive lock on ``<data_dir>/knee-node.lock``.

The lock is an ``flock`` on a file that holds the holder's PID, taken when a node starts
(:meth:`dicom_node.node.KneeNode.start`) and released when it stops. The operating system
drops it when the process ends, even after ``kill -9``, so a stale file never blocks a
restart. ``flock`` locks belong to an open file, so two nodes in one process (tests) on one
data directory exclude each other too, while nodes on different directories never do.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import IO

from dicom_node.errors import KneeNodeError

LOCK_NAME = "knee-node.lock"


class DataDirLockedError(KneeNodeError):
    """Another running node holds the data directory."""


class DataDirLock:
    """The exclusive lock of one data directory.

    Parameters
    ----------
    data_dir
        The node's ``storage.data_dir`` (created if missing).
    """

    def __init__(self, data_dir: Path) -> None:
        self.path = Path(data_dir).resolve() / LOCK_NAME
        self._file: IO[str] | None = None

    @property
    def held(self) -> bool:
        """True while this object holds the lock."""
        return self._file is not None

    def acquire(self) -> DataDirLock:
        """Take the lock or raise :class:`DataDirLockedError` naming the holder's PID."""
        if self._file is not None:
            return self
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = self.path.open("a+", encoding="ascii")
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "unknown"
            fh.close()
            raise DataDirLockedError(
                f"data directory {self.path.parent} is in use by another knee-node "
                f"(PID {holder}, lock file {self.path}); stop that node first, or give this "
                "one its own storage.data_dir"
            ) from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"{os.getpid()}\n")
        fh.flush()
        self._file = fh
        return self

    def release(self) -> None:
        """Release the lock (nothing if not held). The file stays; its content is stale."""
        if self._file is None:
            return
        try:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
        finally:
            self._file.close()
            self._file = None

    def __enter__(self) -> DataDirLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
