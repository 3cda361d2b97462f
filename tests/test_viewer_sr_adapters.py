"""Our SR read by the libraries OHIF uses (dcmjs, @cornerstonejs/adapters, under node): each aTFA
comes back as an editable Cobb angle tool with the SR's points and value.

Point the check at any other SR (e.g. the full-leg SR) with ``KNEE_NODE_VIEWER_SR=path.dcm``, or
run ``python tests/viewer/sr_tools.py path.dcm``.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
from pydicom import Dataset
from pydicom.uid import generate_uid

sys.path.insert(0, str(Path(__file__).parent))
from test_reports_common import MODEL, knee_landmarks, make_measurement, make_source  # noqa: E402
from viewer.sr_tools import compare, missing_reason, run_adapters, sr_angles  # noqa: E402

from dicom_node.reports import codes, create_measurement_report  # noqa: E402
from dicom_node.reports.measurement_report import PIXEL_CENTRE_OFFSET  # noqa: E402
from inference.measurement import KneeMeasurement  # noqa: E402

pytestmark = pytest.mark.skipif(missing_reason() is not None, reason=str(missing_reason()))
SPACING = (0.15, 0.15)


def _sr_file(source: Dataset, knees: list[KneeMeasurement], tmp_path: Path) -> Path:
    sr = create_measurement_report(source, knees, device_observer_uid=generate_uid())
    path = tmp_path / "sr.dcm"
    sr.save_as(path, enforce_file_format=True)
    return path


@pytest.mark.parametrize("left_quality", ["pass", "flag"])
def test_each_atfa_is_a_cobb_angle_with_the_sr_points_and_value(
    tmp_path: Path, left_quality: str
) -> None:
    """Two knees: a tool per aTFA of each passed knee (none for a flagged one), on the
    measured arms (within 0.01 px), with the SR's values and findings."""
    right = knee_landmarks(-5.0, laterality="R", scale=1.2, centre=(150, 300))
    left = knee_landmarks(4.0, laterality="L", scale=1.2, centre=(400, 300))
    source = make_source(rows=600, cols=560, knees=(right, left))
    source.ImagerPixelSpacing = list(SPACING)
    knees = [  # the right knee's angles carry their 95 % interval (TID 310 property NUM)
        dataclasses.replace(make_measurement(right, laterality="R"),
                            atfa_ci95_deg={"FTS": 0.81, "FNTS": 0.7}),
        make_measurement(left, laterality="L", quality=left_quality,
                         reasons=("low heatmap peak",) if left_quality == "flag" else ()),
    ]
    passed = [m for m in knees if m.quality == "pass"]
    path = _sr_file(source, knees, tmp_path)
    result = run_adapters(path, SPACING)
    tools = result["tools"]
    assert [t["toolType"] for t in tools] == ["CobbAngle"] * 2 * len(passed), result["warnings"]
    assert {t["trackingIdentifier"] for t in tools} == {"Cornerstone3DTools@^0.1.0:CobbAngle"}
    # warnings only for groups that are not tools (the knees' own groups), not for the angles
    assert len(result["warnings"]) <= result["groups"] - len(tools)
    want = [(m, meth) for m in passed for meth in ("FTS", "FNTS")]
    for tool, (m, method) in zip(tools, want, strict=True):
        axes = m.axes(method)  # type: ignore[arg-type]
        fem, tib = axes["femoral"], axes["tibial"]
        arms = np.array([fem.proximal, fem.distal, tib.distal, tib.proximal]) + PIXEL_CENTRE_OFFSET
        np.testing.assert_allclose(np.asarray(tool["points"]), arms, atol=0.01)
        assert tool["value"] == pytest.approx(m.atfa_deg[method], abs=0.006)
        concept = codes.ATFA_FTS if method == "FTS" else codes.ATFA_FNTS
        assert tool["finding"]["value"] == concept.value
        assert tool["description"] == concept.meaning
        assert tool["referencedSOPInstanceUID"] == source.SOPInstanceUID
    assert compare(path, SPACING, result) == []


