"""The full-leg Structured Report: TID 1500 with one measurement group per leg (highdicom).

Per leg (finding site SCT "Lower limb" with laterality): HKA, mLDFA, mMPTA, aHKA, JLO, FVA,
JLCA (UCUM ``deg``), MAD (UCUM ``mm``) and the long-leg aTFA as NUMs, each with the geometry
it was measured on as SCOORDs on the source image (mechanical and anatomical axes, condylar
and plateau lines, hip-ankle line, knee centre, femoral head circle centre); the CPAK class as
a coded qualitative evaluation (private scheme), with "borderline" and the candidate classes
when it is; the quality verdict with its reasons; the algorithm identification from the
result's :class:`~inference.measurement.ModelInfo`. A flagged leg keeps the verdict, its
reasons and the landmarks found, and has no value and no class (as a flagged knee).

Each angle of a passed leg that is an angle between two lines (HKA, mLDFA, mMPTA, JLCA, FVA,
long-leg aTFA; :data:`ANGLE_LINES`) also has a group of its own, in the form web viewers load
as an editable angle (Cornerstone3D / OHIF, as the knee SR's aTFA groups): Tracking
Identifier ``Cornerstone3DTools@^0.1.0:CobbAngle``, Tracking UID, Finding = the measurement's
concept, Finding Site = lower limb + laterality, and the NUM (same concept, value and unit as
in the leg's group) -> INFERRED FROM -> SCOORD POLYLINE of 4 points (both lines) -> SELECTED
FROM -> IMAGE, followed by the two lines as 2-point POLYLINEs.
See ``docs/sr_content.md``. Research use only, not a medical device.
"""

from __future__ import annotations

import highdicom as hd
import numpy as np
import numpy.typing as npt
from pydicom import Dataset
from pydicom.sr.codedict import codes as dcm_codes
from pydicom.sr.coding import Code

from dicom_node.reports import codes
from dicom_node.reports import full_leg_codes as fc
from dicom_node.reports import sr_items as items
from dicom_node.reports._checks import ReportInputError, ReportTypeError, check_source
from dicom_node.reports.algorithm import NOTICE_TEXT, AlgorithmIdentity
from dicom_node.reports.measurement_report import (
    ANGLE_DECIMALS,
    ANGLE_TOOL,
    PIXEL_CENTRE_OFFSET,
    _check_number,
    _check_uid,
    _library_ready,
    _separate,
    sr_document,
    viewer_tracking_identifier,
)
from inference.landmarks import CortexPair
from inference.leg import landmarks as leg
from inference.leg.predictor import MEASUREMENTS, FullLegResult, LegResult

FloatArray = npt.NDArray[np.float64]
_SIDE = {"L": "Left", "R": "Right"}
#: Decimals of MAD (mm) in the SR.
MM_DECIMALS = 1


def _scoord(points: npt.ArrayLike) -> FloatArray:
    return np.asarray(points, dtype=np.float64).reshape(-1, 2) + PIXEL_CENTRE_OFFSET


def _coords(kind: hd.sr.GraphicTypeValues, pts: npt.ArrayLike, purpose: Code, source: Dataset
            ) -> hd.sr.CoordinatesForMeasurement:
    return hd.sr.CoordinatesForMeasurement(
        graphic_type=kind, graphic_data=_scoord(pts),
        source_image=hd.sr.SourceImageForRegion(source.SOPClassUID, source.SOPInstanceUID),
        purpose=purpose)


