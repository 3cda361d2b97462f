"""Parametric knee anatomy in the anatomical frame, with the true landmarks.

Anatomical frame: millimetres, a LEFT knee seen AP (patient facing the viewer), so
``+x`` is lateral, ``+y`` is distal, origin at the mid-point of the tibial plateau
corners.  Right knees are made by mirroring later (``acquisition``).

Every outline is a :class:`~training.synth.contour.Curve` through knots; the
landmarks of :mod:`inference.landmarks` are knots or arc-length points between
knots, so they lie on the outlines that are rendered.  The aTFA is built in by
construction: the femoral shaft is bent by ``alpha`` against the condyles, the
tibial shaft by ``beta`` against the plateau, the femur is tilted by ``gamma`` on
the tibia (joint-space asymmetry), and a final rigid turn of the femur makes the
FTS angle measured from the landmarks equal the sampled target exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from inference import landmarks as lm
from inference.alignment import atfa
from training.synth.contour import Curve, spline

FloatArray = npt.NDArray[np.float64]

#: Shaft levels (units of plateau width) of the cortex landmarks, proximal to distal.
#: The shaft pairs (femur 0 and 3, tibia 0 and 2) are far apart, for a stable axis, and
#: every point stays inside the local reference frame of ``inference.landmarks``.
FEMUR_CORTEX_LEVELS = np.array([-1.56, -1.35, -1.14, -0.92, -0.80, -0.70, -0.60, -0.50])
TIBIA_CORTEX_LEVELS = np.array([1.38, 1.18, 0.80, 0.68, 0.58, 0.50])
#: Where the shaft bends (alpha, beta) fade in: rigid beyond, so the shaft pairs are collinear.
FEMUR_BEND = (0.3, 0.75)
TIBIA_BEND = (0.3, 0.62)


class _Knots:
    """Ordered knots with named anchors."""

    def __init__(self) -> None:
        self.pts: list[tuple[float, float]] = []
        self.tag: dict[str, int] = {}

    def add(self, x: float, y: float, name: str | None = None) -> None:
        if name is not None:
            self.tag[name] = len(self.pts)
        self.pts.append((float(x), float(y)))

    def array(self) -> FloatArray:
        return np.asarray(self.pts, dtype=np.float64)


def _rot(points: FloatArray, angle_deg: float, pivot: FloatArray) -> FloatArray:
    a = np.radians(angle_deg)
    c, s = np.cos(a), np.sin(a)
    p = points - pivot
    return np.stack([p[..., 0] * c - p[..., 1] * s, p[..., 0] * s + p[..., 1] * c], -1) + pivot


def _bend(points: FloatArray, angle_deg: float, y_start: float, y_full: float) -> FloatArray:
    """Turn points by ``angle_deg`` about (0, y_start), fading in from y_start to y_full.

    Points beyond ``y_full`` (away from the joint) turn rigidly, so a straight shaft
    stays straight; points on the joint side of ``y_start`` do not move.
    """
    g = np.clip((points[:, 1] - y_start) / (y_full - y_start), 0.0, 1.0)
    g = g * g * (3 - 2 * g)
    a = np.radians(angle_deg) * g
    c, s = np.cos(a), np.sin(a)
    p = points - np.array([0.0, y_start])
    out = np.stack([p[:, 0] * c - p[:, 1] * s, p[:, 0] * s + p[:, 1] * c], -1)
    return out + np.array([0.0, y_start])


@dataclass
class KneeParams:
    """Everything random about one knee (lengths in plateau widths, angles in degrees)."""

    width_mm: float
    target_atfa: float
    alpha: float  # femoral shaft against the condyles (valgus positive)
    beta: float  # tibial shaft against the plateau (valgus positive)
    gamma: float  # femur tilt on the tibia from joint-space asymmetry (valgus positive)
    gap_min: float  # narrowest joint space
    post_op: bool
    femur: dict[str, float] = field(default_factory=dict)
    tibia: dict[str, float] = field(default_factory=dict)
    fibula: dict[str, float] = field(default_factory=dict)
    patella: dict[str, float] = field(default_factory=dict)
    implant: dict[str, float] = field(default_factory=dict)
    bone: dict[str, float] = field(default_factory=dict)


def sample_params(rng: np.random.Generator, post_op: bool) -> KneeParams:
    """Draw one knee."""
    u = rng.uniform
    width = float(np.clip(rng.normal(75.0, 6.0), 60.0, 92.0))
    if post_op:
        target = (float(np.clip(rng.normal(5.0, 4.0), -15.0, 20.0)) if u() < 0.8
                  else float(u(-15, 20)))
    else:
        r = u()
        if r < 0.35:
            target = float(u(-15.0, 20.0))
        elif r < 0.7:
            target = float(rng.normal(4.0, 4.0))
        else:
            target = float(u(-15.0, 0.0)) if u() < 0.6 else float(u(8.0, 20.0))
        target = float(np.clip(target, -16.0, 21.0))
    if post_op:
        gamma = float(u(-1.5, 1.5))
        beta = float(rng.normal(0.0, 1.5))
        gap = float(u(0.10, 0.15))
    else:
        # joint-space narrowing follows the deformity: medial in varus, lateral in valgus
        lean = np.clip((target - 4.0) / 12.0, -1.0, 1.0)
        gamma = float(np.clip(3.5 * lean + rng.normal(0, 1.0), -5.0, 5.0))
        beta = float(rng.normal(-2.0, 1.5))
        gap = float(u(0.005, 0.035) if abs(lean) > 0.4 else u(0.02, 0.07))
    alpha0 = float(rng.normal(7.0, 1.5))
    resid = target - (alpha0 + beta + gamma)
    share = float(u(0.3, 0.7))
    alpha = alpha0 + share * resid
    beta = beta + (1 - share) * resid
    p = KneeParams(width_mm=width, target_atfa=target, alpha=alpha, beta=beta, gamma=gamma,
                   gap_min=gap, post_op=post_op)
    p.femur = {
        "hs": u(0.165, 0.215), "ext_l": u(0.47, 0.54), "ext_m": u(0.50, 0.58),
        "y_epi_l": u(-0.32, -0.22), "y_epi_m": u(-0.34, -0.24), "flare": u(-0.95, -0.78),
        "flare_pow": u(1.8, 2.8), "r_l": u(0.15, 0.23), "r_m": u(0.16, 0.25),
        "y_l": u(-0.03, 0.01), "y_m": u(-0.01, 0.02), "nw": u(0.10, 0.15),
        "nh": u(0.17, 0.27),
        "shift": u(-0.04, 0.04), "osteo_l": 0.0, "osteo_m": 0.0,
    }
    p.tibia = {
        "ht": u(0.15, 0.2), "flare": u(0.68, 0.85), "flare_pow": u(1.9, 3.0),
        "bulge": u(0.0, 0.02), "y_m_lvl": u(0.08, 0.16), "sh_l": u(0.06, 0.11),
        "sh_m": u(0.07, 0.12),
        "conv_l": u(-0.015, 0.005), "conc_m": u(0.0, 0.02), "osteo_l": 0.0, "osteo_m": 0.0,
    }
    if not post_op and u() < 0.55:  # osteoarthritis: spurs at the joint margins
        for d in (p.femur, p.tibia):
            d["osteo_l"] = u(0.0, 0.05) if u() < 0.7 else 0.0
            d["osteo_m"] = u(0.0, 0.06) if u() < 0.8 else 0.0
    p.fibula = {"x": u(0.42, 0.52), "y": u(0.2, 0.32), "hw": u(0.1, 0.15), "hh": u(0.13, 0.18),
                "sw": u(0.06, 0.09), "tilt": u(-3.0, 3.0)}
    p.patella = {"x": u(0.0, 0.12), "y": u(-0.55, -0.4), "a": u(0.22, 0.3), "b": u(0.25, 0.32),
                 "pole": u(0.0, 0.08)}
    p.implant = {
        "ext": u(0.47, 0.53), "r": u(0.15, 0.21), "nw": u(0.09, 0.12), "nh": u(0.12, 0.18),
        "top_l": u(0.32, 0.42), "top_m": u(0.32, 0.42), "flange": u(0.01, 0.06),
        "cut": u(0.06, 0.11), "tray": u(0.045, 0.07), "tray_l": u(-0.02, 0.015),
        "tray_m": u(-0.02, 0.015), "keel": u(0.38, 0.55), "keel_w": u(0.16, 0.24),
        "posterior_stabilised": float(u() < 0.6), "box_level": u(0.9, 1.0),
    }
    p.bone = {
        "cortex_shaft": u(3.0, 6.5), "cortex_end": u(0.8, 1.6), "density": u(0.8, 1.2),
        "sclerosis": u(0.0, 1.0) if gap < 0.03 else u(0.0, 0.25),
        "canal": u(0.15, 0.4), "texture": u(0.08, 0.22),
    }
    return p


def _femur_knots(f: dict[str, float], implant: dict[str, float] | None) -> _Knots:
    """Femur outline (units of w, unbent): lateral shaft down, round, up the medial shaft."""
    k = _Knots()
    hs = f["hs"]
    if implant is not None:  # resurfaced: the component's regular shape
        ext_l = ext_m = implant["ext"]
        r_l = r_m = implant["r"]
        y_l = y_m = 0.0
        nw, nh = implant["nw"], implant["nh"]
    else:
        ext_l, ext_m, r_l, r_m = f["ext_l"], f["ext_m"], f["r_l"], f["r_m"]
        y_l, y_m, nw, nh = f["y_l"], f["y_m"], f["nw"], f["nh"]

    def half_width(y: float, ext: float, y_epi: float) -> float:
        if y <= f["flare"]:
            return hs
        g = (y - f["flare"]) / (y_epi - f["flare"])
        return hs + (ext - hs) * min(g, 1.0) ** f["flare_pow"]

    for side, sgn, ext, y_epi, r, y_c, osteo in (
        ("lateral", 1.0, ext_l, f["y_epi_l"], r_l, y_l, f["osteo_l"]),
        ("medial", -1.0, ext_m, f["y_epi_m"], r_m, y_m, f["osteo_m"]),
    ):
        seq: list[tuple[float, float, str | None]] = []
        seq.append((hs, -4.5, None))
        seq.append((hs, -3.0, None))
        seq.append((hs, -2.2, None))
        for i, y in enumerate(FEMUR_CORTEX_LEVELS):
            seq.append((half_width(y, ext, y_epi), y, f"{side}_cortex_{i}"))
        ym = 0.5 * (FEMUR_CORTEX_LEVELS[-1] + y_epi)
        seq.append((half_width(ym, ext, y_epi), ym, None))
        seq.append((ext, y_epi, f"{side}_epi"))
        cy = y_c - r
        ym2 = 0.5 * (y_epi + cy)
        seq.append((ext + 0.5 * osteo, ym2 + 0.03, None))
        for j, th in enumerate(np.radians([0.0, 40.0, 70.0, 90.0])):
            x = ext - r + r * np.cos(th)
            y = cy + r * np.sin(th)
            if j == 0:
                x += osteo
            seq.append((x, y, f"{side}_corner_end" if j == 3 else None))
        xa = ext - r
        if implant is not None:
            xe = nw + 0.012
            seq.append((0.5 * (xa + xe), y_c, None))
            seq.append((xe, y_c - 0.006, f"{side}_notch_edge"))
            seq.append((nw, y_c - 0.03, None))
            seq.append((nw, -nh + 0.025, None))
            seq.append((nw - 0.015, -nh, f"{side}_box"))
        else:
            xe = nw + 0.02
            seq.append((0.5 * (xa + xe), y_c + 0.006, None))
            seq.append((xe, y_c - 0.012, f"{side}_notch_edge"))
            seq.append((nw, y_c - 0.05, None))
            seq.append((nw * 0.85, -nh * 0.6, None))
            seq.append((nw * 0.5, -nh * 0.93, None))
        if side == "lateral":
            for x, y, name in seq:
                k.add(sgn * x, y, name)
            k.add(0.0, -nh, "notch_roof")
        else:
            for x, y, name in reversed(seq):
                k.add(sgn * x, y, name)
    return k


def _tibia_knots(t: dict[str, float], implant: dict[str, float] | None) -> _Knots:
    """Tibia outline (units of w, unbent): lateral shaft up, over the plateau, down medially."""
    k = _Knots()
    ht = t["ht"]

    def half_width(y: float) -> float:
        if y >= t["flare"]:
            return ht
        g = (t["flare"] - y) / (t["flare"] - t["y_m_lvl"])
        return ht + (0.5 + t["bulge"] - ht) * min(g, 1.0) ** t["flare_pow"]

    sides = []
    for side, sgn, osteo in (("lateral", 1.0, t["osteo_l"]), ("medial", -1.0, t["osteo_m"])):
        seq: list[tuple[float, float, str | None]] = [(ht, 4.5, None), (ht, 3.0, None),
                                                      (ht, 2.1, None)]
        for i, y in enumerate(TIBIA_CORTEX_LEVELS):
            seq.append((half_width(y), y, f"{side}_cortex_{i}"))
        seq.append((half_width(0.4), 0.4, None))
        seq.append((half_width(0.25), 0.25, None))
        if implant is not None:
            cut = implant["cut"]
            top = cut - implant["tray"]
            xt = 0.5 + implant["tray_l" if side == "lateral" else "tray_m"]
            seq.append((half_width(t["y_m_lvl"]), max(t["y_m_lvl"], cut + 0.05), None))
            seq.append((xt, cut + 0.004, None))
            seq.append((xt, cut - 0.004, None))
            seq.append((xt, top + 0.004, None))
            seq.append((xt, top, f"{side}_corner"))
            seq.append((xt - 0.004, top, None))
            seq.append((0.3, top, None))
            seq.append((0.14, top, f"{side}_spine_base"))
            seq.append((0.07, top, None))
        else:
            seq.append((0.5 + t["bulge"], t["y_m_lvl"], None))
            seq.append((0.5 + 0.4 * t["bulge"] + osteo, 0.045, None))
            seq.append((0.5, 0.0, f"{side}_corner"))
            if side == "lateral":
                seq.append((0.38, -0.012 + t["conv_l"], None))
                seq.append((0.25, -0.014 + t["conv_l"], None))
                seq.append((0.15, -0.018, f"{side}_spine_base"))
                sh = t["sh_l"]
                seq.append((0.105, -0.5 * sh, None))
                seq.append((0.065, -sh, None))
                seq.append((0.03, -0.65 * sh, None))
            else:
                seq.append((0.38, 0.004 + t["conc_m"] * 0.6, None))
                seq.append((0.25, 0.004 + t["conc_m"], None))
                seq.append((0.16, -0.012, f"{side}_spine_base"))
                sh = t["sh_m"]
                seq.append((0.11, -0.45 * sh, None))
                seq.append((0.07, -sh, None))
                seq.append((0.032, -0.65 * sh, None))
        sides.append((sgn, seq))
    sgn, seq = sides[0]
    for x, y, name in seq:
        k.add(sgn * x, y, name)
    if implant is not None:
        k.add(0.0, implant["cut"] - implant["tray"], "spine_mid")
    else:
        k.add(0.0, -0.5 * min(t["sh_l"], t["sh_m"]), "spine_mid")
    sgn, seq = sides[1]
    for x, y, name in reversed(seq):
        k.add(sgn * x, y, name)
    return k


def _fibula_knots(fb: dict[str, float]) -> _Knots:
    """Fibula outline (units of w, tibia frame): closed, the head's landmarks named."""
    k = _Knots()
    x, y, hw, hh, sw = fb["x"], fb["y"], fb["hw"], fb["hh"], fb["sw"]
    k.add(x + 0.05 + sw, 4.5)
    k.add(x + 0.04 + sw, 2.0)
    k.add(x + sw * 1.05, y + hh + 0.35)
    k.add(x + sw * 1.2, y + hh + 0.12, "neck_lateral")
    k.add(x + hw * 0.95, y + hh * 0.25)
    k.add(x + hw * 0.85, y - hh * 0.45)
    k.add(x + hw * 0.45, y - hh * 0.95)  # styloid
    k.add(x + hw * 0.05, y - hh * 0.8)
    k.add(x - hw * 0.6, y - hh * 0.75)
    k.add(x - hw * 0.95, y - hh * 0.2)
    k.add(x - hw * 0.8, y + hh * 0.5)
    k.add(x - sw * 1.1, y + hh + 0.12, "neck_medial")
    k.add(x - sw, y + hh + 0.35)
    k.add(x + 0.04 - sw, 2.0)
    k.add(x + 0.05 - sw, 4.5)
    return k


