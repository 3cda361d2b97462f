"""Whole-image samples for the full-leg ROI stage (:mod:`inference.leg.roi`).

A sample is one synthetic full-leg image of :mod:`training.synth_leg` rendered small
(``plan_study(seed, max_rows=...)``: the same anatomy as the full-size image, coarser pixels),
bone bright in [0, 1], with the six joint centres (:data:`inference.leg.roi.ROI_JOINTS`) in
its pixels. :func:`augment` cuts images so that joints leave them (top, bottom, one side, a
knee-only or lower-leg field, as collimation or a short cassette would), makes some non-leg
images (noise, blank, gradient), trims the top of the field through the pelvis with the hips
still inside (``top_trim_p``: a cassette or collimation that starts 20-200 mm above the femoral
heads, as other vendors' and renderers' full-leg images do), blurs the pelvis above the
femoral heads away (``pelvis_p``: the hips must be found from the heads and proximal femora,
not from the shape of the iliac wings, which other renderers and real pelves draw
differently), flips left-right (swapping the
legs' channels), widens the field with background margins, applies vendor-style processing
(:class:`training.augment.AppearanceAugment`: detector blur, scatter veil, grid lines, shaped
noise, multi-scale edge enhancement, random LUTs, markers) with probability ``appearance_p``,
and changes the tone; the presence label of a joint follows from where its centre lies after
the cut.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from inference.errors import ConfigError
from inference.leg import landmarks as leg
from inference.leg.roi import ROI_CENTRE, ROI_INPUT_HW, ROI_JOINTS, letterbox
from inference.pixels import stored_to_image
from training.augment import AppearanceAugment

FloatArray = npt.NDArray[np.float64]
#: A joint centre this far (mm) inside every edge is "present"; outside the image "missing";
#: in between its presence is not trained (ambiguous).
PRESENT_MARGIN_MM = 8.0
#: Range (mm above the higher femoral head centre) of the top edge left by :func:`trim_top`.
TOP_TRIM_MM = (20.0, 200.0)
#: Range (mm above the higher femoral head centre) where :func:`soften_pelvis` starts, and
#: the range of its blur sigma (mm).
PELVIS_SOFTEN_MM = (25.0, 60.0)
PELVIS_BLUR_MM = (12.0, 30.0)


@dataclass(frozen=True)
class RoiSample:
    """One whole image with its joints (stored px of ``image``)."""

    image: npt.NDArray[np.float32]
    centres: FloatArray  # (6, 2)
    mm_per_px: float
    seed: int


def render_sample(seed: int, max_rows: int) -> RoiSample:
    """Render seed ``seed`` at most ``max_rows`` rows; joint centres from the stored truth."""
    from training.synth_leg import plan_study, render_full

    r = render_full(plan_study(int(seed), max_rows=int(max_rows)))
    img = stored_to_image(r.pixels, r.photometric)
    by_side = {t.side: t for t in r.legs}
    c = np.array([by_side[s].landmarks[leg.idx(ROI_CENTRE[j])] for s, j in ROI_JOINTS])
    return RoiSample(img, c, float(r.study.mm_per_px), int(seed))


def render_samples(seeds: range, max_rows: tuple[int, ...] = (512, 640)) -> list[RoiSample]:
    """:func:`render_sample` of every seed (``max_rows`` cycled).

    Raises
    ------
    ConfigError
        ``seeds`` is empty or reaches the hold-out range (>= 900,000,000).
    """
    if len(seeds) == 0:
        raise ConfigError(f"seeds must not be empty, got {seeds!r}")
    if max(seeds) >= 900_000_000:
        raise ConfigError(f"training seeds must stay below 900,000,000, got {seeds!r}")
    return [render_sample(s, max_rows[i % len(max_rows)]) for i, s in enumerate(seeds)]


def presence(centres: FloatArray, shape: tuple[int, int], mm_per_px: float
             ) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Presence label, presence-loss weight and coordinate-loss weight per joint."""
    rows, cols = shape
    x, y = centres[:, 0], centres[:, 1]
    inside_px = np.minimum.reduce([x + 0.5, cols - 0.5 - x, y + 0.5, rows - 0.5 - y])
    inside_mm = inside_px * mm_per_px
    label = (inside_mm >= PRESENT_MARGIN_MM).astype(np.float64)
    weight = ((inside_mm >= PRESENT_MARGIN_MM) | (inside_mm < 0)).astype(np.float64)
    coord = (inside_mm >= 0).astype(np.float64)
    return label, weight, coord


