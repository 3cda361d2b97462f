"""aTFA geometry: angles known analytically, and invariances."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from inference import landmarks as lm
from inference.alignment import alignment_verdict, atfa, atfa_all, femoral_axis, tibial_axis


def knee(tibia_deg: float, femur_deg: float = 0.0, notch_shift: float = 0.0) -> np.ndarray:
    """Landmarks of a left knee (lateral = +x, distal = +y) with chosen axis tilts.

    The tibial axis leaves the joint at ``tibia_deg`` toward lateral (valgus positive); the
    femoral axis comes in at ``femur_deg``.  Only the points the geometry uses are placed.
    """
    pts = np.zeros((lm.N_POST_OP, 2))
    def on_axis(angle: float, s: float, half_width: float, pair: lm.CortexPair) -> None:
        a = math.radians(angle)
        d = np.array([math.sin(a), math.cos(a)])  # distal direction, tilted toward +x
        n = np.array([math.cos(a), -math.sin(a)])  # lateral normal
        c = s * d
        pts[pair.lateral] = c + half_width * n
        pts[pair.medial] = c - half_width * n
    on_axis(femur_deg, -150.0, 14.0, lm.FEMUR_SHAFT_PROXIMAL)
    on_axis(femur_deg, -60.0, 16.0, lm.FEMUR_SHAFT_DISTAL)
    on_axis(femur_deg, -8.0, 10.0, lm.FEMUR_NOTCH)
    pts[lm.FEMUR_NOTCH.lateral][0] += notch_shift
    pts[lm.FEMUR_NOTCH.medial][0] += notch_shift
    on_axis(tibia_deg, 60.0, 15.0, lm.TIBIA_SHAFT_PROXIMAL)
    on_axis(tibia_deg, 140.0, 13.0, lm.TIBIA_SHAFT_DISTAL)
    pts[lm.PLATEAU_LATERAL_CORNER] = (38.0, 0.0)
    pts[lm.PLATEAU_MEDIAL_CORNER] = (-38.0, 0.0)
    return pts


def transform(pts: np.ndarray, angle_deg: float, scale: float, shift: tuple[float, float],
              mirror: bool) -> np.ndarray:
    out = pts.copy()
    if mirror:
        out[:, 0] = -out[:, 0]
    a = math.radians(angle_deg)
    rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    return scale * out @ rot.T + np.asarray(shift)


@pytest.mark.parametrize("tibia_deg", [-15.0, -7.5, -1.0, 0.0, 3.0, 6.0, 12.0, 20.0])
def test_fts_equals_built_in_angle(tibia_deg: float) -> None:
    assert atfa(knee(tibia_deg), "FTS") == pytest.approx(tibia_deg, abs=1e-9)


def test_angle_is_difference_of_axis_tilts() -> None:
    # Femur tilted 4 deg toward lateral distally, tibia 10 deg: the tibia turns 6 deg lateral.
    assert atfa(knee(10.0, femur_deg=4.0), "FTS") == pytest.approx(6.0, abs=1e-9)
    assert atfa(knee(-3.0, femur_deg=4.0), "FTS") == pytest.approx(-7.0, abs=1e-9)


def test_fnts_uses_the_notch() -> None:
    pts = knee(5.0)
    assert atfa(pts, "FNTS") == pytest.approx(5.0, abs=1e-9)
    # Move the notch 10 units lateral: femoral axis from (0,-150) to (10,-8) tilts lateral
    # by atan(10/142), so the tibia is that much less valgus relative to it.
    shifted = knee(5.0, notch_shift=10.0)
    expected = 5.0 - math.degrees(math.atan2(10.0, 142.0))
    assert atfa(shifted, "FNTS") == pytest.approx(expected, abs=1e-9)
    assert atfa(shifted, "FTS") == pytest.approx(5.0, abs=1e-9)


def test_axes_point_distally() -> None:
    pts = knee(0.0)
    assert femoral_axis(pts).distal[1] > femoral_axis(pts).proximal[1]
    assert tibial_axis(pts).distal[1] > tibial_axis(pts).proximal[1]


@settings(max_examples=200, deadline=None)
@given(
    tibia=st.floats(-25, 25), femur=st.floats(-10, 10), rot=st.floats(-180, 180),
    scale=st.floats(0.05, 40), dx=st.floats(-5000, 5000), dy=st.floats(-5000, 5000),
    mirror=st.booleans(),
)
def test_invariant_to_rotation_scale_translation_and_mirroring(
    tibia: float, femur: float, rot: float, scale: float, dx: float, dy: float, mirror: bool
) -> None:
    pts = knee(tibia, femur, notch_shift=3.0)
    moved = transform(pts, rot, scale, (dx, dy), mirror)
    for method in ("FTS", "FNTS"):
        assert atfa(moved, method) == pytest.approx(atfa(pts, method), abs=1e-6)


def test_right_knee_is_mirror_of_left() -> None:
    left = knee(8.0)
    right = transform(left, 0.0, 1.0, (0.0, 0.0), mirror=True)
    assert atfa_all(right) == pytest.approx({"FTS": 8.0, "FNTS": 8.0}, abs=1e-9)


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="shape"):
        atfa(np.zeros((10, 3)))
    with pytest.raises(ValueError, match="at least"):
        atfa(np.zeros((10, 2)))
    bad = knee(1.0)
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        atfa(bad)
    with pytest.raises(ValueError, match="method"):
        atfa(knee(1.0), "XYZ")  # type: ignore[arg-type]


def test_verdict() -> None:
    assert alignment_verdict(3.0) == "valgus"
    assert alignment_verdict(-3.0) == "varus"
    assert alignment_verdict(0.0) == "neutral"
    assert alignment_verdict(1.0, neutral_band_deg=2.0) == "neutral"


def test_scheme_has_enough_unique_points() -> None:
    assert lm.N_PRE_OP >= 100
    assert len(set(lm.POST_OP_NAMES)) == lm.N_POST_OP
    assert lm.POST_OP_NAMES[: lm.N_PRE_OP] == lm.PRE_OP_NAMES
