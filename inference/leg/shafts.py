"""Shaft points of a leg from the image: femoral and tibial outer-cortex pairs, diaphysis centre.

The shipped landmark network finds the nine joint landmarks only (hip, knee, ankle). The
long-leg aTFA needs the mid-points of two cortex pairs per shaft, and the FVA the diaphysis
centre (:mod:`inference.leg.landmarks`). This module finds them classically, from the joint
landmarks and the pixels: at a level along the femoral (knee -> hip) or tibial
(knee -> ankle) mechanical axis, an intensity profile is sampled across the shaft (averaged
over a short strip along the axis and smoothed), and the bone is the bright band between the
strongest rising and falling edges a plausible shaft width apart. Its edges are the cortex
pair of that level.

The levels, as fractions of the joint landmarks' distances, are those of the scheme
(``docs/full_leg.md``): femur 0.385 and 0.698 of knee -> hip, diaphysis centre at 2.31
condylar widths, tibia 0.30 and 0.80 of knee -> ankle. Research use only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from inference.leg import landmarks as leg

FloatArray = npt.NDArray[np.float64]

#: Level of each pair: (bone, fraction of the mechanical-axis length from the knee).
LEVELS: dict[str, tuple[str, float]] = {
    "femur_shaft_distal": ("femur", 0.385),
    "femur_shaft_proximal": ("femur", 0.698),
    "tibia_shaft_proximal": ("tibia", 0.30),
    "tibia_shaft_distal": ("tibia", 0.80),
}
#: Distal end of the diaphysis, in condylar widths (|condyle_lateral - condyle_medial|) from
#: the knee.
DIAPHYSIS_CW = 2.31
#: The femoral shaft lies lateral of the mechanical axis by about tan(5.5 deg) of the distance
#: from the knee (FVA 3-8 deg): where the femoral profiles are centred.
FVA_TAN = 0.096
#: Plausible outer shaft width, in condylar widths (femur about 0.53, tibia 0.47).
WIDTH_CW: dict[str, tuple[float, float]] = {"femur": (0.36, 0.75), "tibia": (0.30, 0.68)}


@dataclass(frozen=True)
class ShaftCut:
    """One profile across a shaft: the two outer-cortex edges (image px) and edge strength."""

    medial: FloatArray
    lateral: FloatArray
    contrast: float

    @property
    def mid(self) -> FloatArray:
        """Mid-point of the pair."""
        return 0.5 * (self.medial + self.lateral)


def _unit(v: FloatArray) -> FloatArray:
    n = float(np.hypot(*v))
    if not np.isfinite(n) or n < 1e-9:
        raise ValueError("degenerate axis")
    return v / n


def shaft_cut(image: npt.NDArray[np.float32], centre: FloatArray, axis: FloatArray,
              lateral: FloatArray, half_width_px: float, width_range_px: tuple[float, float],
              step_px: float) -> ShaftCut | None:
    """The bone band across ``axis`` through ``centre`` (None when no band is found).

    Parameters
    ----------
    image
        Bone-bright image.
    centre
        A point near the shaft centre, px.
    axis
        Direction along the shaft.
    lateral
        The leg's lateral direction (assigns medial and lateral edges).
    half_width_px
        Half length of the profile.
    width_range_px
        Plausible (min, max) band width.
    step_px
        Sampling step of the profile.
    """
    a = _unit(np.asarray(axis, dtype=np.float64))
    n = np.array([-a[1], a[0]])
    if float(np.dot(n, lateral)) < 0:
        n = -n  # n points lateral
    t = np.arange(-half_width_px, half_width_px + step_px, step_px)
    strip = np.linspace(-4.0, 4.0, 5) * step_px
    xs = centre[0] + t[None, :] * n[0] + strip[:, None] * a[0]
    ys = centre[1] + t[None, :] * n[1] + strip[:, None] * a[1]
    prof = ndimage.map_coordinates(image, [ys, xs], order=1, mode="nearest").mean(0)
    prof = ndimage.gaussian_filter1d(prof.astype(np.float64), 1.5)
    g = np.gradient(prof)
    wmin = max(1, int(width_range_px[0] / step_px))
    wmax = max(wmin + 1, int(width_range_px[1] / step_px))
    best, bi, bj = -np.inf, -1, -1
    for i in range(len(g) - wmin):
        j0, j1 = i + wmin, min(len(g), i + wmax + 1)
        k = int(np.argmin(g[j0:j1])) + j0
        s = g[i] - g[k]  # rising then falling (bright band)
        if s > best:
            best, bi, bj = s, i, k
    if bi < 0 or not np.isfinite(best) or best <= 0:
        return None
    p_med = centre + t[bi] * n
    p_lat = centre + t[bj] * n
    return ShaftCut(p_med, p_lat, float(best))


def shaft_points(image: npt.NDArray[np.float32], core: FloatArray) -> tuple[FloatArray,
                                                                          npt.NDArray[np.bool_]]:
    """The shaft cortex pairs and the diaphysis centre of one leg.

    Parameters
    ----------
    image
        Bone-bright stored image.
    core
        ``(>= 10, 2)`` landmarks with the nine joint points finite.

    Returns
    -------
    points, found
        ``(50, 2)`` landmarks: the joint points copied, the shaft pairs
        (``femur_shaft_*``, ``tibia_shaft_*``) and ``diaphysis_centre`` where a band was found
        (NaN elsewhere; the outlines stay NaN), and which are found.
    """
    pts = np.full((leg.N_LANDMARKS, 2), np.nan)
    n_copy = min(len(core), leg.N_CORE)
    pts[:n_copy] = core[:n_copy]
    pts[leg.DIAPHYSIS_CENTRE] = np.nan
    found = np.zeros(leg.N_LANDMARKS, bool)
    found[:n_copy] = np.all(np.isfinite(core[:n_copy]), axis=1)
    found[leg.DIAPHYSIS_CENTRE] = False
    k, h, an = core[leg.KNEE_CENTRE], core[leg.FEMORAL_HEAD_CENTRE], core[leg.ANKLE_CENTRE]
    lat = core[leg.CONDYLE_LATERAL] - core[leg.CONDYLE_MEDIAL]
    cw = float(np.hypot(*lat))
    if not (np.all(np.isfinite([k, h, an, lat])) and cw > 4):
        return pts, found
    lat = lat / cw
    step = max(cw / 120.0, 0.5)
    axes = {"femur": h - k, "tibia": an - k}
    for name, (bone, frac) in LEVELS.items():
        ax = axes[bone]
        off = FVA_TAN * frac * float(np.hypot(*ax)) if bone == "femur" else 0.0
        c = shaft_cut(image, k + frac * ax + off * lat, ax, lat, 0.9 * cw,
                      (WIDTH_CW[bone][0] * cw, WIDTH_CW[bone][1] * cw), step)
        if c is None:
            continue
        pts[leg.idx(f"{name}_medial")], pts[leg.idx(f"{name}_lateral")] = c.medial, c.lateral
        found[leg.idx(f"{name}_medial")] = found[leg.idx(f"{name}_lateral")] = True
    fa = _unit(axes["femur"])
    c = shaft_cut(image, k + DIAPHYSIS_CW * cw * (fa + FVA_TAN * lat), fa, lat, 0.9 * cw,
                  (WIDTH_CW["femur"][0] * cw, WIDTH_CW["femur"][1] * cw), step)
    if c is not None:
        pts[leg.DIAPHYSIS_CENTRE] = c.mid
        found[leg.DIAPHYSIS_CENTRE] = True
    return pts, found
