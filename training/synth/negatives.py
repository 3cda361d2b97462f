"""Images that are not AP knee radiographs, for quality-control training and tests.

Crude but plausible: a blank exposure, pure noise, a PA chest, a lateral knee and
an AP lower leg (tibia, fibula and ankle, without the knee joint).  They share the
rendering and the acquisition model of the knee images, so a quality check cannot
tell them apart by noise or processing alone.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import numpy as np
import numpy.typing as npt

from training.synth.contour import spline
from training.synth.generator import _check_max_side, _check_seed, sample_acquisition
from training.synth.render import Bone, Scene, render
from training.synth.types import SynthRadiograph

FloatArray = npt.NDArray[np.float64]
NegativeKind = Literal["blank", "noise", "chest", "lateral_knee", "lower_leg"]
NEGATIVE_KINDS: tuple[str, ...] = ("blank", "noise", "chest", "lateral_knee", "lower_leg")


def _const(c: float) -> Callable[[FloatArray, FloatArray], tuple[FloatArray, FloatArray]]:
    """Constant cortical thickness and full trabecular fraction."""
    return lambda x, y: (np.full(np.shape(x), c, np.float32), np.ones(np.shape(x), np.float32))


def _rot(p: FloatArray, deg: float) -> FloatArray:
    a = np.radians(deg)
    r = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    return p @ r.T


def synthesize_negative(seed: int, kind: str, *, max_side: int | None = None) -> SynthRadiograph:
    """A non-knee-AP image (``knees == ()``) of ``kind``.

    Parameters
    ----------
    seed
        Non-negative int; same arguments give bit-identical output.
    kind
        "blank", "noise", "chest", "lateral_knee" or "lower_leg".
    max_side
        Longest side in pixels of the returned image (None = full size).
    """
    seed = _check_seed(seed)
    max_side = _check_max_side(max_side)
    if kind not in NEGATIVE_KINDS:
        raise ValueError(f"kind must be one of {NEGATIVE_KINDS}, got {kind!r}")
    rng = np.random.default_rng([seed, 21, NEGATIVE_KINDS.index(kind)])
    acq = sample_acquisition(rng)
    bits = int(rng.choice([10, 12, 12, 14, 15, 16]))
    mono1 = bool(rng.uniform() < 0.4)
    if kind == "chest":
        fov_w, fov_h = rng.uniform(350, 430), rng.uniform(350, 430)
    else:
        fov_w, fov_h = rng.uniform(180, 300), rng.uniform(260, 430)
    spacing = max(float(rng.uniform(0.1, 0.2)), max(fov_w, fov_h) / 3000.0)
    rows, cols = int(fov_h / spacing), int(fov_w / spacing)
    f = 1.0
    if max_side is not None and max(rows, cols) > max_side:
        f = max_side / max(rows, cols)
    out_rows, out_cols = max(int(round(rows * f)), 8), max(int(round(cols * f)), 8)
    sp = fov_h / out_rows
    scale = 1.0 / sp
    scene = Scene(shape=(out_rows, out_cols), spacing_mm=sp)
    cx, cy = fov_w / 2 + rng.uniform(-20, 20), fov_h / 2 + rng.uniform(-20, 20)
    rot = float(rng.uniform(-10, 10))

    def px(p: FloatArray) -> FloatArray:
        return (_rot(np.asarray(p, float), rot) + [cx, cy]) * scale

    def bone(knots: FloatArray, cap: float, cortex: float, closed: bool = True) -> Bone:
        c = spline(knots, closed=closed, samples=8)
        return Bone(px(c.points), cap, _const(cortex))

    u = rng.uniform
    if kind == "noise":
        n = rng.standard_normal((out_rows, out_cols)).astype(np.float32)
        p = np.clip(0.5 + 0.2 * n, 0, 1)
    else:
        if kind == "chest":
            _chest(scene, rng, px, bone, scale, cx, cy, rot)
        elif kind == "lateral_knee":
            _lateral_knee(scene, rng, bone, scale, (cx, cy), rot)
        elif kind == "lower_leg":
            _lower_leg(scene, rng, bone, scale, (cx, cy), rot)
        else:  # blank: an exposure with nothing in the beam, sometimes collimated
            if u() < 0.5:
                m = rng.uniform(10, 60, 4) * scale
                scene.collimator = np.array([[m[0], m[1]], [out_cols - m[2], m[1]],
                                             [out_cols - m[2], out_rows - m[3]],
                                             [m[0], out_rows - m[3]]])
        p = render(scene, np.random.default_rng([seed, 22, out_rows, out_cols]), acq)
    maxv = 2 ** bits - 1
    stored = np.rint(p * maxv).astype(np.int64)
    if mono1:
        stored = maxv - stored
    return SynthRadiograph(pixels=np.clip(stored, 0, maxv).astype(np.uint16), bits_stored=bits,
                           photometric="MONOCHROME1" if mono1 else "MONOCHROME2",
                           pixel_spacing_mm=(sp, sp), knees=(), phase="pre", seed=seed, marker="")


def _chest(scene: Scene, rng: np.random.Generator, px: Callable[[FloatArray], FloatArray],
           bone: Callable[..., Bone], scale: float, cx: float, cy: float, rot: float) -> None:
    u = rng.uniform
    half_w = u(140, 175)
    lung_w, lung_h = u(55, 75), u(110, 150)

    def soft(x: FloatArray, y: FloatArray) -> FloatArray:
        xm, ym = x / scale - cx, y / scale - cy
        # neck above, shoulders, thorax, abdomen below (water-equivalent mm)
        hw = np.interp(ym, [-260, -200, -170, 0, 260], [60, 70, half_w, half_w * 0.95,
                                                         half_w * 0.9])
        t = 2.0 * np.sqrt(np.maximum(1.0 - (xm / hw) ** 2, 0.0)) * 95.0
        lungs = np.zeros_like(t)
        for s in (-1.0, 1.0):
            lx, ly = xm - s * (lung_w + 18.0), ym + 15.0
            r = (lx / lung_w) ** 2 + (ly / lung_h) ** 2
            lungs += 140.0 * np.sqrt(np.maximum(1.0 - r, 0.0))
        heart = 70.0 * np.sqrt(np.maximum(1 - ((xm - 25) / 65.0) ** 2 - ((ym - 70) / 55.0) ** 2, 0))
        return np.maximum(t - lungs * 0.55 + heart, 0.0)

    scene.soft_tissue_mm = soft
    # spine: vertebral bodies stacked
    for i in range(-8, 9):
        y0 = i * 26.0 + u(-1, 1)
        k = np.array([[-17, y0 - 11], [17, y0 - 11], [19, y0 + 11], [-19, y0 + 11]], float)
        scene.bones.append(bone(k, 14.0, 1.2))
    # ribs: arcs from the spine outwards and down, both sides
    for i in range(10):
        y0 = -150.0 + i * 24.0
        for s in (-1.0, 1.0):
            t = np.linspace(0, 1, 7)
            xs = s * (20 + t * (half_w - 30))
            ys = y0 - 12 * np.sin(np.pi * t * 0.6) + 45 * t ** 2
            top = np.stack([xs, ys], -1)
            bot = np.stack([xs, ys + 9.0], -1)[::-1]
            scene.bones.append(bone(np.vstack([top, bot]), 4.0, 1.0))
    for s in (-1.0, 1.0):  # clavicles
        k = np.array([[s * 15, -175], [s * 80, -190], [s * 140, -180], [s * 140, -170],
                      [s * 80, -178], [s * 15, -163]], float)
        scene.bones.append(bone(k, 7.0, 1.5))
    del px, rot


def _lateral_knee(scene: Scene, rng: np.random.Generator, bone: Callable[..., Bone],
                  scale: float, centre: tuple[float, float], rot: float) -> None:
    cx_img, cy_img = centre
    u = rng.uniform
    r = u(26, 34)  # femoral condyle radius
    hs = u(13, 17)
    fem = [[-hs, -400], [-hs, -120], [-hs - 2, -60], [-r * 0.9, -15], [-r, 5], [-r * 0.6, r * 0.8],
           [0, r], [r * 0.6, r * 0.8], [r * 0.95, 0], [r * 0.7, -r * 0.7], [hs + 4, -60],
           [hs, -120], [hs, -400]]
    t0 = r + u(4, 7)
    tib = [[-hs, 400], [-hs, 150], [-r * 1.2, t0 + 30], [-r * 1.3, t0 + 8], [-r * 1.1, t0],
           [0, t0 + 2], [r * 1.1, t0 + 6], [r * 1.1, t0 + 25], [hs + 6, 120], [hs, 400]]
    tib = [[x, y] for x, y in tib]
    pat = [[-r * 1.6, -20], [-r * 1.3, -35], [-r * 1.05, -20], [-r * 1.1, 10], [-r * 1.4, 15]]
    fib = [[r * 0.6, t0 + 25], [r * 0.95, t0 + 20], [r * 1.05, t0 + 40], [r * 0.8, 400],
           [r * 0.6, 400]]
    scene.bones += [bone(np.array(fem, float), 30.0, 2.5), bone(np.array(tib, float), 28.0, 2.5),
                    bone(np.array(pat, float), 11.0, 1.2), bone(np.array(fib, float), 7.0, 1.5)]
    scene.soft_tissue_mm = _limb_mm(scale, cx_img, cy_img, rot, [-400, -100, 0, 400],
                                    [75.0, 62.0, 58.0, 50.0])


def _lower_leg(scene: Scene, rng: np.random.Generator, bone: Callable[..., Bone],
               scale: float, centre: tuple[float, float], rot: float) -> None:
    cx_img, cy_img = centre
    cx = cx_img
    u = rng.uniform
    ht = u(11, 15)
    ank = u(55, 70)
    y_ank = u(60, 120)
    tib = [[-ht, -400], [-ht, 0], [-ht - 10, y_ank - 25], [-ht - 12, y_ank + 8],
           [-ht - 6, y_ank + 12], [-ht + 4, y_ank - 2], [ht + 6, y_ank], [ht + 8, y_ank - 30],
           [ht, 0], [ht, -400]]
    fib = [[ht + 4, -400], [ht + 8, y_ank - 40], [ht + 10, y_ank + 25], [ht + 20, y_ank + 20],
           [ht + 19, y_ank - 40], [ht + 14, -400]]
    tal = [[-ht + 2, y_ank + 6], [0, y_ank + 1], [ht + 10, y_ank + 4], [ht + 12, y_ank + 30],
           [0, y_ank + 40], [-ht - 2, y_ank + 30]]
    scene.bones += [bone(np.array(tib, float), 12.0, 4.0), bone(np.array(fib, float), 6.0, 2.0),
                    bone(np.array(tal, float), 20.0, 1.2)]
    del cx
    scene.soft_tissue_mm = _limb_mm(scale, cx_img, cy_img, rot, [-400, 0, y_ank, 400],
                                    [ank * 0.75, ank * 0.6, ank * 0.45, ank * 0.5])


def _limb_mm(scale: float, cx: float, cy: float, rot: float, ys: list[float], half: list[float]
             ) -> Callable[[FloatArray, FloatArray], FloatArray]:
    """Soft tissue of a limb (mm) whose axis passes through (cx, cy) mm, turned by ``rot``."""
    a = np.radians(rot)

    def f(x: FloatArray, y: FloatArray) -> FloatArray:
        dx, dy = x / scale - cx, y / scale - cy
        u = np.cos(a) * dx + np.sin(a) * dy
        v = -np.sin(a) * dx + np.cos(a) * dy
        h = np.interp(v, ys, half)
        return 2.0 * np.sqrt(np.maximum(h * h - u * u, 0.0))

    return f
