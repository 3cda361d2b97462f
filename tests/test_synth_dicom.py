"""DICOM output of the generator: lossless round trips, dciodvfy, JSON truth, CLI."""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
from typer.testing import CliRunner

from dicom_node.cli import app
from training.synth_dicom import (
    TRANSFER_SYNTAXES,
    DicomChoice,
    SynthDicomError,
    encode,
    make_instance,
    to_dataset,
    write_instance,
)

pytest.importorskip("training.synth", reason="generator training.synth not built yet")
from training.synth import GENERATOR_VERSION, synthesize  # noqa: E402

SIDE = 256  # small images keep the tests fast
HAS_DCIODVFY = shutil.which("dciodvfy") is not None
HAS_DCMCJPEG = shutil.which("dcmcjpeg") is not None


@cache
def _radiograph(seed: int, laterality: str | None = None, both: bool | None = None) -> Any:
    return synthesize(seed, laterality=laterality, both_knees=both, max_side=SIDE)


def _as_photometric(r: Any, photometric: str) -> Any:
    """The same radiograph stored in the other photometric interpretation, if asked."""
    if r.photometric == photometric:
        return r
    top = (1 << r.bits_stored) - 1
    flipped = (top - r.pixels).astype(np.uint16)
    return dataclasses.replace(r, photometric=photometric, pixels=flipped)


def _dciodvfy(path: Path) -> list[str]:
    done = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, timeout=60)
    return [line for line in (done.stdout + done.stderr).splitlines() if line.startswith("Error")]


@pytest.mark.parametrize("syntax", sorted(TRANSFER_SYNTAXES))
def test_every_transfer_syntax_decodes_to_the_generator_pixels(syntax: str, tmp_path: Path) -> None:
    if syntax == "jpeg-lossless" and not HAS_DCMCJPEG:
        pytest.skip("dcmtk dcmcjpeg not installed (needed for JPEG Lossless SV1)")
    for seed in (11, 12):  # two seeds: different bit depths / photometrics
        inst = make_instance(seed, max_side=SIDE, syntax=syntax, modality="DX")
        dcm, _ = write_instance(inst, tmp_path)
        back = pydicom.dcmread(dcm)
        assert back.file_meta.TransferSyntaxUID == TRANSFER_SYNTAXES[syntax]
        assert back.BitsStored == inst.radiograph.bits_stored
        decoded = back.pixel_array
        assert decoded.dtype == np.uint16
        np.testing.assert_array_equal(decoded, inst.radiograph.pixels)


@pytest.mark.skipif(not HAS_DCIODVFY, reason="dciodvfy (dicom3tools) not installed")
@pytest.mark.parametrize("sides", ["L", "R", "both"])
@pytest.mark.parametrize("photometric", ["MONOCHROME1", "MONOCHROME2"])
@pytest.mark.parametrize(
    "choice", [DicomChoice("DX"), DicomChoice("DX", for_processing=True), DicomChoice("CR")],
    ids=["DX-presentation", "DX-processing", "CR"],
)
def test_dciodvfy_reports_no_error(
    choice: DicomChoice, photometric: str, sides: str, tmp_path: Path
) -> None:
    both = sides == "both"
    r = _as_photometric(_radiograph(21, None if both else sides, both), photometric)
    assert len(r.knees) == (2 if both else 1)
    ds = to_dataset(r, choice, GENERATOR_VERSION)
    assert ds.ImageLaterality == ("B" if both else sides)
    path = tmp_path / "x.dcm"
    encode(ds).save_as(path, enforce_file_format=True)
    assert _dciodvfy(path) == []


@pytest.mark.skipif(not HAS_DCIODVFY, reason="dciodvfy (dicom3tools) not installed")
@pytest.mark.parametrize("syntax", sorted(TRANSFER_SYNTAXES))
def test_dciodvfy_accepts_every_transfer_syntax(syntax: str, tmp_path: Path) -> None:
    if syntax == "jpeg-lossless" and not HAS_DCMCJPEG:
        pytest.skip("dcmtk dcmcjpeg not installed (needed for JPEG Lossless SV1)")
    dcm, _ = write_instance(make_instance(31, max_side=SIDE, syntax=syntax), tmp_path)
    assert _dciodvfy(dcm) == []


