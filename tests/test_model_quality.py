"""Quality-control rules on true and broken landmark outlines (no network needed)."""

from __future__ import annotations

import numpy as np
import pytest

from inference import landmarks as lm
from inference.quality import assess, self_intersections, shape_problems
from training import synth


@pytest.fixture(scope="module")
def knee() -> tuple[np.ndarray, tuple[float, float], str, tuple[int, int]]:
    r = synth.synthesize(960_500_000, both_knees=False, max_side=600)
    k = r.knees[0]
    return np.asarray(k.landmarks), r.pixel_spacing_mm, k.laterality, r.pixels.shape


def _assess(pts: np.ndarray, spacing, lat, shape, **kw):  # type: ignore[no-untyped-def]
    args = dict(knee_probability=0.95, frame_probability=0.95, median_spread_pct=1.0,
                landmarks=pts, pixel_spacing_mm=spacing, image_laterality=lat,
                header_laterality=lat, image_shape=shape)
    args.update(kw)
    return assess(**args)


def test_true_outline_passes(knee) -> None:  # type: ignore[no-untyped-def]
    pts, spacing, lat, shape = knee
    assert shape_problems(pts, spacing) == []
    q = _assess(pts, spacing, lat, shape)
    assert q.quality == "pass" and q.confidence > 0.8 and not q.reasons


def test_self_intersection_counts_crossings() -> None:
    assert self_intersections([[0, 0], [1, 0], [1, 1], [0, 1]]) == 0
    assert self_intersections([[0, 0], [2, 2], [2, 0], [0, 2]]) == 1


def test_swapped_medial_lateral_is_implausible(knee) -> None:  # type: ignore[no-untyped-def]
    pts, spacing, lat, shape = knee
    bad = pts.copy()
    bad[[lm.PLATEAU_MEDIAL_CORNER, lm.PLATEAU_LATERAL_CORNER]] = bad[
        [lm.PLATEAU_LATERAL_CORNER, lm.PLATEAU_MEDIAL_CORNER]]
    problems = shape_problems(bad, spacing)
    assert any("medial/lateral" in p for p in problems)
    assert any("fibular head" in p for p in problems)


def test_wrong_scale_and_scrambled_outline_are_flagged(knee) -> None:  # type: ignore[no-untyped-def]
    pts, spacing, lat, shape = knee
    assert any("mm" in p for p in shape_problems(pts, (spacing[0] * 3, spacing[1] * 3)))
    rng = np.random.default_rng(0)
    scrambled = pts[rng.permutation(len(pts))]
    assert _assess(scrambled, spacing, lat, shape).quality == "flag"


def test_model_doubts_and_header_mismatch_flag(knee) -> None:  # type: ignore[no-untyped-def]
    pts, spacing, lat, shape = knee
    assert "no knee" in _assess(pts, spacing, lat, shape, knee_probability=0.2).reasons[0]
    q = _assess(pts, spacing, lat, shape, frame_probability=0.1)
    assert q.quality == "flag" and q.confidence < 0.2
    q = _assess(pts, spacing, lat, shape, median_spread_pct=20.0)
    assert q.quality == "flag" and any("diffuse" in r for r in q.reasons)
    other = "R" if lat == "L" else "L"
    q = _assess(pts, spacing, lat, shape, header_laterality=other)
    assert q.quality == "flag" and any("Image Laterality" in r for r in q.reasons)
    q = _assess(pts, spacing, lat, shape, side_certainty=0.1)
    assert q.quality == "flag"
