"""Durable storage of received instances: temporary file, fsync, rename, fsync folder.

File names never come from the sender: they are a SHA-256 of the SOP Instance UID and a
random nonce, so a UID crafted like ``../../etc`` cannot escape the spool.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from pydicom.dataset import FileMetaDataset
from pydicom.filewriter import write_file_meta_info


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


def write_durably(folder: Path, name: str, write: Callable[[BinaryIO], None]) -> Path:
    """Write a file with ``write(fileobj)`` so that it is complete on disk or absent.

    Parameters
    ----------
    folder
        Destination folder (created if missing).
    name
        Plain file name (no separators).
    write
        Callable writing the content into a binary file object.
    """
    if not name or "/" in name or "\\" in name or name in {".", ".."}:
        raise ValueError(f"name must be a plain file name, got {name!r}")
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / name
    tmp = folder / f".{name}.tmp"
    try:
        with open(tmp, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.rename(tmp, final)
        _fsync_dir(folder)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return final


def store_received(
    folder: Path, sop_instance_uid: str, file_meta: FileMetaDataset, dataset_bytes: bytes
) -> Path:
    """Store a received C-STORE dataset as a DICOM Part 10 file, durably.

    Parameters
    ----------
    folder
        The spool folder.
    sop_instance_uid
        Affected SOP Instance UID (only hashed into the name).
    file_meta
        File meta information (pynetdicom's ``event.file_meta``).
    dataset_bytes
        The dataset as received, encoded in the negotiated transfer syntax.
    """

    def _write(fh: BinaryIO) -> None:
        fh.write(b"\x00" * 128)
        fh.write(b"DICM")
        write_file_meta_info(fh, file_meta, enforce_standard=True)  # type: ignore[arg-type]
        fh.write(dataset_bytes)

    return write_durably(Path(folder), spool_name(sop_instance_uid), _write)
