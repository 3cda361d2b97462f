"""Domain randomisation of the full-leg training (ROI inputs and landmark crops)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from inference.errors import ConfigError
from inference.leg.roi import DEFAULT_ROI_WEIGHTS, build_roi_network
from training.leg_roi_data import augment, render_sample
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


def test_bad_probabilities_are_refused(sample) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError, match="appearance_p"):
        augment(sample, np.random.default_rng(0), appearance_p=1.5)
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
