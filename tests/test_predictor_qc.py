"""The shipped predictor on synthetic knees, both-knee images, DICOM input and non-knee inputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest

from inference import landmarks as lm
from inference.pixels import stored_to_image
from inference.predictor import KneePredictor
from training import synth

RG3 = Path("/work/shared/testdata/RG3_J2KR.dcm")
#: Seeds of the test images: a range used neither by training (< 10,000,000) nor by the
#: documented hold-out set (900,000,000 + 0..199).
TEST_SEED = 960_000_000
#: Largest |predicted - true| aTFA accepted on the unflagged test knees (degrees): about
#: 3 SD of the hold-out differences (Bland-Altman SD 0.31-0.48 deg, docs/model.md).
ATFA_TOLERANCE_DEG = 1.5


@pytest.fixture(scope="module")
def predictor() -> KneePredictor:
    return KneePredictor.from_shipped_weights(device="cpu", num_threads=2)


def _measure(predictor: KneePredictor, r: synth.SynthRadiograph):  # type: ignore[no-untyped-def]
    return predictor.measure_array(stored_to_image(r.pixels, r.photometric), r.pixel_spacing_mm)


@pytest.mark.parametrize("kind", ["blank", "noise", "chest", "lateral_knee", "lower_leg"])
def test_non_knee_images_are_flagged(predictor: KneePredictor, kind: str) -> None:
    for seed in (TEST_SEED, TEST_SEED + 1):
        r = synth.synthesize_negative(seed, kind, max_side=700)
        out = _measure(predictor, r)
        assert len(out) >= 1
        assert all(m.quality == "flag" and m.flag_reasons for m in out), kind
        assert all(0.0 <= m.confidence <= 1.0 for m in out)


@pytest.mark.skipif(not RG3.exists(), reason="shared test radiograph RG3_J2KR.dcm not present")
def test_real_lower_leg_radiograph_is_flagged(predictor: KneePredictor) -> None:
    out = predictor.measure(pydicom.dcmread(RG3))
    assert out and all(m.quality == "flag" for m in out)
    assert out[0].landmarks.shape[1] == 2


@pytest.mark.slow
def test_synthetic_knees_measured_within_tolerance(predictor: KneePredictor) -> None:
    errors = []
    for i in range(8):
        r = synth.synthesize(TEST_SEED + 100 + i, both_knees=False, max_side=1000)
        out = _measure(predictor, r)
        assert len(out) == 1
        m, truth = out[0], r.knees[0]
        assert m.laterality == truth.laterality
        assert m.landmarks.shape == (lm.N_PRE_OP if m.phase == "pre" else lm.N_POST_OP, 2)
        if m.quality == "pass":
            for method in ("FTS", "FNTS"):
                errors.append(abs(m.atfa_deg[method] - truth.atfa_deg[method]))
    assert len(errors) >= 8  # at least half of the knees pass quality control
    assert max(errors) < ATFA_TOLERANCE_DEG


@pytest.mark.slow
def test_both_knees_are_measured_separately(predictor: KneePredictor) -> None:
    found = 0
    for i in range(3):
        r = synth.synthesize(TEST_SEED + 200 + i, both_knees=True, max_side=900)
        out = _measure(predictor, r)
        if len(out) == 2:
            found += 1
            ref = list(lm.REFERENCE_POINTS)
            truth_x = sorted(k.landmarks[ref].mean(axis=0)[0] for k in r.knees)
            pred_x = sorted(m.landmarks[list(lm.REFERENCE_POINTS)].mean(axis=0)[0] for m in out)
            w = lm.plateau_width(r.knees[0].landmarks)
            assert np.allclose(truth_x, pred_x, atol=0.5 * w)
    assert found >= 2


def test_dicom_instance_gives_source_pixel_landmarks(predictor: KneePredictor) -> None:
    from training.synth_dicom import make_instance

    inst = make_instance(TEST_SEED + 300, both_knees=False, max_side=800, syntax="explicit")
    out = predictor.measure(inst.dataset)
    assert len(out) == 1
    true = np.asarray(inst.truth["landmarks"])
    w = lm.plateau_width(true)
    n = min(len(true), len(out[0].landmarks))
    err = np.linalg.norm(out[0].landmarks[:n] - true[:n], axis=1).mean()
    assert err < 0.15 * w  # same pixel frame as the stored image (loose: not an accuracy test)
    assert out[0].pixel_spacing_mm is not None
    assert set(out[0].timings_ms) >= {"global", "local", "total", "preprocess"}
