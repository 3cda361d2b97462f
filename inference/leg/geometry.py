"""Alignment of one leg on a full-leg AP radiograph (papers 001 and 003), from its landmarks.

Every function is pure: it takes one leg's ``(N, 2)`` landmarks in the order of
:mod:`inference.leg.landmarks` (x = column, y = row; pixels or mm) and needs no image.

Conventions
-----------
* **Axes.** Femoral mechanical axis: femoral head centre -> knee centre. Tibial mechanical
  axis: knee centre -> ankle centre. Femoral anatomical axis (003): diaphysis centre -> knee
  centre. Condylar line: ``condyle_medial_distal`` -> ``condyle_lateral_distal``; plateau line:
  ``plateau_medial`` -> ``plateau_lateral``.
* **Medial/lateral** is read from the landmarks (the condylar line points medial -> lateral),
  never from the image, so every value is unchanged by rotating, scaling or translating the
  points and by mirroring a right leg into a left one.
* **mLDFA** -- the lateral angle between the femoral mechanical axis (from the knee toward the
  hip) and the condylar line (toward lateral); 90 deg when perpendicular, > 90 deg for a
  varus distal femur. **mMPTA** -- the medial angle between the tibial mechanical axis (from
  the knee toward the ankle) and the plateau line (toward medial); < 90 deg for a varus
  proximal tibia. Both lie in [0, 180].
* **aHKA** = mMPTA - mLDFA (negative = varus), **JLO** = mMPTA + mLDFA (< 177 apex distal).
* **HKA_deg** -- signed deviation of the tibial from the femoral mechanical axis: 0 when
  collinear, negative for varus (the ankle lies medial to the extended femoral axis),
  positive for valgus. **HKA_180_deg** = 180 + HKA_deg, the value surgeons quote (varus
  < 180).
* **JLCA** -- signed angle from the condylar line to the plateau line: positive when the lines
  converge medially (the joint opens laterally, which adds varus). With these signs
  ``HKA = aHKA - JLCA`` exactly, because both mechanical axes pass through the knee centre.
* **FVA** -- signed angle from the femoral mechanical to the femoral anatomical axis (both
  from the knee proximally): positive when the anatomical axis lies lateral (the normal case,
  about 4-7 deg).
* **MAD** -- distance of the knee centre from the hip-ankle line, signed like HKA: negative
  when the line passes medial to the knee centre (varus), positive when lateral (valgus).
  In mm when ``mm_per_px`` converts the input; see :func:`mad_mm` for magnification.
* **aTFA_FTS** -- long-leg anatomical tibiofemoral angle by the FTS definition of
  :mod:`inference.alignment`: femoral axis through the mid-points of the two femoral shaft
  cortex pairs, tibial axis through those of the two tibial pairs, signed like HKA
  (valgus positive; about +5 deg on a normal leg).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import numpy.typing as npt

from inference.alignment import Axis
from inference.landmarks import CortexPair
from inference.leg import landmarks as leg

FloatArray = npt.NDArray[np.float64]

#: CPAK thresholds of paper 001 section I-A (inclusive neutral bands).
AHKA_NEUTRAL_DEG = 2.0
JLO_NEUTRAL_DEG = (177.0, 183.0)
#: Values are rounded to this many decimals of a degree before CPAK thresholds are applied, so
#: that floating-point noise of landmark geometry cannot move a value lying on a boundary.
CPAK_DECIMALS = 9
CPAK_ROMAN: tuple[str, ...] = ("I", "II", "III", "IV", "V", "VI", "VII", "VIII", "IX")

AhkaGroup = Literal["varus", "neutral", "valgus"]
JloGroup = Literal["apex distal", "neutral", "apex proximal"]

#: The keys of :func:`measure_leg`, in the order of the JSON truth.
MEASUREMENT_KEYS: tuple[str, ...] = (
    "HKA_deg", "HKA_180_deg", "mLDFA_deg", "mMPTA_deg", "aHKA_deg", "JLO_deg",
    "FVA_deg", "JLCA_deg", "MAD_mm", "aTFA_FTS_deg",
)


def _unit(v: FloatArray, what: str) -> FloatArray:
    n = float(np.hypot(v[0], v[1]))
    if n == 0.0:
        raise ValueError(f"{what} has zero length (its two landmarks coincide)")
    return v / n


def _cross(u: FloatArray, v: FloatArray) -> float:
    return float(u[0] * v[1] - u[1] * v[0])


def _angle(u: FloatArray, v: FloatArray) -> float:
    """Unsigned angle between two vectors, degrees in [0, 180]."""
    return float(np.degrees(np.arctan2(abs(_cross(u, v)), float(np.dot(u, v)))))


def signed_angle(u: npt.ArrayLike, v: npt.ArrayLike, lateral: npt.ArrayLike) -> float:
    """Angle from ``u`` to ``v`` in degrees, positive when ``v`` is turned toward ``lateral``.

    Parameters
    ----------
    u, v
        2-D vectors (need not be unit length).
    lateral
        A vector pointing to the lateral side; only the side of ``u`` it lies on matters.

    Returns
    -------
    float
        In [-180, 180]; the sign is positive when turning ``u`` toward ``v`` turns it the same
        way as turning ``u`` toward ``lateral``.
    """
    a = np.asarray(u, dtype=np.float64)
    b = np.asarray(v, dtype=np.float64)
    lat = np.asarray(lateral, dtype=np.float64)
    magnitude = _angle(a, b)
    toward_lateral = _cross(a, lat)
    if toward_lateral == 0.0:
        raise ValueError("lateral is parallel to u; the side of the turn is undefined")
    return magnitude if _cross(a, b) * toward_lateral >= 0.0 else -magnitude


def lateral_direction(landmarks: npt.ArrayLike) -> FloatArray:
    """Unit vector from the medial to the lateral end of the condylar line."""
    pts = leg.as_points(landmarks)
    return _unit(pts[leg.CONDYLE_LATERAL] - pts[leg.CONDYLE_MEDIAL], "the condylar line")


def femoral_mechanical_axis(landmarks: npt.ArrayLike) -> Axis:
    """Femoral head centre (proximal) -> knee centre (distal)."""
    pts = leg.as_points(landmarks)
    h, k = pts[leg.FEMORAL_HEAD_CENTRE], pts[leg.KNEE_CENTRE]
    return Axis((float(h[0]), float(h[1])), (float(k[0]), float(k[1])))


def tibial_mechanical_axis(landmarks: npt.ArrayLike) -> Axis:
    """Knee centre (proximal) -> ankle centre (distal)."""
    pts = leg.as_points(landmarks)
    k, a = pts[leg.KNEE_CENTRE], pts[leg.ANKLE_CENTRE]
    return Axis((float(k[0]), float(k[1])), (float(a[0]), float(a[1])))


def femoral_anatomical_axis(landmarks: npt.ArrayLike) -> Axis:
    """Diaphysis centre (proximal) -> knee centre (distal), as in paper 003's FVA."""
    pts = leg.as_points(landmarks)
    d, k = pts[leg.DIAPHYSIS_CENTRE], pts[leg.KNEE_CENTRE]
    return Axis((float(d[0]), float(d[1])), (float(k[0]), float(k[1])))