def _cut(s: RoiSample, rng: np.random.Generator) -> tuple[npt.NDArray[np.float32], FloatArray]:
    img, c = s.image, s.centres.copy()
    rows, cols = img.shape
    mm = 1.0 / s.mm_per_px  # px per mm
    hip_y = float(np.nanmean(c[[0, 3], 1]))
    knee_y = float(np.nanmean(c[[1, 4], 1]))
    ank_y = float(np.nanmean(c[[2, 5], 1]))
    mid_x = float(np.nanmean(c[:, 0]))
    y0, y1, x0, x1 = 0.0, float(rows), 0.0, float(cols)
    mode = rng.choice(["top", "bottom", "knee_only", "side", "lower_leg", "thigh"])
    if mode == "top":
        y0 = hip_y + rng.uniform(-30, 150) * mm
    elif mode == "bottom":
        y1 = ank_y + rng.uniform(-180, 30) * mm
    elif mode == "knee_only":
        y0, y1 = knee_y - rng.uniform(90, 260) * mm, knee_y + rng.uniform(90, 260) * mm
        if rng.uniform() < 0.5:
            x0, x1 = (0, mid_x + rng.uniform(-20, 20) * mm) if rng.uniform() < 0.5 else \
                (mid_x + rng.uniform(-20, 20) * mm, cols)
    elif mode == "side":
        x0, x1 = (0, mid_x + rng.uniform(-40, 40) * mm) if rng.uniform() < 0.5 else \
            (mid_x + rng.uniform(-40, 40) * mm, cols)
    elif mode == "lower_leg":
        y0 = knee_y + rng.uniform(-40, 150) * mm
        if rng.uniform() < 0.6:
            x0, x1 = (0, mid_x) if rng.uniform() < 0.5 else (mid_x, cols)
    else:  # thigh: hips and knees, no ankles, short cassette
        y0, y1 = hip_y - rng.uniform(20, 120) * mm, knee_y + rng.uniform(-60, 120) * mm
    r0, r1 = int(np.clip(round(y0), 0, rows - 16)), int(np.clip(round(y1), 0, rows))
    c0, c1 = int(np.clip(round(x0), 0, cols - 16)), int(np.clip(round(x1), 0, cols))
    if r1 - r0 < 16 or c1 - c0 < 16:
        return img, c
    return img[r0:r1, c0:c1], c - np.array([c0, r0])


def _top_hip_row(centres: FloatArray) -> float:
    """Image row of the higher femoral head centre (rows 0 and 3 of ``centres``); NaN if
    neither hip is in the image."""
    hips = centres[[0, 3], 1]
    return float(np.nanmin(hips)) if np.isfinite(hips).any() else float("nan")


def trim_top(img: npt.NDArray[np.float32], centres: FloatArray, mm_per_px: float,
             rng: np.random.Generator) -> tuple[npt.NDArray[np.float32], FloatArray]:
    """Cut the top of ``img`` through the pelvis, :data:`TOP_TRIM_MM` above the higher hip.

    Both hips stay in the image (and so stay "present"); the field above them is what
    changes. An image whose hips lie less than the range's low end below its top is returned
    unchanged.
    """
    hip_y = _top_hip_row(centres)
    if not np.isfinite(hip_y):
        return img, centres
    top = hip_y - rng.uniform(*TOP_TRIM_MM) / mm_per_px
    r0 = int(round(top))
    if r0 <= 0 or r0 > img.shape[0] - 16:
        return img, centres
    return img[r0:], centres - np.array([0.0, r0])


def soften_pelvis(img: npt.NDArray[np.float32], centres: FloatArray, mm_per_px: float,
                  rng: np.random.Generator) -> npt.NDArray[np.float32]:
    """Blur the image above the femoral heads so that the pelvis's bone edges disappear.

    From :data:`PELVIS_SOFTEN_MM` above the higher head centre upwards the image becomes a
    Gaussian blur of itself (sigma in :data:`PELVIS_BLUR_MM`), blended in over 10 mm, so the
    soft-tissue shading stays and the iliac wings, sacrum and rami go. The heads, necks and
    everything below are untouched. An image with no hip in it is returned unchanged.
    """
    from scipy.ndimage import gaussian_filter

    hip_y = _top_hip_row(centres)
    start = hip_y - rng.uniform(*PELVIS_SOFTEN_MM) / mm_per_px
    if not np.isfinite(start) or start <= 1:
        return img
    blend_px = 10.0 / mm_per_px
    r1 = min(img.shape[0], int(np.ceil(start + blend_px)))
    region = img[:r1].astype(np.float32)
    blurred = gaussian_filter(region, rng.uniform(*PELVIS_BLUR_MM) / mm_per_px, mode="nearest")
    rows = np.arange(r1, dtype=np.float32)[:, None]
    w = np.clip((start + blend_px - rows) / blend_px, 0.0, 1.0)  # 1 above start, 0 below
    out = img.astype(np.float32, copy=True)
    out[:r1] = w * blurred + (1.0 - w) * region
    return out


def _non_leg(rng: np.random.Generator) -> npt.NDArray[np.float32]:
    h = int(rng.integers(120, 500))
    w = int(rng.integers(100, 300))
    kind = rng.integers(0, 3)
    if kind == 0:
        return rng.uniform(0, 1, (h, w)).astype(np.float32)
    if kind == 1:
        return np.full((h, w), float(rng.uniform()), np.float32) + \
            rng.normal(0, 0.002, (h, w)).astype(np.float32)
    yy, xx = np.mgrid[0:h, 0:w]
    g = np.sin(xx / rng.uniform(5, 40)) * np.cos(yy / rng.uniform(5, 40))
    return (g + rng.normal(0, 0.3, (h, w))).astype(np.float32)


