"""DICOM-aware pixels: from a radiograph instance to a float image with bone bright.

pydicom does the DICOM work: ``Dataset.pixel_array`` decodes the transfer syntax (native,
RLE, JPEG, JPEG-LS, JPEG 2000 through pylibjpeg), and
:func:`pydicom.pixels.apply_modality_lut` applies the Modality LUT or Rescale Slope and
Intercept.  This module then turns MONOCHROME1 (bright = little attenuation) around so
bone is bright, and normalises to [0, 1] between robust percentiles, which makes the
result independent of bit depth and of the VOI window the modality chose.  (The VOI LUT
is a display choice and is deliberately *not* applied: clipping by a narrow window would
throw away bone detail the model needs.)

Pixel spacing comes from Pixel Spacing, or from Imager Pixel Spacing divided by the
magnification (Estimated Radiographic Magnification Factor, else Distance Source to
Detector / Distance Source to Patient), as ``(row, column)`` in mm.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pydicom
from pydicom.pixels import apply_modality_lut

from inference.errors import InputImageError

#: Percentiles mapped to 0 and 1 by :func:`normalize_intensity`.
LOW_PERCENTILE = 0.5
HIGH_PERCENTILE = 99.5


@dataclass(frozen=True)
class RadiographPixels:
    """A radiograph ready for the models.

    ``image`` is ``(rows, cols)`` float32 in [0, 1] with bone bright;
    ``pixel_spacing_mm`` is ``(row, col)`` or None when the header gives none;
    ``spacing_source`` names the attribute it came from.
    """

    image: npt.NDArray[np.float32]
    pixel_spacing_mm: tuple[float, float] | None
    spacing_source: str | None
    photometric: str
    image_laterality: str | None


def normalize_intensity(values: npt.ArrayLike) -> npt.NDArray[np.float32]:
    """Map ``values`` linearly so the 0.5th and 99.5th percentiles become 0 and 1 (clipped).

    Percentiles come from a regular subsample of at most ~250k pixels (fast on large
    images).  A constant image becomes all zeros.
    """
    arr = np.asarray(values, dtype=np.float32)
    if arr.ndim != 2:
        raise ValueError(f"values must be a 2-D image, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError("values contain NaN or infinite pixels")
    step = max(1, int(np.sqrt(arr.size / 250_000)))
    sample = arr[::step, ::step]
    lo, hi = np.percentile(sample, [LOW_PERCENTILE, HIGH_PERCENTILE])
    if hi - lo <= 1e-6 * max(1.0, abs(hi)):
        return np.zeros_like(arr)
    # one float32 output written in place (no float64 temporaries on a 45 MB image)
    out = np.subtract(arr, np.float32(lo), dtype=np.float32)
    out *= np.float32(1.0 / (hi - lo))
    np.clip(out, 0.0, 1.0, out=out)
    return out


def bone_bright(values: npt.ArrayLike, photometric: str) -> npt.NDArray[np.float32]:
    """Turn MONOCHROME1 values around (negate) so larger means more attenuation."""
    arr = np.asarray(values, dtype=np.float32)
    if photometric == "MONOCHROME1":
        return -arr
    if photometric == "MONOCHROME2":
        return arr
    raise ValueError(f"photometric must be MONOCHROME1 or MONOCHROME2, got {photometric!r}")


def stored_to_image(pixels: npt.ArrayLike, photometric: str) -> npt.NDArray[np.float32]:
    """Stored values (already in output units) -> [0, 1] float image with bone bright."""
    return normalize_intensity(bone_bright(pixels, photometric))


def _positive(ds: pydicom.Dataset, keyword: str) -> float | None:
    value = ds.get(keyword)
    try:
        f = float(value) if value is not None else None
    except (TypeError, ValueError):
        return None
    return f if f is not None and np.isfinite(f) and f > 0 else None


def _magnification(ds: pydicom.Dataset) -> float:
    """Detector-plane to object-plane factor: Estimated Radiographic Magnification Factor,
    else Distance Source to Detector / Distance Source to Patient, else 1."""
    mag = _positive(ds, "EstimatedRadiographicMagnificationFactor")
    if mag is not None:
        return mag
    sid = _positive(ds, "DistanceSourceToDetector")
    sod = _positive(ds, "DistanceSourceToPatient")
    if sid is not None and sod is not None:
        return sid / sod
    return 1.0


def pixel_spacing(ds: pydicom.Dataset) -> tuple[tuple[float, float] | None, str | None]:
    """``((row_mm, col_mm), source)`` from Pixel Spacing or Imager Pixel Spacing, else None."""
    for keyword in ("PixelSpacing", "ImagerPixelSpacing"):
        value = ds.get(keyword)
        if value is None:
            continue
        try:
            row, col = (float(v) for v in value)
        except (TypeError, ValueError):
            continue
        if not (np.isfinite(row) and np.isfinite(col) and row > 0 and col > 0):
            continue
        if keyword == "ImagerPixelSpacing":
            factor = _magnification(ds)
            row, col = row / factor, col / factor
        return (row, col), keyword
    return None, None


def _modality_values(stored: npt.NDArray[np.generic],
                     ds: pydicom.Dataset) -> npt.NDArray[np.generic]:
    """Stored values through the Modality LUT, in float32 for a linear rescale.

    pydicom's ``apply_modality_lut`` turns a rescaled 16-bit image into float64 (180 MB
    for a 2800 x 8100 full-leg image); a linear rescale is done here in float32 instead,
    and an image without one is passed on as it is. A Modality LUT Sequence still goes
    through pydicom.
    """
    if "ModalityLUTSequence" in ds:
        return np.asarray(apply_modality_lut(stored, ds))
    slope = float(ds.get("RescaleSlope", 1.0) or 1.0)
    intercept = float(ds.get("RescaleIntercept", 0.0) or 0.0)
    if slope == 1.0 and intercept == 0.0:
        return stored
    out = stored.astype(np.float32)
    out *= np.float32(slope)
    out += np.float32(intercept)
    return out


def read_radiograph(ds: pydicom.Dataset) -> RadiographPixels:
    """Decode, rescale and normalise the pixel data of one radiograph instance.

    Raises
    ------
    InputImageError
        No pixel data, pixel data that cannot be decoded, more than one frame, colour
        data, or an image smaller than 32 x 32.
    """
    if not isinstance(ds, pydicom.Dataset):
        raise TypeError(f"ds must be a pydicom Dataset, got {type(ds).__name__}")
    if "PixelData" not in ds:
        raise InputImageError("the instance has no Pixel Data")
    photometric = str(ds.get("PhotometricInterpretation", "")).strip()
    if photometric not in ("MONOCHROME1", "MONOCHROME2"):
        raise InputImageError(
            f"Photometric Interpretation {photometric or '(missing)'} is not a grayscale radiograph"
        )
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if frames != 1:
        raise InputImageError(f"expected a single-frame radiograph, got {frames} frames")
    try:
        stored = ds.pixel_array
        values = _modality_values(stored, ds)
    except (ValueError, TypeError, AttributeError, RuntimeError, NotImplementedError) as exc:
        raise InputImageError(f"pixel data cannot be decoded: {exc}") from exc
    values = np.asarray(values)
    if values.ndim != 2:
        raise InputImageError(f"expected 2-D pixel data, got shape {values.shape}")
    if min(values.shape) < 32:
        raise InputImageError(f"image of {values.shape[0]}x{values.shape[1]} pixels is too small")
    if values.dtype.kind == "f" and not np.all(np.isfinite(values)):
        raise InputImageError("pixel data holds NaN or infinite values")
    spacing, source = pixel_spacing(ds)
    laterality = ds.get("ImageLaterality") or ds.get("Laterality") or None
    laterality = str(laterality).strip().upper() if laterality else None
    if laterality not in ("L", "R"):
        laterality = None
    return RadiographPixels(
        image=stored_to_image(values, photometric),
        pixel_spacing_mm=spacing,
        spacing_source=source,
        photometric=photometric,
        image_laterality=laterality,
    )
