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


def _gauss_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of a ``(H, W)`` tensor (reflect padding)."""
    if sigma <= 0.05:
        return x
    r = max(1, int(math.ceil(3.0 * sigma)))
    r = min(r, min(x.shape) // 2 - 1)
    t = torch.arange(-r, r + 1, dtype=x.dtype)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()
    y = torch.nn.functional.pad(x[None, None], (r, r, 0, 0), mode="reflect")
    y = torch.nn.functional.conv2d(y, k.view(1, 1, 1, -1))
    y = torch.nn.functional.pad(y, (0, 0, r, r), mode="reflect")
    y = torch.nn.functional.conv2d(y, k.view(1, 1, -1, 1))
    return y[0, 0]


@dataclass(frozen=True)
class AppearanceAugment:
    """Vendor-style image processing and acquisition artefacts on a [0, 1] patch.

    Domain randomisation (issue 11 section 2): each effect is applied with its own
    probability, in the order a CR/DX chain would apply them -- detector blur (MTF),
    scatter veil, anti-scatter grid lines, noise with a random spectrum, multi-scale
    edge enhancement, a random monotone look-up table, and burnt-in markers.  Written
    for the training generator only; it shares no code or parameters with the
    independent evaluation renderer (:mod:`training.independent`).

    Parameters
    ----------
    p
        Probability that the patch is processed at all.
    mtf_sigma
        Largest Gaussian detector-blur sigma (patch pixels).
    scatter
        Largest fraction of a broad blur (sigma 15-60 px) mixed in as scatter veil.
    grid_amp
        Largest amplitude of the grid-line pattern.
    noise_amp
        Largest standard deviation of the spectrally shaped noise.
    enhance_gain
        Largest gain of each of the (up to three) band-pass edge-enhancement levels.
    lut_p, marker_p
        Probabilities of a random LUT and of burnt-in markers.
    """

    p: float = 0.8
    mtf_sigma: float = 1.6
    scatter: float = 0.45
    grid_amp: float = 0.05
    noise_amp: float = 0.05
    enhance_gain: float = 1.8
    lut_p: float = 0.7
    marker_p: float = 0.25

    def __post_init__(self) -> None:
        for name in ("p", "lut_p", "marker_p"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {v!r}")
        for name in ("mtf_sigma", "scatter", "grid_amp", "noise_amp", "enhance_gain"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")

    def __call__(self, img: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        """Process a ``(H, W)`` image; returns a new tensor."""
        x = img.clamp(0.0, 1.0).clone()
        if rng.random() >= self.p:
            return x
        h, w = x.shape
        gen = torch.Generator().manual_seed(int(rng.integers(2**31)))
        if rng.random() < 0.5:  # detector MTF
            x = _gauss_blur(x, rng.uniform(0.3, max(self.mtf_sigma, 0.3)))
        if rng.random() < 0.5:  # scatter veil: a broad blur of the image itself, plus a tilt
            veil = _gauss_blur(x, rng.uniform(15.0, 60.0))
            f = rng.uniform(0.0, self.scatter)
            yy = torch.linspace(-1.0, 1.0, h)[:, None]
            xx = torch.linspace(-1.0, 1.0, w)[None, :]
            tilt = float(rng.uniform(-0.08, 0.08)) * xx + float(rng.uniform(-0.08, 0.08)) * yy
            x = (1.0 - f) * x + f * veil + tilt
        if rng.random() < 0.35:  # anti-scatter grid lines (vertical or horizontal)
            period = rng.uniform(2.2, 9.0)
            phase = rng.uniform(0.0, 2 * math.pi)
            axis = torch.arange(w if rng.random() < 0.7 else h, dtype=x.dtype)
            wave = torch.sin(2 * math.pi * axis / period + phase)
            amp = rng.uniform(0.005, max(self.grid_amp, 0.005))
            x = x + amp * (wave[None, :] if wave.numel() == w else wave[:, None])
        if rng.random() < 0.6:  # noise with a random spectrum, partly signal dependent
            n = torch.randn((h, w), generator=gen)
            n = _gauss_blur(n, rng.uniform(0.0, 2.5))
            n = n / n.std().clamp_min(1e-6)
            amp = rng.uniform(0.0, self.noise_amp)
            dep = rng.uniform(0.0, 1.0)
            x = x + amp * n * ((1.0 - dep) + dep * x.clamp(0.0, 1.0).sqrt())
        if rng.random() < 0.6:  # multi-scale (band-pass) edge enhancement / unsharp masking
            levels = int(rng.integers(1, 4))
            sig = rng.uniform(0.8, 2.0)
            lo_prev = x
            out = x.clone()
            for _ in range(levels):
                lo = _gauss_blur(x, sig)
                out = out + rng.uniform(-0.2, self.enhance_gain) * (lo_prev - lo)
                lo_prev, sig = lo, sig * rng.uniform(2.0, 3.5)
            x = out
        if rng.random() < self.lut_p:  # random monotone LUT: sigmoid or piecewise linear
            qlo, qhi = float(x.quantile(0.01)), float(x.quantile(0.99))
            z = ((x - qlo) / max(qhi - qlo, 1e-3)).clamp(0.0, 1.0)
            if rng.random() < 0.5:
                c, k = rng.uniform(0.3, 0.7), rng.uniform(3.0, 12.0)
                s0, s1 = 1 / (1 + math.exp(k * c)), 1 / (1 + math.exp(-k * (1 - c)))
                z = (torch.sigmoid(k * (z - c)) - s0) / (s1 - s0)
            else:
                knots = np.concatenate([[0.0], np.sort(rng.uniform(0, 1, 4)), [1.0]])
                vals = np.concatenate([[0.0], np.sort(rng.uniform(0, 1, 4)), [1.0]])
                idx = torch.bucketize(z, torch.tensor(knots[1:-1], dtype=z.dtype))
                k0 = torch.tensor(knots, dtype=z.dtype)
                v0 = torch.tensor(vals, dtype=z.dtype)
                t = (z - k0[idx]) / (k0[idx + 1] - k0[idx]).clamp_min(1e-6)
                z = v0[idx] + t * (v0[idx + 1] - v0[idx])
            x = qlo + z * (qhi - qlo)
        if rng.random() < self.marker_p:  # burnt-in marker / label blocks
            for _ in range(int(rng.integers(1, 3))):
                mh, mw = int(rng.integers(6, 20)), int(rng.integers(6, 28))
                y0, x0 = int(rng.integers(0, h - mh)), int(rng.integers(0, w - mw))
                x[y0:y0 + mh, x0:x0 + mw] = float(rng.choice([0.0, 1.0]))
        return x


@dataclass(frozen=True)
class ShapeWarp:
    """Smooth non-rigid warp of a patch and its landmarks: shaft width, bowing, bending.

    Patch coordinates: x across, y along the leg with the joint line near the patch's
    vertical centre.  The warp maps an output pixel ``p`` to the source pixel
    ``p + d(p)``; landmarks move by the inverse (solved by fixed-point iteration).

    * **shaft width**: the distance from the axis scales by ``1 + s * r(y)`` with ``r``
      growing from 0 at the joint to 1 at the patch ends (femur and tibia drawn apart);
    * **bowing**: a sideways shift ``b * r(y)^2`` (femur and tibia drawn apart);
    * **bending**: the tibial half turns by ``theta`` about the joint (the aTFA changes
      by ``theta``: the network has to read the angle from the image, not the prior).

    Parameters
    ----------
    p
        Probability of a warp.
    width
        Largest relative change of shaft width.
    bow
        Largest bowing shift, in fractions of the patch width.
    bend_deg
        Largest bending angle (degrees).
    """

    p: float = 0.5
    width: float = 0.15
    bow: float = 0.04
    bend_deg: float = 5.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.p <= 1.0:
            raise ValueError(f"p must be in [0, 1], got {self.p!r}")
        for name in ("width", "bow", "bend_deg"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")

    def _field(self, params: dict[str, float], x: npt.NDArray[np.float64],
               y: npt.NDArray[np.float64], h: int, w: int) -> tuple[
                   npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """Source coordinates of output points ``(x, y)``."""
        cx, cy = params["joint_x"], params["joint_y"]
        v = (y - cy) / (0.5 * h)  # -1 proximal end ... +1 distal end
        r = np.clip(np.abs(v) - 0.15, 0.0, None) / 0.85
        sw = np.where(v < 0, params["s_fem"], params["s_tib"])
        bw = np.where(v < 0, params["b_fem"], params["b_tib"]) * w
        xs = cx + (x - cx) / (1.0 + sw * r) - bw * r ** 2
        ys = y.copy()
        # bending: the distal part (smooth weight) turns by theta about the joint centre
        wt = 1.0 / (1.0 + np.exp(-(y - cy) / (0.04 * h)))
        a = -np.radians(params["bend"]) * wt
        dx, dy = xs - cx, ys - cy
        return cx + np.cos(a) * dx - np.sin(a) * dy, cy + np.sin(a) * dx + np.cos(a) * dy

    def draw(self, rng: np.random.Generator, joint: tuple[float, float]) -> dict[str, float] | None:
        """Random warp parameters about the joint centre ``(x, y)`` (None: no warp)."""
        if rng.random() >= self.p:
            return None
        return {"joint_x": float(joint[0]), "joint_y": float(joint[1]),
                "s_fem": float(rng.uniform(-self.width, self.width)),
                "s_tib": float(rng.uniform(-self.width, self.width)),
                "b_fem": float(rng.uniform(-self.bow, self.bow)),
                "b_tib": float(rng.uniform(-self.bow, self.bow)),
                "bend": float(rng.uniform(-self.bend_deg, self.bend_deg))}

    def __call__(self, img: torch.Tensor, points: npt.ArrayLike, joint: tuple[float, float],
                 rng: np.random.Generator) -> tuple[torch.Tensor, npt.NDArray[np.float64]]:
        """Warp a ``(H, W)`` patch and its ``(N, 2)`` landmarks (patch pixels).

        ``joint`` is the joint centre (e.g. the plateau mid-point) in patch pixels.
        """
        pts = np.array(points, dtype=np.float64, copy=True)
        h, w = img.shape
        params = self.draw(rng, joint)
        if params is None:
            return img, pts
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
        sx, sy = self._field(params, xx, yy, h, w)
        grid = torch.from_numpy(np.stack([2 * sx / (w - 1) - 1, 2 * sy / (h - 1) - 1],
                                         axis=-1)).to(img.dtype)[None]
        out = torch.nn.functional.grid_sample(img[None, None], grid, mode="bilinear",
                                              padding_mode="border", align_corners=True)[0, 0]
        q = pts.copy()  # output position p with field(p) = source point
        for _ in range(30):
            fx, fy = self._field(params, q[:, 0], q[:, 1], h, w)
            q[:, 0] += pts[:, 0] - fx
            q[:, 1] += pts[:, 1] - fy
        return out, q


@dataclass(frozen=True)
class OverlapAugment:
    """Structures the training generator does not draw, laid over a [0, 1] crop.

    Domain randomisation of anatomy around a joint (issue 13): a radiograph's joint crop also
    shows bones and soft tissue drawn differently from our generator's (pelvic rami and the
    acetabular roof at the hip, the other leg, positioning aids, a soft-tissue fold). With
    probability ``p`` a crop gets one to ``max_shapes`` soft-edged shapes -- bars of any
    angle, circular arcs, filled ellipses -- each added as brighter or darker, and sometimes
    a broad soft-tissue edge (a large ellipse boundary). Shapes are random in place, size and
    strength; none is tied to the landmarks, so the network must find the joint by its own
    outline. Written for training only; it shares no code or parameters with the independent
    renderers.

    Parameters
    ----------
    p
        Probability that the crop gets any shape.
    max_shapes
        Largest number of shapes per crop (at least one when applied).
    strength
        Largest intensity change of a shape (fraction of the [0, 1] range).
    """

    p: float = 0.5
    max_shapes: int = 5
    strength: float = 0.35

    def __post_init__(self) -> None:
        if not 0.0 <= self.p <= 1.0:
            raise ValueError(f"p must be in [0, 1], got {self.p!r}")
        if isinstance(self.max_shapes, bool) or not isinstance(self.max_shapes, int) \
                or self.max_shapes < 1:
            raise ValueError(f"max_shapes must be an int >= 1, got {self.max_shapes!r}")
        if not 0.0 < self.strength <= 1.0:
            raise ValueError(f"strength must be in (0, 1], got {self.strength!r}")

    def __call__(self, img: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        """Lay shapes over a ``(H, W)`` image; returns a new tensor."""
        x = img.clamp(0.0, 1.0).clone()
        if rng.random() >= self.p:
            return x
        h, w = x.shape
        yy = torch.arange(h, dtype=x.dtype)[:, None].expand(h, w)
        xx = torch.arange(w, dtype=x.dtype)[None, :].expand(h, w)
        size = float(min(h, w))
        for _ in range(int(rng.integers(1, self.max_shapes + 1))):
            cx, cy = rng.uniform(-0.1, 1.1) * w, rng.uniform(-0.1, 1.1) * h
            soft = rng.uniform(0.5, 3.0)
            kind = rng.random()
            if kind < 0.45:  # a bar (a ramus, a shaft, a rod) at any angle
                ang = rng.uniform(0.0, math.pi)
                length, half = rng.uniform(0.15, 0.8) * size, rng.uniform(0.02, 0.09) * size
                u = (xx - cx) * math.cos(ang) + (yy - cy) * math.sin(ang)
                v = -(xx - cx) * math.sin(ang) + (yy - cy) * math.cos(ang)
                inside = torch.minimum(half - v.abs(), 0.5 * length - u.abs())
            elif kind < 0.75:  # a circular arc (an acetabular roof, a rim, a fold)
                r = rng.uniform(0.1, 0.45) * size
                thick = rng.uniform(0.01, 0.05) * size
                a0 = rng.uniform(0.0, 2 * math.pi)
                span = rng.uniform(0.4, 1.2) * math.pi
                d = torch.hypot(xx - cx, yy - cy)
                ang = torch.remainder(torch.atan2(yy - cy, xx - cx) - a0, 2 * math.pi)
                inside = torch.minimum(thick - (d - r).abs(), (span - ang) * r)
            else:  # a filled ellipse (a blob of overlying bone or tissue)
                a = rng.uniform(0.05, 0.3) * size
                b = rng.uniform(0.05, 0.3) * size
                inside = (1.0 - torch.sqrt(((xx - cx) / a) ** 2 + ((yy - cy) / b) ** 2)) \
                    * min(a, b)
            mask = torch.sigmoid(inside / soft)
            sign = 1.0 if rng.random() < 0.7 else -1.0
            x = x + sign * rng.uniform(0.05, self.strength) * mask
        if rng.random() < 0.3:  # a broad soft-tissue edge
            cx, cy = rng.uniform(-0.5, 1.5) * w, rng.uniform(-0.5, 1.5) * h
            r = rng.uniform(0.5, 1.5) * size
            mask = torch.sigmoid((r - torch.hypot(xx - cx, yy - cy)) / rng.uniform(2.0, 10.0))
            x = x + rng.uniform(0.05, 0.25) * mask
        return x.clamp(0.0, 1.0)
