"""Full-leg SR and SC from a real FullLegPredictor result: read back, values and coordinates
match the result, dciodvfy reports no error, dsr2html renders the SR."""

from __future__ import annotations

import copy
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pydicom
import pytest
import torch
from pydicom import Dataset
from pydicom.uid import generate_uid

from dicom_node.reports import codes
from dicom_node.reports import full_leg_codes as fc
from dicom_node.reports._checks import ReportInputError, ReportTypeError
from dicom_node.reports.full_leg_overlay import build_full_leg_sc, leg_lines
from dicom_node.reports.full_leg_report import (
    ANGLE_LINES,
    angle_arms,
    build_full_leg_sr,
    leg_geometry,
)
from dicom_node.reports.measurement_report import (
    ANGLE_TOOL,
    VIEWER_TOOL_PREFIX,
    viewer_tracking_identifier,
)
from inference.leg.predictor import FullLegPredictor, FullLegResult
from training.synth_dicom.full_leg import make_full_leg_instance

OBSERVER = generate_uid()


def _items(ds: Dataset) -> list[Dataset]:
    out: list[Dataset] = []
    for item in ds.get("ContentSequence", []):
        out.append(item)
        out.extend(_items(item))
    return out


def _name(item: Dataset) -> tuple[str, str]:
    c = item.ConceptNameCodeSequence[0]
    return str(c.CodeValue), str(c.CodingSchemeDesignator)


def _key(code: object) -> tuple[str, str]:
    return code.value, code.scheme_designator  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def case(tmp_path_factory: pytest.TempPathFactory) -> tuple[Dataset, FullLegResult, Path, Path]:
    torch.set_num_threads(2)
    pred = FullLegPredictor.from_default_weights()
    inst = make_full_leg_instance(990_000_051, max_rows=3000, syntax="explicit")
    src = inst.dataset
    res = pred.measure(src)
    d = tmp_path_factory.mktemp("fullleg")
    sr_path, sc_path = d / "sr.dcm", d / "sc.dcm"
    build_full_leg_sr(src, res, device_observer_uid=OBSERVER).save_as(sr_path,
                                                                     enforce_file_format=True)
    build_full_leg_sc(src, res).save_as(sc_path, enforce_file_format=True)
    return src, res, sr_path, sc_path


def _tracking(group: Dataset) -> str:
    return next(str(i.TextValue) for i in group.ContentSequence
                if _name(i) == ("112039", "DCM"))


def _groups(sr: Dataset) -> list[Dataset]:
    """The legs' own groups (not the viewer angle groups)."""
    return [i for i in _items(sr) if _name(i) == ("125007", "DCM")
            and not _tracking(i).startswith(VIEWER_TOOL_PREFIX)]


def _angle_groups(sr: Dataset) -> list[Dataset]:
    return [i for i in _items(sr) if _name(i) == ("125007", "DCM")
            and _tracking(i) == viewer_tracking_identifier(ANGLE_TOOL)]


