"""The independent renderer's bone description: outlines and true landmarks of one knee.

Written apart from :mod:`training.synth` and never used for training (see the package
docstring).  Everything here is in the **tibial frame**, in plateau widths ``w``: a LEFT
knee seen AP, ``+x`` lateral, ``+y`` distal, origin at the mid-point of the tibial
plateau corners (which lie at ``x = +-0.5``); :func:`draw_knee` returns millimetres.

Outline families (deliberately unlike the training generator's splines through knots):

* femoral condyles are **superellipses** ``|x/a|^n + |y/b|^n = 1`` whose radius carries a
  low-order **Fourier perturbation**; the notch is a superellipse arch between the
  condyles' inner-lower quadrants;
* the metaphyses flare with an **exponential** profile ``exp(-(t/d)^p)`` from the shaft
  into the condyles and the tibial plateau;
* shafts are **bowed** (a ``sin^2`` bump of their centre line) and **tapered**, with their
  own width, lean and length proportions;
* tibial spines are superellipse bumps on a convex (lateral) / concave (medial) plateau;
* the fibular head and the patella are rotated superellipses.

Landmarks follow :mod:`inference.landmarks`: cortex points at the shaft levels of
``docs/landmarks.md`` (in plateau widths from the joint, along the bone's own frame),
the other runs evenly spaced in arc length between this module's own anchors, so every
landmark lies on the polyline that is rendered.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from inference import landmarks as lm
from inference.alignment import atfa_all

FloatArray = npt.NDArray[np.float64]

#: Shaft levels of the cortex landmarks (plateau widths from the joint), scheme definition.
FEMUR_LEVELS = np.array([1.56, 1.35, 1.14, 0.92, 0.80, 0.70, 0.60, 0.50])
TIBIA_LEVELS = np.array([1.38, 1.18, 0.80, 0.68, 0.58, 0.50])
#: Polyline sampling step along parameters (plateau widths).
STEP = 0.004


class Outline:
    """A dense polyline with named anchor vertices and arc-length sampling.

    Parameters
    ----------
    pieces
        Ordered ``(points, tag_first, tag_last)`` runs; consecutive runs share no point.
    """

    def __init__(self) -> None:
        self._pts: list[FloatArray] = []
        self.tags: dict[str, int] = {}
        self._n = 0

    def extend(self, pts: npt.ArrayLike, first: str | None = None,
               last: str | None = None) -> None:
        """Append a run of points; optionally tag its first and last vertex."""
        p = np.atleast_2d(np.asarray(pts, dtype=np.float64))
        if first is not None:
            self.tags[first] = self._n
        if last is not None:
            self.tags[last] = self._n + len(p) - 1
        self._pts.append(p)
        self._n += len(p)

    def tag_here(self, name: str, point: npt.ArrayLike) -> None:
        """Append one tagged point."""
        self.extend(np.asarray(point, dtype=np.float64)[None], first=name)

    @property
    def points(self) -> FloatArray:
        """All vertices, ``(M, 2)``."""
        return np.vstack(self._pts)

    def point(self, tag: str) -> FloatArray:
        """The vertex called ``tag``."""
        return self.points[self.tags[tag]]

    def between(self, a: str, b: str, n: int, start: bool, end: bool) -> FloatArray:
        """``n`` points evenly spaced in arc length from anchor ``a`` to anchor ``b``.

        ``start``/``end`` say whether the anchors themselves are among the ``n`` points.
        """
        i0, i1 = self.tags[a], self.tags[b]
        if i1 <= i0:
            raise ValueError(f"anchor {b!r} does not follow {a!r} on the outline")
        seg = self.points[i0:i1 + 1]
        s = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(seg, axis=0), axis=1))])
        k = n - 1 + (0 if start else 1) + (0 if end else 1)
        fr = np.arange(0 if start else 1, (k + 1) if end else k) / k
        target = fr * s[-1]
        return np.stack([np.interp(target, s, seg[:, 0]), np.interp(target, s, seg[:, 1])], 1)


def superellipse(centre: tuple[float, float], a: float, b: float, n: float,
                 theta: FloatArray, fourier: FloatArray | None = None,
                 tilt_deg: float = 0.0) -> FloatArray:
    """Points of a superellipse at angles ``theta`` (rad; 0 = +x, pi/2 = +y, i.e. distal).

    ``fourier`` holds ``(k, amp, phase)`` rows: the radius is multiplied by
    ``1 + sin^2(theta) sum amp cos(k theta + phase)``.
    """
    c, s = np.cos(theta), np.sin(theta)
    x = a * np.sign(c) * np.abs(c) ** (2.0 / n)
    y = b * np.sign(s) * np.abs(s) ** (2.0 / n)
    if fourier is not None and len(fourier):  # zero at theta = 0 and pi: the joins stay put
        scale = 1.0 + np.sin(theta) ** 2 * sum(amp * np.cos(k * theta + ph)
                                                for k, amp, ph in fourier)
        x, y = x * scale, y * scale
    t = np.radians(tilt_deg)
    xr, yr = x * np.cos(t) - y * np.sin(t), x * np.sin(t) + y * np.cos(t)
    return np.stack([xr + centre[0], yr + centre[1]], axis=1)


def _bow(t: FloatArray, amp: float, t0: float, length: float) -> FloatArray:
    """A smooth bump of the shaft centre line: 0 at ``t0``, ``amp`` mid-way, 0 at the end."""
    u = np.clip((t - t0) / length, 0.0, 1.0)
    return amp * np.sin(np.pi * u) ** 2


@dataclass
class KneeShape:
    """Every random number of one knee (lengths in plateau widths, angles in degrees)."""

    width_mm: float
    post_op: bool
    target_atfa: float
    femur: dict[str, float] = field(default_factory=dict)
    tibia: dict[str, float] = field(default_factory=dict)
    fibula: dict[str, float] = field(default_factory=dict)
    patella: dict[str, float] = field(default_factory=dict)
    implant: dict[str, float] = field(default_factory=dict)
    fourier_l: FloatArray = field(default_factory=lambda: np.zeros((0, 3)))
    fourier_m: FloatArray = field(default_factory=lambda: np.zeros((0, 3)))


def sample_shape(rng: np.random.Generator, post_op: bool) -> KneeShape:
    """Draw one knee's shape parameters from this renderer's own distributions."""
    u = rng.uniform
    width = float(np.clip(rng.lognormal(np.log(76.0), 0.09), 58.0, 96.0))
    if post_op:
        target = float(np.clip(rng.normal(4.5, 3.5), -12.0, 16.0))
    else:
        r = u()
        target = float(u(-15.0, 20.0) if r < 0.45 else rng.normal(4.0, 5.0))
        target = float(np.clip(target, -16.0, 21.0))
    lean = float(np.clip((target - 4.0) / 12.0, -1.0, 1.0))
    if post_op:
        gap_l = gap_m = float(u(0.07, 0.13))
    else:
        # joint-space narrowing follows the deformity: medial in varus, lateral in valgus
        gap_l = float(np.clip(u(0.025, 0.07) - 0.025 * lean, 0.004, 0.12))
        gap_m = float(np.clip(u(0.025, 0.07) + 0.025 * lean, 0.004, 0.12))
    beta = float(rng.normal(-1.5, 2.0) + (0.0 if post_op else 0.3 * (target - 4.0)))
    a_l, a_m = u(0.17, 0.27), u(0.18, 0.28)
    b_l, b_m = u(0.15, 0.25), u(0.16, 0.27)
    n_l, n_m = u(2.0, 3.3), u(2.0, 3.3)
    if post_op:  # a resurfaced femur: the component's regular condyles
        a_m, b_m, n_m = a_l, b_l, n_l
    sh = KneeShape(width_mm=width, post_op=post_op, target_atfa=target)
    sh.femur = {
        "a_l": a_l, "a_m": a_m, "b_l": b_l, "b_m": b_m, "n_l": n_l, "n_m": n_m,
        "ext_l": u(0.45, 0.57), "ext_m": u(0.47, 0.61),
        "low_l": 0.0 if post_op else u(-0.02, 0.02), "low_m": 0.0 if post_op else u(-0.01, 0.03),
        "edge_l": u(0.55, 0.85), "edge_m": u(0.55, 0.85),
        "notch_h": u(0.12, 0.17) if post_op else u(0.13, 0.30), "notch_q": u(1.6, 3.2),
        "hs": u(0.14, 0.26), "taper": u(-0.05, 0.03), "flare_d": u(0.28, 0.50),
        "flare_p": u(1.6, 2.8), "bow": float(rng.normal(0.0, 0.012)),
        "shift": u(-0.03, 0.03), "gap_l": gap_l, "gap_m": gap_m,
        "osteo_l": 0.0, "osteo_m": 0.0,
    }
    sh.tibia = {
        "beta": beta, "hs": u(0.12, 0.22), "taper": u(-0.06, 0.02), "flare_d": u(0.22, 0.45),
        "flare_p": u(1.4, 2.6), "knee_y": u(0.03, 0.12), "bulge_l": u(0.0, 0.03),
        "bulge_m": u(0.0, 0.03), "bow": float(rng.normal(0.0, 0.012)),
        "conv_l": u(0.0, 0.02), "conc_m": u(0.0, 0.025),
        "sp_l_x": u(0.035, 0.08), "sp_m_x": u(0.035, 0.08), "sp_l_h": u(0.045, 0.11),
        "sp_m_h": u(0.05, 0.12), "sp_l_w": u(0.05, 0.08), "sp_m_w": u(0.05, 0.085),
        "sp_q": u(1.3, 2.4), "corner_dl": u(-0.015, 0.015), "corner_dm": u(-0.015, 0.015),
        "osteo_l": 0.0, "osteo_m": 0.0,
    }
    if not post_op and u() < 0.5:  # osteophyte lips at the joint margins
        for d in (sh.femur, sh.tibia):
            d["osteo_l"] = u(0.0, 0.05) if u() < 0.6 else 0.0
            d["osteo_m"] = u(0.0, 0.06) if u() < 0.75 else 0.0
    sh.fibula = {"x": u(0.40, 0.56), "y": u(0.20, 0.36), "a": u(0.08, 0.14), "b": u(0.11, 0.18),
                 "n": u(2.0, 3.0), "tilt": u(-15.0, 15.0), "shaft_hw": u(0.045, 0.08),
                 "lean": u(-0.06, 0.06)}
    sh.patella = {"x": u(-0.02, 0.14), "y": u(-0.62, -0.40), "a": u(0.19, 0.29),
                  "b": u(0.22, 0.32), "n": u(1.9, 2.8), "tilt": u(-12.0, 12.0)}
    sh.implant = {"top_l": u(0.26, 0.42), "top_m": u(0.26, 0.42), "flange": u(0.0, 0.07),
                  "box_h": u(0.07, 0.12), "ps": float(u() < 0.5), "tray": u(0.035, 0.075),
                  "keel": u(0.30, 0.55), "keel_w": u(0.13, 0.24)}
    for name in ("fourier_l", "fourier_m"):
        rows = [(k, float(rng.normal(0.0, 0.025 / k)), u(0, 2 * np.pi)) for k in (2, 3, 4)]
        setattr(sh, name, np.array(rows) if not post_op else np.zeros((0, 3)))
    return sh


@dataclass(frozen=True)
class IndependentKnee:
    """One drawn knee in the tibial frame, in millimetres (left knee, +x lateral, +y distal).

    Attributes
    ----------
    landmarks
        ``(113, 2)`` or ``(141, 2)`` true landmarks, scheme order.
    phase
        "pre" or "post".
    width_mm
        Plateau width (mm).
    outlines
        Closed bone outlines: "femur", "tibia", "fibula", "patella".
    metal
        Closed implant outlines ("femoral", "femoral_box", "tibial"); empty pre-op.
    frames
        Per bone, ``(origin, unit distal axis)`` of the shaft (for cortical thickness).
    atfa_deg
        ``inference.alignment.atfa_all(landmarks)``.
    shape
        The parameters it was drawn from.
    """

    landmarks: FloatArray
    phase: str
    width_mm: float
    outlines: dict[str, FloatArray]
    metal: dict[str, FloatArray]
    frames: dict[str, tuple[FloatArray, FloatArray]]
    atfa_deg: dict[str, float]
    shape: KneeShape


def _femur(sh: KneeShape) -> tuple[Outline, dict[str, FloatArray]]:
    """Femur outline and its anchors in the femoral frame (x lateral, y distal, 0 = joint)."""
    f = sh.femur
    alpha = np.radians(f["alpha"])
    t_top = 3.6
    o = Outline()
    extra: dict[str, FloatArray] = {}
    sides = {}
    for side, sgn in (("lateral", 1.0), ("medial", -1.0)):
        s = side[0]
        a, b, n = f[f"a_{s}"], f[f"b_{s}"], f[f"n_{s}"]
        ext = sgn * f[f"ext_{s}"]
        xc, yc = ext - sgn * a, f[f"low_{s}"] - b
        sides[side] = (a, b, n, xc, yc, ext)

    def centre(t: FloatArray) -> FloatArray:
        return f["shift"] + np.tan(alpha) * t + _bow(t, f["bow"], 0.25, 2.6)

    def side_x(t: FloatArray, side: str, sgn: float) -> FloatArray:
        a, b, n, xc, yc, ext = sides[side]
        tt = t + yc  # distance proximal of the condyle centre line
        hs = f["hs"] * (1.0 + f["taper"] * np.clip(t - 0.5, 0.0, None))
        e = np.exp(-(np.clip(tt, 0.0, None) / f["flare_d"]) ** f["flare_p"])
        return (centre(t) + sgn * hs) * (1.0 - e) + ext * e

    gap = 0.5 * (f["gap_l"] + f["gap_m"])

    def level_t(level: float) -> float:
        return float(level - gap)

    # lateral side: from the top of the shaft down to the condyle's outermost point
    a, b, n, xc, yc, ext = sides["lateral"]
    t_lat = np.concatenate([np.arange(t_top, -yc, -STEP), [-yc]])
    levels = [level_t(v) for v in FEMUR_LEVELS]
    t_run = np.unique(np.concatenate([t_lat, levels]))[::-1]
    pts = np.stack([side_x(t_run, "lateral", 1.0), -t_run], axis=1)
    o.extend(pts[:1], first="lateral_top")
    for i, lv in enumerate(levels):
        j = int(np.argmin(np.abs(t_run - lv)))
        extra[f"lateral_cortex_{i}"] = pts[j]
    o.extend(pts[1:])
    for i in range(8):
        o.tags[f"lateral_cortex_{i}"] = int(np.argmin(np.linalg.norm(
            o.points - extra[f"lateral_cortex_{i}"], axis=1)))
    osteo = f["osteo_l"]
    four = sh.fourier_l
    th = np.arange(0.0, np.pi / 2, STEP / max(a, b))
    q = superellipse((xc, yc), a, b, n, th, four)
    q[:, 0] += osteo * np.exp(-((th - 0.35) / 0.18) ** 2)
    ce_th = np.radians(58.0)
    j_ce = int(np.argmin(np.abs(th - ce_th)))
    o.extend(q[1:j_ce])
    o.tag_here("lateral_corner_end", q[j_ce])
    o.extend(q[j_ce + 1:])
    # inner-lower quadrant up to the notch edge: theta from pi/2 to the edge angle
    edge_l = f["edge_l"]
    th_e = np.pi - np.arccos(edge_l ** (n / 2.0))  # |cos|^(2/n) = edge
    th2 = np.arange(np.pi / 2, th_e, STEP / max(a, b))
    q2 = superellipse((xc, yc), a, b, n, th2, four)
    o.extend(q2)
    p_el = superellipse((xc, yc), a, b, n, np.array([th_e]), four)[0]
    o.tag_here("lateral_notch_edge", p_el)
    # medial condyle, computed now to know the medial notch edge
    am, bm, nm, xcm, ycm, extm = sides["medial"]
    four_m = sh.fourier_m
    th_em = np.arccos(f["edge_m"] ** (nm / 2.0))  # on the inner-lower quadrant (cos > 0)
    p_em = superellipse((xcm, ycm), am, bm, nm, np.array([th_em]), four_m)[0]
    # notch: a superellipse arch from the lateral to the medial edge
    uu = np.arange(STEP, 1.0, STEP / max(abs(p_el[0] - p_em[0]), 0.05))
    base = p_el[None] + uu[:, None] * (p_em - p_el)[None]
    qn = f["notch_q"]
    depth = f["notch_h"] * np.clip(1.0 - np.abs(2 * uu - 1) ** qn, 0.0, None) ** (1.0 / qn)
    arch = base - np.stack([np.zeros_like(uu), depth], axis=1)
    o.extend(arch)
    extra["lateral_box"] = p_el - np.array([0.0, sh.implant["box_h"]])
    extra["medial_box"] = p_em - np.array([0.0, sh.implant["box_h"]])
    o.tag_here("medial_notch_edge", p_em)
    # medial condyle: inner-lower quadrant (theta th_em -> 0 is outward: use mirrored angles)
    # in the medial condyle, "inward" is +x: angles from th_em down to 0? No: medial inner side
    # is toward +x, so the inner-lower quadrant is theta in [0, pi/2]; outer-lower [pi/2, pi].
    th3 = np.arange(th_em, np.pi / 2, STEP / max(am, bm))[1:]
    o.extend(superellipse((xcm, ycm), am, bm, nm, th3, four_m))
    th4 = np.arange(np.pi / 2, np.pi, STEP / max(am, bm))
    q4 = superellipse((xcm, ycm), am, bm, nm, th4, four_m)
    q4[:, 0] -= f["osteo_m"] * np.exp(-((th4 - (np.pi - 0.35)) / 0.18) ** 2)
    j_cm = int(np.argmin(np.abs(th4 - (np.pi - ce_th))))
    o.extend(q4[:j_cm])
    o.tag_here("medial_corner_end", q4[j_cm])
    o.extend(q4[j_cm + 1:])
    # medial side up the shaft
    t_med = np.concatenate([[-ycm], np.arange(-ycm + STEP, t_top, STEP), [t_top]])
    t_run = np.unique(np.concatenate([t_med, levels]))
    pts = np.stack([side_x(t_run, "medial", -1.0), -t_run], axis=1)
    start = o._n
    o.extend(pts, last="medial_top")
    allp = o.points
    for i, lv in enumerate(levels):
        j = start + int(np.argmin(np.abs(t_run - lv)))
        o.tags[f"medial_cortex_{i}"] = j
        extra[f"medial_cortex_{i}"] = allp[j]
    extra["axis"] = np.array([centre(np.array([0.0]))[0], 0.0])
    return o, extra


def _tibia(sh: KneeShape) -> Outline:
    """Tibia outline in the tibial frame: lateral shaft up, over the plateau, medial down."""
    t = sh.tibia
    beta = np.radians(t["beta"])
    y_bot = 3.2

    def centre(y: FloatArray) -> FloatArray:
        return np.tan(beta) * y + _bow(y, t["bow"], 0.3, 2.4)

    def side_x(y: FloatArray, sgn: float, side: str) -> FloatArray:
        hs = t["hs"] * (1.0 + t["taper"] * np.clip(y - 0.5, 0.0, None))
        e = np.exp(-(np.clip(y - t["knee_y"], 0.0, None) / t["flare_d"]) ** t["flare_p"])
        bulge = t[f"bulge_{side[0]}"] * np.sin(np.pi * np.clip(y / 0.25, 0.0, 1.0))
        osteo = t[f"osteo_{side[0]}"] * np.exp(-((y - 0.03) / 0.025) ** 2) * (y > 0.004)
        x = (centre(y) + sgn * hs) * (1.0 - e) + sgn * (0.5 + bulge + osteo) * e
        return x

    o = Outline()
    levels = list(TIBIA_LEVELS)
    dl, dm = t["corner_dl"], t["corner_dm"]
    y_run = np.unique(np.concatenate([np.arange(0.0, y_bot, STEP), [y_bot], levels]))[::-1]
    y_run = y_run[y_run > 0]
    pts = np.stack([side_x(y_run, 1.0, "lateral"), y_run + dl * (1 - np.clip(y_run / 0.3, 0, 1))],
                   axis=1)
    o.extend(pts[:1], first="lateral_bottom")
    o.extend(pts[1:])
    allp = o.points
    for i, lv in enumerate(levels):
        o.tags[f"lateral_cortex_{i}"] = int(np.argmin(np.abs(y_run - lv)))
    del allp
    o.tag_here("lateral_corner", [0.5, dl])
    # plateau top: x from +0.5 to -0.5
    xs = np.arange(0.5 - STEP, -0.5, -STEP / 2)
    if sh.post_op:
        ytop = dl + (dm - dl) * (0.5 - xs)
        sp_l = 0.5 * (t["sp_l_x"] + 0.5)
        sp_m = -0.5 * (t["sp_m_x"] + 0.5)
        spine_mid = 0.0
    else:
        base = np.where(xs > 0, dl * (2 * xs) - t["conv_l"] * np.sin(np.pi * np.clip(
            (0.5 - xs) / 0.45, 0, 1)), dm * (-2 * xs) + t["conc_m"] * np.sin(np.pi * np.clip(
                (xs + 0.5) / 0.45, 0, 1)))
        q = t["sp_q"]
        bl = t["sp_l_h"] * np.clip(1 - np.abs((xs - t["sp_l_x"]) / t["sp_l_w"]) ** q, 0,
                                   None) ** (1 / q)
        bm = t["sp_m_h"] * np.clip(1 - np.abs((xs + t["sp_m_x"]) / t["sp_m_w"]) ** q, 0,
                                   None) ** (1 / q)
        ytop = np.minimum(base - bl, base - bm)
        ytop = np.minimum(ytop, base)
        sp_l = t["sp_l_x"] + t["sp_l_w"]
        sp_m = -(t["sp_m_x"] + t["sp_m_w"])
        between = (xs < t["sp_l_x"]) & (xs > -t["sp_m_x"])
        spine_mid = float(xs[between][np.argmax(ytop[between])]) if between.any() else 0.0
    top = np.stack([xs, ytop], axis=1)
    for name, xv in (("lateral_spine_base", sp_l), ("spine_mid", spine_mid),
                     ("medial_spine_base", sp_m)):
        j = int(np.argmin(np.abs(xs - xv)))
        top_idx = j
        o.tags[name] = o._n + top_idx
    o.extend(top)
    o.tag_here("medial_corner", [-0.5, dm])
    y_run = np.unique(np.concatenate([np.arange(STEP, y_bot, STEP), [y_bot], levels]))
    pts = np.stack([side_x(y_run, -1.0, "medial"), y_run + dm * (1 - np.clip(y_run / 0.3, 0, 1))],
                   axis=1)
    start = o._n
    o.extend(pts, last="medial_bottom")
    for i, lv in enumerate(levels):
        o.tags[f"medial_cortex_{i}"] = start + int(np.argmin(np.abs(y_run - lv)))
    return o


def _fibula_shaft(sh: KneeShape) -> FloatArray:
    p = sh.fibula
    y0 = p["y"] + 0.3 * p["b"]
    ys = np.linspace(y0, 3.2, 80)
    cx = p["x"] + p["lean"] * (ys - y0)
    hw = p["shaft_hw"] * (1 + 0.6 * np.exp(-((ys - y0) / 0.25) ** 2))
    return np.vstack([np.stack([cx + hw, ys], 1), np.stack([cx - hw, ys], 1)[::-1]])


def _rigid(points: FloatArray, angle_deg: float, shift: FloatArray) -> FloatArray:
    a = np.radians(angle_deg)
    r = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    return points @ r.T + shift


def _place_femur(sh: KneeShape, o: Outline) -> tuple[float, FloatArray]:
    """Rotation (deg) and shift that seat the femur on the tibia with the sampled gaps."""
    f = sh.femur
    pl = np.array([f["ext_l"] - f["a_l"], f["low_l"]])
    pm = np.array([-(f["ext_m"] - f["a_m"]), f["low_m"]])
    target_l = np.array([pl[0], sh.tibia["corner_dl"] - f["gap_l"]])
    target_m = np.array([pm[0], sh.tibia["corner_dm"] - f["gap_m"]])
    # rotation that makes pl->pm parallel to target_l->target_m (small angles)
    d0, d1 = pl - pm, target_l - target_m
    ang = float(np.degrees(np.arctan2(d1[1], d1[0]) - np.arctan2(d0[1], d0[0])))
    mid0 = 0.5 * (_rigid(pl[None], ang, np.zeros(2))[0] + _rigid(pm[None], ang, np.zeros(2))[0])
    shift = 0.5 * (target_l + target_m) - mid0
    shift[0] = 0.0 + f["shift"] * 0.3
    del o
    return ang, shift


def draw_knee(rng: np.random.Generator, post_op: bool) -> IndependentKnee:
    """Draw one knee: outlines, implants and true landmarks in mm (tibial frame).

    Parameters
    ----------
    rng
        Random generator (the caller's seed stream).
    post_op
        Draw a knee with a femoral component and a tibial tray.
    """
    sh = sample_shape(rng, post_op)
    sh.femur["alpha"] = 0.0
    tib = _tibia(sh)
    head = superellipse((sh.fibula["x"], sh.fibula["y"]), sh.fibula["a"], sh.fibula["b"],
                        sh.fibula["n"], np.linspace(0, 2 * np.pi, 360, endpoint=False),
                        tilt_deg=sh.fibula["tilt"])
    ang = np.radians(120.0 + np.arange(10) * 300.0 / 9.0)
    fib_marks = superellipse((sh.fibula["x"], sh.fibula["y"]), sh.fibula["a"], sh.fibula["b"],
                             sh.fibula["n"], ang, tilt_deg=sh.fibula["tilt"])
    # first pass with a straight femur to find the seating angle, then set the shaft lean so
    # the aTFA comes near the target (the truth is always measured from the landmarks)
    fem, _ = _femur(sh)
    rot, shift = _place_femur(sh, fem)
    for _ in range(3):
        fem, extra = _femur(sh)
        pts = _assemble(sh, fem, extra, tib, fib_marks, rot, shift)
        err = sh.target_atfa - atfa_all(pts)["FTS"]
        sh.femur["alpha"] += err
        if abs(err) < 0.05:
            break
    fem, extra = _femur(sh)
    pts = _assemble(sh, fem, extra, tib, fib_marks, rot, shift)
    femur_outline = _rigid(fem.points, rot, shift)
    outlines = {"femur": femur_outline, "tibia": tib.points, "fibula": head,
                "fibula_shaft": _fibula_shaft(sh)}
    pat = sh.patella
    outlines["patella"] = _rigid(superellipse(
        (pat["x"], pat["y"]), pat["a"], pat["b"], pat["n"],
        np.linspace(0, 2 * np.pi, 300, endpoint=False), tilt_deg=pat["tilt"]), rot, shift)
    metal: dict[str, FloatArray] = {}
    if post_op:
        fem_imp, comp, box = _femoral_component(sh, fem, extra)
        tib_imp, tray = _tibial_tray(sh, tib)
        metal["femoral"] = _rigid(comp, rot, shift)
        if sh.implant["ps"]:
            metal["femoral_box"] = _rigid(box, rot, shift)
        metal["tibial"] = tray
        pts = np.vstack([pts, _rigid(fem_imp, rot, shift), tib_imp])
    w = sh.width_mm
    a = np.radians(rot)
    fem_dir = np.array([-np.sin(a), np.cos(a)])
    frames = {"femur": (shift * w, fem_dir), "tibia": (np.zeros(2), np.array([0.0, 1.0]))}
    mm = pts * w
    return IndependentKnee(
        landmarks=mm, phase="post" if post_op else "pre", width_mm=w,
        outlines={k: v * w for k, v in outlines.items()},
        metal={k: v * w for k, v in metal.items()}, frames=frames,
        atfa_deg=atfa_all(mm), shape=sh,
    )


def _assemble(sh: KneeShape, fem: Outline, extra: dict[str, FloatArray], tib: Outline,
              fib_marks: FloatArray, rot: float, shift: FloatArray) -> FloatArray:
    """The 113 pre-operative landmarks in scheme order (tibial frame, plateau widths)."""
    del sh
    lat_c = np.array([fem.points[fem.tags[f"lateral_cortex_{i}"]] for i in range(8)])
    med_c = np.array([fem.points[fem.tags[f"medial_cortex_{i}"]] for i in range(8)])
    femur = np.vstack([
        lat_c,
        fem.between("lateral_cortex_7", "lateral_corner_end", 12, start=False, end=True),
        fem.between("lateral_corner_end", "lateral_notch_edge", 6, start=False, end=False),
        fem.between("lateral_notch_edge", "medial_notch_edge", 9, start=True, end=True),
        fem.between("medial_notch_edge", "medial_corner_end", 6, start=False, end=False),
        fem.between("medial_corner_end", "medial_cortex_7", 12, start=True, end=False),
        med_c[::-1],
    ])
    femur = _rigid(femur, rot, shift)
    tl = np.array([tib.points[tib.tags[f"lateral_cortex_{i}"]] for i in range(6)])
    tm = np.array([tib.points[tib.tags[f"medial_cortex_{i}"]] for i in range(6)])
    tibia = np.vstack([
        tl,
        tib.between("lateral_cortex_5", "lateral_corner", 5, start=False, end=False),
        tib.point("lateral_corner")[None],
        tib.between("lateral_corner", "lateral_spine_base", 6, start=False, end=False),
        tib.between("lateral_spine_base", "spine_mid", 3, start=False, end=False),
        tib.between("spine_mid", "medial_spine_base", 3, start=False, end=False),
        tib.between("medial_spine_base", "medial_corner", 6, start=False, end=False),
        tib.point("medial_corner")[None],
        tib.between("medial_corner", "medial_cortex_5", 5, start=False, end=False),
        tm[::-1],
    ])
    out = np.vstack([femur, tibia, fib_marks])
    if out.shape[0] != lm.N_PRE_OP:
        raise AssertionError(f"assembled {out.shape[0]} landmarks, expected {lm.N_PRE_OP}")
    return out


def _femoral_component(sh: KneeShape, fem: Outline,
                       extra: dict[str, FloatArray]) -> tuple[FloatArray, FloatArray, FloatArray]:
    """The femoral component (outline, box) and its 16 landmarks (femoral frame)."""
    imp = sh.implant
    p = fem.points
    i_ce_l, i_ce_m = fem.tags["lateral_corner_end"], fem.tags["medial_corner_end"]
    y_ce_l, y_ce_m = p[i_ce_l, 1], p[i_ce_m, 1]
    # top of the component on each side: where the outline crosses y = corner_end - top
    yl, ym = y_ce_l - imp["top_l"], y_ce_m - imp["top_m"]
    lat_side = np.arange(fem.tags["lateral_cortex_7"], i_ce_l + 1)
    med_side = np.arange(i_ce_m, fem.tags["medial_cortex_7"] + 1)
    il = lat_side[int(np.argmin(np.abs(p[lat_side, 1] - yl)))]
    im = med_side[int(np.argmin(np.abs(p[med_side, 1] - ym)))]
    fem.tags["imp_top_l"], fem.tags["imp_top_m"] = int(il), int(im)
    p_tl, p_tm = p[il], p[im]
    tt = np.linspace(0.0, 1.0, 24)[1:-1]
    arch = (p_tm[None] * (1 - tt[:, None]) + p_tl[None] * tt[:, None]
            - np.array([0.0, 1.0]) * imp["flange"] * np.sin(np.pi * tt)[:, None])
    comp = np.vstack([p[il:im + 1], arch])
    el, em = fem.point("lateral_notch_edge"), fem.point("medial_notch_edge")
    bl, bm = extra["lateral_box"], extra["medial_box"]
    box = np.array([el, bl, bm, em])
    marks = np.vstack([
        p_tl[None],
        fem.between("imp_top_l", "lateral_corner_end", 3, start=False, end=False),
        p[i_ce_l][None],
        fem.between("lateral_corner_end", "lateral_notch_edge", 1, start=False, end=False),
        el[None], bl[None], bm[None], em[None],
        fem.between("medial_notch_edge", "medial_corner_end", 1, start=False, end=False),
        p[i_ce_m][None],
        fem.between("medial_corner_end", "imp_top_m", 3, start=False, end=False),
        p_tm[None],
    ])
    return marks, comp, box


def _tibial_tray(sh: KneeShape, tib: Outline) -> tuple[FloatArray, FloatArray]:
    """The tibial tray with keel (outline) and its 12 landmarks (tibial frame)."""
    imp = sh.implant
    cl, cm = tib.point("lateral_corner"), tib.point("medial_corner")
    th = max(cl[1], cm[1]) + imp["tray"]
    kw, kl = imp["keel_w"], imp["keel"]
    tray = np.array([
        cl, cm, [cm[0], th], [-0.5 * kw, th], [-0.32 * kw, th + 0.8 * kl],
        [-0.12 * kw, th + kl], [0.12 * kw, th + kl], [0.32 * kw, th + 0.8 * kl],
        [0.5 * kw, th], [cl[0], th],
    ])
    marks = np.array([
        cl, cl + (cm - cl) / 3, cl + 2 * (cm - cl) / 3, cm, [cm[0], th], [-0.5 * kw, th],
        [-0.32 * kw, th + 0.8 * kl], [0.0, th + kl], [0.32 * kw, th + 0.8 * kl],
        [0.5 * kw, th], [cl[0], th], [cl[0], 0.5 * (cl[1] + th)],
    ])
    return marks, tray
