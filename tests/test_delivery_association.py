"""Delivery by C-STORE: every object of a job in one association, sent without Nagle delay,
on an association whose pynetdicom reactor cannot take the C-STORE response first."""

from __future__ import annotations

import logging
import queue
import socket
import threading
import time
from pathlib import Path

import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    ExplicitVRLittleEndian,
    SecondaryCaptureImageStorage,
    generate_uid,
)
from pynetdicom import AE, AllStoragePresentationContexts, evt
from pynetdicom.association import Association

from dicom_node.destinations.dimse import DimseDestination, send_files
from dicom_node.settings import Settings


def _write(folder: Path, n: int) -> list[Path]:
    paths = []
    for i in range(n):
        ds = Dataset()
        ds.SOPClassUID = SecondaryCaptureImageStorage
        ds.SOPInstanceUID = generate_uid()
        ds.PatientID = "TEST"
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        p = folder / f"{i}.dcm"
        ds.save_as(p, enforce_file_format=True)
        paths.append(p)
    return paths


def _storage_scp(
    associations: list[int], stored: list[str]
) -> tuple[object, int]:
    lock = threading.Lock()

    def on_assoc(event: evt.Event) -> None:
        with lock:
            associations.append(1)

    def on_store(event: evt.Event) -> int:
        with lock:
            stored.append(str(event.request.AffectedSOPInstanceUID))
        return 0x0000

    scp = AE(ae_title="STANDIN")
    scp.supported_contexts = AllStoragePresentationContexts
    server = scp.start_server(
        ("127.0.0.1", 0),
        block=False,
        evt_handlers=[(evt.EVT_ACCEPTED, on_assoc), (evt.EVT_C_STORE, on_store)],
    )
    return server, server.server_address[1]


def test_objects_of_a_job_go_in_one_association_without_nagle_delay(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    associations: list[int] = []
    stored: list[str] = []
    server, port = _storage_scp(associations, stored)
    at_store: list[tuple[int, bool, int]] = []
    original = Association.send_c_store

    def spy(self: Association, *args: object, **kwargs: object) -> Dataset:
        sock = self.dul.socket.socket  # type: ignore[union-attr]
        checkpoint = self._reactor_checkpoint
        at_store.append(
            (
                sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY),
                checkpoint.is_set(),
                len(checkpoint._cond._waiters),  # type: ignore[attr-defined]
            )
        )
        return original(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Association, "send_c_store", spy)
    try:
        paths = _write(tmp_path, 3)
        dest = DimseDestination(name="pacs", ae_title="STANDIN", host="127.0.0.1", port=port)
        send_files(paths, dest, calling_ae_title="KNEENODE", limits=Settings().node.limits)
    finally:
        server.shutdown()  # type: ignore[attr-defined]
    assert len(associations) == 1
    assert len(stored) == 3
    # at every C-STORE: TCP_NODELAY on, and the reactor thread blocked in its checkpoint
    # (the event cleared, one waiter), so it cannot take the response off the queue
    assert at_store == [(1, False, 1)] * 3


class _LateCheckpoint(threading.Event):
    """The reactor's checkpoint, with the race made certain.

    pynetdicom's reactor sets ``_is_paused``, waits on the checkpoint, then clears
    ``_is_paused`` and looks for a DIMSE message. Here a reactor that passes the checkpoint
    lingers until a message is queued (as a thread descheduled at that point would), and
    the sending thread is slow to collect its response, so a reactor that is not parked
    always takes the response first.
    """

    def __init__(self, messages: queue.Queue[object]) -> None:
        super().__init__()
        self.messages = messages

    def wait(self, timeout: float | None = None) -> bool:
        passed = super().wait(timeout)
        if isinstance(threading.current_thread(), Association):
            until = time.monotonic() + 0.3
            while self.messages.empty() and time.monotonic() < until:
                time.sleep(0.001)
        return passed


def test_a_lingering_reactor_does_not_take_the_c_store_response(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Without the park in dimse.send_files this fails, Nagle on or off: the reactor drops
    each response as "unexpected" and the C-STORE waits out the DIMSE timeout."""
    associations: list[int] = []
    stored: list[str] = []
    server, port = _storage_scp(associations, stored)
    original_init = Association.__init__

    def init(self: Association, *args: object, **kwargs: object) -> None:
        original_init(self, *args, **kwargs)  # type: ignore[arg-type]
        self._reactor_checkpoint = _LateCheckpoint(self.dimse.msg_queue)
        self._reactor_checkpoint.set()
        get_msg = self.dimse.get_msg

        def slow_to_collect(block: bool = False) -> object:
            if block:
                time.sleep(0.05)
            return get_msg(block)

        self.dimse.get_msg = slow_to_collect  # type: ignore[method-assign]

    monkeypatch.setattr(Association, "__init__", init)
    limits = Settings().node.limits.model_copy(update={"dimse_timeout_s": 2.0})
    caplog.set_level(logging.WARNING, logger="pynetdicom")
    try:
        paths = _write(tmp_path, 4)
        dest = DimseDestination(name="pacs", ae_title="STANDIN", host="127.0.0.1", port=port)
        send_files(paths, dest, calling_ae_title="KNEENODE", limits=limits)
    finally:
        server.shutdown()  # type: ignore[attr-defined]
    assert len(stored) == 4
    assert not [r for r in caplog.records if "unexpected" in r.getMessage()]
