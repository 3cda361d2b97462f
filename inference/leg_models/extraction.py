"""Point extraction from one landmark's probability map: Methods 1-5 of paper 001 §II-D.

Each function takes a ``(H, W)`` map of values in [0, 1] and returns an
:class:`Extraction` with the (x, y) point in pixel coordinates (pixel centres at integers)
or ``None`` when nothing is found, and the number of candidate regions (connected
components) it saw; more than one is counted as a false positive.

* **M1** probability-weighted centroid of the whole map;
* **M2** the largest connected component of ``p > 0.5``, then M1 inside it;
* **M3** threshold at ``(min + max) / 2``, the largest component, its weighted centroid
  (the method 001 chose);
* **M4** binarise at 0.5, morphological opening with a disc of radius 2, centroid of each
  component (finds no point or several);
* **M5** argmax.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from inference.leg_models.base import LegModelError

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Extraction:
    """One extracted point: ``point`` (x, y) or None, and the candidate components seen."""

    point: FloatArray | None
    candidates: int


def _check(prob: npt.ArrayLike) -> FloatArray:
    p = np.asarray(prob, dtype=np.float64)
    if p.ndim != 2 or min(p.shape) < 1:
        raise LegModelError(f"prob must be a non-empty 2-D map, got shape {p.shape}")
    if not np.all(np.isfinite(p)):
        raise LegModelError("prob contains NaN or infinite values")
    return np.clip(p, 0.0, None)


def _weighted_centroid(p: FloatArray, region: npt.NDArray[np.bool_] | None = None
                       ) -> FloatArray | None:
    w = p if region is None else np.where(region, p, 0.0)
    total = float(w.sum())
    if total <= 0:
        return None
    ys, xs = np.indices(w.shape)
    return np.array([float((w * xs).sum() / total), float((w * ys).sum() / total)])


def _largest(binary: npt.NDArray[np.bool_]) -> tuple[npt.NDArray[np.bool_] | None, int]:
    lab, n = ndimage.label(binary)
    if n == 0:
        return None, 0
    sizes = ndimage.sum_labels(np.ones_like(lab), lab, index=np.arange(1, n + 1))
    return lab == (int(np.argmax(sizes)) + 1), int(n)


def m1_weighted_centroid(prob: npt.ArrayLike) -> Extraction:
    """M1: the probability-weighted centroid of the whole map."""
    p = _check(prob)
    c = _weighted_centroid(p)
    return Extraction(c, 0 if c is None else 1)


def m2_largest_component(prob: npt.ArrayLike, threshold: float = 0.5) -> Extraction:
    """M2: the largest connected component of ``prob > threshold``, then its weighted centroid."""
    p = _check(prob)
    region, n = _largest(p > threshold)
    if region is None:
        return Extraction(None, 0)
    return Extraction(_weighted_centroid(p, region), n)


def m3_midrange_component(prob: npt.ArrayLike) -> Extraction:
    """M3: threshold at (min + max) / 2, largest component, weighted centroid (001's choice)."""
    p = _check(prob)
    lo, hi = float(p.min()), float(p.max())
    if hi - lo <= 1e-12:
        return Extraction(None, 0)
    region, n = _largest(p >= 0.5 * (lo + hi))
    if region is None:
        return Extraction(None, 0)
    return Extraction(_weighted_centroid(p - lo, region), n)


_DISC2 = np.hypot(*np.mgrid[-2:3, -2:3]) <= 2.0


def m4_open_centroid(prob: npt.ArrayLike, threshold: float = 0.5) -> Extraction:
    """M4: binarise at 0.5, open with a disc of radius 2, unweighted centroid.

    None when the opening leaves nothing (a missed point); with several components the
    largest is used and ``candidates`` counts them all (the extra ones are false positives).
    """
    p = _check(prob)
    opened = ndimage.binary_opening(p > threshold, structure=_DISC2)
    region, n = _largest(opened)
    if region is None:
        return Extraction(None, 0)
    ys, xs = np.nonzero(region)
    return Extraction(np.array([float(xs.mean()), float(ys.mean())]), n)


def m5_argmax(prob: npt.ArrayLike) -> Extraction:
    """M5: the pixel of the largest value (the first in row-major order on ties)."""
    p = _check(prob)
    if float(p.max()) <= 0:
        return Extraction(None, 0)
    y, x = np.unravel_index(int(np.argmax(p)), p.shape)
    return Extraction(np.array([float(x), float(y)]), 1)


METHODS: dict[str, Callable[[npt.ArrayLike], Extraction]] = {
    "M1": m1_weighted_centroid,
    "M2": m2_largest_component,
    "M3": m3_midrange_component,
    "M4": m4_open_centroid,
    "M5": m5_argmax,
}


def extract(prob: npt.ArrayLike, method: str) -> Extraction:
    """Run extraction ``method`` ("M1".."M5") on ``prob``.

    Raises
    ------
    LegModelError
        ``method`` is unknown.
    """
    if method not in METHODS:
        raise LegModelError(f"method must be one of {sorted(METHODS)}, got {method!r}")
    return METHODS[method](prob)
