"""Pixels of a planned full-leg study: the stitched long image, and the fast per-joint crops.

Both use the knee generator's X-ray physics and noise (:func:`training.synth.render.render`:
projected bone thickness with cortex and trabecular texture, soft tissue, heel effect,
blur, exposure recognition, equalisation, tone curve, quantum and electronic noise).

* :func:`render_full` renders each detector exposure of the plan as its own image (its own
  exposure recognition and processing, so the exposures differ in brightness like separately
  processed plates), shifted by its mis-registration, and joins them at the seams (a hard cut
  or a short linear blend, sometimes a faint seam line).
* :func:`render_joint_crop` renders only a square region round one joint of one leg, at the
  resolution training needs, straight from the plan: nothing else of the long image is made.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
from PIL import Image

from inference.leg import landmarks as leg
from training.synth.render import Bone, Scene, render
from training.synth_leg.study import FullLegStudy, PlacedLeg

FloatArray = npt.NDArray[np.float64]
Joint = Literal["hip", "knee", "ankle"]
JOINTS: tuple[Joint, ...] = ("hip", "knee", "ankle")
#: Side of the square region of each joint, patient mm (about the papers' ROIs).
ROI_MM: dict[str, float] = {"hip": 170.0, "knee": 170.0, "ankle": 150.0}
#: Centre landmark of each joint's region.
ROI_CENTRE: dict[str, str] = {"hip": "femoral_head_centre", "knee": "knee_centre",
                              "ankle": "ankle_centre"}
#: AP radius cap (mm) of each bone's projected thickness, at a condylar width of 80 mm.
BONE_DEPTH_MM = {"femur": 32.0, "tibia": 29.0, "fibula": 8.0, "patella": 10.0, "talus": 22.0,
                 "calcaneus": 26.0, "ilium": 9.0, "pubis_ischium": 11.0, "sacrum": 24.0}
RENDER_STREAM = 0x1E7
CROP_STREAM = 0x1E8


def _smoothstep(x: FloatArray) -> FloatArray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


# A mapping of region pixel coordinates to patient mm: (x, y) -> (X, Y)
ToPatient = Callable[[FloatArray, FloatArray], tuple[FloatArray, FloatArray]]


def _bone_profile(pl: PlacedLeg, bone: str, to_patient: ToPatient
                  ) -> Callable[[FloatArray, FloatArray], tuple[FloatArray, FloatArray]]:
    """Cortical thickness (mm) and trabecular fraction of a leg bone at region pixels."""
    p = pl.params
    sh = p.shape
    W = p.width_mm
    if bone not in ("femur", "tibia"):
        c0 = {"fibula": 1.6, "patella": 0.9, "talus": 0.8, "calcaneus": 0.8}[bone]

        def const(x: FloatArray, y: FloatArray) -> tuple[FloatArray, FloatArray]:
            return np.full((1, 1), c0, np.float32), np.ones((1, 1), np.float32)

        return const
    origin, axis = pl.anatomy.axes[bone]
    knee = pl.anatomy.landmarks[leg.KNEE_CENTRE]
    cortex, canal = sh["cortex_mm"], sh["canal"]
    if bone == "femur":
        s_lo = float(np.dot(origin - knee, axis))  # diaphysis distal end, from the knee
        s_hi = float(np.dot(pl.anatomy.landmarks[leg.idx("femoral_diaphysis_outline_0")] - knee,
                            axis))
    else:
        s_lo, s_hi = 0.9 * W, p.tibia_mm - 0.9 * W

    def exact(x: FloatArray, y: FloatArray) -> FloatArray:
        X, Y = to_patient(x, y)
        u, v = pl.to_leg(X, Y)
        s = (u - knee[0]) * axis[0] + (v - knee[1]) * axis[1]
        return _smoothstep((s - (s_lo - 0.6 * W)) / (0.6 * W)) * _smoothstep(
            ((s_hi + 0.5 * W) - s) / (0.5 * W))

    def f(x: FloatArray, y: FloatArray) -> tuple[FloatArray, FloatArray]:
        inner = _coarse(exact, x, y)
        c = 1.0 + (cortex - 1.0) * inner
        trab = 1.0 - (1.0 - canal) * inner
        return c.astype(np.float32), trab.astype(np.float32)

    return f


def _coarse(fn: Callable[[FloatArray, FloatArray], FloatArray], x: FloatArray, y: FloatArray,
            step: int = 4) -> FloatArray:
    """``fn(x, y)`` of a smooth field on a regular grid, evaluated on every ``step``-th pixel.

    ``x`` and ``y`` are a regular grid, either full 2-D arrays or broadcasting ``(1, W)`` and
    ``(H, 1)``; the result has the broadcast shape, bilinearly interpolated.
    """
    xb, yb = np.broadcast_arrays(x, y)
    rows, cols = xb.shape
    if rows < 4 * step or cols < 4 * step:
        return np.asarray(fn(xb, yb), dtype=np.float32)
    sub = np.asarray(fn(xb[::step, ::step], yb[::step, ::step]), dtype=np.float32)
    # sample k sits at pixel k * step: output pixel j reads source position j / step
    o = 0.5 - 0.5 / step
    n_r, n_c = sub.shape
    w = min(cols, int(np.floor((n_c - o) * step)))
    h = min(rows, int(np.floor((n_r - o) * step)))
    big = Image.fromarray(np.ascontiguousarray(sub), mode="F").resize(
        (w, h), Image.Resampling.BILINEAR, box=(o, o, o + w / step, o + h / step))
    out = np.asarray(big, dtype=np.float32)
    return np.pad(out, ((0, rows - h), (0, cols - w)), mode="edge")


def _leg_soft(pl: PlacedLeg, to_patient: ToPatient) -> Callable[[FloatArray, FloatArray],
                                                                FloatArray]:
    """Water-equivalent soft-tissue thickness (mm) of one leg, thigh to foot."""
    p = pl.params
    sh = p.shape
    a = pl.anatomy
    knee = a.landmarks[leg.KNEE_CENTRE]
    Lf, Lt = p.femur_mm, p.tibia_mm
    t_axis = a.axes["tibia"][1]
    thigh, calf, fat = 80.0 * sh["thigh"], 55.0 * sh["calf"], sh["fat_mm"]
    knee_hw = 0.62 * p.width_mm + 0.3 * fat
    vs = np.array([-Lf - 80.0, -Lf, -0.55 * Lf, -90.0, 0.0, 0.3 * Lt, 0.7 * Lt, Lt - 40.0,
                   Lt + 20.0, Lt + 90.0])
    hw = np.array([thigh * 1.05, thigh, 0.86 * thigh, knee_hw * 1.05, knee_hw, calf, 0.72 * calf,
                   0.42 * p.width_mm + 8.0, 0.5 * p.width_mm + 8.0, 0.45 * p.width_mm])
    tanf = np.tan(np.radians(p.fva))
    depth = 0.95

    def f(x: FloatArray, y: FloatArray) -> FloatArray:
        X, Y = to_patient(x, y)
        u, v = pl.to_leg(X, Y)
        du, dv = u - knee[0], v - knee[1]
        # below the knee, distance along and across the tibial axis
        vt = du * t_axis[0] + dv * t_axis[1]
        ut = du * t_axis[1] - dv * t_axis[0]
        below = dv > 0
        along = np.where(below, vt, dv)
        across = np.where(below, ut, du + 0.7 * tanf * dv + 0.12 * thigh * (dv < -90.0))
        h = np.interp(along, vs, hw)
        outer = 2.0 * np.sqrt(np.maximum(h * h - across * across, 0.0))
        hi = np.maximum(h - fat, 1.0)
        inner = 2.0 * np.sqrt(np.maximum(hi * hi - across * across, 0.0))
        return depth * (0.8 * (outer - inner) + inner)

    return f


@dataclass(frozen=True)
class Region:
    """A rectangle of the true-px plane rendered at its own resolution.

    Region pixel ``(x, y)`` shows true px ``(x0 + x / zoom - dx, y0 + y / zoom - dy)``,
    where ``(dx, dy)`` is the exposure's mis-registration shift.
    """

    x0: float
    y0: float
    zoom: float
    shape: tuple[int, int]
    shift: tuple[float, float]

    def true_to_region(self, p: FloatArray) -> FloatArray:
        """True px -> region px."""
        q = np.asarray(p, dtype=np.float64) + np.asarray(self.shift)
        return (q - np.array([self.x0, self.y0])) * self.zoom


def _scene(study: FullLegStudy, region: Region, ankle_fade: bool) -> Scene:
    """The scene of ``region``: bones, metal, soft tissue, calibration object."""
    scale = study.scale
    mm_per_region_px = 1.0 / (scale * region.zoom)
    scene = Scene(shape=region.shape, spacing_mm=mm_per_region_px)
    rows, cols = region.shape

    def to_patient(x: FloatArray, y: FloatArray) -> tuple[FloatArray, FloatArray]:
        tx = region.x0 + x / region.zoom - region.shift[0]
        ty = region.y0 + y / region.zoom - region.shift[1]
        return tx / scale + study.origin_mm[0], ty / scale + study.origin_mm[1]

    def to_region_mm(p_mm: FloatArray) -> FloatArray:
        return region.true_to_region(study.to_px(p_mm))

    def visible(poly: FloatArray) -> bool:
        lo, hi = poly.min(axis=0), poly.max(axis=0)
        return bool(hi[0] > -2 and hi[1] > -2 and lo[0] < cols + 2 and lo[1] < rows + 2)

    def const(c: float) -> Callable[[FloatArray, FloatArray], tuple[FloatArray, FloatArray]]:
        def f(x: FloatArray, y: FloatArray) -> tuple[FloatArray, FloatArray]:
            return np.full((1, 1), c, np.float32), np.ones((1, 1), np.float32)
        return f

    for name, poly_mm in study.pelvis:
        poly = to_region_mm(poly_mm)
        if visible(poly):
            scene.bones.append(Bone(poly, BONE_DEPTH_MM[name], const(1.2), mu_trab=0.011,
                                    mu_cortex=0.04, texture=0.15))
    for pl in study.legs:
        sh = pl.params.shape
        k = pl.params.width_mm / 80.0
        for name, poly_leg in pl.anatomy.bones.items():
            poly = to_region_mm(pl.to_patient(poly_leg))
            if not visible(poly):
                continue
            dens = sh["density"] * (0.85 if name in ("talus", "calcaneus") else 1.0)
            scene.bones.append(Bone(
                poly, BONE_DEPTH_MM[name] * k, _bone_profile(pl, name, to_patient),
                mu_trab=0.012 * dens * (0.5 if name == "patella" else 1.0),
                mu_cortex=0.045 * dens * (0.22 if name == "patella" else 1.0),
                texture=sh["texture"]))
    for _name, poly_mm, level in study.hardware:
        poly = to_region_mm(poly_mm)
        if visible(poly):
            scene.metal.append((poly, level))
    cal = study.calibration
    if cal.get("kind") == "ball":
        c = region.true_to_region(np.asarray(cal["centre_px"], dtype=np.float64)[None])[0]
        r = 0.5 * float(cal["diameter_px"]) * region.zoom  # type: ignore[arg-type]
        th = np.linspace(0, 2 * np.pi, 64, endpoint=False)
        ball = np.stack([c[0] + r * np.cos(th), c[1] + r * np.sin(th)], -1)
        if visible(ball):
            scene.metal.append((ball, 1.25))
    elif cal.get("kind") == "ruler":
        # a radiolucent strip with lead ticks every tick_mm at the detector: one comb polygon
        x = (float(cal["x_px"]) - region.x0) * region.zoom  # type: ignore[arg-type]
        tick = float(cal["tick_px"]) * region.zoom  # type: ignore[arg-type]
        y_first = (np.ceil(region.y0 / float(cal["tick_px"])) * float(cal["tick_px"])  # type: ignore[arg-type]
                   - region.y0) * region.zoom
        ys = np.arange(y_first, rows + tick, tick)
        if len(ys) and -40 < x < cols + 40:
            wspine, th_ = max(1.2 * region.zoom / study.pixel_spacing_mm * 0.1, 1.0), 0.1 * tick
            comb: list[tuple[float, float]] = [(x, -2.0)]
            for i, yy in enumerate(ys):
                length = 0.8 * tick if i % 5 == 0 else 0.45 * tick
                comb += [(x, yy), (x + length, yy), (x + length, yy + th_), (x, yy + th_)]
            comb += [(x, rows + 2.0), (x - wspine, rows + 2.0), (x - wspine, -2.0)]
            scene.metal.append((np.asarray(comb), 1.1))
    legs_soft = [_leg_soft(pl, to_patient) for pl in study.legs]
    hips_y = float(np.mean([pl.hip_mm[1] for pl in study.legs]))
    mid_x = float(np.mean([pl.hip_mm[0] for pl in study.legs]))
    torso = study.torso
    ankles_y = [float(pl.to_patient(pl.anatomy.landmarks)[leg.ANKLE_CENTRE][1])
                for pl in study.legs]

    def soft_exact(x: FloatArray, y: FloatArray) -> FloatArray:
        total = legs_soft[0](x, y) + legs_soft[1](x, y)
        X, Y = to_patient(x, y)
        hw = torso["half_width"]
        d = X - mid_x
        body = torso["depth"] * np.sqrt(np.maximum(1.0 - (d / hw) ** 2, 0.0))
        # the buttocks reach lower at the sides than the perineum in the middle
        bottom = hips_y + 120.0 - 95.0 * np.exp(-((d / 75.0) ** 2))
        fade = _smoothstep((bottom - Y) / torso["fade_mm"])
        return np.maximum(total, body * fade)

    def soft(x: FloatArray, y: FloatArray) -> FloatArray:
        return _coarse(soft_exact, x, y)  # smooth: every 4th pixel, interpolated

    scene.soft_tissue_mm = soft
    if ankle_fade and study.low_contrast_ankles > 0:
        k_ = study.low_contrast_ankles
        ay = float(np.mean(ankles_y))

        def over(x: FloatArray, y: FloatArray) -> FloatArray:
            _, Y = to_patient(x, y)
            return (-k_ * _smoothstep((Y - (ay - 140.0)) / 90.0)).astype(np.float32)

        scene.extra_log_attenuation = over
    return scene


@dataclass(frozen=True)
class LegTruth:
    """Ground truth of one leg of a rendered full-leg image.

    Attributes
    ----------
    side
        "R" or "L" (patient side).
    phase
        "pre", or "post" when the leg has a knee replacement.
    landmarks
        ``(50, 2)`` stored-image px (x = column, y = row), scheme order.
    in_image
        ``(50,)`` whether each landmark lies inside the stored image.
    measurements
        :func:`inference.leg.geometry.measure_leg` of ``landmarks`` with MAD in patient mm.
    built_in
        The values the leg was built with (same keys).
    cpak_class
        CPAK class 1-9 of ``measurements``.
    hip_stem
        The leg has a hip replacement.
    """

    side: str
    phase: str
    landmarks: FloatArray
    in_image: npt.NDArray[np.bool_]
    measurements: dict[str, float]
    built_in: dict[str, float]
    cpak_class: int
    hip_stem: bool


def leg_truths(study: FullLegStudy) -> tuple[LegTruth, ...]:
    """The truth of both legs (image order: right leg first, on the image left)."""
    from inference.leg.geometry import cpak_class

    rows, cols = study.shape
    out = []
    for i, pl in enumerate(study.legs):
        pts = study.leg_stored_px(i)
        inside = (pts[:, 0] >= 0) & (pts[:, 0] < cols) & (pts[:, 1] >= 0) & (pts[:, 1] < rows)
        m = study.leg_measurements(i)
        out.append(LegTruth(side=pl.side, phase="post" if pl.params.post_op else "pre",
                            landmarks=pts, in_image=inside, measurements=m,
                            built_in=dict(pl.anatomy.built_in),
                            cpak_class=cpak_class(m["aHKA_deg"], m["JLO_deg"]),
                            hip_stem=pl.params.hip_stem))
    return tuple(out)


@dataclass(frozen=True)
class FullLegRadiograph:
    """A stitched full-leg radiograph as a modality would store it, with its truth.

    ``pixel_spacing_mm`` is the detector spacing (what the header says); the anatomy is
    magnified by ``magnification`` on the detector, which the spacing does not know about.
    """

    pixels: npt.NDArray[np.uint16]
    bits_stored: int
    photometric: str
    pixel_spacing_mm: tuple[float, float]
    magnification: float
    legs: tuple[LegTruth, ...]
    seed: int
    study: FullLegStudy


def _to_stored(p: npt.NDArray[np.float32], study: FullLegStudy) -> npt.NDArray[np.uint16]:
    maxv = 2 ** study.bits_stored - 1
    top = int(np.floor(maxv * study.top_fraction))
    stored = np.rint(p * top).astype(np.int64)
    if study.photometric == "MONOCHROME1":
        stored = top - stored
    return np.clip(stored, 0, maxv).astype(np.uint16)


def render_full(study: FullLegStudy) -> FullLegRadiograph:
    """Render the stitched image of ``study`` at its full stored size."""
    rows, cols = study.shape
    out = np.zeros((rows, cols), np.float32)
    margin = study.overlap_px // 2 + study.blend_px + 2
    prev: npt.NDArray[np.float32] | None = None
    prev_r1 = 0
    for k, e in enumerate(study.exposures):
        a0, a1 = max(e.row0 - margin, 0), min(e.row1 + margin, rows)
        region = Region(0.0, float(a0), 1.0, (a1 - a0, cols), (float(e.shift_px[0]),
                                                              float(e.shift_px[1])))
        rng = np.random.default_rng([study.seed, RENDER_STREAM, k])
        img = render(_scene(study, region, ankle_fade=True), rng, e.acquisition)
        img[: max(e.row0 - a0, 0) + 3] *= np.float32(e.seam_line) if k > 0 else 1.0
        out[e.row0:e.row1] = img[e.row0 - a0:e.row1 - a0]
        if prev is not None and study.blend_px > 0:
            b = study.blend_px
            r0, r1 = max(e.row0 - b, 0), min(e.row0 + b, rows)
            w = np.linspace(0.0, 1.0, r1 - r0, dtype=np.float32)[:, None]
            mine = img[r0 - a0:r1 - a0]
            theirs = prev[r0 - prev_r1:r1 - prev_r1]
            out[r0:r1] = (1 - w) * theirs + w * mine
        prev, prev_r1 = img, a0
    return FullLegRadiograph(
        pixels=_to_stored(out, study), bits_stored=study.bits_stored,
        photometric=study.photometric,
        pixel_spacing_mm=(study.pixel_spacing_mm, study.pixel_spacing_mm),
        magnification=study.magnification, legs=leg_truths(study), seed=study.seed,
        study=study)


@dataclass(frozen=True)
class JointCrop:
    """A square training crop round one joint of one leg.

    Attributes
    ----------
    image
        ``(size, size)`` float32 in [0, 1], bone bright (display orientation).
    landmarks
        ``(50, 2)`` the leg's landmarks in crop px (most lie outside the crop).
    side, joint
        Which leg ("R"/"L") and joint ("hip"/"knee"/"ankle").
    box
        ``(x0, y0, side)`` of the crop in stored-image px.
    mm_per_px
        Patient mm per crop pixel.
    """

    image: npt.NDArray[np.float32]
    landmarks: FloatArray
    side: str
    joint: str
    box: tuple[float, float, float]
    mm_per_px: float


def render_joint_crop(study: FullLegStudy, side: str, joint: str, size: int = 512,
                      jitter_mm: float = 0.0) -> JointCrop:
    """Render only the region round ``joint`` of the ``side`` leg (no long image is made).

    Parameters
    ----------
    study
        The plan of a seed (:func:`training.synth_leg.study.plan_study`).
    side
        "R" or "L".
    joint
        "hip", "knee" or "ankle"; the region of :data:`ROI_MM` is centred on its landmark.
    size
        Output side in pixels (64..2048).
    jitter_mm
        Random shift of the region centre (uniform in +-jitter_mm on each axis, seeded).

    Where the region runs past the stored image's edges the crop is 0, as a crop of the
    stored image padded with zeros would be.
    """
    if side not in ("R", "L"):
        raise ValueError(f"side must be 'R' or 'L', got {side!r}")
    if joint not in JOINTS:
        raise ValueError(f"joint must be one of {JOINTS}, got {joint!r}")
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or not 64 <= size <= 2048:
        raise ValueError(f"size must be an int in 64..2048, got {size!r}")
    if not (np.isfinite(jitter_mm) and jitter_mm >= 0):
        raise ValueError(f"jitter_mm must be finite and >= 0, got {jitter_mm!r}")
    i = 0 if study.legs[0].side == side else 1
    stored = study.leg_stored_px(i)
    centre = stored[leg.idx(ROI_CENTRE[joint])].copy()
    rng = np.random.default_rng([study.seed, CROP_STREAM, i, JOINTS.index(joint)])
    if jitter_mm > 0:
        centre += rng.uniform(-jitter_mm, jitter_mm, 2) * study.scale
    e = study.exposures[study.exposure_of_row(float(centre[1]))]
    side_px = ROI_MM[joint] * study.scale
    x0, y0 = float(centre[0] - 0.5 * side_px), float(centre[1] - 0.5 * side_px)
    zoom = size / side_px
    region = Region(x0, y0, zoom, (size, size), (float(e.shift_px[0]), float(e.shift_px[1])))
    img = render(_scene(study, region, ankle_fade=True), rng, e.acquisition)
    # beyond the stored image's edges a crop of it holds no signal (padding, 0)
    rows, cols = study.shape
    sx = x0 + (np.arange(size) + 0.5) / zoom - 0.5
    sy = y0 + (np.arange(size) + 0.5) / zoom - 0.5
    outside = ((sy < -0.5) | (sy > rows - 0.5))[:, None] | ((sx < -0.5) | (sx > cols - 0.5))[None]
    if outside.any():
        img = np.where(outside, np.float32(0.0), img).astype(np.float32)
    true = study.leg_true_px(i)
    return JointCrop(image=img, landmarks=region.true_to_region(true), side=side, joint=joint,
                     box=(x0, y0, float(side_px)), mm_per_px=ROI_MM[joint] / size)
