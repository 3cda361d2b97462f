"""Domain randomisation of the full-leg training (ROI inputs and landmark crops)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from inference.errors import ConfigError
from inference.leg.roi import DEFAULT_ROI_WEIGHTS, build_roi_network
from training.leg_roi_data import (
    PELVIS_SOFTEN_MM,
    TOP_TRIM_MM,
    augment,
    render_sample,
    soften_pelvis,
    trim_top,
)
from training.leg_roi_train import _warm_start
from training.leg_train import LegData, _augment


@pytest.fixture(scope="module")
def sample():  # type: ignore[no-untyped-def]
    return render_sample(7_000_003, 320)


def test_appearance_changes_pixels_not_targets(sample) -> None:  # type: ignore[no-untyped-def]
    plain = augment(sample, np.random.default_rng(5), p_cut=0.0, p_non_leg=0.0)
    dr = augment(sample, np.random.default_rng(5), p_cut=0.0, p_non_leg=0.0, appearance_p=1.0)
    assert plain.image.shape == dr.image.shape
    assert float(np.abs(plain.image - dr.image).mean()) > 0.01
    np.testing.assert_allclose(plain.target, dr.target)
    np.testing.assert_array_equal(plain.label, dr.label)


def test_margins_keep_each_joint_on_its_pixels(sample) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(11)
    for _ in range(6):
        it = augment(sample, rng, p_cut=0.0, p_non_leg=0.0, margin_p=1.0)
        assert it.label.sum() == 6
        for x, y in it.target:  # each joint centre is on bright bone or close to it
            r0, c0 = int(round(y)), int(round(x))
            patch = it.image[max(r0 - 3, 0):r0 + 4, max(c0 - 3, 0):c0 + 4]
            assert patch.max() > np.percentile(it.image, 60)


def test_top_trim_cuts_through_the_pelvis_and_keeps_the_hips(sample) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(3)
    hip_y = float(np.min(sample.centres[[0, 3], 1]))
    tops = []
    for _ in range(20):
        img, c = trim_top(sample.image, sample.centres, sample.mm_per_px, rng)
        cut = sample.image.shape[0] - img.shape[0]
        assert cut > 0  # the generator draws the whole pelvis, so there is always room
        np.testing.assert_array_equal(img, sample.image[cut:])
        np.testing.assert_allclose(c, sample.centres - [0.0, cut])
        tops.append((hip_y - cut) * sample.mm_per_px)
    assert TOP_TRIM_MM[0] - 1 <= min(tops) and max(tops) <= TOP_TRIM_MM[1] + 1
    assert max(tops) - min(tops) > 50  # a spread of fields, not one
    for _ in range(6):  # through augment: every joint stays present
        assert augment(sample, rng, p_cut=0.0, p_non_leg=0.0, top_trim_p=1.0).label.sum() == 6


def test_soften_pelvis_blurs_above_the_hips_only(sample) -> None:  # type: ignore[no-untyped-def]
    img = sample.image
    out = soften_pelvis(img, sample.centres, sample.mm_per_px, np.random.default_rng(2))
    hip_y = float(np.min(sample.centres[[0, 3], 1]))
    start = int(hip_y - PELVIS_SOFTEN_MM[1] / sample.mm_per_px)  # blurred above this row
    below = int(np.ceil(hip_y - PELVIS_SOFTEN_MM[0] / sample.mm_per_px + 10 / sample.mm_per_px))
    np.testing.assert_array_equal(out[below + 1:], img[below + 1:])  # heads and legs untouched

    def edges(a: np.ndarray) -> float:
        return float(np.abs(np.diff(a, axis=1)).mean())

    assert start > 5
    assert edges(out[:start]) < 0.5 * edges(img[:start])  # the pelvis's bone edges are gone
    assert abs(float(out[:start].mean()) - float(img[:start].mean())) < 0.05  # shading stays
    for _ in range(4):  # through augment: every joint stays present
        it = augment(sample, np.random.default_rng(_), p_cut=0.0, p_non_leg=0.0, pelvis_p=1.0)
        assert it.label.sum() == 6


def test_bad_probabilities_are_refused(sample) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError, match="appearance_p"):
        augment(sample, np.random.default_rng(0), appearance_p=1.5)
    with pytest.raises(ConfigError, match="pelvis_p"):
        augment(sample, np.random.default_rng(0), pelvis_p=-1.0)
    with pytest.raises(ConfigError, match="top_trim_p"):
        augment(sample, np.random.default_rng(0), top_trim_p=2.0)
    with pytest.raises(ConfigError, match="appearance_p"):
        LegData(appearance_p=-0.1)


def test_crop_appearance_only_when_asked() -> None:
    x = torch.rand(4, 1, 64, 64)
    same = _augment(x, np.random.default_rng(1))
    again = _augment(x, np.random.default_rng(1))
    torch.testing.assert_close(same, again)
    dr = _augment(x, np.random.default_rng(1), appearance_p=1.0)
    assert dr.shape == x.shape
    assert float((dr - same).abs().mean()) > 1e-3


def test_roi_warm_start_reproduces_the_shipped_network() -> None:
    state = torch.load(DEFAULT_ROI_WEIGHTS, map_location="cpu", weights_only=True)
    net = build_roi_network(**state["network"])
    sha = _warm_start(net, Path(DEFAULT_ROI_WEIGHTS))
    assert len(sha) == 64
    for k, v in state["state_dict"].items():
        torch.testing.assert_close(net.state_dict()[k], v)
    with pytest.raises(ConfigError, match="does not exist"):
        _warm_start(net, Path("/nonexistent/roi.pt"))
