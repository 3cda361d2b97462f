"""One leg's bones, implants and true landmarks, built from :class:`LegParams`.

Leg frame: millimetres at the patient, a LEFT leg seen AP (patient facing the viewer), so
``+x`` is lateral and ``+y`` distal; the origin is the knee centre (femoral notch point) and
the femoral mechanical axis is the ``-y`` axis (the head centre is at ``(0, -femur_mm)``).
Right legs are mirrored when placed (:mod:`training.synth_leg.study`).

The alignment is exact by construction:

* the condylar line is turned ``mLDFA - 90`` from the perpendicular of the femoral axis and
  the plateau line a further ``JLCA``;
* the tibial mechanical axis leaves the knee centre at ``HKA`` from the femoral axis, and the
  ankle centre lies on it at ``tibia_mm``; the malleoli are symmetric about it;
* the femoral shaft centreline leaves the knee centre at ``FVA`` from the mechanical axis;
  the diaphysis centre is on it, and the neck meets it at the neck-shaft angle;
* the shaft cortex pairs are symmetric about the shaft centrelines (with the bowing, the
  femoral FTS axis turns by a known angle).

Outlines are Catmull-Rom splines (:func:`training.synth.contour.spline`) through knots; the
landmarks are knots, so they lie on the rendered outlines (the head outline on its circle).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from inference.leg import geometry
from inference.leg import landmarks as leg
from training.synth.contour import spline
from training.synth_leg.params import LegParams

FloatArray = npt.NDArray[np.float64]


def distal_dir(phi_deg: float) -> FloatArray:
    """Unit vector pointing distally, turned ``phi_deg`` toward lateral."""
    a = np.radians(phi_deg)
    return np.array([np.sin(a), np.cos(a)])


def proximal_dir(phi_deg: float) -> FloatArray:
    """Unit vector pointing proximally, turned ``phi_deg`` toward lateral."""
    a = np.radians(phi_deg)
    return np.array([np.sin(a), -np.cos(a)])


def lateral_dir(theta_deg: float) -> FloatArray:
    """Unit vector pointing laterally, its lateral end turned ``theta_deg`` distally."""
    a = np.radians(theta_deg)
    return np.array([np.cos(a), np.sin(a)])


@dataclass(frozen=True)
class Frame:
    """A local frame: ``origin + u * lateral + v * distal`` (both unit vectors)."""

    origin: FloatArray
    lateral: FloatArray
    distal: FloatArray

    def at(self, u: float, v: float) -> FloatArray:
        """The point at local coordinates (u, v)."""
        return self.origin + u * self.lateral + v * self.distal

    def many(self, uv: npt.ArrayLike, scale: float = 1.0) -> FloatArray:
        """Points at local coordinates ``uv`` (``(K, 2)``) times ``scale``."""
        a = np.asarray(uv, dtype=np.float64) * scale
        return self.origin + a[:, :1] * self.lateral + a[:, 1:2] * self.distal


@dataclass
class LegAnatomy:
    """A built leg in the leg frame.

    Attributes
    ----------
    params
        What it was built from.
    landmarks
        ``(50, 2)`` true landmarks, order of :mod:`inference.leg.landmarks`.
    bones
        Outline polygons (mm): femur, patella, tibia, fibula, talus, calcaneus.
    metal
        ``(name, polygon, level)``: implants; level is the processed display value.
    axes
        Per bone, the point and unit vector of its shaft axis (pointing away from the knee).
    built_in
        The measurements the leg was built to have (keys of
        :data:`inference.leg.geometry.MEASUREMENT_KEYS`, ``MAD_mm`` at the patient).
    """

    params: LegParams
    landmarks: FloatArray
    bones: dict[str, FloatArray] = field(default_factory=dict)
    metal: list[tuple[str, FloatArray, float]] = field(default_factory=list)
    axes: dict[str, tuple[FloatArray, FloatArray]] = field(default_factory=dict)
    built_in: dict[str, float] = field(default_factory=dict)


def _circle(c: FloatArray, r: float, a0: float, a1: float, n: int) -> FloatArray:
    t = np.linspace(a0, a1, n)
    return np.stack([c[0] + r * np.cos(t), c[1] + r * np.sin(t)], -1)


def build_leg(p: LegParams) -> LegAnatomy:
    """Build the bones, implants and landmarks of the leg ``p`` (see the module docstring)."""
    if not isinstance(p, LegParams):
        raise TypeError(f"p must be LegParams, got {type(p).__name__}")
    s = p.shape
    W = p.width_mm
    K = np.zeros(2)
    H = np.array([0.0, -p.femur_mm])
    # --- knee: condylar and plateau lines
    theta_c = p.mldfa - 90.0
    theta_p = theta_c + p.jlca
    lc, lp = lateral_dir(theta_c), lateral_dir(theta_p)
    nc, np_ = lateral_dir(theta_c + 90.0), lateral_dir(theta_p + 90.0)
    dn = s["notch"] * W
    e = s["notch_shift"] * W
    Mc = K + dn * nc + e * lc
    cond = Frame(Mc, lc, nc)
    half_c = 0.31 * W
    Cm, Cl = cond.at(-half_c, 0.0), cond.at(half_c, 0.0)
    half_p = 0.46 * W
    tilt_drop = half_p * abs(np.tan(np.radians(p.jlca)))
    gap = (s["poly_mm"] if p.post_op else s["gap_mm"]) + tilt_drop
    Mp = Mc + gap * nc
    plat = Frame(Mp, lp, np_)
    Pm, Pl = plat.at(-half_p, 0.0), plat.at(half_p, 0.0)
    # --- tibia and ankle
    t = distal_dir(p.hka)
    A = K + p.tibia_mm * t
    ta = distal_dir(p.hka + p.tibia_tilt)  # tibial shaft axis
    na_t = np.array([ta[1], -ta[0]])  # lateral normal of the shaft
    ank = Frame(A, lateral_dir(-(p.hka) + s["ankle_line"]), np.zeros(2))
    ank = Frame(A, ank.lateral, np.array([-ank.lateral[1], ank.lateral[0]]))
    half_a = 0.5 * s["ankle_w"] * W
    Mm, Ml = ank.at(-half_a, 0.0), ank.at(half_a, 0.0)
    # --- femoral shaft, diaphysis, neck, head
    F = p.fva
    a = proximal_dir(F)  # anatomical axis from the knee, proximally
    n_a = np.array([np.cos(np.radians(F)), np.sin(np.radians(F))])  # its lateral normal
    s_H = float(np.dot(H - K, a))
    h_off = float(-np.dot(H - K, n_a))  # head medial of the shaft axis
    s_neck = s_H - h_off / np.tan(np.radians(180.0 - p.neck_shaft))
    r_h = s["head_r"] * W
    r_s = s["shaft_r"] * W
    s_D = s["diaphysis"] * W
    s_top = s_neck - 1.7 * r_h
    span = s_top - s_D

    def bow(sv: FloatArray | float) -> FloatArray:
        x = np.clip((np.asarray(sv, dtype=np.float64) - s_D) / span, 0.0, 1.0)
        return p.bow_mm * np.sin(np.pi * x)

    def fem_c(sv: float) -> FloatArray:
        return K + sv * a + float(bow(sv)) * n_a

    D = fem_c(s_D)
    dia_levels = np.linspace(s_top, s_D, leg.N_DIAPHYSIS_OUTLINE // 2)
    s_fp, s_fd = s_D + 0.78 * span, s_D + 0.22 * span
    e_neck = (H - fem_c(s_neck)) / np.linalg.norm(H - fem_c(s_neck))
    p_sup = np.array([e_neck[1], -e_neck[0]])
    if p_sup[1] > 0:
        p_sup = -p_sup
    w_n = 0.68 * r_h
    back = np.sqrt(r_h * r_h - w_n * w_n)
    J_sup = H + w_n * p_sup - back * e_neck
    J_inf = H - w_n * p_sup - back * e_neck
    # --- femur outline knots (closed): head-neck superior, trochanter, lateral shaft,
    # condyles, medial shaft, lesser trochanter, inferior neck, round the head
    fk: list[FloatArray] = [J_sup, 0.5 * (J_sup + fem_c(s_H - 0.35 * r_h) + 0.2 * r_s * n_a)]
    fk.append(fem_c(s_H - 0.45 * r_h) + 0.35 * r_s * n_a)  # trochanteric fossa
    fk.append(fem_c(s_H - 0.05 * r_h) + (r_s + 0.25 * r_h) * n_a)  # greater trochanter tip
    fk.append(fem_c(s_H - 0.6 * r_h) + (r_s + 0.55 * r_h) * n_a)
    fk.append(fem_c(s_H - 1.3 * r_h) + (r_s + 0.35 * r_h) * n_a)
    shaft_levels = np.unique(np.concatenate([dia_levels, [s_fp, s_fd]]))[::-1]
    for sv in shaft_levels:
        fk.append(fem_c(sv) + r_s * n_a)
    hw_meta = 0.5 * (r_s + 0.5 * W)
    fk.append(fem_c(0.55 * s_D) + 0.92 * hw_meta * n_a)
    cond_knots_l = [(0.5, -0.36), (0.495, -0.2), (0.44, -0.07)]
    notch = [(0.2, -0.025), (0.13, -0.07), (0.085, -0.17)]
    osteo = p.osteophytes * W
    # spurs at the condylar margins (osteoarthritis), between the epicondyle and the bottom
    spur = [(0.5 + osteo / W, -0.12)] if osteo > 0 else []
    lateral_side = cond_knots_l[:2] + spur + cond_knots_l[2:]
    fk += list(cond.many(lateral_side, W))
    fk.append(Cl)
    fk += list(cond.many(notch, W))
    fk.append(K)
    fk += list(cond.many([(-x, y) for x, y in notch[::-1]], W))
    fk.append(Cm)
    fk += list(cond.many([(-x, y) for x, y in lateral_side[::-1]], W))
    fk.append(fem_c(0.55 * s_D) - 0.92 * hw_meta * n_a)
    for sv in shaft_levels[::-1]:
        fk.append(fem_c(sv) - r_s * n_a)
    fk.append(fem_c(s_neck - 1.05 * r_h) - (r_s + 0.22 * r_h) * n_a)  # lesser trochanter
    fk.append(fem_c(s_neck - 0.75 * r_h) - (r_s + 0.05 * r_h) * n_a)
    fk.append(fem_c(s_neck - 0.2 * r_h) - 0.55 * r_s * n_a)
    if p.hip_stem:  # neck osteotomy: no bony head
        cut = 1.25 * r_h
        fk.append(H - w_n * p_sup - cut * e_neck)
        fk[0] = H + w_n * p_sup - cut * e_neck
        femur_knots = np.vstack(fk)
    else:
        fk.append(J_inf)
        a_inf = np.arctan2(*(J_inf - H)[::-1])
        a_sup = np.arctan2(*(J_sup - H)[::-1])
        a_e = np.arctan2(e_neck[1], e_neck[0])
        # go from the inferior junction round the far side (through +e) to the superior one
        a1 = a_sup
        while a1 <= a_inf:
            a1 += 2 * np.pi
        while a1 - 2 * np.pi > a_inf:
            a1 -= 2 * np.pi
        mid = 0.5 * (a_inf + a1)
        if np.cos(mid - a_e) < 0:
            a1 -= 2 * np.pi
        arc = _circle(H, r_h, a_inf, a1, 26)[1:-1]
        femur_knots = np.vstack(fk + list(arc))
    femur = spline(femur_knots, closed=True, samples=6).points
    # --- tibia outline (closed): plateau, lateral margin, lateral shaft, plafond, medial
    # malleolus, medial shaft, medial margin
    T0 = A - p.tibia_mm * ta  # the shaft axis extended to the knee level

    def tib_c(sv: float) -> FloatArray:
        return T0 + sv * ta

    r_t = s["tibia_r"] * W
    L = p.tibia_mm
    s_tp, s_td = 0.3 * L, 0.8 * L
    if p.post_op:
        top = [Pl, plat.at(0.0, 0.0), Pm]
    else:
        top = [Pl] + list(plat.many([(0.3, -0.01), (0.13, -0.02), (0.06, -0.11), (0.0, -0.06),
                                      (-0.05, -0.12), (-0.12, -0.02), (-0.3, -0.005)], W)) + [Pm]
    tk: list[FloatArray] = list(top[::-1])  # medial -> lateral
    tk += list(plat.many([(0.47, 0.06), (0.44, 0.16)], W))
    if osteo > 0 and not p.post_op:
        tk.insert(len(tk) - 2, plat.at(0.46 * W + osteo, 0.01 * W))
    tk.append(tib_c(0.62 * W) + 1.3 * r_t * na_t)
    for sv in (0.15 * L, s_tp, 0.55 * L, s_td, L - 0.75 * W):
        tk.append(tib_c(sv) + r_t * na_t)
    tk.append(tib_c(L - 0.4 * W) + 1.45 * r_t * na_t)
    tk += list(ank.many([(0.28, -0.17), (0.26, -0.115), (0.12, -0.13), (-0.05, -0.135),
                         (-0.2, -0.125), (-0.26, -0.1), (-0.3, 0.03), (-0.35, 0.09)], W))
    tk.append(Mm)
    tk += list(ank.many([(-0.41, -0.12)], W))
    tk.append(tib_c(L - 0.4 * W) - 1.5 * r_t * na_t)
    for sv in (L - 0.75 * W, s_td, 0.55 * L, s_tp, 0.15 * L):
        tk.append(tib_c(sv) - r_t * na_t)
    tk.append(tib_c(0.62 * W) - 1.4 * r_t * na_t)
    tk += list(plat.many([(-0.44, 0.16), (-0.47, 0.07)], W))
    if osteo > 0 and not p.post_op:
        tk.append(plat.at(-0.46 * W - osteo, 0.01 * W))
    tibia = spline(np.vstack(tk), closed=True, samples=6).points
    # --- fibula: head below the lateral plateau, shaft, lateral malleolus
    r_f = s["fibula_r"] * W
    fib_head = plat.many([(0.52, 0.12), (0.6, 0.2), (0.58, 0.3), (0.42, 0.32), (0.38, 0.2),
                          (0.42, 0.13)], W)
    off = r_t + 0.6 * r_f + 0.06 * W
    fb = [fib_head[0], fib_head[1], fib_head[2]]
    for sv in (0.45 * W, 0.35 * L, 0.65 * L, L - 0.55 * W):
        fb.append(tib_c(sv) + (off + r_f) * na_t)
    fb += [ank.at(half_a + 0.01 * W, -0.2 * W), Ml, ank.at(0.5 * half_a + 0.2 * W, 0.17 * W),
           ank.at(0.28 * W, 0.06 * W), ank.at(0.27 * W, -0.25 * W)]
    for sv in (L - 0.55 * W, 0.65 * L, 0.35 * L, 0.45 * W):
        fb.append(tib_c(sv) + (off - r_f) * na_t)
    fb += [fib_head[3], fib_head[4], fib_head[5]]
    fibula = spline(np.vstack(fb), closed=True, samples=6).points
    # --- talus and calcaneus below the mortise; patella over the distal femur
    talus = spline(ank.many([(0.25, -0.1), (0.1, -0.125), (-0.1, -0.125), (-0.25, -0.1),
                             (-0.27, 0.05), (-0.2, 0.22), (0.0, 0.3), (0.2, 0.24),
                             (0.27, 0.08)], W), closed=True, samples=6).points
    calc = spline(ank.many([(0.2, 0.28), (0.0, 0.33), (-0.18, 0.3), (-0.25, 0.5),
                            (-0.15, 0.75), (0.1, 0.8), (0.25, 0.6)], W), closed=True,
                  samples=6).points
    th = np.linspace(0, 2 * np.pi, 60, endpoint=False)
    pc = cond.at(s["patella_x"] * W, s["patella_y"] * W)
    patella = np.stack([pc[0] + 0.23 * W * np.cos(th), pc[1] + 0.27 * W * np.sin(th)], -1)
    # --- landmarks
    pts = np.zeros((leg.N_LANDMARKS, 2))
    core = {"femoral_head_centre": H, "condyle_medial_distal": Cm, "condyle_lateral_distal": Cl,
            "plateau_medial": Pm, "plateau_lateral": Pl, "knee_centre": K,
            "malleolus_medial": Mm, "malleolus_lateral": Ml, "ankle_centre": 0.5 * (Mm + Ml),
            "diaphysis_centre": D}
    for name, v in core.items():
        pts[leg.idx(name)] = v
    r_out = 0.62 * r_h if p.hip_stem else r_h  # a prosthetic head is smaller
    for i in range(leg.N_HEAD_OUTLINE):
        phi = np.radians(22.5 * i)
        pts[leg.idx(f"femoral_head_outline_{i}")] = H + r_out * np.array([np.sin(phi),
                                                                           -np.cos(phi)])
    for level, sv in (("proximal", s_fp), ("distal", s_fd)):
        pts[leg.idx(f"femur_shaft_{level}_medial")] = fem_c(sv) - r_s * n_a
        pts[leg.idx(f"femur_shaft_{level}_lateral")] = fem_c(sv) + r_s * n_a
    for level, sv in (("proximal", s_tp), ("distal", s_td)):
        pts[leg.idx(f"tibia_shaft_{level}_medial")] = tib_c(sv) - r_t * na_t
        pts[leg.idx(f"tibia_shaft_{level}_lateral")] = tib_c(sv) + r_t * na_t
    half = leg.N_DIAPHYSIS_OUTLINE // 2
    for i, sv in enumerate(dia_levels):
        pts[leg.idx(f"femoral_diaphysis_outline_{i}")] = fem_c(sv) + r_s * n_a
        pts[leg.idx(f"femoral_diaphysis_outline_{2 * half - 1 - i}")] = fem_c(sv) - r_s * n_a
    anat = LegAnatomy(params=p, landmarks=pts)
    anat.bones = {"femur": femur, "patella": patella, "tibia": tibia, "fibula": fibula,
                  "talus": talus, "calcaneus": calc}
    anat.axes = {"femur": (fem_c(s_D), a), "tibia": (tib_c(0.0), ta)}
    # --- implants
    if p.post_op:
        lo_l, lo_m = cond.at(0.5 * W, -0.4 * W), cond.at(-0.5 * W, -0.4 * W)
        comp = [lo_l] + list(cond.many(cond_knots_l, W)) + [Cl] + list(cond.many(notch, W))
        comp += [K] + list(cond.many([(-x, y) for x, y in notch[::-1]], W)) + [Cm]
        comp += list(cond.many([(-x, y) for x, y in cond_knots_l[::-1]], W)) + [lo_m]
        comp += list(cond.many([(-0.25, -0.48), (0.0, -0.5), (0.25, -0.48)], W))
        anat.metal.append(("femoral_component", spline(np.vstack(comp), closed=True,
                                                       samples=5).points, 1.3))
        tray = np.vstack([Pl, Pm, plat.at(-half_p, 0.05 * W), plat.at(-0.12 * W, 0.05 * W),
                          plat.at(-0.07 * W, 0.5 * W), plat.at(0.07 * W, 0.5 * W),
                          plat.at(0.12 * W, 0.05 * W), plat.at(half_p, 0.05 * W)])
        anat.metal.append(("tibial_tray", tray, 1.3))
    if p.hip_stem:
        ball = _circle(H, r_out, 0.0, 2 * np.pi, 48)
        cup_o, cup_i = r_h + 0.12 * W, r_h + 0.04 * W
        a_c = np.arctan2(-e_neck[1], -e_neck[0])  # the cup opens toward the neck
        ring = np.vstack([_circle(H, cup_o, a_c + 0.5 * np.pi, a_c + 1.5 * np.pi, 30),
                          _circle(H, cup_i, a_c + 1.5 * np.pi, a_c + 0.5 * np.pi, 30)])
        s_tip = s_neck - 5.5 * r_h
        stem = np.vstack([H + 0.2 * r_h * p_sup, fem_c(s_neck) + 0.55 * r_s * n_a,
                          fem_c(s_tip) + 0.35 * r_s * n_a, fem_c(s_tip - 0.2 * r_h),
                          fem_c(s_tip) - 0.35 * r_s * n_a,
                          fem_c(s_neck - 1.2 * r_h) - 0.6 * r_s * n_a,
                          fem_c(s_neck - 0.3 * r_h) - 0.75 * r_s * n_a, H - 0.2 * r_h * p_sup])
        anat.metal += [("acetabular_cup", ring, 1.2), ("femoral_stem", stem, 1.3),
                       ("prosthetic_head", ball, 1.35)]
    # --- what the leg was built to have
    eps = float(np.degrees(np.arctan2(float(bow(s_fd) - bow(s_fp)), s_fp - s_fd)))
    d = A - H
    anat.built_in = {
        "HKA_deg": p.hka, "HKA_180_deg": 180.0 + p.hka, "mLDFA_deg": p.mldfa,
        "mMPTA_deg": p.mmpta, "aHKA_deg": p.ahka, "JLO_deg": p.jlo, "FVA_deg": p.fva,
        "JLCA_deg": p.jlca, "MAD_mm": float(p.femur_mm * d[0] / np.linalg.norm(d)),
        "aTFA_FTS_deg": p.hka + p.tibia_tilt + p.fva - eps,
    }
    assert set(anat.built_in) == set(geometry.MEASUREMENT_KEYS)
    return anat
