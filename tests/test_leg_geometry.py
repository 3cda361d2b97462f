"""Full-leg alignment geometry (inference.leg.geometry): analytic values, invariances, CPAK."""

from __future__ import annotations

import numpy as np
import pytest

from inference.leg import geometry as g
from inference.leg import landmarks as leg
from training.synth_leg.anatomy import build_leg
from training.synth_leg.params import sample_leg_params


def _leg(ldfa: float = 90.0, mpta: float = 90.0, hka: float = 0.0, fva: float = 6.0,
         lf: float = 400.0, lt: float = 380.0) -> np.ndarray:
    """A left leg (x lateral, y distal) with the given angles, built by hand."""
    p = np.zeros((leg.N_LANDMARKS, 2))
    th_c = np.radians(ldfa - 90.0)
    lc = np.array([np.cos(th_c), np.sin(th_c)])
    t = np.array([np.sin(np.radians(hka)), np.cos(np.radians(hka))])
    # plateau: medial direction at mpta from the tibial axis, turning toward medial (-x)
    th_p = np.radians(mpta - 90.0 - hka)  # lateral direction angle of the plateau line
    lp = np.array([np.cos(th_p), np.sin(th_p)])
    p[leg.FEMORAL_HEAD_CENTRE] = (0.0, -lf)
    p[leg.KNEE_CENTRE] = (0.0, 0.0)
    p[leg.CONDYLE_MEDIAL] = np.array([0.0, 18.0]) - 25 * lc
    p[leg.CONDYLE_LATERAL] = np.array([0.0, 18.0]) + 25 * lc
    p[leg.PLATEAU_MEDIAL] = np.array([0.0, 24.0]) - 36 * lp
    p[leg.PLATEAU_LATERAL] = np.array([0.0, 24.0]) + 36 * lp
    a = lt * t
    p[leg.MALLEOLUS_MEDIAL] = a - (30.0, 0.0)
    p[leg.MALLEOLUS_LATERAL] = a + (30.0, 0.0)
    p[leg.ANKLE_CENTRE] = a
    p[leg.DIAPHYSIS_CENTRE] = 120.0 * np.array([np.sin(np.radians(fva)), -np.cos(np.radians(fva))])
    # shaft pairs: femur along the anatomical axis, tibia along the mechanical one
    fa = p[leg.DIAPHYSIS_CENTRE] / 120.0
    n = np.array([-fa[1], fa[0]]) * -1.0
    for name, s in (("proximal", 300.0), ("distal", 150.0)):
        p[leg.idx(f"femur_shaft_{name}_medial")] = s * fa - 14 * n
        p[leg.idx(f"femur_shaft_{name}_lateral")] = s * fa + 14 * n
    nt = np.array([t[1], -t[0]])
    for name, s in (("proximal", 100.0), ("distal", 300.0)):
        p[leg.idx(f"tibia_shaft_{name}_medial")] = s * t - 11 * nt
        p[leg.idx(f"tibia_shaft_{name}_lateral")] = s * t + 11 * nt
    return p


def test_neutral_leg_analytic() -> None:
    m = g.measure_leg(_leg())
    assert m["mLDFA_deg"] == pytest.approx(90.0, abs=1e-9)
    assert m["mMPTA_deg"] == pytest.approx(90.0, abs=1e-9)
    assert m["HKA_deg"] == pytest.approx(0.0, abs=1e-9)
    assert m["HKA_180_deg"] == pytest.approx(180.0, abs=1e-9)
    assert m["JLCA_deg"] == pytest.approx(0.0, abs=1e-9)
    assert m["MAD_mm"] == pytest.approx(0.0, abs=1e-9)
    assert m["FVA_deg"] == pytest.approx(6.0, abs=1e-9)
    assert m["aTFA_FTS_deg"] == pytest.approx(6.0, abs=1e-9)  # femoral shaft 6 deg medial
    assert g.cpak(_leg()) == 5


def test_varus_and_valgus_signs_and_values() -> None:
    pts = _leg(ldfa=93.0, mpta=85.0, hka=-8.0)
    m = g.measure_leg(pts)
    assert m["mLDFA_deg"] == pytest.approx(93.0, abs=1e-9)
    assert m["mMPTA_deg"] == pytest.approx(85.0, abs=1e-9)
    assert m["aHKA_deg"] == pytest.approx(-8.0, abs=1e-9)
    assert m["JLO_deg"] == pytest.approx(178.0, abs=1e-9)
    assert m["HKA_deg"] == pytest.approx(-8.0, abs=1e-9)
    assert m["HKA_180_deg"] == pytest.approx(172.0, abs=1e-9)
    # MAD = Lf * Lt * sin(HKA) / |hip-ankle|, negative for varus
    a = 380.0 * np.array([np.sin(np.radians(-8.0)), np.cos(np.radians(-8.0))])
    d = a - np.array([0.0, -400.0])
    assert m["MAD_mm"] == pytest.approx(400.0 * d[0] / np.linalg.norm(d), abs=1e-9)
    assert m["MAD_mm"] < 0
    assert g.mad(pts, mm_per_px=0.5) == pytest.approx(0.5 * m["MAD_mm"])
    v = g.measure_leg(_leg(ldfa=87.0, mpta=92.0, hka=6.0))
    assert v["HKA_deg"] == pytest.approx(6.0, abs=1e-9) and v["MAD_mm"] > 0
    assert g.cpak(pts) == 4 and g.cpak(_leg(ldfa=87.0, mpta=92.0, hka=6.0)) == 6