@dataclass(frozen=True)
class KneeAnatomy:
    """One knee in the anatomical frame (mm, left knee).

    Attributes
    ----------
    landmarks
        ``(N, 2)`` true landmarks in scheme order (113 pre-op, 141 post-op).
    bones
        Name -> closed outline ``(M, 2)`` (femur, tibia, fibula, patella).
    metal
        Name -> closed outline of implant parts (femoral, femoral_box, tibial); empty pre-op.
    axes
        Name -> (origin, unit direction distal) of each bone, for cortical thickness maps.
    built_in_atfa
        The target aTFA (FTS) the knee was built with.
    params
        The sampled parameters.
    """

    landmarks: FloatArray
    bones: dict[str, FloatArray]
    metal: dict[str, FloatArray]
    axes: dict[str, tuple[FloatArray, FloatArray]]
    built_in_atfa: float
    params: KneeParams


def _close_far(curve: Curve) -> FloatArray:
    """The dense outline as a closed polygon (open ends joined far from the joint)."""
    return curve.points


def build_knee(p: KneeParams) -> KneeAnatomy:
    """Build outlines and landmarks of one knee from its parameters."""
    w = p.width_mm
    imp = p.implant if p.post_op else None
    # --- tibia (fixed): bend its shaft by beta (valgus = distal shaft turns lateral, +x)
    tk = _tibia_knots(p.tibia, imp)
    tknots = _bend(tk.array(), -p.beta, *TIBIA_BEND)
    tib = spline(tknots * w, samples=8)
    # --- femur: bend by alpha (valgus = proximal shaft leans lateral)
    fk = _femur_knots(p.femur, imp)
    fknots = _bend(fk.array() * np.array([1.0, -1.0]), -p.alpha,
                   *FEMUR_BEND) * np.array([1.0, -1.0])
    fknots = _rot(fknots, p.gamma, np.array([0.0, 0.0]))
    # seat the femur on the tibia: narrowest gap = gap_min
    fem0 = spline(fknots * w, samples=8)
    fem0_pts = fem0.points
    dx = p.femur["shift"] * w
    # move the femur distally until its narrowest joint space is gap_min
    drop = _seat(fem0_pts + np.array([dx, 0.0]), tib.points, w) - p.gap_min * w
    shift = np.array([dx, drop])
    fknots_mm = fknots * w + shift
    fem = spline(fknots_mm, samples=8)
    pts = _landmarks(fem, fk, tib, tk, None, None)
    # exact angle: rigid turn of the femur about the joint centre by the residual
    for _ in range(3):
        resid = p.target_atfa - atfa(pts, "FTS")
        if abs(resid) < 1e-9:
            break
        pivot = np.array([dx, -p.gap_min * w])
        fknots_mm = _rot(fknots_mm, resid, pivot)
        fem = spline(fknots_mm, samples=8)
        pts = _landmarks(fem, fk, tib, tk, None, None)
        resid2 = p.target_atfa - atfa(pts, "FTS")
        if abs(resid2) > abs(resid):  # wrong sense of turning: undo twice
            fknots_mm = _rot(fknots_mm, -2 * resid, pivot)
            fem = spline(fknots_mm, samples=8)
            pts = _landmarks(fem, fk, tib, tk, None, None)
    fb = _fibula_knots(p.fibula)
    fknots_fib = _rot(fb.array(), p.fibula["tilt"], np.array([p.fibula["x"], p.fibula["y"]]))
    fknots_fib = _bend(fknots_fib, -p.beta, *TIBIA_BEND)
    fib = spline(fknots_fib * w, closed=False, samples=8)
    head = fib.between(fb.tag["neck_medial"], fb.tag["neck_lateral"], 10, start=True, end=True)
    # fibula knots run lateral-distal -> head -> medial-distal; landmarks medial -> lateral
    metal: dict[str, FloatArray] = {}
    implant_pts: FloatArray | None = None
    if imp is not None:
        implant_pts, metal = _implants(fem, fk, tib, tk, imp, w)
    pts = _landmarks(fem, fk, tib, tk, head, implant_pts)
    # patella, in the femur's frame (follows the femoral turn)
    pat = _patella(p.patella) * w
    fem_axis_o, fem_axis_d = _axis(pts, "femur")
    ang = np.degrees(np.arctan2(fem_axis_d[0], fem_axis_d[1]))
    pat = _rot(pat + np.array([dx, 0.0]), -ang, np.array([dx, 0.0]))
    trochlea = _trochlea(fem, fk)
    bones = {"femur": _close_far(fem), "tibia": _close_far(tib), "fibula": fib.points,
             "patella": pat, "trochlea": trochlea}
    axes = {"femur": (fem_axis_o, fem_axis_d), "tibia": _axis(pts, "tibia")}
    axes["fibula"] = axes["tibia"]
    axes["patella"] = axes["femur"]
    axes["trochlea"] = axes["femur"]
    return KneeAnatomy(landmarks=pts, bones=bones, metal=metal, axes=axes,
                       built_in_atfa=p.target_atfa, params=p)


