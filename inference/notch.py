"""The femoral notch pair from image evidence: sub-pixel search for the notch walls.

FNTS draws the femoral axis to the mid-point of the notch pair (``femur_notch_8`` and
``femur_notch_0``, the medial and lateral edges of the notch opening,
:data:`inference.landmarks.FEMUR_NOTCH`).  Those points are corners, not straight edges, so
they are not searched for directly.  Instead each **notch wall** is found on a band of
levels just proximal to the opening, where the wall is nearly parallel to the femoral
shaft and the dark intercondylar gap meets the bright condyle:

1. The femoral shaft axis (mid-points of the two femoral shaft pairs) gives the
   along-shaft direction and the direction across it.
2. The band runs from ``band[0]`` to ``band[1]`` of the way from the opening (the pair's
   mid-point) to the notch roof (``femur_notch_4``), measured along the shaft.  On
   ``n_levels`` levels of that band, the network's own outline of the wall
   (``femur_notch_0..4`` laterally, ``femur_notch_8..4`` medially) says where the wall
   should cross; a profile across the shaft is sampled there, ``search_half`` plateau
   widths either side of that crossing.
3. The profiles of one wall are averaged, smoothed and differentiated; the wall is the
   strongest rise of brightness going outward (gap dark, condyle bright).  Its sub-pixel
   offset (parabola through the peak) moves that wall's notch point across the shaft by
   the same amount; its position along the shaft is kept.

**Gate.**  The network's notch pair is kept unchanged (both points) when either wall's
rise of brightness is below ``min_step`` or below ``min_contrast`` times the noise of its
averaged profile, when
the peak lies on the window's border, when the profiles leave the image, when the notch
is too shallow to hold a band (roof less than ``min_depth`` plateau widths above the
opening), when the pair's mid-point would move more than ``max_shift`` plateau widths, or
when the knee is post-operative (``NotchParams.phases``).
The defaults were chosen on our own generator's validation renders only (seeds
813,000,000+; ``docs/robustness.md``); the independent renderer was never used to choose
them.

:class:`NotchRefinement` is the predictor's switch (off, report, use), like
:class:`inference.edges.EdgeRefinement`; ``knee-node evaluate-renderers --notch`` measures
it (the ``+notch`` columns).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from inference import landmarks as lm
from inference.edges import check_image_and_landmarks

#: Lateral and medial wall outlines, from the opening's corner up to the roof.
LATERAL_WALL: tuple[int, ...] = tuple(lm.idx(f"femur_notch_{i}") for i in range(0, 5))
MEDIAL_WALL: tuple[int, ...] = tuple(lm.idx(f"femur_notch_{i}") for i in range(8, 3, -1))
NOTCH_ROOF = lm.idx("femur_notch_4")


class NotchRefinement(StrEnum):
    """Whether and how :class:`inference.predictor.KneePredictor` refines the notch pair.

    * ``OFF`` -- not computed;
    * ``REPORT`` -- computed and reported as ``KneeMeasurement.atfa_notch_deg``, the angle
      still from the network's points (for evaluation: the ``+notch`` columns);
    * ``USE`` -- the angle, the landmarks and the quality checks with the refined pair.
    """

    OFF = "off"
    REPORT = "report"
    USE = "use"


#: The predictor's default (``docs/robustness.md``, "Notch pair from image evidence").
DEFAULT_MODE = NotchRefinement.OFF


@dataclass(frozen=True)
class NotchParams:
    """Search and gate of :func:`refine_notch_pair` (lengths in plateau widths ``w``).

    Parameters
    ----------
    band
        ``(start, end)`` of the band of levels, as fractions of the way from the opening
        to the roof (``0 <= start < end <= 1``).
    n_levels
        Levels (profiles) per wall on that band (>= 1).
    search_half
        Half-length of each profile across the shaft (> 0); at least 4 px.
    smooth_px
        Gaussian smoothing of the averaged profile, in pixels (>= 0).
    min_contrast
        A wall counts when its rise of brightness (mean over up to 4 px outside the
        steepest point minus the mean over up to 4 px inside) is at least this many times
        the noise of the averaged profile (the levels' robust scatter about their mean
        profile over the square root of their number) (>= 0).
    min_step
        ... and when that rise is at least this much (the image is 0-1, bone bright; >= 0).
    max_shift
        Largest move of the pair's mid-point across the shaft (> 0).
    min_depth
        Smallest roof height above the opening for a band to exist (>= 0).
    method
        ``"offset"`` (default): each notch point moves by its wall's offset from the
        network's outline of that wall; ``"centre"``: both move so that their mid-point is
        the centre of the gap between the two walls found (worse on validation renders).
    phases
        The phases refined (default: pre-operative only; on post-operative validation
        renders the femoral component's box edges made the FNTS angle worse).
    """

    band: tuple[float, float] = (0.25, 0.6)
    n_levels: int = 9
    search_half: float = 0.04
    smooth_px: float = 1.5
    min_contrast: float = 6.0
    min_step: float = 0.01
    max_shift: float = 0.03
    min_depth: float = 0.04
    method: str = "offset"
    phases: tuple[str, ...] = ("pre",)

    def __post_init__(self) -> None:
        if not set(self.phases) <= {"pre", "post"}:
            raise ValueError(f"phases must hold only 'pre' and 'post', got {self.phases!r}")
        if self.method not in ("offset", "centre"):
            raise ValueError(f"method must be 'offset' or 'centre', got {self.method!r}")
        b0, b1 = (float(v) for v in self.band)
        if not 0.0 <= b0 < b1 <= 1.0:
            raise ValueError(f"band must satisfy 0 <= start < end <= 1, got {self.band!r}")
        if int(self.n_levels) < 1:
            raise ValueError(f"n_levels must be >= 1, got {self.n_levels!r}")
        if not self.search_half > 0:
            raise ValueError(f"search_half must be > 0, got {self.search_half!r}")
        if not self.smooth_px >= 0:
            raise ValueError(f"smooth_px must be >= 0, got {self.smooth_px!r}")
        if not self.min_contrast >= 0:
            raise ValueError(f"min_contrast must be >= 0, got {self.min_contrast!r}")
        if not self.min_step >= 0:
            raise ValueError(f"min_step must be >= 0, got {self.min_step!r}")
        if not self.max_shift > 0:
            raise ValueError(f"max_shift must be > 0, got {self.max_shift!r}")
        if not self.min_depth >= 0:
            raise ValueError(f"min_depth must be >= 0, got {self.min_depth!r}")


DEFAULT_PARAMS = NotchParams()


@dataclass(frozen=True)
class NotchResult:
    """What :func:`notch_evidence` found.

    ``offsets_px`` are the lateral and medial walls' moves outward (px, None where no
    wall was accepted), ``contrast`` their peak gradient over noise (0 where not
    measured), ``shift_px`` the pair mid-point's move across the shaft (positive towards
