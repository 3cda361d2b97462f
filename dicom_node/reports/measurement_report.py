"""The Structured Report: a TID 1500 measurement report of the aTFA, made with highdicom.

Per knee, one TID 1501 measurement group holds the knee: the algorithm, the quality verdict,
the varus/valgus finding, and the landmark detection confidence with the landmarks as SCOORD
MULTIPOINTs.  Each aTFA (by FTS and by FNTS; UCUM ``deg``, signed, valgus positive) has a
group of its own, in the form web viewers load as an editable angle (Cornerstone3D, used by
OHIF): Tracking Identifier ``Cornerstone3DTools@^0.1.0:CobbAngle``, Tracking UID, Finding =
the aTFA concept, and NUM -> INFERRED FROM -> SCOORD POLYLINE of 4 points (femoral axis, then
tibial axis, the tibial one distal to proximal) -> SELECTED FROM -> IMAGE, followed by the
two axes as 2-point POLYLINEs; when the record has a 95 % interval, the NUM also HAS
PROPERTIES (TID 310) NUM "+/-, range of measurement uncertainty" = its half-width in deg.  A
flagged knee keeps the verdict, its reasons, the confidence and the landmarks, and has
neither angle nor finding.  See ``docs/sr_content.md``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import highdicom as hd
import numpy as np
import numpy.typing as npt
from pydicom import Dataset
from pydicom.sr.codedict import codes as dcm_codes

from dicom_node.reports import codes
from dicom_node.reports._checks import (
    ReportInputError,
    ReportTypeError,
    check_measurements,
    check_source,
)
from dicom_node.reports.algorithm import (
    NOTICE_TEXT,
    SERIES_DESCRIPTION_SR,
    AlgorithmIdentity,
    identities,
)
from inference.alignment import Axis
from inference.landmarks import CURVES
from inference.measurement import KneeMeasurement

#: Landmarks are array indices (pixel centre at integer x, y); SCOORD puts the top-left
#: corner of the first pixel at (0, 0), so its centre is at (0.5, 0.5).
PIXEL_CENTRE_OFFSET = 0.5
_SIDE = {"L": "Left", "R": "Right"}
#: Decimals of the angles in the SR (the model is good to about a degree; 0.01 keeps
#: the value equal to the job row's to 0.005 deg without pretending more).
ANGLE_DECIMALS = 2
_UID = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$")
#: Tracking Identifier prefix by which Cornerstone3D's SR adapters (OHIF) pick a tool.
VIEWER_TOOL_PREFIX = "Cornerstone3DTools@^0.1.0"
#: The Cornerstone3D tool of an angle between two lines (4 points: two 2-point arms).
ANGLE_TOOL = "CobbAngle"


def viewer_tracking_identifier(tool: str = ANGLE_TOOL) -> str:
    """Tracking Identifier that makes Cornerstone3D's SR adapters load a group as ``tool``.

    Parameters
    ----------
    tool
        Cornerstone3D tool name, e.g. ``"CobbAngle"``.

    Returns
    -------
    str
        ``"Cornerstone3DTools@^0.1.0:<tool>"``.
    """
    return f"{VIEWER_TOOL_PREFIX}:{tool}"


def _scoord(points: npt.ArrayLike) -> npt.NDArray[np.float64]:
    return np.asarray(points, dtype=np.float64).reshape(-1, 2) + PIXEL_CENTRE_OFFSET


def _region(source: Dataset) -> hd.sr.SourceImageForRegion:
    return hd.sr.SourceImageForRegion(source.SOPClassUID, source.SOPInstanceUID)


def _axis_coordinates(
    axis: Axis, name: hd.sr.CodedConcept | object, source: Dataset
) -> hd.sr.CoordinatesForMeasurement:
    return hd.sr.CoordinatesForMeasurement(
        graphic_type=hd.sr.GraphicTypeValues.POLYLINE,
        graphic_data=_scoord([axis.proximal, axis.distal]),
        source_image=_region(source),
        purpose=name,  # type: ignore[arg-type]
    )


def _interval(m: KneeMeasurement, method: str) -> hd.sr.MeasurementProperties | None:
    """TID 310 Measurement Properties of the aTFA by ``method``: its 95 % interval as
    HAS PROPERTIES NUM "+/-, range of measurement uncertainty" (SCT 371884006, CID 225) =
    the half-width in UCUM ``deg``; None when the record has no half-width for ``method``.

    highdicom's ``upper/lower_measurement_uncertainty`` arguments code the two one-sided
    concepts with unit ``1``; the interval is symmetric and in degrees, so the two-sided
    concept is added here with the angle's unit.
    """
    half_width = (getattr(m, "atfa_ci95_deg", None) or {}).get(method)
    if half_width is None or not np.isfinite(half_width) or half_width < 0:
        return None
    properties = hd.sr.MeasurementProperties()
    properties.append(
        hd.sr.NumContentItem(
            name=codes.MEASUREMENT_UNCERTAINTY,
            value=round(float(half_width), ANGLE_DECIMALS),
            unit=codes.DEGREE,
            relationship_type=hd.sr.RelationshipTypeValues.HAS_PROPERTIES,
        )
    )
    return properties


def _angle(m: KneeMeasurement, method: str, source: Dataset) -> hd.sr.Measurement:
    """aTFA by ``method``: first its arms as one 4-point POLYLINE (the viewers' Cobb angle),
    then each axis alone.

    The arms are the femoral axis proximal -> distal, then the tibial axis distal -> proximal,
    so the angle between (p2 - p1) and (p3 - p4) is |aTFA|.  Cornerstone's Cobb angle tool
    orders each arm from its far end to the end nearest the other arm before it measures, so
    OHIF shows the angle at the knee, 180 - |aTFA|, whatever the order (docs/viewer.md).
    """
    axes = m.axes(method)  # type: ignore[arg-type]
    femoral_name = codes.FEMORAL_AXIS_FTS if method == "FTS" else codes.FEMORAL_AXIS_FNTS
    femoral, tibial = axes["femoral"], axes["tibial"]
    arms = hd.sr.CoordinatesForMeasurement(
        graphic_type=hd.sr.GraphicTypeValues.POLYLINE,
        graphic_data=_scoord([femoral.proximal, femoral.distal, tibial.distal, tibial.proximal]),
        source_image=_region(source),
        purpose=codes.ANGLE_ARMS,
    )
    return hd.sr.Measurement(
        name=codes.ATFA_FTS if method == "FTS" else codes.ATFA_FNTS,
        value=round(float(m.atfa_deg[method]), ANGLE_DECIMALS),
        unit=codes.DEGREE,
        method=codes.METHOD_FTS if method == "FTS" else codes.METHOD_FNTS,
        properties=_interval(m, method),
        referenced_coordinates=[
            arms,
            _axis_coordinates(femoral, femoral_name, source),
            _axis_coordinates(tibial, codes.TIBIAL_AXIS, source),
        ],
    )


def _angle_group(
    m: KneeMeasurement, method: str, source: Dataset
) -> hd.sr.MeasurementsAndQualitativeEvaluations:
    """TID 1501 group of one aTFA, in the form Cornerstone3D (OHIF) loads as a Cobb angle.

    The adapters take one tool per group, from its Tracking Identifier, its first NUM and
    that NUM's first SCOORD; the Finding (121071) names the angle.  The algorithm is named
    once per knee, on the knee's group (and in the Contributing Equipment Sequence).
    """
    return hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(
            uid=hd.UID(), identifier=viewer_tracking_identifier(ANGLE_TOOL)
        ),
        finding_type=codes.ATFA_FTS if method == "FTS" else codes.ATFA_FNTS,
        finding_sites=[
            hd.sr.FindingSite(codes.KNEE_JOINT, laterality=codes.LATERALITY[m.laterality])
        ],
        measurements=[_angle(m, method, source)],
        source_images=[
            hd.sr.SourceImageForMeasurementGroup(source.SOPClassUID, source.SOPInstanceUID)
        ],
    )


def _confidence(m: KneeMeasurement, source: Dataset) -> hd.sr.Measurement:
    """Landmark detection confidence, inferred from the landmarks (one MULTIPOINT per outline)."""
    coords = []
    for curve, (start, stop) in CURVES.items():
        if stop <= m.landmarks.shape[0]:
            coords.append(
                hd.sr.CoordinatesForMeasurement(
                    graphic_type=hd.sr.GraphicTypeValues.MULTIPOINT,
                    graphic_data=_scoord(m.landmarks[start:stop]),
                    source_image=_region(source),
                    purpose=codes.LANDMARKS[curve],
                )
            )
    return hd.sr.Measurement(
        name=codes.CONFIDENCE,
        value=float(m.confidence),
        unit=codes.NO_UNITS,
        referenced_coordinates=coords,
    )


def _knee_group(
    m: KneeMeasurement, index: int, source: Dataset
) -> hd.sr.MeasurementsAndQualitativeEvaluations:
    """TID 1501 group of one knee (its angles are in groups of their own, `_angle_group`).

    The algorithm is identified once per knee, on this group (TID 1501 row 4, which its
    measurements inherit), by name and version only; the full parameters are in the
    Contributing Equipment Sequence and the model card.
    """
    assert m.model is not None  # checked by check_measurements(need_model=True)
    algorithm = AlgorithmIdentity.from_model(m.model).to_sr(with_parameters=False)
    side = _SIDE[m.laterality]
    passed = m.quality == "pass"
    measurements = [_confidence(m, source)]
    evaluations = [
        hd.sr.QualitativeEvaluation(
            codes.QUALITY_VERDICT, codes.QUALITY_PASS if passed else codes.QUALITY_FLAG
        )
    ]
    if passed:
        evaluations.append(
            hd.sr.QualitativeEvaluation(codes.CORONAL_ALIGNMENT, codes.ALIGNMENT_VALUES[m.verdict])
        )
    label = f"{side} knee aTFA" if passed else f"{side} knee - FLAGGED, no reliable measurement"
    group = hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(
            uid=hd.UID(), identifier=f"{label} #{index + 1}"
        ),
        algorithm_id=algorithm,
        finding_sites=[
            hd.sr.FindingSite(codes.KNEE_JOINT, laterality=codes.LATERALITY[m.laterality])
        ],
        measurements=measurements,
        qualitative_evaluations=evaluations,
        source_images=[
            hd.sr.SourceImageForMeasurementGroup(source.SOPClassUID, source.SOPInstanceUID)
        ],
    )
    for reason in m.flag_reasons:  # TID 1501 allows TEXT qualitative evaluations
        group[0].ContentSequence.append(
            hd.sr.TextContentItem(
                name=codes.QUALITY_FLAG_REASON,
                value=str(reason)[:1024],
                relationship_type=hd.sr.RelationshipTypeValues.CONTAINS,
            )
        )
    return group


def _groups(
    records: Sequence[KneeMeasurement], source: Dataset
) -> list[hd.sr.MeasurementsAndQualitativeEvaluations]:
    """Per knee its group, then (passed knees only) one group per aTFA: FTS, FNTS."""
    groups = []
    for i, m in enumerate(records):
        groups.append(_knee_group(m, i, source))
        if m.quality == "pass":
            groups.extend(_angle_group(m, method, source) for method in ("FTS", "FNTS"))
    return groups


def _separate(item: Dataset) -> None:
    """Mark every container SEPARATE: each item is its own statement, so renderers such as
    dsr2html show it on its own line with its concept name (CONTINUOUS runs them together)."""
    if item.get("ValueType") == "CONTAINER":
        item.ContinuityOfContent = "SEPARATE"
    for child in item.get("ContentSequence", []):
        _separate(child)


def _library_ready(source: Dataset) -> bool:
    """Whether highdicom can describe ``source`` in the Image Library (TID 1601/1603).

    For projection radiography it needs Patient Orientation and Imager Pixel Spacing (type 3
    in CR); without them the optional library is left out and the SCOORDs still reference
    the image by SOP Class/Instance UID.
    """
    orientation = source.get("PatientOrientation")
    spacing = source.get("ImagerPixelSpacing") or source.get("PixelSpacing")
    return bool(orientation) and len(orientation) == 2 and bool(spacing) and len(spacing) == 2 and (
        "ImagerPixelSpacing" in source or not _is_projection(source))


def _is_projection(source: Dataset) -> bool:
    return str(source.get("Modality", "")) in {"CR", "DX", "RG", "MG", "IO", "PX", "XA", "RF"}


def _referenced_instances(item: Dataset) -> set[str]:
    """SOP Instance UIDs the IMAGE/COMPOSITE items under ``item`` reference (any depth)."""
    found: set[str] = set()
    for child in item.get("ContentSequence", []):
        refs = child.get("ReferencedSOPSequence")
        if refs:
            found.update(str(r.ReferencedSOPInstanceUID) for r in refs)
        if "ContentSequence" in child:
            found |= _referenced_instances(child)
    return found


def sr_document(source: Dataset, content: Dataset, **kwargs: Any) -> hd.sr.Comprehensive3DSR:
    """``hd.sr.Comprehensive3DSR(evidence=[source], content=content, **kwargs)``: the same
    document (tests/test_reports_sr.py compares them element by element), without the
    constructor's deep copy, re-parse and evidence search of the whole content tree.

    The constructor is given the root container without its children, the children are
    put on the document, and ``Comprehensive3DSR.from_dataset(copy=False)`` (public
    highdicom API) parses the document's own tree as its ``content`` once. The evidence
    list is ``source`` either way; the constructor's check that the tree references no
    instance outside the evidence is made here.

    Parameters
    ----------
    source
        The measured image: the evidence, and the only instance ``content`` may reference.
    content
        The root CONTAINER (TID 1500), e.g. ``hd.sr.MeasurementReport(...)[0]``; its
        children become the document's (not copied).
    **kwargs
        The other arguments of ``hd.sr.Comprehensive3DSR`` (series, flags, equipment...).

    Raises
    ------
    ReportInputError
        When ``content`` is not a CONTAINER with children, or references an instance
        other than ``source``.
    """
    if content.get("ValueType") != "CONTAINER" or not content.get("ContentSequence"):
        raise ReportInputError("content must be a root CONTAINER with content items, got "
                               f"value type {content.get('ValueType')!r}")
    others = _referenced_instances(content) - {str(source.SOPInstanceUID)}
    if others:
        raise ReportInputError(f"content references instances other than source: {sorted(others)}")
    root = Dataset()
    for element in content:
        if element.keyword != "ContentSequence":
            root.add(element)
    root.ContentSequence = hd.sr.ContentSequence([])
    document = hd.sr.Comprehensive3DSR(evidence=[source], content=root, **kwargs)
    document.ContentSequence = content.ContentSequence
    return hd.sr.Comprehensive3DSR.from_dataset(document, copy=False)


def _check_uid(value: object, name: str) -> str:
    if not isinstance(value, str):
        raise ReportTypeError(f"{name} must be a UID string, got {type(value).__name__}")
    if len(value) > 64 or not _UID.match(value):
        raise ReportInputError(f"{name} is not a valid DICOM UID: {value!r}")
    return value


def _check_number(value: object, name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 < value < 2**31:
        raise ReportInputError(f"{name} must be a positive integer, got {value!r}")
    return value


def create_measurement_report(
    source: Dataset,
    measurements: Sequence[KneeMeasurement],
    *,
    series_number: int = 9901,
    instance_number: int = 1,
    institution_name: str | None = None,
    device_observer_uid: str,
    device_observer_name: str = "knee-node",
    manufacturer: str = "knee-node project",
) -> hd.sr.Comprehensive3DSR:
    """Comprehensive 3D SR (TID 1500) of the knees measured in ``source``.

    Parameters
    ----------
    source
        The measured image (CR/DX...); patient and study are copied from it, and every
        spatial coordinate references its SOP Instance.
    measurements
        One record per knee; each needs ``model`` (algorithm identification).
    series_number, instance_number
        Numbers of the new series (its UID is new) and of the SR in it.
    institution_name
        Institution Name of the SR; the source's when ``None``.
    device_observer_uid, device_observer_name, manufacturer
        The node as device observer (TID 1004) and manufacturer of the SR.

    Returns
    -------
    highdicom.sr.Comprehensive3DSR
        Completion COMPLETE, verification UNVERIFIED, preliminary flag PRELIMINARY.

    Raises
    ------
    ReportInputError, ReportTypeError
        Subclasses of ValueError/TypeError naming the bad argument.
    """
    source = check_source(source)
    records = check_measurements(measurements, need_model=True)
    _check_uid(device_observer_uid, "device_observer_uid")
    _check_number(series_number, "series_number")
    _check_number(instance_number, "instance_number")
    for name, value in (
        ("device_observer_name", device_observer_name),
        ("manufacturer", manufacturer),
    ):
        if not isinstance(value, str) or not value.strip():
            raise ReportInputError(f"{name} must be a non-empty string, got {value!r}")
    content = report_content(source, records, device_observer_uid=device_observer_uid,
                             device_observer_name=device_observer_name,
                             manufacturer=manufacturer)
    return sr_document(source, content, **document_arguments(
        source, records, series_number=series_number, instance_number=instance_number,
        institution_name=institution_name, manufacturer=manufacturer))


def report_content(source: Dataset, records: Sequence[KneeMeasurement], *,
                   device_observer_uid: str, device_observer_name: str,
                   manufacturer: str) -> Dataset:
    """The root CONTAINER of the TID 1500 report of ``records`` (checked by the caller):
    observation context, procedure, one group per knee and per aTFA, image library (when
    :func:`_library_ready`), the notice; every container SEPARATE.

    Parameters
    ----------
    source
        The measured image.
    records
        One checked record per knee, each with its model.
    device_observer_uid, device_observer_name, manufacturer
        The node as device observer (TID 1004).
    """
    algorithms = identities(records)
    observer = hd.sr.ObserverContext(
        observer_type=dcm_codes.DCM.Device,
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=device_observer_uid,
            name=device_observer_name,
            manufacturer_name=manufacturer,
            model_name=algorithms[0].name,
        ),
    )
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_device_context=observer),
        procedure_reported=codes.PLAIN_RADIOGRAPHY,
        imaging_measurements=_groups(records, source),
        referenced_images=[source] if _library_ready(source) else None,
    )
    notice = hd.sr.ContainerContentItem(
        name=codes.QUALITATIVE_EVALUATIONS, relationship_type=hd.sr.RelationshipTypeValues.CONTAINS
    )
    notice.ContentSequence = hd.sr.ContentSequence(
        [
            hd.sr.TextContentItem(
                name=codes.NOTICE,
                value=NOTICE_TEXT,
                relationship_type=hd.sr.RelationshipTypeValues.CONTAINS,
            )
        ]
    )
    report[0].ContentSequence.append(notice)  # TID 1500 row 12, after Imaging Measurements
    _separate(report[0])
    return report[0]


def document_arguments(source: Dataset, records: Sequence[KneeMeasurement], *,
                       series_number: int, instance_number: int,
                       institution_name: str | None, manufacturer: str) -> dict[str, Any]:
    """The arguments of ``hd.sr.Comprehensive3DSR`` but evidence and content: new series
    and SOP instance UIDs, the numbers, flags COMPLETE / UNVERIFIED / PRELIMINARY, the
    institution (the source's when ``institution_name`` is None), the series description,
    the coding schemes, the algorithms as contributing equipment and model/version.

    Parameters
    ----------
    source
        The measured image.
    records
        One checked record per knee, each with its model.
    series_number, instance_number, institution_name, manufacturer
        As :func:`create_measurement_report`.
    """
    algorithms = identities(records)
    return {
        "series_instance_uid": hd.UID(),
        "series_number": series_number,
        "sop_instance_uid": hd.UID(),
        "instance_number": instance_number,
        "manufacturer": manufacturer,
        "is_complete": True,
        "is_final": False,
        "is_verified": False,
        "institution_name": institution_name or source.get("InstitutionName") or None,
        "series_description": SERIES_DESCRIPTION_SR,
        "coding_schemes": [codes.coding_scheme_identification()],
        "contributing_equipment": [a.contributing_equipment() for a in algorithms],
        "manufacturer_model_name": algorithms[0].name[:64],
        "software_versions": algorithms[0].version[:64],
    }
