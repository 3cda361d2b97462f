"""Hourglass landmark networks: HMP residual blocks, attention gates, soft-argmax heads.

The architecture follows KNEEL (Tiulpin et al., paper ``002``, Fig. 4) -- an entry block
that downscales 4x, an hourglass block of depth ``d`` built from hierarchical multi-scale
parallel (HMP) residual blocks, and an output block with a soft-argmax coordinate head --
with the attention gates of Hu et al. (paper ``000``, Fig. 3) filtering the skip path of
every hourglass level, gated by the up-sampled coarser level (Oktay et al.'s attention
gate).  Width ``N`` and depth ``d`` are parameters.

Besides the landmark coordinates, the network returns per-landmark spread (the standard
deviation of the soft-argmax distribution, in input pixels) and a few image-level logits
from a pooled head (for example "a knee is present" or "this is a post-operative knee"),
which quality control reads.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812 (the torch idiom)
from torch import nn


@dataclass(frozen=True)
class HourglassConfig:
    """Shape of an :class:`HourglassNet`.

    Parameters
    ----------
    in_channels
        Image channels (1 for radiographs).
    n_landmarks
        Number of soft-argmax outputs ``M``.
    width
        Width ``N``: channels after the first convolution; the hourglass runs at ``2N``.
    depth
        Number of max-pooling steps inside the hourglass block.
    n_logits
        Image-level logits returned by the pooled head (0 for none).
    dropout
        Dropout probability of the output block (KNEEL: 0.25).
    """

    in_channels: int = 1
    n_landmarks: int = 2
    width: int = 16
    depth: int = 4
    n_logits: int = 1
    dropout: float = 0.25
    #: Initial inverse temperature of the soft-argmax (learned; KNEEL's beta).  A large value
    #: lets the randomly initialised heatmaps become peaked quickly.
    beta: float = 1.0

    def __post_init__(self) -> None:
        for name in ("in_channels", "n_landmarks", "width", "depth"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if self.width % 2:
            raise ValueError(f"width must be even, got {self.width}")
        if not isinstance(self.n_logits, int) or self.n_logits < 0:
            raise ValueError(f"n_logits must be a non-negative int, got {self.n_logits!r}")
        if not self.beta > 0:
            raise ValueError(f"beta must be positive, got {self.beta!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout!r}")

    @property
    def stride(self) -> int:
        """Input pixels per heatmap pixel (the entry block downscales 4x)."""
        return 4

    @property
    def size_multiple(self) -> int:
        """Input height and width must be multiples of this."""
        return self.stride * 2**self.depth

    def to_dict(self) -> dict[str, object]:
        """Plain dict (for checkpoints and the model card)."""
        return asdict(self)


def _conv_bn_relu(n_in: int, n_out: int, kernel: int = 3) -> nn.Sequential:
    return nn.Sequential(
        nn.BatchNorm2d(n_in),
        nn.ReLU(inplace=True),
        nn.Conv2d(n_in, n_out, kernel, padding=kernel // 2, bias=False),
    )


class HMPBlock(nn.Module):
    """Hierarchical multi-scale parallel residual block (Bulat & Tzimiropoulos).

    Three chained 3x3 convolutions with ``m/2``, ``m/4`` and ``m/4`` outputs; their
    outputs are concatenated (``m`` channels) and added to the input, through a 1x1
    convolution when the channel count changes (KNEEL Fig. 3b).
    """

    def __init__(self, n_in: int, n_out: int) -> None:
        super().__init__()
        if n_out % 4:
            raise ValueError(f"n_out must be a multiple of 4, got {n_out}")
        self.c1 = _conv_bn_relu(n_in, n_out // 2)
        self.c2 = _conv_bn_relu(n_out // 2, n_out // 4)
        self.c3 = _conv_bn_relu(n_out // 4, n_out // 4)
        self.skip: nn.Module = (
            nn.Identity() if n_in == n_out else nn.Conv2d(n_in, n_out, 1, bias=False)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.c1(x)
        b = self.c2(a)
        c = self.c3(b)
        return torch.cat((a, b, c), dim=1) + self.skip(x)


class AttentionGate(nn.Module):
    """Additive attention gate (Oktay et al.): weights skip features by a gating signal.

    ``alpha = sigmoid(psi(relu(W_x x + W_g g)))``; returns ``x * alpha`` (one weight per
    pixel, shared by all channels).
    """

    def __init__(self, channels: int, inter_channels: int | None = None) -> None:
        super().__init__()
        inter = inter_channels or max(channels // 2, 4)
        self.w_x = nn.Conv2d(channels, inter, 1, bias=False)
        self.w_g = nn.Conv2d(channels, inter, 1, bias=True)
        self.psi = nn.Sequential(nn.ReLU(inplace=True), nn.Conv2d(inter, 1, 1), nn.Sigmoid())

    def forward(self, x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        alpha = self.psi(self.w_x(x) + self.w_g(g))
        return x * alpha


class HourglassLevel(nn.Module):
    """One level of the hourglass: skip path (gated) plus pooled path, summed."""

    def __init__(self, channels: int, depth: int) -> None:
        super().__init__()
        self.skip = HMPBlock(channels, channels)
        self.down = HMPBlock(channels, channels)
        self.inner: nn.Module = (
            HourglassLevel(channels, depth - 1) if depth > 1 else HMPBlock(channels, channels)
        )
        self.up = HMPBlock(channels, channels)
        self.gate = AttentionGate(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = self.skip(x)
        low = self.down(F.max_pool2d(x, 2))
        low = self.up(self.inner(low))
        up = F.interpolate(low, size=skip.shape[-2:], mode="nearest")
        return self.gate(skip, up) + up


def soft_argmax(
    heatmaps: torch.Tensor, stride: int = 1, beta: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Expected coordinates and spread of spatial-softmax distributions (KNEEL eq. 1-3).

    Parameters
    ----------
    heatmaps
        ``(B, M, H, W)`` unnormalised scores.
    stride
        Input pixels per heatmap pixel; coordinates are returned in input pixels, where
        heatmap pixel ``j`` covers input pixels ``[j*stride, (j+1)*stride)`` and pixel
        centres are at integer coordinates.
    beta
        Inverse temperature of the softmax.

    Returns
    -------
    coords
        ``(B, M, 2)`` expected ``(x, y)`` in input pixels.
    spread
        ``(B, M)`` square root of the summed variances in x and y, in input pixels.
    """
    if heatmaps.ndim != 4:
        raise ValueError(f"heatmaps must be (B, M, H, W), got shape {tuple(heatmaps.shape)}")
    b, m, h, w = heatmaps.shape
    prob = F.softmax(beta * heatmaps.reshape(b, m, h * w).float(), dim=-1).reshape(b, m, h, w)
    xs = (torch.arange(w, device=heatmaps.device, dtype=prob.dtype) + 0.5) * stride - 0.5
    ys = (torch.arange(h, device=heatmaps.device, dtype=prob.dtype) + 0.5) * stride - 0.5
    px = prob.sum(dim=2)  # (B, M, W)
    py = prob.sum(dim=3)  # (B, M, H)
    mx = (px * xs).sum(-1)
    my = (py * ys).sum(-1)
    vx = (px * (xs - mx[..., None]) ** 2).sum(-1)
    vy = (py * (ys - my[..., None]) ** 2).sum(-1)
    return torch.stack((mx, my), dim=-1), torch.sqrt(vx + vy + 1e-12)