def test_jlca_sign_and_hka_identity() -> None:
    # plateau turned so the lateral side opens: JLCA positive, HKA = aHKA - JLCA
    pts = _leg(ldfa=90.0, mpta=90.0, hka=-4.0)
    m = g.measure_leg(pts)
    assert m["aHKA_deg"] == pytest.approx(0.0, abs=1e-9)
    assert m["JLCA_deg"] == pytest.approx(4.0, abs=1e-9)
    rng = np.random.default_rng(3)
    for _ in range(50):
        a = build_leg(sample_leg_params(rng))
        mm = g.measure_leg(a.landmarks)
        assert mm["HKA_deg"] == pytest.approx(mm["aHKA_deg"] - mm["JLCA_deg"], abs=1e-9)


def _transform(pts: np.ndarray, deg: float, scale: float, shift: tuple[float, float],
               mirror: bool) -> np.ndarray:
    a = np.radians(deg)
    r = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    q = pts * np.array([-1.0 if mirror else 1.0, 1.0])
    return scale * q @ r.T + np.asarray(shift)


@pytest.mark.parametrize("mirror", [False, True])
def test_invariant_to_similarity_and_mirroring(mirror: bool) -> None:
    rng = np.random.default_rng(11)
    for _ in range(40):
        pts = build_leg(sample_leg_params(rng)).landmarks
        ref = g.measure_leg(pts)
        scale = float(rng.uniform(0.2, 9.0))
        moved = _transform(pts, float(rng.uniform(-180, 180)), scale,
                           tuple(rng.uniform(-500, 500, 2)), mirror)
        got = g.measure_leg(moved, mm_per_px=1.0 / scale)
        for key in g.MEASUREMENT_KEYS:
            assert got[key] == pytest.approx(ref[key], abs=1e-7), key
        assert g.cpak(moved) == g.cpak(pts)


def test_cpak_boundaries_inclusive() -> None:
    assert g.cpak_class(2.0, 180.0) == 5
    assert g.cpak_class(-2.0, 180.0) == 5
    assert g.cpak_class(2.0 + 1e-6, 180.0) == 6
    assert g.cpak_class(-2.0 - 1e-6, 180.0) == 4
    assert g.cpak_class(0.0, 177.0) == 5
    assert g.cpak_class(0.0, 183.0) == 5
    assert g.cpak_class(0.0, 177.0 - 1e-6) == 2
    assert g.cpak_class(0.0, 183.0 + 1e-6) == 8
    assert g.cpak_class(-2.0, 177.0) == 5 and g.cpak_class(2.0, 183.0) == 5
    # floating-point noise of landmark geometry cannot move a boundary value
    assert g.cpak_class(2.0 + 1e-12, 183.0 - 1e-12) == 5


def test_cpak_boundary_from_landmarks() -> None:
    # mMPTA - mLDFA = 2 exactly and mMPTA + mLDFA = 183 exactly, built into a leg
    pts = _leg(ldfa=90.5, mpta=92.5, hka=0.0)
    assert g.ahka(pts) == pytest.approx(2.0, abs=1e-9)
    assert g.jlo(pts) == pytest.approx(183.0, abs=1e-9)
    assert g.cpak(pts) == 5
    assert g.cpak(_leg(ldfa=90.5, mpta=92.5 + 1e-5, hka=0.0)) == 9


def test_all_nine_classes_reached() -> None:
    got = {}
    for ahka, col in ((-5.0, 0), (0.0, 1), (5.0, 2)):
        for jlo, row in ((172.0, 0), (180.0, 1), (187.0, 2)):
            mpta, ldfa = 0.5 * (jlo + ahka), 0.5 * (jlo - ahka)
            got[(col, row)] = g.cpak(_leg(ldfa=ldfa, mpta=mpta))
            assert got[(col, row)] == 1 + col + 3 * row
    assert sorted(got.values()) == list(range(1, 10))
    assert [g.cpak_roman(k) for k in (1, 5, 9)] == ["I", "V", "IX"]


def test_inputs_checked() -> None:
    with pytest.raises(ValueError, match="shape"):
        g.measure_leg(np.zeros((10, 3)))
    with pytest.raises(ValueError, match="at least 10"):
        g.mldfa(np.zeros((5, 2)))
    with pytest.raises(ValueError, match="at least 50"):
        g.atfa_fts(_leg()[:10])
    assert np.isnan(g.measure_leg(_leg()[:10])["aTFA_FTS_deg"])
    bad = _leg()
    bad[leg.CONDYLE_LATERAL] = bad[leg.CONDYLE_MEDIAL]
    with pytest.raises(ValueError, match="condylar line"):
        g.hka(bad)
    with pytest.raises(ValueError, match="mm_per_px"):
        g.mad(_leg(), mm_per_px=0.0)
    with pytest.raises(TypeError, match="ahka_deg"):
        g.cpak_class("2", 180.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown full-leg landmark"):
        leg.idx("femoral_head")


def test_scheme_order_and_image_side_names() -> None:
    assert leg.NAMES[:10] == leg.CORE_NAMES
    assert leg.N_LANDMARKS == 50 and len(set(leg.NAMES)) == 50
    r, left = leg.image_side_names("R"), leg.image_side_names("L")
    assert r["L-FC"] == "condyle_lateral_distal" and r["R-FC"] == "condyle_medial_distal"
    assert left["R-FC"] == "condyle_lateral_distal" and left["L-TP"] == "plateau_medial"
    assert r["R-A"] == "malleolus_medial" and left["R-A"] == "malleolus_lateral"
    with pytest.raises(ValueError, match="side"):
        leg.image_side_names("B")  # type: ignore[arg-type]
