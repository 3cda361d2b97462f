"""Patient and study attributes copied from a source image into our results, checked first.

highdicom copies the Patient and General Study modules (and a few more attributes) from
the source into every SR, SC and GSPS we write. A sender's malformed value (a birth date
``1967-11-03``, a Patient Sex ``SECRETSEX``, a 10,000-character name with control
characters) would otherwise stop the measurement with an error quoting the value, or go
verbatim into an object the PACS then holds as invalid.

:func:`clean_source_attributes` checks each such attribute against its VR (length,
character repertoire, format, enumerated values). A valid value is kept as it is. An
invalid one is emptied (Type 2 attributes) or removed (Type 3), and a warning names the
attribute and what was wrong, **never the value**. :func:`redact` removes any patient
value from a message as a second line of defence.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from pydicom import Dataset, config
from pydicom.multival import MultiValue
from pydicom.valuerep import validate_value

#: attributes highdicom or our writers copy from the source; True: Type 2 (kept empty)
COPIED_ATTRIBUTES: dict[str, bool] = {
    "PatientName": True,
    "PatientID": True,
    "PatientBirthDate": True,
    "PatientSex": True,
    "IssuerOfPatientID": False,
    "OtherPatientIDs": False,
    "PatientAge": False,
    "PatientSize": False,
    "PatientWeight": False,
    "PatientComments": False,
    "EthnicGroup": False,
    "StudyDate": True,
    "StudyTime": True,
    "ReferringPhysicianName": True,
    "StudyID": True,
    "AccessionNumber": True,
    "StudyDescription": False,
    "InstitutionName": False,
    "InstitutionalDepartmentName": False,
    "Manufacturer": False,
    "BodyPartExamined": False,
    "Laterality": False,
    "ImageLaterality": False,
}

#: enumerated values the standard allows (the attribute is dropped otherwise)
ENUMERATED: dict[str, frozenset[str]] = {
    "PatientSex": frozenset({"M", "F", "O"}),
    "Laterality": frozenset({"R", "L"}),
    "ImageLaterality": frozenset({"R", "L", "U", "B"}),
}

#: patient attributes whose values never appear in a message (see :func:`redact`)
PATIENT_ATTRIBUTES = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "OtherPatientIDs",
    "PatientAge",
    "PatientComments",
    "AccessionNumber",
    "ReferringPhysicianName",
    "StudyID",
    "InstitutionName",
)

_TEXT_VRS = {"PN", "LO", "SH", "CS", "LT", "ST", "UT", "AE", "UC"}
#: control characters allowed by VR: none for single-line strings, some in texts
_ALLOWED_CONTROL = {"LT": "\t\n\f\r", "ST": "\t\n\f\r", "UT": "\t\n\f\r"}
_MAX_LENGTH = {"LT": 10240, "ST": 1024, "UT": 1 << 31}


def _problem(keyword: str, vr: str, value: str, code_extensions: bool) -> str | None:
    """What is wrong with one value of ``keyword``, in words without the value."""
    if vr in _MAX_LENGTH and len(value) > _MAX_LENGTH[vr]:
        return f"{len(value)} characters, more than {vr} allows"
    try:
        validate_value(vr, value, config.RAISE)
    except (ValueError, TypeError, OverflowError) as exc:
        text = str(exc)
        if "length" in text:
            return f"{len(value)} characters, more than {vr} allows"
        return f"not a valid {vr}"
    if vr in _TEXT_VRS:
        allowed = _ALLOWED_CONTROL.get(vr, "") + ("\x1b" if code_extensions else "")
        bad = {c for c in value if (ord(c) < 0x20 or ord(c) == 0x7F) and c not in allowed}
        if bad:
            codes = ", ".join(sorted(hex(ord(c)) for c in bad))
            return f"control characters not allowed in {vr} ({codes})"
    if keyword in ENUMERATED and value.strip() and value.strip() not in ENUMERATED[keyword]:
        return f"not one of the enumerated values {sorted(ENUMERATED[keyword])}"
    return None


def _values(value: object) -> list[str]:
    if value is None:
        return []
    if isinstance(value, (list, tuple, MultiValue)):
        return [str(v) for v in value if v is not None]
    if isinstance(value, bytes):
        return [value.decode("latin-1")]
    return [str(value)]


def clean_source_attributes(
    source: Dataset, keywords: Iterable[str] = COPIED_ATTRIBUTES
) -> list[str]:
    """Empty or remove invalid copied attributes of ``source``, in place.

    Parameters
    ----------
    source
        The source image dataset (the in-memory copy; the spool file is untouched).
    keywords
        Attributes to check (default: every attribute our results copy).

    Returns
    -------
    list[str]
        One warning per attribute emptied or removed, naming the attribute and the
        problem, never the value.
    """
    if not isinstance(source, Dataset):
        raise TypeError(f"source must be a pydicom Dataset, got {type(source).__name__}")
    charset = source.get("SpecificCharacterSet") or ""
    code_extensions = any("2022" in c for c in _values(charset))
    warnings: list[str] = []
    for keyword in keywords:
        if keyword not in source:
            continue
        elem = source[keyword]
        vr = str(elem.VR)
        try:
            values = _values(elem.value)
        except (ValueError, TypeError, UnicodeError, LookupError):
            values, problem = [], "cannot be decoded"
        else:
            problem = next(
                (p for v in values if (p := _problem(keyword, vr, v, code_extensions))), None
            )
        if problem is None:
            continue
        if COPIED_ATTRIBUTES.get(keyword, False):
            source[keyword].value = ""  # Type 2: present, empty
            action = "emptied"
        else:
            del source[keyword]
            action = "dropped"
        warnings.append(f"{keyword} {action}: {problem}")
    return warnings


def patient_values(source: Dataset) -> set[str]:
    """The patient attribute values of ``source`` (and their parts), for :func:`redact`."""
    found: set[str] = set()
    for keyword in PATIENT_ATTRIBUTES:
        try:
            values = _values(source.get(keyword))
        except (ValueError, TypeError, UnicodeError, LookupError):
            continue
        for v in values:
            found.add(v)
            found.update(p for p in re.split(r"[\^=\s]+", v))
    return {v for v in found if len(v.strip()) >= 2}


_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")


def redact(message: str, values: Iterable[str] = (), *, quoted: bool = False) -> str:
    """``message`` with every one of ``values`` (and, with ``quoted``, every quoted
    literal, as library errors quote the value they refuse) replaced by ``<redacted>``."""
    out = message
    for v in sorted(set(values), key=len, reverse=True):
        out = out.replace(v, "<redacted>")
    if quoted:
        out = _QUOTED.sub("'<redacted>'", out)
    return out
