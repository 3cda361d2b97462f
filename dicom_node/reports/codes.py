"""Coded concepts of the knee-node results: a private coding scheme and the standard codes used.

DICOM, SNOMED CT and LOINC have no codes for the anatomical tibiofemoral angle (aTFA),
for the two ways of drawing the femoral axis (FTS, FNTS), or for a varus/valgus
alignment read from that angle.  Rather than misuse a standard code, these concepts are
defined in a private coding scheme, designator :data:`SCHEME_DESIGNATOR` ("99" prefix as
PS3.16 8.2 asks of private schemes), which every SR we write declares in its Coding Scheme
Identification Sequence (0008,0110) with :func:`coding_scheme_identification`.

Standard codes are kept where they really fit: UCUM ``deg`` for degrees, SCT laterality
and "Knee joint", SCT "+/-, range of measurement uncertainty" (CID 225) for the half-width
of an angle's 95 % interval, DCM observer, equipment and measurement-group concepts, UMLS
"Qualitative Evaluations" (the TID 1500 container).
"""

from __future__ import annotations

from highdicom.coding_schemes import CodingSchemeIdentificationItem
from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code

#: Designator of the private coding scheme (PS3.16: private designators start with "99").
SCHEME_DESIGNATOR = "99KNEENODE"
SCHEME_NAME = "knee-node private concepts for knee alignment"
SCHEME_VERSION = "1"
SCHEME_RESPONSIBLE_ORGANIZATION = "knee-node project (research software, not a medical device)"
#: Fixed UID of the private scheme (2.25 + UUID5 of the designator), so every SR agrees.
SCHEME_UID = "2.25.61995393669742061315872612438319114928"


def _private(value: str, meaning: str) -> Code:
    return Code(value=value, scheme_designator=SCHEME_DESIGNATOR, meaning=meaning)


# --- private concepts (99KNEENODE) ------------------------------------------------------
ATFA_FTS = _private("ATFA-FTS", "Anatomical tibiofemoral angle by FTS")
ATFA_FNTS = _private("ATFA-FNTS", "Anatomical tibiofemoral angle by FNTS")
#: Methods, used as Measurement Method (SCT 370129005) of the two angles.
METHOD_FTS = _private("FTS", "Femoral and tibial shaft axes (FTS)")
METHOD_FNTS = _private("FNTS", "Femoral notch and tibial shaft axes (FNTS)")
#: The alignment finding and its values (sign convention: valgus positive).
CORONAL_ALIGNMENT = _private("KNEE-ALIGN", "Knee coronal alignment by aTFA")
VARUS = _private("VARUS", "Varus (aTFA negative)")
VALGUS = _private("VALGUS", "Valgus (aTFA positive)")
NEUTRAL = _private("NEUTRAL", "Neutral (aTFA zero)")
#: Quality verdict of the algorithm on its own landmarks.
QUALITY_VERDICT = _private("QC-VERDICT", "Algorithm quality verdict")
QUALITY_PASS = _private("QC-PASS", "Passed algorithm quality check")
QUALITY_FLAG = _private("QC-FLAG", "FLAGGED: no reliable measurement")
QUALITY_FLAG_REASON = _private("QC-REASON", "Reason for quality flag")
CONFIDENCE = _private("CONFIDENCE", "Landmark detection confidence")
NOTICE = _private("NOTICE", "Algorithm result notice")
#: Names of spatial coordinates (SCOORD) so a reader of the tree knows what each one is.
FEMORAL_AXIS_FTS = _private("FEM-AXIS-FTS", "Femoral anatomical axis (FTS)")
FEMORAL_AXIS_FNTS = _private("FEM-AXIS-FNTS", "Femoral anatomical axis (FNTS)")
TIBIAL_AXIS = _private("TIB-AXIS", "Tibial anatomical axis")
#: The 4-point POLYLINE of an angle between two lines (femoral axis proximal to distal, then
#: tibial axis distal to proximal), the
#: form web viewers (Cornerstone3D's Cobb angle tool, used by OHIF) read as an editable angle.
ANGLE_ARMS = _private(
    "ANGLE-ARMS", "Angle arms: femoral axis down, tibial axis up"
)
LANDMARKS = {
    "femur": _private("LM-FEMUR", "Femoral landmarks"),
    "tibia": _private("LM-TIBIA", "Tibial landmarks"),
    "fibula_head": _private("LM-FIBULA", "Fibular head landmarks"),
    "implant_femoral": _private("LM-IMPL-FEM", "Femoral component landmarks"),
    "implant_tibial": _private("LM-IMPL-TIB", "Tibial component landmarks"),
}

ALIGNMENT_VALUES: dict[str, Code] = {"varus": VARUS, "valgus": VALGUS, "neutral": NEUTRAL}

# --- standard concepts --------------------------------------------------------------------
DEGREE = codes.UCUM.Degree  # UCUM "deg"
NO_UNITS = codes.UCUM.NoUnits  # UCUM "1"
KNEE_JOINT = codes.SCT.KneeJoint  # SCT 49076000
LATERALITY: dict[str, Code] = {"L": codes.SCT.Left, "R": codes.SCT.Right}
PLAIN_RADIOGRAPHY = codes.SCT.PlainRadiography  # SCT 168537006, procedure reported
PROCESSING_EQUIPMENT = codes.DCM.ProcessingEquipment  # DCM 109102, IHE AIR contributing equipment
QUALITATIVE_EVALUATIONS = Code("C0034375", "UMLS", "Qualitative Evaluations")  # TID 1500 row 12
#: TID 310 Measurement Properties, NUM from CID 225 "Measurement Uncertainty Concepts":
#: SCT 371884006 "+/-, range of measurement uncertainty". Its value is the half-width of the
#: aTFA's calibrated 95 % interval, in the angle's unit (UCUM ``deg``).
MEASUREMENT_UNCERTAINTY = codes.SCT.RangeOfMeasurementUncertainty

#: Every private concept, for tests and the docs.
PRIVATE_CONCEPTS: tuple[Code, ...] = (
    ATFA_FTS,
    ATFA_FNTS,
    METHOD_FTS,
    METHOD_FNTS,
    CORONAL_ALIGNMENT,
    VARUS,
    VALGUS,
    NEUTRAL,
    QUALITY_VERDICT,
    QUALITY_PASS,
    QUALITY_FLAG,
    QUALITY_FLAG_REASON,
    CONFIDENCE,
    NOTICE,
    FEMORAL_AXIS_FTS,
    FEMORAL_AXIS_FNTS,
    TIBIAL_AXIS,
    *LANDMARKS.values(),
)


def coding_scheme_identification() -> CodingSchemeIdentificationItem:
    """The Coding Scheme Identification Sequence item that declares :data:`SCHEME_DESIGNATOR`."""
    return CodingSchemeIdentificationItem(
        designator=SCHEME_DESIGNATOR,
        name=SCHEME_NAME,
        version=SCHEME_VERSION,
        uid=SCHEME_UID,
        responsible_organization=SCHEME_RESPONSIBLE_ORGANIZATION,
    )