def leg_geometry(lg: LegResult) -> dict[str, tuple[str, FloatArray]]:
    """The drawn geometry of a leg: name -> (graphic type, stored-px points).

    Keys: ``femoral_mech`` (head centre -> knee centre), ``tibial_mech`` (knee -> ankle
    centre), ``condylar``, ``plateau``, ``hip_ankle``, ``knee_centre``, ``head_centre``,
    ``femoral_anat`` (diaphysis centre -> knee centre), ``femoral_shaft`` and
    ``tibial_shaft`` (FTS mid-points); entries with missing points are left out.
    """
    p = lg.landmarks
    H, K, A = p[leg.FEMORAL_HEAD_CENTRE], p[leg.KNEE_CENTRE], p[leg.ANKLE_CENTRE]
    out: dict[str, tuple[str, FloatArray]] = {
        "femoral_mech": ("POLYLINE", np.array([H, K])),
        "tibial_mech": ("POLYLINE", np.array([K, A])),
        "condylar": ("POLYLINE", p[[leg.CONDYLE_MEDIAL, leg.CONDYLE_LATERAL]]),
        "plateau": ("POLYLINE", p[[leg.PLATEAU_MEDIAL, leg.PLATEAU_LATERAL]]),
        "hip_ankle": ("POLYLINE", np.array([H, A])),
        "knee_centre": ("POINT", K[None]),
        "head_centre": ("POINT", H[None]),
        "femoral_anat": ("POLYLINE", np.array([p[leg.DIAPHYSIS_CENTRE], K])),
    }

    def mid(pair: CortexPair) -> FloatArray:
        return 0.5 * (p[pair.medial] + p[pair.lateral])

    out["femoral_shaft"] = ("POLYLINE", np.array([mid(leg.FEMUR_SHAFT_PROXIMAL),
                                                  mid(leg.FEMUR_SHAFT_DISTAL)]))
    out["tibial_shaft"] = ("POLYLINE", np.array([mid(leg.TIBIA_SHAFT_PROXIMAL),
                                                 mid(leg.TIBIA_SHAFT_DISTAL)]))
    return {k: v for k, v in out.items() if np.all(np.isfinite(v[1]))}


#: SCOORDs of each measurement (keys of :func:`leg_geometry`).
MEASUREMENT_GEOMETRY: dict[str, tuple[str, ...]] = {
    "HKA_deg": ("femoral_mech", "tibial_mech", "head_centre"),
    "mLDFA_deg": ("femoral_mech", "condylar"),
    "mMPTA_deg": ("tibial_mech", "plateau"),
    "aHKA_deg": ("femoral_mech", "tibial_mech", "condylar", "plateau"),
    "JLO_deg": ("femoral_mech", "tibial_mech", "condylar", "plateau"),
    "FVA_deg": ("femoral_mech", "femoral_anat"),
    "JLCA_deg": ("condylar", "plateau"),
    "MAD_mm": ("hip_ankle", "knee_centre"),
    "aTFA_FTS_deg": ("femoral_shaft", "tibial_shaft"),
}
_PURPOSE: dict[str, Code] = {
    "femoral_mech": fc.FEMORAL_MECH_AXIS, "tibial_mech": fc.TIBIAL_MECH_AXIS,
    "condylar": fc.CONDYLAR_LINE, "plateau": fc.PLATEAU_LINE, "hip_ankle": fc.HIP_ANKLE_LINE,
    "knee_centre": fc.KNEE_CENTRE, "head_centre": fc.HEAD_CENTRE,
    "femoral_anat": fc.FEMORAL_ANAT_AXIS, "femoral_shaft": fc.FEMORAL_SHAFT_AXIS,
    "tibial_shaft": fc.TIBIAL_SHAFT_AXIS,
}


#: The angles between two lines (keys of :func:`leg_geometry`), each a viewer angle group.
ANGLE_LINES: dict[str, tuple[str, str]] = {
    "HKA_deg": ("femoral_mech", "tibial_mech"),
    "mLDFA_deg": ("femoral_mech", "condylar"),
    "mMPTA_deg": ("tibial_mech", "plateau"),
    "JLCA_deg": ("condylar", "plateau"),
    "FVA_deg": ("femoral_mech", "femoral_anat"),
    "aTFA_FTS_deg": ("femoral_shaft", "tibial_shaft"),
}


def angle_arms(lg: LegResult, key: str) -> FloatArray | None:
    """The 4 stored-px points of angle ``key`` as written in its viewer group: the first
    line of :data:`ANGLE_LINES` as drawn, then the second line reversed (for HKA: head centre,
    knee centre, ankle centre, knee centre). None when a line is missing."""
    geom = leg_geometry(lg)
    first, second = ANGLE_LINES[key]
    if first not in geom or second not in geom:
        return None
    return np.concatenate([geom[first][1], geom[second][1][::-1]])


