"""Time ``read_radiograph`` on a synthetic 2800 x 8100 16-bit Explicit VR LE image.

Usage: ``PYTHONPATH=$PWD python -m benchmarks.pixels_read``.
"""
import sys, time, io, numpy as np, pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
import inference.pixels as px
ds = Dataset(); ds.file_meta = FileMetaDataset(); ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"; ds.SOPInstanceUID = generate_uid()
ds.Rows, ds.Columns = 8100, 2800; ds.BitsAllocated = 16; ds.BitsStored = 16; ds.HighBit = 15
ds.PixelRepresentation = 0; ds.SamplesPerPixel = 1; ds.PhotometricInterpretation = "MONOCHROME2"
ds.RescaleSlope = 1; ds.RescaleIntercept = 0
ds.PixelData = np.random.default_rng(0).integers(0, 4096, (8100, 2800), dtype=np.uint16).tobytes()
b = io.BytesIO(); ds.save_as(b, enforce_file_format=True); raw = b.getvalue()
ts = []
for _ in range(3):
    t = time.perf_counter(); r = px.read_radiograph(pydicom.dcmread(io.BytesIO(raw))); ts.append(time.perf_counter() - t)
print("read_radiograph 2800x8100 u16: min s", round(min(ts), 3), r.image.dtype)
