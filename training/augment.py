"""Augmentation: geometric views, intensity changes, cutout and MixUp (KNEEL, paper ``002``).

Geometric augmentation is done by composing similarity transforms *before* resampling
(one interpolation per sample): a random rotation / zoom / shift / mirror for the global
view, and a jittered reference frame for the local patch (which simulates the error of the
global search).  Intensity augmentation works on the resampled [0, 1] patch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import torch


@dataclass(frozen=True)
class IntensityAugment:
    """Random gamma, contrast, brightness, blur and noise on a [0, 1] image.

    Parameters
    ----------
    gamma
        ``(low, high)`` range of the gamma exponent (drawn log-uniformly).
    contrast, brightness
        Half-widths of the uniform multiplicative / additive changes.
    blur_p, noise_sd
        Probability of a 3x3 box blur; largest standard deviation of added Gaussian noise.
    """

    gamma: tuple[float, float] = (0.6, 1.7)
    contrast: float = 0.25
    brightness: float = 0.15
    blur_p: float = 0.3
    noise_sd: float = 0.04

    def __call__(self, img: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        """Augment a ``(H, W)`` image; returns a new tensor."""
        x = img.clamp(0.0, 1.0)
        g = math.exp(rng.uniform(math.log(self.gamma[0]), math.log(self.gamma[1])))
        x = x.pow(g)
        x = x * (1.0 + rng.uniform(-self.contrast, self.contrast)) + rng.uniform(
            -self.brightness, self.brightness
        )
        if rng.random() < self.blur_p:
            x = torch.nn.functional.avg_pool2d(x[None, None], 3, stride=1, padding=1,
                                               count_include_pad=False)[0, 0]
        sd = rng.uniform(0.0, self.noise_sd)
        if sd > 0:
            gen = torch.Generator().manual_seed(int(rng.integers(2**31)))
            x = x + sd * torch.randn(x.shape, generator=gen)
        return x


def cutout(
    img: torch.Tensor, rng: np.random.Generator, p: float = 0.5, max_frac: float = 0.25
) -> torch.Tensor:
    """With probability ``p`` fill one random rectangle (sides up to ``max_frac``) with noise."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p must be in [0, 1], got {p}")
    if rng.random() >= p:
        return img
    h, w = img.shape[-2:]
    ch = int(rng.integers(max(1, h // 20), max(2, int(h * max_frac))))
    cw = int(rng.integers(max(1, w // 20), max(2, int(w * max_frac))))
    y0 = int(rng.integers(0, h - ch + 1))
    x0 = int(rng.integers(0, w - cw + 1))
    out = img.clone()
    out[..., y0 : y0 + ch, x0 : x0 + cw] = float(rng.uniform(0.0, 1.0))
    return out


def similarity(
    angle_deg: float, scale: float, centre: tuple[float, float], shift: tuple[float, float],
    mirror: bool = False,
) -> npt.NDArray[np.float64]:
    """3x3 matrix: mirror (x -> -x), rotate and scale about ``centre``, then shift."""
    a = math.radians(angle_deg)
    c, s = math.cos(a) * scale, math.sin(a) * scale
    m = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    if mirror:
        m = m @ np.diag([-1.0, 1.0, 1.0])
    cx, cy = centre
    to_origin = np.array([[1.0, 0.0, -cx], [0.0, 1.0, -cy], [0.0, 0.0, 1.0]])
    back = np.array([[1.0, 0.0, cx + shift[0]], [0.0, 1.0, cy + shift[1]], [0.0, 0.0, 1.0]])
    return back @ m @ to_origin


def compose(A: npt.ArrayLike, B3: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """2x3 ``A`` (output -> source) after 3x3 ``B3`` (augmented output -> output)."""
    a = np.vstack([np.asarray(A, dtype=np.float64), [0.0, 0.0, 1.0]])
    return (a @ np.asarray(B3, dtype=np.float64))[:2]


def jitter_corners(
    medial: npt.ArrayLike,
    lateral: npt.ArrayLike,
    rng: np.random.Generator,
    shift_sd: float,
    angle_sd_deg: float,
    scale_sd: float,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Perturb the two reference points as a global-search error would.

    The mid-point moves by ``N(0, shift_sd)`` plateau widths in x and y, the corner line
    turns by ``N(0, angle_sd_deg)`` and its length scales by ``exp(N(0, scale_sd))``.
    """
    m = np.asarray(medial, dtype=np.float64)
    lat = np.asarray(lateral, dtype=np.float64)
    w = float(np.linalg.norm(lat - m))
    mid = 0.5 * (m + lat) + rng.normal(0.0, shift_sd, 2) * w
    half = 0.5 * (lat - m) * math.exp(rng.normal(0.0, scale_sd))
    a = math.radians(rng.normal(0.0, angle_sd_deg))
    rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    half = rot @ half
    return mid - half, mid + half


def mixup_batch(
    x: torch.Tensor, alpha: float, rng: np.random.Generator
) -> tuple[torch.Tensor, float, torch.Tensor]:
    """KNEEL's MixUp: ``x' = l x + (1 - l) x[perm]`` with ``l = max(b, 1 - b)``, ``b ~ Beta(a, a)``.

    Returns the mixed batch, ``l`` and the permutation (so the caller can weigh the loss
    against both targets).
    """
    if alpha <= 0:
        raise ValueError(f"alpha must be positive, got {alpha}")
    b = float(rng.beta(alpha, alpha))
    lam = max(b, 1.0 - b)
    perm = torch.from_numpy(rng.permutation(x.shape[0]))
    return lam * x + (1.0 - lam) * x[perm], lam, perm
