"""Transfer syntaxes the synthetic instances are written in, and the writing itself.

All offered syntaxes are lossless, so the stored pixels equal the generator's exactly:

============== ======================== ===========================================
name           transfer syntax UID      encoder
============== ======================== ===========================================
explicit       1.2.840.10008.1.2.1      none (native), the default
implicit       1.2.840.10008.1.2        none (native)
jpeg-lossless  1.2.840.10008.1.2.4.70   dcmtk ``dcmcjpeg +e1`` (pydicom has no encoder)
j2k-lossless   1.2.840.10008.1.2.4.90   pydicom + pylibjpeg-openjpeg
rle            1.2.840.10008.1.2.5      pydicom
jpeg-ls        1.2.840.10008.1.2.4.80   pydicom + pyjpegls (CharLS)
============== ======================== ===========================================
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import (
    UID,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    RLELossless,
)

from inference.errors import KneeNodeError
from training.synth_dicom.dataset import IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME

#: Offered transfer syntaxes by CLI name.
TRANSFER_SYNTAXES: dict[str, UID] = {
    "explicit": ExplicitVRLittleEndian,
    "implicit": ImplicitVRLittleEndian,
    "jpeg-lossless": JPEGLosslessSV1,
    "j2k-lossless": JPEG2000Lossless,
    "rle": RLELossless,
    "jpeg-ls": JPEGLSLossless,
}
_PYDICOM_PLUGIN: dict[str, str] = {
    "j2k-lossless": "pylibjpeg",
    "rle": "pydicom",
    "jpeg-ls": "pyjpegls",
}
DCMCJPEG_TIMEOUT_S = 120.0


class SynthDicomError(KneeNodeError):
    """A synthetic instance cannot be encoded or written (missing encoder, tool failure)."""


def _check_name(syntax: str) -> UID:
    try:
        return TRANSFER_SYNTAXES[syntax]
    except KeyError:
        raise ValueError(
            f"syntax must be one of {sorted(TRANSFER_SYNTAXES)}, got {syntax!r}"
        ) from None


def _restamp_meta(ds: Dataset) -> None:
    ds.file_meta.ImplementationClassUID = IMPLEMENTATION_CLASS_UID
    ds.file_meta.ImplementationVersionName = IMPLEMENTATION_VERSION_NAME
    ds.file_meta.SourceApplicationEntityTitle = "KNEE_SYNTH"


def _dcmcjpeg(ds: Dataset) -> Dataset:
    """Encode ``ds`` (native) as JPEG Lossless SV1 with dcmtk's dcmcjpeg."""
    tool = shutil.which("dcmcjpeg")
    if tool is None:
        raise SynthDicomError(
            "transfer syntax 'jpeg-lossless' needs dcmtk's dcmcjpeg on PATH "
            "(Debian/Ubuntu: apt-get install dcmtk); pydicom has no JPEG Lossless encoder"
        )
    with tempfile.TemporaryDirectory(prefix="knee-synth-") as tmp:
        src, dst = Path(tmp) / "native.dcm", Path(tmp) / "jpeg.dcm"
        ds.save_as(src, enforce_file_format=True)
        # +e1: lossless, first-order prediction (SV1); +un: keep the SOP Instance UID.
        cmd = [tool, "+e1", "+un", str(src), str(dst)]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=DCMCJPEG_TIMEOUT_S)
        except subprocess.TimeoutExpired as exc:
            raise SynthDicomError(f"dcmcjpeg took more than {DCMCJPEG_TIMEOUT_S:.0f} s") from exc
        if done.returncode != 0 or not dst.exists():
            raise SynthDicomError(
                f"dcmcjpeg failed (exit {done.returncode}): {done.stderr.strip()[:500]}"
            )
        out = dcmread(dst)
    _restamp_meta(out)
    return out


def encode(ds: Dataset, syntax: str = "explicit") -> Dataset:
    """Return ``ds`` in transfer syntax ``syntax`` (a name of :data:`TRANSFER_SYNTAXES`).

    ``ds`` must be native Explicit VR Little Endian, as made by
    :func:`training.synth_dicom.dataset.to_dataset`.  The native and pydicom-encoded
    syntaxes modify and return ``ds`` itself; ``jpeg-lossless`` returns a new dataset
    (dcmtk adds a DerivationDescription saying which lossless process was used).

    Raises
    ------
    ValueError
        Unknown ``syntax``.
    SynthDicomError
        The encoder is missing or fails.
    """
    uid = _check_name(syntax)
    if not isinstance(ds, Dataset):
        raise TypeError(f"ds must be a pydicom Dataset, got {type(ds).__name__}")
    if ds.file_meta.TransferSyntaxUID != ExplicitVRLittleEndian:
        raise ValueError(
            f"ds must be native Explicit VR Little Endian, got {ds.file_meta.TransferSyntaxUID}"
        )
    if syntax == "explicit":
        return ds
    if syntax == "implicit":
        ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
        return ds
    if syntax == "jpeg-lossless":
        return _dcmcjpeg(ds)
    try:
        ds.compress(uid, encoding_plugin=_PYDICOM_PLUGIN[syntax], generate_instance_uid=False)
    except (RuntimeError, ValueError) as exc:  # pydicom reports a missing or failing plugin so
        raise SynthDicomError(f"cannot encode {syntax!r} ({uid.name}): {exc}") from exc
    return ds


def write(ds: Dataset, path: str | Path, syntax: str = "explicit") -> Dataset:
    """Encode ``ds`` in ``syntax`` and write it as a DICOM file (preamble + file meta).

    Returns the dataset as written.
    """
    out = encode(ds, syntax)
    path = Path(path)
    out.save_as(path, enforce_file_format=True)
    return out
