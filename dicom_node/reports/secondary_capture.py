"""The secondary capture: the source image with the result drawn on it, made with highdicom.

RGB, 8-bit, a new series in the source's study (patient and study copied by
``SCImage.from_ref_dataset``), Burned In Annotation YES, a series description saying it is
not for diagnostic use, the source referenced in Source Image Sequence.  The image is
padded (banner above, text panel below) and downscaled when larger than
:data:`~dicom_node.reports.overlay.MAX_SIDE`, so no Pixel Spacing is stated.
"""

from __future__ import annotations

from collections.abc import Sequence

import highdicom as hd
from pydicom import Dataset
from pydicom.uid import (
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGLSLossless,
    RLELossless,
)

from dicom_node.reports._checks import ReportInputError, check_measurements, check_source
from dicom_node.reports.algorithm import SERIES_DESCRIPTION_SC, identities
from dicom_node.reports.overlay import display_image, draw_overlay
from inference.measurement import KneeMeasurement

_ORIENTATION_LETTERS = set("LRAPHF")

#: SC encodings by name (``reports.sc_transfer_syntax``): transfer syntax and the
#: photometric interpretation highdicom needs for it. Lossless unless said otherwise.
SC_ENCODINGS: dict[str, tuple[str, str]] = {
    "jpeg2000-lossless": (JPEG2000Lossless, "YBR_RCT"),
    "jpeg-ls-lossless": (JPEGLSLossless, "RGB"),
    "rle-lossless": (RLELossless, "RGB"),
    "explicit": (ExplicitVRLittleEndian, "RGB"),
    "jpeg-baseline": (JPEGBaseline8Bit, "YBR_FULL_422"),  # lossy
}


def _patient_orientation(source: Dataset) -> tuple[str, str]:
    """The source's Patient Orientation, else an AP view's: rows to patient left, down to feet."""
    value = source.get("PatientOrientation")
    if value is not None and len(value) == 2 and all(
        v and set(str(v)) <= _ORIENTATION_LETTERS for v in value
    ):
        return str(value[0]), str(value[1])
    return "L", "F"


def create_overlay_image(
    source: Dataset,
    measurements: Sequence[KneeMeasurement],
    *,
    series_number: int = 9902,
    instance_number: int = 1,
    manufacturer: str = "knee-node project",
    encoding: str = "explicit",
) -> hd.sc.SCImage:
    """Secondary capture of ``source`` with landmarks, axes, angles, verdict and banner drawn.

    Parameters
    ----------
    source
        The measured image (MONOCHROME1/2, single frame).
    measurements
        One record per knee; a flagged one is drawn in red as "FLAGGED: no reliable
        measurement", without axes or angle.
    series_number, instance_number
        Numbers of the new series (its UID is new) and of the image in it.
    manufacturer
        Manufacturer of the SC.
    encoding
        A name of :data:`SC_ENCODINGS` (the node uses ``reports.sc_transfer_syntax``,
        lossless JPEG-LS by default).

    Returns
    -------
    highdicom.sc.SCImage
        Colour secondary capture in the transfer syntax of ``encoding``.
    """
    source = check_source(source)
    records = check_measurements(measurements, need_model=False)
    for name, value in (("series_number", series_number), ("instance_number", instance_number)):
        if not isinstance(value, int) or isinstance(value, bool) or not 0 < value < 2**31:
            raise ReportInputError(f"{name} must be a positive integer, got {value!r}")
    if not isinstance(manufacturer, str) or not manufacturer.strip():
        raise ReportInputError(f"manufacturer must be a non-empty string, got {manufacturer!r}")
    if encoding not in SC_ENCODINGS:
        raise ReportInputError(f"encoding must be one of {sorted(SC_ENCODINGS)}, got {encoding!r}")
    transfer_syntax, photometric = SC_ENCODINGS[encoding]
    algorithms = identities(records)
    footer = ", ".join(f"Model {a.name} {a.version}" for a in algorithms)
    pixels = draw_overlay(display_image(source), records, footer)
    sc = hd.sc.SCImage.from_ref_dataset(
        ref_dataset=source,
        pixel_array=pixels,
        photometric_interpretation=photometric,
        bits_allocated=8,
        coordinate_system=hd.CoordinateSystemNames.PATIENT,
        series_instance_uid=hd.UID(),
        series_number=series_number,
        sop_instance_uid=hd.UID(),
        instance_number=instance_number,
        manufacturer=manufacturer,
        patient_orientation=_patient_orientation(source),
        laterality=records[0].laterality if len({m.laterality for m in records}) == 1 else None,
        transfer_syntax_uid=transfer_syntax,
        contributing_equipment=[a.contributing_equipment() for a in algorithms] or None,
        series_description=SERIES_DESCRIPTION_SC,
        manufacturer_model_name=algorithms[0].name[:64] if algorithms else None,
        software_versions=algorithms[0].version[:64] if algorithms else None,
    )
    if "Laterality" not in sc:  # both knees: type 2C (paired body part), so present but empty
        sc.Laterality = ""
    sc.BurnedInAnnotation = "YES"
    sc.RecognizableVisualFeatures = "NO"
    sc.DerivationDescription = (
        "Overlay of algorithm landmarks, femoral/tibial axes and aTFA; research use, "
        "NOT FOR DIAGNOSTIC USE"
    )
    ref = Dataset()  # General Image module: the image this one was derived from
    ref.ReferencedSOPClassUID = source.SOPClassUID
    ref.ReferencedSOPInstanceUID = source.SOPInstanceUID
    sc.SourceImageSequence = [ref]
    return sc
