"""Planning one full-leg study: every random decision of an image, before any pixel.

:func:`plan_study` draws both legs (:mod:`training.synth_leg.params`), builds them
(:mod:`training.synth_leg.anatomy`), stands them on the detector, adds the pelvis, implants
and hardware, the calibration object, the field of view, the stitching of two or three
detector exposures and the acquisition. Rendering (:mod:`training.synth_leg.render`) only
reads the plan, so the full image and the fast per-joint crops of a seed show the same
anatomy with the same truth.

Coordinates
-----------
* *patient mm*: the AP projection at patient scale, x to the image right, y down; the hip
  centres are at y = 0, the right leg on the image left (patient facing the viewer).
* *true px*: ``(patient mm - origin) * magnification / pixel_spacing``.
* *stored px*: true px of the exposure the point is shown in, plus that exposure's
  mis-registration shift ``(dx, dy)`` (zero for the first exposure).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from inference.leg import geometry
from inference.leg import landmarks as leg
from training.synth.generator import sample_acquisition
from training.synth_leg.anatomy import LegAnatomy, build_leg
from training.synth_leg.params import LegParams, sample_leg_params

FloatArray = npt.NDArray[np.float64]

#: Largest stored image (rows, columns).
MAX_ROWS, MAX_COLS = 8100, 2800
#: Salt of the planning random stream.
PLAN_STREAM = 0x1E6
#: Names of the hard cases a study can have (papers 001 and 003).
HARD_CASES: tuple[str, ...] = (
    "tka", "hip_stem", "plate_screws", "ankle_bracelet", "ankles_close", "cut_by_edge",
    "low_contrast_ankles", "osteophytes",
)
#: Diameter of the calibration ball, mm.
BALL_MM = 25.0
#: Tick spacing of the calibration ruler, mm (at the detector plane).
RULER_TICK_MM = 10.0


def rotation(deg: float) -> FloatArray:
    """2x2 rotation matrix (x right, y down: positive turns +x toward +y)."""
    a = np.radians(deg)
    return np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])


@dataclass(frozen=True)
class PlacedLeg:
    """One leg stood on the detector.

    ``patient mm = matrix @ (q - hip_leg) + hip_mm`` for a leg-frame point ``q``.
    """

    side: str
    anatomy: LegAnatomy
    matrix: FloatArray
    hip_mm: FloatArray

    @property
    def params(self) -> LegParams:
        """The leg's parameters."""
        return self.anatomy.params

    def to_patient(self, q: npt.ArrayLike) -> FloatArray:
        """Leg-frame mm -> patient mm."""
        hip_leg = self.anatomy.landmarks[leg.FEMORAL_HEAD_CENTRE]
        return (np.asarray(q, dtype=np.float64) - hip_leg) @ self.matrix.T + self.hip_mm

    def to_leg(self, x: FloatArray, y: FloatArray) -> tuple[FloatArray, FloatArray]:
        """Patient mm -> leg-frame mm (arrays, broadcast)."""
        mi = np.linalg.inv(self.matrix)
        hip_leg = self.anatomy.landmarks[leg.FEMORAL_HEAD_CENTRE]
        dx, dy = x - self.hip_mm[0], y - self.hip_mm[1]
        return (mi[0, 0] * dx + mi[0, 1] * dy + hip_leg[0],
                mi[1, 0] * dx + mi[1, 1] * dy + hip_leg[1])


@dataclass(frozen=True)
class Exposure:
    """One detector exposure of the stitched image: stored rows ``[row0, row1)``."""

    row0: int
    row1: int
    shift_px: tuple[int, int]
    acquisition: dict[str, float]
    seam_line: float  # multiplies the display value of the first rows (1 = no line)


