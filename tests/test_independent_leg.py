"""The independent full-leg renderer: deterministic, exact truth, valid DICOM, CLI."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pydicom
import pytest

from inference.leg import geometry
from inference.leg import landmarks as leg
from inference.pixels import read_radiograph
from training.independent_leg import render
from training.independent_leg.limb import build_limb, draw_limb
from training.independent_leg.solids import Blob, Tube, window
from training.independent_leg.storage import IndependentLegError, to_dataset, write

ROOT = Path(__file__).resolve().parents[1]
ANGLES = ("HKA_deg", "mLDFA_deg", "mMPTA_deg", "aHKA_deg", "JLO_deg", "JLCA_deg", "FVA_deg",
          "aTFA_FTS_deg")


@pytest.fixture(scope="module")
def study() -> object:
    return render(4242)


def test_render_is_deterministic_by_seed(study: object) -> None:
    again = render(4242)
    assert np.array_equal(study.pixels, again.pixels)  # type: ignore[attr-defined]
    other = render(4243)
    assert other.pixels.shape != study.pixels.shape or not np.array_equal(  # type: ignore[attr-defined]
        other.pixels, study.pixels)  # type: ignore[attr-defined]
    assert other.legs[0].measurements["HKA_deg"] != study.legs[0].measurements["HKA_deg"]  # type: ignore[attr-defined]


def test_truth_measured_from_its_landmarks_equals_the_drawn_alignment(study: object) -> None:
    for lt in study.legs:  # type: ignore[attr-defined]
        for k in ANGLES:
            assert abs(lt.measurements[k] - lt.built_in[k]) < 0.05, (lt.side, k)
        assert abs(lt.measurements["MAD_mm"] - lt.built_in["MAD_mm"]) < 0.05
        assert lt.cpak_class == geometry.cpak_class(lt.built_in["aHKA_deg"],
                                                    lt.built_in["JLO_deg"])
        assert lt.in_image.all()
    # the right leg is on the image left, its lateral side facing the image left edge
    r, left = study.legs  # type: ignore[attr-defined]
    assert r.side == "R" and left.side == "L"
    assert r.landmarks[leg.KNEE_CENTRE, 0] < left.landmarks[leg.KNEE_CENTRE, 0]
    assert r.landmarks[leg.CONDYLE_LATERAL, 0] < r.landmarks[leg.CONDYLE_MEDIAL, 0]


def test_drawn_legs_are_exact_and_cover_every_cpak_class() -> None:
    classes = set()
    for s in range(400):
        lb = build_limb(draw_limb(np.random.default_rng([s, 99])))
        m = geometry.measure_leg(lb.landmarks)
        for k in ANGLES:
            assert abs(m[k] - lb.built_in[k]) < 0.05, (s, k)
        classes.add(geometry.cpak_class(m["aHKA_deg"], m["JLO_deg"]))
    assert classes == set(range(1, 10))


def test_bone_is_brighter_than_the_soft_tissue_beside_the_femoral_shaft(study: object) -> None:
    img = study.pixels.astype(float)  # type: ignore[attr-defined]
    if study.photometric == "MONOCHROME1":  # type: ignore[attr-defined]
        img = img.max() - img
    lt = study.legs[1]  # type: ignore[attr-defined]
    m = lt.landmarks[leg.FEMUR_SHAFT_DISTAL.medial]
    la = lt.landmarks[leg.FEMUR_SHAFT_DISTAL.lateral]
    mid = 0.5 * (m + la)
    width = float(np.hypot(*(la - m)))
    inside = img[int(mid[1]) - 3:int(mid[1]) + 3, int(mid[0]) - 3:int(mid[0]) + 3].mean()
    out_x = int(la[0] + 0.6 * width)
    beside = img[int(mid[1]) - 3:int(mid[1]) + 3, out_x - 3:out_x + 3].mean()
    assert inside > beside


def test_solids_chords_are_the_closed_form_ones() -> None:
    shape = (60, 60)
    ball = Blob(np.array([30.0, 30.0]), np.array([1.0, 0.0]), 10.0, 10.0, 2.0, 2.0, 10.0)
    o, _ = ball.paths(ball.window(shape))
    w = ball.window(shape)
    assert o[30 - w.r0, 30 - w.c0] == pytest.approx(20.0, rel=1e-4)
    assert o[30 - w.r0, 36 - w.c0] == pytest.approx(16.0, rel=1e-4)  # 2 sqrt(100 - 36)
    tube = Tube(np.array([[10.0, 30.0], [50.0, 30.0]]), np.array([8.0, 8.0]),
                np.array([3.0, 3.0]))
    w = tube.window(shape)
    o, i = tube.paths(w)
    assert o[34 - w.r0, 30 - w.c0] == pytest.approx(2 * np.sqrt(64 - 16), rel=1e-4)
    assert i[34 - w.r0, 30 - w.c0] == pytest.approx(2 * np.sqrt(25 - 16), rel=1e-4)
    assert window(np.array([-5.0, -5.0]), np.array([100.0, 3.0]), shape).r0 == 0


def test_write_gives_the_full_leg_layout_the_evaluators_read(tmp_path: Path) -> None:
    dcm, js = write(4242, tmp_path, "DX")
    assert dcm.name == "full_leg_0000004242.dcm"
    truth = json.loads(js.read_text())
    assert truth["kind"] == "full-leg" and truth["renderer"] == "independent-leg"
    ds = pydicom.dcmread(dcm)
    assert ds.Modality == "DX" and ds.ImageLaterality == "B"
    assert "PixelSpacing" not in ds and "EstimatedRadiographicMagnificationFactor" not in ds
    assert float(ds.ImagerPixelSpacing[0]) == pytest.approx(truth["pixel_spacing_mm"][0])
    px = read_radiograph(ds)
    assert px.image.shape == (truth["rows"], truth["columns"])
    assert px.image.shape[0] <= 8100 and px.image.shape[1] <= 2800
    for lt in truth["legs"]:
        pts = np.asarray(lt["landmarks"])
        assert pts.shape == (leg.N_LANDMARKS, 2)
        mm_per_px = truth["pixel_spacing_mm"][0] / truth["magnification"]
        m = geometry.measure_leg(pts, mm_per_px)
        for k, v in lt["measurements"].items():
            assert m[k] == pytest.approx(v, abs=1e-6)
    with pytest.raises(IndependentLegError):
        to_dataset(render(4242), "MR", "x")


@pytest.mark.skipif(shutil.which("dciodvfy") is None, reason="dciodvfy (dicom3tools) not installed")
@pytest.mark.parametrize("modality", ["DX", "CR"])
def test_dciodvfy_reports_no_error(modality: str, tmp_path: Path) -> None:
    dcm, _ = write(4242, tmp_path, modality)
    done = subprocess.run(["dciodvfy", str(dcm)], capture_output=True, text=True, timeout=120)
    errors = [ln for ln in (done.stdout + done.stderr).splitlines() if ln.startswith("Error")]
    assert errors == []


def test_the_cli_writes_pairs(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from dicom_node.cli import app

    res = CliRunner().invoke(app, ["synth", "independent-leg", "--out", str(tmp_path),
                                   "--count", "1", "--seed", "77", "--modality", "CR"])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "full_leg_0000000077.dcm").is_file()
    assert json.loads((tmp_path / "full_leg_0000000077.json").read_text())["modality"] == "CR"


def test_the_whole_chain_evaluator_reads_a_written_folder(tmp_path: Path) -> None:
    from inference.leg.predictor import FullLegPredictor
    from training.leg_node_evaluate import _folder_instances, evaluate

    write(4242, tmp_path, "DX")
    files = _folder_instances(tmp_path)
    r = evaluate(FullLegPredictor.from_default_weights(num_threads=1), files, 4050)
    assert r["n_images"] == 1 and r["n_legs"] == 2
    assert r["n_measured"] + 2 * len(r["refused"]) <= 2
    assert r["seeds"] == [4242, 4243]
    with pytest.raises(FileNotFoundError):
        _folder_instances(tmp_path / "empty")