def test_compare_catches_a_moved_point_and_a_wrong_value(tmp_path: Path) -> None:
    """The comparison is against the SR as written: edit the SR's value and a point of its
    4-point SCOORD and the adapters' tools (read from the edited file) still match it, while
    the tools of the original file no longer do."""
    pts = knee_landmarks(3.0, scale=1.2, centre=(260, 300))
    source = make_source(rows=600, cols=520, knees=(pts,))
    path = _sr_file(source, [make_measurement(pts)], tmp_path)
    original = run_adapters(path)
    sr = pydicom.dcmread(path)
    angles, groups = sr_angles(sr)
    assert groups == 3 and [a.tool for a in angles] == ["CobbAngle", "CobbAngle"]
    report = next(i for i in sr.ContentSequence
                  if i.ConceptNameCodeSequence[0].CodeValue == "126010")
    num = next(i for i in report.ContentSequence[1].ContentSequence if i.ValueType == "NUM")
    num.MeasuredValueSequence[0].NumericValue = "1.5"
    scoord = next(i for i in num.ContentSequence if i.ValueType == "SCOORD")
    data = list(scoord.GraphicData)
    data[0] += 0.05
    scoord.GraphicData = data
    edited = tmp_path / "edited.dcm"
    sr.save_as(edited)
    assert compare(edited) == []
    problems = compare(edited, result=original)
    assert any("points off by 0.05" in p for p in problems), problems
    assert any("value 3, SR has 1.5" in p for p in problems), problems


def test_generator_study_sr(tmp_path: Path) -> None:
    """A study of the project's generator, measured at its true landmarks."""
    from training.synth_dicom import make_instance

    inst = make_instance(11, max_side=512, both_knees=False, syntax="explicit")
    pts = np.asarray(inst.truth["landmarks"], dtype=float)
    m = make_measurement(pts, laterality=inst.truth["laterality"], phase=inst.truth["phase"])
    path = _sr_file(inst.dataset, [m], tmp_path)
    result = run_adapters(path)
    assert compare(path, result=result) == []
    values = sorted(t["value"] for t in result["tools"])
    truth = sorted(round(v, 2) for v in inst.truth["atfa_deg"].values())
    assert values == pytest.approx(truth, abs=0.006)


@pytest.mark.skipif("KNEE_NODE_VIEWER_SR" not in os.environ,
                    reason="set KNEE_NODE_VIEWER_SR=sr.dcm to check another SR")
def test_any_sr_file() -> None:
    """Any SR given by path (e.g. a full-leg SR): every angle group is a matching tool."""
    assert compare(Path(os.environ["KNEE_NODE_VIEWER_SR"])) == []


def _synthetic_full_leg(seed: int) -> tuple[Dataset, Any]:
    """A generator full-leg study and a FullLegResult made from its true landmarks (both
    legs passed; no model): what the full-leg SR is built from."""
    from inference.leg.geometry import measure_leg
    from inference.leg.predictor import (
        MEASUREMENTS,
        CpakResult,
        FullLegResult,
        LegResult,
        cpak_with_margin,
    )
    from inference.leg.roi import RoiResult
    from training.synth_dicom.full_leg import make_full_leg_instance

    inst = make_full_leg_instance(seed, max_rows=1500, syntax="explicit")
    mm = float(inst.truth["pixel_spacing_mm"][0])
    legs = []
    for lt in inst.truth["legs"]:
        pts = np.asarray(lt["landmarks"], dtype=float)
        vals = {k: float(v) for k, v in measure_leg(pts, mm).items() if k in MEASUREMENTS}
        cpak: CpakResult = cpak_with_margin(vals["aHKA_deg"], vals["JLO_deg"], 1.0)
        legs.append(LegResult(
            side=lt["side"], landmarks=pts, found=np.all(np.isfinite(pts), axis=1),
            measurements=vals, units={k: v[1] for k, v in MEASUREMENTS.items()}, cpak=cpak,
            quality="pass", flag_reasons=(), joint_probability={"hip": 0.99, "knee": 0.99},
            mm_per_px=mm))
    ds = inst.dataset
    result = FullLegResult(tuple(legs), (int(ds.Rows), int(ds.Columns)), (mm, mm), "header",
                           MODEL, RoiResult((), ()))
    return ds, result


