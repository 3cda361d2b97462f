"""The aTFA Structured Report: content tree read back from file, dciodvfy, dsr2html."""

from __future__ import annotations

import itertools
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import pydicom
import pydicom.sr.codedict
import pydicom.sr.coding
import pytest
from pydicom import Dataset
from pydicom.uid import generate_uid

sys.path.insert(0, str(Path(__file__).parent))
from test_reports_common import knee_landmarks, make_measurement, make_source, pass_case  # noqa: E402

from dicom_node.reports import codes, create_measurement_report  # noqa: E402
from dicom_node.reports._checks import ReportInputError, check_measurements  # noqa: E402
from dicom_node.reports.measurement_report import (  # noqa: E402
    PIXEL_CENTRE_OFFSET,
    VIEWER_TOOL_PREFIX,
    document_arguments,
    report_content,
    sr_document,
)
from inference import landmarks as lm  # noqa: E402
from inference.measurement import KneeMeasurement  # noqa: E402

OBSERVER_UID = generate_uid()
COMPREHENSIVE_3D_SR = "1.2.840.10008.5.1.4.1.1.88.34"


def _write(sr: Dataset, tmp_path: Path, name: str = "sr.dcm") -> Path:
    path = tmp_path / name
    sr.save_as(path, enforce_file_format=True)
    return path


def _items(ds: Dataset) -> list[Dataset]:
    """Every content item of the tree, depth first."""
    out: list[Dataset] = []
    for item in ds.get("ContentSequence", []):
        out.append(item)
        out.extend(_items(item))
    return out


def _name(item: Dataset) -> tuple[str, str]:
    code = item.ConceptNameCodeSequence[0]
    return str(code.CodeValue), str(code.CodingSchemeDesignator)


def _tracking(group: Dataset) -> str:
    return str(next(i.TextValue for i in group.ContentSequence if _name(i)[0] == "112039"))


def _knees(ds: Dataset) -> list[list[Dataset]]:
    """Measurement groups by knee: the knee's own group, then its angle (viewer tool) groups."""
    knees: list[list[Dataset]] = []
    for group in (i for i in _items(ds) if _name(i) == ("125007", "DCM")):
        if _tracking(group).startswith(VIEWER_TOOL_PREFIX):
            knees[-1].append(group)
        else:
            knees.append([group])
    return knees


def _groups(ds: Dataset) -> list[Dataset]:
    """The knees' own groups (verdict, algorithm, landmarks)."""
    return [k[0] for k in _knees(ds)]


def _nums(groups: Dataset | list[Dataset], concept: object) -> list[Dataset]:
    key = (concept.value, concept.scheme_designator)  # type: ignore[attr-defined]
    return [i for g in (groups if isinstance(groups, list) else [groups])
            for i in _items(g) if i.ValueType == "NUM" and _name(i) == key]


def _read(source: Dataset, measurements: list[KneeMeasurement], tmp_path: Path) -> Dataset:
    sr = create_measurement_report(source, measurements, device_observer_uid=OBSERVER_UID)
    return pydicom.dcmread(_write(sr, tmp_path))


