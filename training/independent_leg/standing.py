"""Standing both legs on the detector: placement, pelvis, field of view, pixel geometry.

Never used for training or checkpoint choice (see :mod:`training.independent_leg`).

Patient mm: x to the image right, y down, the hip centres at y = 0; the right leg on the
image left (patient facing the viewer), drawn as a mirrored left leg. Stored px =
``(patient mm - origin) * magnification / pixel spacing``; the image is one stitched plane
with no mis-registration, so the stored landmarks are the true ones.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from inference.leg import landmarks as leg
from training.independent_leg.limb import (
    MU_CANCELLOUS,
    MU_CORTEX,
    BlobSpec,
    BoneSpec,
    Limb,
    TubeSpec,
    build_limb,
    draw_limb,
)
from training.independent_leg.solids import Blob, BoneBody, Tube

FloatArray = npt.NDArray[np.float64]
#: Largest stored image (rows, columns).
MAX_ROWS, MAX_COLS = 8100, 2800
#: Diameter of the steel calibration ball, mm.
BALL_MM = 25.0


@dataclass(frozen=True)
class Placement:
    """``patient = R @ (q - hip_leg) + hip`` for a leg-frame point ``q`` (R may mirror)."""

    side: str
    limb: Limb
    matrix: FloatArray
    hip: FloatArray

    def to_patient(self, q: npt.ArrayLike) -> FloatArray:
        """Leg-frame mm -> patient mm."""
        h = self.limb.landmarks[leg.FEMORAL_HEAD_CENTRE]
        return (np.asarray(q, dtype=np.float64) - h) @ self.matrix.T + self.hip


@dataclass
class Standing:
    """Both legs, the pelvis and the image geometry of one study."""

    seed: int
    legs: tuple[Placement, Placement]
    pelvis: list[BoneSpec]
    origin: FloatArray
    shape: tuple[int, int]
    pixel_spacing_mm: float
    magnification: float
    ball_centre_mm: FloatArray
    body_half_width_mm: float

    @property
    def scale(self) -> float:
        """Stored px per patient mm."""
        return self.magnification / self.pixel_spacing_mm

    @property
    def mm_per_px(self) -> float:
        """Patient mm per stored px."""
        return self.pixel_spacing_mm / self.magnification

    def to_px(self, p_mm: npt.ArrayLike) -> FloatArray:
        """Patient mm -> stored px."""
        return (np.asarray(p_mm, dtype=np.float64) - self.origin) * self.scale

    def leg_px(self, i: int) -> FloatArray:
        """The ``(50, 2)`` landmarks of leg ``i`` in stored px."""
        pl = self.legs[i]
        return self.to_px(pl.to_patient(pl.limb.landmarks))


def _rot(deg: float) -> FloatArray:
    a = np.radians(deg)
    return np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])


def _stand(rng: np.random.Generator, limbs: list[Limb]) -> tuple[Placement, Placement]:
    """Hips level; each leg turned so its ankle lands at the drawn stance width."""
    w = float(np.mean([lb.draw.width_mm for lb in limbs]))
    hs = float(rng.uniform(80.0, 102.0)) * w / 82.0
    ankle_gap = float(rng.uniform(0.95, 2.4)) * w  # between the ankle centres
    sway = float(rng.uniform(-1.5, 1.5))
    for _ in range(60):
        out = []
        for side, lb in zip(("R", "L"), limbs, strict=True):
            sigma = -1.0 if side == "R" else 1.0
            h = lb.landmarks[leg.FEMORAL_HEAD_CENTRE]
            d = lb.landmarks[leg.ANKLE_CENTRE] - h
            d = np.array([sigma * d[0], d[1]])
            want = sigma * (0.5 * ankle_gap - hs)
            now = np.arctan2(d[0], d[1])
            goal = np.arcsin(np.clip(want / np.linalg.norm(d), -1.0, 1.0))
            m = _rot(float(np.degrees(now - goal)) + sway) @ np.diag([sigma, 1.0])
            out.append(Placement(side, lb, m, np.array([sigma * hs, 0.0])))
        kr = out[0].to_patient(limbs[0].landmarks[leg.KNEE_CENTRE])
        kl = out[1].to_patient(limbs[1].landmarks[leg.KNEE_CENTRE])
        if kl[0] - kr[0] >= 1.55 * w:
            break
        ankle_gap += 10.0
    return out[0], out[1]


def _pelvis(hips: tuple[FloatArray, FloatArray], r_head: float, rng: np.random.Generator
            ) -> list[BoneSpec]:
    """Ilia, acetabular roofs, pubic and ischial rami, sacrum (patient mm)."""
    u = rng.uniform
    mid = 0.5 * (hips[0] + hips[1])
    k = 0.5 * float(hips[1][0] - hips[0][0]) / 92.0
    dens = float(u(0.8, 1.15))
    out: list[BoneSpec] = []
    ex = np.array([1.0, 0.0])
    for sigma, h in ((-1.0, hips[0]), (1.0, hips[1])):
        lat = np.array([sigma, 0.0])
        roof_r = r_head + float(u(2.5, 4.5))
        ang = np.radians(np.linspace(-165.0, -20.0, 9))
        roof = np.stack([h[0] + sigma * roof_r * np.cos(ang), h[1] + roof_r * np.sin(ang)], -1)
        crest = np.array([mid + np.array([sigma * 40.0 * k, -150.0 * k]),
                          h + lat * 20.0 * k + np.array([0.0, -205.0 * k]),
                          h + lat * 75.0 * k + np.array([0.0, -185.0 * k]),
                          h + lat * 70.0 * k + np.array([0.0, -95.0 * k])])
        sup_ramus = np.array([h - lat * 0.6 * r_head + np.array([0.0, 8.0]),
                              mid + np.array([sigma * 14.0 * k, 28.0 * k])])
        inf_ramus = np.array([mid + np.array([sigma * 16.0 * k, 62.0 * k]),
                              h - lat * 18.0 * k + np.array([0.0, 85.0 * k])])
        ischium = np.array([h - lat * 0.5 * r_head + np.array([0.0, r_head + 6.0]),
                            h - lat * 22.0 * k + np.array([0.0, 80.0 * k])])
        out.append(BoneSpec("ilium", [
            BlobSpec(h + lat * 28.0 * k + np.array([0.0, -105.0 * k]),
                     _unit(np.array([1.0, -0.3 * sigma])), 95.0 * k, 62.0 * k, 2.3, 2.8,
                     9.0 * k, 2.0),
            TubeSpec(roof, np.full(len(roof), float(u(4.0, 6.5))), np.full(len(roof), 1.6), 2.2),
            TubeSpec(crest, np.full(4, 6.0 * k), np.full(4, 1.5), 1.1),
            TubeSpec(sup_ramus, np.full(2, 8.0 * k), np.full(2, 1.6), 1.2),
            TubeSpec(inf_ramus, np.full(2, 6.5 * k), np.full(2, 1.5), 1.2),
            TubeSpec(ischium, np.array([12.0 * k, 10.0 * k]), np.full(2, 1.8), 1.3),
            BlobSpec(ischium[1], ex, 15.0 * k, 12.0 * k, 2.2, 2.2, 14.0 * k, 1.2),
        ], [], MU_CORTEX * dens, MU_CANCELLOUS * dens))
    out.append(BoneSpec("sacrum", [BlobSpec(mid + np.array([0.0, -95.0 * k]), ex, 48.0 * k,
                                            70.0 * k, 2.6, 1.8, 14.0 * k, 1.5)], [],
                        0.5 * MU_CORTEX * dens, 0.5 * MU_CANCELLOUS * dens))
    return out


def _unit(v: FloatArray) -> FloatArray:
    return v / np.linalg.norm(v)


def stand_study(seed: int, rng: np.random.Generator) -> Standing:
    """Draw both legs and the image geometry of ``seed`` from ``rng``."""
    limbs = [build_limb(draw_limb(rng)) for _ in range(2)]
    right, left = _stand(rng, limbs)
    r_head = float(np.mean([lb.draw.extras["head_r"] * lb.draw.width_mm for lb in limbs]))
    pelvis = _pelvis((right.hip, left.hip), r_head, rng)
    u = rng.uniform
    ankles = [pl.to_patient(pl.limb.landmarks[leg.ANKLE_CENTRE]) for pl in (right, left)]
    thigh = max(lb.draw.extras["thigh"] for lb in limbs)
    half_body = float(right.hip[0] * -1) + thigh + float(u(25.0, 60.0))
    x0, x1 = -half_body, half_body
    y0 = -float(u(70.0, 150.0))
    y1 = float(max(a[1] for a in ankles)) + float(u(60.0, 110.0))
    magnification = float(u(1.02, 1.16))
    spacing = float(u(0.28, 0.42))
    fov_w, fov_h = (x1 - x0) * magnification, (y1 - y0) * magnification
    spacing = max(spacing, fov_h / MAX_ROWS, fov_w / MAX_COLS)
    rows, cols = int(np.ceil(fov_h / spacing)), int(np.ceil(fov_w / spacing))
    knee_y = float(np.mean([pl.to_patient(pl.limb.landmarks[leg.KNEE_CENTRE])[1]
                            for pl in (right, left)]))
    ball = np.array([float(u(-25.0, 25.0)), knee_y - float(u(70.0, 200.0))])
    return Standing(seed=seed, legs=(right, left), pelvis=pelvis, origin=np.array([x0, y0]),
                    shape=(rows, cols), pixel_spacing_mm=spacing, magnification=magnification,
                    ball_centre_mm=ball, body_half_width_mm=half_body)


def to_body(spec: BoneSpec, to_patient: object, st: Standing, mirrored: bool) -> BoneBody:
    """A leg-frame (or patient-frame) bone turned into image-px solids."""
    f = to_patient if callable(to_patient) else (lambda q: np.asarray(q, dtype=np.float64))
    s = st.scale
    solids: list[Blob | Tube] = []
    holes: list[Blob] = []

    def blob(b: BlobSpec) -> Blob:
        c = st.to_px(f(b.centre))
        tip = st.to_px(f(b.centre + b.u_axis)) - c
        uax = tip / np.linalg.norm(tip)
        if mirrored:
            uax = -uax
        return Blob(c, uax, b.a * s, b.b * s, b.p_top, b.p_bottom, b.depth * s, b.cortex * s)

    for sol in spec.solids:
        if isinstance(sol, BlobSpec):
            solids.append(blob(sol))
        else:
            solids.append(Tube(st.to_px(f(sol.centre)), sol.radius * s, sol.cortex * s,
                               sol.depth))
    holes = [blob(h) for h in spec.holes]
    return BoneBody(spec.name, solids, holes, spec.mu_cortex, spec.mu_inner, spec.textured)