def _angle_group(lg: LegResult, key: str, value: float, source: Dataset
                 ) -> hd.sr.MeasurementsAndQualitativeEvaluations | None:
    """TID 1501 group of one angle, in the form Cornerstone3D (OHIF) loads as a Cobb angle.

    The adapters take one tool per group, from its Tracking Identifier, its first NUM and
    that NUM's first SCOORD (the 4-point arms); the Finding (121071) names the angle. The
    algorithm is named once per leg, on the leg's group.
    """
    arms = angle_arms(lg, key)
    if arms is None:
        return None
    geom = leg_geometry(lg)
    code = fc.MEASUREMENT_CODES[key]
    refs = [_coords(hd.sr.GraphicTypeValues.POLYLINE, arms, fc.ANGLE_ARMS, source)]
    refs += [_coords(hd.sr.GraphicTypeValues.POLYLINE, geom[g][1], _PURPOSE[g], source)
             for g in ANGLE_LINES[key]]
    return hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(
            uid=hd.UID(), identifier=viewer_tracking_identifier(ANGLE_TOOL)),
        finding_type=code,
        finding_sites=[hd.sr.FindingSite(fc.LOWER_LIMB, laterality=codes.LATERALITY[lg.side])],
        measurements=[hd.sr.Measurement(
            name=code, value=_value(key, value), unit=fc.UNITS[MEASUREMENTS[key][1]],
            referenced_coordinates=refs)],
        source_images=[hd.sr.SourceImageForMeasurementGroup(source.SOPClassUID,
                                                            source.SOPInstanceUID)],
    )


def _angle_groups(lg: LegResult, source: Dataset
                  ) -> list[hd.sr.MeasurementsAndQualitativeEvaluations]:
    """The viewer angle groups of a passed leg, in :data:`ANGLE_LINES` order (none when
    flagged, none for a value that is not a number)."""
    if lg.quality != "pass":
        return []
    out = []
    for key in ANGLE_LINES:
        v = lg.measurements.get(key, float("nan"))
        if np.isfinite(v):
            group = _angle_group(lg, key, v, source)
            if group is not None:
                out.append(group)
    return out


def _value(key: str, value: float) -> float:
    return round(float(value), MM_DECIMALS if key == "MAD_mm" else ANGLE_DECIMALS)


def _leg_group(lg: LegResult, result: FullLegResult, index: int, source: Dataset
               ) -> hd.sr.MeasurementsAndQualitativeEvaluations:
    algorithm = AlgorithmIdentity.from_model(result.model).to_sr(with_parameters=False)
    side = _SIDE[lg.side]
    passed = lg.quality == "pass"
    geom = leg_geometry(lg)
    measurements: list[hd.sr.Measurement] = []
    if passed:
        for key in MEASUREMENTS:
            v = lg.measurements.get(key, float("nan"))
            if not np.isfinite(v):
                continue
            refs = [_coords(hd.sr.GraphicTypeValues[geom[g][0]], geom[g][1], _PURPOSE[g], source)
                    for g in MEASUREMENT_GEOMETRY[key] if g in geom]
            measurements.append(hd.sr.Measurement(
                name=fc.MEASUREMENT_CODES[key], value=_value(key, v),
                unit=fc.UNITS[MEASUREMENTS[key][1]], referenced_coordinates=refs or None))
    joints = lg.landmarks[:leg.N_CORE][np.all(np.isfinite(lg.landmarks[:leg.N_CORE]), axis=1)]
    prob = min(lg.joint_probability.values()) if lg.joint_probability else 0.0
    measurements.append(hd.sr.Measurement(
        name=fc.ROI_PRESENCE, value=round(float(prob), 4), unit=codes.NO_UNITS,
        referenced_coordinates=[_coords(hd.sr.GraphicTypeValues.MULTIPOINT, joints,
                                        fc.JOINT_LANDMARKS, source)] if len(joints) else None))
    evaluations = [hd.sr.QualitativeEvaluation(
        codes.QUALITY_VERDICT, codes.QUALITY_PASS if passed else codes.QUALITY_FLAG)]
    if passed and lg.cpak is not None:
        evaluations.append(hd.sr.QualitativeEvaluation(fc.CPAK_CLASS, fc.CPAK_VALUES[lg.cpak.cls]))
        evaluations.append(hd.sr.QualitativeEvaluation(
            fc.CPAK_BORDERLINE, fc.YES if lg.cpak.borderline else fc.NO))
        if lg.cpak.borderline:
            for c in lg.cpak.candidates:
                evaluations.append(hd.sr.QualitativeEvaluation(fc.CPAK_CANDIDATE,
                                                               fc.CPAK_VALUES[c]))
    label = (f"{side} leg alignment" if passed
             else f"{side} leg - FLAGGED, no reliable measurement")
    group = hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=hd.UID(),
                                                      identifier=f"{label} #{index + 1}"),
        algorithm_id=algorithm,
        finding_sites=[hd.sr.FindingSite(fc.LOWER_LIMB, laterality=codes.LATERALITY[lg.side])],
        measurements=measurements,
        qualitative_evaluations=evaluations,
        source_images=[hd.sr.SourceImageForMeasurementGroup(source.SOPClassUID,
                                                            source.SOPInstanceUID)],
    )
    for reason in lg.flag_reasons:
        group[0].ContentSequence.append(hd.sr.TextContentItem(
            name=codes.QUALITY_FLAG_REASON, value=str(reason)[:1024],
            relationship_type=hd.sr.RelationshipTypeValues.CONTAINS))
    return group


