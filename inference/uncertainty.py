"""A 95 % interval per aTFA, from the model's own spread, and the verdict it implies.

Two model-derived signals are propagated to each angle (FTS, FNTS):

* **frame spread** -- the standard deviation of the angle over the local-search frames
  (the final pass and the ``tta_frames`` perturbed frames of
  :class:`inference.predictor.KneePredictor`), each frame's landmarks measured on its own;
* **soft-argmax spread** -- the spread of the heat-map distributions of the aTFA points
  (:data:`inference.landmarks.ATFA_POINTS`) carried through the axis geometry: each axis
  mid-point moves sideways by ``sqrt((s_m^2 + s_l^2) / 2) / 2`` (``s`` per-point spread,
  split evenly over x and y), an axis of length ``L`` turns by
  ``sqrt(s_A^2 + s_B^2) / L``, and the femoral and tibial turns add in quadrature.

The raw standard deviation is ``sigma = sqrt(frame^2 + (SPREAD_WEIGHT * spread)^2)``; the
95 % half-width is ``sqrt(INTERVAL_FLOOR_DEG^2 + (INTERVAL_SCALE * sigma)^2)`` (a floor for
the error the spreads do not see, e.g. a bias shared by every frame, plus a scaled spread).
``INTERVAL_FLOOR_DEG``, ``INTERVAL_SCALE`` and ``SPREAD_WEIGHT`` were calibrated on
validation renders of ``training/synth`` (seeds 813,000,000+, never training or hold-out
data) with ``knee-node calibrate-interval``; they were **not** tuned on the independent
renderer (``docs/results/interval_calibration.json``).  They hold on our hold-out (97 %
coverage) but not on the independent renderer (45-72 %): see ``docs/robustness.md``.

When :data:`FLAG_ON_INTERVAL` is on, a knee whose interval is wider than
:data:`MAX_HALF_WIDTH_DEG` is flagged: the angle is then too uncertain to say varus or
valgus at the resolution a surgeon reads.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from inference import landmarks as lm
from inference.alignment import METHODS, atfa_all

#: Multiplier of the raw sigma giving the 95 % half-width (calibrated, see module docstring).
INTERVAL_SCALE: float = 0.0176
#: Weight of the soft-argmax term in the raw sigma (calibrated with INTERVAL_SCALE).
SPREAD_WEIGHT: float = 1.0
#: Floor of the 95 % half-width in degrees (calibrated with INTERVAL_SCALE).
INTERVAL_FLOOR_DEG: float = 0.65
#: Half-width (deg) above which an interval is too wide to tell varus from valgus.
MAX_HALF_WIDTH_DEG: float = 2.0
#: Whether the predictor flags on the interval.  Off: the calibrated interval (floor
#: 0.65 deg + a small spread term, docs/results/interval_calibration.json) is nearly
#: constant, flags no knee of either renderer at MAX_HALF_WIDTH_DEG, and covers only
#: 44-64 % of the independent renderer's knees (docs/results/renderers.md): it does not yet
#: carry the information a flag needs, and the independent flag rate is above 5 % anyway.
FLAG_ON_INTERVAL: bool = False


@dataclass(frozen=True)
class AngleUncertainty:
    """Raw spreads and the calibrated 95 % half-width per method (degrees)."""

    frame_sd: dict[str, float]
    spread_sd: dict[str, float]
    half_width: dict[str, float]

    def reasons(self, limit: float | None = None) -> list[str]:
        """Flag reasons: every method whose interval is wider than ``limit`` (default:
        :data:`MAX_HALF_WIDTH_DEG` when :data:`FLAG_ON_INTERVAL`, else no reasons)."""
        if limit is None:
            if not FLAG_ON_INTERVAL:
                return []
            limit = MAX_HALF_WIDTH_DEG
        return [f"aTFA {m} 95% interval +-{hw:.1f} deg is wider than +-{limit:.1f} deg "
                f"(too uncertain to tell varus from valgus)"
                for m, hw in self.half_width.items() if hw > limit]


def frame_sd(frames: npt.ArrayLike | None) -> dict[str, float]:
    """Standard deviation of each aTFA over frames ``(F, N, 2)`` (0 when fewer than 2)."""
    if frames is None:
        return {m: 0.0 for m in METHODS}
    stack = np.asarray(frames, dtype=np.float64)
    if stack.ndim != 3 or stack.shape[2] != 2:
        raise ValueError(f"frames must have shape (F, N, 2), got {stack.shape}")
    if len(stack) < 2:
        return {m: 0.0 for m in METHODS}
    angles = [atfa_all(f) for f in stack]
    return {m: float(np.std([a[m] for a in angles], ddof=1)) for m in METHODS}


def _axis_sd(pts: npt.NDArray[np.float64], s: npt.NDArray[np.float64],
             a: lm.CortexPair, b: lm.CortexPair) -> float:
    def mid_sd(p: lm.CortexPair) -> float:
        return float(np.sqrt((s[p.medial] ** 2 + s[p.lateral] ** 2) / 2.0) / 2.0)

    ma = 0.5 * (pts[a.medial] + pts[a.lateral])
    mb = 0.5 * (pts[b.medial] + pts[b.lateral])
    length = max(float(np.linalg.norm(ma - mb)), 1e-6)
    return float(np.hypot(mid_sd(a), mid_sd(b)) / length)


def spread_sd(landmarks: npt.ArrayLike, spread_pct: npt.ArrayLike) -> dict[str, float]:
    """Angle standard deviation (deg) from the soft-argmax spread of the aTFA points.

    Parameters
    ----------
    landmarks
        ``(N, 2)`` landmarks (N >= 113), pixels.
    spread_pct
        ``(N,)`` per-landmark spread in percent of the plateau width.
    """
    pts = np.asarray(landmarks, dtype=np.float64)
    sp = np.asarray(spread_pct, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[0] < lm.N_PRE_OP or sp.shape[0] < lm.N_PRE_OP:
        raise ValueError(f"landmarks and spread_pct must cover {lm.N_PRE_OP} points, got "
                         f"{pts.shape} and {sp.shape}")
    s = sp / 100.0 * lm.plateau_width(pts)
    tib = _axis_sd(pts, s, lm.TIBIA_SHAFT_PROXIMAL, lm.TIBIA_SHAFT_DISTAL)
    out = {}
    for m, distal in (("FTS", lm.FEMUR_SHAFT_DISTAL), ("FNTS", lm.FEMUR_NOTCH)):
        fem = _axis_sd(pts, s, lm.FEMUR_SHAFT_PROXIMAL, distal)
        out[m] = float(np.degrees(np.hypot(fem, tib)))
    return out


def combine(frame: dict[str, float], spread: dict[str, float],
            scale: float | None = None, weight: float | None = None,
            floor: float | None = None) -> dict[str, float]:
    """Calibrated 95 % half-widths ``sqrt(floor^2 + (scale * sqrt(frame^2 +
    (weight * spread)^2))^2)``; each constant defaults to the module's calibrated value.

    ``scale`` 0 with a positive ``floor`` gives a constant interval.
    """
    scale = INTERVAL_SCALE if scale is None else scale
    weight = SPREAD_WEIGHT if weight is None else weight
    floor = INTERVAL_FLOOR_DEG if floor is None else floor
    if scale < 0 or weight < 0 or floor < 0 or (scale == 0 and floor == 0):
        raise ValueError(f"scale, weight and floor must be >= 0 and scale or floor > 0, got "
                         f"scale={scale!r}, weight={weight!r}, floor={floor!r}")
    return {m: float(np.hypot(floor, scale * np.hypot(frame[m], weight * spread[m])))
            for m in METHODS}


def assess_angles(landmarks: npt.ArrayLike, spread_pct: npt.ArrayLike,
                  frames: npt.ArrayLike | None) -> AngleUncertainty:
    """Spreads and calibrated 95 % half-widths of one knee's aTFA."""
    f = frame_sd(frames)
    s = spread_sd(landmarks, spread_pct)
    return AngleUncertainty(frame_sd=f, spread_sd=s, half_width=combine(f, s))
