"""Shaft cortex points from image evidence: sub-pixel edge search normal to the cortex.

For each of the eight shaft-pair landmarks (:data:`inference.landmarks.ATFA_POINTS`
without the notch) the image is sampled along the line through the point normal to its
bone's axis (the line through the two pair mid-points), averaged over a short stretch of
cortex, smoothed, and differentiated; the outer bone edge is the strongest fall of
brightness going outward (bone bright).  Its sub-pixel position (parabola through the
peak) replaces the point's position across the shaft; its position along the shaft is
kept.  A point stays where the network put it when the edge is weak against the profile's
noise, or when the image does not reach it.

The notch pair is not refined here (its edges are corners, not straight cortices); see
:mod:`inference.notch`, which searches the notch walls above the opening instead.

The predictor runs it only when asked (:class:`EdgeRefinement`): with the shipped weights
it is not better on the independent renderer (``docs/robustness.md``), so by default it is
off the hot path; ``knee-node evaluate-renderers --edges`` measures it.
"""

from __future__ import annotations

from enum import StrEnum

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from inference import landmarks as lm

#: Half-length of the search profile, in plateau widths.
SEARCH_HALF = 0.05
#: Half-length of the stretch of cortex averaged into one profile, in plateau widths.
ALONG_HALF = 0.04
#: An edge counts when its gradient is this many times the profile's robust noise.
MIN_CONTRAST = 4.0



class EdgeRefinement(StrEnum):
    """Whether and how :class:`inference.predictor.KneePredictor` refines the shaft points.

    * ``OFF`` -- not computed (the default: its result would be unused);
    * ``REPORT`` -- computed and reported as ``KneeMeasurement.atfa_refined_deg``, the angle
      still from the network's points (for evaluation: the ``+edges`` columns);
    * ``USE`` -- the angle, the landmarks and the quality checks from the refined points.
    """

    OFF = "off"
    REPORT = "report"
    USE = "use"


_AXES = (
    (lm.FEMUR_SHAFT_PROXIMAL, lm.FEMUR_SHAFT_DISTAL),
    (lm.TIBIA_SHAFT_PROXIMAL, lm.TIBIA_SHAFT_DISTAL),
)


def sample_profiles(image: npt.NDArray[np.floating], p: npt.NDArray[np.float64],
                    normal: npt.NDArray[np.float64], along: npt.NDArray[np.float64],
                    w: float) -> tuple[npt.NDArray[np.float64],
                                       npt.NDArray[np.float32]] | None:
    """Profiles of ``image`` normal to the cortex at ``p``, over a short stretch of cortex.

    Parameters
    ----------
    image
        ``(rows, cols)`` image, bone bright.
    p
        The cortex point (x = column, y = row).
    normal, along
        Unit vectors: outward normal to the cortex and along the shaft.
    w
        Plateau width (px): the profile runs ``max(SEARCH_HALF * w, 4)`` px either side
        of ``p``; the 9 profiles are spread ``ALONG_HALF * w`` px either side along it.

    Returns
    -------
    tuple or None
        ``t`` (offsets along ``normal``, px, step 0.25) and the ``(9, len(t))`` samples;
        None when the profiles leave the image.
    """
    half = max(SEARCH_HALF * w, 4.0)
    t = np.arange(-half, half + 0.25, 0.25)
    s = np.linspace(-ALONG_HALF * w, ALONG_HALF * w, 9)
    pts = p[None, None, :] + t[None, :, None] * normal + s[:, None, None] * along
    rows, cols = image.shape
    if (pts[..., 0].min() < 0 or pts[..., 1].min() < 0 or pts[..., 0].max() > cols - 1
            or pts[..., 1].max() > rows - 1):
        return None
    vals = ndimage.map_coordinates(image, [pts[..., 1].ravel(), pts[..., 0].ravel()],
                                   order=1, mode="nearest").reshape(pts.shape[:2])
    return t, vals


def shaft_normals(landmarks: npt.NDArray[np.float64]) -> dict[int, tuple[
        npt.NDArray[np.float64], npt.NDArray[np.float64]]]:
    """Outward normal and along-shaft unit vectors of the eight shaft cortex points.

    The shaft's axis is the line through its two pair mid-points; the normal points from
    the axis towards the point.  A bone whose mid-points coincide is left out.
    """
    out: dict[int, tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]] = {}
    for a, b in _AXES:
        ma = 0.5 * (landmarks[a.medial] + landmarks[a.lateral])
        mb = 0.5 * (landmarks[b.medial] + landmarks[b.lateral])
        d = mb - ma
        n = float(np.linalg.norm(d))
        if n < 1e-6:
            continue
        along = d / n
        for pair, mid in ((a, ma), (b, mb)):
            for i in (pair.medial, pair.lateral):
                normal = np.array([-along[1], along[0]])
                if np.dot(landmarks[i] - mid, normal) < 0:
                    normal = -normal
                out[i] = (normal, along)
    return out


def _edge_offset(image: npt.NDArray[np.floating], p: npt.NDArray[np.float64],
                 normal: npt.NDArray[np.float64], along: npt.NDArray[np.float64],
                 w: float) -> float | None:
    """Signed shift (px, along ``normal``) of the outer edge nearest ``p``, or None."""
    sampled = sample_profiles(image, p, normal, along, w)
    if sampled is None:
        return None
    t, vals = sampled
    prof = ndimage.gaussian_filter1d(vals.mean(axis=0).astype(np.float64), 4.0)
    g = -np.gradient(prof)  # outward fall of brightness is positive
    noise = 1.4826 * float(np.median(np.abs(g - np.median(g)))) + 1e-6
    i = int(np.argmax(g))
    if g[i] < MIN_CONTRAST * noise or i in (0, len(g) - 1):
        return None
    a, b, c = g[i - 1], g[i], g[i + 1]
    den = a - 2 * b + c
    frac = 0.5 * (a - c) / den if den != 0 else 0.0
    return float(t[i] + 0.25 * np.clip(frac, -1.0, 1.0))


def check_image_and_landmarks(image: npt.ArrayLike, landmarks: npt.ArrayLike) -> tuple[
        npt.NDArray[np.float32], npt.NDArray[np.float64]]:
    """``image`` as a 2-D float32 array and a float64 copy of ``landmarks`` ``(N >= 113, 2)``.

    Raises
    ------
    ValueError
        If either has the wrong shape (the message names it and gives the shape).
    """
    img = np.asarray(image, dtype=np.float32)
    pts = np.array(landmarks, dtype=np.float64, copy=True)
    if img.ndim != 2:
        raise ValueError(f"image must be 2-D, got shape {img.shape}")
    if pts.ndim != 2 or pts.shape[0] < lm.N_PRE_OP or pts.shape[1] != 2:
        raise ValueError(f"landmarks must have shape (N>={lm.N_PRE_OP}, 2), got {pts.shape}")
    return img, pts


def refine_shaft_points(image: npt.NDArray[np.floating],
                        landmarks: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """The landmarks with the eight shaft cortex points moved onto the image's edges.

    Parameters
    ----------
    image
        ``(rows, cols)`` image, bone bright, the landmarks' pixel grid.
    landmarks
        ``(N, 2)`` landmarks (N >= 113), x = column, y = row.
    """
    img, pts = check_image_and_landmarks(image, landmarks)
    w = lm.plateau_width(pts)
    if not np.isfinite(w) or w < 8:
        return pts
    src = pts.copy()
    for i, (normal, along) in shaft_normals(src).items():
        off = _edge_offset(img, src[i], normal, along, w)
        if off is not None:
            pts[i] = src[i] + off * normal
    return pts