def test_presentation_headers_follow_the_photometric() -> None:
    r = _radiograph(41)
    cases = (("MONOCHROME1", "INVERSE", 1), ("MONOCHROME2", "IDENTITY", -1))
    for photometric, shape, sign in cases:
        ds = to_dataset(_as_photometric(r, photometric), DicomChoice("DX"), GENERATOR_VERSION)
        assert ds.PhotometricInterpretation == photometric
        assert ds.PresentationLUTShape == shape
        assert ds.PixelIntensityRelationshipSign == sign
        assert ds.PresentationIntentType == "FOR PRESENTATION"
        assert 0 < ds.WindowWidth <= (1 << r.bits_stored)
    cr = to_dataset(r, DicomChoice("CR"), GENERATOR_VERSION)
    assert cr.Modality == "CR" and "PresentationLUTShape" not in cr


@pytest.mark.parametrize("seed", [51, 52, 53, 54])
def test_true_spacing_is_recoverable_from_the_header(seed: int) -> None:
    for modality in ("DX", "CR"):
        inst = make_instance(seed, max_side=SIDE, modality=modality)
        ds = inst.dataset
        if "PixelSpacing" in ds:
            spacing = [float(v) for v in ds.PixelSpacing]
        elif modality == "DX":
            mag = float(ds.EstimatedRadiographicMagnificationFactor)
            spacing = [float(v) / mag for v in ds.ImagerPixelSpacing]
        else:
            mag = float(ds.DistanceSourceToDetector) / float(ds.DistanceSourceToPatient)
            spacing = [float(v) / mag for v in ds.ImagerPixelSpacing]
        np.testing.assert_allclose(spacing, inst.radiograph.pixel_spacing_mm, rtol=1e-4)


@pytest.mark.parametrize("both", [False, True])
def test_json_matches_the_generator_truth(both: bool, tmp_path: Path) -> None:
    inst = make_instance(61, max_side=SIDE, both_knees=both)
    dcm, js = write_instance(inst, tmp_path)
    truth = json.loads(js.read_text())
    r = inst.radiograph
    assert len(truth["knees"]) == len(r.knees) == (2 if both else 1)
    for record, knee in zip(truth["knees"], r.knees, strict=True):
        np.testing.assert_array_equal(np.array(record["landmarks"]), knee.landmarks)
        assert record["laterality"] == knee.laterality
        assert record["phase"] == knee.phase
        assert len(record["landmark_names"]) == len(record["landmarks"])
        np.testing.assert_allclose(record["pixel_spacing_mm"], r.pixel_spacing_mm)
        for method in ("FTS", "FNTS"):
            assert record["atfa_deg"][method] == pytest.approx(knee.atfa_deg[method], abs=1e-6)
    for key in ("landmarks", "laterality", "atfa_deg", "landmark_names"):
        assert truth[key] == truth["knees"][0][key]
    ds = pydicom.dcmread(dcm)
    assert truth["sop_instance_uid"] == ds.SOPInstanceUID
    assert truth["modality"] == ds.Modality
    assert truth["transfer_syntax_uid"] == ds.file_meta.TransferSyntaxUID
    assert truth["image_phase"] == r.phase
    assert truth["seed"] == 61 and truth["generator_version"] == GENERATOR_VERSION
    assert (truth["rows"], truth["columns"]) == (ds.Rows, ds.Columns)
    if both:
        assert ds.ImageLaterality == "B"
        assert {k["laterality"] for k in truth["knees"]} == {"L", "R"}
    else:
        assert ds.ImageLaterality == truth["laterality"]