def mldfa(landmarks: npt.ArrayLike) -> float:
    """Mechanical lateral distal femoral angle, degrees (lateral angle; 90 = perpendicular)."""
    pts = leg.as_points(landmarks)
    up = _unit(pts[leg.FEMORAL_HEAD_CENTRE] - pts[leg.KNEE_CENTRE], "the femoral axis")
    lat = _unit(pts[leg.CONDYLE_LATERAL] - pts[leg.CONDYLE_MEDIAL], "the condylar line")
    return _angle(up, lat)


def mmpta(landmarks: npt.ArrayLike) -> float:
    """Mechanical medial proximal tibial angle, degrees (medial angle; 90 = perpendicular)."""
    pts = leg.as_points(landmarks)
    down = _unit(pts[leg.ANKLE_CENTRE] - pts[leg.KNEE_CENTRE], "the tibial axis")
    med = _unit(pts[leg.PLATEAU_MEDIAL] - pts[leg.PLATEAU_LATERAL], "the plateau line")
    return _angle(down, med)


def ahka(landmarks: npt.ArrayLike) -> float:
    """Arithmetic HKA, mMPTA - mLDFA, degrees (negative = varus)."""
    return mmpta(landmarks) - mldfa(landmarks)


def jlo(landmarks: npt.ArrayLike) -> float:
    """Joint line obliquity, mMPTA + mLDFA, degrees (< 177 apex distal, > 183 apex proximal)."""
    return mmpta(landmarks) + mldfa(landmarks)