@dataclass
class FullLegStudy:
    """Everything an image of one seed is made of (see the module docstring for frames)."""

    seed: int
    legs: tuple[PlacedLeg, ...]
    origin_mm: FloatArray
    shape: tuple[int, int]
    pixel_spacing_mm: float
    magnification: float
    bits_stored: int
    photometric: str
    top_fraction: float
    exposures: tuple[Exposure, ...]
    blend_px: int
    overlap_px: int
    pelvis: list[tuple[str, FloatArray]] = field(default_factory=list)
    hardware: list[tuple[str, FloatArray, float]] = field(default_factory=list)
    calibration: dict[str, object] = field(default_factory=dict)
    torso: dict[str, float] = field(default_factory=dict)
    hard_cases: tuple[str, ...] = ()
    low_contrast_ankles: float = 0.0

    @property
    def scale(self) -> float:
        """True px per patient mm (magnification / pixel spacing)."""
        return self.magnification / self.pixel_spacing_mm

    def to_px(self, p_mm: npt.ArrayLike) -> FloatArray:
        """Patient mm -> true px."""
        return (np.asarray(p_mm, dtype=np.float64) - self.origin_mm) * self.scale

    def exposure_of_row(self, stored_row: float) -> int:
        """Index of the exposure whose stored rows hold ``stored_row`` (clamped)."""
        for k, e in enumerate(self.exposures):
            if stored_row < e.row1:
                return k
        return len(self.exposures) - 1

    def stored_px(self, true_px: npt.ArrayLike) -> FloatArray:
        """True px -> stored px (each point moves with the exposure that shows it)."""
        p = np.array(true_px, dtype=np.float64)
        out = p.copy()
        for i, q in enumerate(p):
            k = 0
            for j, e in enumerate(self.exposures):
                if q[1] + e.shift_px[1] >= e.row0:
                    k = j
            out[i] = q + np.asarray(self.exposures[k].shift_px, dtype=np.float64)
        return out

    def leg_true_px(self, i: int) -> FloatArray:
        """The true landmarks of leg ``i`` in true px (before stitching shifts)."""
        pl = self.legs[i]
        return self.to_px(pl.to_patient(pl.anatomy.landmarks))

    def leg_stored_px(self, i: int) -> FloatArray:
        """The landmarks of leg ``i`` where the stored image shows them."""
        return self.stored_px(self.leg_true_px(i))

    @property
    def mm_per_px(self) -> float:
        """Patient mm per stored pixel (pixel spacing / magnification)."""
        return self.pixel_spacing_mm / self.magnification

    def leg_measurements(self, i: int, stored: bool = True) -> dict[str, float]:
        """:func:`inference.leg.geometry.measure_leg` of leg ``i`` (MAD in patient mm)."""
        pts = self.leg_stored_px(i) if stored else self.leg_true_px(i)
        return geometry.measure_leg(pts, self.mm_per_px)


def _check_seed(seed: int) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    return int(seed)


def _stand(rng: np.random.Generator, anats: list[LegAnatomy], close: bool
           ) -> tuple[PlacedLeg, PlacedLeg]:
    """Stand the right (image left) and left leg: hips level, ankles medial of the hips."""
    w = float(np.mean([a.params.width_mm for a in anats]))
    hs = float(rng.uniform(85.0, 105.0)) * w / 80.0
    ankle_w = float(np.mean([a.params.shape["ankle_w"] * a.params.width_mm for a in anats]))
    a_sep = ankle_w * (float(rng.uniform(1.0, 1.15)) if close else float(rng.uniform(1.3, 2.6)))
    tilt = float(rng.uniform(-2.0, 2.0))  # the patient stands slightly turned on the detector
    for _ in range(40):
        placed = []
        for side, a in zip(("R", "L"), anats, strict=True):
            sigma = -1.0 if side == "R" else 1.0
            hip_leg = a.landmarks[leg.FEMORAL_HEAD_CENTRE]
            d = a.landmarks[leg.ANKLE_CENTRE] - hip_leg
            d = np.array([sigma * d[0], d[1]])  # mirrored into image x for the right leg
            want_x = (0.5 * a_sep - hs) * (1.0 if side == "L" else -1.0)
            ang_now = np.arctan2(d[0], d[1])
            ang_want = np.arcsin(np.clip(want_x / np.linalg.norm(d), -1, 1))
            rho = float(np.degrees(ang_now - ang_want)) + tilt
            m = rotation(rho) @ np.diag([sigma, 1.0])
            placed.append(PlacedLeg(side, a, m, np.array([-hs if side == "R" else hs, 0.0])))
        kr = placed[0].to_patient(anats[0].landmarks[leg.KNEE_CENTRE])
        kl = placed[1].to_patient(anats[1].landmarks[leg.KNEE_CENTRE])
        if kl[0] - kr[0] >= 1.65 * w:
            break
        a_sep += 15.0  # knock knees: stand the ankles further apart
    return placed[0], placed[1]