def build_full_leg_sr(
    source: Dataset,
    result: FullLegResult,
    *,
    series_number: int = 9911,
    instance_number: int = 1,
    institution_name: str | None = None,
    device_observer_uid: str,
    device_observer_name: str = "knee-node",
    manufacturer: str = "knee-node project",
) -> Dataset:
    """Comprehensive 3D SR (TID 1500) of both legs of a full-leg image.

    Parameters
    ----------
    source
        The measured image; patient and study are copied from it, every SCOORD references it.
    result
        :meth:`inference.leg.predictor.FullLegPredictor.measure` of ``source``.
    series_number, instance_number
        Numbers of the new series (new UID) and of the SR in it.
    institution_name
        Institution Name of the SR; the source's when None.
    device_observer_uid, device_observer_name, manufacturer
        The node as device observer (TID 1004) and manufacturer.

    Raises
    ------
    ReportInputError, ReportTypeError
        A bad argument, named.
    """
    source = check_source(source)
    if not isinstance(result, FullLegResult):
        raise ReportTypeError(f"result must be a FullLegResult, got {type(result).__name__}")
    if not result.legs:
        raise ReportInputError("result has no legs: nothing to report")
    if (int(source.Rows), int(source.Columns)) != tuple(result.image_shape):
        raise ReportInputError(f"result was measured on a {result.image_shape} image, source is "
                               f"{(int(source.Rows), int(source.Columns))}")
    _check_uid(device_observer_uid, "device_observer_uid")
    _check_number(series_number, "series_number")
    _check_number(instance_number, "instance_number")
    for name, value in (("device_observer_name", device_observer_name),
                        ("manufacturer", manufacturer)):
        if not isinstance(value, str) or not value.strip():
            raise ReportInputError(f"{name} must be a non-empty string, got {value!r}")
    algo = AlgorithmIdentity.from_model(result.model)
    observer = hd.sr.ObserverContext(
        observer_type=dcm_codes.DCM.Device,
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=device_observer_uid, name=device_observer_name, manufacturer_name=manufacturer,
            model_name=algo.name[:64]))
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_device_context=observer),
        procedure_reported=codes.PLAIN_RADIOGRAPHY,
        imaging_measurements=[g for i, lg in enumerate(result.legs)
                              for g in (_leg_group(lg, result, i, source),
                                        *_angle_groups(lg, source))],
        referenced_images=[source] if _library_ready(source) else None,
    )
    notice = hd.sr.ContainerContentItem(name=codes.QUALITATIVE_EVALUATIONS,
                                        relationship_type=hd.sr.RelationshipTypeValues.CONTAINS)
    notice.ContentSequence = hd.sr.ContentSequence([hd.sr.TextContentItem(
        name=codes.NOTICE, value=NOTICE_TEXT.replace("Landmarks and angles", "Full-leg landmarks "
                                                     "and alignment values"),
        relationship_type=hd.sr.RelationshipTypeValues.CONTAINS)])
    report[0].ContentSequence.append(notice)
    _separate(report[0])
    items.pre_encode(report[0])  # written as the knee report's tree is: codes encoded once
    return sr_document(
        source, report[0], series_instance_uid=hd.UID(),
        series_number=series_number, sop_instance_uid=hd.UID(), instance_number=instance_number,
        manufacturer=manufacturer, is_complete=True, is_final=False, is_verified=False,
        institution_name=institution_name or source.get("InstitutionName") or None,
        series_description=fc.SERIES_DESCRIPTION_SR,
        coding_schemes=[codes.coding_scheme_identification()],
        contributing_equipment=[algo.contributing_equipment()],
        manufacturer_model_name=algo.name[:64], software_versions=algo.version[:64],
    )
