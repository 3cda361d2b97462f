"""The knee AP generator: anatomy + acquisition + rendering -> SynthRadiograph."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from inference.alignment import atfa_all
from training.synth.anatomy import KneeAnatomy, build_knee, sample_params
from training.synth.render import Bone, Scene, render
from training.synth.types import KneeTruth, SynthRadiograph

FloatArray = npt.NDArray[np.float64]
MAX_SIDE = 3000
#: Depth (AP radius cap, mm at a 75 mm plateau) of each bone's projected thickness.
BONE_DEPTH_MM = {"femur": 32.0, "tibia": 29.0, "fibula": 8.0, "patella": 10.0, "trochlea": 9.0}
SPACINGS = (0.1, 0.1, 0.125, 0.139, 0.143, 0.148, 0.15, 0.16, 0.168, 0.175, 0.2)


@dataclass(frozen=True)
class Placement:
    """Anatomical frame (mm, left knee) -> image mm: ``centre + R(rot) @ diag(mirror, 1) @ p``."""

    centre: FloatArray
    rotation_deg: float
    mirror: bool

    def matrix(self) -> FloatArray:
        a = np.radians(self.rotation_deg)
        r = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
        return r @ np.diag([-1.0 if self.mirror else 1.0, 1.0])

    def forward(self, p: FloatArray) -> FloatArray:
        return p @ self.matrix().T + self.centre

    def inverse_xy(self, x: FloatArray, y: FloatArray) -> tuple[FloatArray, FloatArray]:
        mi = np.linalg.inv(self.matrix())
        dx, dy = x - self.centre[0], y - self.centre[1]
        return mi[0, 0] * dx + mi[0, 1] * dy, mi[1, 0] * dx + mi[1, 1] * dy


def _check_seed(seed: int) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    return int(seed)


def _check_max_side(max_side: int | None) -> int | None:
    if max_side is None:
        return None
    if isinstance(max_side, bool) or not isinstance(max_side, (int, np.integer)):
        raise TypeError(f"max_side must be an int or None, got {type(max_side).__name__}")
    if max_side < 64:
        raise ValueError(f"max_side must be >= 64, got {max_side}")
    return int(max_side)


def sample_acquisition(rng: np.random.Generator) -> dict[str, float]:
    """Exposure, processing and noise settings of one acquisition."""
    u = rng.uniform
    return {
        "mu_soft": u(0.017, 0.023),
        "bone_gain": u(0.8, 1.25),
        "heel": u(-0.35, 0.35),
        "heel_axis": float(u() < 0.8),
        "vignette": u(0.0, 0.4),
        "penumbra_mm": u(0.8, 3.0),
        "blur_mm": u(0.12, 0.35),
        "soft_level": u(0.22, 0.45),
        "bone_level": u(0.78, 0.95),
        "bone_pct": u(96.0, 99.5),
        "eq_mm": u(12.0, 40.0),
        "eq_gain": u(0.2, 0.7),
        "usm_mm": u(0.8, 2.5),
        "usm_gain": u(0.0, 0.8),
        "gamma": u(0.8, 1.25),
        "photons_per_mm2": float(np.exp(u(np.log(5e4), np.log(5e5)))),
        "noise_gain": u(0.7, 1.3),
        "detector_noise": u(0.002, 0.012),
    }


def _smoothstep(x: FloatArray) -> FloatArray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def _limb(rng: np.random.Generator, w: float) -> dict[str, float]:
    u = rng.uniform
    return {"thigh": u(1.0, 1.45) * w, "knee": u(0.72, 0.9) * w, "calf": u(0.78, 1.05) * w,
            "ankle": u(0.5, 0.65) * w, "thigh_x": u(-0.25, 0.0) * w, "calf_x": u(-0.12, 0.05) * w,
            "fat": u(4.0, 18.0), "depth": u(0.9, 1.15)}


def _limb_thickness(limb: dict[str, float], w: float,
                    to_knee: Callable[[FloatArray, FloatArray], tuple[FloatArray, FloatArray]]
                    ) -> Callable[[FloatArray, FloatArray], FloatArray]:
    """Water-equivalent soft-tissue thickness (mm) of one leg at output-pixel coordinates."""
    ys = np.array([-6.0, -2.4, -1.0, -0.3, 0.1, 0.8, 1.4, 3.0, 6.0]) * w
    hw = np.array([limb["thigh"] * 1.1, limb["thigh"], 0.5 * (limb["thigh"] + limb["knee"]),
                   limb["knee"], limb["knee"] * 0.98, limb["calf"], limb["calf"],
                   limb["ankle"] * 1.3, limb["ankle"]])
    xc = np.array([limb["thigh_x"] * 1.2, limb["thigh_x"], 0.5 * limb["thigh_x"], 0.0, 0.0,
                   limb["calf_x"], limb["calf_x"], 0.0, 0.0])

    def f(x: FloatArray, y: FloatArray) -> FloatArray:
        u, v = to_knee(x, y)
        h = np.interp(v, ys, hw)
        d = u - np.interp(v, ys, xc)
        outer = 2.0 * np.sqrt(np.maximum(h * h - d * d, 0.0))
        hi = np.maximum(h - limb["fat"], 1.0)
        inner = 2.0 * np.sqrt(np.maximum(hi * hi - d * d, 0.0))
        return limb["depth"] * (0.8 * (outer - inner) + inner)

    return f


def _profile_fn(anat: KneeAnatomy, bone: str,
                to_knee: Callable[[FloatArray, FloatArray], tuple[FloatArray, FloatArray]]
                ) -> Callable[[FloatArray, FloatArray], tuple[FloatArray, FloatArray]]:
    """Cortical thickness (mm) and trabecular fraction of ``bone`` at output pixels.

    The cortex is thick in the shaft and thin near the joint (plus subchondral
    sclerosis when the joint space is narrow); the shaft's medullary canal holds
    little trabecular bone.
    """
    p = anat.params
    w = p.width_mm
    shaft, end = p.bone["cortex_shaft"], p.bone["cortex_end"]
    scl = p.bone["sclerosis"]
    canal = p.bone["canal"]
    origin, direction = anat.axes[bone]
    if bone in ("fibula", "patella", "trochlea"):
        c0 = {"fibula": 0.3 * shaft + 0.5, "patella": 0.9 * end, "trochlea": 0.3}[bone]

        def const(x: FloatArray, y: FloatArray) -> tuple[FloatArray, FloatArray]:
            return np.full((1, 1), c0, np.float32), np.ones((1, 1), np.float32)

        return const
    sgn = -1.0 if bone == "femur" else 1.0  # distance away from the joint along the shaft

    def f(x: FloatArray, y: FloatArray) -> tuple[FloatArray, FloatArray]:
        u, v = to_knee(x, y)
        s = sgn * ((u - origin[0]) * direction[0] + (v - origin[1]) * direction[1])
        g = _smoothstep((s - 0.45 * w) / (0.75 * w))
        c = end + (shaft - end) * g
        c = c + scl * 2.5 * (1.0 - _smoothstep(s / (0.12 * w)))
        trab = 1.0 - (1.0 - canal) * _smoothstep((s - 0.55 * w) / (0.7 * w))
        return c.astype(np.float32), trab.astype(np.float32)

    return f


def synthesize(seed: int, *, phase: str | None = None, laterality: str | None = None,
               both_knees: bool | None = None, max_side: int | None = None) -> SynthRadiograph:
    """One synthetic AP knee radiograph with exact ground truth.

    Parameters
    ----------
    seed
        Non-negative int; the same arguments give bit-identical output.
    phase
        "pre", "post" or None (sampled).
    laterality
        "L", "R" or None (sampled).  Must be None when ``both_knees`` is True.
    both_knees
        Whether both knees are in the image; None = sampled (about 1 in 7).
    max_side
        Render directly so that no side exceeds ``max_side`` pixels (landmarks and
        pixel spacing scaled to match); None = full size (up to 3000 px a side).
    """
    seed = _check_seed(seed)
    max_side = _check_max_side(max_side)
    if phase not in (None, "pre", "post"):
        raise ValueError(f"phase must be 'pre', 'post' or None, got {phase!r}")
    if laterality not in (None, "L", "R"):
        raise ValueError(f"laterality must be 'L', 'R' or None, got {laterality!r}")
    if both_knees is not None and not isinstance(both_knees, (bool, np.bool_)):
        raise TypeError(f"both_knees must be a bool or None, got {type(both_knees).__name__}")
    if both_knees and laterality is not None:
        raise ValueError(f"laterality must be None when both_knees is True, got {laterality!r}")
    rng = np.random.default_rng([seed, 11])
    s_phase = "post" if rng.uniform() < 0.4 else "pre"
    s_lat = "L" if rng.uniform() < 0.5 else "R"
    s_both = bool(rng.uniform() < 0.14)
    img_phase = phase or s_phase
    both = s_both if both_knees is None else bool(both_knees)
    if laterality is not None and both_knees is None:
        both = False
    lats = ("R", "L") if both else (laterality or s_lat,)
    phases: list[str] = []
    for i, _ in enumerate(lats):
        other = rng.uniform() < 0.5
        phases.append(img_phase if (i == 0 or img_phase == "pre" or other) else "pre")
    if both and img_phase == "post" and "post" not in phases:
        phases[0] = "post"
    anats = [build_knee(sample_params(rng, ph == "post")) for ph in phases]
    limbs = [_limb(rng, a.params.width_mm) for a in anats]
    acq = sample_acquisition(rng)
    # --- placement in image mm
    rot0 = float(rng.normal(0, 5.0)) if rng.uniform() < 0.7 else float(rng.uniform(-15, 15))
    rot0 = float(np.clip(rot0, -15.0, 15.0))
    sep = float(rng.uniform(1.9, 2.6)) * float(np.mean([a.params.width_mm for a in anats]))
    places = []
    for i, lat in enumerate(lats):
        rot = rot0 + (float(rng.uniform(-4, 4)) if both else 0.0)
        rot = float(np.clip(rot, -15.0, 15.0))
        cx = 0.0 if not both else (-0.5 * sep if i == 0 else 0.5 * sep)
        places.append(Placement(np.array([cx, 0.0]), rot, mirror=(lat == "R")))
    pts_mm = [pl.forward(a.landmarks) for pl, a in zip(places, anats, strict=True)]
    allp = np.vstack(pts_mm)
    lo, hi = allp.min(axis=0), allp.max(axis=0)
    margins = rng.uniform(12.0, 60.0, size=4)  # left, top, right, bottom
    min_w = 170.0 if not both else 330.0
    fov_w = max(hi[0] - lo[0] + margins[0] + margins[2], min_w)
    fov_h = max(hi[1] - lo[1] + margins[1] + margins[3], 240.0)
    extra_w = fov_w - (hi[0] - lo[0] + margins[0] + margins[2])
    origin = np.array([lo[0] - margins[0] - extra_w * float(rng.uniform()), lo[1] - margins[1]])
    spacing = float(rng.choice(SPACINGS)) if rng.uniform() < 0.6 else float(rng.uniform(0.1, 0.2))
    spacing = max(spacing, max(fov_w, fov_h) / MAX_SIDE)
    rows, cols = int(np.ceil(fov_h / spacing)), int(np.ceil(fov_w / spacing))
    # collimation: an open field round the knee(s), visible in some images
    coll_px: FloatArray | None = None
    if rng.uniform() < 0.6:
        inner_lo = (lo - origin) / spacing - rng.uniform(6.0, 25.0, 2) / spacing
        inner_hi = (hi - origin) / spacing + rng.uniform(6.0, 25.0, 2) / spacing
        c_lo = np.maximum(inner_lo, [-5.0, -5.0])
        c_hi = np.minimum(inner_hi, [cols + 5.0, rows + 5.0])
        c_lo = np.where(rng.uniform(size=2) < 0.5, c_lo, -5.0)
        c_hi = np.where(rng.uniform(size=2) < 0.5, c_hi, [cols + 5.0, rows + 5.0])
        coll_px = np.array([[c_lo[0], c_lo[1]], [c_hi[0], c_lo[1]], [c_hi[0], c_hi[1]],
                            [c_lo[0], c_hi[1]]])
    coll_black = bool(rng.uniform() < 0.25)
    has_marker = bool(rng.uniform() < 0.8)
    marker_h_mm = float(rng.uniform(9.0, 16.0))
    marker_corner = int(rng.integers(0, 4))
    bits = int(rng.choice([10, 12, 12, 12, 14, 14, 15, 16]))
    top_frac = float(rng.uniform(0.8, 1.0)) if rng.uniform() < 0.5 else 1.0
    mono1 = bool(rng.uniform() < 0.4)
    # --- output scale
    f = 1.0
    if max_side is not None and max(rows, cols) > max_side:
        f = max_side / max(rows, cols)
    out_rows, out_cols = max(int(round(rows * f)), 8), max(int(round(cols * f)), 8)
    sp = spacing * rows / out_rows  # keep the mm extent
    sp = 0.5 * (sp + spacing * cols / out_cols)
    scale = 1.0 / sp  # image mm -> output px

    def to_px(p: FloatArray) -> FloatArray:
        return (p - origin) * scale

    scene = Scene(shape=(out_rows, out_cols), spacing_mm=sp)
    soft_fns = []
    for pl, a, limb in zip(places, anats, limbs, strict=True):
        def to_knee(x: FloatArray, y: FloatArray,
                    pl: Placement = pl) -> tuple[FloatArray, FloatArray]:
            return pl.inverse_xy(x / scale + origin[0], y / scale + origin[1])
        soft_fns.append(_limb_thickness(limb, a.params.width_mm, to_knee))
        dens = a.params.bone["density"]
        for name in ("fibula", "tibia", "femur", "trochlea", "patella"):
            poly = to_px(pl.forward(a.bones[name]))
            cap = BONE_DEPTH_MM[name] * a.params.width_mm / 75.0
            mu_t = 0.012 * dens * (0.5 if name == "patella" else 1.0)
            mu_c = 0.045 * dens * {"patella": 0.22, "trochlea": 0.3}.get(name, 1.0)
            scene.bones.append(Bone(poly, cap, _profile_fn(a, name, to_knee), mu_trab=mu_t,
                                    mu_cortex=mu_c, texture=a.params.bone["texture"]))
        for name in ("femoral", "tibial", "femoral_box"):
            if name in a.metal:
                lvl = a.params.implant["box_level"] if name == "femoral_box" else 1.3
                scene.metal.append((to_px(pl.forward(a.metal[name])), lvl))
    def soft_tissue(x: FloatArray, y: FloatArray) -> FloatArray:
        total = soft_fns[0](x, y)
        for fn in soft_fns[1:]:
            total = total + fn(x, y)
        return total

    scene.soft_tissue_mm = soft_tissue
    scene.collimator = None if coll_px is None else coll_px * f
    scene.collimator_black = coll_black
    lat_marker = ""
    if has_marker:
        lat_marker = lats[0] if not both else ("R" if marker_corner % 2 == 0 else "L")
        hpx = marker_h_mm * scale
        box_lo = (lo - origin) * scale
        box_hi = (hi - origin) * scale
        if scene.collimator is not None:
            flo, fhi = scene.collimator.min(axis=0), scene.collimator.max(axis=0)
        else:
            flo, fhi = np.array([0.0, 0.0]), np.array([out_cols, out_rows], float)
        flo = np.maximum(flo, 0.0) + 0.4 * hpx
        fhi = np.minimum(fhi, [out_cols, out_rows]) - 1.8 * hpx
        cands = [(flo[0], flo[1]), (fhi[0], flo[1]), (flo[0], fhi[1]), (fhi[0], fhi[1])]
        if both:  # the marker goes on its own knee's side of the image
            cands = [c for i, c in enumerate(cands) if (i % 2 == 0) == (lat_marker == "R")]
        ok = [c for c in cands if not _overlaps(c, hpx, box_lo, box_hi, pts_mm, origin, scale)]
        if ok and fhi[0] > flo[0] and fhi[1] > flo[1]:
            cx, cy = ok[marker_corner % len(ok)]
            scene.marker = (lat_marker, float(cx), float(cy), float(hpx))
        else:
            lat_marker = ""
    _annotate(scene, np.random.default_rng([seed, 13]), pts_mm, origin, scale)
    rng_img = np.random.default_rng([seed, 12, out_rows, out_cols])
    p = render(scene, rng_img, acq)
    maxv = 2 ** bits - 1
    top = int(np.floor(maxv * top_frac))
    stored = np.rint(p * top).astype(np.int64)
    if mono1:
        stored = top - stored
    pixels = np.clip(stored, 0, maxv).astype(np.uint16)
    knees = []
    for pl, a, lat, ph, pm in zip(places, anats, lats, phases, pts_mm, strict=True):
        del pl
        lpx = to_px(pm)
        knees.append(KneeTruth(landmarks=lpx, laterality=lat,  # type: ignore[arg-type]
                               phase=ph,  # type: ignore[arg-type]
                               atfa_deg=atfa_all(lpx), built_in_atfa_deg=a.built_in_atfa))
    return SynthRadiograph(pixels=pixels, bits_stored=bits,
                           photometric="MONOCHROME1" if mono1 else "MONOCHROME2",
                           pixel_spacing_mm=(sp, sp), knees=tuple(knees),
                           phase="post" if "post" in phases else "pre",
                           seed=seed, marker=lat_marker)


ANNOTATIONS = ("AP", "STANDING", "WB", "KNEE AP", "AP WB", "SUPINE", "BILAT", "PORTABLE")


def _annotate(scene: Scene, rng: np.random.Generator, pts_mm: list[FloatArray],
              origin: FloatArray, scale: float) -> None:
    """Sometimes burn in a text annotation (as technologists do), away from every landmark."""
    if rng.uniform() >= 0.3:
        return
    text = str(rng.choice(ANNOTATIONS))
    hpx = float(rng.uniform(4.0, 8.0)) * scale
    rows, cols = scene.shape
    wpx = 0.75 * hpx * len(text) + 4
    cands = [(0.02 * cols, 0.02 * rows), (cols - wpx - 0.02 * cols, 0.02 * rows),
             (0.02 * cols, rows - 1.6 * hpx - 0.02 * rows),
             (cols - wpx - 0.02 * cols, rows - 1.6 * hpx - 0.02 * rows)]
    if scene.marker is not None:  # keep clear of the side marker
        mx, my = scene.marker[1], scene.marker[2]
        cands = [c for c in cands if abs(c[0] - mx) + abs(c[1] - my) > 3 * scene.marker[3]]
    ok = [c for c in cands if c[0] >= 0 and c[1] >= 0
          and not _overlaps(c, hpx, None, None, pts_mm, origin, scale, nchar=len(text))]
    if ok:
        x, y = ok[int(rng.integers(0, len(ok)))]
        scene.annotations.append((text, float(x), float(y), hpx))


def _overlaps(corner: tuple[float, float], hpx: float, box_lo: FloatArray | None,
              box_hi: FloatArray | None, pts_mm: list[FloatArray], origin: FloatArray,
              scale: float, nchar: int = 2) -> bool:
    """Whether text at ``corner`` would cover any landmark (with a margin)."""
    x0, y0 = corner
    x1, y1 = x0 + 1.2 * hpx * nchar, y0 + 1.6 * hpx
    m = 0.5 * hpx
    for pm in pts_mm:
        q = (pm - origin) * scale
        inside = (q[:, 0] > x0 - m) & (q[:, 0] < x1 + m) & (q[:, 1] > y0 - m) & (q[:, 1] < y1 + m)
        if inside.any():
            return True
    del box_lo, box_hi
    return False