class HourglassNet(nn.Module):
    """Entry block, attention-gated hourglass, output block with soft-argmax.

    ``forward`` returns a dict with ``coords`` ``(B, M, 2)`` in input pixels (x, y),
    ``spread`` ``(B, M)`` in input pixels, ``logits`` ``(B, n_logits)`` and
    ``heatmaps`` ``(B, M, H/4, W/4)``.
    """

    def __init__(self, config: HourglassConfig) -> None:
        super().__init__()
        self.config = config
        n = config.width
        c = 2 * n
        # KNEEL's entry block places its first residual module at half resolution; here it
        # comes after the max-pooling (quarter resolution), which makes the entry block ~3x
        # cheaper on a CPU.
        self.entry = nn.Sequential(
            nn.Conv2d(config.in_channels, n, 7, stride=2, padding=3, bias=False),
            nn.BatchNorm2d(n),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            HMPBlock(n, c),
            HMPBlock(c, c),
            HMPBlock(c, c),
        )
        self.hourglass = HourglassLevel(c, config.depth)
        self.out = nn.Sequential(
            nn.Dropout2d(config.dropout),
            nn.Conv2d(c, c, 1, bias=False),
            nn.BatchNorm2d(c),
            nn.ReLU(inplace=True),
            nn.Dropout2d(config.dropout),
            nn.Conv2d(c, c, 1, bias=False),
            nn.BatchNorm2d(c),
            nn.ReLU(inplace=True),
        )
        self.heatmap = nn.Conv2d(c, config.n_landmarks, 1)
        self.log_beta = nn.Parameter(torch.tensor(float(np.log(config.beta))))
        self.classifier: nn.Module | None = (
            nn.Sequential(nn.Linear(2 * c, c), nn.ReLU(inplace=True), nn.Linear(c, config.n_logits))
            if config.n_logits
            else None
        )

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        if x.ndim != 4 or x.shape[1] != self.config.in_channels:
            raise ValueError(
                f"input must be (B, {self.config.in_channels}, H, W), got {tuple(x.shape)}"
            )
        k = self.config.size_multiple
        if x.shape[-1] % k or x.shape[-2] % k:
            raise ValueError(
                f"input height and width must be multiples of {k}, got {tuple(x.shape)}"
            )
        feats = self.out(self.hourglass(self.entry(x)))
        heat = self.heatmap(feats) * self.log_beta.exp()
        coords, spread = soft_argmax(heat, stride=self.config.stride)
        if self.classifier is not None:
            pooled = torch.cat((feats.mean(dim=(2, 3)), feats.amax(dim=(2, 3))), dim=1)
            logits = self.classifier(pooled)
        else:
            logits = feats.new_zeros((x.shape[0], 0))
        return {"coords": coords, "spread": spread, "logits": logits, "heatmaps": heat}

    def load_backbone_from(self, other: HourglassNet) -> int:
        """Copy every tensor whose name and shape match ``other`` (KNEEL transfer learning).

        The landmark and logit output layers differ in shape and stay randomly
        initialised.  Returns the number of tensors copied.
        """
        own = self.state_dict()
        copied = 0
        for name, tensor in other.state_dict().items():
            if name in own and own[name].shape == tensor.shape:
                own[name] = tensor.clone()
                copied += 1
        self.load_state_dict(own)
        return copied


