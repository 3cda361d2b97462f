"""The stand-in PACS can take compressed objects as a real PACS does, and delivery then
keeps a compressed result object compressed (same SOP Instance UID, same pixels); the
fallback for a peer that does not is ``tests/test_first_hour.py``'s compressed-SC test.

Decoding the secondary capture before every C-STORE cost the delivery tens of milliseconds
when the stand-in PACS took uncompressed objects only (issue 16: "where does 0.23 s go").
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    ExplicitVRLittleEndian,
    JPEGLSLossless,
    SecondaryCaptureImageStorage,
    generate_uid,
)

from dicom_node.destinations.dimse import DimseDestination, send_files
from dicom_node.peers import PACS_TRANSFER_SYNTAXES, StandInPacs
from dicom_node.settings import LimitSettings

pytestmark = pytest.mark.network


def _compressed_sc(path: Path) -> tuple[str, np.ndarray]:
    rng = np.random.default_rng(7)
    pixels = (rng.integers(0, 40, (64, 48, 3)) + np.arange(48)[None, :, None] * 4).astype(np.uint8)
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.Modality, ds.PatientID, ds.PatientName = "OT", "SYN", "Synthetic^Knee"
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "RGB", 0
    ds.Rows, ds.Columns = pixels.shape[:2]
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelData = pixels.tobytes()
    ds.compress(JPEGLSLossless, generate_instance_uid=False)
    ds.save_as(path, enforce_file_format=True)
    return str(ds.SOPInstanceUID), pixels


def _send(pacs: StandInPacs, path: Path) -> None:
    dest = DimseDestination(name="pacs", ae_title=pacs.ae_title, host="127.0.0.1", port=pacs.port)
    send_files([path], dest, calling_ae_title="KNEE_NODE", limits=LimitSettings())


def test_compressed_object_arrives_compressed_when_accepted(tmp_path: Path) -> None:
    uid, pixels = _compressed_sc(tmp_path / "sc.dcm")
    pacs = StandInPacs(folder=tmp_path / "in", transfer_syntaxes=PACS_TRANSFER_SYNTAXES).start()
    try:
        _send(pacs, tmp_path / "sc.dcm")
    finally:
        pacs.stop()
    assert len(pacs.paths) == 1
    got = dcmread(pacs.paths[0])
    assert got.file_meta.TransferSyntaxUID == JPEGLSLossless
    assert got.SOPInstanceUID == uid
    assert np.array_equal(got.pixel_array, pixels)


def test_stand_in_refuses_an_empty_syntax_list() -> None:
    with pytest.raises(ValueError, match="transfer_syntaxes"):
        StandInPacs(transfer_syntaxes=[])
