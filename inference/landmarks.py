"""The landmark scheme: ordered, named points outlining an AP knee radiograph.

The scheme is shared by the generator (which places the true points), training,
the predictor and the reports. Points are named in anatomical terms (medial,
lateral, proximal, distal), never by image side, so the same name means the same
bone feature on a left and on a right knee.

Order (pre-operative, 113 points)
---------------------------------
Femur, one outline from the proximal lateral cortex down and around the lateral
condyle, across the intercondylar notch and back up the medial cortex:

* ``femur_lateral_cortex_0..7``  -- lateral cortex, 0 most proximal (shaft) to 7 (metaphysis)
* ``femur_lateral_condyle_0..11`` -- outer margin of the lateral condyle, proximal to distal
* ``femur_lateral_articular_0..5`` -- distal articular surface of the lateral condyle
* ``femur_notch_0..8`` -- intercondylar notch, lateral edge (0), roof (4), medial edge (8)
* ``femur_medial_articular_0..5`` -- distal articular surface of the medial condyle
* ``femur_medial_condyle_0..11`` -- outer margin of the medial condyle, distal to proximal
* ``femur_medial_cortex_0..7`` -- medial cortex, 0 most proximal (shaft) to 7 (metaphysis),
  stored in outline order (7 first, 0 last)

Tibia, one outline from the distal lateral cortex up over the plateau and down
the medial cortex:

* ``tibia_lateral_cortex_0..5`` -- 0 most distal (shaft) to 5; stored 0 first
* ``tibia_lateral_margin_0..4`` -- lateral condyle margin below the plateau
* ``tibia_plateau_lateral_corner``
* ``tibia_lateral_plateau_0..5``
* ``tibia_lateral_spine_0..2``
* ``tibia_medial_spine_0..2``
* ``tibia_medial_plateau_0..5``
* ``tibia_plateau_medial_corner``
* ``tibia_medial_margin_0..4``
* ``tibia_medial_cortex_0..5`` -- 0 most distal (shaft); stored 5 first, 0 last

Fibula: ``fibula_head_0..9`` around the fibular head, lateral to the tibia.

Post-operative images add 28 points after these (141 in all):
``implant_femoral_0..15`` (outline of the femoral component) and
``implant_tibial_0..11`` (outline of the tibial tray). The first 113 points
are the same in both phases, so every named subset below indexes either array.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

Phase = Literal["pre", "post"]
Laterality = Literal["L", "R"]


def _run(prefix: str, count: int, reverse: bool = False) -> list[str]:
    names = [f"{prefix}_{i}" for i in range(count)]
    return names[::-1] if reverse else names


FEMUR_NAMES: tuple[str, ...] = tuple(
    _run("femur_lateral_cortex", 8)
    + _run("femur_lateral_condyle", 12)
    + _run("femur_lateral_articular", 6)
    + _run("femur_notch", 9)
    + _run("femur_medial_articular", 6)
    + _run("femur_medial_condyle", 12)
    + _run("femur_medial_cortex", 8, reverse=True)
)
TIBIA_NAMES: tuple[str, ...] = tuple(
    _run("tibia_lateral_cortex", 6)
    + _run("tibia_lateral_margin", 5)
    + ["tibia_plateau_lateral_corner"]
    + _run("tibia_lateral_plateau", 6)
    + _run("tibia_lateral_spine", 3)
    + _run("tibia_medial_spine", 3)
    + _run("tibia_medial_plateau", 6)
    + ["tibia_plateau_medial_corner"]
    + _run("tibia_medial_margin", 5)
    + _run("tibia_medial_cortex", 6, reverse=True)
)
FIBULA_NAMES: tuple[str, ...] = tuple(_run("fibula_head", 10))
IMPLANT_NAMES: tuple[str, ...] = tuple(_run("implant_femoral", 16) + _run("implant_tibial", 12))

PRE_OP_NAMES: tuple[str, ...] = FEMUR_NAMES + TIBIA_NAMES + FIBULA_NAMES
POST_OP_NAMES: tuple[str, ...] = PRE_OP_NAMES + IMPLANT_NAMES

N_PRE_OP = len(PRE_OP_NAMES)
N_POST_OP = len(POST_OP_NAMES)
INDEX: dict[str, int] = {name: i for i, name in enumerate(POST_OP_NAMES)}

#: The outlines as index ranges, for drawing and for point-to-curve distances.
CURVES: dict[str, tuple[int, int]] = {
    "femur": (0, len(FEMUR_NAMES)),
    "tibia": (len(FEMUR_NAMES), len(FEMUR_NAMES) + len(TIBIA_NAMES)),
    "fibula_head": (len(FEMUR_NAMES) + len(TIBIA_NAMES), N_PRE_OP),
    "implant_femoral": (N_PRE_OP, N_PRE_OP + 16),
    "implant_tibial": (N_PRE_OP + 16, N_POST_OP),
}


def names_for(phase: Phase) -> tuple[str, ...]:
    """Return the ordered landmark names of ``phase`` ("pre" or "post")."""
    if phase == "pre":
        return PRE_OP_NAMES
    if phase == "post":
        return POST_OP_NAMES
    raise ValueError(f"phase must be 'pre' or 'post', got {phase!r}")


def idx(name: str) -> int:
    """Index of the landmark called ``name``."""
    try:
        return INDEX[name]
    except KeyError:
        raise ValueError(f"unknown landmark name {name!r}") from None


@dataclass(frozen=True)
class CortexPair:
    """A medial and a lateral cortex point at one level of a shaft."""

    medial: int
    lateral: int


#: Femoral shaft pairs (paper Fig. 4: red = proximal, yellow = distal).
FEMUR_SHAFT_PROXIMAL = CortexPair(idx("femur_medial_cortex_0"), idx("femur_lateral_cortex_0"))
FEMUR_SHAFT_DISTAL = CortexPair(idx("femur_medial_cortex_3"), idx("femur_lateral_cortex_3"))
#: Tibial shaft pairs (paper Fig. 4: blue = distal, black = proximal).
TIBIA_SHAFT_DISTAL = CortexPair(idx("tibia_medial_cortex_0"), idx("tibia_lateral_cortex_0"))
TIBIA_SHAFT_PROXIMAL = CortexPair(idx("tibia_medial_cortex_2"), idx("tibia_lateral_cortex_2"))
#: Femoral notch pair (paper Fig. 4: purple): the medial and lateral edges of the notch opening.
FEMUR_NOTCH = CortexPair(idx("femur_notch_8"), idx("femur_notch_0"))
#: Every landmark the aTFA uses (FTS and FNTS): the four shaft pairs and the notch pair.
ATFA_POINTS: tuple[int, ...] = tuple(
    i
    for pair in (FEMUR_SHAFT_PROXIMAL, FEMUR_SHAFT_DISTAL, TIBIA_SHAFT_DISTAL,
                 TIBIA_SHAFT_PROXIMAL, FEMUR_NOTCH)
    for i in (pair.medial, pair.lateral)
)
#: Corners of the tibial plateau; their distance is the reference length of relative errors.
PLATEAU_MEDIAL_CORNER = idx("tibia_plateau_medial_corner")
PLATEAU_LATERAL_CORNER = idx("tibia_plateau_lateral_corner")
#: The two reference points found by the global search (they fix the local reference frame).
REFERENCE_POINTS: tuple[int, int] = (PLATEAU_MEDIAL_CORNER, PLATEAU_LATERAL_CORNER)


@dataclass(frozen=True)
class ReferenceFrameSpec:
    """Where the local-search patch lies relative to the two reference points.

    Lengths are in units of the reference length (plateau width ``w``); the patch
    is centred ``centre_offset * w`` proximal to the mid-point of the plateau
    corners, its vertical axis perpendicular to the corner-to-corner line.
    """

    width: float = 2.2
    height: float = 3.4
    centre_offset: float = 0.15


REFERENCE_FRAME = ReferenceFrameSpec()


def plateau_width(landmarks: npt.ArrayLike) -> float:
    """Reference length: distance between the tibial plateau corners (same unit as input)."""
    pts = np.asarray(landmarks, dtype=float)
    return float(np.linalg.norm(pts[PLATEAU_LATERAL_CORNER] - pts[PLATEAU_MEDIAL_CORNER]))
