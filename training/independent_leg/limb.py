"""One leg of the independent full-leg renderer: its alignment, proportions, solids, landmarks.

Never used for training or checkpoint choice (see :mod:`training.independent_leg`).

Leg frame: millimetres at the patient, a LEFT leg seen AP, ``+x`` lateral, ``+y`` distal,
the origin at the knee centre (the apex of the intercondylar notch); the femoral mechanical
axis is ``-y`` (the head centre at ``(0, -femur_mm)``).

The alignment is drawn from population-like distributions of its own (not class by class):
aHKA ~ N(-1, 4.2) and JLO ~ N(177.8, 4.6) deg, so mMPTA = (JLO + aHKA) / 2 and
mLDFA = (JLO - aHKA) / 2, each kept in 80-99 deg; JLCA ~ N(0.7, 1.6) in [-4, 5] and
HKA = aHKA - JLCA. Every CPAK class occurs (the rarest, IX, in about 2-3 % of legs).

The landmarks are placed exactly for those angles and the solids are built on them:

* the two condyles are bi-superellipsoids whose distal apices are the condylar tangent ends;
  the notch is a subtracted ellipsoid whose apex is the knee centre;
* the tibial epiphysis is a flat-topped bi-superellipsoid whose upper corners are the plateau
  ends; spines, fibular head;
* the malleoli are bodies whose medial-most / lateral-most points are the malleolar line's
  ends, which is tilted against the tibial axis' perpendicular like a mortise;
* the femoral shaft is a tube round a parabolically bowed centreline on the anatomical axis
  (FVA from the mechanical axis), the diaphysis ending where the metaphyseal flare begins;
  the head is a sphere; the neck a tube at the neck-shaft angle; trochanters are blobs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from inference.leg import landmarks as leg

FloatArray = npt.NDArray[np.float64]


def _dir(deg: float) -> FloatArray:
    """Unit vector at ``deg`` from +x toward +y (distal)."""
    a = np.radians(deg)
    return np.array([np.cos(a), np.sin(a)])


def _distal(phi: float) -> FloatArray:
    """Unit vector pointing distally, turned ``phi`` deg toward lateral (+x)."""
    a = np.radians(phi)
    return np.array([np.sin(a), np.cos(a)])


def _normal(u: FloatArray) -> FloatArray:
    """``u`` turned +90 deg (x right, y down): the distal normal of a lateral direction."""
    return np.array([-u[1], u[0]])


@dataclass(frozen=True)
class LimbDraw:
    """The random decisions of one leg (degrees, mm at the patient)."""

    ahka: float
    jlo: float
    jlca: float
    fva: float
    neck_shaft: float
    femur_mm: float
    tibia_mm: float
    width_mm: float
    bow_mm: float
    tibia_tilt: float
    ankle_tilt: float
    notch_mm: float
    gap_mm: float
    extras: dict[str, float] = field(default_factory=dict)

    @property
    def hka(self) -> float:
        """HKA = aHKA - JLCA."""
        return self.ahka - self.jlca

    @property
    def mmpta(self) -> float:
        """(JLO + aHKA) / 2."""
        return 0.5 * (self.jlo + self.ahka)

    @property
    def mldfa(self) -> float:
        """(JLO - aHKA) / 2."""
        return 0.5 * (self.jlo - self.ahka)


def draw_limb(rng: np.random.Generator) -> LimbDraw:
    """Draw one leg (see the module docstring for the distributions)."""
    n, u = rng.normal, rng.uniform
    while True:
        ahka = float(np.clip(n(-1.0, 4.2), -12.0, 10.0))
        jlo = float(np.clip(n(177.8, 4.6), 166.0, 191.0))
        if 80.0 <= 0.5 * (jlo - ahka) <= 99.0 and 80.0 <= 0.5 * (jlo + ahka) <= 99.0:
            break
    jlca = float(np.clip(n(0.7, 1.6), -4.0, 5.0))
    width = float(np.clip(n(82.0, 6.5), 68.0, 98.0))
    femur = float(np.clip(n(445.0, 30.0), 375.0, 525.0))
    extras = {
        "cond_med": u(0.25, 0.30), "cond_lat": u(0.25, 0.30), "cond_a": u(0.19, 0.23),
        "cond_b": u(0.26, 0.33), "cond_p": u(1.9, 2.5), "cond_depth": u(0.34, 0.42),
        "notch_a": u(0.11, 0.15), "notch_shift": u(-0.015, 0.015),
        "plat_med": u(0.46, 0.52), "plat_lat": u(0.46, 0.52), "plat_b": u(0.22, 0.29),
        "plat_p": u(7.0, 10.0), "mall": u(0.37, 0.43), "head_r": u(0.27, 0.31),
        "shaft_r": u(0.155, 0.19), "shaft_cortex": u(4.0, 7.5), "dia_end": u(1.05, 1.45),
        "tib_r": u(0.13, 0.165), "tib_cortex": u(3.5, 6.5), "fib_r": u(0.055, 0.075),
        "meta_r": u(0.40, 0.46), "patella_y": u(0.35, 0.55), "patella_x": u(-0.02, 0.08),
        "density": u(0.8, 1.2), "canal_mu": u(0.45, 0.7), "gt": u(0.8, 1.1),
        "tib_offset": u(-3.0, 3.0), "fib_head_v": u(0.2, 0.3),
        "thigh": u(70.0, 100.0), "calf": u(46.0, 62.0), "fat": u(5.0, 24.0),
    }
    return LimbDraw(
        ahka=ahka, jlo=jlo, jlca=jlca, fva=float(u(4.0, 7.5)),
        neck_shaft=float(u(122.0, 138.0)), femur_mm=femur,
        tibia_mm=femur * float(u(0.80, 0.88)), width_mm=width,
        bow_mm=float(u(-1.5, 8.0)) if u() < 0.7 else 0.0,
        tibia_tilt=float(u(-2.0, 2.0)), ankle_tilt=float(u(-3.0, 6.0)),
        notch_mm=float(u(0.15, 0.22)) * width, gap_mm=float(u(3.0, 7.0)), extras=extras)


@dataclass(frozen=True)
class BlobSpec:
    """A bi-superellipsoid in the leg frame (mm): see :class:`solids.Blob`."""

    centre: FloatArray
    u_axis: FloatArray
    a: float
    b: float
    p_top: float
    p_bottom: float
    depth: float
    cortex: float = 0.0


@dataclass(frozen=True)
class TubeSpec:
    """A swept tube in the leg frame (mm): see :class:`solids.Tube`."""

    centre: FloatArray
    radius: FloatArray
    cortex: FloatArray
    depth: float = 1.0


@dataclass(frozen=True)
class BoneSpec:
    """One bone in the leg frame: solids, holes, attenuation."""

    name: str
    solids: list[BlobSpec | TubeSpec]
    holes: list[BlobSpec]
    mu_cortex: float
    mu_inner: float
    textured: bool = True


@dataclass
class Limb:
    """A built leg: its draw, landmarks (``(50, 2)`` leg-frame mm), bones and built-in values."""

    draw: LimbDraw
    landmarks: FloatArray
    bones: list[BoneSpec]
    soft: TubeSpec
    built_in: dict[str, float]
    femoral_axis: tuple[FloatArray, FloatArray]


#: Linear attenuation, 1/mm, at an effective energy of a long-leg exposure.
MU_CORTEX = 0.052
MU_CANCELLOUS = 0.026
MU_WATER = 0.020


def build_limb(d: LimbDraw) -> Limb:
    """Place the landmarks of ``d`` exactly and build the solids on them."""
    e = d.extras
    W = d.width_mm
    K = np.zeros(2)
    H = np.array([0.0, -d.femur_mm])
    # --- knee
    lc = _dir(d.mldfa - 90.0)  # condylar line, toward lateral
    nc = _normal(lc)
    Mc = K + d.notch_mm * nc + e["notch_shift"] * W * lc
    CM, CL = Mc - e["cond_med"] * W * lc, Mc + e["cond_lat"] * W * lc
    lp = _dir(d.mldfa - 90.0 + d.jlca)
    np_ = _normal(lp)
    half_p = 0.5 * (e["plat_med"] + e["plat_lat"]) * W
    Mp = Mc + (d.gap_mm + half_p * abs(np.tan(np.radians(d.jlca)))) * nc
    PM, PL = Mp - e["plat_med"] * W * lp, Mp + e["plat_lat"] * W * lp
    # --- tibia and ankle
    t = _distal(d.hka)
    A = K + d.tibia_mm * t
    la = _dir(-d.hka + d.ankle_tilt)  # malleolar line, toward lateral
    na = _normal(la)
    wa = e["mall"] * W
    MM, ML = A - wa * la, A + wa * la
    ta = _distal(d.hka + d.tibia_tilt)  # tibial shaft axis
    nta = np.array([ta[1], -ta[0]])  # its lateral normal
    T_a = A + e["tib_offset"] * la  # the shaft axis passes here at the ankle
    L = d.tibia_mm
    T0 = T_a - L * ta
    # --- femur: anatomical axis, bowed shaft, neck, head
    F = d.fva
    a = np.array([np.sin(np.radians(F)), -np.cos(np.radians(F))])  # proximal, lateral-turned
    n_a = np.array([np.cos(np.radians(F)), np.sin(np.radians(F))])  # its lateral normal
    r_h = e["head_r"] * W
    s_H = float(np.dot(H - K, a))
    h_off = float(-np.dot(H - K, n_a))
    s_N = s_H - h_off / np.tan(np.radians(180.0 - d.neck_shaft))
    N = K + s_N * a
    s_D = e["dia_end"] * W
    s_T = s_N - 1.9 * r_h  # diaphysis top, below the lesser trochanter
    span = s_T - s_D
    r_s = e["shaft_r"] * W

    def bow(s: float) -> float:
        x = min(max((s - s_D) / span, 0.0), 1.0)
        return 4.0 * d.bow_mm * x * (1.0 - x)

    def fem_c(s: float) -> FloatArray:
        return K + s * a + bow(s) * n_a

    def fem_r(s: float) -> float:
        x = (s - s_D) / span
        return r_s * (1.0 + 0.14 * ((x - 0.5) / 0.5) ** 2)

    def fem_n(s: float) -> FloatArray:
        h = 1.0
        tang = fem_c(s + h) - fem_c(s - h)
        tang /= np.linalg.norm(tang)
        n = np.array([-tang[1], tang[0]])
        return n if np.dot(n, n_a) > 0 else -n

    D = fem_c(s_D)
    # --- landmarks
    pts = np.zeros((leg.N_LANDMARKS, 2))
    core = {"femoral_head_centre": H, "condyle_medial_distal": CM,
            "condyle_lateral_distal": CL, "plateau_medial": PM, "plateau_lateral": PL,
            "knee_centre": K, "malleolus_medial": MM, "malleolus_lateral": ML,
            "ankle_centre": 0.5 * (MM + ML), "diaphysis_centre": D}
    for name, v in core.items():
        pts[leg.idx(name)] = v
    for i in range(leg.N_HEAD_OUTLINE):
        phi = np.radians(22.5 * i)
        pts[leg.idx(f"femoral_head_outline_{i}")] = H + r_h * np.array([np.sin(phi),
                                                                         -np.cos(phi)])
    s_fp, s_fd = s_D + 0.72 * span, s_D + 0.28 * span
    for level, s in (("proximal", s_fp), ("distal", s_fd)):
        pts[leg.idx(f"femur_shaft_{level}_medial")] = fem_c(s) - fem_r(s) * fem_n(s)
        pts[leg.idx(f"femur_shaft_{level}_lateral")] = fem_c(s) + fem_r(s) * fem_n(s)
    r_t = e["tib_r"] * W

    def tib_r(s: float) -> float:
        x = s / L
        return r_t * (1.0 + 0.35 * max(0.3 - x, 0.0) / 0.3 + 0.1 * ((x - 0.6) / 0.4) ** 2)

    for level, s in (("proximal", 0.3 * L), ("distal", 0.74 * L)):
        c = T0 + s * ta
        pts[leg.idx(f"tibia_shaft_{level}_medial")] = c - tib_r(s) * nta
        pts[leg.idx(f"tibia_shaft_{level}_lateral")] = c + tib_r(s) * nta
    half = leg.N_DIAPHYSIS_OUTLINE // 2
    for i, s in enumerate(np.linspace(s_T, s_D, half)):
        s = float(s)
        pts[leg.idx(f"femoral_diaphysis_outline_{i}")] = fem_c(s) + fem_r(s) * fem_n(s)
        pts[leg.idx(f"femoral_diaphysis_outline_{2 * half - 1 - i}")] = (
            fem_c(s) - fem_r(s) * fem_n(s))
    # --- femur solids
    dens = e["density"]
    cort = e["shaft_cortex"]
    fs = list(np.linspace(s_T, s_D, 10))
    s_m = 0.42 * W  # distal end of the metaphyseal flare
    flare = [s_D - (s_D - s_m) * f for f in (0.25, 0.5, 0.75, 1.0)]
    R_meta = e["meta_r"] * W
    shaft_c = [fem_c(s) for s in fs] + [fem_c(s) for s in flare]
    shaft_r = [fem_r(s) for s in fs] + [
        fem_r(s_D) + (R_meta - fem_r(s_D)) * f ** 1.7 for f in (0.25, 0.5, 0.75, 1.0)]
    shaft_k = [cort * (0.55 + 0.45 * np.sin(np.pi * (s - s_D) / span)) for s in fs] + [
        max(cort * (1 - f), 1.2) for f in (0.25, 0.5, 0.75, 1.0)]
    top = [fem_c(s_T + f * (s_N + 0.4 * r_h - s_T)) for f in (0.33, 0.66, 1.0)]
    top_r = [fem_r(s_T) * (1.0 + 0.35 * f) for f in (0.33, 0.66, 1.0)]
    femur_solids: list[BlobSpec | TubeSpec] = [
        TubeSpec(np.vstack(top[::-1] + shaft_c), np.array(top_r[::-1] + shaft_r),
                 np.array([1.5, 2.0, 2.5] + shaft_k), depth=1.05),
        BlobSpec(H, np.array([1.0, 0.0]), r_h, r_h, 2.0, 2.0, r_h, 1.4),  # head
        TubeSpec(np.vstack([H + 0.2 * r_h * (N - H) / np.linalg.norm(N - H), N]),
                 np.array([0.66 * r_h, 0.8 * r_h]), np.array([1.6, 2.2]), depth=0.9),
        BlobSpec(K + (s_N + 0.1 * r_h) * a + e["gt"] * 0.8 * r_h * n_a, a * 0 + n_a,
                 0.55 * r_h, 1.0 * r_h, 2.2, 2.6, 0.9 * r_h, 1.5),  # greater trochanter
        BlobSpec(K + (s_N - 1.45 * r_h) * a - (fem_r(s_T) + 0.05 * r_h) * n_a, n_a,
                 0.32 * r_h, 0.38 * r_h, 2.0, 2.0, 0.35 * r_h, 1.0),  # lesser trochanter
        BlobSpec(Mc - (e["cond_b"] * W + 0.9 * d.notch_mm) * nc, lc, 0.47 * W,
                 e["cond_b"] * W + 0.3 * d.notch_mm, 2.4, 3.2, e["cond_depth"] * W, 1.2),
    ]
    for end in (CM, CL):
        femur_solids.append(BlobSpec(end - e["cond_b"] * W * nc, lc, e["cond_a"] * W,
                                     e["cond_b"] * W, 2.6, e["cond_p"],
                                     e["cond_depth"] * W, 1.6))
    notch = BlobSpec(K + d.notch_mm * nc, lc, e["notch_a"] * W, d.notch_mm, 2.2, 2.2,
                     0.55 * e["cond_depth"] * W)
    # the inside is partly marrow (the canal), less dense than cancellous bone
    bones = [BoneSpec("femur", femur_solids, [notch], MU_CORTEX * dens,
                        MU_CANCELLOUS * dens * e["canal_mu"] * 1.4)]
    # --- patella
    pc = K - e["patella_y"] * W * nc + e["patella_x"] * W * lc
    bones.append(BoneSpec("patella", [BlobSpec(pc, lc, 0.22 * W, 0.26 * W, 2.3, 2.1, 0.11 * W,
                                               1.0)], [], 0.5 * MU_CORTEX * dens,
                          0.6 * MU_CANCELLOUS * dens))
    # --- tibia
    pmid = 0.5 * (PM + PL)
    a_e = half_p / 0.92
    p_e = e["plat_p"]
    b_e = e["plat_b"] * W
    v_end = b_e * (1.0 - 0.92 ** p_e) ** (1.0 / p_e)  # the ends sit on the upper boundary
    Ce = pmid + v_end * np_
    ts = [0.1 * L, 0.2 * L, 0.3 * L, 0.45 * L, 0.6 * L, 0.74 * L, 0.86 * L, L - 0.35 * W]
    tib_solids: list[BlobSpec | TubeSpec] = [
        BlobSpec(Ce, lp, a_e, b_e, p_e, 1.7, 0.36 * W, 1.3),
        TubeSpec(np.vstack([T0 + s * ta for s in ts]), np.array([tib_r(s) for s in ts]),
                 np.array([max(e["tib_cortex"] * np.sin(np.pi * s / L) ** 0.5, 1.2)
                           for s in ts]), depth=1.0),
        BlobSpec(A - 0.17 * W * na + 0.5 * e["tib_offset"] * la, la, 0.3 * W, 0.17 * W, 1.9,
                 5.0, 0.26 * W, 1.2),  # distal metaphysis with the flat plafond
        BlobSpec(MM + 0.085 * W * la + 0.02 * W * na, la, 0.085 * W, 0.2 * W, 2.2, 1.8,
                 0.12 * W, 1.0),  # medial malleolus
    ]
    for sgn in (-1.0, 1.0):  # tibial spines
        tib_solids.append(BlobSpec(pmid + sgn * 0.055 * W * lp - 0.03 * W * np_, lp,
                                   0.035 * W, 0.07 * W, 1.8, 2.0, 0.12 * W, 0.0))
    bones.append(BoneSpec("tibia", tib_solids, [], MU_CORTEX * dens, MU_CANCELLOUS * dens))
    # --- fibula
    r_f = e["fib_r"] * W
    FH = PL + 0.04 * W * lp + e["fib_head_v"] * W * np_
    LMc = ML - 0.08 * W * la
    fib_shaft = [FH + 0.08 * W * np_] + [T0 + s * ta + (tib_r(s) + r_f + 0.035 * W) * nta
                                         for s in (0.3 * L, 0.6 * L, 0.85 * L)] + [
        LMc - 0.15 * W * na]
    bones.append(BoneSpec("fibula", [
        BlobSpec(FH, lp, 0.1 * W, 0.12 * W, 2.2, 2.2, 0.1 * W, 1.0),
        TubeSpec(np.vstack(fib_shaft), np.full(len(fib_shaft), r_f),
                 np.full(len(fib_shaft), 1.8), depth=1.0),
        BlobSpec(LMc, la, 0.08 * W, 0.28 * W, 2.4, 2.0, 0.1 * W, 1.0),
    ], [], MU_CORTEX * dens, MU_CANCELLOUS * dens))
    # --- talus and calcaneus
    bones.append(BoneSpec("talus", [BlobSpec(A + 0.13 * W * na, la, 0.29 * W, 0.14 * W, 2.0,
                                             3.0, 0.3 * W, 0.8)], [], 0.7 * MU_CORTEX * dens,
                          0.85 * MU_CANCELLOUS * dens))
    bones.append(BoneSpec("calcaneus", [BlobSpec(A + 0.36 * W * na + 0.04 * W * la, la, 0.25 * W,
                                                 0.22 * W, 2.3, 2.6, 0.28 * W, 0.8)], [],
                          0.3 * MU_CORTEX * dens, 0.35 * MU_CANCELLOUS * dens))
    # --- soft tissue of the leg: a tube along the limb
    knots = [H + np.array([12.0, -70.0]), H + np.array([8.0, 60.0]),
             K + np.array([0.0, -0.45 * d.femur_mm]),
             K + np.array([0.0, -40.0]), K, K + 0.3 * L * t, K + 0.65 * L * t, A - 40.0 * t,
             A + 25.0 * t, A + 70.0 * t]
    th, ca = e["thigh"], e["calf"]
    radii = [th * 1.05, th, 0.82 * th, 0.62 * W + 0.3 * e["fat"], 0.6 * W + 0.3 * e["fat"],
             ca, 0.78 * ca, 0.42 * W + 8.0, 0.5 * W + 8.0, 0.45 * W]
    soft = TubeSpec(np.vstack(knots), np.array(radii), np.full(len(knots), e["fat"]), 0.92)
    # --- what it was built to have
    dvec = A - H
    eps = float(np.degrees(np.arctan2(bow(s_fd) - bow(s_fp), s_fp - s_fd)))
    built_in = {
        "HKA_deg": d.hka, "HKA_180_deg": 180.0 + d.hka, "mLDFA_deg": d.mldfa,
        "mMPTA_deg": d.mmpta, "aHKA_deg": d.ahka, "JLO_deg": d.jlo, "FVA_deg": d.fva,
        "JLCA_deg": d.jlca, "MAD_mm": float(d.femur_mm * dvec[0] / np.linalg.norm(dvec)),
        "aTFA_FTS_deg": d.hka + d.tibia_tilt + d.fva - eps,
    }
    return Limb(d, pts, bones, soft, built_in, (D, a))
