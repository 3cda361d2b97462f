"""Quality control: is this a knee, and is the landmark outline plausible?

Four kinds of evidence, combined by :func:`assess` into a confidence in [0, 1] and a
pass/flag verdict with reasons:

* **the models' own image-level answers** -- the global network's "knee present"
  probability and the local network's "the patch shows a correctly framed, un-mirrored
  AP knee" probability (both trained with non-knee images, far-off and mirrored frames);
* **soft-argmax spread** -- the median standard deviation of the landmark distributions,
  in percent of the plateau width (wide distributions = the model is unsure);
* **shape plausibility** -- plateau width in mm (when the pixel spacing is known), cortex
  pairs in medial/lateral order, the fibular head lateral to the tibia, femoral and
  tibial outlines that do not cross themselves;
* **laterality** -- how sure the global search is which plateau corner is lateral, and the
  header's Image Laterality against the side the fibular head is on;
* **shaft visibility** -- the edge contrast the image shows across the four shaft cortex
  lines at the predicted axis points (:mod:`inference.shaft_evidence`): a shaft cut off
  by the collimation or the image edge gives the problem ``shaft_not_visible`` instead of
  an axis filled in from what the network expects.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from inference import landmarks as lm
from inference.alignment import lateral_direction
from inference.shaft_evidence import hidden_bones

#: Name of the problem raised when a shaft the axis needs is not in the image.
SHAFT_NOT_VISIBLE = "shaft_not_visible"


@dataclass(frozen=True)
class QualityThresholds:
    """Limits of the checks (see ``docs/model.md`` for how they were chosen)."""

    min_knee_probability: float = 0.5
    min_frame_probability: float = 0.5
    max_median_spread_pct: float = 16.0
    plateau_mm: tuple[float, float] = (45.0, 110.0)
    min_confidence: float = 0.5
    min_side_certainty: float = 0.5
    #: Least edge contrast (normalised intensity, :mod:`inference.shaft_evidence`) of each
    #: shaft cortex line at its axis points.  Chosen on our generator's images only: 0.021
    #: by :func:`training.collimation.suggested_threshold` on 40 knees, 120 images
    #: (``python -m training.collimation --seed 975000000 --count 40``; uncut >= 0.157,
    #: 95 % of cut <= 0.0029; ``docs/robustness.md``), rounded to 0.02.
    min_shaft_contrast: float = 0.02


@dataclass(frozen=True)
class QualityReport:
    """Outcome of :func:`assess`."""

    quality: str  # "pass" or "flag"
    confidence: float
    reasons: tuple[str, ...]
    figures: dict[str, float]


def _segments_cross(p1: np.ndarray, p2: np.ndarray, q1: np.ndarray, q2: np.ndarray) -> bool:
    def orient(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> float:
        return float((b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0]))

    d1, d2 = orient(q1, q2, p1), orient(q1, q2, p2)
    d3, d4 = orient(p1, p2, q1), orient(p1, p2, q2)
    return (d1 * d2 < 0) and (d3 * d4 < 0)


def self_intersections(curve: npt.ArrayLike) -> int:
    """Number of pairs of non-adjacent segments of an open polyline that cross."""
    pts = np.asarray(curve, dtype=np.float64)
    n = len(pts) - 1
    count = 0
    for i in range(n):
        for j in range(i + 2, n):
            if _segments_cross(pts[i], pts[i + 1], pts[j], pts[j + 1]):
                count += 1
    return count


def shape_problems(
    landmarks: npt.ArrayLike, pixel_spacing_mm: tuple[float, float] | None,
    thresholds: QualityThresholds = QualityThresholds(),
) -> list[str]:
    """Reasons why an outline is not a plausible AP knee (empty list when it is)."""
    pts = np.asarray(landmarks, dtype=np.float64)
    problems: list[str] = []
    w_px = lm.plateau_width(pts)
    if w_px < 4:
        return ["tibial plateau corners coincide"]
    if pixel_spacing_mm is not None:
        w_mm = float(np.linalg.norm((pts[lm.PLATEAU_LATERAL_CORNER] - pts[lm.PLATEAU_MEDIAL_CORNER])
                                    * np.array([pixel_spacing_mm[1], pixel_spacing_mm[0]])))
        lo, hi = thresholds.plateau_mm
        if not lo <= w_mm <= hi:
            problems.append(f"tibial plateau width {w_mm:.0f} mm outside {lo:.0f}-{hi:.0f} mm")
    lat = lateral_direction(pts)
    for label, pair in (
        ("proximal femoral cortex", lm.FEMUR_SHAFT_PROXIMAL),
        ("distal femoral cortex", lm.FEMUR_SHAFT_DISTAL),
        ("proximal tibial cortex", lm.TIBIA_SHAFT_PROXIMAL),
        ("distal tibial cortex", lm.TIBIA_SHAFT_DISTAL),
        ("femoral notch", lm.FEMUR_NOTCH),
    ):
        sep = float(np.dot(pts[pair.lateral] - pts[pair.medial], lat)) / w_px
        if sep <= 0.02:
            problems.append(f"{label} pair not in medial/lateral order")
    fib = pts[slice(*lm.CURVES["fibula_head"])].mean(axis=0)
    tib_mid = 0.5 * (pts[lm.PLATEAU_MEDIAL_CORNER] + pts[lm.PLATEAU_LATERAL_CORNER])
    if float(np.dot(fib - tib_mid, lat)) <= 0:
        problems.append("fibular head is not lateral to the tibia")
    for name in ("femur", "tibia"):
        a, b = lm.CURVES[name]
        crossings = self_intersections(pts[a:b])
        if crossings:
            problems.append(f"{name} outline crosses itself ({crossings}x)")
    return problems


def assess(
    *,
    knee_probability: float,
    frame_probability: float,
    median_spread_pct: float,
    landmarks: npt.ArrayLike,
    pixel_spacing_mm: tuple[float, float] | None,
    image_laterality: str,
    header_laterality: str | None,
    image_shape: tuple[int, int],
    side_certainty: float = 1.0,
    shaft_contrast: Mapping[str, float] | None = None,
    thresholds: QualityThresholds = QualityThresholds(),
) -> QualityReport:
    """Combine the evidence into a confidence and a verdict.

    Confidence is ``p_knee * p_frame * s`` where ``s = exp(-max(0, spread - 0.75 T) / (0.25 T))``
    falls from 1 once the median spread passes 3/4 of its limit ``T``; shape and
    laterality problems halve it.  A shaft that is not visible (a cortex line's
    ``shaft_contrast`` below ``min_shaft_contrast`` ``C``) multiplies it by
    ``0.5 * c / C`` for the lowest such contrast ``c`` (0 when ``c <= 0``).  The verdict is
    "flag" when any check fails or the confidence is below ``min_confidence``.

    ``shaft_contrast`` is :func:`inference.shaft_evidence.shaft_contrast` of the image;
    None skips the shaft check.
    """
    t = thresholds
    reasons: list[str] = []
    if knee_probability < t.min_knee_probability:
        reasons.append(f"no knee found (knee probability {knee_probability:.2f})")
    if frame_probability < t.min_frame_probability:
        reasons.append(f"local model rejects the knee patch (probability {frame_probability:.2f})")
    if median_spread_pct > t.max_median_spread_pct:
        reasons.append(f"landmark heatmaps are diffuse (median spread {median_spread_pct:.1f}% "
                       f"of plateau width > {t.max_median_spread_pct:.1f}%)")
    if side_certainty < t.min_side_certainty:
        reasons.append(
            f"global search unsure which side is lateral (certainty {side_certainty:.2f})"
        )
    pts = np.asarray(landmarks, dtype=np.float64)
    rows, cols = image_shape
    w = max(lm.plateau_width(pts), 1.0)
    outside = (pts[:, 0] < -0.25 * w) | (pts[:, 0] > cols - 1 + 0.25 * w) | (
        pts[:, 1] < -0.25 * w) | (pts[:, 1] > rows - 1 + 0.25 * w)
    if outside.any():
        reasons.append(f"{int(outside.sum())} landmarks fall outside the image")
    shape = shape_problems(pts, pixel_spacing_mm, t)
    reasons.extend(shape)
    if header_laterality is not None and header_laterality != image_laterality:
        reasons.append(
            f"header Image Laterality {header_laterality} disagrees with the image "
            f"(fibular head side says {image_laterality}); the image's laterality was used"
        )
    hidden = {} if shaft_contrast is None else hidden_bones(shaft_contrast,
                                                             t.min_shaft_contrast)
    for bone, c in sorted(hidden.items()):
        reasons.append(f"{SHAFT_NOT_VISIBLE}: {bone} shaft (cortex contrast {c:.4f} < "
                       f"{t.min_shaft_contrast:.4f}; cut off by the collimation or the image "
                       f"edge?), its axis is not measured from the image")
    knee_ = 0.75 * t.max_median_spread_pct
    s = math.exp(-max(0.0, median_spread_pct - knee_) / (t.max_median_spread_pct - knee_))
    confidence = float(np.clip(knee_probability * frame_probability * s, 0.0, 1.0))
    if shape or (header_laterality is not None and header_laterality != image_laterality):
        confidence *= 0.5
    if hidden:
        confidence *= 0.5 * max(min(hidden.values()), 0.0) / t.min_shaft_contrast
    if confidence < t.min_confidence and not reasons:
        reasons.append(f"confidence {confidence:.2f} below {t.min_confidence:.2f}")
    return QualityReport(
        quality="flag" if reasons else "pass",
        confidence=confidence,
        reasons=tuple(reasons),
        figures={"knee_probability": knee_probability, "frame_probability": frame_probability,
                 "median_spread_pct": median_spread_pct,
                 **({} if shaft_contrast is None
                    else {"shaft_contrast_min": float(min(shaft_contrast.values()))})},
    )