def _axis(pts: FloatArray, bone: str) -> tuple[FloatArray, FloatArray]:
    """Origin (shaft centre nearest the joint) and distal unit direction of a bone."""
    if bone == "femur":
        a = 0.5 * (pts[lm.FEMUR_SHAFT_PROXIMAL.medial] + pts[lm.FEMUR_SHAFT_PROXIMAL.lateral])
        b = 0.5 * (pts[lm.FEMUR_SHAFT_DISTAL.medial] + pts[lm.FEMUR_SHAFT_DISTAL.lateral])
        d = (b - a) / np.linalg.norm(b - a)
        notch = 0.5 * (pts[lm.FEMUR_NOTCH.medial] + pts[lm.FEMUR_NOTCH.lateral])
        return notch, d
    a = 0.5 * (pts[lm.TIBIA_SHAFT_PROXIMAL.medial] + pts[lm.TIBIA_SHAFT_PROXIMAL.lateral])
    b = 0.5 * (pts[lm.TIBIA_SHAFT_DISTAL.medial] + pts[lm.TIBIA_SHAFT_DISTAL.lateral])
    d = (b - a) / np.linalg.norm(b - a)
    mid = 0.5 * (pts[lm.PLATEAU_MEDIAL_CORNER] + pts[lm.PLATEAU_LATERAL_CORNER])
    return mid, d


