"""Durable, private storage of received instances: temporary file, fsync, rename, fsync folder.

File names never come from the sender: they are a SHA-256 of the SOP Instance UID and a
random nonce, so a UID crafted like ``../../etc`` cannot escape the spool.

Every file and folder the node writes gets its mode set explicitly (:class:`FileModes`),
never left to the umask: 0600/0700 by default, 0640/0750 with a configured group.

A received dataset arrives as a file written while its PDUs arrive (pynetdicom's chunked
receive), so a large instance is never held whole in memory. The node's listener has
pynetdicom write it in the spool folder itself (:mod:`dicom_node.incoming`), and
:func:`store_incoming` keeps it with one fsync of the file, a rename to its spool name and
an fsync of the folder shared with the renames that happened meanwhile
(:class:`FolderSync`). A *deflated* dataset is not kept as received: :func:`store_received`
copies it in bounded chunks, inflating it on the way with a bound on the bytes it may
inflate to (a decompression bomb stops at the bound), and stores it as Explicit VR Little
Endian, which is the same dataset without the compression. A dataset received elsewhere
(pynetdicom's own temporary folder) is copied the same way.
"""

from __future__ import annotations

import grp
import hashlib
import io
import os
import secrets
import threading
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from pydicom.dataset import FileMetaDataset
from pydicom.filewriter import write_file_meta_info
from pydicom.uid import DeflatedExplicitVRLittleEndian, ExplicitVRLittleEndian

from dicom_node.errors import StorageError

if TYPE_CHECKING:
    from dicom_node.incoming import IncomingFile

#: bytes read (and, when deflated, inflated) per step when copying a received dataset
CHUNK_BYTES = 1 << 20


@dataclass(frozen=True)
class FileModes:
    """Permissions of everything the node writes.

    Parameters
    ----------
    file
        Mode of files (default 0600: the node's user only).
    folder
        Mode of folders (default 0700).
    gid
        Group given to files and folders, or ``None`` to keep the process's group.
    """

    file: int = 0o600
    folder: int = 0o700
    gid: int | None = None

    def __post_init__(self) -> None:
        for name in ("file", "folder"):
            value = getattr(self, name)
            if not isinstance(value, int) or not 0 <= value <= 0o777:
                raise ValueError(f"{name} must be a permission mode 0..0o777, got {value!r}")
            if value & 0o007:
                raise ValueError(f"{name} must give others no access, got {oct(value)}")

    @classmethod
    def for_group(cls, group: str | None) -> FileModes:
        """0600/0700 without a group; 0640/0750 and that group's id with one."""
        if group is None:
            return cls()
        try:
            gid = grp.getgrnam(group).gr_gid
        except KeyError:
            raise ValueError(f"group must name an existing group, got {group!r}") from None
        return cls(file=0o640, folder=0o750, gid=gid)

    def apply(self, path: Path, *, folder: bool = False) -> None:
        """Set ``path``'s mode (and group) explicitly."""
        os.chmod(path, self.folder if folder else self.file)
        if self.gid is not None:
            os.chown(path, -1, self.gid)

    def make_folder(self, folder: Path) -> Path:
        """Create ``folder`` (and parents) if missing and set its mode."""
        folder.mkdir(parents=True, exist_ok=True)
        self.apply(folder, folder=True)
        return folder


PRIVATE = FileModes()


def spool_name(sop_instance_uid: str) -> str:
    """A safe, unique file name for an instance (hash of the UID plus a nonce)."""
    digest = hashlib.sha256(sop_instance_uid.encode("ascii", "replace")).hexdigest()[:32]
    return f"{digest}-{secrets.token_hex(4)}.dcm"


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_durably(
    folder: Path,
    name: str,
    write: Callable[[BinaryIO], None],
    *,
    modes: FileModes = PRIVATE,
) -> Path:
    """Write a file with ``write(fileobj)`` so that it is complete on disk or absent.

    Parameters
    ----------
    folder
        Destination folder (created if missing, with ``modes.folder``).
    name
        Plain file name (no separators).
    write
        Callable writing the content into a binary file object.
    modes
        Permissions of the file and a created folder (set explicitly, not by the umask).
    """
    if not name or "/" in name or "\\" in name or name in {".", ".."}:
        raise ValueError(f"name must be a plain file name, got {name!r}")
    if not folder.is_dir():
        modes.make_folder(folder)
    final = folder / name
    tmp = folder / f".{name}.tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, modes.file)
        with open(fd, "wb") as fh:
            modes.apply(tmp)
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.rename(tmp, final)
        _fsync_dir(folder)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return final


class DecodedSizeError(StorageError):
    """A received dataset would inflate to more than the configured bound."""


def _copy_inflated(src: BinaryIO, dst: BinaryIO, max_bytes: int) -> int:
    """Inflate raw deflate data from ``src`` into ``dst``; stop beyond ``max_bytes``."""
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    total = 0
    while True:
        chunk = src.read(CHUNK_BYTES)
        data = inflater.decompress(chunk, CHUNK_BYTES) if chunk else inflater.flush()
        while True:
            total += len(data)
            if total > max_bytes:
                raise DecodedSizeError(
                    f"the deflated dataset inflates to more than {max_bytes} bytes "
                    "(node.limits.max_decoded_bytes)"
                )
            dst.write(data)
            if not inflater.unconsumed_tail:
                break
            data = inflater.decompress(inflater.unconsumed_tail, CHUNK_BYTES)
        if not chunk or inflater.eof:
            return total