@dataclass(frozen=True)
class RoiBatchItem:
    """A network input with its targets (input px)."""

    image: npt.NDArray[np.float32]  # (H, W)
    target: FloatArray  # (6, 2)
    label: FloatArray  # (6,)
    label_weight: FloatArray
    coord_weight: FloatArray


#: The vendor-style processing of the ROI stage's domain randomisation (whole image, small).
ROI_APPEARANCE = AppearanceAugment(p=1.0, mtf_sigma=1.2, scatter=0.45, grid_amp=0.04,
                                   noise_amp=0.05, enhance_gain=1.8, lut_p=0.7, marker_p=0.3)


def _margins(img: npt.NDArray[np.float32], c: FloatArray, rng: np.random.Generator
             ) -> tuple[npt.NDArray[np.float32], FloatArray]:
    """Pad ``img`` with a noisy background (a wider field of view); shift the centres."""
    rows, cols = img.shape
    top, bottom = (int(v) for v in rng.integers(0, max(2, rows // 6), 2))
    left, right = (int(v) for v in rng.integers(0, max(2, cols // 3), 2))
    bg = float(np.percentile(img, 2.0))
    out = np.full((rows + top + bottom, cols + left + right), bg, np.float32)
    out += rng.normal(0.0, 0.01, out.shape).astype(np.float32)
    out[top:top + rows, left:left + cols] = img
    return out, c + np.array([left, top])


def _appearance(img: npt.NDArray[np.float32], rng: np.random.Generator
                ) -> npt.NDArray[np.float32]:
    import torch

    lo, hi = (float(v) for v in np.percentile(img, [0.5, 99.5]))
    z = (img - lo) / max(hi - lo, 1e-6)
    out = ROI_APPEARANCE(torch.from_numpy(np.ascontiguousarray(z, np.float32)), rng)
    return out.numpy().astype(np.float32)


def augment(s: RoiSample, rng: np.random.Generator, p_cut: float = 0.35, p_non_leg: float = 0.04,
            size_hw: tuple[int, int] = ROI_INPUT_HW, appearance_p: float = 0.0,
            margin_p: float = 0.0, top_trim_p: float = 0.0,
            pelvis_p: float = 0.0) -> RoiBatchItem:
    """One randomly cut / flipped / processed / toned training input of ``s``.

    ``appearance_p``, ``margin_p``, ``top_trim_p`` and ``pelvis_p`` are the probabilities of
    vendor-style processing (:data:`ROI_APPEARANCE`), of background margins, of a top edge
    through the pelvis (:func:`trim_top`, on images not cut otherwise) and of a pelvis blurred
    away (:func:`soften_pelvis`); 0 keeps the original augmentation.
    """
    for name, v in (("appearance_p", appearance_p), ("margin_p", margin_p),
                    ("top_trim_p", top_trim_p), ("pelvis_p", pelvis_p)):
        if not 0.0 <= v <= 1.0:
            raise ConfigError(f"{name} must be in [0, 1], got {v!r}")
    if rng.uniform() < p_non_leg:
        lb = letterbox(_non_leg(rng), size_hw)
        z = np.zeros(len(ROI_JOINTS))
        return RoiBatchItem(lb.image, np.zeros((len(ROI_JOINTS), 2)), z, np.ones_like(z), z)
    if rng.uniform() < p_cut:
        img, c = _cut(s, rng)
    elif top_trim_p > 0 and rng.uniform() < top_trim_p:
        img, c = trim_top(s.image, s.centres.copy(), s.mm_per_px, rng)
    else:
        img, c = s.image, s.centres.copy()
    if pelvis_p > 0 and rng.uniform() < pelvis_p:
        img = soften_pelvis(np.asarray(img, np.float32), c, s.mm_per_px, rng)
    label, lw, cw = presence(c, img.shape, s.mm_per_px)
    if rng.uniform() < 0.5:
        img = img[:, ::-1]
        c = c.copy()
        c[:, 0] = img.shape[1] - 1 - c[:, 0]
        perm = [3, 4, 5, 0, 1, 2]
        c, label, lw, cw = c[perm], label[perm], lw[perm], cw[perm]
    if margin_p > 0 and rng.uniform() < margin_p:
        img, c = _margins(np.asarray(img, np.float32), c, rng)
    if appearance_p > 0 and rng.uniform() < appearance_p:
        img = _appearance(np.asarray(img, np.float32), rng)
    img = np.clip(img, 0, 1) ** np.float32(rng.uniform(0.7, 1.4))
    lb = letterbox(img, size_hw)
    t = lb.to_input(np.nan_to_num(c))
    return RoiBatchItem(lb.image, t, label, lw, cw)