def _seat(femur: FloatArray, tibia: FloatArray, w: float) -> float:
    """Smallest vertical distance from the femoral condyles down to the tibial plateau."""
    xs = np.linspace(-0.45 * w, 0.45 * w, 61)
    top = tibia[tibia[:, 1] < 0.2 * w]
    bot = femur[femur[:, 1] > -0.3 * w]

    def lower_env(poly: FloatArray, upper: bool) -> FloatArray:
        out = np.full(xs.shape, np.nan)
        bins = np.digitize(poly[:, 0], xs)
        for b in range(1, len(xs)):
            sel = poly[bins == b, 1]
            if len(sel):
                out[b] = sel.min() if upper else sel.max()
        return out

    t = lower_env(top, upper=True)
    f = lower_env(bot, upper=False)
    d = t - f
    return float(np.nanmin(d))


def _trochlea(fem: Curve, fk: _Knots) -> FloatArray:
    """The notch seen AP: bone of the trochlea and the posterior notch walls fill it faintly."""
    i0 = int(fem.knot_index[fk.tag["lateral_notch_edge"]])
    i1 = int(fem.knot_index[fk.tag["medial_notch_edge"]])
    return fem.points[i0:i1 + 1]


def _patella(pa: dict[str, float]) -> FloatArray:
    th = np.linspace(0, 2 * np.pi, 72, endpoint=False)
    x = pa["a"] * np.cos(th)
    y = pa["b"] * np.sin(th)
    y = y + pa["pole"] * np.clip(np.sin(th), 0, None) ** 4  # pointed distal pole
    return np.stack([x + pa["x"], y + pa["y"]], -1)