def test_pass_case_content(tmp_path: Path) -> None:
    source, m = pass_case()
    sr = _read(source, [m], tmp_path)
    assert sr.SOPClassUID == COMPREHENSIVE_3D_SR  # IHE AI Results
    assert sr.StudyInstanceUID == source.StudyInstanceUID
    assert sr.PatientID == source.PatientID and sr.PatientName == source.PatientName
    assert sr.SeriesInstanceUID != source.SeriesInstanceUID
    assert sr.SOPInstanceUID != source.SOPInstanceUID
    assert "NOT FOR DIAGNOSTIC USE" in sr.SeriesDescription
    assert sr.VerificationFlag == "UNVERIFIED" and sr.CompletionFlag == "COMPLETE"
    # private scheme declared, and used
    schemes = {s.CodingSchemeDesignator: s for s in sr.CodingSchemeIdentificationSequence}
    assert codes.SCHEME_DESIGNATOR in schemes
    assert schemes[codes.SCHEME_DESIGNATOR].CodingSchemeResponsibleOrganization
    # IHE AIR contributing equipment: Processing Equipment with model and version
    equipment = [e for e in sr.ContributingEquipmentSequence
                 if e.PurposeOfReferenceCodeSequence[0].CodeValue == "109102"]
    assert equipment and equipment[0].ManufacturerModelName == m.model.name  # type: ignore[union-attr]
    assert equipment[0].SoftwareVersions == m.model.version  # type: ignore[union-attr]

    ((group, *angle_groups),) = _knees(sr)
    assert len(angle_groups) == 2, "one viewer angle group per aTFA"
    for method, concept, angle_group in zip(
        ("FTS", "FNTS"), (codes.ATFA_FTS, codes.ATFA_FNTS), angle_groups, strict=True
    ):
        (num,) = _nums(angle_group, concept)
        value = num.MeasuredValueSequence[0]
        assert float(value.NumericValue) == pytest.approx(m.atfa_deg[method], abs=0.006)
        unit = value.MeasurementUnitsCodeSequence[0]
        assert (unit.CodeValue, unit.CodingSchemeDesignator) == ("deg", "UCUM")
        scoords = [i for i in num.ContentSequence if i.ValueType == "SCOORD"]
        assert len(scoords) == 3 and all(s.GraphicType == "POLYLINE" for s in scoords)
        # viewer encoding: the first SCOORD is the 4-point Cobb angle, then each axis alone
        assert _name(scoords[0]) == (codes.ANGLE_ARMS.value, codes.SCHEME_DESIGNATOR)
        assert _tracking(angle_group) == f"{VIEWER_TOOL_PREFIX}:CobbAngle"
        finding = next(i for i in angle_group.ContentSequence if _name(i)[0] == "121071")
        assert finding.ConceptCodeSequence[0].CodeValue == concept.value
        axes = m.axes(method)  # type: ignore[arg-type]
        arms = np.asarray(scoords[0].GraphicData).reshape(-1, 2)
        fem, tib = axes["femoral"], axes["tibial"]
        np.testing.assert_allclose(arms, np.array([fem.proximal, fem.distal, tib.distal,
                                                   tib.proximal]) + PIXEL_CENTRE_OFFSET, atol=1e-3)
        femoral = np.asarray(scoords[1].GraphicData).reshape(-1, 2)
        expected = np.array([fem.proximal, fem.distal]) + PIXEL_CENTRE_OFFSET
        np.testing.assert_allclose(femoral, expected, atol=1e-3)
        for s in scoords:
            ref = s.ContentSequence[0].ReferencedSOPSequence[0]
            assert ref.ReferencedSOPInstanceUID == source.SOPInstanceUID
            assert ref.ReferencedSOPClassUID == source.SOPClassUID
        assert not [i for i in num.ContentSequence if _name(i)[0] == "111001"], (
            "the algorithm is identified once per group, not per measurement"
        )
    algo = {_name(i): i.TextValue for i in group.ContentSequence if i.ValueType == "TEXT"}
    assert algo[("111001", "DCM")] == m.model.name  # type: ignore[union-attr]
    assert algo[("111003", "DCM")] == m.model.version  # type: ignore[union-attr]
    codes_in_group = {_name(i): i.ConceptCodeSequence[0].CodeValue
                      for i in _items(group) if i.ValueType == "CODE"}
    assert codes_in_group[(codes.CORONAL_ALIGNMENT.value, codes.SCHEME_DESIGNATOR)] == "VALGUS"
    assert codes_in_group[(codes.QUALITY_VERDICT.value, codes.SCHEME_DESIGNATOR)] == "QC-PASS"
    assert codes_in_group[("363698007", "SCT")] == codes.KNEE_JOINT.value  # finding site
    assert codes_in_group[("272741003", "SCT")] == "7771000"  # laterality: left
    # landmarks as MULTIPOINT on the confidence measurement
    (conf,) = _nums(group, codes.CONFIDENCE)
    femur = next(i for i in conf.ContentSequence if _name(i)[0] == "LM-FEMUR")
    start, stop = lm.CURVES["femur"]
    np.testing.assert_allclose(np.asarray(femur.GraphicData).reshape(-1, 2),
                               m.landmarks[start:stop] + PIXEL_CENTRE_OFFSET, atol=1e-3)
    # device observer and the notice for clinicians
    texts = {_name(i): str(i.get("TextValue", i.get("UID", ""))) for i in _items(sr)
             if i.ValueType in ("TEXT", "UIDREF")}
    assert texts[("121012", "DCM")] == OBSERVER_UID  # Device Observer UID
    notice = texts[(codes.NOTICE.value, codes.SCHEME_DESIGNATOR)]
    assert "synthetic" in notice and "clinician" in notice and "NOT FOR DIAGNOSTIC USE" in notice