def dataset_offset(fh: BinaryIO) -> int:
    """Offset of the dataset in a Part 10 file ``fh`` (after preamble and file meta)."""
    fh.seek(128)
    if fh.read(4) != b"DICM":
        raise StorageError("the received file has no DICM prefix")
    head = fh.read(12)  # (0002,0000) UL group length, explicit VR little endian
    if len(head) != 12 or head[:4] != b"\x02\x00\x00\x00":
        raise StorageError("the received file has no file meta group length")
    return 132 + 12 + int.from_bytes(head[8:12], "little")


def store_received(
    folder: Path,
    sop_instance_uid: str,
    file_meta: FileMetaDataset,
    received: Path | bytes,
    *,
    max_decoded_bytes: int | None = None,
    modes: FileModes = PRIVATE,
) -> Path:
    """Store a received C-STORE dataset as a DICOM Part 10 file, durably and privately.

    Parameters
    ----------
    folder
        The spool folder.
    sop_instance_uid
        Affected SOP Instance UID (only hashed into the name).
    file_meta
        File meta information (pynetdicom's ``event.file_meta``).
    received
        The dataset as received: the path of pynetdicom's chunked-receive file (a Part 10
        file, copied from its dataset on), or the dataset bytes, encoded in the
        negotiated transfer syntax.
    max_decoded_bytes
        Bound on the bytes a deflated dataset may inflate to (``None``: no bound).
    modes
        Permissions of the spool file.

    Raises
    ------
    DecodedSizeError
        The deflated dataset inflates beyond ``max_decoded_bytes`` (nothing is kept).
    OSError
        The spool cannot be written (nothing is kept).
    """
    deflated = str(file_meta.TransferSyntaxUID) == DeflatedExplicitVRLittleEndian
    meta = file_meta
    if deflated:
        meta = FileMetaDataset(file_meta)
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
    bound = max_decoded_bytes if max_decoded_bytes is not None else 1 << 62

    def _write(fh: BinaryIO) -> None:
        fh.write(b"\x00" * 128)
        fh.write(b"DICM")
        write_file_meta_info(fh, meta, enforce_standard=True)  # type: ignore[arg-type]
        if isinstance(received, bytes):
            src: BinaryIO = io.BytesIO(received)
        else:
            src = open(received, "rb")  # noqa: SIM115 -- closed by the with below
            src.seek(dataset_offset(src))
        with src:
            if deflated:
                _copy_inflated(src, fh, bound)
            else:
                while chunk := src.read(CHUNK_BYTES):
                    fh.write(chunk)

    return write_durably(Path(folder), spool_name(sop_instance_uid), _write, modes=modes)


class FolderSync:
    """Folder fsyncs shared by the threads that renamed into the folder meanwhile.

    :meth:`sync` returns once an fsync of the folder that *began after the call* has
    finished: a rename made before the call is then durable. While one fsync runs, the
    threads that arrive wait for it to end and then share the next one, so N concurrent
    C-STOREs cost about two folder fsyncs instead of N. An fsync that fails raises in the
    thread that ran it; the others run their own.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._cond = threading.Condition()
        self._requested = 0  # tickets handed out
        self._done = 0  # every ticket up to this one is covered by a finished fsync
        self._running = False
        self.fsyncs = 0  # fsyncs run (tests, diagnostics)

    def sync(self) -> None:
        """Make every rename into the folder that happened before this call durable."""
        with self._cond:
            self._requested += 1
            ticket = self._requested
            while self._done < ticket:
                if self._running:
                    self._cond.wait()
                    continue
                self._running = True
                covers = self._requested
                self._cond.release()
                try:
                    _fsync_dir(self.folder)
                    ok = True
                finally:
                    self._cond.acquire()
                    self._running = False
                    self._cond.notify_all()
                if ok:
                    self.fsyncs += 1
                    self._done = max(self._done, covers)


_folder_syncs: dict[Path, FolderSync] = {}
_folder_syncs_lock = threading.Lock()


def folder_sync(folder: Path) -> FolderSync:
    """The process's :class:`FolderSync` of ``folder``."""
    key = Path(os.path.abspath(folder))
    with _folder_syncs_lock:
        fs = _folder_syncs.get(key)
        if fs is None:
            fs = _folder_syncs[key] = FolderSync(key)
        return fs


def store_incoming(folder: Path, sop_instance_uid: str, incoming: IncomingFile) -> Path:
    """Keep a dataset that pynetdicom wrote in the spool folder: fsync, rename, folder fsync.

    Parameters
    ----------
    folder
        The spool folder; ``incoming`` must be in it (same file system, one rename).
    sop_instance_uid
        Affected SOP Instance UID (only hashed into the name).
    incoming
        The file as received (:class:`dicom_node.incoming.IncomingFile`), not deflated.

    Returns
    -------
    Path
        The spool file, durable (its data and its folder entry are on disk).

    Raises
    ------
    OSError
        A write, the fsync or the rename failed; nothing is kept.
    """
    folder = Path(folder)
    if incoming.error is not None:
        incoming.discard()
        raise incoming.error
    if not incoming.claim():
        raise OSError("the received file was discarded before it could be stored")
    if incoming.path.parent.resolve() != folder.resolve():
        incoming.discard()
        raise ValueError(f"the received file is not in the spool folder {folder}")
    final = folder / spool_name(sop_instance_uid)
    try:
        os.fsync(incoming.fileno())
        incoming.close()
        os.rename(incoming.path, final)
        incoming.moved_to(final)
        folder_sync(folder).sync()
    except BaseException:
        incoming.discard()
        raise
    return final
