"""Physics and vendor processing of the independent full-leg renderer: solids -> stored pixels.

Never used for training or checkpoint choice (see :mod:`training.independent_leg`).

1. **attenuation** -- the closed-form chords of :mod:`training.independent_leg.solids`
   (cortical shell, cancellous or medullary inside with a **log-normal, axially stretched
   texture**), soft tissue of each leg as a tube with a fat layer, the pelvis and buttocks as
   a box-like bi-superellipsoid, a steel calibration ball, a lead side marker; a mild
   beam-hardening curve;
2. **detector** -- heel effect along the long axis, two or three exposures with their own
   dose (the plates of a stitched image), **scatter** as a wide low-pass of the primary,
   **anti-scatter grid lines**, a **two-component MTF** (sharp core plus a veiling-glare
   tail), signal-dependent and electronic noise, slightly correlated;
3. **vendor processing** -- log, range normalisation, **multi-scale edge enhancement**
   (band gains on a difference-of-Gaussians stack), **unsharp masking**, dynamic-range
   compression, a **non-linear LUT** (filmic, sigmoid or gamma), collimation shutters at the
   sides, a faint seam line, 12-16 bit storage, MONOCHROME1 or 2.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from inference.leg import geometry
from training.independent_leg.limb import MU_WATER
from training.independent_leg.solids import Blob, Tube, bone_attenuation
from training.independent_leg.standing import BALL_MM, Standing, stand_study, to_body

F32 = npt.NDArray[np.float32]
FloatArray = npt.NDArray[np.float64]
#: Salt of this renderer's random streams (apart from every training stream).
STREAM = 0x1D1E6


@dataclass(frozen=True)
class LegTruth:
    """One leg's truth: landmarks in stored px and what is measured from them."""

    side: str
    landmarks: FloatArray
    in_image: npt.NDArray[np.bool_]
    measurements: dict[str, float]
    built_in: dict[str, float]
    cpak_class: int


@dataclass(frozen=True)
class LegRadiograph:
    """A rendered bilateral standing AP full-leg radiograph with its truth."""

    pixels: npt.NDArray[np.uint16]
    bits_stored: int
    photometric: str
    pixel_spacing_mm: tuple[float, float]
    magnification: float
    legs: tuple[LegTruth, LegTruth]
    seed: int
    standing: Standing
    settings: dict[str, Any]
    exposures: tuple[tuple[int, int], ...]


