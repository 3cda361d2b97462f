"""A small U-Net with a VGG-style encoder (TernausNet's layout, from scratch, fewer filters)."""

from __future__ import annotations

import torch
from torch import nn


def vgg_block(n_in: int, n_out: int) -> nn.Sequential:
    """Two 3x3 convolutions, each with batch norm and ReLU (a VGG block)."""
    return nn.Sequential(
        nn.Conv2d(n_in, n_out, 3, padding=1, bias=False), nn.BatchNorm2d(n_out),
        nn.ReLU(inplace=True),
        nn.Conv2d(n_out, n_out, 3, padding=1, bias=False), nn.BatchNorm2d(n_out),
        nn.ReLU(inplace=True),
    )


class VggUNet(nn.Module):
    """U-Net: VGG blocks (two 3x3 conv) with max-pooling down; decoder conv3x3 + ReLU then
    ConvTranspose(k=4, s=2, p=1) up, as TernausNet.

    Parameters
    ----------
    in_channels, out_channels
        Image and output channels.
    width
        Filters of the first encoder block (TernausNet: 32 after VGG's 64); doubled per level.
    levels
        Number of pooling steps.
    """

    def __init__(self, in_channels: int = 1, out_channels: int = 9, width: int = 16,
                 levels: int = 4) -> None:
        super().__init__()
        if width < 1 or levels < 1:
            raise ValueError(f"width and levels must be positive, got {width}, {levels}")
        ch = [width * 2**i for i in range(levels + 1)]
        self.levels = levels
        self.enc = nn.ModuleList([vgg_block(in_channels, ch[0])]
                                 + [vgg_block(ch[i], ch[i + 1]) for i in range(levels)])
        self.up = nn.ModuleList([
            nn.Sequential(nn.Conv2d(ch[i + 1], ch[i], 3, padding=1), nn.ReLU(inplace=True),
                          nn.ConvTranspose2d(ch[i], ch[i], 4, stride=2, padding=1))
            for i in range(levels)])
        self.dec = nn.ModuleList([vgg_block(2 * ch[i], ch[i]) for i in range(levels)])
        self.head = nn.Conv2d(ch[0], out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        h = x
        for i, block in enumerate(self.enc):
            h = block(h if i == 0 else nn.functional.max_pool2d(h, 2))
            skips.append(h)
        h = skips[-1]
        for i in reversed(range(self.levels)):
            h = self.dec[i](torch.cat((self.up[i](h), skips[i]), dim=1))
        return self.head(h)  # type: ignore[no-any-return]
