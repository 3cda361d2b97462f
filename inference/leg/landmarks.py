"""The landmark scheme of one leg on a bilateral standing AP full-leg radiograph.

Shared by the generator (which places the true points), training, the predictors and the
evaluation scripts, which read the points by name. Points are named anatomically (medial,
lateral, proximal, distal), never by image side, so a name means the same bone feature on a
left and on a right leg; :func:`image_side_names` maps them to the image-side names of paper
001 (R-FC/L-FC, R-TP/L-TP, R-A/L-A).

Order (50 points per leg, the same before and after a knee replacement)
-----------------------------------------------------------------------
The ten measurement points of papers 001 and 003 come first:

==  ==========================  ======================================================
 0  ``femoral_head_centre``     centre of the circle fitted to the head (001 #1, 003 #1)
 1  ``condyle_medial_distal``   medial end of the distal condylar tangent (001 #2-3, 003 #2-3)
 2  ``condyle_lateral_distal``  lateral end of the distal condylar tangent
 3  ``plateau_medial``          medial end of the tibial plateau line (001 #4-5, 003 #4-5)
 4  ``plateau_lateral``         lateral end of the tibial plateau line
 5  ``knee_centre``             femoral notch point shared by both mechanical axes (001 #6, 003 #6)
 6  ``malleolus_medial``        medial end of the malleolar line, parallel to the mortise (003 #7-8)
 7  ``malleolus_lateral``       lateral end of the malleolar line
 8  ``ankle_centre``            mid-point of the two malleoli (001's "centre between 7 and 8")
 9  ``diaphysis_centre``        mid-point of the most distal cross-section of the femoral
                                diaphysis (003 #9)
==  ==========================  ======================================================

Then the points that draw the masks and the anatomical axes:

* ``femoral_head_outline_0..15`` -- 16 points on the head circle, every 22.5 deg, 0 the most
  proximal point, then turning toward lateral;
* ``femur_shaft_proximal_medial``, ``femur_shaft_proximal_lateral``,
  ``femur_shaft_distal_medial``, ``femur_shaft_distal_lateral``,
  ``tibia_shaft_proximal_medial``, ``tibia_shaft_proximal_lateral``,
  ``tibia_shaft_distal_medial``, ``tibia_shaft_distal_lateral`` -- outer cortex pairs at two
  levels of each shaft (the long-leg aTFA, FTS definition of :mod:`inference.alignment`);
* ``femoral_diaphysis_outline_0..15`` -- a closed outline of the femoral diaphysis: the lateral
  cortex from proximal (0) to distal (7), then the medial cortex from distal (8) to proximal
  (15). Points 7 and 8 are the ends of its most distal cross-section, whose mid-point is
  ``diaphysis_centre``.

Coordinates are ``(x, y)`` = (column, row) of the image, in pixels or millimetres.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import numpy.typing as npt

from inference.landmarks import CortexPair

Side = Literal["R", "L"]
SIDES: tuple[Side, ...] = ("R", "L")

#: The ten points the measurements of papers 001 and 003 use, in order.
CORE_NAMES: tuple[str, ...] = (
    "femoral_head_centre",
    "condyle_medial_distal",
    "condyle_lateral_distal",
    "plateau_medial",
    "plateau_lateral",
    "knee_centre",
    "malleolus_medial",
    "malleolus_lateral",
    "ankle_centre",
    "diaphysis_centre",
)
N_HEAD_OUTLINE = 16
N_DIAPHYSIS_OUTLINE = 16
HEAD_OUTLINE_NAMES: tuple[str, ...] = tuple(
    f"femoral_head_outline_{i}" for i in range(N_HEAD_OUTLINE)
)
SHAFT_NAMES: tuple[str, ...] = tuple(
    f"{bone}_shaft_{level}_{side}"
    for bone in ("femur", "tibia")
    for level in ("proximal", "distal")
    for side in ("medial", "lateral")
)
DIAPHYSIS_OUTLINE_NAMES: tuple[str, ...] = tuple(
    f"femoral_diaphysis_outline_{i}" for i in range(N_DIAPHYSIS_OUTLINE)
)
#: Every landmark of one leg, in order.
NAMES: tuple[str, ...] = CORE_NAMES + HEAD_OUTLINE_NAMES + SHAFT_NAMES + DIAPHYSIS_OUTLINE_NAMES
N_CORE = len(CORE_NAMES)
N_LANDMARKS = len(NAMES)
INDEX: dict[str, int] = {name: i for i, name in enumerate(NAMES)}


def idx(name: str) -> int:
    """Index of the landmark called ``name``.

    Raises
    ------
    ValueError
        ``name`` is not in the scheme.
    """
    try:
        return INDEX[name]
    except KeyError:
        raise ValueError(f"unknown full-leg landmark name {name!r}") from None


FEMORAL_HEAD_CENTRE = idx("femoral_head_centre")
CONDYLE_MEDIAL = idx("condyle_medial_distal")
CONDYLE_LATERAL = idx("condyle_lateral_distal")
PLATEAU_MEDIAL = idx("plateau_medial")
PLATEAU_LATERAL = idx("plateau_lateral")
KNEE_CENTRE = idx("knee_centre")
MALLEOLUS_MEDIAL = idx("malleolus_medial")
MALLEOLUS_LATERAL = idx("malleolus_lateral")
ANKLE_CENTRE = idx("ankle_centre")
DIAPHYSIS_CENTRE = idx("diaphysis_centre")

#: Index ranges (start, stop) of the outlines, for drawing masks.
CURVES: dict[str, tuple[int, int]] = {
    "femoral_head": (idx("femoral_head_outline_0"), idx("femoral_head_outline_0") + N_HEAD_OUTLINE),
    "femoral_diaphysis": (
        idx("femoral_diaphysis_outline_0"),
        idx("femoral_diaphysis_outline_0") + N_DIAPHYSIS_OUTLINE,
    ),
}

#: Shaft cortex pairs (the :class:`inference.landmarks.CortexPair` of the knee scheme).
FEMUR_SHAFT_PROXIMAL = CortexPair(idx("femur_shaft_proximal_medial"),
                                  idx("femur_shaft_proximal_lateral"))
FEMUR_SHAFT_DISTAL = CortexPair(idx("femur_shaft_distal_medial"), idx("femur_shaft_distal_lateral"))
TIBIA_SHAFT_PROXIMAL = CortexPair(idx("tibia_shaft_proximal_medial"),
                                  idx("tibia_shaft_proximal_lateral"))
TIBIA_SHAFT_DISTAL = CortexPair(idx("tibia_shaft_distal_medial"), idx("tibia_shaft_distal_lateral"))
#: Ends of the most distal cross-section of the diaphysis outline.
DIAPHYSIS_DISTAL_SECTION = CortexPair(idx("femoral_diaphysis_outline_8"),
                                      idx("femoral_diaphysis_outline_7"))

#: Which joint region (per-joint crop) each core point belongs to.
JOINT_OF: dict[str, Literal["hip", "knee", "ankle", "femur"]] = {
    "femoral_head_centre": "hip",
    "condyle_medial_distal": "knee",
    "condyle_lateral_distal": "knee",
    "plateau_medial": "knee",
    "plateau_lateral": "knee",
    "knee_centre": "knee",
    "malleolus_medial": "ankle",
    "malleolus_lateral": "ankle",
    "ankle_centre": "ankle",
    "diaphysis_centre": "femur",
}

#: Paper 001's image-side names of the medial/lateral pairs (Table 4).
_PAIRS: dict[str, tuple[str, str]] = {
    "FC": ("condyle_medial_distal", "condyle_lateral_distal"),
    "TP": ("plateau_medial", "plateau_lateral"),
    "A": ("malleolus_medial", "malleolus_lateral"),
}


def image_side_names(side: Side) -> dict[str, str]:
    """Map paper 001's image-side names to this scheme's names for a leg on ``side``.

    Paper 001 names the ends of the condylar, plateau and ankle lines by the side of the
    *image* they lie on (``R-`` = image right). On a standard AP display (patient facing the
    viewer) the patient's right leg is on the image left and its lateral side faces the image
    left edge, so for a right leg ``L-FC`` is lateral; for a left leg ``R-FC`` is lateral.
    ``HF`` and ``CK`` need no side.

    Parameters
    ----------
    side
        The patient side of the leg, "R" or "L".

    Returns
    -------
    dict
        ``{"HF": "femoral_head_centre", "R-FC": ..., "L-FC": ..., "R-TP": ..., "L-TP": ...,
        "CK": "knee_centre", "R-A": ..., "L-A": ...}``.
    """
    if side not in SIDES:
        raise ValueError(f"side must be 'R' or 'L', got {side!r}")
    out = {"HF": "femoral_head_centre", "CK": "knee_centre"}
    for key, (medial, lateral) in _PAIRS.items():
        # right leg: lateral faces the image left; left leg: lateral faces the image right
        out[f"R-{key}"] = medial if side == "R" else lateral
        out[f"L-{key}"] = lateral if side == "R" else medial
    return out


def as_points(landmarks: npt.ArrayLike, minimum: int = N_CORE) -> npt.NDArray[np.float64]:
    """Check and return one leg's landmarks as an ``(N, 2)`` float64 array.

    Parameters
    ----------
    landmarks
        ``(N, 2)`` points in scheme order.
    minimum
        Fewest points accepted: :data:`N_CORE` (the ten measurement points) or
        :data:`N_LANDMARKS` (all of them, needed by the long-leg aTFA).

    Raises
    ------
    ValueError
        Wrong shape, too few points, or non-finite coordinates.
    """
    pts = np.asarray(landmarks, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 2:
        raise ValueError(f"landmarks must have shape (N, 2), got {pts.shape}")
    if pts.shape[0] < minimum:
        raise ValueError(f"landmarks must hold at least {minimum} points, got {pts.shape[0]}")
    if not np.all(np.isfinite(pts[:minimum])):
        raise ValueError("landmarks contain NaN or infinite coordinates")
    return pts
