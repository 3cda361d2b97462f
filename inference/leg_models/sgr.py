"""Paper 003's segmentation-guided coordinate regression (SGR).

A U-Net (:class:`inference.leg_models.unet.VggUNet`) segments a disc round every landmark;
its per-channel probabilities are concatenated with the image and a VGG-style regressor
(:class:`inference.leg_models.coord.VggRegressor`) outputs the 2K coordinates. Trained end
to end with ``alpha * (Dice + BCE)`` on the masks plus the MSE of the coordinates (in units
of the crop side, as :mod:`inference.leg_models.coord`; 003's alpha is relative to its own
coordinate scale, so the sweep over alpha is ours to repeat, not its numbers).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from inference.leg_models.base import CHANNELS, FloatArray, LegLandmarkMethod, LegModelError
from inference.leg_models.coord import VggRegressor, masked_mse
from inference.leg_models.mask import PAPER_SIZE, dice_bce, disc_targets
from inference.leg_models.unet import VggUNet


class SgrNet(nn.Module):
    """U-Net probabilities + image -> VGG-style regressor.

    Parameters
    ----------
    n_points
        K, landmarks (mask channels and regressed points).
    input_size
        Side of the square input, px.
    seg_width, seg_levels
        :class:`VggUNet` width and levels.
    reg_width, reg_levels, hidden, dropout
        :class:`VggRegressor` fields.
    """

    def __init__(self, n_points: int, input_size: int, seg_width: int = 8, seg_levels: int = 3,
                 reg_width: int = 8, reg_levels: int = 5, hidden: int = 128,
                 dropout: float = 0.2) -> None:
        super().__init__()
        self.seg = VggUNet(1, n_points, width=seg_width, levels=seg_levels)
        self.reg = VggRegressor(1 + n_points, n_points, input_size, width=reg_width,
                                levels=reg_levels, hidden=hidden, dropout=dropout)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """``(B, 1, S, S)`` -> ``logits`` ``(B, K, S, S)`` and ``unit_coords`` ``(B, K, 2)``."""
        logits = self.seg(x)
        coords = self.reg(torch.cat((x, torch.sigmoid(logits)), dim=1))
        return {"logits": logits, "unit_coords": coords}


class SgrMethod(LegLandmarkMethod):
    """Segmentation-guided coordinate regression (paper 003).

    Options
    -------
    alpha
        Weight of the segmentation loss (Dice + BCE) beside the coordinate MSE (default 0.5).
    radius_512
        Disc radius of the mask targets at 512² (scaled to the input size; default 15).
    seg_width, seg_levels, reg_width, reg_levels, hidden, dropout
        :class:`SgrNet` fields.
    """

    name = "sgr"

    def build_network(self) -> nn.Module:
        o = self.options
        if self.alpha < 0:
            raise LegModelError(f"alpha must be >= 0, got {self.alpha}")
        return SgrNet(len(CHANNELS), self.input_size, seg_width=int(o.get("seg_width", 8)),
                      seg_levels=int(o.get("seg_levels", 3)),
                      reg_width=int(o.get("reg_width", 8)),
                      reg_levels=int(o.get("reg_levels", 5)), hidden=int(o.get("hidden", 128)),
                      dropout=float(o.get("dropout", 0.2)))

    @property
    def alpha(self) -> float:
        """Weight of the segmentation loss."""
        return float(self.options.get("alpha", 0.5))

    @property
    def radius(self) -> float:
        """Disc radius at the network input, px."""
        return float(self.options.get("radius_512", 15.0)) * self.input_size / PAPER_SIZE

    @property
    def unit(self) -> float:
        """Input pixels per regressed unit (``S - 1``)."""
        return float(self.input_size - 1)

    def forward(self, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = self.net(batch)
        out["coords"] = out["unit_coords"] * self.unit
        return out

    def loss(self, raw: dict[str, torch.Tensor], target: torch.Tensor,
             mask: torch.Tensor) -> torch.Tensor:
        mse = masked_mse(raw["unit_coords"], target / self.unit, mask)
        if self.alpha == 0:
            return mse
        t = disc_targets(target, self.input_size, self.radius)
        return self.alpha * dice_bce(raw["logits"], t, mask) + mse

    def decode(self, raw: dict[str, torch.Tensor], index: int, channels: list[int]
               ) -> tuple[FloatArray, npt.NDArray[np.bool_], FloatArray, npt.NDArray[np.int64]]:
        pts = raw["coords"][index, channels].detach().cpu().numpy().astype(np.float64)
        k = len(channels)
        return pts, np.ones(k, bool), np.full(k, np.nan), np.ones(k, np.int64)
