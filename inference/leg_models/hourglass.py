"""Ours: the attention-gated hourglass with soft-argmax (papers 000/002) on full-leg crops."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from inference.leg_models.base import CHANNELS, FloatArray, LegLandmarkMethod
from inference.networks import HourglassConfig, HourglassNet


class HourglassMethod(LegLandmarkMethod):
    """HMP blocks + attention gates + soft-argmax; wing loss plus a heatmap regulariser.

    Options
    -------
    width, depth, dropout, beta
        :class:`inference.networks.HourglassConfig` fields.
    wing_w, wing_epsilon
        Wing loss shape (input pixels).
    heatmap_weight, heatmap_sigma
        Weight and sigma (heatmap px) of :func:`training.losses.heatmap_cross_entropy`-style
        regulariser that speeds up training from scratch.
    """

    name = "hourglass"

    def build_network(self) -> nn.Module:
        o = self.options
        cfg = HourglassConfig(in_channels=1, n_landmarks=len(CHANNELS),
                              width=int(o.get("width", 16)), depth=int(o.get("depth", 3)),
                              n_logits=0, dropout=float(o.get("dropout", 0.1)),
                              beta=float(o.get("beta", 10.0)))
        if self.input_size % cfg.size_multiple:
            from inference.leg_models.base import LegModelError

            raise LegModelError(f"input_size must be a multiple of {cfg.size_multiple} for "
                                f"depth {cfg.depth}, got {self.input_size}")
        return HourglassNet(cfg)

    def forward(self, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.net(batch)  # type: ignore[no-any-return]

    def loss(self, raw: dict[str, torch.Tensor], target: torch.Tensor,
             mask: torch.Tensor) -> torch.Tensor:
        from training.losses import heatmap_cross_entropy, wing_loss

        o: dict[str, Any] = self.options
        loss = wing_loss(raw["coords"], target, mask, w=float(o.get("wing_w", 10.0)),
                         epsilon=float(o.get("wing_epsilon", 2.0)))
        hw = float(o.get("heatmap_weight", 1.0))
        if hw > 0:
            loss = loss + hw * heatmap_cross_entropy(
                raw["heatmaps"], target, stride=4, sigma=float(o.get("heatmap_sigma", 1.0)),
                mask=mask)
        return loss

    def decode(self, raw: dict[str, torch.Tensor], index: int, channels: list[int]
               ) -> tuple[FloatArray, npt.NDArray[np.bool_], FloatArray, npt.NDArray[np.int64]]:
        pts = raw["coords"][index, channels].detach().cpu().numpy().astype(np.float64)
        spread = raw["spread"][index, channels].detach().cpu().numpy().astype(np.float64)
        k = len(channels)
        return pts, np.ones(k, bool), spread, np.ones(k, np.int64)
