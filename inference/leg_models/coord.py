"""Paper 001's coordinate regression (§II-E): a VGG-style encoder and fully connected layers
that output the 2K coordinates directly, trained with MSE.

Coordinates are regressed in units of the crop side (x / (S - 1), y / (S - 1)), as offsets
from the crop centre, so the untrained network answers "the centre" and the MSE is of order
1e-3 rather than 1e2 (which matters for SGR's weighting of its two losses,
:mod:`inference.leg_models.sgr`).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from inference.leg_models.base import CHANNELS, FloatArray, LegLandmarkMethod, LegModelError
from inference.leg_models.unet import vgg_block


class VggRegressor(nn.Module):
    """VGG blocks (two 3x3 conv + BN + ReLU) with max-pooling, then FC layers to ``2 K``.

    Parameters
    ----------
    in_channels
        Input channels (1 for the image; 1 + K for SGR's image + probabilities).
    n_points
        K, the number of (x, y) points regressed.
    input_size
        Side of the square input, px (a multiple of ``2 ** levels``).
    width
        Filters of the first block, doubled per level up to ``max_width``.
    levels
        Number of blocks, each followed by a 2x2 max-pooling.
    hidden
        Units of the hidden fully connected layer.
    dropout
        Dropout before each fully connected layer.
    max_width
        Cap on the filters of a block.
    """

    def __init__(self, in_channels: int, n_points: int, input_size: int, width: int = 8,
                 levels: int = 5, hidden: int = 128, dropout: float = 0.2,
                 max_width: int = 128) -> None:
        super().__init__()
        if width < 1 or levels < 1 or hidden < 1 or not 0.0 <= dropout < 1.0:
            raise LegModelError(f"width, levels, hidden must be positive and dropout in [0, 1), "
                                f"got {width}, {levels}, {hidden}, {dropout}")
        if input_size % (2**levels):
            raise LegModelError(f"input_size must be a multiple of 2**levels = {2**levels}, "
                                f"got {input_size}")
        ch = [min(width * 2**i, max_width) for i in range(levels)]
        blocks: list[nn.Module] = []
        n_in = in_channels
        for c in ch:
            blocks += [vgg_block(n_in, c), nn.MaxPool2d(2)]
            n_in = c
        self.features = nn.Sequential(*blocks)
        side = input_size // 2**levels
        self.n_points = n_points
        self.head = nn.Sequential(
            nn.Flatten(), nn.Dropout(dropout), nn.Linear(n_in * side * side, hidden),
            nn.ReLU(inplace=True), nn.Dropout(dropout), nn.Linear(hidden, 2 * n_points))
        last = self.head[-1]
        assert isinstance(last, nn.Linear)
        nn.init.zeros_(last.weight)  # start at the crop centre
        nn.init.zeros_(last.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, in_channels, S, S)`` -> ``(B, K, 2)`` (x, y) in units of the crop side."""
        out = self.head(self.features(x)).view(x.shape[0], self.n_points, 2)
        return out + 0.5  # type: ignore[no-any-return]


def masked_mse(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error of ``(B, C, 2)`` points over the channels where ``mask`` is 1."""
    per = ((pred - target) ** 2).sum(-1)  # (B, C)
    m = mask.to(per.dtype)
    return (per * m).sum() / m.sum().clamp_min(1.0)


class CoordMethod(LegLandmarkMethod):
    """Coordinate regression (paper 001 §II-E): VGG-style encoder + FC to 2K outputs, MSE.

    Options
    -------
    width, levels, hidden, dropout
        :class:`VggRegressor` fields (defaults 8, 5, 128, 0.2).
    """

    name = "coord"

    def build_network(self) -> nn.Module:
        o = self.options
        return VggRegressor(1, len(CHANNELS), self.input_size, width=int(o.get("width", 8)),
                            levels=int(o.get("levels", 5)), hidden=int(o.get("hidden", 128)),
                            dropout=float(o.get("dropout", 0.2)))

    @property
    def unit(self) -> float:
        """Input pixels per regressed unit (``S - 1``)."""
        return float(self.input_size - 1)

    def forward(self, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"coords": self.net(batch) * self.unit}

    def loss(self, raw: dict[str, torch.Tensor], target: torch.Tensor,
             mask: torch.Tensor) -> torch.Tensor:
        return masked_mse(raw["coords"] / self.unit, target / self.unit, mask)

    def decode(self, raw: dict[str, torch.Tensor], index: int, channels: list[int]
               ) -> tuple[FloatArray, npt.NDArray[np.bool_], FloatArray, npt.NDArray[np.int64]]:
        pts = raw["coords"][index, channels].detach().cpu().numpy().astype(np.float64)
        k = len(channels)
        return pts, np.ones(k, bool), np.full(k, np.nan), np.ones(k, np.int64)