def test_flagged_knee_has_no_angle(tmp_path: Path) -> None:
    r = knee_landmarks(-5.0, laterality="R", scale=1.2, centre=(150, 300))
    left = knee_landmarks(4.0, laterality="L", scale=1.2, centre=(400, 300))
    source = make_source(rows=600, cols=560, knees=(r, left))
    flagged = make_measurement(left, laterality="L", quality="flag",
                               reasons=("low heatmap peak on the femoral notch",))
    sr = _read(source, [make_measurement(r, laterality="R"), flagged], tmp_path)
    right, left_knee = _knees(sr)
    assert len(right) == 3 and len(left_knee) == 1, "no angle groups for the flagged knee"
    left_group = left_knee[0]
    (fts,) = _nums(right, codes.ATFA_FTS)
    assert float(fts.MeasuredValueSequence[0].NumericValue) == pytest.approx(-5.0, abs=0.006)
    assert _nums(left_group, codes.ATFA_FTS) == [] and _nums(left_group, codes.ATFA_FNTS) == []
    left_codes = {_name(i)[0]: i.ConceptCodeSequence[0].CodeValue
                  for i in _items(left_group) if i.ValueType == "CODE"}
    assert left_codes["QC-VERDICT"] == "QC-FLAG"
    assert "KNEE-ALIGN" not in left_codes  # no varus/valgus finding without an angle
    left_texts = [str(i.TextValue) for i in _items(left_group) if i.ValueType == "TEXT"]
    assert "low heatmap peak on the femoral notch" in left_texts
    assert any("FLAGGED" in t for t in left_texts)  # tracking identifier says so
    assert len(_nums(left_group, codes.CONFIDENCE)) == 1  # landmarks still there, marked


def test_post_op_and_cr_without_spacing(tmp_path: Path) -> None:
    pts = knee_landmarks(2.0, phase="post", scale=1.5, centre=(260, 320))
    source = make_source(knees=(pts,))
    source.Modality = "CR"
    source.SOPClassUID = "1.2.840.10008.5.1.4.1.1.1"  # CR: Imager Pixel Spacing is optional
    sr = _read(source, [make_measurement(pts, phase="post")], tmp_path)
    names = {_name(i)[0] for i in _items(sr)}
    assert {"LM-IMPL-FEM", "LM-IMPL-TIB"} <= names
    assert ("111028", "DCM") not in {_name(i) for i in _items(sr)}  # no Image Library


#: Attributes whose values are the time of writing (they differ between two builds).
_CLOCK = {"ContentDate", "ContentTime", "InstanceCreationDate", "InstanceCreationTime",
          "ContributionDateTime"}


def _differences(a: Dataset, b: Dataset) -> list[str]:
    """Where ``a`` and ``b`` differ, element by element at every depth (not ``_CLOCK``)."""
    from dataset_diff import differences

    return differences(a, b, _CLOCK)


def _counter() -> Callable[[], str]:
    """A maker of the same UIDs in the same order (one per builder compared)."""
    count = itertools.count(1)
    return lambda: f"2.25.{next(count)}"


def _case(name: str) -> tuple[Dataset, list[KneeMeasurement]]:
    """Sources and knees covering each branch of the report: a passed and a flagged knee
    (reasons), intervals on one angle only, a post-operative knee, a CR without spacing
    (no Image Library), a CR with spacing and a frame of reference (Image Library)."""
    if name == "cr-library-frame-of-reference":
        pts = knee_landmarks(-3.0, laterality="R", scale=1.5, centre=(260, 320))
        source = make_source(knees=(pts,))
        source.Modality = "CR"
        source.SOPClassUID = "1.2.840.10008.5.1.4.1.1.1"
        source.ImagerPixelSpacing = [0.143, 0.1425]
        source.FrameOfReferenceUID = generate_uid()
        return source, [make_measurement(pts, laterality="R")]
    if name == "post-op-cr":
        pts = knee_landmarks(2.0, phase="post", scale=1.5, centre=(260, 320))
        source = make_source(knees=(pts,))
        source.Modality = "CR"
        source.SOPClassUID = "1.2.840.10008.5.1.4.1.1.1"
        return source, [replace(make_measurement(pts, phase="post"),
                                atfa_ci95_deg={"FTS": 0.8, "FNTS": 1.25})]
    r = knee_landmarks(-5.0, laterality="R", scale=1.2, centre=(150, 300))
    left = knee_landmarks(4.0, laterality="L", scale=1.2, centre=(400, 300))
    source = make_source(rows=600, cols=560, knees=(r, left))
    if name == "two-knees-library":
        source.ImagerPixelSpacing = [0.15, 0.15]
    return source, [
        replace(make_measurement(r, laterality="R"), atfa_ci95_deg={"FNTS": 0.61}),
        make_measurement(left, laterality="L", quality="flag",
                         reasons=("low heatmap peak", "plateau corners too close")),
    ]