def test_same_seed_gives_the_same_files(tmp_path: Path) -> None:
    for run in ("a", "b"):
        for syntax in ("explicit", "j2k-lossless"):
            write_instance(make_instance(71, max_side=SIDE, syntax=syntax), tmp_path / run / syntax)
    for syntax in ("explicit", "j2k-lossless"):
        for suffix in (".dcm", ".json"):
            a = (tmp_path / "a" / syntax / f"knee_0000000071{suffix}").read_bytes()
            b = (tmp_path / "b" / syntax / f"knee_0000000071{suffix}").read_bytes()
            assert a == b, (syntax, suffix)
    other = make_instance(72, max_side=SIDE)
    first = pydicom.dcmread(tmp_path / "a" / "explicit" / "knee_0000000071.dcm")
    assert other.dataset.SOPInstanceUID != first.SOPInstanceUID
    assert other.dataset.StudyInstanceUID != first.StudyInstanceUID


def test_cli_synth_writes_n_pairs(tmp_path: Path) -> None:
    args = ["synth", "--count", "3", "--out", str(tmp_path), "--seed", "900000000",
            "--max-side", str(SIDE), "--modality", "CR", "--phase", "post", "--laterality", "R",
            "--transfer-syntax", "rle", "--both-knees-fraction", "0"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    stems = sorted(p.stem for p in tmp_path.glob("*.dcm"))
    assert stems == [f"knee_{s:010d}" for s in range(900_000_000, 900_000_003)]
    assert sorted(p.stem for p in tmp_path.glob("*.json")) == stems
    for stem in stems:
        truth = json.loads((tmp_path / f"{stem}.json").read_text())
        ds = pydicom.dcmread(tmp_path / f"{stem}.dcm")
        assert ds.Modality == truth["modality"] == "CR"
        assert truth["phase"] == "post" and truth["transfer_syntax"] == "rle"
        assert [k["laterality"] for k in truth["knees"]] == ["R"] == [ds.ImageLaterality]


def test_cli_rejects_a_bad_choice(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["synth", "--count", "1", "--out", str(tmp_path), "--transfer-syntax", "jpeg-lossy"]
    )
    assert result.exit_code != 0
    assert not list(tmp_path.glob("*.dcm"))


def test_bench_writes_its_figures(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    result = CliRunner().invoke(
        app, ["bench-synth-dicom", "--count", "1", "--max-side", "128", "--output", str(out)]
    )
    assert result.exit_code == 0, result.output
    figures = json.loads(out.read_text())
    assert set(figures["transfer_syntaxes"]) == set(TRANSFER_SYNTAXES)
    assert all(row["total_s_per_file"] > 0 for row in figures["transfer_syntaxes"].values())


def test_missing_dcmcjpeg_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    ds = to_dataset(_radiograph(81), DicomChoice("DX"), GENERATOR_VERSION)
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(SynthDicomError, match="dcmcjpeg"):
        encode(ds, "jpeg-lossless")


def test_bad_arguments_are_refused() -> None:
    ds = to_dataset(_radiograph(81), DicomChoice("DX"), GENERATOR_VERSION)
    with pytest.raises(ValueError, match="syntax"):
        encode(ds, "jpeg-lossy")
    with pytest.raises(ValueError, match="for_processing"):
        DicomChoice("CR", for_processing=True)
    with pytest.raises(ValueError, match="seed"):
        make_instance(-1)


def test_patient_orientation_follows_the_anatomy() -> None:
    r = _radiograph(91, "R", False)
    ds = to_dataset(r, DicomChoice("DX"), GENERATOR_VERSION)
    assert list(ds.PatientOrientation) == ["L", "F"]  # AP, displayed facing the patient
    cols = r.pixels.shape[1]
    knee = r.knees[0]
    mirrored_pts = knee.landmarks.copy()
    mirrored_pts[:, 0] = cols - 1 - mirrored_pts[:, 0]
    mirrored_knee = dataclasses.replace(knee, landmarks=mirrored_pts)
    mirrored = dataclasses.replace(r, pixels=r.pixels[:, ::-1].copy(), knees=(mirrored_knee,))
    flipped = to_dataset(mirrored, DicomChoice("DX"), GENERATOR_VERSION)
    assert list(flipped.PatientOrientation) == ["R", "F"]
