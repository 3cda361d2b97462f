"""The knee SR as highdicom builds it: the reference the node's own builder is tested against.

This is the TID 1500 content tree of ``dicom_node.reports.measurement_report`` as it was
made before that module built the tree itself with plain pydicom items
(``dicom_node.reports.sr_items``): every content item through highdicom's constructors
(``MeasurementReport``, ``MeasurementsAndQualitativeEvaluations``, ``Measurement``...), and
the document by ``hd.sr.Comprehensive3DSR(evidence=[source], content=...)``. The tests
compare the two documents element by element (``tests/test_reports_sr.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import highdicom as hd
import numpy as np
import numpy.typing as npt
from pydicom import Dataset
from pydicom.sr.codedict import codes as dcm_codes

from dicom_node.reports import codes
from dicom_node.reports.algorithm import NOTICE_TEXT, AlgorithmIdentity, identities
from dicom_node.reports.measurement_report import (
    ANGLE_DECIMALS,
    ANGLE_TOOL,
    PIXEL_CENTRE_OFFSET,
    _library_ready,
    viewer_tracking_identifier,
)
from inference.alignment import Axis
from inference.landmarks import CURVES
from inference.measurement import KneeMeasurement

_SIDE = {"L": "Left", "R": "Right"}


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
    m: KneeMeasurement, method: str, source: Dataset, new_uid: Callable[[], str]
) -> hd.sr.MeasurementsAndQualitativeEvaluations:
    """TID 1501 group of one aTFA, in the form Cornerstone3D (OHIF) loads as a Cobb angle.

    The adapters take one tool per group, from its Tracking Identifier, its first NUM and
    that NUM's first SCOORD; the Finding (121071) names the angle.  The algorithm is named
    once per knee, on the knee's group (and in the Contributing Equipment Sequence).
    """
    return hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(
            uid=new_uid(), identifier=viewer_tracking_identifier(ANGLE_TOOL)
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
    m: KneeMeasurement, index: int, source: Dataset, new_uid: Callable[[], str]
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
            uid=new_uid(), identifier=f"{label} #{index + 1}"
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
    records: Sequence[KneeMeasurement], source: Dataset, new_uid: Callable[[], str]
) -> list[hd.sr.MeasurementsAndQualitativeEvaluations]:
    """Per knee its group, then (passed knees only) one group per aTFA: FTS, FNTS."""
    groups = []
    for i, m in enumerate(records):
        groups.append(_knee_group(m, i, source, new_uid))
        if m.quality == "pass":
            groups.extend(_angle_group(m, method, source, new_uid) for method in ("FTS", "FNTS"))
    return groups


def report_content(source: Dataset, records: Sequence[KneeMeasurement], *,
                   device_observer_uid: str, device_observer_name: str,
                   manufacturer: str, new_uid: Callable[[], str] = hd.UID) -> Dataset:
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
        imaging_measurements=_groups(records, source, new_uid),
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




def _separate(item: Dataset) -> None:
    """Mark every container SEPARATE (as the node's report does)."""
    if item.get("ValueType") == "CONTAINER":
        item.ContinuityOfContent = "SEPARATE"
    for child in item.get("ContentSequence", []):
        _separate(child)


def reference_document(source: Dataset, records: Sequence[KneeMeasurement], *,
                       observer: Mapping[str, str], document: Mapping[str, Any],
                       new_uid: Callable[[], str]) -> hd.sr.Comprehensive3DSR:
    """highdicom's document of the report: ``hd.sr.Comprehensive3DSR`` of
    :func:`report_content` (``observer``: its device observer arguments) with the
    document arguments ``document`` (``document_arguments``)."""
    content = report_content(source, records, new_uid=new_uid, **observer)
    return hd.sr.Comprehensive3DSR(evidence=[source], content=content, **document)