def _documents(source: Dataset, knees: list[KneeMeasurement], tmp_path: Path
               ) -> tuple[Dataset, Dataset]:
    """highdicom's document of the report (``sr_reference``) and the node's, both from
    the same arguments and UIDs, as read back from their files."""
    import sr_reference

    records = check_measurements(knees, need_model=True)
    kwargs = document_arguments(source, records, series_number=9901, instance_number=1,
                                institution_name=None, manufacturer="knee-node project")
    observer = {"device_observer_uid": OBSERVER_UID, "device_observer_name": "knee-node",
                "manufacturer": "knee-node project"}
    old = sr_reference.reference_document(source, records, observer=observer, document=kwargs,
                                          new_uid=_counter())
    new = sr_document(source, report_content(source, records, new_uid=_counter(), **observer),
                      **kwargs)
    return (pydicom.dcmread(_write(old, tmp_path, "old.dcm")),
            pydicom.dcmread(_write(new, tmp_path, "new.dcm")))


@pytest.mark.parametrize("case", ["two-knees", "two-knees-library", "post-op-cr",
                                  "cr-library-frame-of-reference"])
def test_sr_document_is_highdicoms_document(tmp_path: Path, case: str) -> None:
    """The node's SR (plain pydicom items, pre-encoded) writes the very document highdicom
    writes from the same report: every element at every depth (concept names, codes,
    units, values, relationships, references, templates), UIDs included, all but the
    clock."""
    source, knees = _case(case)
    old, new = _documents(source, knees, tmp_path)
    assert old.file_meta.TransferSyntaxUID == new.file_meta.TransferSyntaxUID
    assert old.file_meta.MediaStorageSOPClassUID == new.file_meta.MediaStorageSOPClassUID
    assert len(list(old.iterall())) > 400  # the whole tree is compared
    assert _differences(old, new) == []
    names = [_name(i) for i in _items(new)]
    assert (("111028", "DCM") in names) == case.endswith(("library", "frame-of-reference"))
    assert names.count(("112227", "DCM")) == (1 if case.endswith("frame-of-reference") else 0)
    intervals = [i for i in _items(new) if _name(i) == ("371884006", "SCT")]
    assert len(intervals) == {"post-op-cr": 2, "cr-library-frame-of-reference": 0}.get(case, 1)


