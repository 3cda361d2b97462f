"""Time ``read_radiograph`` on a synthetic 2800 x 8100 16-bit Explicit VR LE image.

Usage: ``PYTHONPATH=$PWD python -m benchmarks.pixels_read``.
"""

from __future__ import annotations

import io
import time

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

import inference.pixels as px

ROWS, COLUMNS = 8100, 2800


def full_leg_bytes(rows: int = ROWS, columns: int = COLUMNS) -> bytes:
    """A DX file of ``rows`` x ``columns`` 16-bit noise with an identity rescale, as bytes."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"
    ds.SOPInstanceUID = generate_uid()
    ds.Rows, ds.Columns = rows, columns
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
    ds.PixelRepresentation, ds.SamplesPerPixel = 0, 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.RescaleSlope, ds.RescaleIntercept = 1, 0
    rng = np.random.default_rng(0)
    ds.PixelData = rng.integers(0, 4096, (rows, columns), dtype=np.uint16).tobytes()
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def main(repeats: int = 3) -> None:
    """Print the minimum seconds of ``dcmread`` from memory + ``read_radiograph``."""
    raw = full_leg_bytes()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        r = px.read_radiograph(pydicom.dcmread(io.BytesIO(raw)))
        times.append(time.perf_counter() - t)
    print("read_radiograph 2800x8100 u16: min s", round(min(times), 3), r.image.dtype)


if __name__ == "__main__":
    main()
