"""Non-knee images for quality control, and the outline helper of the generator."""

from __future__ import annotations

import numpy as np
import pytest

from training.synth import NEGATIVE_KINDS, synthesize_negative, to_unit_float
from training.synth.contour import spline


@pytest.mark.parametrize("kind", NEGATIVE_KINDS)
def test_negative_has_no_knee_and_valid_pixels(kind: str) -> None:
    r = synthesize_negative(3, kind, max_side=256)
    assert r.knees == ()
    assert r.marker == ""
    assert r.pixels.dtype == np.uint16 and max(r.pixels.shape) <= 256
    assert 10 <= r.bits_stored <= 16 and int(r.pixels.max()) < 2 ** r.bits_stored
    again = synthesize_negative(3, kind, max_side=256)
    assert again.pixels.tobytes() == r.pixels.tobytes()


@pytest.mark.parametrize("kind", ["chest", "lateral_knee", "lower_leg"])
def test_anatomical_negatives_show_bone(kind: str) -> None:
    r = synthesize_negative(5, kind, max_side=384)
    u = to_unit_float(r.pixels, r.bits_stored, r.photometric)
    # something bright (bone) and something dark (air or lung) in the picture
    assert np.percentile(u, 99) - np.percentile(u, 5) > 0.3


def test_negative_kind_is_checked() -> None:
    with pytest.raises(ValueError, match="kind"):
        synthesize_negative(1, "ankle_ap")


def test_spline_passes_through_knots_and_keeps_straight_spans() -> None:
    knots = np.array([[0.0, 0.0], [0.0, 1.0], [0.0, 2.0], [0.0, 3.0], [1.0, 4.0], [2.0, 4.0]])
    c = spline(knots, samples=10)
    np.testing.assert_allclose(c.points[c.knot_index], knots, atol=1e-12)
    # spans between collinear knots stay on the line
    i0, i1 = c.knot_index[0], c.knot_index[2]
    np.testing.assert_allclose(c.points[i0:i1 + 1, 0], 0.0, atol=1e-12)
    # evenly spaced points land on the polyline, first and last on the knots
    p = c.between(1, 4, 5, start=True, end=True)
    np.testing.assert_allclose(p[0], knots[1])
    np.testing.assert_allclose(p[-1], knots[4])
    # a span is straight only when its four neighbouring knots are collinear (0..3 are)
    y = c.level_crossing(0, 3, 1.5)
    np.testing.assert_allclose(y, [0.0, 1.5], atol=1e-12)


def test_spline_refuses_bad_knots() -> None:
    with pytest.raises(ValueError, match="knots"):
        spline(np.zeros((1, 2)))