def _pelvis(hips: tuple[FloatArray, FloatArray], r_head: float, rng: np.random.Generator
            ) -> list[tuple[str, FloatArray]]:
    """Hemipelvises (ilium, pubic-ischial ring), sacrum, in patient mm."""
    mid = 0.5 * (hips[0] + hips[1])
    hs = 0.5 * float(hips[1][0] - hips[0][0])
    k = hs / 95.0 * float(rng.uniform(0.93, 1.07))
    out: list[tuple[str, FloatArray]] = []
    for sigma, h in ((-1.0, hips[0]), (1.0, hips[1])):
        def P(pts: list[tuple[float, float]], sigma: float = sigma) -> FloatArray:  # noqa: N802
            a = np.asarray(pts, dtype=np.float64)
            return np.stack([mid[0] + sigma * a[:, 0], mid[1] + a[:, 1]], -1)
        hx = abs(float(h[0] - mid[0]))
        rr = r_head + 3.0
        angles = np.radians(np.linspace(-5, -155, 14))
        roof = [(hx + rr * np.cos(t), rr * np.sin(t)) for t in angles]
        ilium = roof + [(55 * k, -35 * k), (42 * k, -105 * k), (62 * k, -160 * k),
                        (hx - 20 * k, -185 * k), (hx + 30 * k, -150 * k),
                        (hx + 48 * k, -75 * k), (hx + 34 * k, -40 * k), (hx + rr * 1.02, -6.0)]
        out.append(("ilium", P(ilium)))
        ring_out = [(hx - rr * 0.95, 4.0), (8 * k, 22 * k), (6 * k, 62 * k), (hx - 32 * k, 95 * k),
                    (hx - 6 * k, 80 * k), (hx + 4 * k, rr + 6.0)]
        ring_in = [(hx - 16 * k, rr + 3.0), (hx - 28 * k, 70 * k), (24 * k, 52 * k),
                   (22 * k, 32 * k), (hx - rr - 8 * k, 20 * k)]
        out.append(("pubis_ischium", P(ring_out + ring_in + [ring_out[0]])))
    sac = [(-48 * k, -125 * k), (48 * k, -125 * k), (36 * k, -20 * k), (12 * k, 25 * k),
           (-12 * k, 25 * k), (-36 * k, -20 * k)]
    out.append(("sacrum", np.stack([mid[0] + np.array([p[0] for p in sac]),
                                    mid[1] + np.array([p[1] for p in sac])], -1)))
    return out


def _plate(rng: np.random.Generator, pl: PlacedLeg) -> list[tuple[str, FloatArray, float]]:
    """A plate on the femoral or tibial shaft with screws across it (patient mm)."""
    a = pl.anatomy
    W = a.params.width_mm
    bone = "femur" if rng.uniform() < 0.5 else "tibia"
    origin, axis = a.axes[bone]
    if bone == "femur":  # axes point away from the knee; femur origin is the diaphysis end
        s0 = float(rng.uniform(-0.6, 0.2)) * W
        r = a.params.shape["shaft_r"] * W
    else:
        s0 = float(rng.uniform(0.25, 0.6)) * a.params.tibia_mm
        r = a.params.shape["tibia_r"] * W
    length = float(rng.uniform(110.0, 200.0))
    lateral = np.array([axis[1], -axis[0]]) if bone == "tibia" else np.array([-axis[1], axis[0]])
    if lateral[0] < 0:
        lateral = -lateral
    side = 1.0 if (bone == "femur" or rng.uniform() < 0.5) else -1.0
    n = side * lateral
    pw = 0.075 * W
    c0 = origin + s0 * axis
    c1 = c0 + length * axis
    plate = np.vstack([c0 + (r + 0.5) * n, c1 + (r + 0.5) * n, c1 + (r + 0.5 + pw * 0.5) * n,
                       c0 + (r + 0.5 + pw * 0.5) * n])
    out: list[tuple[str, FloatArray, float]] = [("plate", pl.to_patient(plate), 1.3)]
    for f in np.linspace(0.08, 0.92, int(rng.integers(4, 8))):
        c = c0 + f * length * axis
        sw = 2.2
        screw = np.vstack([c + (r + 0.5 + pw * 0.5 + 2) * n + sw * 1.6 * axis,
                           c + (r + 0.5 + pw * 0.5 + 2) * n - sw * 1.6 * axis,
                           c + (r + 0.5) * n - sw * axis, c - (r + 3.0) * n - sw * axis,
                           c - (r + 5.0) * n, c - (r + 3.0) * n + sw * axis,
                           c + (r + 0.5) * n + sw * axis])
        out.append(("screw", pl.to_patient(screw), 1.3))
    return out


