"""Issue 16, ingest: the chunked receive writes into the spool; storing is fsync + rename.

* an uncompressed instance is kept as pynetdicom wrote it in the spool (never copied by
  ``store_received``), byte for byte the Part 10 file the copy path wrote;
* a write failure (disk full) discards the partial file and is reported to the handler;
* an incoming file nobody takes is deleted;
* folder fsyncs are shared by concurrent renames, and none returns before an fsync that
  began after it was asked for.
"""

from __future__ import annotations

import errno
import io
import os
import threading
from pathlib import Path
from typing import Any

import pytest
from pydicom import dcmread
from reliability_support import HeaderTruthMeasurer, knee_case
from sqlalchemy import select
from test_node_runtime import _push

import dicom_node.listener as listener
import dicom_node.spool as spool
from dicom_node.db import ReceivedInstance
from dicom_node.incoming import INCOMING_PREFIX, IncomingFile
from dicom_node.node import KneeNode
from dicom_node.settings import Settings


@pytest.mark.network
def test_an_uncompressed_instance_is_renamed_into_the_spool_not_copied(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    copies: list[Any] = []
    real_copy = listener.store_received

    def counting_copy(*args: Any, **kwargs: Any) -> Path:
        copies.append(args)
        return real_copy(*args, **kwargs)

    monkeypatch.setattr(listener, "store_received", counting_copy)
    stored: list[Path] = []
    real_keep = listener.store_incoming

    def keep(folder: Path, uid: str, incoming: IncomingFile) -> Path:
        path = real_keep(folder, uid, incoming)
        stored.append(path)
        return path

    monkeypatch.setattr(listener, "store_incoming", keep)
    s = Settings.model_validate(
        {"storage": {"data_dir": str(tmp_path / "var"), "keep_source": True}}
    )
    ds = knee_case(3.0, rows=300, cols=200)
    with KneeNode(s, measurer=HeaderTruthMeasurer(), port=0) as node:
        assert _push(node.port, ds) == 0x0000
        assert node.wait_idle(60)
        with node.ctx.db.session() as sess:
            [row] = sess.scalars(select(ReceivedInstance)).all()
        # what the copy path writes, from the same dataset, for comparison
        sent = io.BytesIO()
        ds.save_as(sent, enforce_file_format=True)
        meta_and_data = dcmread(io.BytesIO(sent.getvalue()))
    assert copies == [], "no copy for an uncompressed instance"
    assert len(stored) == 1 and row.state == "measured"
    kept = stored[0]
    assert kept.parent == s.storage.spool and kept.suffix == ".dcm" and len(kept.stem) == 41
    assert not [p for p in s.storage.spool.iterdir() if p.name.startswith(INCOMING_PREFIX)]
    assert (kept.stat().st_mode & 0o777) == 0o600
    got = dcmread(kept)
    assert got.file_meta.TransferSyntaxUID == ds.file_meta.TransferSyntaxUID
    assert got.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
    assert got.PixelData == meta_and_data.PixelData
    assert got.SOPInstanceUID == ds.SOPInstanceUID


def test_a_failed_write_discards_the_partial_file_and_reports_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    f = IncomingFile(tmp_path)
    assert f.write(b"\x00" * 132) == 132 and f.path.exists()
    real_write = os.write

    def full(fd: int, data: Any) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", full)
    assert f.write(b"more") == 4, "the receive goes on (the sender gets a status)"
    monkeypatch.setattr(os, "write", real_write)
    assert f.error is not None and f.error.errno == errno.ENOSPC
    assert not f.path.exists(), "space freed at once"
    assert f.write(b"rest") == 4 and list(tmp_path.iterdir()) == []
    with pytest.raises(OSError) as exc:
        spool.store_incoming(tmp_path, "1.2.3", f)
    assert exc.value.errno == errno.ENOSPC
    assert list(tmp_path.iterdir()) == []


def test_an_incoming_file_nobody_takes_is_deleted(tmp_path: Path) -> None:
    f = IncomingFile(tmp_path)
    f.write(b"partial")
    path = f.path
    f.discard()
    assert not path.exists()
    g = IncomingFile(tmp_path)
    g.write(b"partial too")
    gone = g.path
    del g  # pynetdicom dropped it (association aborted)
    assert not gone.exists()


def test_store_incoming_keeps_the_file_under_its_hashed_name(tmp_path: Path) -> None:
    f = IncomingFile(tmp_path)
    f.write(b"\x00" * 128 + b"DICM" + b"payload")
    first = f.name
    path = spool.store_incoming(tmp_path, "1.2/../../evil", f)
    assert path.parent == tmp_path and ".." not in path.name
    assert path.read_bytes().endswith(b"DICMpayload")
    assert not Path(first).exists(), "renamed, so pynetdicom's own unlink misses"
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


def test_folder_fsyncs_are_shared_and_never_early(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    started, release = threading.Event(), threading.Event()
    calls: list[int] = []
    real = spool._fsync_dir

    def slow_first(folder: Path) -> None:
        calls.append(1)
        if len(calls) == 1:
            started.set()
            assert release.wait(30)
        real(folder)

    monkeypatch.setattr(spool, "_fsync_dir", slow_first)
    fs = spool.FolderSync(tmp_path)
    first = threading.Thread(target=fs.sync)
    first.start()
    assert started.wait(30)
    returned: list[int] = []

    def later(i: int) -> None:
        fs.sync()
        returned.append(i)

    waiters = [threading.Thread(target=later, args=(i,)) for i in range(5)]
    for t in waiters:
        t.start()
    while fs._requested < 6:  # every waiter holds its ticket
        threading.Event().wait(0.01)
    assert returned == [], "an fsync that began before the call does not count"
    release.set()
    for t in (first, *waiters):
        t.join(30)
    assert sorted(returned) == list(range(5))
    assert len(calls) == 2, "five renames that waited share one folder fsync"
