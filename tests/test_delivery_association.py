"""Delivery by C-STORE: every object of a job in one association, sent without Nagle delay."""

from __future__ import annotations

import socket
import threading
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


def test_objects_of_a_job_go_in_one_association_with_nagle_left_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    associations: list[int] = []
    stored: list[str] = []
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
    port = server.server_address[1]
    nodelay_at_store: list[int] = []
    original = Association.send_c_store

    def spy(self: Association, *args: object, **kwargs: object) -> Dataset:
        sock = self.dul.socket.socket  # type: ignore[union-attr]
        nodelay_at_store.append(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        return original(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Association, "send_c_store", spy)
    try:
        paths = _write(tmp_path, 3)
        dest = DimseDestination(name="pacs", ae_title="STANDIN", host="127.0.0.1", port=port)
        send_files(paths, dest, calling_ae_title="KNEENODE", limits=Settings().node.limits)
    finally:
        server.shutdown()
    assert len(associations) == 1
    assert len(stored) == 3
    # TCP_NODELAY made pynetdicom's reactor drop a C-STORE response now and then (a 60 s
    # DIMSE timeout, then a resend): dimse.send_files leaves Nagle on
    assert nodelay_at_store == [0, 0, 0]
