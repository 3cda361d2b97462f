"""Issue 5, item 5: the spool's disk is full (a 2 MiB tmpfs mounted for the test).

C-STORE answers a failure status (0xA700, out of resources), never success; no partial
or temporary file is left in the spool; nothing is recorded as stored; the node keeps
serving (C-ECHO, and C-STORE again once there is room).
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from pynetdicom import AE
from pynetdicom.sop_class import Verification
from reliability_support import HeaderTruthMeasurer, knee_case
from sqlalchemy import select
from test_node_runtime import _push

from dicom_node.db import Job, ReceivedInstance
from dicom_node.node import KneeNode
from dicom_node.settings import Settings

pytestmark = pytest.mark.network


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs at ``tmp_path/spool`` (skips when mounting is not allowed)."""
    mnt = tmp_path / "spool"
    mnt.mkdir()
    if shutil.which("mount") is None:
        pytest.skip("needs mount(8) to make a small tmpfs")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m,mode=0700", "tmpfs", str(mnt)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs (needs root): {done.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def _fill(folder: Path) -> Path:
    """Write a file until the file system is full; return it."""
    filler = folder / "filler.bin"
    with open(filler, "wb") as fh:
        try:
            while True:
                fh.write(b"\x00" * 65536)
                fh.flush()
                os.fsync(fh.fileno())
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    return filler


def _echo(port: int) -> int:
    ae = AE(ae_title="MODALITY")
    ae.add_requested_context(Verification)
    assoc = ae.associate("127.0.0.1", port, ae_title="KNEE_NODE")
    assert assoc.is_established
    status = int(assoc.send_c_echo().Status)
    assoc.release()
    return status


def test_full_spool_answers_failure_keeps_serving_leaves_nothing(
    tmp_path: Path, small_disk: Path
) -> None:
    s = Settings.model_validate(
        {"storage": {"data_dir": str(tmp_path / "var"), "spool_dir": str(small_disk)}}
    )
    with KneeNode(s, measurer=HeaderTruthMeasurer(), port=0) as node:
        filler = _fill(small_disk)
        ds = knee_case(4.0, rows=320, cols=256)
        assert _push(node.port, ds) == 0xA700, "never success for what could not be stored"
        assert _push(node.port, knee_case(1.0)) == 0xA700
        assert {p.name for p in small_disk.iterdir()} == {"filler.bin"}, "no partial files"
        with node.ctx.db.session() as sess:
            assert sess.scalars(select(ReceivedInstance)).all() == []
        assert _echo(node.port) == 0x0000, "the node keeps serving"
        filler.unlink()  # room again: the modality's retry is stored and measured
        assert _push(node.port, ds) == 0x0000
        assert node.wait_idle(60)
        with node.ctx.db.session() as sess:
            [row] = sess.scalars(select(ReceivedInstance)).all()
            [job] = sess.scalars(select(Job)).all()
            assert (row.state, job.state) == ("measured", "done")
    assert not [p for p in small_disk.iterdir()], "measured source removed, nothing left"
