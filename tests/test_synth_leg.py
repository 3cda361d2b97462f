"""The full-leg generator (training.synth_leg) and its DICOM writer (synth --kind full-leg)."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from pydicom import dcmread

from inference.leg import geometry as g
from inference.leg import landmarks as leg
from training.synth_dicom.encode import TRANSFER_SYNTAXES
from training.synth_dicom.full_leg import make_full_leg_instance, write_full_leg_instance
from training.synth_leg import plan_study, render_full, render_joint_crop
from training.synth_leg.params import sample_leg_params

N_STUDIES = 500  # 1,000 legs


@pytest.fixture(scope="module")
def studies() -> list:
    # half with stitching mis-registration, half without
    return [plan_study(10_000 + i, stitching=bool(i % 2)) for i in range(N_STUDIES)]


def test_truth_matches_parameters_over_1000_legs(studies: list) -> None:
    worst_deg, worst_mm = 0.0, 0.0
    for st in studies:
        for i in range(2):
            built = st.legs[i].anatomy.built_in
            got = st.leg_measurements(i, stored=False)  # the true landmarks, in true px
            for key in g.MEASUREMENT_KEYS:
                err = abs(got[key] - built[key])
                if key == "MAD_mm":
                    worst_mm = max(worst_mm, err)
                else:
                    worst_deg = max(worst_deg, err)
    assert worst_deg < 0.05, worst_deg
    assert worst_mm < 0.1, worst_mm


def test_stored_truth_equals_parameters_without_misregistration(studies: list) -> None:
    for st in studies[::2][:100]:
        assert all(e.shift_px == (0, 0) for e in st.exposures)
        for i in range(2):
            got = st.leg_measurements(i, stored=True)
            for key in g.MEASUREMENT_KEYS:
                tol = 0.1 if key == "MAD_mm" else 0.05
                assert got[key] == pytest.approx(st.legs[i].anatomy.built_in[key], abs=tol)


def test_cpak_classes_about_uniform_and_hka_covered(studies: list) -> None:
    classes, hka = Counter(), []
    for st in studies:
        for i in range(2):
            m = st.leg_measurements(i, stored=False)
            classes[g.cpak_class(m["aHKA_deg"], m["JLO_deg"])] += 1
            hka.append(m["HKA_deg"])
            assert g.cpak_class(m["aHKA_deg"], m["JLO_deg"]) == st.legs[i].params.cpak
    n = 2 * N_STUDIES
    assert sorted(classes) == list(range(1, 10))
    for k in range(1, 10):
        assert abs(classes[k] - n / 9) <= 0.3 * n / 9, (k, classes)
    counts, _ = np.histogram(hka, bins=6, range=(-15.0, 15.0))
    assert counts.sum() == n
    assert counts.min() >= 0.5 * n / 6, counts


def test_boundary_cases_are_drawn_and_neutral() -> None:
    rng = np.random.default_rng(5)
    hits = 0
    for _ in range(3000):
        p = sample_leg_params(rng, cpak=5)
        if p.ahka in (-2.0, 2.0) or p.jlo in (177.0, 183.0):
            hits += 1
            assert g.cpak_class(p.ahka, p.jlo) == 5
    assert hits > 30


def test_hard_cases_all_occur(studies: list) -> None:
    seen = Counter(c for st in studies for c in st.hard_cases)
    for case in ("tka", "hip_stem", "plate_screws", "ankle_bracelet", "ankles_close",
                 "cut_by_edge", "low_contrast_ankles", "osteophytes"):
        assert seen[case] > 0, case
    assert {len(st.exposures) for st in studies} == {2, 3}
    mags = [st.magnification for st in studies]
    assert min(mags) >= 1.0 and max(mags) <= 1.15
    full = [st for st in studies if st.shape[0] > 4000]
    assert all(0.1 <= st.pixel_spacing_mm <= 0.2 for st in full)
    assert max(st.shape[0] for st in studies) <= 8100 and max(st.shape[1] for st in studies) <= 2800


def test_right_leg_mirrored_and_names_anatomical(studies: list) -> None:
    for st in studies[:50]:
        r, left = st.leg_stored_px(0), st.leg_stored_px(1)
        assert st.legs[0].side == "R" and st.legs[1].side == "L"
        # right leg on the image left; its lateral side faces the image left edge
        assert r[leg.KNEE_CENTRE, 0] < left[leg.KNEE_CENTRE, 0]
        assert r[leg.CONDYLE_LATERAL, 0] < r[leg.CONDYLE_MEDIAL, 0]
        assert left[leg.CONDYLE_LATERAL, 0] > left[leg.CONDYLE_MEDIAL, 0]
        assert r[leg.FEMORAL_HEAD_CENTRE, 1] < r[leg.ANKLE_CENTRE, 1]


def test_same_seed_same_plan_and_crop() -> None:
    a, b = plan_study(42), plan_study(42)
    assert np.array_equal(a.leg_stored_px(0), b.leg_stored_px(0)) and a.shape == b.shape
    ca, cb = render_joint_crop(a, "L", "knee", 128), render_joint_crop(b, "L", "knee", 128)
    assert np.array_equal(ca.image, cb.image)
    other = render_joint_crop(plan_study(43), "L", "knee", 128)
    assert not np.array_equal(ca.image, other.image)


def test_joint_crops_hold_their_landmarks() -> None:
    st = plan_study(7)
    for side in ("R", "L"):
        for joint, names in (("hip", ["femoral_head_centre"]),
                             ("knee", ["knee_centre", "plateau_medial", "condyle_lateral_distal"]),
                             ("ankle", ["ankle_centre", "malleolus_medial"])):
            c = render_joint_crop(st, side, joint, 128)
            assert c.image.shape == (128, 128) and c.image.dtype == np.float32
            assert float(c.image.min()) >= 0.0 and float(c.image.max()) <= 1.0
            for name in names:
                x, y = c.landmarks[leg.idx(name)]
                assert 0 <= x < 128 and 0 <= y < 128, (side, joint, name)
            centre = {"hip": "femoral_head_centre", "knee": "knee_centre",
                      "ankle": "ankle_centre"}[joint]
            assert c.landmarks[leg.idx(centre)] == pytest.approx([64.0, 64.0], abs=1e-6)
    hip = render_joint_crop(st, "R", "hip", 128)
    head = hip.image[56:72, 56:72].mean()
    assert head > hip.image[:8, :8].mean() + 0.05  # the head is bone, the corner is not
    with pytest.raises(ValueError, match="joint"):
        render_joint_crop(st, "R", "elbow", 128)
    with pytest.raises(ValueError, match="size"):
        render_joint_crop(st, "R", "knee", 10)


def test_plan_inputs_checked() -> None:
    with pytest.raises(ValueError, match="seed"):
        plan_study(-1)
    with pytest.raises(ValueError, match="post_op"):
        plan_study(1, post_op="left")
    with pytest.raises(ValueError, match="max_rows"):
        plan_study(1, max_rows=10)


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[Path, Path, object]]:
    out = tmp_path_factory.mktemp("full_leg")
    files = []
    for k, syntax in enumerate(sorted(TRANSFER_SYNTAXES)):
        if syntax == "jpeg-lossless" and shutil.which("dcmcjpeg") is None:
            continue
        modality = "DX" if k % 2 == 0 else "CR"
        inst = make_full_leg_instance(300 + k, max_rows=900, modality=modality,  # type: ignore[arg-type]
                                      syntax=syntax)
        dcm, js = write_full_leg_instance(inst, out)
        files.append((dcm, js, inst))
    return files


def test_truth_json_layout(written: list) -> None:
    for _dcm, js, inst in written:
        t = json.loads(js.read_text())
        assert t["kind"] == "full-leg"
        assert len(t["pixel_spacing_mm"]) == 2 and 1.0 <= t["magnification"] <= 1.15
        assert [lg["side"] for lg in t["legs"]] == ["R", "L"]
        for lg in t["legs"]:
            assert lg["phase"] in ("pre", "post")
            assert lg["landmark_names"] == list(leg.NAMES)
            assert np.asarray(lg["landmarks"]).shape == (leg.N_LANDMARKS, 2)
            assert set(lg["measurements"]) == set(g.MEASUREMENT_KEYS)
            assert 1 <= lg["cpak_class"] <= 9
            # the measurements are those of the landmarks, MAD at the patient
            mm = t["pixel_spacing_mm"][0] / t["magnification"]
            again = g.measure_leg(np.asarray(lg["landmarks"]), mm)
            for key in g.MEASUREMENT_KEYS:
                assert lg["measurements"][key] == pytest.approx(again[key], abs=1e-9)
        assert t["rows"] == inst.radiograph.pixels.shape[0]


def test_pydicom_decodes_every_syntax(written: list) -> None:
    assert len(written) >= 5
    for dcm, _js, inst in written:
        ds = dcmread(dcm)
        assert np.array_equal(ds.pixel_array, inst.radiograph.pixels), inst.syntax
        assert ds.BodyPartExamined == "LOWER LIMB" and ds.ViewPosition == "AP"
        assert ds.StudyDescription == "XR LOWER LIMBS STANDING AP"
        assert "PixelSpacing" not in ds  # the magnification is unknown to the header
        assert float(ds.ImagerPixelSpacing[0]) == pytest.approx(
            inst.radiograph.pixel_spacing_mm[0], rel=1e-5)


@pytest.mark.skipif(shutil.which("dciodvfy") is None,
                    reason="dciodvfy (Debian package dicom3tools) is not installed")
def test_dciodvfy_finds_no_errors(written: list) -> None:
    for dcm, _js, inst in written:
        done = subprocess.run(["dciodvfy", str(dcm)], capture_output=True, text=True,
                              timeout=120)
        errors = [ln for ln in (done.stdout + done.stderr).splitlines()
                  if ln.startswith("Error")]
        assert not errors, (inst.syntax, errors)


def test_synth_kind_option(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from dicom_node.cli import app

    runner = CliRunner()
    done = runner.invoke(app, ["synth", "--count", "1", "--out", str(tmp_path / "k"),
                               "--max-side", "256", "--seed", "3"])
    assert done.exit_code == 0, done.output
    assert [p.name for p in sorted((tmp_path / "k").iterdir())] == [
        "knee_0000000003.dcm", "knee_0000000003.json"]
    bad = runner.invoke(app, ["synth", "--kind", "hand", "--count", "1", "--out",
                              str(tmp_path / "h")])
    assert bad.exit_code != 0 and "--kind" in bad.output
    knee_only = runner.invoke(app, ["synth", "--kind", "full-leg", "--count", "1", "--out",
                                    str(tmp_path / "f"), "--max-side", "512"])
    assert knee_only.exit_code != 0 and "--max-side" in knee_only.output


@pytest.mark.slow
def test_full_size_image_renders(tmp_path: Path) -> None:
    st = plan_study(900_000_001, full_size=True)
    r = render_full(st)
    assert r.pixels.shape == (8100, 2800)
    assert int(r.pixels.max()) < 2 ** r.bits_stored


def test_crop_beyond_the_image_edge_is_padding() -> None:
    st = plan_study(20004)  # its field of view cuts through the femoral heads
    assert "cut_by_edge" in st.hard_cases
    c = render_joint_crop(st, "R", "hip", 128)
    # rows of the crop above stored row 0 are zero, rows below are not
    top = int(np.ceil(-c.box[1] * 128 / c.box[2])) - 1
    assert top > 4
    assert np.all(c.image[:top] == 0.0)
    assert float(c.image[top + 2:].mean()) > 0.05


#: What the joint crops of plan_study(900_000_001) looked like when the crop path was
#: timed for issue 12 (commit ac37ca1): 4 x 4 block means of the image and the sum of the
#: landmark coordinates. A faster renderer must keep them (noise-level differences only).
CROP_REFERENCE = {
    ("R", "knee", 256): ([[0.1288, 0.6297, 0.5376, 0.0854], [0.0955, 0.6503, 0.6056, 0.0778],
                          [0.0822, 0.5422, 0.5575, 0.1036], [0.0805, 0.4507, 0.6319, 0.1616]],
                         -1607.227301),
    ("L", "hip", 128): ([[0.5895, 0.449, 0.5623, 0.3519], [0.2493, 0.4771, 0.5463, 0.2983],
                         [0.0297, 0.4193, 0.5962, 0.3762], [0.0562, 0.4489, 0.5392, 0.369]],
                        15439.338766),
    ("R", "ankle", 128): ([[0.1964, 0.6493, 0.3071, 0.0914], [0.1676, 0.6303, 0.4327, 0.0788],
                           [0.1734, 0.6249, 0.5244, 0.0863], [0.1249, 0.5015, 0.4784, 0.0932]],
                          -18258.660607),
}


@pytest.mark.parametrize("case", sorted(CROP_REFERENCE))
def test_joint_crop_renders_what_it_rendered_before(case: tuple[str, str, int]) -> None:
    side, joint, size = case
    blocks, landmark_sum = CROP_REFERENCE[case]
    crop = render_joint_crop(plan_study(900_000_001), side, joint, size)
    assert crop.image.dtype == np.float32 and crop.image.shape == (size, size)
    means = crop.image.astype(np.float64).reshape(4, size // 4, 4, size // 4).mean(axis=(1, 3))
    assert np.abs(means - np.asarray(blocks)).max() < 2e-3  # 4-decimal reference + noise
    assert float(crop.landmarks.sum()) == pytest.approx(landmark_sum, abs=1e-5)  # same truth