def _down_blur(img: F32, sigma_px: float, factor: int) -> F32:
    """A wide Gaussian blur computed on a ``factor`` times coarser grid."""
    rows, cols = img.shape
    small = img[: rows - rows % factor, : cols - cols % factor].reshape(
        rows // factor, factor, cols // factor, factor).mean(axis=(1, 3))
    small = ndimage.gaussian_filter(small, sigma_px / factor, mode="nearest")
    big = ndimage.zoom(small, factor, order=1, mode="nearest", grid_mode=True)
    out = np.empty_like(img)
    h, w = min(big.shape[0], rows), min(big.shape[1], cols)
    out[:h, :w] = big[:h, :w]
    out[h:, :] = out[h - 1:h, :]
    out[:, w:] = out[:, w - 1:w]
    return out


def _texture(shape: tuple[int, int], rng: np.random.Generator, mm_per_px: float,
             strength: float) -> F32:
    """Log-normal trabecular modulation, stretched along the (vertical) long bones."""
    rows, cols = shape
    f = max(1, int(round(0.6 / mm_per_px)))  # grain of about 0.6 mm
    small = rng.standard_normal((rows // f + 2, cols // f + 2)).astype(np.float32)
    coarse = ndimage.gaussian_filter(small, (2.2, 0.8))
    fine = ndimage.gaussian_filter(small, (0.9, 0.6))
    band = coarse / (coarse.std() + 1e-6) + 0.6 * fine / (fine.std() + 1e-6)
    t = np.exp(strength * band - 0.5 * strength ** 2).astype(np.float32)
    big = np.repeat(np.repeat(t, f, axis=0), f, axis=1)[:rows, :cols]
    return ndimage.uniform_filter(big, f, mode="nearest") if f > 1 else big


def _lut(x: F32, kind: str, k: float) -> F32:
    if kind == "filmic":
        y = (x * (2.51 * x + 0.03)) / (x * (2.43 * x + 0.59) + 0.14)
        return np.clip(y, 0.0, 1.0).astype(np.float32)
    if kind == "sigmoid":
        s = 1.0 / (1.0 + np.exp(-k * (x - 0.5)))
        lo, hi = 1.0 / (1.0 + np.exp(k * 0.5)), 1.0 / (1.0 + np.exp(-k * 0.5))
        return ((s - lo) / (hi - lo)).astype(np.float32)
    return np.clip(x, 0.0, 1.0).astype(np.float32) ** np.float32(k)


_GLYPHS = {"R": ["1110", "1001", "1110", "1010", "1001"],
           "L": ["1000", "1000", "1000", "1000", "1111"]}


def _marker(att: F32, letter: str, x0: float, y0: float, cell: float) -> None:
    """A lead letter (blocky glyph) into the attenuation."""
    for r, row in enumerate(_GLYPHS[letter]):
        for c, on in enumerate(row):
            if on == "1":
                ra, rb = int(y0 + r * cell), int(y0 + (r + 1) * cell)
                ca, cb = int(x0 + c * cell), int(x0 + (c + 1) * cell)
                att[max(ra, 0):max(rb, 0), max(ca, 0):max(cb, 0)] += 2.5


def _attenuation(st: Standing, rng: np.random.Generator, settings: dict[str, Any]) -> F32:
    rows, cols = st.shape
    mmpp = st.mm_per_px
    s = st.scale
    att = np.zeros((rows, cols), np.float32)
    # --- soft tissue, on a 4x coarser grid (it is smooth)
    f = 4
    coarse = (rows // f + 1, cols // f + 1)
    soft = np.zeros(coarse, np.float32)
    for pl in st.legs:
        t = pl.limb.soft
        cen = st.to_px(pl.to_patient(t.centre)) / f
        tube = Tube(cen, t.radius * s / f, t.cortex * s / f, t.depth)
        w = tube.window(coarse)
        o, i = tube.paths(w)
        soft[w.r0:w.r1, w.c0:w.c1] += (0.8 * (o - i) + i) * (f * mmpp)
    hips = 0.5 * (st.legs[0].hip + st.legs[1].hip)
    body = Blob(st.to_px(hips + np.array([0.0, -40.0])) / f, np.array([1.0, 0.0]),
                (st.body_half_width_mm - 15.0) * s / f, settings["buttock_mm"] * s / f,
                3.5, 2.6, settings["body_depth_mm"] * s / f)
    w = body.window(coarse)
    o, _ = body.paths(w)
    soft[w.r0:w.r1, w.c0:w.c1] = np.maximum(soft[w.r0:w.r1, w.c0:w.c1], o * (f * mmpp))
    soft_full = ndimage.zoom(soft, f, order=1, grid_mode=True, mode="nearest")[:rows, :cols]
    att += MU_WATER * soft_full
    # --- bones
    tex = _texture(st.shape, rng, mmpp, settings["texture"])
    for pl in st.legs:
        mirrored = float(np.linalg.det(pl.matrix)) < 0
        for spec in pl.limb.bones:
            bone_attenuation(to_body(spec, pl.to_patient, st, mirrored), st.shape, mmpp, tex, att)
    for spec in st.pelvis:
        bone_attenuation(to_body(spec, None, st, False), st.shape, mmpp, tex, att)
    # --- steel ball at the bone plane
    ball = Blob(st.to_px(st.ball_centre_mm), np.array([1.0, 0.0]), 0.5 * BALL_MM * s,
                0.5 * BALL_MM * s, 2.0, 2.0, 0.5 * BALL_MM * s)
    w = ball.window(st.shape)
    o, _ = ball.paths(w)
    att[w.r0:w.r1, w.c0:w.c1] += 0.25 * o * mmpp
    # --- side marker near a top corner
    cell = 4.0 / st.pixel_spacing_mm
    letter = settings["marker"]
    x = 0.04 * cols if letter == "R" else cols - 0.04 * cols - 4 * cell
    _marker(att, letter, x, 0.02 * rows, cell)
    h = settings["hardening"]
    return (att - h * att * att / (1.0 + att)).astype(np.float32)


def _detector(att: F32, st: Standing, rng: np.random.Generator, settings: dict[str, Any],
              exposures: tuple[tuple[int, int], ...]) -> F32:
    rows, cols = att.shape
    primary = np.exp(-att)
    yy = np.linspace(-0.5, 0.5, rows, dtype=np.float32)[:, None]
    gain = np.ones((rows, 1), np.float32)
    for (r0, r1), g in zip(exposures, settings["exposure_gain"], strict=True):
        heel = 1.0 + settings["heel"] * (yy[r0:r1] - yy[r0:r1].mean())
        gain[r0:r1] = np.float32(g) * heel
    primary *= gain
    scatter = settings["spr"] * _down_blur(primary, settings["scatter_mm"] / st.pixel_spacing_mm, 8)
    signal = primary + scatter.astype(np.float32)
    if settings["grid"]:
        axis = np.arange(cols if settings["grid_vertical"] else rows, dtype=np.float32)
        stripe = 1.0 + settings["grid_amp"] * np.cos(2 * np.pi * axis / settings["grid_period"])
        signal *= stripe[None, :] if settings["grid_vertical"] else stripe[:, None]
    core = ndimage.gaussian_filter(signal, settings["mtf_core_px"], truncate=3.0)
    tail = _down_blur(signal, settings["mtf_tail_px"], 2)
    signal = (1.0 - settings["mtf_tail_w"]) * core + settings["mtf_tail_w"] * tail
    q = settings["quanta"]
    white = rng.standard_normal((rows, cols), dtype=np.float32)
    white = ndimage.gaussian_filter(white, 0.55) * np.float32(1.6)
    signal = signal + np.sqrt(np.maximum(signal, 1e-6) / q) * white
    signal += np.float32(settings["electronic"]) * rng.standard_normal((rows, 1)).astype(np.float32)
    return np.maximum(signal, 1e-5).astype(np.float32)


def _process(signal: F32, st: Standing, settings: dict[str, Any],
             exposures: tuple[tuple[int, int], ...]) -> F32:
    rows, cols = signal.shape
    lg = -np.log(signal)
    sample = lg[::4, ::4]
    lo, hi = np.percentile(sample, [2.0, 99.7])
    x = (lg - lo) / max(hi - lo, 1e-3)
    g1 = ndimage.gaussian_filter(x, 1.2)
    g2 = ndimage.gaussian_filter(g1, 3.5)
    g3 = _down_blur(x, 12.0, 4)
    g4 = _down_blur(x, 60.0, 8)
    b = settings["bands"]
    x = x + b[0] * (x - g1) + b[1] * (g1 - g2) + b[2] * (g2 - g3) - settings["drc"] * (g4 - 0.5)
    x = x + settings["usm"] * (x - ndimage.gaussian_filter(x, settings["usm_px"]))
    lo, hi = np.percentile(x[::4, ::4], [0.5, 99.8])
    x = np.clip((x - lo) / max(hi - lo, 1e-3), 0.0, 1.0).astype(np.float32)
    x = _lut(x, settings["lut"], settings["lut_k"])
    for r0, _ in exposures[1:]:  # a faint seam where the plates were joined
        x[r0:r0 + 2] *= np.float32(settings["seam"])
    # collimation shutters at the sides, outside the body
    sw = settings["shutter_px"]
    if sw > 0:
        val = np.float32(settings["shutter_value"])
        x[:, :sw] = val
        x[:, cols - sw:] = val
    return x


def render(seed: int) -> LegRadiograph:
    """Draw and render the study of ``seed`` (every decision from its own random streams)."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    seed = int(seed)
    rng = np.random.default_rng([seed, STREAM])
    st = stand_study(seed, rng)
    u = rng.uniform
    rows, cols = st.shape
    n_exp = int(rng.integers(2, 4))
    cuts = [0] + sorted(int(rows * (k / n_exp + u(-0.05, 0.05))) for k in range(1, n_exp)) + [rows]
    exposures = tuple((cuts[k], cuts[k + 1]) for k in range(n_exp))
    # shutters: inside the field's side margins, never over the soft tissue of the thighs
    thigh = max(pl.limb.draw.extras["thigh"] for pl in st.legs)
    margin_mm = st.body_half_width_mm - (abs(float(st.legs[0].hip[0])) + thigh)
    shutter = int(max(margin_mm - 8.0, 0.0) * float(u(0.0, 0.8)) * st.scale) if u() < 0.5 else 0
    settings: dict[str, Any] = {
        "buttock_mm": float(u(150.0, 230.0)), "body_depth_mm": float(u(85.0, 130.0)),
        "texture": float(u(0.05, 0.14)), "marker": "R" if u() < 0.5 else "L",
        "hardening": float(u(0.0, 0.12)), "heel": float(u(-0.25, 0.25)),
        "exposure_gain": [float(u(0.96, 1.04)) for _ in exposures],
        "spr": float(u(0.15, 0.6)), "scatter_mm": float(u(25.0, 70.0)),
        "grid": bool(u() < 0.6), "grid_vertical": bool(u() < 0.5),
        "grid_amp": float(u(0.004, 0.02)), "grid_period": float(u(2.2, 6.5)),
        "mtf_core_px": float(u(0.45, 1.0)), "mtf_tail_px": float(u(4.0, 12.0)),
        "mtf_tail_w": float(u(0.04, 0.15)), "quanta": float(u(1500.0, 9000.0)),
        "electronic": float(u(0.0, 0.004)),
        "bands": [float(u(0.0, 0.8)), float(u(0.0, 1.2)), float(u(0.0, 0.6))],
        "drc": float(u(0.0, 0.5)), "usm": float(u(0.0, 1.2)), "usm_px": float(u(2.0, 8.0)),
        "lut": str(rng.choice(["filmic", "sigmoid", "gamma"])), "lut_k": 1.0,
        "seam": float(u(0.96, 1.04)), "shutter_px": shutter,
        "shutter_value": float(rng.choice([0.0, 1.0])),
    }
    settings["lut_k"] = {"filmic": 1.0, "sigmoid": float(u(3.0, 7.0)),
                         "gamma": float(u(0.7, 1.4))}[settings["lut"]]
    att = _attenuation(st, rng, settings)
    signal = _detector(att, st, rng, settings, exposures)
    x = _process(signal, st, settings, exposures)
    bits = int(rng.choice([12, 12, 14, 15, 16]))
    top = (1 << bits) - 1
    stored = np.rint(x * top * float(u(0.85, 1.0))).astype(np.int64)
    photometric = "MONOCHROME1" if u() < 0.4 else "MONOCHROME2"
    if photometric == "MONOCHROME1":
        stored = top - stored
    pixels = np.clip(stored, 0, top).astype(np.uint16)
    truths = []
    for i, pl in enumerate(st.legs):
        pts = st.leg_px(i)
        inside = (pts[:, 0] >= 0) & (pts[:, 0] < cols) & (pts[:, 1] >= 0) & (pts[:, 1] < rows)
        m = geometry.measure_leg(pts, st.mm_per_px)
        truths.append(LegTruth(pl.side, pts, inside, m, dict(pl.limb.built_in),
                               geometry.cpak_class(m["aHKA_deg"], m["JLO_deg"])))
    return LegRadiograph(pixels=pixels, bits_stored=bits, photometric=photometric,
                         pixel_spacing_mm=(st.pixel_spacing_mm, st.pixel_spacing_mm),
                         magnification=st.magnification, legs=(truths[0], truths[1]),
                         seed=seed, standing=st, settings=settings, exposures=exposures)


__all__ = ["STREAM", "LegRadiograph", "LegTruth", "render"]
