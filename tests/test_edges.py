"""Shaft cortex points from image evidence (inference.edges)."""

from __future__ import annotations

import numpy as np
import pytest

from inference import edges
from inference import landmarks as lm
from inference.pixels import stored_to_image


def _shaft_normals(pts: np.ndarray) -> dict[int, np.ndarray]:
    out = {}
    for a, b in edges._AXES:
        ma = 0.5 * (pts[a.medial] + pts[a.lateral])
        mb = 0.5 * (pts[b.medial] + pts[b.lateral])
        d = (mb - ma) / np.linalg.norm(mb - ma)
        for pair, mid in ((a, ma), (b, mb)):
            for i in (pair.medial, pair.lateral):
                n = np.array([-d[1], d[0]])
                out[i] = n if np.dot(pts[i] - mid, n) >= 0 else -n
    return out


def test_displaced_cortex_points_move_back_onto_the_edge() -> None:
    from training.synth import synthesize

    r = synthesize(900000001)
    img = stored_to_image(r.pixels, r.photometric)
    truth = np.asarray(r.knees[0].landmarks, dtype=np.float64)
    normals = _shaft_normals(truth)
    moved = truth.copy()
    for k, (i, n) in enumerate(normals.items()):
        moved[i] = truth[i] + (3.0 if k % 2 else -3.0) * n  # 3 px across the cortex
    refined = edges.refine_shaft_points(img, moved)
    before = [np.linalg.norm(moved[i] - truth[i]) for i in normals]
    after = [np.linalg.norm(refined[i] - truth[i]) for i in normals]
    assert np.mean(after) < 0.5 * np.mean(before)
    others = [i for i in range(len(truth)) if i not in normals]
    assert np.array_equal(refined[others], moved[others])  # nothing else moves


def test_flat_image_leaves_the_points_alone() -> None:
    from training.independent.truth import draw

    pts = draw(5, phase="pre", max_side=400).landmarks
    img = np.full((800, 800), 0.5, dtype=np.float32)
    assert np.array_equal(edges.refine_shaft_points(img, pts), np.asarray(pts, float))


@pytest.mark.parametrize("shape", [(10,), (3, 4, 5)])
def test_bad_image_is_named(shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match="image"):
        edges.refine_shaft_points(np.zeros(shape), np.zeros((lm.N_PRE_OP, 2)))


def test_bad_landmarks_are_named() -> None:
    with pytest.raises(ValueError, match="landmarks"):
        edges.refine_shaft_points(np.zeros((50, 50)), np.zeros((5, 2)))
