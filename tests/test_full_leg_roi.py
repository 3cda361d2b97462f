"""Full-leg ROI stage: letterbox mapping, layout checks, presence labels, and the shipped
weights on hold-out synthetic images (all six joints found; cut-off joints reported missing)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch

from inference.leg.roi import (
    DEFAULT_ROI_WEIGHTS,
    ROI_JOINTS,
    JointHit,
    RoiDetector,
    check_layout,
    letterbox,
)
from inference.leg_models import LegModelError
from training.leg_roi_data import presence, render_sample

CARD = Path(__file__).resolve().parents[1] / "inference" / "weights" / "FULL_LEG_MODEL_CARD.md"


def _hits(points: dict[tuple[str, str], tuple[float, float]]) -> tuple[JointHit, ...]:
    return tuple(JointHit(s, j, np.array(points[(s, j)], float), 0.9, True, 1.0)
                 for s, j in ROI_JOINTS)


def test_letterbox_maps_back_and_forth() -> None:
    img = np.random.default_rng(0).uniform(size=(900, 300)).astype(np.float32)
    lb = letterbox(img, (384, 128))
    assert lb.image.shape == (384, 128)
    p = np.array([[10.0, 20.0], [299.0, 899.0], [150.0, 450.0]])
    np.testing.assert_allclose(lb.to_stored(lb.to_input(p)), p, atol=1e-9)
    # the centre of the stored image lands at the centre of the content box
    x0, y0, x1, y1 = lb.content
    c = lb.to_input([[149.5, 449.5]])[0]
    assert abs(c[0] - (x0 + x1 - 1) / 2) < 1.0 and abs(c[1] - (y0 + y1 - 1) / 2) < 1.0


def test_letterbox_refuses_bad_input() -> None:
    with pytest.raises(LegModelError, match="2-D"):
        letterbox(np.zeros((5, 5)))
    with pytest.raises(LegModelError, match="NaN"):
        letterbox(np.full((50, 50), np.nan))


def test_layout_check_finds_crossed_ankles_and_short_femur() -> None:
    good = {("R", "hip"): (100, 100), ("R", "knee"): (120, 3100), ("R", "ankle"): (140, 5600),
            ("L", "hip"): (900, 100), ("L", "knee"): (880, 3100), ("L", "ankle"): (860, 5600)}
    assert check_layout(_hits(good), 0.15) == ()
    crossed = dict(good)
    crossed[("R", "ankle")], crossed[("L", "ankle")] = (520, 5600), (500, 5600)
    problems = check_layout(_hits(crossed), 0.15)
    assert any(p.startswith("ankles not apart") for p in problems)
    short = dict(good)
    short[("R", "knee")] = (110, 600)  # femur 75 mm
    assert any("femur" in p for p in check_layout(_hits(short), 0.15))


def test_presence_labels_follow_the_edge() -> None:
    c = np.array([[50.0, 5.0], [50.0, 100.0], [50.0, 250.0]])
    label, weight, coord = presence(c, (200, 100), 1.0)
    assert label.tolist() == [0.0, 1.0, 0.0]  # 5 mm inside: ambiguous; 250: outside
    assert weight.tolist() == [0.0, 1.0, 1.0]
    assert coord.tolist() == [1.0, 1.0, 0.0]


def test_shipped_roi_weights_are_small_and_match_the_card() -> None:
    assert DEFAULT_ROI_WEIGHTS.is_file()
    data = DEFAULT_ROI_WEIGHTS.read_bytes()
    assert len(data) < 1_000_000
    assert hashlib.sha256(data).hexdigest() in CARD.read_text()


@pytest.fixture(scope="module")
def detector() -> RoiDetector:
    torch.set_num_threads(2)
    return RoiDetector.from_weights()


def test_finds_all_six_joints_on_hold_out_images(detector: RoiDetector) -> None:
    for seed in (990_000_010, 990_000_011, 990_000_012):
        s = render_sample(seed, 2048)
        label, _, _ = presence(s.centres, s.image.shape, s.mm_per_px)
        res = detector.detect(s.image, s.mm_per_px)
        for k, hit in enumerate(res.joints):
            if label[k] == 1:
                assert hit.present, (seed, hit)
                err = float(np.hypot(*(hit.centre - s.centres[k]))) * s.mm_per_px
                assert err < 15.0, (seed, hit.side, hit.joint, err)
        r, left = res.get("R", "ankle"), res.get("L", "ankle")
        if r.present and left.present:
            assert r.centre[0] < left.centre[0]


def test_cut_off_ankles_are_reported_missing(detector: RoiDetector) -> None:
    s = render_sample(990_000_020, 2048)
    knee_y = float(s.centres[[1, 4], 1].mean())
    ankle_y = float(s.centres[[2, 5], 1].mean())
    cut = s.image[: int(knee_y + 0.45 * (ankle_y - knee_y))]
    res = detector.detect(cut, s.mm_per_px)
    assert not res.get("R", "ankle").present and not res.get("L", "ankle").present
    assert res.get("R", "knee").present and res.get("L", "knee").present