def test_sr_values_and_coordinates_match_the_result(case: tuple) -> None:
    src, res, sr_path, _ = case
    sr = pydicom.dcmread(sr_path)
    groups = _groups(sr)
    assert len(groups) == 2
    for g, lg in zip(groups, res.legs, strict=True):
        items = _items(g)
        lat = [i for i in items if _name(i) == ("363698007", "SCT")]  # finding site
        assert lat and lat[0].ConceptCodeSequence[0].CodeValue == fc.LOWER_LIMB.value
        verdict = [i for i in items if _name(i) == _key(codes.QUALITY_VERDICT)][0]
        want = codes.QUALITY_PASS if lg.quality == "pass" else codes.QUALITY_FLAG
        assert verdict.ConceptCodeSequence[0].CodeValue == want.value
        nums = {_name(i): i for i in items if i.ValueType == "NUM"}
        if lg.quality != "pass":
            assert _key(fc.MEASUREMENT_CODES["HKA_deg"]) not in nums
            continue
        geom = leg_geometry(lg)
        for key, code in fc.MEASUREMENT_CODES.items():
            v = lg.measurements[key]
            if not np.isfinite(v):
                continue
            num = nums[_key(code)]
            mv = num.MeasuredValueSequence[0]
            assert abs(float(mv.NumericValue) - v) < 0.051
            unit = mv.MeasurementUnitsCodeSequence[0].CodeValue
            assert unit == ("mm" if key == "MAD_mm" else "deg")
        hka = nums[_key(fc.MEASUREMENT_CODES["HKA_deg"])]
        scoords = [i for i in _items(hka) if i.ValueType == "SCOORD"]
        data = {_name(i): np.asarray(i.GraphicData, float).reshape(-1, 2) for i in scoords}
        np.testing.assert_allclose(data[_key(fc.FEMORAL_MECH_AXIS)], geom["femoral_mech"][1] + 0.5,
                                   atol=1e-3)
        np.testing.assert_allclose(data[_key(fc.HEAD_CENTRE)],
                                   lg.landmarks[[0]] + 0.5, atol=1e-3)
        cpak = [i for i in items if _name(i) == _key(fc.CPAK_CLASS)]
        want_cpak = fc.CPAK_VALUES[lg.cpak.cls].value
        assert cpak and cpak[0].ConceptCodeSequence[0].CodeValue == want_cpak
        border = [i for i in items if _name(i) == _key(fc.CPAK_BORDERLINE)][0]
        assert border.ConceptCodeSequence[0].CodeValue == (
            fc.YES.value if lg.cpak.borderline else fc.NO.value)


def test_each_angle_between_two_lines_has_a_viewer_group(case: tuple) -> None:
    """Per passed leg one Cobb-angle group per angle of ANGLE_LINES: Finding = the concept,
    lower limb + laterality, first NUM = the value (as in the leg's group), first SCOORD the
    4-point arms; the leg's group keeps every value."""
    src, res, sr_path, _ = case
    sr = pydicom.dcmread(sr_path)
    groups = _angle_groups(sr)
    want = [(lg, k) for lg in res.legs if lg.quality == "pass" for k in ANGLE_LINES
            if np.isfinite(lg.measurements[k]) and angle_arms(lg, k) is not None]
    assert len(groups) == len(want)
    for g, (lg, key) in zip(groups, want, strict=True):
        items = _items(g)
        finding = [i for i in items if _name(i) == ("121071", "DCM")][0]
        assert finding.ConceptCodeSequence[0].CodeValue == fc.MEASUREMENT_CODES[key].value
        site = [i for i in items if _name(i) == ("363698007", "SCT")][0]
        assert site.ConceptCodeSequence[0].CodeValue == fc.LOWER_LIMB.value
        assert site.ContentSequence[0].ConceptCodeSequence[0].CodeValue == \
            codes.LATERALITY[lg.side].value
        num = [i for i in g.ContentSequence if i.ValueType == "NUM"][0]
        assert _name(num) == _key(fc.MEASUREMENT_CODES[key])
        assert abs(float(num.MeasuredValueSequence[0].NumericValue) - lg.measurements[key]) \
            < 0.006
        arms = [i for i in num.ContentSequence if i.ValueType == "SCOORD"][0]
        assert arms.GraphicType == "POLYLINE" and _name(arms) == _key(fc.ANGLE_ARMS)
        image = arms.ContentSequence[0]
        assert image.ValueType == "IMAGE" and image.RelationshipType == "SELECTED FROM"
        assert image.ReferencedSOPSequence[0].ReferencedSOPInstanceUID == src.SOPInstanceUID
        want_arms = angle_arms(lg, key)
        assert want_arms is not None
        np.testing.assert_allclose(np.asarray(arms.GraphicData, float).reshape(-1, 2),
                                   want_arms + 0.5, atol=1e-3)


def test_flagged_leg_has_no_values(case: tuple, tmp_path: Path) -> None:
    src, res, _, _ = case
    from dataclasses import replace
    flagged = replace(res, legs=(replace(res.legs[0], quality="flag",
                                         flag_reasons=("test flag",)), res.legs[1]))
    p = tmp_path / "sr.dcm"
    build_full_leg_sr(src, flagged, device_observer_uid=OBSERVER).save_as(
        p, enforce_file_format=True)
    g = _groups(pydicom.dcmread(p))[0]
    names = {_name(i) for i in _items(g)}
    assert _key(fc.MEASUREMENT_CODES["HKA_deg"]) not in names
    assert _key(fc.CPAK_CLASS) not in names
    texts = [i.TextValue for i in _items(g) if i.ValueType == "TEXT"]
    assert "test flag" in texts
    assert "FLAGGED" in leg_lines(flagged.legs[0])[1]


