"""Anatomical tibiofemoral angle (aTFA) from landmarks, by FTS and by FNTS.

Definitions follow Hu et al. (paper ``000``, Fig. 4):

* **FTS** -- femoral axis through the mid-points of the proximal and distal femoral
  shaft cortex pairs; tibial axis through the mid-points of the proximal and distal
  tibial shaft cortex pairs.
* **FNTS** -- femoral axis from the mid-point of the proximal femoral shaft pair to the
  mid-point of the femoral notch pair; tibial axis as in FTS.

The aTFA is the signed angle between the femoral axis (pointing distally) and the
tibial axis (pointing distally): zero when they are collinear, **positive (valgus)
when the tibia points laterally** away from the femoral axis, negative (varus) when
it points medially. Medial and lateral are read from the landmarks themselves (the
tibial plateau corners), so the result does not depend on image orientation, scale,
position, or on whether a right knee was mirrored into a left one.

Every function is pure: it takes an ``(N, 2)`` array in the order of
:mod:`inference.landmarks` (either phase) and needs no image.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from inference import landmarks as lm

Method = Literal["FTS", "FNTS"]
METHODS: tuple[Method, ...] = ("FTS", "FNTS")


@dataclass(frozen=True)
class Axis:
    """A bone axis as two points, ``proximal`` and ``distal`` (x, y)."""

    proximal: tuple[float, float]
    distal: tuple[float, float]

    @property
    def direction(self) -> npt.NDArray[np.float64]:
        """Unit vector from proximal to distal."""
        d = np.subtract(self.distal, self.proximal)
        return d / np.linalg.norm(d)


def _as_points(landmarks: npt.ArrayLike) -> npt.NDArray[np.float64]:
    pts = np.asarray(landmarks, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 2:
        raise ValueError(f"landmarks must have shape (N, 2), got {pts.shape}")
    if pts.shape[0] < lm.N_PRE_OP:
        raise ValueError(f"landmarks must hold at least {lm.N_PRE_OP} points, got {pts.shape[0]}")
    if not np.all(np.isfinite(pts)):
        raise ValueError("landmarks contain NaN or infinite coordinates")
    return pts


def _mid(pts: npt.NDArray[np.float64], pair: lm.CortexPair) -> tuple[float, float]:
    m = 0.5 * (pts[pair.medial] + pts[pair.lateral])
    return (float(m[0]), float(m[1]))


def femoral_axis(landmarks: npt.ArrayLike, method: Method = "FTS") -> Axis:
    """Anatomical femoral axis by ``method`` ("FTS" or "FNTS")."""
    pts = _as_points(landmarks)
    proximal = _mid(pts, lm.FEMUR_SHAFT_PROXIMAL)
    if method == "FTS":
        return Axis(proximal, _mid(pts, lm.FEMUR_SHAFT_DISTAL))
    if method == "FNTS":
        return Axis(proximal, _mid(pts, lm.FEMUR_NOTCH))
    raise ValueError(f"method must be 'FTS' or 'FNTS', got {method!r}")


def tibial_axis(landmarks: npt.ArrayLike) -> Axis:
    """Anatomical tibial axis (the same for FTS and FNTS)."""
    pts = _as_points(landmarks)
    return Axis(_mid(pts, lm.TIBIA_SHAFT_PROXIMAL), _mid(pts, lm.TIBIA_SHAFT_DISTAL))


def lateral_direction(landmarks: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Unit vector pointing from the medial to the lateral tibial plateau corner."""
    pts = _as_points(landmarks)
    v = pts[lm.PLATEAU_LATERAL_CORNER] - pts[lm.PLATEAU_MEDIAL_CORNER]
    n = np.linalg.norm(v)
    if n == 0:
        raise ValueError("tibial plateau corners coincide; medial/lateral is undefined")
    return v / n


def atfa(landmarks: npt.ArrayLike, method: Method = "FTS") -> float:
    """Signed aTFA in degrees: valgus positive, varus negative.

    Parameters
    ----------
    landmarks
        ``(N, 2)`` points (x = column, y = row) in scheme order, N >= 113.
    method
        ``"FTS"`` or ``"FNTS"``.

    Returns
    -------
    float
        Angle between the femoral and tibial anatomical axes, in (-180, 180].
    """
    f = femoral_axis(landmarks, method).direction
    t = tibial_axis(landmarks).direction
    lat = lateral_direction(landmarks)
    cross = f[0] * t[1] - f[1] * t[0]
    magnitude = float(np.degrees(np.arctan2(abs(cross), float(np.dot(f, t)))))
    # Which way did the tibia turn?  Compare the turn with the turn toward lateral.
    toward_lateral = f[0] * lat[1] - f[1] * lat[0]
    sign = 1.0 if cross * toward_lateral >= 0 else -1.0
    return sign * magnitude


def atfa_all(landmarks: npt.ArrayLike) -> dict[str, float]:
    """aTFA by every method: ``{"FTS": ..., "FNTS": ...}``."""
    return {m: atfa(landmarks, m) for m in METHODS}


def alignment_verdict(angle_deg: float, neutral_band_deg: float = 0.0) -> str:
    """"valgus", "varus" or "neutral" for a signed aTFA.

    ``neutral_band_deg`` is the half-width around zero called neutral (0 by default,
    as in the paper: any deviation from zero is varus or valgus).
    """
    if angle_deg > neutral_band_deg:
        return "valgus"
    if angle_deg < -neutral_band_deg:
        return "varus"
    return "neutral"
