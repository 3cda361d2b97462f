"""The femoral notch pair from image evidence (inference.notch), on arrays whose walls are known."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import erf

from inference import landmarks as lm
from inference import notch
from inference.alignment import atfa

OPENING_Y, ROOF_Y = 300.0, 200.0
#: true walls (sub-pixel): medial at x = 170.0, lateral at x = 230.4
MEDIAL_X, LATERAL_X = 170.0, 230.4


def _image(contrast: float = 0.5, noise: float = 0.0, seed: int = 0,
           shape: tuple[int, int] = (400, 400)) -> np.ndarray:
    """Bright condyles, a dark gap between the two walls from the opening up to the roof,
    walls blurred by a Gaussian of 1.5 px (an erf step)."""
    rows, cols = shape
    y, x = np.mgrid[0:rows, 0:cols].astype(np.float64)
    s = 1.5 * np.sqrt(2.0)
    inside = (0.5 * (1 + erf((x - MEDIAL_X) / s))) * (0.5 * (1 - erf((x - LATERAL_X) / s)))
    band = (y > ROOF_Y) & (y < OPENING_Y)
    img = 0.8 - contrast * inside * band
    if noise:
        img = img + np.random.default_rng(seed).normal(0.0, noise, img.shape)
    return img.astype(np.float32)


def _landmarks(lateral_x: float, medial_x: float) -> np.ndarray:
    """A knee whose femoral shaft is vertical, notch outline on the given walls."""
    pts = np.zeros((lm.N_PRE_OP, 2))
    pts[:, 0], pts[:, 1] = 200.0, 150.0  # every other point somewhere harmless
    fp, fd = lm.FEMUR_SHAFT_PROXIMAL, lm.FEMUR_SHAFT_DISTAL
    pts[fp.medial], pts[fp.lateral] = (150.0, 20.0), (250.0, 20.0)
    pts[fd.medial], pts[fd.lateral] = (150.0, 120.0), (250.0, 120.0)
    tp, td = lm.TIBIA_SHAFT_PROXIMAL, lm.TIBIA_SHAFT_DISTAL
    pts[tp.medial], pts[tp.lateral] = (150.0, 360.0), (250.0, 360.0)
    pts[td.medial], pts[td.lateral] = (150.0, 395.0), (250.0, 395.0)
    pts[lm.PLATEAU_MEDIAL_CORNER], pts[lm.PLATEAU_LATERAL_CORNER] = (100.0, 330.0), (300.0, 330.0)
    for k in range(4):  # notch_0..3 laterally, notch_8..5 medially, 25 px apart upwards
        y = OPENING_Y - 25.0 * k
        pts[lm.idx(f"femur_notch_{k}")] = (lateral_x, y)
        pts[lm.idx(f"femur_notch_{8 - k}")] = (medial_x, y)
    pts[notch.NOTCH_ROOF] = (0.5 * (lateral_x + medial_x), ROOF_Y)
    return pts


def test_a_displaced_pair_moves_onto_the_walls() -> None:
    """Network 2.6 px outside the lateral wall, 1.5 px outside the medial one: the pair lands
    on the true sub-pixel walls, only across the shaft, and nothing else moves."""
    moved = _landmarks(LATERAL_X + 2.6, MEDIAL_X - 1.5)
    out = notch.refine_notch_pair(_image(), moved)
    lat, med = out[lm.FEMUR_NOTCH.lateral], out[lm.FEMUR_NOTCH.medial]
    assert lat[0] == pytest.approx(LATERAL_X, abs=0.1)
    assert med[0] == pytest.approx(MEDIAL_X, abs=0.1)
    assert lat[1] == moved[lm.FEMUR_NOTCH.lateral][1] and med[1] == OPENING_Y
    pair = (lm.FEMUR_NOTCH.medial, lm.FEMUR_NOTCH.lateral)
    others = [i for i in range(lm.N_PRE_OP) if i not in pair]
    assert np.array_equal(out[others], moved[others])
    # the FNTS angle follows: the mid-point moved by (-2.6 + 1.5) / 2 px across
    res = notch.notch_evidence(_image(), moved)
    assert res.accepted and res.shift_px == pytest.approx(-0.55, abs=0.1)
    assert atfa(out, "FNTS") != pytest.approx(atfa(moved, "FNTS"))


def test_a_pair_inside_the_walls_moves_out() -> None:
    moved = _landmarks(LATERAL_X - 3.0, MEDIAL_X + 2.0)
    out = notch.refine_notch_pair(_image(noise=0.01, seed=3), moved)
    assert out[lm.FEMUR_NOTCH.lateral][0] == pytest.approx(LATERAL_X, abs=0.25)
    assert out[lm.FEMUR_NOTCH.medial][0] == pytest.approx(MEDIAL_X, abs=0.25)


def test_a_flat_image_keeps_the_network_points() -> None:
    pts = _landmarks(LATERAL_X + 2.0, MEDIAL_X - 2.0)
    res = notch.notch_evidence(np.full((400, 400), 0.5, np.float32), pts)
    assert not res.accepted and res.reason == "weak wall"
    assert np.array_equal(notch.refine_notch_pair(np.full((400, 400), 0.5), pts), pts)


def test_weak_evidence_keeps_the_network_points() -> None:
    """A gap drowned in noise: the gate says weak, the points stay."""
    pts = _landmarks(LATERAL_X + 2.0, MEDIAL_X - 2.0)
    img = _image(contrast=0.02, noise=0.2, seed=1)
    res = notch.notch_evidence(img, pts)
    assert not res.accepted
    assert np.array_equal(notch.refine_notch_pair(img, pts), pts)


def test_a_large_shift_is_refused() -> None:
    """Both walls 5 px to the same side: the mid-point would move 5 px > max_shift (2 px)."""
    pts = _landmarks(LATERAL_X + 5.0, MEDIAL_X + 5.0)
    params = notch.NotchParams(max_shift=0.01)  # 0.01 * w = 2 px
    res = notch.notch_evidence(_image(), pts, params)
    assert not res.accepted and res.reason == "shift too large"
    assert res.shift_px == pytest.approx(-5.0, abs=0.15)
    assert np.array_equal(notch.refine_notch_pair(_image(), pts, params), pts)
    # with the default gate (6 px) the same move is taken
    out = notch.refine_notch_pair(_image(), pts)
    assert out[lm.FEMUR_NOTCH.lateral][0] == pytest.approx(LATERAL_X, abs=0.1)


def test_post_operative_knees_are_left_alone() -> None:
    """The default gate refines pre-operative knees only; the phases can be chosen."""
    moved = _landmarks(LATERAL_X + 2.6, MEDIAL_X - 1.5)
    assert np.array_equal(notch.refine_notch_pair(_image(), moved, phase="post"), moved)
    both = notch.NotchParams(phases=("pre", "post"))
    out = notch.refine_notch_pair(_image(), moved, both, phase="post")
    assert out[lm.FEMUR_NOTCH.lateral][0] == pytest.approx(LATERAL_X, abs=0.1)


def test_a_bad_phase_is_named() -> None:
    with pytest.raises(ValueError, match="phase must be 'pre' or 'post', got 'mixed'"):
        notch.refine_notch_pair(_image(), _landmarks(LATERAL_X, MEDIAL_X), phase="mixed")


def test_profiles_off_the_image_keep_the_points() -> None:
    pts = _landmarks(LATERAL_X + 2.0, MEDIAL_X - 2.0) + [200.0, 0.0]  # walls past the edge
    img = _image()
    assert np.array_equal(notch.refine_notch_pair(img, pts), pts)


@pytest.mark.parametrize("shape", [(10,), (3, 4, 5)])
def test_bad_image_is_named(shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match=r"image must be 2-D, got shape \("):
        notch.refine_notch_pair(np.zeros(shape), np.zeros((lm.N_PRE_OP, 2)))


def test_bad_landmarks_are_named() -> None:
    with pytest.raises(ValueError, match=r"landmarks must have shape .*got \(5, 2\)"):
        notch.refine_notch_pair(np.zeros((50, 50)), np.zeros((5, 2)))


@pytest.mark.parametrize(("kwargs", "name"), [
    ({"band": (0.6, 0.2)}, "band"), ({"n_levels": 0}, "n_levels"),
    ({"search_half": 0.0}, "search_half"), ({"smooth_px": -1.0}, "smooth_px"),
    ({"min_contrast": -1.0}, "min_contrast"), ({"min_step": -1.0}, "min_step"),
    ({"max_shift": 0.0}, "max_shift"),
    ({"min_depth": -0.1}, "min_depth"), ({"method": "mean"}, "method"),
    ({"phases": ("pre", "mixed")}, "phases"),
])
def test_bad_params_are_named(kwargs: dict[str, object], name: str) -> None:
    with pytest.raises(ValueError, match=f"{name} must"):
        notch.NotchParams(**kwargs)  # type: ignore[arg-type]


# -- the predictor: a switch, off by default ------------------------------------------------
@pytest.fixture(scope="module")
def knee_image() -> tuple[np.ndarray, tuple[float, float]]:
    from inference.pixels import stored_to_image
    from training.synth import synthesize

    r = synthesize(960_000_321, both_knees=False, max_side=900)
    return stored_to_image(r.pixels, r.photometric), r.pixel_spacing_mm


def _measure(mode: str | None, knee_image: tuple[np.ndarray, tuple[float, float]],
             monkeypatch: pytest.MonkeyPatch) -> tuple[list, list]:  # type: ignore[type-arg]
    import inference.predictor as predictor_module
    from inference.predictor import KneePredictor

    calls: list[int] = []
    real = predictor_module.refine_notch_pair

    def counting(image: np.ndarray, landmarks: np.ndarray, phase: str = "pre") -> np.ndarray:
        calls.append(1)
        return real(image, landmarks, phase=phase)

    monkeypatch.setattr(predictor_module, "refine_notch_pair", counting)
    options = {} if mode is None else {"notch_refinement": mode}
    predictor = KneePredictor.from_shipped_weights(num_threads=1, **options)
    return predictor.measure_array(*knee_image), calls


def test_the_predictor_switch(knee_image: tuple[np.ndarray, tuple[float, float]],
                              monkeypatch: pytest.MonkeyPatch) -> None:
    """off: never called, nothing reported; report: called once per knee, the angle from the
    network's points; use: the angle from the refined pair."""
    default, calls = _measure(None, knee_image, monkeypatch)
    assert len(default) == 1
    if notch.DEFAULT_MODE is notch.NotchRefinement.OFF:
        assert calls == [] and default[0].atfa_notch_deg == {}
    else:
        assert len(calls) == 1
    off, calls = _measure("off", knee_image, monkeypatch)
    assert calls == [] and off[0].atfa_notch_deg == {}
    reported, calls = _measure("report", knee_image, monkeypatch)
    assert len(calls) == len(reported) == 1
    assert set(reported[0].atfa_notch_deg) == {"FTS", "FNTS"}
    np.testing.assert_array_equal(reported[0].landmarks, off[0].landmarks)
    assert reported[0].atfa_notch_deg["FTS"] == pytest.approx(off[0].atfa_deg["FTS"])
    used, calls = _measure(notch.NotchRefinement.USE, knee_image, monkeypatch)
    assert len(calls) == 1
    assert used[0].atfa_deg == pytest.approx(reported[0].atfa_notch_deg)


def test_a_bad_notch_mode_is_named() -> None:
    from inference.predictor import KneePredictor

    with pytest.raises(ValueError, match="notch_refinement must be one of .*'always'"):
        KneePredictor.from_shipped_weights(num_threads=1, notch_refinement="always")