def test_builders_refuse_bad_arguments(case: tuple) -> None:
    src, res, _, _ = case
    with pytest.raises(ReportTypeError, match="result"):
        build_full_leg_sr(src, "x", device_observer_uid=OBSERVER)  # type: ignore[arg-type]
    small = copy.deepcopy(src)
    small.Rows = 10
    with pytest.raises(ReportInputError, match="measured on"):
        build_full_leg_sc(small, res)
    with pytest.raises(ReportInputError, match="series_number"):
        build_full_leg_sr(src, res, device_observer_uid=OBSERVER, series_number=0)


def test_sc_reads_back(case: tuple) -> None:
    src, res, _, sc_path = case
    sc = pydicom.dcmread(sc_path)
    assert sc.BurnedInAnnotation == "YES" and sc.SamplesPerPixel == 3
    assert sc.StudyInstanceUID == src.StudyInstanceUID
    assert sc.SourceImageSequence[0].ReferencedSOPInstanceUID == src.SOPInstanceUID
    px = sc.pixel_array
    assert px.shape[0] >= 1000 and px.shape[1] > px.shape[0] * 0.8  # side panels
    # yellow femoral axis drawn for a passed leg
    yellow = np.all(px == (255, 215, 0), axis=-1).sum()
    assert yellow > 50 or all(lg.quality == "flag" for lg in res.legs)


@pytest.mark.skipif(shutil.which("dciodvfy") is None, reason="dciodvfy not installed")
@pytest.mark.parametrize("which", [2, 3])
def test_dciodvfy_finds_no_error(case: tuple, which: int) -> None:
    path = case[which]
    out = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, timeout=120)
    text = out.stdout + out.stderr
    assert ("Comprehensive3DSR" if which == 2 else "SCImage") in text
    assert [ln for ln in text.splitlines() if ln.startswith("Error")] == []


@pytest.mark.skipif(shutil.which("dsr2html") is None, reason="dsr2html not installed")
def test_dsr2html_renders_the_sr(case: tuple) -> None:
    _, res, sr_path, _ = case
    out = subprocess.run(["dsr2html", str(sr_path)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "NOT FOR DIAGNOSTIC USE" in out.stdout
    if any(lg.quality == "pass" for lg in res.legs):
        assert "Hip-knee-ankle angle" in out.stdout and "deg" in out.stdout


def test_palette_sc_is_the_rgb_overlay_through_its_palette(case: tuple, tmp_path: Path) -> None:
    """The node's default SC encoding: one index per pixel; through the palette it is the
    RGB overlay but for sub-level grey rounding and text edges on coloured backgrounds."""
    from pydicom.pixels import apply_color_lut

    from dicom_node.reports.overlay import TEXT_STEPS

    src, res, _, sc_path = case
    path = tmp_path / "sc_palette.dcm"
    build_full_leg_sc(src, res, encoding="jpeg-ls-lossless-palette").save_as(
        path, enforce_file_format=True)
    back = pydicom.dcmread(path)
    assert back.PhotometricInterpretation == "PALETTE COLOR" and back.SamplesPerPixel == 1
    shown = (apply_color_lut(back.pixel_array, back) >> 8).astype(np.uint8)
    rgb = pydicom.dcmread(sc_path).pixel_array
    assert shown.shape == rgb.shape
    diff = np.abs(shown.astype(int) - rgb.astype(int)).max(axis=-1)
    assert diff.max() <= 255 // (2 * TEXT_STEPS) + 1 and (diff > 1).mean() < 0.01
    yellow = np.all(shown == (255, 215, 0), axis=-1).sum()
    assert yellow == np.all(rgb == (255, 215, 0), axis=-1).sum()
    if shutil.which("dciodvfy"):
        out = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, timeout=120)
        errors = [ln for ln in (out.stdout + out.stderr).splitlines() if ln.startswith("Error")]
        assert errors == []
