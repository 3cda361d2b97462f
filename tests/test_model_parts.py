"""Unit tests of the model parts: soft-argmax, hourglass, wing loss, frames, patches."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from inference import landmarks as lm
from inference.frame import (
    PatchFrame,
    apply_affine,
    cut_patch,
    invert_affine,
    laterality_from_corners,
    letterbox_matrix,
)
from inference.networks import HMPBlock, HourglassConfig, HourglassNet, soft_argmax
from training.losses import wing_loss


def test_soft_argmax_finds_peak_in_input_pixels() -> None:
    h = torch.full((1, 2, 8, 10), -50.0)
    h[0, 0, 3, 7] = 50.0
    h[0, 1, 0, 0] = 50.0
    coords, spread = soft_argmax(h, stride=4)
    # heatmap pixel j covers input pixels [4j, 4j+4): centre 4j + 1.5
    assert coords[0, 0].tolist() == pytest.approx([7 * 4 + 1.5, 3 * 4 + 1.5], abs=1e-3)
    assert coords[0, 1].tolist() == pytest.approx([1.5, 1.5], abs=1e-3)
    assert spread.max() < 1e-2


def test_soft_argmax_spread_grows_with_flat_heatmap() -> None:
    _, sharp = soft_argmax(torch.randn(1, 1, 16, 16) * 20)
    _, flat = soft_argmax(torch.zeros(1, 1, 16, 16))
    assert float(flat) > float(sharp)
    assert float(flat) == pytest.approx(np.sqrt(2 * (16**2 - 1) / 12), rel=1e-4)


def test_hmp_block_changes_channels() -> None:
    block = HMPBlock(8, 16)
    assert block(torch.randn(2, 8, 12, 12)).shape == (2, 16, 12, 12)
    with pytest.raises(ValueError, match="multiple of 4"):
        HMPBlock(8, 10)


def test_hourglass_outputs_and_checks() -> None:
    cfg = HourglassConfig(n_landmarks=5, width=8, depth=2, n_logits=2)
    net = HourglassNet(cfg).eval()
    with torch.no_grad():
        out = net(torch.randn(2, 1, 32, 48))
    assert out["coords"].shape == (2, 5, 2)
    assert out["spread"].shape == (2, 5)
    assert out["logits"].shape == (2, 2)
    assert out["heatmaps"].shape == (2, 5, 8, 12)
    assert float(out["coords"][..., 0].max()) <= 47 and float(out["coords"].min()) >= 0
    with pytest.raises(ValueError, match="multiples of 16"):
        net(torch.randn(1, 1, 30, 48))
    with pytest.raises(ValueError, match="width"):
        HourglassConfig(width=0)


def test_local_model_initialised_from_global() -> None:
    g = HourglassNet(HourglassConfig(n_landmarks=2, width=8, depth=2, n_logits=1))
    loc = HourglassNet(HourglassConfig(n_landmarks=lm.N_POST_OP, width=8, depth=2, n_logits=2))
    copied = loc.load_backbone_from(g)
    assert copied > 20
    assert torch.equal(loc.entry[0].weight, g.entry[0].weight)
    assert not torch.equal(loc.heatmap.bias[:2], g.heatmap.bias) or loc.heatmap.bias.shape != (2,)


def test_wing_loss_shape_and_mask() -> None:
    pred = torch.zeros(1, 3, 2)
    target = torch.zeros(1, 3, 2)
    assert float(wing_loss(pred, target)) == 0.0
    target[0, 2] = 100.0
    full = float(wing_loss(pred, target))
    masked = float(wing_loss(pred, target, mask=torch.tensor([[1.0, 1.0, 0.0]])))
    assert full > 0 and masked == 0.0
    # continuous where the log part meets the linear part (|d| = w)
    w = 10.0
    below = float(wing_loss(torch.tensor([[[w - 1e-4, 0.0]]]), torch.zeros(1, 1, 2), w=w))
    above = float(wing_loss(torch.tensor([[[w + 1e-4, 0.0]]]), torch.zeros(1, 1, 2), w=w))
    assert below == pytest.approx(above, abs=1e-3)


def test_patch_frame_places_corners_and_round_trips() -> None:
    f = PatchFrame((100.0, 200.0), (180.0, 205.0), (192, 320))
    corners = f.to_patch(np.array([f.medial, f.lateral]))
    # one plateau width = 192 / 2.2 patch pixels; corners level, medial on the patch left
    assert corners[1, 0] - corners[0, 0] == pytest.approx(192 / 2.2)
    assert corners[0, 1] == pytest.approx(corners[1, 1])
    assert corners[0, 0] < corners[1, 0]
    pts = np.random.default_rng(0).uniform(0, 300, (20, 2))
    assert np.allclose(f.to_image(f.to_patch(pts)), pts)
    assert f.laterality == laterality_from_corners(f.medial, f.lateral)


def test_right_knee_is_mirrored_into_left() -> None:
    left = PatchFrame((100.0, 200.0), (180.0, 200.0), (64, 96))
    right = PatchFrame((180.0, 200.0), (100.0, 200.0), (64, 96))
    assert np.linalg.det(left.matrix[:, :2]) > 0 > np.linalg.det(right.matrix[:, :2])
    assert left.laterality != right.laterality
    # a point above the plateau stays above (distal is down in both patches)
    p = np.array([[140.0, 100.0]])
    assert left.to_patch(p)[0, 1] == pytest.approx(right.to_patch(p)[0, 1])


def test_cut_patch_moves_a_dot_where_the_frame_says() -> None:
    img = np.zeros((600, 500), np.float32)
    img[300:304, 240:244] = 1.0  # dot centred at (241.5, 301.5)
    f = PatchFrame((200.0, 330.0), (290.0, 340.0), (64, 96))
    patch = cut_patch(img, f.matrix, f.patch_size).numpy()
    ys, xs = np.nonzero(patch > 0.5 * patch.max())
    expected = f.to_patch(np.array([[241.5, 301.5]]))[0]
    assert abs(xs.mean() - expected[0]) < 1.0 and abs(ys.mean() - expected[1]) < 1.0


def test_cut_patch_antialiases_large_downsampling() -> None:
    rng = np.random.default_rng(1)
    img = rng.uniform(0, 1, (800, 800)).astype(np.float32)
    A = np.array([[8.0, 0.0, 0.0], [0.0, 8.0, 0.0]])
    patch = cut_patch(img, A, (90, 90))
    assert float(patch.std()) < 0.1  # box-averaged noise, not point samples


def test_letterbox_and_affine_helpers() -> None:
    A = letterbox_matrix((400, 300), 256)
    corners = apply_affine(A, [[0.0, 0.0], [255.0, 255.0]])
    assert corners[0, 1] == pytest.approx(0.0, abs=1.0)
    assert corners[1, 1] == pytest.approx(399, abs=1)
    inv = invert_affine(A)
    assert np.allclose(apply_affine(inv, apply_affine(A, [[3.0, 4.0]])), [[3.0, 4.0]])
    with pytest.raises(ValueError, match="2x3"):
        apply_affine(np.eye(3), [[0.0, 0.0]])
