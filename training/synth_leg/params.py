"""The parameters of one leg, drawn before any anatomy is built.

The alignment is drawn first and the bones are built to have it exactly
(:mod:`training.synth_leg.anatomy`):

* the CPAK class is drawn uniformly from the nine, then HKA uniformly within a band that
  suits the class's aHKA column (varus -15..-3, neutral -5..+5, valgus +3..+15 deg), so
  HKA covers -15..+15 deg about evenly;
* aHKA is drawn within its column (varus [-11, -2), neutral [-2, 2], valgus (2, 11]) and
  so that JLCA = aHKA - HKA stays in [-5, 6] deg;
* JLO is drawn within its row (apex distal [168, 177), neutral [177, 183], apex proximal
  (183, 189]); then mMPTA = (JLO + aHKA) / 2 and mLDFA = (JLO - aHKA) / 2;
* one leg in twenty sits exactly on a CPAK boundary (aHKA = +-2 or JLO = 177 / 183);
* FVA, neck-shaft angle, femur and tibia length, condylar width, shaft bowing, tibial
  shaft tilt and the soft-tissue build are independent.

Angles in degrees, lengths in millimetres at the patient (before magnification).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from inference.leg.geometry import cpak_class

#: HKA band (deg) of each aHKA column: varus, neutral, valgus.
HKA_BANDS: tuple[tuple[float, float], ...] = ((-15.0, -3.0), (-5.0, 5.0), (3.0, 15.0))
#: aHKA band of each column (the neutral one inclusive, as CPAK's).
AHKA_BANDS: tuple[tuple[float, float], ...] = ((-11.0, -2.0), (-2.0, 2.0), (2.0, 11.0))
#: JLO band of each row: apex distal, neutral, apex proximal.
JLO_BANDS: tuple[tuple[float, float], ...] = ((168.0, 177.0), (177.0, 183.0), (183.0, 189.0))
JLCA_RANGE = (-5.0, 6.0)
BOUNDARY_SHARE = 0.05


@dataclass(frozen=True)
class LegParams:
    """Everything random about one leg.

    Attributes
    ----------
    cpak
        The CPAK class (1-9) the alignment was drawn for.
    hka, ahka, jlo, jlca, fva
        Built-in HKA (signed, varus < 0), aHKA, JLO, JLCA (positive = lateral opening) and
        FVA (positive = anatomical axis lateral), degrees.
    neck_shaft
        Neck-shaft angle, degrees (120-140).
    femur_mm, tibia_mm
        Hip centre to knee centre, knee centre to ankle centre, mm.
    width_mm
        Femoral condylar (epicondylar) width, mm; most other sizes scale with it.
    bow_mm
        Lateral bowing of the femoral shaft at its middle (0 = straight; positive lateral).
    tibia_tilt
        Tibial shaft axis against the tibial mechanical axis, degrees (lateral positive).
    post_op
        A total knee replacement on this leg.
    hip_stem
        A total hip replacement (stem, ball and cup) on this leg.
    shape
        Small shape factors (fractions of ``width_mm`` unless named otherwise).
    """

    cpak: int
    hka: float
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
    post_op: bool = False
    hip_stem: bool = False
    osteophytes: float = 0.0
    shape: dict[str, float] = field(default_factory=dict)

    @property
    def mmpta(self) -> float:
        """Built-in mMPTA = (JLO + aHKA) / 2."""
        return 0.5 * (self.jlo + self.ahka)

    @property
    def mldfa(self) -> float:
        """Built-in mLDFA = (JLO - aHKA) / 2."""
        return 0.5 * (self.jlo - self.ahka)


def _uniform(rng: np.random.Generator, lo: float, hi: float, open_ends: tuple[bool, bool]
             ) -> float:
    """Uniform in [lo, hi], redrawn while it lands on an end that is open."""
    while True:
        v = float(rng.uniform(lo, hi))
        if not ((open_ends[0] and v <= lo) or (open_ends[1] and v >= hi)):
            return v


def sample_leg_params(rng: np.random.Generator, *, post_op: bool = False,
                      hip_stem: bool = False, cpak: int | None = None) -> LegParams:
    """Draw one leg (see the module docstring for the distributions).

    Parameters
    ----------
    rng
        The random stream; the same stream state gives the same leg.
    post_op, hip_stem
        Whether the leg has a knee replacement / a hip replacement.
    cpak
        Force this CPAK class (1-9); None draws it uniformly.
    """
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy Generator, got {type(rng).__name__}")
    if cpak is not None and (isinstance(cpak, bool) or not isinstance(cpak, (int, np.integer))
                             or not 1 <= cpak <= 9):
        raise ValueError(f"cpak must be an int in 1..9 or None, got {cpak!r}")
    u = rng.uniform
    k = int(rng.integers(1, 10)) if cpak is None else int(cpak)
    col, row = (k - 1) % 3, (k - 1) // 3
    hka = float(u(*HKA_BANDS[col]))
    a_lo, a_hi = AHKA_BANDS[col]
    lo, hi = max(a_lo, hka + JLCA_RANGE[0]), min(a_hi, hka + JLCA_RANGE[1])
    ahka = _uniform(rng, lo, hi, (col == 2 and lo == a_lo, col == 0 and hi == a_hi))
    j_lo, j_hi = JLO_BANDS[row]
    jlo = _uniform(rng, j_lo, j_hi, (row == 2, row == 0))
    if u() < BOUNDARY_SHARE:  # exactly on a CPAK boundary, which counts as neutral
        if col == 1 and (row != 1 or u() < 0.5):
            ahka = float(rng.choice([-2.0, 2.0]))
            ahka = min(max(ahka, hka + JLCA_RANGE[0]), hka + JLCA_RANGE[1])
        elif row == 1:
            jlo = float(rng.choice([177.0, 183.0]))
    jlca = ahka - hka
    assert cpak_class(ahka, jlo) == k, (k, ahka, jlo)
    width = float(np.clip(rng.normal(80.0, 6.0), 66.0, 96.0))
    femur = float(np.clip(rng.normal(440.0, 28.0), 370.0, 520.0))
    shape = {
        "notch": u(0.22, 0.28), "notch_shift": u(-0.02, 0.02), "gap_mm": u(2.5, 5.5),
        "head_r": u(0.28, 0.32), "shaft_r": u(0.15, 0.18), "tibia_r": u(0.13, 0.16),
        "diaphysis": u(1.25, 1.6), "ankle_line": u(-4.0, 4.0), "ankle_w": u(0.78, 0.86),
        "fibula_r": u(0.05, 0.07), "patella_x": u(-0.02, 0.1), "patella_y": u(-0.5, -0.38),
        "density": u(0.85, 1.15), "cortex_mm": u(4.0, 7.0), "canal": u(0.15, 0.4),
        "texture": u(0.08, 0.2), "thigh": u(0.95, 1.45), "calf": u(0.85, 1.2),
        "fat_mm": u(5.0, 25.0), "poly_mm": u(8.0, 13.0),
    }
    return LegParams(
        cpak=k, hka=hka, ahka=ahka, jlo=jlo, jlca=jlca, fva=float(u(3.0, 8.0)),
        neck_shaft=float(u(120.0, 140.0)), femur_mm=femur,
        tibia_mm=femur * float(u(0.78, 0.9)), width_mm=width,
        bow_mm=float(u(-2.0, 6.0)) if u() < 0.4 else 0.0,
        tibia_tilt=float(u(-1.5, 1.5)), post_op=bool(post_op), hip_stem=bool(hip_stem),
        osteophytes=0.0 if post_op or u() >= 0.45 else float(u(0.01, 0.05)), shape=shape,
    )