def _cornerstone_angle(points: np.ndarray) -> float:
    """The angle Cornerstone's CobbAngle tool computes from its 4 handles
    (``CobbAngleTool._calculateCachedStats``): each arm oriented from its far end to its end
    nearest the other arm, then the angle between the two (0-180 deg)."""
    pairs = [(i, j) for i in (0, 1) for j in (2, 3)]
    i, j = min(pairs, key=lambda ij: float(np.linalg.norm(points[ij[0]] - points[ij[1]])))
    v1 = points[i] - points[1 - i]
    v2 = points[j] - points[5 - j]
    cos = float(np.dot(v1, v2) / (np.linalg.norm(v1) * np.linalg.norm(v2)))
    return float(np.degrees(np.arccos(np.clip(cos, -1.0, 1.0))))


def test_full_leg_sr_angles_are_cobb_angles(tmp_path: Path) -> None:
    """The full-leg SR of a synthetic result: one CobbAngle per angle between two lines per
    leg (HKA, mLDFA, mMPTA, JLCA, FVA, aTFA), on the SR's 4 points (within 0.01 px) with the
    SR's value; what Cornerstone then shows is the angle between the arms, per angle as in
    docs/viewer.md."""
    from dicom_node.reports import full_leg_codes as fc
    from dicom_node.reports.full_leg_report import ANGLE_LINES, angle_arms, build_full_leg_sr

    source, res = _synthetic_full_leg(990_000_051)
    path = tmp_path / "full_leg_sr.dcm"
    build_full_leg_sr(source, res, device_observer_uid=generate_uid()).save_as(
        path, enforce_file_format=True)
    assert res.pixel_spacing_mm is not None
    spacing = (float(res.pixel_spacing_mm[0]), float(res.pixel_spacing_mm[1]))
    result = run_adapters(path, spacing)
    tools = result["tools"]
    want = [(lg, k) for lg in res.legs for k in ANGLE_LINES if np.isfinite(lg.measurements[k])]
    assert len(want) == 2 * len(ANGLE_LINES), "the synthetic legs have every angle"
    assert [t["toolType"] for t in tools] == ["CobbAngle"] * len(want), result["warnings"]
    assert {t["trackingIdentifier"] for t in tools} == {"Cornerstone3DTools@^0.1.0:CobbAngle"}
    assert len(result["warnings"]) <= result["groups"] - len(tools)
    for tool, (lg, key) in zip(tools, want, strict=True):
        pts = np.asarray(tool["points"], dtype=float)[:, :2]
        arms = angle_arms(lg, key)
        assert arms is not None
        np.testing.assert_allclose(pts, arms + PIXEL_CENTRE_OFFSET, atol=0.01)
        x = lg.measurements[key]
        assert tool["value"] == pytest.approx(x, abs=0.006)
        concept = fc.MEASUREMENT_CODES[key]
        assert tool["finding"]["value"] == concept.value
        assert tool["description"] == concept.meaning
        assert tool["referencedSOPInstanceUID"] == source.SOPInstanceUID
        shown = _cornerstone_angle(pts)
        if key in ("HKA_deg", "aTFA_FTS_deg"):  # the angle at the knee
            assert shown == pytest.approx(180.0 - abs(x), abs=0.05), key
        elif key in ("FVA_deg", "JLCA_deg"):  # both arms run to a common end / side
            assert shown == pytest.approx(abs(x), abs=0.05), key
        else:  # mLDFA, mMPTA: x or 180 - x, by which line end is nearest the axis
            assert min(abs(shown - x), abs(shown - (180.0 - x))) < 0.05, (key, shown, x)
    assert compare(path, spacing, result) == []