``femur_notch_0``, the lateral edge) and ``accepted``
    whether the gate let the refinement through (``reason`` says why not).
    """

    offsets_px: tuple[float | None, float | None]
    contrast: tuple[float, float]
    shift_px: float
    accepted: bool
    reason: str = ""


def _frame(pts: npt.NDArray[np.float64]) -> tuple[npt.NDArray[np.float64],
                                                  npt.NDArray[np.float64]] | None:
    """Unit vectors along the femoral shaft (distal) and across it, or None."""
    a, b = lm.FEMUR_SHAFT_PROXIMAL, lm.FEMUR_SHAFT_DISTAL
    d = 0.5 * (pts[b.medial] + pts[b.lateral]) - 0.5 * (pts[a.medial] + pts[a.lateral])
    n = float(np.linalg.norm(d))
    if not np.isfinite(n) or n < 1e-6:
        return None
    along = d / n
    return along, np.array([-along[1], along[0]])


def _wall_offset(img: npt.NDArray[np.float32], pts: npt.NDArray[np.float64],
                 wall: tuple[int, ...], opening: npt.NDArray[np.float64],
                 along: npt.NDArray[np.float64], across: npt.NDArray[np.float64],
                 depth: float, w: float, params: NotchParams
                 ) -> tuple[float | None, float, float]:
    """Outward move (px) of one wall on the band, or None; its contrast; and where the wall
    was searched from (mean crossing of the network's outline, px across the shaft)."""
    rel = pts[list(wall)] - opening
    up = -(rel @ along)            # proximal distance above the opening
    side = rel @ across            # signed distance across the shaft
    out_sign = 1.0 if side[0] >= 0 else -1.0
    order = np.argsort(up)
    levels = depth * np.linspace(params.band[0], params.band[1], int(params.n_levels))
    cross = np.interp(levels, up[order], side[order])
    half = max(params.search_half * w, 4.0)
    t = np.arange(-half, half + 0.25, 0.25)
    outward = out_sign * across
    centres = opening[None, :] - levels[:, None] * along + cross[:, None] * across
    xy = centres[:, None, :] + t[None, :, None] * outward
    rows, cols = img.shape
    if (xy[..., 0].min() < 0 or xy[..., 1].min() < 0 or xy[..., 0].max() > cols - 1
            or xy[..., 1].max() > rows - 1):
        return None, 0.0, 0.0
    vals = ndimage.map_coordinates(img, [xy[..., 1].ravel(), xy[..., 0].ravel()],
                                   order=1, mode="nearest").reshape(xy.shape[:2])
    prof = vals.mean(axis=0).astype(np.float64)
    if params.smooth_px > 0:
        prof = ndimage.gaussian_filter1d(prof, 4.0 * params.smooth_px)
    g = np.gradient(prof)  # brightness rising outward (gap -> condyle) is positive
    i = int(np.argmax(g))
    if g[i] <= 0 or i in (0, len(g) - 1):
        return None, 0.0, 0.0
    # the rise across the edge against the noise of the averaged profile (the levels'
    # scatter about their mean: pixel noise, texture and a wall that is not straight)
    m = max(min(i, len(g) - 1 - i, 16), 1)  # up to 4 px either side
    step = float(prof[i + 1:i + 1 + m].mean() - prof[i - m:i].mean())
    scatter = 1.4826 * float(np.median(np.abs(vals - vals.mean(axis=0))))
    contrast = step / (scatter / np.sqrt(len(vals)) + 1e-6)
    if contrast < params.min_contrast or step < params.min_step:
        return None, contrast, float(cross.mean())
    a, b, c = g[i - 1], g[i], g[i + 1]
    den = a - 2 * b + c
    frac = 0.5 * (a - c) / den if den != 0 else 0.0
    return float(t[i] + 0.25 * np.clip(frac, -1.0, 1.0)), contrast, float(cross.mean())


def notch_evidence(image: npt.ArrayLike, landmarks: npt.ArrayLike,
                   params: NotchParams = DEFAULT_PARAMS) -> NotchResult:
    """Search both notch walls near the network's outline and apply the gate.

    Parameters
    ----------
    image
        ``(rows, cols)`` image, bone bright, the landmarks' pixel grid.
    landmarks
        ``(N, 2)`` landmarks (N >= 113, either phase), x = column, y = row.
    params
        Search and gate (:class:`NotchParams`).

    Returns
    -------
    NotchResult
        The walls' moves, their contrast and the gate's verdict.

    Raises
    ------
    ValueError
        ``image`` is not 2-D or ``landmarks`` is not ``(N >= 113, 2)``.
    """
    img, pts = check_image_and_landmarks(image, landmarks)
    none = (None, None)
    if not np.all(np.isfinite(pts[list(LATERAL_WALL + MEDIAL_WALL)])):
        return NotchResult(none, (0.0, 0.0), 0.0, False, "non-finite notch points")
    w = lm.plateau_width(pts)
    if not np.isfinite(w) or w < 8:
        return NotchResult(none, (0.0, 0.0), 0.0, False, f"plateau width {w:.1f} px")
    frame = _frame(pts)
    if frame is None:
        return NotchResult(none, (0.0, 0.0), 0.0, False, "no femoral shaft axis")
    along, across = frame
    pair = lm.FEMUR_NOTCH
    opening = 0.5 * (pts[pair.medial] + pts[pair.lateral])
    depth = float(-(pts[NOTCH_ROOF] - opening) @ along)
    if depth < params.min_depth * w:
        return NotchResult(none, (0.0, 0.0), 0.0, False, f"notch depth {depth:.1f} px")
    lat, c_lat, x_lat = _wall_offset(img, pts, LATERAL_WALL, opening, along, across, depth, w,
                                     params)
    med, c_med, x_med = _wall_offset(img, pts, MEDIAL_WALL, opening, along, across, depth, w,
                                     params)
    offsets, contrast = (lat, med), (c_lat, c_med)
    if lat is None or med is None:
        return NotchResult(offsets, contrast, 0.0, False, "weak wall")
    s_lat = 1.0 if (pts[pair.lateral] - opening) @ across >= 0 else -1.0
    if params.method == "offset":
        # each wall moves outward: the mid-point moves laterally by half the difference
        shift = 0.5 * (lat - med)
    else:  # the centre of the gap between the two walls found, towards lateral
        shift = 0.5 * s_lat * ((x_lat + s_lat * lat) + (x_med - s_lat * med))
    if abs(shift) > params.max_shift * w:
        return NotchResult(offsets, contrast, shift, False, "shift too large")
    return NotchResult(offsets, contrast, shift, True)


def refine_notch_pair(image: npt.ArrayLike, landmarks: npt.ArrayLike,
                      params: NotchParams = DEFAULT_PARAMS,
                      phase: str = "pre") -> npt.NDArray[np.float64]:
    """The landmarks with the notch pair moved across the shaft onto the notch walls.

    Each of ``femur_notch_0`` and ``femur_notch_8`` moves across the femoral shaft by its
    wall's offset (:func:`notch_evidence`); every other point is returned unchanged, and
    so are both when the gate rejects the evidence.

    Parameters
    ----------
    image
        ``(rows, cols)`` image, bone bright, the landmarks' pixel grid.
    landmarks
        ``(N, 2)`` landmarks (N >= 113), x = column, y = row.
    params
        Search and gate (:class:`NotchParams`).
    phase
        ``"pre"`` or ``"post"``, the knee's phase: a phase not in ``params.phases`` is
        returned unchanged (and not searched).

    Returns
    -------
    numpy.ndarray
        A new ``(N, 2)`` array.

    Raises
    ------
    ValueError
        ``image`` is not 2-D, ``landmarks`` is not ``(N >= 113, 2)`` or ``phase`` is not
        ``"pre"`` or ``"post"``.
    """
    if phase not in ("pre", "post"):
        raise ValueError(f"phase must be 'pre' or 'post', got {phase!r}")
    img, pts = check_image_and_landmarks(image, landmarks)
    if phase not in params.phases:
        return pts
    res = notch_evidence(img, pts, params)
    if not res.accepted:
        return pts
    frame = _frame(pts)
    assert frame is not None  # notch_evidence accepted, so the axis exists
    across = frame[1]
    pair = lm.FEMUR_NOTCH
    opening = 0.5 * (pts[pair.medial] + pts[pair.lateral])
    s_lat = 1.0 if (pts[pair.lateral] - opening) @ across >= 0 else -1.0
    lat, med = res.offsets_px
    assert lat is not None and med is not None
    if params.method == "offset":
        pts[pair.lateral] = pts[pair.lateral] + lat * s_lat * across
        pts[pair.medial] = pts[pair.medial] - med * s_lat * across
    else:
        pts[[pair.lateral, pair.medial]] += res.shift_px * s_lat * across
    return pts
