"""Chunked receive straight into the spool folder.

With ``pynetdicom._config.STORE_RECV_CHUNKED_DATASET`` pynetdicom writes each received
C-STORE dataset as a DICOM Part 10 file while its PDUs arrive (file meta from the request
and the presentation context, then the dataset bytes as received), by default in the
system's temporary folder. :func:`install_spool_receive` makes it write that file in the
spool folder of the node's AE instead, as a hidden ``.incoming-<random>.tmp`` with the
spool's file mode, so storing it is one fsync and a rename (:func:`dicom_node.spool.
store_incoming`), never a copy.

* A write that fails (disk full) does not break the association: the partial file is
  deleted at once, the rest of the dataset is discarded, and the C-STORE handler sees
  :attr:`IncomingFile.error` and answers a failure status.
* A file the handler never takes (association aborted mid-dataset) is deleted when the
  connection closes (:func:`discard_unclaimed`), else when pynetdicom drops it, else by
  ``knee-node purge`` (an orphan in the spool).
* An AE that is not the node's (a test SCP, another listener in the process), or a spool
  that cannot be written, gets pynetdicom's own temporary file: the handler then copies,
  as before.

Process-wide (it replaces pynetdicom's ``NamedTemporaryFile``), like
:func:`dicom_node.admission.install_pdu_deadline`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import threading
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pynetdicom import dimse_messages
from pynetdicom.dul import DULServiceProvider

from dicom_node.spool import PRIVATE, FileModes

log = logging.getLogger(__name__)

#: prefix of the files pynetdicom writes in the spool while they arrive
INCOMING_PREFIX = ".incoming-"
_original_ntf = dimse_messages.NamedTemporaryFile


@dataclass
class _State:
    """What the finaliser of an :class:`IncomingFile` needs (never the file itself)."""

    path: Path
    fd: int | None
    claimed: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def close(self) -> None:
        with self.lock:
            fd, self.fd = self.fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)

    def discard(self) -> None:
        """Close and delete the file unless a handler took it."""
        self.close()
        if not self.claimed:
            with contextlib.suppress(OSError):
                self.path.unlink()


class IncomingFile:
    """The file pynetdicom writes a received dataset into, in the spool folder.

    Quacks like the ``NamedTemporaryFile`` pynetdicom uses: ``name``, ``write``,
    ``file.flush``, ``close``. Writes go straight to the descriptor (no user-space buffer),
    so nothing is lost between the last write and :func:`os.fsync`.

    Parameters
    ----------
    folder
        The spool folder (created if missing, with ``modes.folder``).
    modes
        Permissions of the file (set at creation, not by the umask).
    """

    def __init__(self, folder: Path, modes: FileModes = PRIVATE) -> None:
        if not folder.is_dir():
            modes.make_folder(folder)
        path = folder / f"{INCOMING_PREFIX}{secrets.token_hex(8)}.tmp"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, modes.file)
        try:
            os.fchmod(fd, modes.file)
            if modes.gid is not None:
                os.fchown(fd, -1, modes.gid)
        except BaseException:
            os.close(fd)
            path.unlink(missing_ok=True)
            raise
        self._state = _State(path, fd)
        self.name = str(path)
        self.error: OSError | None = None
        self.bytes_written = 0
        self._finalizer = weakref.finalize(self, self._state.discard)

    @property
    def path(self) -> Path:
        """Where the file is (until :meth:`claim`'s caller renames it)."""
        return self._state.path

    @property
    def file(self) -> IncomingFile:
        """pynetdicom calls ``.file.flush()`` after each write."""
        return self

    def fileno(self) -> int:
        """The open descriptor (OSError once closed)."""
        fd = self._state.fd
        if fd is None:
            raise OSError("the incoming file is closed")
        return fd

    def write(self, data: bytes | bytearray | memoryview) -> int:
        """Write all of ``data``; after a failure, discard it (see :attr:`error`)."""
        if self.error is None:
            view = memoryview(data)
            try:
                while view:
                    n = os.write(self.fileno(), view)
                    view = view[n:]
                    self.bytes_written += n
            except OSError as exc:
                self.error = exc
                log.error("cannot write a received dataset to the spool: %s", exc.strerror)
                self._state.claimed = False
                self._state.discard()  # free the space now
        return len(data)

    def flush(self) -> None:
        """Nothing to flush: writes are unbuffered."""

    def close(self) -> None:
        """Close the descriptor (the file stays; pynetdicom deletes its path itself)."""
        self._state.close()

    def claim(self) -> bool:
        """Mark the file as taken by the C-STORE handler (not deleted when the connection
        closes); False if it was already discarded."""
        with self._state.lock:
            if self._state.fd is None and self.error is None:
                return False
            self._state.claimed = True
            return True

    def moved_to(self, path: Path) -> None:
        """Record that the handler renamed the file to ``path``. ``name`` stays the path
        pynetdicom created: it deletes that path after the handler, which must then miss."""
        self._state.path = path

    def discard(self) -> None:
        """Close and delete the file (whoever holds it)."""
        self._state.claimed = False
        self._state.discard()


@dataclass(frozen=True)
class SpoolReceive:
    """Where an AE's chunked receive writes: its spool folder and file modes."""

    folder: Path
    modes: FileModes = PRIVATE


_lock = threading.Lock()
#: path -> the incoming file written there (for the handler to find from dataset_path)
_by_path: weakref.WeakValueDictionary[str, IncomingFile] = weakref.WeakValueDictionary()
#: association -> its incoming files (to discard what an aborted association left)
_by_assoc: weakref.WeakKeyDictionary[Any, list[IncomingFile]] = weakref.WeakKeyDictionary()


def _receiving_assoc() -> Any:
    """The association whose DUL thread is running, or None."""
    thread = threading.current_thread()
    return thread.assoc if isinstance(thread, DULServiceProvider) else None


def _named_temporary_file(*args: Any, **kwargs: Any) -> Any:
    """pynetdicom's ``NamedTemporaryFile``, replaced: an :class:`IncomingFile` in the spool
    of an AE that has a ``spool_receive``; pynetdicom's own temporary file otherwise."""
    assoc = _receiving_assoc()
    target = getattr(getattr(assoc, "ae", None), "spool_receive", None)
    if isinstance(target, SpoolReceive):
        try:
            incoming = IncomingFile(target.folder, target.modes)
        except OSError as exc:  # the handler copies from the system temp file instead
            log.error("cannot receive into the spool (%s); using a temporary file", exc)
        else:
            with _lock:
                _by_path[incoming.name] = incoming
                _by_assoc.setdefault(assoc, []).append(incoming)
            return incoming
    return _original_ntf(*args, **kwargs)


def install_spool_receive() -> None:
    """Make pynetdicom's chunked receive write into the receiving AE's spool folder
    (``ae.spool_receive``, a :class:`SpoolReceive`). Idempotent."""
    dimse_messages.NamedTemporaryFile = _named_temporary_file  # type: ignore[assignment]


def incoming_at(path: Path | str) -> IncomingFile | None:
    """The incoming file pynetdicom wrote at ``path`` (``event.dataset_path``), or None
    when that is pynetdicom's own temporary file."""
    with _lock:
        return _by_path.get(str(path))


def discard_unclaimed(assoc: Any) -> int:
    """Delete the incoming files of ``assoc`` that no handler took; how many."""
    with _lock:
        files = _by_assoc.pop(assoc, [])
    n = 0
    for f in files:
        if not f._state.claimed and f.path.exists():
            f._state.discard()
            n += 1
    return n


__all__ = [
    "INCOMING_PREFIX",
    "IncomingFile",
    "SpoolReceive",
    "discard_unclaimed",
    "incoming_at",
    "install_spool_receive",
]