def test_sr_comparison_fails_on_a_changed_item(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """The comparison above can fail: a builder that codes one relationship, one unit and
    one concept differently is caught at each place."""
    import dicom_node.reports.measurement_report as mr
    from dicom_node.reports import sr_items

    source, knees = _case("two-knees")
    real_code_item, real_num_item = sr_items.code_item, sr_items.num_item

    def code_item(name: object, value: object, relationship_type: str) -> Dataset:
        if name == pydicom.sr.codedict.codes.SCT.MeasurementMethod:
            relationship_type = "CONTAINS"
        return real_code_item(name, value, relationship_type)  # type: ignore[arg-type]

    def num_item(name: object, value: float, unit: object, *args: object) -> Dataset:
        if name == codes.MEASUREMENT_UNCERTAINTY:
            unit = codes.NO_UNITS
        return real_num_item(name, value, unit, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(mr.items, "code_item", code_item)
    monkeypatch.setattr(mr.items, "num_item", num_item)
    monkeypatch.setattr(mr, "FINDING", pydicom.sr.coding.Code("121071", "DCM", "Findings"))
    found = _differences(*_documents(source, knees, tmp_path))
    assert any(d.endswith("/RelationshipType: 'HAS CONCEPT MOD' != 'CONTAINS'")
               for d in found), found
    assert any(d.endswith("MeasurementUnitsCodeSequence[0]/CodeValue: 'deg' != '1'")
               for d in found), found
    assert any(d.endswith("/CodeMeaning: 'Finding' != 'Findings'") for d in found), found


def test_sr_in_implicit_vr_is_the_same_document(tmp_path: Path) -> None:
    """The pre-encoded items are re-encoded when the SR is written in another transfer
    syntax (as on a DIMSE association that accepts implicit VR only)."""
    from pydicom.uid import ImplicitVRLittleEndian

    source, knees = _case("two-knees-library")
    sr = create_measurement_report(source, knees, device_observer_uid=OBSERVER_UID)
    explicit = pydicom.dcmread(_write(sr, tmp_path, "explicit.dcm"))
    sr.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    implicit = pydicom.dcmread(_write(sr, tmp_path, "implicit.dcm"))
    assert implicit.file_meta.TransferSyntaxUID == ImplicitVRLittleEndian
    assert _differences(explicit, implicit) == []
    (fts,) = _nums(_knees(implicit)[0], codes.ATFA_FTS)
    assert fts.MeasuredValueSequence[0].MeasurementUnitsCodeSequence[0].CodeValue == "deg"


def test_sr_items_read_in_memory_before_writing() -> None:
    """A pre-encoded element reads as its value before the SR is written, and reading it
    does not change what is written."""
    source, m = pass_case()
    sr = create_measurement_report(source, [m], device_observer_uid=OBSERVER_UID)
    root_name = sr.ConceptNameCodeSequence[0]
    assert (root_name.CodeValue, root_name.CodeMeaning) == ("126000", "Imaging Measurement Report")
    (fts,) = _nums(_knees(sr)[0], codes.ATFA_FTS)
    unit = fts.MeasuredValueSequence[0].MeasurementUnitsCodeSequence[0]
    assert (unit.CodeValue, unit.CodingSchemeDesignator) == ("deg", "UCUM")
    scoord = next(i for i in fts.ContentSequence if i.ValueType == "SCOORD")
    assert scoord.ContentSequence[0].ReferencedSOPSequence[0].ReferencedSOPInstanceUID == (
        source.SOPInstanceUID)


def test_two_reports_share_no_mutable_item() -> None:
    """Encoded once means shared immutable bytes, never a shared dataset: changing one
    report's item leaves the next report as it was."""
    source, m = pass_case()
    first = create_measurement_report(source, [m], device_observer_uid=OBSERVER_UID)
    second = create_measurement_report(source, [m], device_observer_uid=OBSERVER_UID)
    ids = {id(d) for d in _items(first)} | {id(d) for d in iter_datasets(first)}
    assert not ids & ({id(d) for d in _items(second)} | {id(d) for d in iter_datasets(second)})
    (fts,) = _nums(_knees(first)[0], codes.ATFA_FTS)
    fts.MeasuredValueSequence[0].MeasurementUnitsCodeSequence[0].CodeMeaning = "changed"
    third = create_measurement_report(source, [m], device_observer_uid=OBSERVER_UID)
    (fts3,) = _nums(_knees(third)[0], codes.ATFA_FTS)
    assert fts3.MeasuredValueSequence[0].MeasurementUnitsCodeSequence[0].CodeMeaning == (
        codes.DEGREE.meaning)


def iter_datasets(ds: Dataset) -> list[Dataset]:
    """Every dataset in every sequence of ``ds`` (any depth; raw sequences are parsed)."""
    out: list[Dataset] = []
    for element in ds:
        if element.VR == "SQ":
            for item in element.value:
                out.append(item)
                out.extend(iter_datasets(item))
    return out


def test_differences_sees_a_changed_value_deep_in_the_tree(tmp_path: Path) -> None:
    source, m = pass_case()
    path = _write(create_measurement_report(source, [m], device_observer_uid=OBSERVER_UID),
                  tmp_path)
    sr, other = pydicom.dcmread(path), pydicom.dcmread(path)
    assert _differences(sr, other) == []
    (num,) = _nums(_knees(other)[0], codes.ATFA_FTS)
    num.MeasuredValueSequence[0].NumericValue = "1.5"
    del other.ContentSequence[0].ConceptNameCodeSequence[0].CodeMeaning
    found = _differences(sr, other)
    assert any(d.endswith("/NumericValue: " + repr(
        _nums(_knees(sr)[0], codes.ATFA_FTS)[0].MeasuredValueSequence[0].NumericValue)
        + " != '1.5'") for d in found), found
    assert any(d.endswith("/CodeMeaning: only in old") for d in found), found


def test_sr_document_refuses_other_references_and_a_bare_root() -> None:
    import highdicom as hd

    source, m = pass_case()
    knees = check_measurements([m], need_model=True)
    content = report_content(source, knees, device_observer_uid=OBSERVER_UID,
                             device_observer_name="knee-node", manufacturer="knee-node project")
    kwargs = document_arguments(source, knees, series_number=9901, instance_number=1,
                                institution_name=None, manufacturer="knee-node project")
    other = make_source()
    other.SOPInstanceUID = generate_uid()
    with pytest.raises(ReportInputError, match="other than source"):
        sr_document(other, content, **kwargs)
    with pytest.raises(ReportInputError, match="root CONTAINER"):
        sr_document(source, hd.sr.TextContentItem(name=codes.NOTICE, value="x"), **kwargs)


@pytest.fixture(scope="module")
def sr_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    source, m = pass_case()
    source.ImagerPixelSpacing = [0.15, 0.15]  # DX: the Image Library describes the source
    sr = create_measurement_report(source, [m], device_observer_uid=OBSERVER_UID)
    return _write(sr, tmp_path_factory.mktemp("sr"))


@pytest.mark.skipif(shutil.which("dciodvfy") is None, reason="dciodvfy (dicom3tools) not installed")
def test_dciodvfy_finds_no_error(sr_file: Path) -> None:
    out = subprocess.run(["dciodvfy", str(sr_file)], capture_output=True, text=True, timeout=60)
    text = out.stdout + out.stderr
    assert "Comprehensive3DSR" in text
    errors = [line for line in text.splitlines() if line.startswith("Error")]
    assert errors == []


@pytest.mark.skipif(shutil.which("dsr2html") is None, reason="dsr2html (dcmtk) not installed")
def test_dsr2html_renders_the_angle(sr_file: Path, tmp_path: Path) -> None:
    out = subprocess.run(["dsr2html", str(sr_file)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    sr = pydicom.dcmread(sr_file)
    (num,) = _nums(_knees(sr)[0], codes.ATFA_FTS)
    value = str(num.MeasuredValueSequence[0].NumericValue)
    assert "Anatomical tibiofemoral angle by FTS" in out.stdout  # concept names shown (SEPARATE)
    assert value in out.stdout and "deg" in out.stdout
    assert "NOT FOR DIAGNOSTIC USE" in out.stdout


def test_synthetic_generator_source(tmp_path: Path) -> None:
    """With the project's generator: the SR of the true landmarks carries the true aTFA."""
    synth = pytest.importorskip("training.synth")
    if not hasattr(synth, "synthesize"):
        pytest.skip("training.synth.synthesize not available yet")
    from training.synth_dicom import make_instance

    inst = make_instance(7, max_side=512, both_knees=False, syntax="explicit")
    truth = inst.truth
    pts = np.asarray(truth["landmarks"], dtype=float)
    m = make_measurement(pts, laterality=truth["laterality"], phase=truth["phase"])
    sr = _read(inst.dataset, [m], tmp_path)
    (num,) = _nums(_knees(sr)[0], codes.ATFA_FNTS)
    assert float(num.MeasuredValueSequence[0].NumericValue) == pytest.approx(
        truth["atfa_deg"]["FNTS"], abs=0.006)


def test_pre_encode_changes_nothing_written(tmp_path: Path) -> None:
    """``sr_items.pre_encode`` (the full-leg report's highdicom tree) shares the coded
    entries and marks the tree pre-encoded; the document written is the same."""
    import sr_reference

    from dicom_node.reports import sr_items

    source, knees = _case("two-knees-library")
    records = check_measurements(knees, need_model=True)
    kwargs = document_arguments(source, records, series_number=9901, instance_number=1,
                                institution_name=None, manufacturer="knee-node project")
    observer = {"device_observer_uid": OBSERVER_UID, "device_observer_name": "knee-node",
                "manufacturer": "knee-node project"}
    plain = sr_reference.report_content(source, records, new_uid=_counter(), **observer)
    shared = sr_reference.report_content(source, records, new_uid=_counter(), **observer)
    sr_items.pre_encode(shared)
    measurements = shared.ContentSequence[-2]  # Imaging Measurements, made by highdicom
    assert isinstance(measurements.ContentSequence[0].get_item(
        sr_items.CONCEPT_NAME_CODE_SEQUENCE), pydicom.dataelem.RawDataElement)
    old = pydicom.dcmread(_write(sr_document(source, plain, **kwargs), tmp_path, "plain.dcm"))
    new = pydicom.dcmread(_write(sr_document(source, shared, **kwargs), tmp_path, "shared.dcm"))
    assert len(list(old.iterall())) > 400
    assert _differences(old, new) == []