def _bracelet(rng: np.random.Generator, pl: PlacedLeg) -> tuple[str, FloatArray, float]:
    """An ankle bracelet: a chain of beads across the ankle above the malleoli (patient mm)."""
    a = pl.anatomy
    A = a.landmarks[leg.ANKLE_CENTRE]
    t = a.axes["tibia"][1]
    lat = np.array([t[1], -t[0]])
    c = A - float(rng.uniform(35.0, 80.0)) * t
    half = 0.55 * a.params.width_mm
    r = float(rng.uniform(1.5, 3.0))
    pts: list[FloatArray] = []
    for x in np.linspace(-half, half, int(rng.integers(9, 16))):
        cc = c + x * lat + float(rng.uniform(-2, 2)) * t
        th = np.linspace(0, 2 * np.pi, 10)
        pts.append(cc + r * np.stack([np.cos(th), np.sin(th)], -1) @ np.eye(2))
    chain = np.vstack(pts + pts[::-1][1:-1] if len(pts) > 2 else pts)
    return ("ankle_bracelet", pl.to_patient(chain), float(rng.uniform(0.85, 1.1)))


def plan_study(
    seed: int,
    *,
    post_op: str | None = None,
    full_size: bool = False,
    stitching: bool = True,
    max_rows: int | None = None,
) -> FullLegStudy:
    """Draw every decision of the full-leg image of ``seed``.

    Parameters
    ----------
    seed
        Non-negative int; the same arguments give the same plan.
    post_op
        ``"none"``, ``"one"`` (a TKA on one leg) or ``"both"``; None draws it (three
        studies in ten have a TKA).
    full_size
        Make the image exactly ``MAX_ROWS x MAX_COLS`` (the benchmark's size).
    stitching
        False: no mis-registration between the exposures (the seams' exposure differences
        stay); the stored landmarks then equal the true ones.
    max_rows
        A preview: at most this many rows (and columns in the same proportion), with coarser
        pixels than 0.2 mm if needed. None = full resolution (up to 8100 x 2800).
    """
    seed = _check_seed(seed)
    if max_rows is not None and (isinstance(max_rows, bool) or not isinstance(
            max_rows, (int, np.integer)) or max_rows < 256):
        raise ValueError(f"max_rows must be an int >= 256 or None, got {max_rows!r}")
    if max_rows is not None and full_size:
        raise ValueError("max_rows and full_size=True exclude each other")
    if post_op not in (None, "none", "one", "both"):
        raise ValueError(f"post_op must be 'none', 'one', 'both' or None, got {post_op!r}")
    rng = np.random.default_rng([seed, PLAN_STREAM])
    u = rng.uniform
    tka = post_op or ("none" if u() < 0.7 else ("one" if u() < 0.5 else "both"))
    tka_legs = {"none": (False, False), "both": (True, True),
                "one": (True, False) if u() < 0.5 else (False, True)}[tka]
    stems = [bool(u() < 0.08) for _ in range(2)]
    anats = [build_leg(sample_leg_params(rng, post_op=t, hip_stem=s))
             for t, s in zip(tka_legs, stems, strict=True)]
    close = bool(u() < 0.12)
    right, left = _stand(rng, anats, close)
    legs = (right, left)
    hard: list[str] = []
    if any(tka_legs):
        hard.append("tka")
    if any(stems):
        hard.append("hip_stem")
    if close:
        hard.append("ankles_close")
    if any(a.params.osteophytes > 0 for a in anats):
        hard.append("osteophytes")
    r_head = float(np.mean([a.params.shape["head_r"] * a.params.width_mm for a in anats]))
    pelvis = _pelvis((right.hip_mm, left.hip_mm), r_head, rng)
    hardware: list[tuple[str, FloatArray, float]] = []
    for pl in legs:
        for name, poly, level in pl.anatomy.metal:
            hardware.append((name, pl.to_patient(poly), level))
    if u() < 0.1:
        hardware += _plate(rng, legs[int(rng.integers(0, 2))])
        hard.append("plate_screws")
    if u() < 0.06:
        hardware.append(_bracelet(rng, legs[int(rng.integers(0, 2))]))
        hard.append("ankle_bracelet")
    low_contrast = float(u(0.8, 1.6)) if u() < 0.15 else 0.0
    if low_contrast:
        hard.append("low_contrast_ankles")
    # --- field of view (patient mm)
    allpts = np.vstack([pl.to_patient(b) for pl in legs for b in pl.anatomy.bones.values()]
                       + [p for _, p in pelvis])
    lo, hi = allpts.min(axis=0), allpts.max(axis=0)
    thigh = float(max(a.params.shape["thigh"] for a in anats))
    side_margin = 95.0 * thigh - 20.0 + float(u(0.0, 30.0))
    x0, x1 = min(lo[0], right.hip_mm[0] - side_margin), max(hi[0], left.hip_mm[0] + side_margin)
    y0 = float(lo[1]) - float(u(10.0, 40.0))
    y1 = float(hi[1]) + float(u(10.0, 50.0))
    cut = u() < 0.12
    if cut:
        hard.append("cut_by_edge")
        which = int(rng.integers(0, 4))
        if which == 0:  # the top through the femoral heads
            y0 = float(right.hip_mm[1]) - float(u(-10.0, 15.0))
        elif which == 1:  # the bottom through the ankles
            y1 = float(np.mean([pl.to_patient(pl.anatomy.landmarks)[leg.ANKLE_CENTRE][1]
                                for pl in legs])) + float(u(-5.0, 15.0))
        elif which == 2:
            x0 += float(u(60.0, 120.0))
        else:
            x1 -= float(u(60.0, 120.0))
    magnification = float(u(1.0, 1.15))
    spacing = float(u(0.1, 0.2))
    fov_w, fov_h = (x1 - x0) * magnification, (y1 - y0) * magnification  # detector plane
    least = max(fov_h / MAX_ROWS, fov_w / MAX_COLS)
    spacing = least if full_size else max(spacing, least)
    if max_rows is not None:
        spacing = max(spacing, fov_h / max_rows, fov_w / (max_rows * MAX_COLS / MAX_ROWS))
    elif spacing > 0.2:  # a large patient: 0.2 mm pixels, the field cut round its centre
        spacing = 0.2
        x0 += 0.5 * max(fov_w - MAX_COLS * spacing, 0.0) / magnification
        y0 += 0.5 * max(fov_h - MAX_ROWS * spacing, 0.0) / magnification
        if "cut_by_edge" not in hard:
            hard.append("cut_by_edge")
    rows, cols = int(np.ceil(fov_h / spacing)), int(np.ceil(fov_w / spacing))
    if full_size:
        extra = (MAX_COLS * spacing - fov_w) / magnification
        x0 -= 0.5 * extra
        extra_h = (MAX_ROWS * spacing - fov_h) / magnification
        y0 -= 0.5 * extra_h
        rows, cols = MAX_ROWS, MAX_COLS
    rows, cols = min(rows, MAX_ROWS), min(cols, MAX_COLS)
    origin = np.array([x0, y0])
    # --- calibration: a ball at bone level, or a ruler on the detector
    scale = magnification / spacing
    if u() < 0.6:
        k_leg = legs[int(rng.integers(0, 2))]
        kc = k_leg.to_patient(k_leg.anatomy.landmarks[leg.KNEE_CENTRE])
        centre = np.array([0.5 * (right.hip_mm[0] + left.hip_mm[0]),
                           kc[1] - float(u(60.0, 180.0))])
        calibration: dict[str, object] = {
            "kind": "ball", "diameter_mm": BALL_MM, "plane": "bone",
            "centre_px": ((centre - origin) * scale).tolist(),
            "diameter_px": BALL_MM * scale,
        }
    else:
        x_px = float(u(0.015, 0.06)) * cols if u() < 0.5 else float(u(0.94, 0.985)) * cols
        calibration = {"kind": "ruler", "tick_mm": RULER_TICK_MM, "plane": "detector",
                       "x_px": x_px, "tick_px": RULER_TICK_MM / spacing}
    # --- exposures
    n_exp = 2 if u() < 0.35 else 3
    bounds = np.linspace(0, rows, n_exp + 1)
    jitter = (rows / n_exp) * 0.08
    cuts = [0] + [int(b + u(-jitter, jitter)) for b in bounds[1:-1]] + [rows]
    # stitching software registers on bone; keep the seams off the knee joints
    knee_rows = [float(((pl.to_patient(pl.anatomy.landmarks[leg.KNEE_CENTRE]) - origin)
                        * scale)[1]) for pl in legs]
    keep = 45.0 * scale
    for j in range(1, n_exp):
        for kr in knee_rows:
            if abs(cuts[j] - kr) < keep:
                cuts[j] = int(kr - keep if cuts[j] < kr else kr + keep)
    cuts = [0] + sorted(min(max(c, 1), rows - 1) for c in cuts[1:-1]) + [rows]
    base = sample_acquisition(rng)
    base.update({"eq_mm": float(u(30.0, 80.0)), "eq_gain": float(u(0.5, 0.85))})
    exposures = []
    shift = np.zeros(2)
    mis = 0.5 / spacing if stitching else 0.0
    for k in range(n_exp):
        acq = dict(base)
        acq["heel"] = float(np.clip(base["heel"] + u(-0.1, 0.1), -0.35, 0.35))
        acq["photons_per_mm2"] = base["photons_per_mm2"] * float(u(0.8, 1.25))
        acq["bone_pct"] = float(np.clip(base["bone_pct"] + u(-1.0, 1.0), 95.0, 99.7))
        if k > 0:
            shift = shift + np.round(rng.uniform(-mis, mis, 2)) if mis else shift
        exposures.append(Exposure(int(cuts[k]), int(cuts[k + 1]),
                                  (int(shift[0]), int(shift[1])), acq,
                                  float(u(0.9, 1.1)) if (k > 0 and u() < 0.5) else 1.0))
    blend = int(rng.integers(0, int(3.0 / spacing) + 1)) if u() < 0.6 else 0
    overlap = int(round(float(u(10.0, 40.0)) / spacing))
    bits = int(rng.choice([10, 12, 12, 14, 14, 15, 16]))
    mono1 = bool(u() < 0.4)
    top = float(u(0.8, 1.0)) if u() < 0.5 else 1.0
    hs = 0.5 * float(left.hip_mm[0] - right.hip_mm[0])
    torso = {"depth": float(u(170.0, 260.0)), "half_width": hs + 70.0 + float(u(0.0, 50.0)),
             "fade_mm": float(u(60.0, 110.0))}
    return FullLegStudy(
        seed=seed, legs=legs, origin_mm=origin, shape=(rows, cols), pixel_spacing_mm=spacing,
        magnification=magnification, bits_stored=bits,
        photometric="MONOCHROME1" if mono1 else "MONOCHROME2", top_fraction=top,
        exposures=tuple(exposures), blend_px=blend, overlap_px=overlap, pelvis=pelvis,
        hardware=hardware, calibration=calibration, torso=torso, hard_cases=tuple(hard),
        low_contrast_ankles=low_contrast,
    )