@dataclass(frozen=True)
class PhaseConfig:
    """Shape of a :class:`PhaseNet`: channels of the first of four stride-2 convolutions."""

    width: int = 8
    in_channels: int = 1

    def __post_init__(self) -> None:
        for name in ("width", "in_channels"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")

    def to_dict(self) -> dict[str, object]:
        """Plain dict (for checkpoints and the model card)."""
        return asdict(self)


class PhaseNet(nn.Module):
    """Small CNN on the aligned local patch: logit that the knee has an implant (post-op).

    The local hourglass's own post-operative logit did not learn within the CPU training
    budget, so this separate classifier (four stride-2 conv-BN-ReLU blocks after a 2x
    average pooling, mean + max pooling, one linear layer) decides the phase.
    """

    def __init__(self, config: PhaseConfig) -> None:
        super().__init__()
        self.config = config
        w = config.width
        chans = [config.in_channels, w, 2 * w, 4 * w, 4 * w]
        layers: list[nn.Module] = [nn.AvgPool2d(2)]
        for a, b in zip(chans[:-1], chans[1:], strict=True):
            layers += [nn.Conv2d(a, b, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(b),
                       nn.ReLU(inplace=True)]
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(2 * chans[-1], 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 1, H, W)`` standardised patches -> ``(B,)`` post-operative logits."""
        if x.ndim != 4 or x.shape[1] != self.config.in_channels:
            raise ValueError(f"input must be (B, {self.config.in_channels}, H, W), got "
                             f"{tuple(x.shape)}")
        f = self.features(x)
        pooled = torch.cat((f.mean(dim=(2, 3)), f.amax(dim=(2, 3))), dim=1)
        return self.head(pooled)[:, 0]