def _implants(fem: Curve, fk: _Knots, tib: Curve, tk: _Knots, imp: dict[str, float],
              w: float) -> tuple[FloatArray, dict[str, FloatArray]]:
    """Implant outlines (mm) and their 28 landmarks."""
    t = fk.tag
    # femoral component: the resurfaced outline below its top line
    y_lat = fem.knot(t["lateral_epi"])[1]
    y_med = fem.knot(t["medial_epi"])[1]
    top_l = max(y_lat, fem.knot(t["lateral_corner_end"])[1] - imp["top_l"] * w)
    top_m = max(y_med, fem.knot(t["medial_corner_end"])[1] - imp["top_m"] * w)
    p_top_l = fem.level_crossing(t["lateral_epi"], t["lateral_corner_end"], top_l)
    p_top_m = fem.level_crossing(t["medial_corner_end"], t["medial_epi"], top_m)
    s = fem.arc
    s_tl = _arc_of(fem, p_top_l, t["lateral_epi"], t["lateral_corner_end"])
    s_tm = _arc_of(fem, p_top_m, t["medial_corner_end"], t["medial_epi"])
    inside = (s > s_tl) & (s < s_tm)
    # top edge: the anterior flange, an arch rising toward the middle
    tt = np.linspace(0.0, 1.0, 9)[1:-1]
    arch = (p_top_m[None, :] * (1 - tt[:, None]) + p_top_l[None, :] * tt[:, None]
            - np.array([0.0, 1.0]) * imp["flange"] * w * np.sin(np.pi * tt)[:, None] ** 0.7)
    comp = np.vstack([p_top_l, fem.points[inside], p_top_m, arch])
    # the intercondylar box seen through the flange: thinner metal
    bl, bm = fem.knot(t["lateral_box"]), fem.knot(t["medial_box"])
    el, em = fem.knot(t["lateral_notch_edge"]), fem.knot(t["medial_notch_edge"])
    box = np.array([bl, [bl[0], bl[1] - 0.08 * w], [bm[0], bm[1] - 0.08 * w], bm])

    ce_l = fem.knot(t["lateral_corner_end"])
    ce_m = fem.knot(t["medial_corner_end"])

    def arc_pts(p_a: FloatArray, s_a: float, s_b: float, fr: npt.ArrayLike) -> FloatArray:
        del p_a
        return fem.at_arc(s_a + np.asarray(fr) * (s_b - s_a))

    s_cl = fem.arc[fem.knot_index[t["lateral_corner_end"]]]
    s_cm = fem.arc[fem.knot_index[t["medial_corner_end"]]]
    s_el = fem.arc[fem.knot_index[t["lateral_notch_edge"]]]
    s_em = fem.arc[fem.knot_index[t["medial_notch_edge"]]]
    fem_pts = np.vstack([
        p_top_l[None],
        arc_pts(p_top_l, s_tl, s_cl, [0.25, 0.5, 0.75]),
        ce_l[None],
        arc_pts(ce_l, s_cl, s_el, [0.5]),
        el[None], bl[None], bm[None], em[None],
        arc_pts(em, s_em, s_cm, [0.5]),
        ce_m[None],
        arc_pts(ce_m, s_cm, s_tm, [0.25, 0.5, 0.75]),
        p_top_m[None],
    ])
    # tibial tray with keel
    tags = tk.tag
    cl, cm = tib.knot(tags["lateral_corner"]), tib.knot(tags["medial_corner"])
    cut = imp["cut"] * w
    kw, kl = imp["keel_w"] * w, imp["keel"] * w
    tray = np.array([
        cl, [cm[0], cm[1]], [cm[0], cut], [-0.5 * kw, cut], [-0.3 * kw, cut + 0.8 * kl],
        [-0.15 * kw, cut + kl], [0.15 * kw, cut + kl], [0.3 * kw, cut + 0.8 * kl],
        [0.5 * kw, cut], [cl[0], cut],
    ])
    tib_pts = np.array([
        cl, cl + (cm - cl) / 3, cl + 2 * (cm - cl) / 3, cm, [cm[0], cut], [-0.5 * kw, cut],
        [-0.3 * kw, cut + 0.8 * kl], [0.0, cut + kl], [0.3 * kw, cut + 0.8 * kl],
        [0.5 * kw, cut], [cl[0], cut], [cl[0], 0.5 * (cl[1] + cut)],
    ])
    metal = {"femoral": comp, "tibial": tray}
    if imp["posterior_stabilised"]:  # the intercondylar box, seen through the flange
        metal["femoral_box"] = box
    return np.vstack([fem_pts, tib_pts]), metal


