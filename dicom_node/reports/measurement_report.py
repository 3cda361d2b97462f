"""The Structured Report: a TID 1500 measurement report of the aTFA.

The content tree is made of plain pydicom items (:mod:`dicom_node.reports.sr_items`: coded
entries encoded once and shared, the tree pre-encoded explicit VR little endian); the
document header (patient, study, series, equipment, evidence) is highdicom's
``Comprehensive3DSR`` (:func:`sr_document`).  The tests compare the whole document with
the one highdicom builds from its own content items (``tests/sr_reference.py``).

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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import highdicom as hd
import numpy as np
import numpy.typing as npt
from pydicom import Dataset
from pydicom.dataelem import RawDataElement, convert_raw_data_element
from pydicom.sequence import Sequence as DicomSequence
from pydicom.sr.codedict import codes as dcm_codes
from pydicom.sr.coding import Code
from pydicom.tag import BaseTag, Tag
from pydicom.uid import ExplicitVRLittleEndian

from dicom_node.reports import codes
from dicom_node.reports import sr_items as items
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
#: Language of Content Item and Descendants, as highdicom's TID 1500 states it.
LANGUAGE = Code("en-US", "RFC5646", "English (United States)")
#: SCT "Source": the concept name of an image an SCOORD is selected from (highdicom's).
SOURCE = Code("260753009", "SCT", "Source")
#: DCM "Finding" (TID 1501 row 6).
FINDING = Code("121071", "DCM", "Finding")
CONTENT_SEQUENCE = Tag("ContentSequence")


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


@dataclass(frozen=True)
class SourceReferences:
    """The measured image as every item of one report references it, encoded once.

    Attributes
    ----------
    sop
        Referenced SOP Sequence of the source (IMAGE "Source of Measurement").
    selected_from
        Content Sequence of an SCOORD: SELECTED FROM IMAGE "Source" -> the source.
    """

    sop: RawDataElement
    selected_from: RawDataElement

    @classmethod
    def of(cls, source: Dataset) -> SourceReferences:
        """The references to ``source`` (its SOP Class and Instance UIDs)."""
        sop = items.referenced_sop(str(source.SOPClassUID), str(source.SOPInstanceUID))
        return cls(sop, items.selected_from_image(SOURCE, sop))


def _tracking(identifier: str, uid: str) -> list[Dataset]:
    """TID 1501 rows 2-3: Tracking Identifier and Tracking Unique Identifier."""
    return [items.text_item(dcm_codes.DCM.TrackingIdentifier, identifier, items.HAS_OBS_CONTEXT),
            items.uidref_item(dcm_codes.DCM.TrackingUniqueIdentifier, uid,
                              items.HAS_OBS_CONTEXT)]


def _finding_site(laterality: str) -> Dataset:
    """Finding Site = Knee joint, with its Laterality (TID 1501 row 7, TID 1502)."""
    site = items.code_item(dcm_codes.SCT.FindingSite, codes.KNEE_JOINT, items.HAS_CONCEPT_MOD)
    site.ContentSequence = DicomSequence([items.code_item(
        dcm_codes.SCT.Laterality, codes.LATERALITY[laterality], items.HAS_CONCEPT_MOD)])
    return site


def _source_of_measurement(refs: SourceReferences) -> Dataset:
    """IMAGE Source of Measurement -> the source (TID 1501 row 13)."""
    return items.image_item(dcm_codes.DCM.SourceOfMeasurement, refs.sop, items.CONTAINS)


def _axis_scoord(axis: Axis, name: Code, refs: SourceReferences) -> Dataset:
    return items.scoord_item(name, "POLYLINE", _scoord([axis.proximal, axis.distal]),
                             refs.selected_from)


def _interval(m: KneeMeasurement, method: str) -> list[Dataset]:
    """TID 310 Measurement Properties of the aTFA by ``method``: its 95 % interval as
    HAS PROPERTIES NUM "+/-, range of measurement uncertainty" (SCT 371884006, CID 225) =
    the half-width in UCUM ``deg``; none when the record has no half-width for ``method``.

    (highdicom's ``upper/lower_measurement_uncertainty`` code the two one-sided concepts
    with unit ``1``; the interval is symmetric and in degrees, so the two-sided concept is
    used, with the angle's unit.)
    """
    half_width = (getattr(m, "atfa_ci95_deg", None) or {}).get(method)
    if half_width is None or not np.isfinite(half_width) or half_width < 0:
        return []
    return [items.num_item(codes.MEASUREMENT_UNCERTAINTY,
                           round(float(half_width), ANGLE_DECIMALS), codes.DEGREE,
                           items.HAS_PROPERTIES)]


def _angle(m: KneeMeasurement, method: str, refs: SourceReferences) -> Dataset:
    """NUM aTFA by ``method`` (TID 300): Measurement Method, its interval, then its arms as
    one 4-point POLYLINE (the viewers' Cobb angle), then each axis alone.

    The arms are the femoral axis proximal -> distal, then the tibial axis distal -> proximal,
    so the angle between (p2 - p1) and (p3 - p4) is |aTFA|.  Cornerstone's Cobb angle tool
    orders each arm from its far end to the end nearest the other arm before it measures, so
    OHIF shows the angle at the knee, 180 - |aTFA|, whatever the order (docs/viewer.md).
    """
    axes = m.axes(method)  # type: ignore[arg-type]
    femoral, tibial = axes["femoral"], axes["tibial"]
    arms = _scoord([femoral.proximal, femoral.distal, tibial.distal, tibial.proximal])
    children = [
        items.code_item(dcm_codes.SCT.MeasurementMethod,
                        codes.METHOD_FTS if method == "FTS" else codes.METHOD_FNTS,
                        items.HAS_CONCEPT_MOD),
        *_interval(m, method),
        items.scoord_item(codes.ANGLE_ARMS, "POLYLINE", arms, refs.selected_from),
        _axis_scoord(femoral, codes.FEMORAL_AXIS_FTS if method == "FTS"
                     else codes.FEMORAL_AXIS_FNTS, refs),
        _axis_scoord(tibial, codes.TIBIAL_AXIS, refs),
    ]
    return items.num_item(codes.ATFA_FTS if method == "FTS" else codes.ATFA_FNTS,
                          round(float(m.atfa_deg[method]), ANGLE_DECIMALS), codes.DEGREE,
                          items.CONTAINS, children)


def _angle_group(m: KneeMeasurement, method: str, refs: SourceReferences,
                 new_uid: Callable[[], str]) -> Dataset:
    """TID 1501 group of one aTFA, in the form Cornerstone3D (OHIF) loads as a Cobb angle.

    The adapters take one tool per group, from its Tracking Identifier, its first NUM and
    that NUM's first SCOORD; the Finding (121071) names the angle.  The algorithm is named
    once per knee, on the knee's group (and in the Contributing Equipment Sequence).
    """
    concept = codes.ATFA_FTS if method == "FTS" else codes.ATFA_FNTS
    return items.container_item(dcm_codes.DCM.MeasurementGroup, items.CONTAINS, [
        *_tracking(viewer_tracking_identifier(ANGLE_TOOL), new_uid()),
        items.code_item(FINDING, concept, items.CONTAINS),
        _finding_site(m.laterality),
        _angle(m, method, refs),
        _source_of_measurement(refs),
    ], template_id="1501")


def _confidence(m: KneeMeasurement, refs: SourceReferences) -> Dataset:
    """Landmark detection confidence, inferred from the landmarks (one MULTIPOINT per outline)."""
    outlines = [
        items.scoord_item(codes.LANDMARKS[curve], "MULTIPOINT", _scoord(m.landmarks[start:stop]),
                          refs.selected_from)
        for curve, (start, stop) in CURVES.items() if stop <= m.landmarks.shape[0]
    ]
    return items.num_item(codes.CONFIDENCE, float(m.confidence), codes.NO_UNITS, items.CONTAINS,
                          outlines)


def _knee_group(m: KneeMeasurement, index: int, refs: SourceReferences,
                new_uid: Callable[[], str]) -> Dataset:
    """TID 1501 group of one knee (its angles are in groups of their own, `_angle_group`).

    The algorithm is identified once per knee, on this group (TID 1501 row 4, TID 4019,
    which its measurements inherit), by name and version only; the full parameters are in
    the Contributing Equipment Sequence and the model card.  A flagged knee has its
    reasons as TEXT qualitative evaluations, last.
    """
    assert m.model is not None  # checked by check_measurements(need_model=True)
    algorithm = AlgorithmIdentity.from_model(m.model)
    passed = m.quality == "pass"
    label = (f"{_SIDE[m.laterality]} knee aTFA" if passed
             else f"{_SIDE[m.laterality]} knee - FLAGGED, no reliable measurement")
    children = [
        *_tracking(f"{label} #{index + 1}", new_uid()),
        _finding_site(m.laterality),
        items.text_item(dcm_codes.DCM.AlgorithmName, algorithm.name, items.HAS_CONCEPT_MOD),
        items.text_item(dcm_codes.DCM.AlgorithmVersion, algorithm.version, items.HAS_CONCEPT_MOD),
        _confidence(m, refs),
        items.code_item(codes.QUALITY_VERDICT, codes.QUALITY_PASS if passed
                        else codes.QUALITY_FLAG, items.CONTAINS),
    ]
    if passed:
        children.append(items.code_item(codes.CORONAL_ALIGNMENT,
                                        codes.ALIGNMENT_VALUES[m.verdict], items.CONTAINS))
    children.append(_source_of_measurement(refs))
    children += [items.text_item(codes.QUALITY_FLAG_REASON, str(reason)[:1024], items.CONTAINS)
                 for reason in m.flag_reasons]
    return items.container_item(dcm_codes.DCM.MeasurementGroup, items.CONTAINS, children,
                                template_id="1501")


def _groups(records: Sequence[KneeMeasurement], refs: SourceReferences,
            new_uid: Callable[[], str]) -> list[Dataset]:
    """Per knee its group, then (passed knees only) one group per aTFA: FTS, FNTS."""
    groups = []
    for i, m in enumerate(records):
        groups.append(_knee_group(m, i, refs, new_uid))
        if m.quality == "pass":
            groups.extend(_angle_group(m, method, refs, new_uid) for method in ("FTS", "FNTS"))
    return groups


def _observer_context(device_observer_uid: str, device_observer_name: str, manufacturer: str,
                      model_name: str) -> list[Dataset]:
    """TID 1002/1004: the node as device observer."""
    return [
        items.code_item(dcm_codes.DCM.ObserverType, dcm_codes.DCM.Device, items.HAS_OBS_CONTEXT),
        items.uidref_item(dcm_codes.DCM.DeviceObserverUID, device_observer_uid,
                          items.HAS_OBS_CONTEXT),
        items.text_item(dcm_codes.DCM.DeviceObserverName, device_observer_name,
                        items.HAS_OBS_CONTEXT),
        items.text_item(dcm_codes.DCM.DeviceObserverManufacturer, manufacturer,
                        items.HAS_OBS_CONTEXT),
        items.text_item(dcm_codes.DCM.DeviceObserverModelName, model_name,
                        items.HAS_OBS_CONTEXT),
    ]


#: Coded modality (CID 29) of the projection radiography SOP classes whose Image Library
#: entry is made here (TID 1601-1603), as highdicom codes them.
PROJECTION_MODALITIES: dict[str, Code] = {
    "1.2.840.10008.5.1.4.1.1.1": dcm_codes.cid29.ComputedRadiography,
    "1.2.840.10008.5.1.4.1.1.1.1": dcm_codes.cid29.DigitalRadiography,
    "1.2.840.10008.5.1.4.1.1.1.1.1": dcm_codes.cid29.DigitalRadiography,
    "1.2.840.10008.5.1.4.1.1.1.2": dcm_codes.cid29.Mammography,
    "1.2.840.10008.5.1.4.1.1.1.2.1": dcm_codes.cid29.Mammography,
    "1.2.840.10008.5.1.4.1.1.1.3": dcm_codes.cid29.IntraOralRadiography,
    "1.2.840.10008.5.1.4.1.1.1.3.1": dcm_codes.cid29.IntraOralRadiography,
}
PIXELS = Code("{pixels}", "UCUM", "Pixels")


def _library_entry_descriptors(source: Dataset) -> list[Dataset]:
    """TID 1602/1603 descriptors of a projection radiograph: modality, frame of reference
    (if any), rows, columns, Patient Orientation, Imager Pixel Spacing (column, row)."""
    acquisition = "HAS ACQ CONTEXT"
    descriptors = [items.code_item(dcm_codes.DCM.Modality,
                                   PROJECTION_MODALITIES[str(source.SOPClassUID)], acquisition)]
    if "FrameOfReferenceUID" in source:
        descriptors.append(items.uidref_item(dcm_codes.DCM.FrameOfReferenceUID,
                                             str(source.FrameOfReferenceUID), acquisition))
    orientation, spacing = source.PatientOrientation, source.ImagerPixelSpacing
    return [
        *descriptors,
        items.num_item(dcm_codes.DCM.PixelDataRows, source.Rows, PIXELS, acquisition),
        items.num_item(dcm_codes.DCM.PixelDataColumns, source.Columns, PIXELS, acquisition),
        items.text_item(dcm_codes.DCM.PatientOrientationRow, orientation[0], acquisition),
        items.text_item(dcm_codes.DCM.PatientOrientationColumn, orientation[1], acquisition),
        items.num_item(dcm_codes.DCM.HorizontalPixelSpacing, spacing[1],
                       dcm_codes.UCUM.Millimeter, acquisition),
        items.num_item(dcm_codes.DCM.VerticalPixelSpacing, spacing[0],
                       dcm_codes.UCUM.Millimeter, acquisition),
    ]


def _image_library(source: Dataset, refs: SourceReferences) -> Dataset:
    """TID 1600 Image Library of the source, every container SEPARATE: made here for a
    projection radiograph (CR, DX, MG, IO), by highdicom for any other image.

    One group (TID 1601) holds the source; its frame of reference (if any) is one of the
    source's descriptors, not stated again on the group (as highdicom 0.28 writes it)."""
    if str(source.SOPClassUID) not in PROJECTION_MODALITIES or not _is_projection(source):
        library = hd.sr.ImageLibrary([source])[0]
        _separate(library)
        return library
    image = items.image_item(SOURCE, refs.sop, items.CONTAINS)
    image.ContentSequence = DicomSequence(_library_entry_descriptors(source))
    group = items.container_item(dcm_codes.DCM.ImageLibraryGroup, items.CONTAINS, [image])
    return items.container_item(dcm_codes.DCM.ImageLibrary, items.CONTAINS, [group])


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


def _separate(item: Dataset) -> None:
    """Mark every container SEPARATE: each item is its own statement, so renderers such as
    dsr2html show it on its own line with its concept name (CONTINUOUS runs them together)."""
    if item.get("ValueType") == "CONTAINER":
        item.ContinuityOfContent = "SEPARATE"
    for child in item.get("ContentSequence", []):
        _separate(child)


def _sequence(item: Dataset, tag: BaseTag, parsed: dict[int, list[Dataset]]) -> list[Dataset]:
    """The items of sequence ``tag`` of ``item``, leaving a raw (pre-encoded) one raw: it is
    parsed aside, once per shared element (``parsed``, by identity)."""
    element = item.get_item(tag) if tag in item else None
    if element is None:
        return []
    if not isinstance(element, RawDataElement):
        return list(element.value or [])
    if id(element) not in parsed:
        parsed[id(element)] = list(convert_raw_data_element(element).value or [])
    return parsed[id(element)]


def _referenced_instances(item: Dataset, parsed: dict[int, list[Dataset]] | None = None
                          ) -> set[str]:
    """SOP Instance UIDs the IMAGE/COMPOSITE items under ``item`` reference (any depth)."""
    parsed = {} if parsed is None else parsed
    found: set[str] = set()
    for child in _sequence(item, CONTENT_SEQUENCE, parsed):
        found.update(str(r.ReferencedSOPInstanceUID)
                     for r in _sequence(child, items.REFERENCED_SOP_SEQUENCE, parsed))
        found |= _referenced_instances(child, parsed)
    return found


def sr_document(source: Dataset, content: Dataset, **kwargs: Any) -> Dataset:
    """The SR document of ``content``: highdicom's ``Comprehensive3DSR`` header (patient,
    study, series, equipment, evidence, flags; from ``source`` and ``kwargs``) with the
    content tree ``content`` as it is, ready to be written explicit VR little endian.

    ``hd.sr.Comprehensive3DSR(evidence=[source], content=content, **kwargs)`` writes the
    same document (tests/test_reports_sr.py compares them element by element).  Here the
    constructor is given the root container without its children (no deep copy, re-parse
    and evidence search of the whole tree), its header is kept as a plain
    :class:`pydicom.Dataset` (with its file meta), the root's children are put on it, and
    its top level is declared pre-encoded (:func:`~dicom_node.reports.sr_items.mark_document`)
    so that a tree made with :mod:`dicom_node.reports.sr_items` is written as it was
    encoded.  The constructor's check that the tree references no instance outside the
    evidence is made here.

    Parameters
    ----------
    source
        The measured image: the evidence, and the only instance ``content`` may reference.
    content
        The root CONTAINER (TID 1500), from :func:`report_content` (or
        ``hd.sr.MeasurementReport(...)[0]``); its children become the document's (not
        copied).
    **kwargs
        The other arguments of ``hd.sr.Comprehensive3DSR`` (series, flags, equipment...).

    Returns
    -------
    pydicom.Dataset
        The Comprehensive 3D SR, with ``file_meta`` (explicit VR little endian).

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
        if element.tag != CONTENT_SEQUENCE:
            root.add(element)
    root.ContentSequence = hd.sr.ContentSequence([])
    header = hd.sr.Comprehensive3DSR(evidence=[source], content=root, **kwargs)
    if header.file_meta.TransferSyntaxUID != ExplicitVRLittleEndian:
        raise ReportInputError("the SR must be explicit VR little endian, got transfer syntax "
                               f"{header.file_meta.TransferSyntaxUID}")
    document = Dataset()
    for element in header:
        if element.tag != CONTENT_SEQUENCE:
            document.add(element)
    document.file_meta = header.file_meta
    document.ContentSequence = content.ContentSequence
    items.mark_document(document)
    return document


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
) -> Dataset:
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
    pydicom.Dataset
        The Comprehensive 3D SR (:func:`sr_document`): completion COMPLETE, verification
        UNVERIFIED, preliminary flag PRELIMINARY.

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
                   manufacturer: str, new_uid: Callable[[], str] = hd.UID) -> Dataset:
    """The root CONTAINER of the TID 1500 report of ``records`` (checked by the caller):
    language, observation context, procedure, image library (when :func:`_library_ready`),
    one group per knee and per aTFA, the notice; every container SEPARATE.  Made of plain
    pydicom items (:mod:`dicom_node.reports.sr_items`).

    Parameters
    ----------
    source
        The measured image.
    records
        One checked record per knee, each with its model.
    device_observer_uid, device_observer_name, manufacturer
        The node as device observer (TID 1004).
    new_uid
        Maker of each measurement group's Tracking Unique Identifier.
    """
    algorithms = identities(records)
    refs = SourceReferences.of(source)
    children = [
        items.code_item(dcm_codes.DCM.LanguageOfContentItemAndDescendants, LANGUAGE,
                        items.HAS_CONCEPT_MOD),
        *_observer_context(device_observer_uid, device_observer_name, manufacturer,
                           algorithms[0].name),
        items.code_item(dcm_codes.DCM.ProcedureReported, codes.PLAIN_RADIOGRAPHY,
                        items.HAS_CONCEPT_MOD),
    ]
    if _library_ready(source):
        children.append(_image_library(source, refs))
    children.append(items.container_item(dcm_codes.DCM.ImagingMeasurements, items.CONTAINS,
                                         _groups(records, refs, new_uid)))
    children.append(items.container_item(  # TID 1500 row 12, after Imaging Measurements
        codes.QUALITATIVE_EVALUATIONS, items.CONTAINS,
        [items.text_item(codes.NOTICE, NOTICE_TEXT, items.CONTAINS)]))
    return items.container_item(dcm_codes.DCM.ImagingMeasurementReport, None, children,
                                template_id="1500")


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
