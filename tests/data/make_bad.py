"""(Re)make the bad-input corpus ``tests/data/bad/``: small DICOM files that are broken
in one way each, and ``manifest.json`` saying what the node must answer for each.

Run from the repository root: ``.venv/bin/python tests/data/make_bad.py``.
Each file keeps valid File Meta Information (so a sender can announce its SOP Class and
transfer syntax) unless the case is about the meta itself. Outcomes:

``refused``
    a failure status (or no accepted presentation context): never success;
``error``
    answered, then recorded with a readable error (instance rejected/failed, job error);
``ignored``
    not a knee radiograph: recorded as ignored, not kept;
``measured_or_error``
    may be measured (the angle needs no pixel spacing) or fail with a readable error.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # node_support

from node_support import make_dx  # noqa: E402

OUT = HERE / "bad"
SIZE = 64


def _base() -> Dataset:
    ds, _ = make_dx(4.0, rows=SIZE, cols=SIZE)
    ds.ImageComments = "atfa=4.000"  # what the reliability test double reads
    # fixed UIDs: the corpus is reproducible byte for byte
    ds.StudyInstanceUID = "1.2.826.0.1.3680043.10.1137.1"
    ds.SeriesInstanceUID = "1.2.826.0.1.3680043.10.1137.2"
    return ds


def _encoded(ds: Dataset) -> bytes:
    from io import BytesIO

    buf = BytesIO()
    if ds.file_meta.TransferSyntaxUID in (ExplicitVRLittleEndian, "1.2.840.10008.1.2"):
        ds.save_as(buf, enforce_file_format=True)
    else:  # a syntax the pixel data is not in: write the dataset explicit VR little endian
        ds.save_as(buf, implicit_vr=False, little_endian=True, enforce_file_format=True)
    return buf.getvalue()


def _with_uid(ds: Dataset, uid: str) -> Dataset:
    ds.SOPInstanceUID = uid
    ds.file_meta.MediaStorageSOPInstanceUID = uid
    return ds


def _meta_end(raw: bytes) -> int:
    """Offset of the first dataset element after the file meta (group 0008)."""
    return raw.index(b"\x08\x00", 132 + 12)


CaseFn = Callable[[Dataset], "Dataset | bytes"]


def _truncated_pixels(ds: Dataset) -> bytes:
    raw = _encoded(ds)
    return raw[: len(raw) - SIZE * SIZE]  # cut in the middle of Pixel Data


def _truncated_header(ds: Dataset) -> bytes:
    raw = _encoded(ds)
    start = _meta_end(raw)
    return raw[: start + 37]  # cut inside the first elements


def _garbage_dataset(ds: Dataset) -> bytes:
    raw = _encoded(ds)
    return raw[: _meta_end(raw)] + b"\x08\x00\x16\x00UI\xff\xff" + b"\x00garbage" * 8


def _no_pixels(ds: Dataset) -> Dataset:
    del ds.PixelData
    return ds


def _short_pixels(ds: Dataset) -> Dataset:
    ds.PixelData = ds.PixelData[: len(ds.PixelData) // 3]
    return ds


def _absurd_size(ds: Dataset) -> Dataset:
    ds.Rows = ds.Columns = 65535
    return ds


def _zero_rows(ds: Dataset) -> Dataset:
    ds.Rows = 0
    return ds


def _unsupported_syntax(ds: Dataset) -> Dataset:
    from pydicom.encaps import encapsulate

    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.100"  # MPEG2 MP@ML
    ds.PixelData = encapsulate([b"\x00\x00\x01\xb3not really mpeg"])
    return ds


def _private_syntax(ds: Dataset) -> Dataset:
    ds.file_meta.TransferSyntaxUID = "1.2.826.0.1.3680043.10.1137.99"
    return ds


def _palette(ds: Dataset) -> Dataset:
    ds.PhotometricInterpretation = "PALETTE COLOR"
    return ds


def _monochrome3(ds: Dataset) -> Dataset:
    ds.PhotometricInterpretation = "MONOCHROME3"
    return ds


def _rgb(ds: Dataset) -> Dataset:
    rgb = np.zeros((SIZE, SIZE, 3), np.uint8)
    rgb[..., 0] = 200
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "RGB", 0
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, 8, 7
    for kw in ("RescaleIntercept", "RescaleSlope", "RescaleType", "WindowCenter", "WindowWidth"):
        delattr(ds, kw)
    ds.PixelData = rgb.tobytes()
    return ds


def _multi_frame(ds: Dataset) -> Dataset:
    ds.NumberOfFrames = 3
    ds.PixelData = ds.PixelData * 3
    return ds


def _chest(ds: Dataset) -> Dataset:
    ds.BodyPartExamined = "CHEST"
    return ds


def _not_a_knee(ds: Dataset) -> Dataset:
    del ds.ImageComments  # a knee by its header, but no knee in the image
    return ds


def _no_spacing(ds: Dataset) -> Dataset:
    del ds.PixelSpacing
    del ds.ImagerPixelSpacing
    return ds


def _bad_uid(ds: Dataset) -> Dataset:
    return _with_uid(ds, "1.2.840.abc..x.-7")


def _long_uid(ds: Dataset) -> Dataset:
    return _with_uid(ds, "1.2." + "9" * 90)


def _path_uid(ds: Dataset) -> Dataset:
    return _with_uid(ds, "../../../../../../tmp/knee-node-bad-escape")


def _abs_path_uid(ds: Dataset) -> Dataset:
    return _with_uid(ds, "/tmp/knee-node-bad-escape-abs")


def _utf8_names(ds: Dataset) -> Dataset:
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.PatientName = "Müller^Zoë=山田^太郎"
    ds.StudyDescription = "Knie a.p. ü"
    return ds


def _unknown_charset(ds: Dataset) -> bytes:
    ds.SpecificCharacterSet = "ISO_IR 100"
    raw = _encoded(ds)
    return raw.replace(b"ISO_IR 100", b"X-KLINGON ", 1).replace(
        b"Doe^Janet^Secret", b"Doe^\xff\xfe\x80\x81t^Secret", 1
    )


def _bits_allocated_12(ds: Dataset) -> Dataset:
    ds.BitsAllocated = 12
    return ds


def _float_spacing_nan(ds: Dataset) -> bytes:
    raw = _encoded(ds)
    assert raw.count(b"0.5\\0.5") == 2
    return raw.replace(b"0.5\\0.5", b"nan\\abc")  # both spacing attributes unreadable


#: name -> (how to break the base instance, outcome the node must give)
CASES: dict[str, tuple[CaseFn, str]] = {
    "truncated_pixel_data": (_truncated_pixels, "error"),
    "truncated_header": (_truncated_header, "refused"),
    "garbage_dataset": (_garbage_dataset, "refused"),
    "no_pixel_data": (_no_pixels, "error"),
    "short_pixel_data": (_short_pixels, "error"),
    "absurd_rows_columns": (_absurd_size, "refused"),  # over node.limits.max_decoded_bytes
    "zero_rows": (_zero_rows, "error"),
    "unsupported_transfer_syntax": (_unsupported_syntax, "refused"),
    "private_transfer_syntax": (_private_syntax, "refused"),
    "palette_color": (_palette, "error"),
    "monochrome3": (_monochrome3, "error"),
    "colour_rgb": (_rgb, "error"),
    "multi_frame": (_multi_frame, "error"),
    "non_knee_chest": (_chest, "ignored"),
    "no_knee_in_image": (_not_a_knee, "error"),
    "no_pixel_spacing": (_no_spacing, "measured_or_error"),
    "invalid_pixel_spacing": (_float_spacing_nan, "measured_or_error"),
    "malformed_uid": (_bad_uid, "error"),
    "overlong_uid": (_long_uid, "error"),
    "uid_as_relative_path": (_path_uid, "error"),
    "uid_as_absolute_path": (_abs_path_uid, "error"),
    "utf8_names": (_utf8_names, "measured_or_error"),
    "unknown_character_set": (_unknown_charset, "measured_or_error"),
    "bits_allocated_12": (_bits_allocated_12, "error"),
}


def make(out: Path = OUT) -> dict[str, str]:
    """Write every case into ``out``; return ``{file name: outcome}``."""
    import warnings

    out.mkdir(parents=True, exist_ok=True)
    manifest = {}
    for i, (name, (fn, outcome)) in enumerate(sorted(CASES.items())):
        ds = _with_uid(_base(), f"1.2.826.0.1.3680043.10.1137.100.{i}")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # invalid values are the point
            made = fn(ds)
            raw = made if isinstance(made, bytes) else _encoded(made)
        (out / f"{name}.dcm").write_bytes(raw)
        manifest[f"{name}.dcm"] = outcome
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return manifest


if __name__ == "__main__":
    made = make()
    print(f"{len(made)} bad instances in {OUT}")