def _arc_of(c: Curve, p: FloatArray, ka: int, kb: int) -> float:
    i0, i1 = int(c.knot_index[ka]), int(c.knot_index[kb])
    seg = c.points[i0:i1 + 1]
    j = int(np.argmin(np.linalg.norm(seg - p, axis=1)))
    return float(c.arc[i0 + j] + np.linalg.norm(p - seg[j]) * (1 if j < len(seg) - 1 else 0))


def _landmarks(fem: Curve, fk: _Knots, tib: Curve, tk: _Knots, head: FloatArray | None,
               implant: FloatArray | None) -> FloatArray:
    """Assemble the landmark array in scheme order."""
    t = fk.tag
    lat_c = np.array([fem.knot(t[f"lateral_cortex_{i}"]) for i in range(8)])
    med_c = np.array([fem.knot(t[f"medial_cortex_{i}"]) for i in range(8)])
    parts = [
        lat_c,
        fem.between(t["lateral_cortex_7"], t["lateral_corner_end"], 12, start=False, end=True),
        fem.between(t["lateral_corner_end"], t["lateral_notch_edge"], 6, start=False, end=False),
        fem.between(t["lateral_notch_edge"], t["medial_notch_edge"], 9, start=True, end=True),
        fem.between(t["medial_notch_edge"], t["medial_corner_end"], 6, start=False, end=False),
        fem.between(t["medial_corner_end"], t["medial_cortex_7"], 12, start=True, end=False),
        med_c[::-1],
    ]
    u = tk.tag
    tl = np.array([tib.knot(u[f"lateral_cortex_{i}"]) for i in range(6)])
    tm = np.array([tib.knot(u[f"medial_cortex_{i}"]) for i in range(6)])
    parts += [
        tl,
        tib.between(u["lateral_cortex_5"], u["lateral_corner"], 5, start=False, end=False),
        tib.knot(u["lateral_corner"])[None],
        tib.between(u["lateral_corner"], u["lateral_spine_base"], 6, start=False, end=False),
        tib.between(u["lateral_spine_base"], u["spine_mid"], 3, start=False, end=False),
        tib.between(u["spine_mid"], u["medial_spine_base"], 3, start=False, end=False),
        tib.between(u["medial_spine_base"], u["medial_corner"], 6, start=False, end=False),
        tib.knot(u["medial_corner"])[None],
        tib.between(u["medial_corner"], u["medial_cortex_5"], 5, start=False, end=False),
        tm[::-1],
    ]
    parts.append(head if head is not None else np.zeros((10, 2)) + tib.knot(u["lateral_corner"]))
    if implant is not None:
        parts.append(implant)
    out = np.vstack(parts)
    assert out.shape[0] in (lm.N_PRE_OP, lm.N_POST_OP), out.shape
    return out
