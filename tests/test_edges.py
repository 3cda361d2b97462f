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


# -- the predictor: off the hot path unless asked -------------------------------------------
@pytest.fixture(scope="module")
def knee_image() -> tuple[np.ndarray, tuple[float, float]]:
    from training.synth import synthesize

    r = synthesize(960_000_321, both_knees=False, max_side=900)
    return stored_to_image(r.pixels, r.photometric), r.pixel_spacing_mm


def _measure(mode: str | None, knee_image: tuple[np.ndarray, tuple[float, float]],
             monkeypatch: pytest.MonkeyPatch) -> tuple[list, list]:  # type: ignore[type-arg]
    import inference.predictor as predictor_module
    from inference.predictor import KneePredictor

    calls: list[int] = []
    real = predictor_module.refine_shaft_points

    def counting(image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        calls.append(1)
        return real(image, landmarks)

    monkeypatch.setattr(predictor_module, "refine_shaft_points", counting)
    options = {} if mode is None else {"edge_refinement": mode}
    predictor = KneePredictor.from_shipped_weights(num_threads=1, **options)
    return predictor.measure_array(*knee_image), calls


def test_the_predictor_does_not_refine_by_default(
    knee_image: tuple[np.ndarray, tuple[float, float]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Default: the edge search is never called and no refined angle is reported;
    "report" calls it once per knee and leaves the result alone; "use" measures on it."""
    default, calls = _measure(None, knee_image, monkeypatch)
    assert calls == [] and len(default) == 1
    assert default[0].atfa_refined_deg == {}
    reported, calls = _measure("report", knee_image, monkeypatch)
    assert len(calls) == len(reported) == 1
    assert set(reported[0].atfa_refined_deg) == {"FTS", "FNTS"}
    np.testing.assert_array_equal(reported[0].landmarks, default[0].landmarks)
    used, calls = _measure(edges.EdgeRefinement.USE, knee_image, monkeypatch)
    assert len(calls) == 1
    assert used[0].atfa_deg == pytest.approx(used[0].atfa_refined_deg)
    assert used[0].atfa_deg == pytest.approx(reported[0].atfa_refined_deg)


def test_a_bad_refinement_mode_is_named() -> None:
    from inference.predictor import KneePredictor

    with pytest.raises(ValueError, match="edge_refinement must be one of"):
        KneePredictor.from_shipped_weights(num_threads=1, edge_refinement="always")
