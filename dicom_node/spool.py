"""Durable, private storage of received instances: temporary file, fsync, rename, fsync folder.

File names never come from the sender: they are a SHA-256 of the SOP Instance UID and a
random nonce, so a UID crafted like ``../../etc`` cannot escape the spool.

Every file and folder the node writes gets its mode set explicitly (:class:`FileModes`),
never left to the umask: 0600/0700 by default, 0640/0750 with a configured group.

A received dataset arrives as a temporary file (pynetdicom's chunked receive), so a large
instance is never held whole in memory. :func:`store_received` copies it to the spool in
bounded chunks; a *deflated* dataset is inflated on the way with a bound on the bytes it
may inflate to (a decompression bomb stops at the bound), and stored as Explicit VR
Little Endian, which is the same dataset without the compression.
"""

from __future__ import annotations

import grp
import hashlib
import io
import os
import secrets
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from pydicom.dataset import FileMetaDataset
from pydicom.filewriter import write_file_meta_info
from pydicom.uid import DeflatedExplicitVRLittleEndian, ExplicitVRLittleEndian

from dicom_node.errors import StorageError

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
