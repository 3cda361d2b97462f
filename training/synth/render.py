"""X-ray-like rendering of outlines: projected thickness -> exposure -> processed pixels.

Bones are closed polygons with a cortical shell; their projected thickness is the
chord of a cylinder whose radius follows the local half-width (from a distance
transform), split into cortical and trabecular parts.  Soft tissue is a
limb (or torso) envelope given as per-pixel thickness.  The image is formed as a
detector would see it (log exposure with heel effect, collimation, blur, quantum
and electronic noise) and then processed the way a CR/DX modality does (window,
tone curve, edge/large-area equalisation).  Everything is vectorised numpy/scipy;
heavy smooth maps are computed at a working resolution of at most ~1024 pixels a
side and resampled, while metal, markers and noise are drawn at the output size.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageDraw, ImageFont
from scipy import ndimage

FloatArray = npt.NDArray[np.float64]
F32 = npt.NDArray[np.float32]

WORK_MAX_SIDE = 1024


@dataclass
class Bone:
    """A bone outline in output pixels and how it attenuates.

    ``profile(x, y)`` gives, at output-pixel coordinates, the cortical thickness (mm)
    and the fraction of trabecular bone inside the cortex (1 in the metaphysis, low in
    the medullary canal of a shaft).
    """

    polygon: FloatArray
    depth_cap_mm: float
    profile: Callable[[FloatArray, FloatArray], tuple[FloatArray, FloatArray]]
    mu_trab: float = 0.012
    mu_cortex: float = 0.045
    texture: float = 0.25


@dataclass
class Scene:
    """What to render, in output pixel coordinates."""

    shape: tuple[int, int]
    spacing_mm: float
    bones: list[Bone] = field(default_factory=list)
    metal: list[tuple[FloatArray, float]] = field(default_factory=list)  # (polygon, level)
    # metal levels are processed display values (>= 1 saturates); later entries overwrite
    soft_tissue_mm: Callable[[FloatArray, FloatArray], FloatArray] | None = None
    extra_log_attenuation: Callable[[FloatArray, FloatArray], FloatArray] | None = None
    collimator: FloatArray | None = None  # polygon of the open field, or None
    collimator_black: bool = False
    marker: tuple[str, float, float, float] | None = None  # text, x, y, height px
    annotations: list[tuple[str, float, float, float]] = field(default_factory=list)


def fill_mask(shape: tuple[int, int], polygon: FloatArray, offset: tuple[float, float] = (0, 0),
              scale: float = 1.0) -> npt.NDArray[np.bool_]:
    """Boolean mask of ``polygon`` (x, y pixel centres) on a ``shape`` grid."""
    img = Image.new("1", (shape[1], shape[0]), 0)
    p = (np.asarray(polygon) * scale - np.asarray(offset)) + 0.5
    ImageDraw.Draw(img).polygon([tuple(q) for q in p.tolist()], fill=1, outline=1)
    return np.asarray(img, dtype=bool)


def _to_work(p: FloatArray, kxy: tuple[float, float]) -> FloatArray:
    """Output-pixel -> working-pixel coordinates (pixel centres at integers on both)."""
    return (np.asarray(p, dtype=np.float64) + 0.5) / np.asarray(kxy) - 0.5


def _bone_attenuation(bone: Bone, shape: tuple[int, int], kxy: tuple[float, float],
                      spacing: float, tex: F32, out: F32) -> None:
    """Add one bone's excess log-attenuation to ``out`` (working grid, kxy = output/working)."""
    poly = _to_work(bone.polygon, kxy)
    x0 = int(max(np.floor(poly[:, 0].min()) - 2, 0))
    y0 = int(max(np.floor(poly[:, 1].min()) - 2, 0))
    x1 = int(min(np.ceil(poly[:, 0].max()) + 3, shape[1]))
    y1 = int(min(np.ceil(poly[:, 1].max()) + 3, shape[0]))
    if x1 - x0 < 2 or y1 - y0 < 2:
        return
    m = fill_mask((y1 - y0, x1 - x0), poly, offset=(x0, y0))
    if not m.any():
        return
    pad = np.pad(m, 1, constant_values=False)
    # the image border is not the bone's edge: pad with "inside" where the bone leaves it
    if x0 == 0:
        pad[1:-1, 0] = m[:, 0]
    if y0 == 0:
        pad[0, 1:-1] = m[0, :]
    if x1 == shape[1]:
        pad[1:-1, -1] = m[:, -1]
    if y1 == shape[0]:
        pad[-1, 1:-1] = m[-1, :]
    d = ndimage.distance_transform_edt(pad)[1:-1, 1:-1].astype(np.float32) * spacing
    cap = bone.depth_cap_mm
    win = max(3, int(2.2 * cap / spacing) | 1)
    r = ndimage.maximum_filter(d, size=win)
    r = ndimage.uniform_filter(r, size=max(3, win // 2))
    r = np.minimum(np.maximum(r, d), cap).astype(np.float32)
    dd = np.minimum(d, r)
    xx = r - dd
    total = 2.0 * np.sqrt(np.maximum(r * r - xx * xx, 0.0))
    xg = np.arange(x0, x1, dtype=np.float64)[None, :]  # broadcast, not a full grid
    yy = np.arange(y0, y1, dtype=np.float64)[:, None]
    c, trab = bone.profile((xg + 0.5) * kxy[0] - 0.5, (yy + 0.5) * kxy[1] - 0.5)
    c = c.astype(np.float32)
    ri = np.maximum(r - c, 0.0)
    inner = 2.0 * np.sqrt(np.maximum(ri * ri - xx * xx, 0.0))
    cort = total - inner
    t = tex[y0:y1, x0:x1]
    a = bone.mu_trab * inner * trab * (1.0 + bone.texture * t) + bone.mu_cortex * cort
    out[y0:y1, x0:x1] += np.where(m, a, 0.0).astype(np.float32)


def smooth(a: F32, sigma: float) -> F32:
    """Gaussian blur; wide kernels run on a block-averaged copy and are resampled back."""
    if sigma <= 6.0:
        return ndimage.gaussian_filter(a, sigma=sigma, truncate=3.0).astype(np.float32)
    f = max(int(sigma / 3.0), 2)
    rows, cols = a.shape
    pr, pc = (-rows) % f, (-cols) % f
    ap = np.pad(a, ((0, pr), (0, pc)), mode="edge")
    small = ap.reshape(ap.shape[0] // f, f, ap.shape[1] // f, f).mean(axis=(1, 3))
    small = ndimage.gaussian_filter(small, sigma=sigma / f, mode="nearest",
                                    truncate=3.0).astype(np.float32)
    big = _resize(small, (ap.shape[0], ap.shape[1]))
    return big[:rows, :cols]


def _texture(shape: tuple[int, int], spacing: float, rng: np.random.Generator) -> F32:
    """Trabecular pattern: oriented struts (mostly along the bone axis) + coarse density.

    About zero mean and unit scale, computed once per image on the working grid.
    """
    n = rng.standard_normal(shape, dtype=np.float32)
    t = ndimage.gaussian_filter(n, sigma=(max(0.9 / spacing, 0.7), max(0.35 / spacing, 0.5)),
                                truncate=3.0)
    t /= float(t.std()) + 1e-6
    # struts: the zero-crossings of band-limited noise form a connected network of thin,
    # mostly axial lines
    struts = 2.0 * np.exp(-((t / 0.45) ** 2)) - 0.6
    coarse = smooth(rng.standard_normal(shape, dtype=np.float32), max(6.0 / spacing, 1.0))
    coarse /= float(coarse.std()) + 1e-6
    return (0.8 * struts + 0.35 * coarse).astype(np.float32)


def render(scene: Scene, rng: np.random.Generator, acq: dict[str, float]) -> F32:
    """Render ``scene``; returns processed values in [0, 1] (1 = most attenuating)."""
    rows, cols = scene.shape
    k = max(1.0, max(rows, cols) / WORK_MAX_SIDE)
    wr, wc = max(int(round(rows / k)), 2), max(int(round(cols / k)), 2)
    kx, ky = cols / wc, rows / wr
    k = 0.5 * (kx + ky)
    ws = scene.spacing_mm * k
    yy, xx = np.mgrid[0:wr, 0:wc].astype(np.float32)
    xo, yo = (xx + 0.5) * kx - 0.5, (yy + 0.5) * ky - 0.5  # output-pixel coords of work pixels
    S = np.zeros((wr, wc), np.float32)
    if scene.soft_tissue_mm is not None:
        S = scene.soft_tissue_mm(xo, yo).astype(np.float32)
    A = acq["mu_soft"] * S
    if scene.extra_log_attenuation is not None:
        A += scene.extra_log_attenuation(xo, yo).astype(np.float32)
    tex = np.zeros((wr, wc), np.float32)
    if scene.bones:
        allb = _to_work(np.vstack([b.polygon for b in scene.bones]), (kx, ky))
        bx0, by0 = np.clip(np.floor(allb.min(axis=0)).astype(int) - 2, 0, [wc, wr])
        bx1, by1 = np.clip(np.ceil(allb.max(axis=0)).astype(int) + 3, 0, [wc, wr])
        if bx1 - bx0 > 4 and by1 - by0 > 4:
            tex[by0:by1, bx0:bx1] = _texture((int(by1 - by0), int(bx1 - bx0)), ws, rng)
    B = np.zeros((wr, wc), np.float32)
    for b in scene.bones:
        _bone_attenuation(b, (wr, wc), (kx, ky), ws, tex, B)
    A += B * acq["bone_gain"]
    # exposure: heel effect along the anode-cathode axis and a soft field fall-off
    yn = (yo / rows - 0.5).astype(np.float32)
    xn = (xo / cols - 0.5).astype(np.float32)
    logI = (acq["heel"] * (yn if acq["heel_axis"] < 0.5 else xn)
            - acq["vignette"] * (xn * xn + yn * yn) - A)
    open_field = np.ones((wr, wc), np.float32)
    if scene.collimator is not None:
        cm = fill_mask((wr, wc), _to_work(scene.collimator, (kx, ky))).astype(np.float32)
        open_field = smooth(cm, max(acq["penumbra_mm"] / ws, 0.5))
        logI = logI + np.log(np.maximum(open_field, 0.0) * 0.997 + 0.003)
    # focal spot and detector unsharpness; at least 0.7 working pixel, which also
    # removes the staircase of the rasterised outlines
    blur = max(acq["blur_mm"] / ws, 0.7)
    logI = ndimage.gaussian_filter(logI, sigma=blur, truncate=3.0)
    v = -logI
    # anchors: the modality's exposure recognition finds soft tissue and bone
    inside = open_field > 0.9
    sub = (slice(None, None, 3), slice(None, None, 3))
    thick = (0.5 * float(S.max()) < S) if S.max() > 0 else inside
    soft_sel = (inside & (B < 0.02) & thick)[sub]
    v_soft = float(np.median(v[sub][soft_sel])) if soft_sel.any() else float(np.median(v))
    bone_sel = (inside & (B > 0.02))[sub]
    if bone_sel.any():
        v_bone = float(np.percentile(v[sub][bone_sel], acq["bone_pct"]))
    else:
        v_bone = v_soft + 1.0
    span = max(v_bone - v_soft, 0.3)
    # large-area dynamic-range compression around the soft-tissue level
    # (the collimated border is left out, as the modality's processing does)
    v_in = np.where(open_field > 0.5, np.minimum(v, v_soft + 3.0 * span), v_soft)
    low = smooth(v_in.astype(np.float32), acq["eq_mm"] / ws)
    v2 = v - acq["eq_gain"] * np.clip(low - v_soft, -3.0 * span, 3.0 * span)
    gain = (acq["bone_level"] - acq["soft_level"]) / span
    p = acq["soft_level"] + (v2 - v_soft) * gain
    mid = smooth(p.astype(np.float32), max(acq["usm_mm"] / ws, 0.5))
    p = p + acq["usm_gain"] * (p - mid)
    p = np.clip(p, 0.0, 1.2)
    p = np.clip(p, 0.0, 1.0) ** acq["gamma"]
    # quantum noise (p units): sigma_v = exp(v/2) / sqrt(photons per pixel)
    n0 = acq["photons_per_mm2"] * scene.spacing_mm ** 2
    # (beyond the densest bone the processed value is clipped anyway)
    v_cap = min(v_bone + 0.7, 9.0)
    sig = (np.exp(np.minimum(v, v_cap) / 2.0) / np.sqrt(n0) * gain).astype(np.float32)
    if scene.collimator is not None and scene.collimator_black:
        p = p * open_field
        sig = sig * open_field
    p = p.astype(np.float32)
    if k > 1.0:
        p = _resize(p, (rows, cols))
        sig = _resize(sig, (rows, cols))
    out = p
    if scene.metal:
        mm = np.zeros((rows, cols), np.float32)
        for poly, level in scene.metal:  # later parts overwrite earlier ones
            mm = np.where(fill_mask((rows, cols), poly), np.float32(level), mm)
        edge = max(0.45, 0.12 / scene.spacing_mm)
        mm = ndimage.gaussian_filter(mm, sigma=edge)
        out = np.maximum(out, mm)
    noise = rng.standard_normal((rows, cols), dtype=np.float32)
    out = out + noise * (sig * acq["noise_gain"] + acq["detector_noise"])
    if scene.marker is not None:
        out = _burn_marker(out, *scene.marker)
    for text, x, y, h in scene.annotations:
        out = _burn_marker(out, text, x, y, h, tab=False)
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def _resize(a: F32, shape: tuple[int, int]) -> F32:
    img = Image.fromarray(np.ascontiguousarray(a, dtype=np.float32), mode="F")
    return np.array(img.resize((shape[1], shape[0]), Image.Resampling.BILINEAR),
                    dtype=np.float32)


def _burn_marker(out: F32, text: str, x: float, y: float, height: float,
                 tab: bool = True) -> F32:
    """Burn text (white) with top-left at (x, y): a lead side marker on a darker tab, or
    an electronic annotation (``tab=False``)."""
    size = max(int(height), 6)
    font = ImageFont.load_default(size=size)
    w = int(size * 0.9 * max(len(text), 1)) + 4
    h = int(size * 1.3) + 4
    canvas = Image.new("L", (w, h), 0)
    ImageDraw.Draw(canvas).text((2, 0), text, fill=255, font=font)
    t = np.asarray(canvas, dtype=np.float32) / 255.0
    x0, y0 = int(x), int(y)
    rows, cols = out.shape
    x1, y1 = min(x0 + w, cols), min(y0 + h, rows)
    if x1 <= x0 or y1 <= y0 or x0 < 0 or y0 < 0:
        return out
    region = out[y0:y1, x0:x1]
    tt = t[: y1 - y0, : x1 - x0]
    out[y0:y1, x0:x1] = np.maximum(region * (0.85 if tab else 1.0), tt)
    return out
