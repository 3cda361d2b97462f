"""The independent renderer's physics and vendor processing: knee outlines -> stored pixels.

Never used for training or checkpoint choice (see :mod:`training.independent`).

Pipeline, all of it this module's own:

1. **geometry** -- pixel spacing 0.10-0.20 mm, rotation, left/right mirroring, offset;
2. **attenuation** -- each bone is a body of elliptical cross-section: the path length at
   depth ``d`` inside an outline of local half-width ``R`` is ``2 sqrt(d (2R - d))``; a
   cortical shell (thick in the shafts, thin at the joint) and a cancellous core with
   **anisotropic filtered-noise trabeculae** along the bone, a fatty medullary canal;
   metal implants; soft tissue of the leg as a superelliptic cylinder;
3. **detector** -- heel effect, **scatter** (a wide blur of the primary), **anti-scatter grid
   lines** (often aliased into moire), a **Lorentzian MTF**, signal-dependent quantum noise
   and correlated/electronic noise, row banding;
4. **vendor processing** -- log, **multi-scale edge enhancement** (band gains on a
   difference-of-Gaussians pyramid), **unsharp masking**, a **non-linear LUT** (filmic,
   sigmoid or gamma), collimation shutters, a burned-in side marker, 10-16 bit storage,
   MONOCHROME1 or 2.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from training.independent.bones import IndependentKnee

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class IndependentRadiograph:
    """One rendered knee radiograph with its truth (landmarks in stored-pixel coordinates).

    Attributes
    ----------
    pixels
        ``(rows, cols)`` uint16 stored values ``< 2**bits_stored``.
    bits_stored, photometric
        Storage (MONOCHROME2: bone has high values; MONOCHROME1: bone low).
    pixel_spacing_mm
        (row, column) spacing at the knee, mm.
    landmarks
        ``(N, 2)`` true landmarks, x = column, y = row.
    laterality, phase
        "L"/"R", "pre"/"post".
    knee
        The drawn knee (tibial frame, mm).
    settings
        The randomly drawn rendering settings (for the JSON truth).
    """

    pixels: npt.NDArray[np.uint16]
    bits_stored: int
    photometric: str
    pixel_spacing_mm: tuple[float, float]
    landmarks: FloatArray
    laterality: str
    phase: str
    knee: IndependentKnee
    settings: dict[str, float | str]


def fill_polygon(poly: npt.ArrayLike, shape: tuple[int, int]) -> npt.NDArray[np.bool_]:
    """Pixels (centres at integer coordinates) inside the closed polygon ``poly`` (x, y).

    Even-odd scanline fill, exact at every row: a pixel is inside when its centre is.
    """
    p = np.asarray(poly, dtype=np.float64)
    rows, cols = shape
    mask = np.zeros(shape, dtype=bool)
    x0, y0 = p[:, 0], p[:, 1]
    x1, y1 = np.roll(x0, -1), np.roll(y0, -1)
    lo = int(max(0, np.ceil(p[:, 1].min())))
    hi = int(min(rows - 1, np.floor(p[:, 1].max())))
    up = y1 != y0
    x0, y0, x1, y1 = x0[up], y0[up], x1[up], y1[up]
    ymin, ymax = np.minimum(y0, y1), np.maximum(y0, y1)
    for r in range(lo, hi + 1):
        act = (ymin <= r) & (ymax > r)
        if not act.any():
            continue
        xs = np.sort(x0[act] + (r - y0[act]) * (x1[act] - x0[act]) / (y1[act] - y0[act]))
        for a, b in zip(xs[0::2], xs[1::2], strict=False):
            c0, c1 = int(max(0, np.ceil(a))), int(min(cols - 1, np.floor(b)))
            if c1 >= c0:
                mask[r, c0:c1 + 1] = ~mask[r, c0:c1 + 1]
    return mask


def _box(poly: FloatArray, shape: tuple[int, int], pad: int) -> tuple[slice, slice] | None:
    rows, cols = shape
    r0 = max(0, int(np.floor(poly[:, 1].min())) - pad)
    r1 = min(rows, int(np.ceil(poly[:, 1].max())) + pad + 1)
    c0 = max(0, int(np.floor(poly[:, 0].min())) - pad)
    c1 = min(cols, int(np.ceil(poly[:, 0].max())) + pad + 1)
    if r1 <= r0 or c1 <= c0:
        return None
    return slice(r0, r1), slice(c0, c1)


def _depth_and_radius(mask: npt.NDArray[np.bool_], ps: float,
                      radius_px: float) -> tuple[FloatArray, FloatArray]:
    """Depth below the outline (mm, sub-pixel centred) and the local half-width (mm)."""
    d = ndimage.distance_transform_edt(mask).astype(np.float64)
    d = np.where(mask, d - 0.5, 0.0) * ps
    f = 6
    small = d[::f, ::f]
    size = max(3, int(2.2 * radius_px / f) | 1)
    r_small = ndimage.maximum_filter(small, size=size)
    r_small = ndimage.gaussian_filter(r_small, size / 3.0)
    r = np.repeat(np.repeat(r_small, f, 0), f, 1)[: d.shape[0], : d.shape[1]]
    r = ndimage.uniform_filter(r, f)
    return d, np.maximum(r, d + 1e-3)


def _chord(d: FloatArray, r: FloatArray) -> FloatArray:
    """Path length through an ellipse-like section at depth ``d`` of half-width ``r``."""
    dd = np.clip(d, 0.0, r)
    return 2.0 * np.sqrt(np.clip(dd * (2.0 * r - dd), 0.0, None))


def _oriented_noise(shape: tuple[int, int], rng: np.random.Generator, angle: float,
                    period_px: float, elong: float) -> FloatArray:
    """Zero-mean unit-variance band-pass noise whose grains run along ``angle`` (rad)."""
    rows, cols = shape
    fy = np.fft.fftfreq(rows)[:, None]
    fx = np.fft.rfftfreq(cols)[None, :]
    c, s = np.cos(angle), np.sin(angle)
    along = fx * c + fy * s
    across = -fx * s + fy * c
    f0 = 1.0 / period_px
    rad = np.sqrt((along * elong) ** 2 + across ** 2)
    h = np.exp(-((rad - f0) / (0.6 * f0)) ** 2)
    spec = np.fft.rfft2(rng.standard_normal(shape)) * h
    out = np.fft.irfft2(spec, s=shape)
    return out / (out.std() + 1e-9)


def _mtf(img: FloatArray, fc: float) -> FloatArray:
    """Lorentzian modulation transfer ``1 / (1 + (f / fc)^2)`` (cycles per pixel)."""
    rows, cols = img.shape
    fy = np.fft.fftfreq(rows)[:, None]
    fx = np.fft.rfftfreq(cols)[None, :]
    h = 1.0 / (1.0 + (fx * fx + fy * fy) / (fc * fc))
    return np.fft.irfft2(np.fft.rfft2(img) * h, s=img.shape)


def _blur_fast(img: FloatArray, sigma_px: float) -> FloatArray:
    """A wide Gaussian blur on a decimated copy (scatter, large processing bands)."""
    f = max(1, int(sigma_px / 6))
    small = img[::f, ::f]
    b = ndimage.gaussian_filter(small, sigma_px / f, mode="nearest")
    z = ndimage.zoom(b, (img.shape[0] / b.shape[0], img.shape[1] / b.shape[1]), order=1)
    return z[: img.shape[0], : img.shape[1]]


def _lut(x: FloatArray, kind: str, k: float, g: float) -> FloatArray:
    """A non-linear display LUT on [0, 1]."""
    x = np.clip(x, 0.0, 1.0)
    if kind == "sigmoid":
        y = 1.0 / (1.0 + np.exp(-k * (x - 0.5)))
        lo, hi = 1.0 / (1.0 + np.exp(k * 0.5)), 1.0 / (1.0 + np.exp(-k * 0.5))
        return (y - lo) / (hi - lo)
    if kind == "filmic":  # toe and shoulder
        a = x ** g
        return a / (a + (k / 6.0) * (1.0 - x) ** g + 1e-9)
    return x ** g


def render(knee: IndependentKnee, rng: np.random.Generator, laterality: str,
           max_side: int | None = None) -> IndependentRadiograph:
    """Render ``knee`` as a stored radiograph.

    Parameters
    ----------
    knee
        From :func:`training.independent.bones.draw_knee`.
    rng
        Random generator for every acquisition and processing choice.
    laterality
        "L" or "R" (a right knee is the mirror image of the drawn left one).
    max_side
        Longest image side in pixels (default: full size, at most 2800).
    """
    if laterality not in ("L", "R"):
        raise ValueError(f"laterality must be 'L' or 'R', got {laterality!r}")
    if max_side is not None and max_side < 64:
        raise ValueError(f"max_side must be >= 64, got {max_side}")
    u = rng.uniform
    w = knee.width_mm
    # ---- geometry: field of view in the tibial frame (mm), then pixels
    top, bottom = -u(2.05, 2.5) * w, u(1.85, 2.3) * w
    half_w = u(1.0, 1.5) * w
    ps = u(0.10, 0.20)
    height_mm = bottom - top
    limit = 2800 if max_side is None else min(2800, max_side)
    ps = max(ps, height_mm / limit, 2 * half_w / limit)
    rows, cols = int(round(height_mm / ps)), int(round(2 * half_w / ps))
    rot = np.radians(u(-10.0, 10.0))
    mirror = -1.0 if laterality == "R" else 1.0
    cr, sr = np.cos(rot), np.sin(rot)
    lin = np.array([[cr, -sr], [sr, cr]]) @ np.diag([mirror, 1.0]) / ps
    centre_mm = np.array([u(-0.12, 0.12) * w, 0.5 * (top + bottom) + u(-0.1, 0.1) * w])
    centre_px = np.array([(cols - 1) / 2.0, (rows - 1) / 2.0])

    def to_px(p: FloatArray) -> FloatArray:
        return (np.asarray(p) - centre_mm) @ lin.T + centre_px

    inv = np.linalg.inv(lin)
    yy, xx = np.mgrid[0:rows, 0:cols].astype(np.float64)
    ax = (xx - centre_px[0]) * inv[0, 0] + (yy - centre_px[1]) * inv[0, 1] + centre_mm[0]
    ay = (xx - centre_px[0]) * inv[1, 0] + (yy - centre_px[1]) * inv[1, 1] + centre_mm[1]
    shape = (rows, cols)

    # ---- soft tissue: a superelliptic leg, wider at the thigh
    leg_half = w * (0.95 + 0.18 * np.clip(-ay / w, 0, None) - 0.06 * np.clip(ay / w, 0, None)
                    + u(-0.08, 0.12))
    leg_x = ax - u(-0.05, 0.05) * w
    ne = u(2.0, 3.2)
    depth_mm = u(85.0, 130.0) * w / 76.0
    frac = np.clip(1.0 - np.abs(leg_x / leg_half) ** ne, 0.0, None) ** (1.0 / ne)
    mu_soft = u(0.016, 0.022)
    mu = mu_soft * depth_mm * frac
    fat = u(0.0, 0.25)
    mu -= fat * mu_soft * depth_mm * frac * np.clip(np.abs(leg_x / leg_half) - 0.7, 0, None) / 0.3

    # ---- bones
    mu_cort = u(0.045, 0.075)
    mu_canc = u(0.010, 0.022)
    tex_amp = u(0.15, 0.5)
    grain_px = u(0.8, 2.2) / ps
    elong = u(1.8, 4.0)
    canal = u(0.15, 0.5)
    c_shaft, c_joint = u(2.5, 6.5), u(0.5, 1.4)
    settings: dict[str, float | str] = {
        "pixel_spacing_mm": round(ps, 5), "rotation_deg": round(float(np.degrees(rot)), 3),
        "mu_cortex": round(mu_cort, 4), "texture": round(tex_amp, 3),
    }
    bone_axis_angle = {"femur": float(np.arctan2(knee.frames["femur"][1][1],
                                                 knee.frames["femur"][1][0])),
                       "tibia": np.pi / 2}
    for name, poly_mm, radius_mm in (
        ("femur", knee.outlines["femur"], 0.3 * w),
        ("tibia", knee.outlines["tibia"], 0.3 * w),
        ("fibula", knee.outlines["fibula"], 0.12 * w),
        ("fibula_shaft", knee.outlines["fibula_shaft"], 0.07 * w),
        ("patella", knee.outlines["patella"], 0.25 * w),
    ):
        poly = to_px(poly_mm)
        box = _box(poly, shape, pad=4)
        if box is None:
            continue
        sub = poly - np.array([box[1].start, box[0].start])
        mask = fill_polygon(sub, (box[0].stop - box[0].start, box[1].stop - box[1].start))
        if not mask.any():
            continue
        d, r = _depth_and_radius(mask, ps, radius_mm / ps)
        if name in ("femur", "tibia"):
            origin, direction = knee.frames[name]
            dist = np.abs((ax[box] - origin[0]) * direction[0] + (ay[box] - origin[1])
                          * direction[1]) / w
            g = np.clip((dist - 0.25) / 0.9, 0.0, 1.0)
            cort = c_joint + (c_shaft - c_joint) * g ** 1.5
            canc = mu_canc * (1.0 - canal * g)
            depth_scale = 1.0
        elif name == "patella":
            cort, depth_scale = np.full(mask.shape, 0.8), 0.55
            canc = np.full(mask.shape, 0.6 * mu_canc)
        else:
            cort, canc, depth_scale = np.full(mask.shape, 1.2), np.full(mask.shape, mu_canc), 1.0
        outer = _chord(d, r) * depth_scale
        inner = _chord(d - cort, r - cort) * depth_scale
        ang = bone_axis_angle.get(name, np.pi / 2)
        ang_px = float(np.arctan2(lin[1] @ [np.cos(ang), np.sin(ang)],
                                  lin[0] @ [np.cos(ang), np.sin(ang)]))
        tex = _oriented_noise(mask.shape, rng, ang_px, grain_px, elong)
        mu[box] += mu_cort * (outer - inner) + canc * inner * np.clip(1.0 + tex_amp * tex, 0.2,
                                                                     None)
    for name, poly_mm in knee.metal.items():
        poly = to_px(poly_mm)
        box = _box(poly, shape, pad=4)
        if box is None:
            continue
        sub = poly - np.array([box[1].start, box[0].start])
        mask = fill_polygon(sub, (box[0].stop - box[0].start, box[1].stop - box[1].start))
        d = ndimage.distance_transform_edt(mask) * ps
        thick = (5.0 if name == "femoral_box" else 14.0) * np.clip(d / 1.5, 0, 1) ** 0.5
        mu[box] += u(0.25, 0.45) * thick * mask

    # ---- detector: primary, heel effect, scatter, grid, MTF, noise
    heel = 1.0 + u(-0.18, 0.18) * (yy / rows - 0.5) + u(-0.06, 0.06) * (xx / cols - 0.5)
    primary = np.exp(-mu) * heel
    scatter = u(0.05, 0.45)
    img = primary + scatter * _blur_fast(primary, u(25.0, 70.0) / ps)
    settings["scatter"] = round(scatter, 3)
    if u() < 0.6:
        period = u(2.1, 5.5)
        psi = (np.pi / 2 if u() < 0.5 else 0.0) + np.radians(u(-1.0, 1.0))
        depth = u(0.02, 0.09)
        phase = (xx * np.cos(psi) + yy * np.sin(psi)) * 2 * np.pi / period
        img = img * (1.0 - depth * (0.5 + 0.5 * np.cos(phase)))
        settings["grid_period_px"] = round(period, 3)
    n0 = u(400.0, 4000.0) * (ps / 0.15) ** 2
    quantum = rng.standard_normal(shape) * np.sqrt(np.clip(img, 1e-6, None) / n0)
    fc = u(0.07, 0.22)
    img = _mtf(img + quantum, fc)
    settings["mtf_fc"] = round(fc, 4)
    img = img + u(0.0, 0.004) * rng.standard_normal(shape)
    img = img * (1.0 + u(0.0, 0.01) * rng.standard_normal((rows, 1)))

    # ---- vendor processing: log, multi-scale enhancement, unsharp mask, LUT
    v = -np.log(np.clip(img, 1e-4, None))
    lo, hi = np.percentile(v[::4, ::4], [1.0, 99.5])
    v = (v - lo) / max(hi - lo, 1e-6)
    s1, s2, s3 = u(1.0, 2.5), u(5.0, 12.0), u(25.0, 60.0)
    g1 = ndimage.gaussian_filter(v, s1)
    g2 = ndimage.gaussian_filter(g1, np.sqrt(s2 ** 2 - s1 ** 2))
    g3 = _blur_fast(g2, s3)
    gains = (u(0.0, 1.2), u(0.2, 1.8), u(-0.6, 0.3))
    v = g3 + (1.0 + gains[2]) * (g2 - g3) + (1.0 + gains[1]) * (g1 - g2) + (1.0 + gains[0]) * (
        v - g1)
    amount = u(0.0, 1.0)
    v = v + amount * (v - ndimage.gaussian_filter(v, u(1.0, 3.0) / ps))
    lo, hi = np.percentile(v[::4, ::4], [u(0.2, 2.0), u(98.5, 99.9)])
    v = (v - lo) / max(hi - lo, 1e-6)
    kind = str(rng.choice(["sigmoid", "filmic", "gamma"]))
    v = _lut(v, kind, u(4.0, 9.0) if kind == "sigmoid" else u(2.0, 6.0), u(0.6, 1.6))
    settings.update({"lut": kind, "edge_gains": str([round(x, 2) for x in gains]),
                     "unsharp": round(amount, 3)})

    # ---- collimation shutters (kept clear of the landmarks) and a side marker
    lms = to_px(knee.landmarks)
    margin = 0.12 * w / ps
    c0 = min(u(0.0, 0.12) * cols, lms[:, 0].min() - margin)
    c1 = max(cols - u(0.0, 0.12) * cols, lms[:, 0].max() + margin)
    r0 = min(u(0.0, 0.06) * rows, lms[:, 1].min() - margin)
    r1 = max(rows - u(0.0, 0.06) * rows, lms[:, 1].max() + margin)
    tilt = np.radians(u(-2.0, 2.0))
    xr = (xx - cols / 2) * np.cos(tilt) + (yy - rows / 2) * np.sin(tilt) + cols / 2
    yr = -(xx - cols / 2) * np.sin(tilt) + (yy - rows / 2) * np.cos(tilt) + rows / 2
    outside = (xr < c0) | (xr > c1) | (yr < r0) | (yr > r1)
    shutter = 1.0 if u() < 0.6 else 0.0
    v = np.where(outside, shutter + 0.01 * rng.standard_normal(shape), v)
    marker = laterality if u() < 0.7 else ""
    if marker:
        v = _burn_marker(v, marker, rng, ps)
    v = np.clip(v, 0.0, 1.0)

    bits = int(rng.choice([10, 12, 12, 14, 15, 16]))
    photometric = "MONOCHROME1" if u() < 0.35 else "MONOCHROME2"
    top_v = (1 << bits) - 1
    lo_v, hi_v = int(u(0.0, 0.05) * top_v), int(u(0.9, 1.0) * top_v)
    stored = lo_v + v * (hi_v - lo_v)
    if photometric == "MONOCHROME1":
        stored = top_v - stored
    pixels = np.clip(np.round(stored), 0, top_v).astype(np.uint16)
    settings.update({"marker": marker, "collimation": "white" if shutter else "black"})
    return IndependentRadiograph(
        pixels=pixels, bits_stored=bits, photometric=photometric,
        pixel_spacing_mm=(float(ps), float(ps)), landmarks=lms, laterality=laterality,
        phase=knee.phase, knee=knee, settings=settings,
    )


def _burn_marker(v: FloatArray, text: str, rng: np.random.Generator, ps: float) -> FloatArray:
    """Burn a bright letter into a corner of the image (a lead side marker)."""
    from PIL import Image, ImageDraw, ImageFont

    rows, cols = v.shape
    size = int(np.clip(18.0 / ps, 40, 260))
    try:
        font = ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1
        font = ImageFont.load_default()
    canvas = Image.new("L", (2 * size, 2 * size), 0)
    ImageDraw.Draw(canvas).text((size // 4, size // 8), text, fill=255, font=font)
    stamp = np.asarray(canvas, dtype=np.float64) / 255.0
    corner = int(rng.integers(0, 4))
    r0 = int(0.04 * rows) if corner < 2 else rows - int(0.04 * rows) - stamp.shape[0]
    c0 = int(0.06 * cols) if corner % 2 == 0 else cols - int(0.06 * cols) - stamp.shape[1]
    r0, c0 = max(r0, 0), max(c0, 0)
    h, wd = min(stamp.shape[0], rows - r0), min(stamp.shape[1], cols - c0)
    region = v[r0:r0 + h, c0:c0 + wd]
    v[r0:r0 + h, c0:c0 + wd] = np.maximum(region, 0.97 * stamp[:h, :wd])
    return v