def _check_angle(value: float, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    v = float(value)
    if not np.isfinite(v):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return round(v, CPAK_DECIMALS)


def ahka_group(ahka_deg: float) -> AhkaGroup:
    """CPAK column: "varus" below -2 deg, "neutral" in [-2, +2], "valgus" above +2 deg."""
    v = _check_angle(ahka_deg, "ahka_deg")
    if v < -AHKA_NEUTRAL_DEG:
        return "varus"
    if v > AHKA_NEUTRAL_DEG:
        return "valgus"
    return "neutral"


def jlo_group(jlo_deg: float) -> JloGroup:
    """CPAK row: "apex distal" below 177, "neutral" in [177, 183], "apex proximal" above 183."""
    v = _check_angle(jlo_deg, "jlo_deg")
    if v < JLO_NEUTRAL_DEG[0]:
        return "apex distal"
    if v > JLO_NEUTRAL_DEG[1]:
        return "apex proximal"
    return "neutral"


def cpak_class(ahka_deg: float, jlo_deg: float) -> int:
    """CPAK class 1-9 (MacDessi's grid) from aHKA and JLO in degrees.

    Rows are JLO (apex distal 1-3, neutral 4-6, apex proximal 7-9), columns aHKA (varus,
    neutral, valgus): I varus/distal, II neutral/distal, III valgus/distal, IV varus/neutral,
    V neutral/neutral, VI valgus/neutral, VII varus/proximal, VIII neutral/proximal,
    IX valgus/proximal. The neutral bands are inclusive (paper 001 section I-A): aHKA of
    exactly +-2 deg is neutral, JLO of exactly 177 or 183 deg is neutral. Inputs are rounded
    to :data:`CPAK_DECIMALS` decimals first.
    """
    col = ("varus", "neutral", "valgus").index(ahka_group(ahka_deg))
    row = ("apex distal", "neutral", "apex proximal").index(jlo_group(jlo_deg))
    return 1 + col + 3 * row


def cpak_roman(cpak: int) -> str:
    """Roman numeral of a CPAK class number (1 -> "I" ... 9 -> "IX")."""
    if isinstance(cpak, bool) or not isinstance(cpak, (int, np.integer)) or not 1 <= cpak <= 9:
        raise ValueError(f"cpak must be an int in 1..9, got {cpak!r}")
    return CPAK_ROMAN[int(cpak) - 1]


def cpak(landmarks: npt.ArrayLike) -> int:
    """CPAK class 1-9 of a leg from its landmarks (see :func:`cpak_class`)."""
    m, l_ = mmpta(landmarks), mldfa(landmarks)
    return cpak_class(m - l_, m + l_)


def hka(landmarks: npt.ArrayLike) -> float:
    """Signed HKA deviation from straight, degrees: 0 collinear, varus < 0, valgus > 0."""
    pts = leg.as_points(landmarks)
    f = pts[leg.KNEE_CENTRE] - pts[leg.FEMORAL_HEAD_CENTRE]
    t = pts[leg.ANKLE_CENTRE] - pts[leg.KNEE_CENTRE]
    _unit(f, "the femoral axis")
    _unit(t, "the tibial axis")
    return signed_angle(f, t, lateral_direction(pts))


def hka_180(landmarks: npt.ArrayLike) -> float:
    """HKA as surgeons quote it: 180 + :func:`hka` (varus < 180, valgus > 180)."""
    return 180.0 + hka(landmarks)


def jlca(landmarks: npt.ArrayLike) -> float:
    """Signed joint-line convergence angle, degrees: positive when the joint opens laterally."""
    pts = leg.as_points(landmarks)
    c = _unit(pts[leg.CONDYLE_LATERAL] - pts[leg.CONDYLE_MEDIAL], "the condylar line")
    p = _unit(pts[leg.PLATEAU_LATERAL] - pts[leg.PLATEAU_MEDIAL], "the plateau line")
    distal = pts[leg.KNEE_CENTRE] - pts[leg.FEMORAL_HEAD_CENTRE]
    # positive when the plateau line is turned from the condylar line toward distal
    return signed_angle(c, p, distal)


def fva(landmarks: npt.ArrayLike) -> float:
    """Signed femoral valgus angle (003), degrees: positive when the anatomical axis is lateral."""
    pts = leg.as_points(landmarks)
    k = pts[leg.KNEE_CENTRE]
    m = _unit(pts[leg.FEMORAL_HEAD_CENTRE] - k, "the femoral mechanical axis")
    a = _unit(pts[leg.DIAPHYSIS_CENTRE] - k, "the femoral anatomical axis")
    return signed_angle(m, a, lateral_direction(pts))


def mad(landmarks: npt.ArrayLike, mm_per_px: float = 1.0) -> float:
    """Signed mechanical axis deviation: knee centre to the hip-ankle line.

    Parameters
    ----------
    landmarks
        One leg's points.
    mm_per_px
        Size of one input unit in mm at the anatomy. For a radiograph magnified by ``M`` with
        detector pixel spacing ``s``, the anatomical value needs ``s / M``; using ``s`` alone
        returns ``M`` times the anatomical distance. Angles do not depend on it.

    Returns
    -------
    float
        Negative when the line passes medial to the knee centre (varus), positive lateral.
    """
    if isinstance(mm_per_px, bool) or not isinstance(mm_per_px, (int, float, np.floating)):
        raise TypeError(f"mm_per_px must be a number, got {type(mm_per_px).__name__}")
    if not (np.isfinite(mm_per_px) and mm_per_px > 0):
        raise ValueError(f"mm_per_px must be finite and > 0, got {mm_per_px!r}")
    pts = leg.as_points(landmarks)
    h, k, a = pts[leg.FEMORAL_HEAD_CENTRE], pts[leg.KNEE_CENTRE], pts[leg.ANKLE_CENTRE]
    d = _unit(a - h, "the hip-ankle line")
    lat = lateral_direction(pts)
    n = lat - float(np.dot(lat, d)) * d  # normal of the line on the lateral side
    n = _unit(n, "the lateral normal of the hip-ankle line")
    # the knee lateral of the line means the line passes medial to it: varus, negative
    return -float(np.dot(k - h, n)) * float(mm_per_px)


def _mid(pts: FloatArray, pair: CortexPair) -> FloatArray:
    return 0.5 * (pts[pair.medial] + pts[pair.lateral])


def atfa_fts(landmarks: npt.ArrayLike) -> float:
    """Long-leg anatomical tibiofemoral angle (FTS), degrees, valgus positive.

    Needs all :data:`inference.leg.landmarks.N_LANDMARKS` points (the shaft pairs).
    """
    pts = leg.as_points(landmarks, minimum=leg.N_LANDMARKS)
    f = _mid(pts, leg.FEMUR_SHAFT_DISTAL) - _mid(pts, leg.FEMUR_SHAFT_PROXIMAL)
    t = _mid(pts, leg.TIBIA_SHAFT_DISTAL) - _mid(pts, leg.TIBIA_SHAFT_PROXIMAL)
    _unit(f, "the femoral shaft axis")
    _unit(t, "the tibial shaft axis")
    return signed_angle(f, t, lateral_direction(pts))


def measure_leg(landmarks: npt.ArrayLike, mm_per_px: float = 1.0) -> dict[str, float]:
    """Every measurement of one leg, keyed as in the JSON truth (:data:`MEASUREMENT_KEYS`).

    ``aTFA_FTS_deg`` is NaN when only the ten core points are given.
    """
    pts = leg.as_points(landmarks)
    m, l_ = mmpta(pts), mldfa(pts)
    h = hka(pts)
    return {
        "HKA_deg": h,
        "HKA_180_deg": 180.0 + h,
        "mLDFA_deg": l_,
        "mMPTA_deg": m,
        "aHKA_deg": m - l_,
        "JLO_deg": m + l_,
        "FVA_deg": fva(pts),
        "JLCA_deg": jlca(pts),
        "MAD_mm": mad(pts, mm_per_px),
        "aTFA_FTS_deg": atfa_fts(pts) if pts.shape[0] >= leg.N_LANDMARKS else float("nan"),
    }
