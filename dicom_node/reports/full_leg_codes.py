"""Coded concepts of the full-leg results, in the project's private scheme ``99KNEENODE``.

The knee concepts live in :mod:`dicom_node.reports.codes`; these are the full-leg ones (the
same designator, declared by the same Coding Scheme Identification item). Standard codes are
used where they fit: SCT 61685007 "Lower limb" as finding site with SCT laterality, UCUM
``deg`` and ``mm``. Documented in ``docs/sr_content.md``.
"""

from __future__ import annotations

from pydicom.sr.codedict import codes as dcm
from pydicom.sr.coding import Code

from dicom_node.reports.codes import SCHEME_DESIGNATOR


def _private(value: str, meaning: str) -> Code:
    return Code(value=value, scheme_designator=SCHEME_DESIGNATOR, meaning=meaning)


#: One concept per measurement, keyed like :data:`inference.leg.predictor.MEASUREMENTS`.
MEASUREMENT_CODES: dict[str, Code] = {
    "HKA_deg": _private("LEG-HKA", "Hip-knee-ankle angle (signed, varus negative)"),
    "mLDFA_deg": _private("LEG-MLDFA", "Mechanical lateral distal femoral angle"),
    "mMPTA_deg": _private("LEG-MMPTA", "Mechanical medial proximal tibial angle"),
    "aHKA_deg": _private("LEG-AHKA", "Arithmetic hip-knee-ankle angle"),
    "JLO_deg": _private("LEG-JLO", "Joint line obliquity"),
    "FVA_deg": _private("LEG-FVA", "Femoral valgus angle"),
    "JLCA_deg": _private("LEG-JLCA", "Joint line convergence angle"),
    "MAD_mm": _private("LEG-MAD", "Mechanical axis deviation (signed, varus negative)"),
    "aTFA_FTS_deg": _private("LEG-ATFA", "Long-leg anatomical tibiofemoral angle (FTS)"),
}
#: Names of the SCOORDs (what each graphic is).
FEMORAL_MECH_AXIS = _private("LEG-FEM-MECH", "Femoral mechanical axis")
TIBIAL_MECH_AXIS = _private("LEG-TIB-MECH", "Tibial mechanical axis")
FEMORAL_ANAT_AXIS = _private("LEG-FEM-ANAT", "Femoral anatomical axis (diaphysis to knee)")
CONDYLAR_LINE = _private("LEG-CONDYLAR", "Distal femoral condylar line")
PLATEAU_LINE = _private("LEG-PLATEAU", "Tibial plateau line")
HIP_ANKLE_LINE = _private("LEG-HIP-ANKLE", "Hip-ankle line")
KNEE_CENTRE = _private("LEG-KNEE-CTR", "Knee centre")
HEAD_CENTRE = _private("LEG-HEAD-CTR", "Femoral head circle centre")
FEMORAL_SHAFT_AXIS = _private("LEG-FEM-SHAFT", "Femoral shaft axis (FTS)")
TIBIAL_SHAFT_AXIS = _private("LEG-TIB-SHAFT", "Tibial shaft axis (FTS)")
#: The first SCOORD of each angle group: both lines as one 4-point POLYLINE (the viewers'
#: Cobb angle), the first line as in its own SCOORD, then the second line reversed.
ANGLE_ARMS = _private("LEG-ANGLE-ARMS", "Angle arms: first line, then second line reversed")
JOINT_LANDMARKS = _private("LEG-LANDMARKS", "Full-leg joint landmarks")
ROI_PRESENCE = _private("LEG-ROI-PRESENCE", "Lowest joint presence probability")
#: CPAK (MacDessi): the finding, its nine classes, and the borderline flag.
CPAK_CLASS = _private("CPAK", "Coronal plane alignment of the knee (CPAK) class")
CPAK_VALUES: dict[int, Code] = {
    i: _private(f"CPAK-{r}", f"CPAK class {r}")
    for i, r in enumerate(("I", "II", "III", "IV", "V", "VI", "VII", "VIII", "IX"), start=1)
}
CPAK_BORDERLINE = _private("CPAK-BORDERLINE", "CPAK class borderline (within uncertainty of a "
                                               "threshold)")
CPAK_CANDIDATE = _private("CPAK-CANDIDATE", "CPAK candidate class")
YES = dcm.SCT.Yes
NO = dcm.SCT.No
#: Standard concepts.
LOWER_LIMB = dcm.SCT.LowerLimb  # SCT 61685007
DEGREE = dcm.UCUM.Degree
MILLIMETRE = dcm.UCUM.Millimeter
UNITS: dict[str, Code] = {"deg": DEGREE, "mm": MILLIMETRE}

SERIES_DESCRIPTION_SR = "Full-leg alignment research result - NOT FOR DIAGNOSTIC USE"
SERIES_DESCRIPTION_SC = "Full-leg alignment overlay research - NOT FOR DIAGNOSTIC USE"

#: Every private full-leg concept, for tests and the docs.
PRIVATE_CONCEPTS: tuple[Code, ...] = (
    *MEASUREMENT_CODES.values(), FEMORAL_MECH_AXIS, TIBIAL_MECH_AXIS, FEMORAL_ANAT_AXIS,
    CONDYLAR_LINE, PLATEAU_LINE, HIP_ANKLE_LINE, KNEE_CENTRE, HEAD_CENTRE, FEMORAL_SHAFT_AXIS,
    TIBIAL_SHAFT_AXIS, ANGLE_ARMS, JOINT_LANDMARKS, ROI_PRESENCE, CPAK_CLASS, *CPAK_VALUES.values(),
    CPAK_BORDERLINE, CPAK_CANDIDATE,
)
