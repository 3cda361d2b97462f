"""Domain randomisation (issue 11): the shape warp moves landmarks with the image."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from training.augment import AppearanceAugment, OverlapAugment, ShapeWarp


def _dots(h: int, w: int, pts: np.ndarray) -> torch.Tensor:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    img = np.zeros((h, w))
    for x, y in pts:
        img += np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * 1.5 ** 2))
    return torch.from_numpy(img).float()


@pytest.mark.parametrize("seed", range(6))
def test_warp_moves_landmarks_with_the_image(seed: int) -> None:
    h, w = 320, 192
    pts = np.array([[60.0, 40.0], [130.0, 60.0], [96.0, 160.0], [70.0, 260.0], [125.0, 290.0]])
    warp = ShapeWarp(p=1.0, width=0.2, bow=0.05, bend_deg=8.0)
    out, moved = warp(_dots(h, w, pts), pts, (96.0, 160.0), np.random.default_rng(seed))
    assert not np.allclose(moved, pts)
    o = out.numpy()
    for x, y in moved:
        yi, xi = int(round(y)), int(round(x))
        win = o[yi - 6:yi + 7, xi - 6:xi + 7]
        cy, cx = np.unravel_index(int(np.argmax(win)), win.shape)
        assert abs(cy - 6) <= 1 and abs(cx - 6) <= 1, (x, y, cx, cy)


def test_warp_bend_changes_the_tibial_direction() -> None:
    h, w = 320, 192
    pts = np.array([[96.0, 200.0], [96.0, 300.0]])
    warp = ShapeWarp(p=1.0, width=0.0, bow=0.0, bend_deg=6.0)
    params = warp.draw(np.random.default_rng(1), (96.0, 160.0))
    assert params is not None
    _, moved = warp(_dots(h, w, pts), pts, (96.0, 160.0), np.random.default_rng(1))
    d = moved[1] - moved[0]
    turned = np.degrees(np.arctan2(-d[0], d[1]))
    assert abs(abs(turned) - abs(params["bend"])) < 0.5


def test_appearance_keeps_shape_and_is_seeded() -> None:
    img = torch.rand(320, 192)
    a = AppearanceAugment(p=1.0)
    x1 = a(img, np.random.default_rng(3))
    x2 = a(img, np.random.default_rng(3))
    assert x1.shape == img.shape and torch.isfinite(x1).all()
    assert torch.equal(x1, x2)


@pytest.mark.parametrize("kw", [{"p": 1.5}, {"grid_amp": -0.1}, {"marker_p": -1.0}])
def test_appearance_rejects_bad_arguments(kw: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=next(iter(kw))):
        AppearanceAugment(**kw)


def test_warp_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="bend_deg"):
        ShapeWarp(bend_deg=-1.0)


def test_overlap_lays_shapes_in_range_and_is_seeded() -> None:
    img = torch.full((128, 128), 0.4)
    aug = OverlapAugment(p=1.0, max_shapes=3)
    a = aug(img, np.random.default_rng(5))
    b = aug(img, np.random.default_rng(5))
    assert torch.equal(a, b)
    assert a.shape == img.shape
    assert float(a.min()) >= 0.0 and float(a.max()) <= 1.0
    changed = (a - img).abs() > 0.02
    assert 0.0 < float(changed.float().mean()) < 1.0  # shapes, not a global change
    assert torch.equal(OverlapAugment(p=0.0)(img, np.random.default_rng(5)), img)


@pytest.mark.parametrize("kw", [{"p": 1.5}, {"max_shapes": 0}, {"max_shapes": 2.5},
                                {"strength": 0.0}])
def test_overlap_rejects_bad_arguments(kw: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=next(iter(kw))):
        OverlapAugment(**kw)  # type: ignore[arg-type]
