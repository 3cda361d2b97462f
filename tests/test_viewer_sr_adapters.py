"""Our SR read by the libraries OHIF uses (dcmjs, @cornerstonejs/adapters, under node): each aTFA
comes back as an editable Cobb angle tool with the SR's points and value.

Point the check at any other SR (e.g. the full-leg SR) with ``KNEE_NODE_VIEWER_SR=path.dcm``, or
run ``python tests/viewer/sr_tools.py path.dcm``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom import Dataset
from pydicom.uid import generate_uid

sys.path.insert(0, str(Path(__file__).parent))
from test_reports_common import knee_landmarks, make_measurement, make_source  # noqa: E402
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
    knees = [
        make_measurement(right, laterality="R"),
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
