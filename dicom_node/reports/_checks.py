"""Input checks shared by the SR and the secondary-capture constructors."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pydicom import Dataset

from dicom_node.errors import KneeNodeError
from inference.landmarks import names_for
from inference.measurement import KneeMeasurement


class ReportInputError(KneeNodeError, ValueError):
    """A source image or a measurement cannot be turned into a result object."""


class ReportTypeError(KneeNodeError, TypeError):
    """An argument of a result constructor has the wrong type."""


_REQUIRED_UIDS = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "SOPClassUID")


def check_source(source: object) -> Dataset:
    """Refuse a ``source`` that is not an image instance with its UIDs and pixel data."""
    if not isinstance(source, Dataset):
        raise ReportTypeError(f"source must be a pydicom Dataset, got {type(source).__name__}")
    for keyword in _REQUIRED_UIDS:
        if not str(source.get(keyword, "") or "").strip():
            raise ReportInputError(f"source has no {keyword}")
    if "PixelData" not in source:
        raise ReportInputError(f"source {source.SOPInstanceUID} has no PixelData")
    for keyword in ("Rows", "Columns"):
        value = source.get(keyword)
        if not isinstance(value, int) or value < 1:
            raise ReportInputError(f"source has no valid {keyword}: {value!r}")
    return source


def check_measurements(measurements: object, *, need_model: bool) -> tuple[KneeMeasurement, ...]:
    """Refuse empty or malformed ``measurements``; return them as a tuple.

    Landmarks must be finite ``(N, 2)`` arrays with N the size of the record's phase.
    ``need_model`` requires ``model`` (the SR's algorithm identification).
    """
    if isinstance(measurements, (str, bytes)) or not isinstance(measurements, Sequence):
        raise ReportTypeError(
            f"measurements must be a sequence of KneeMeasurement, got {type(measurements).__name__}"
        )
    if len(measurements) == 0:
        raise ReportInputError("measurements is empty: nothing to report")
    for i, m in enumerate(measurements):
        where = f"measurements[{i}]"
        if not isinstance(m, KneeMeasurement):
            raise ReportTypeError(f"{where} must be a KneeMeasurement, got {type(m).__name__}")
        pts = m.landmarks
        if not isinstance(pts, np.ndarray):
            raise ReportTypeError(
                f"{where}.landmarks must be a numpy array, got {type(pts).__name__}"
            )
        expected = len(names_for(m.phase))
        if pts.shape != (expected, 2):
            raise ReportInputError(
                f"{where}.landmarks must have shape ({expected}, 2) for phase {m.phase!r}, "
                f"got {pts.shape}"
            )
        if not np.all(np.isfinite(pts)):
            raise ReportInputError(f"{where}.landmarks contain NaN or infinite coordinates")
        if m.laterality not in ("L", "R"):
            raise ReportInputError(f"{where}.laterality must be 'L' or 'R', got {m.laterality!r}")
        if m.quality not in ("pass", "flag"):
            raise ReportInputError(f"{where}.quality must be 'pass' or 'flag', got {m.quality!r}")
        if not (np.isfinite(m.confidence) and 0.0 <= m.confidence <= 1.0):
            raise ReportInputError(f"{where}.confidence must be in [0, 1], got {m.confidence!r}")
        if need_model and m.model is None:
            raise ReportInputError(f"{where}.model is None: the SR needs the algorithm identity")
    return tuple(measurements)
