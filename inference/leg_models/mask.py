"""Paper 001's mask methods on one U-Net: landmark segmentation and heatmap regression.

* :class:`SegMethod` (001 §II-D) -- one channel per landmark, a disc of radius ``radius`` px
  (at the network input; 001's 15 px at 512² is 3.75 px at 128²) as the target, loss Dice +
  binary cross-entropy, points by extraction method ``extraction`` (M3 by default,
  :mod:`inference.leg_models.extraction`).
* :class:`HeatmapMethod` (001 §II-E) -- a Gaussian of ``sigma`` px as the target, MSE, argmax
  (M5).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from inference.leg_models.base import CHANNELS, FloatArray, LegLandmarkMethod, LegModelError
from inference.leg_models.extraction import METHODS, extract
from inference.leg_models.unet import VggUNet

#: 001's radius / sigma are given at 512 x 512; scaled to the input size used.
PAPER_SIZE = 512


def disc_targets(points: torch.Tensor, size: int, radius: float) -> torch.Tensor:
    """``(B, C, size, size)`` 0/1 discs of ``radius`` px round ``points`` ``(B, C, 2)``.

    A radius below 0.5 gives the single nearest pixel (001's "single pixel" mask).
    """
    ys = torch.arange(size, dtype=points.dtype).view(1, 1, size, 1)
    xs = torch.arange(size, dtype=points.dtype).view(1, 1, 1, size)
    d2 = (xs - points[..., 0, None, None]) ** 2 + (ys - points[..., 1, None, None]) ** 2
    r = max(float(radius), 0.5)
    return (d2 <= r * r).to(points.dtype)


def gaussian_targets(points: torch.Tensor, size: int, sigma: float) -> torch.Tensor:
    """``(B, C, size, size)`` Gaussians of peak 1 and ``sigma`` px round ``points``."""
    ys = torch.arange(size, dtype=points.dtype).view(1, 1, size, 1)
    xs = torch.arange(size, dtype=points.dtype).view(1, 1, 1, size)
    d2 = (xs - points[..., 0, None, None]) ** 2 + (ys - points[..., 1, None, None]) ** 2
    return torch.exp(-0.5 * d2 / (sigma * sigma))


def dice_bce(logits: torch.Tensor, masks: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Soft Dice + binary cross-entropy per channel, averaged over channels where ``weight`` is 1.

    Parameters
    ----------
    logits, masks
        ``(B, C, S, S)`` network logits and 0/1 targets.
    weight
        ``(B, C)`` which channels count.
    """
    p = torch.sigmoid(logits)
    inter = (p * masks).sum((2, 3))
    dice = 1.0 - (2 * inter + 1.0) / (p.sum((2, 3)) + masks.sum((2, 3)) + 1.0)  # (B, C)
    bce = nn.functional.binary_cross_entropy_with_logits(logits, masks, reduction="none")
    per = dice + bce.mean((2, 3))
    m = weight.to(per.dtype)
    return (per * m).sum() / m.sum().clamp_min(1.0)


class _MaskMethod(LegLandmarkMethod):
    """Shared U-Net, decoding by a point-extraction method of a per-channel map."""

    default_extraction = "M3"

    def build_network(self) -> nn.Module:
        ext = str(self.options.get("extraction", self.default_extraction))
        if ext not in METHODS:
            raise LegModelError(f"extraction must be one of {sorted(METHODS)}, got {ext!r}")
        return VggUNet(1, len(CHANNELS), width=int(self.options.get("width", 16)),
                       levels=int(self.options.get("levels", 4)))

    def forward(self, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"logits": self.net(batch)}

    def maps(self, raw: dict[str, torch.Tensor]) -> torch.Tensor:
        """Per-channel probability (seg) or heatmap (heatmap) maps, ``(B, C, S, S)``."""
        raise NotImplementedError

    def decode(self, raw: dict[str, torch.Tensor], index: int, channels: list[int],
               extraction: str | None = None
               ) -> tuple[FloatArray, npt.NDArray[np.bool_], FloatArray, npt.NDArray[np.int64]]:
        ext = extraction or str(self.options.get("extraction", self.default_extraction))
        maps = self.maps(raw)[index, channels].detach().cpu().numpy()
        pts = np.full((len(channels), 2), np.nan)
        found = np.zeros(len(channels), bool)
        cand = np.zeros(len(channels), np.int64)
        for k, m in enumerate(maps):
            e = extract(m, ext)
            cand[k] = e.candidates
            if e.point is not None:
                pts[k], found[k] = e.point, True
        return pts, found, np.full(len(channels), np.nan), cand


class SegMethod(_MaskMethod):
    """Landmark segmentation (paper 001): disc masks, Dice + BCE, extraction M3."""

    name = "seg"

    @property
    def radius(self) -> float:
        """Disc radius at the network input, px (001's ``radius_512`` scaled)."""
        return float(self.options.get("radius_512", 15.0)) * self.input_size / PAPER_SIZE

    def maps(self, raw: dict[str, torch.Tensor]) -> torch.Tensor:
        return torch.sigmoid(raw["logits"])

    def loss(self, raw: dict[str, torch.Tensor], target: torch.Tensor,
             mask: torch.Tensor) -> torch.Tensor:
        return dice_bce(raw["logits"], disc_targets(target, self.input_size, self.radius), mask)


class HeatmapMethod(_MaskMethod):
    """Heatmap regression (paper 001 §II-E): Gaussian targets, MSE, argmax."""

    name = "heatmap"
    default_extraction = "M5"

    @property
    def sigma(self) -> float:
        """Gaussian sigma at the network input, px (001's 15 px at 512² scaled)."""
        return float(self.options.get("sigma_512", 15.0)) * self.input_size / PAPER_SIZE

    @property
    def foreground_weight(self) -> float:
        """Extra MSE weight on the Gaussian (``w = 1 + foreground_weight * target``; 0 = 001's
        plain MSE, whose all-zero map is a minimum the network settles in first)."""
        return float(self.options.get("foreground_weight", 0.0))

    def maps(self, raw: dict[str, torch.Tensor]) -> torch.Tensor:
        return raw["logits"].clamp(0.0, None)

    def loss(self, raw: dict[str, torch.Tensor], target: torch.Tensor,
             mask: torch.Tensor) -> torch.Tensor:
        t = gaussian_targets(target, self.input_size, self.sigma)
        w = 1.0 + self.foreground_weight * t
        per = (w * (raw["logits"] - t) ** 2).mean((2, 3)) / w.mean((2, 3))
        m = mask.to(per.dtype)
        return (per * m).sum() / m.sum().clamp_min(1.0)
