"""The secondary capture: the source image with the result drawn on it, made with highdicom.

8-bit PALETTE COLOR by default (one index per pixel into the overlay palette of
:data:`~dicom_node.reports.overlay.PALETTE_INKS`: a grey ramp, the drawing colours and the
text ramps, 16-bit Palette Color Lookup Table entries), or RGB; a new series in the
source's study (patient and study copied by ``SCImage.from_ref_dataset``), Burned In
Annotation YES, a series description saying it is not for diagnostic use, the source
referenced in Source Image Sequence.  The image is
padded (banner above, text panel below) and downscaled when larger than
:data:`~dicom_node.reports.overlay.MAX_SIDE`, so no Pixel Spacing is stated.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import highdicom as hd
import numpy as np
import numpy.typing as npt
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
from dicom_node.reports.overlay import PALETTE_INKS, Inks, display_image, draw_overlay
from inference.measurement import KneeMeasurement

_ORIENTATION_LETTERS = set("LRAPHF")

#: SC encodings by name (``reports.sc_transfer_syntax``): transfer syntax and the
#: photometric interpretation highdicom needs for it (PALETTE COLOR: drawn as palette
#: indices, see :func:`sc_image`). Lossless unless said otherwise.
SC_ENCODINGS: dict[str, tuple[str, str]] = {
    "jpeg2000-lossless": (JPEG2000Lossless, "YBR_RCT"),
    "jpeg-ls-lossless-palette": (JPEGLSLossless, "PALETTE COLOR"),
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


def inks_for(encoding: str) -> Inks:
    """The inks the overlay is drawn with for ``encoding`` (a name of :data:`SC_ENCODINGS`):
    :data:`~dicom_node.reports.overlay.PALETTE_INKS` for a PALETTE COLOR one, else RGB.

    Raises
    ------
    ReportInputError
        When ``encoding`` is not a name of :data:`SC_ENCODINGS`.
    """
    if encoding not in SC_ENCODINGS:
        raise ReportInputError(f"encoding must be one of {sorted(SC_ENCODINGS)}, got {encoding!r}")
    return PALETTE_INKS if SC_ENCODINGS[encoding][1] == "PALETTE COLOR" else Inks.rgb()


def sc_image(source: Dataset, pixels: npt.NDArray[np.uint8], ink: Inks, encoding: str,
             **kwargs: Any) -> hd.sc.SCImage:
    """``hd.sc.SCImage.from_ref_dataset`` of the drawn ``pixels`` in ``encoding``.

    highdicom makes one-sample images MONOCHROME only: a palette image (``ink`` with a
    palette) is encoded as one 8-bit sample per pixel, then declared PALETTE COLOR with
    its Palette Color Lookup Table (the compressed stream does not depend on the
    photometric interpretation of one sample).

    Parameters
    ----------
    source
        The measured image.
    pixels
        What :func:`~dicom_node.reports.overlay.draw_overlay` drew with ``ink``.
    ink
        :func:`inks_for` ``encoding``.
    encoding
        A name of :data:`SC_ENCODINGS`.
    **kwargs
        The other arguments of ``from_ref_dataset`` (series, equipment...).

    Raises
    ------
    ReportInputError
        When ``encoding`` is unknown or ``ink`` does not fit it (palette inks for a
        PALETTE COLOR encoding, RGB inks for the others).
    """
    if encoding not in SC_ENCODINGS:
        raise ReportInputError(f"encoding must be one of {sorted(SC_ENCODINGS)}, got {encoding!r}")
    transfer_syntax, photometric = SC_ENCODINGS[encoding]
    if (ink.palette is None) != (photometric != "PALETTE COLOR"):
        raise ReportInputError(f"ink ({ink.mode}) does not fit encoding {encoding!r}")
    sc = hd.sc.SCImage.from_ref_dataset(
        ref_dataset=source, pixel_array=pixels,
        photometric_interpretation="MONOCHROME2" if ink.palette is not None else photometric,
        bits_allocated=8, coordinate_system=hd.CoordinateSystemNames.PATIENT,
        transfer_syntax_uid=transfer_syntax, **kwargs)
    if ink.palette is not None:
        set_palette(sc, ink.palette)
    return sc


def set_palette(ds: Dataset, palette: npt.NDArray[np.uint8]) -> None:
    """Declare ``ds`` (one 8-bit sample per pixel) PALETTE COLOR with ``palette``.

    Parameters
    ----------
    ds
        The image; its Photometric Interpretation becomes PALETTE COLOR.
    palette
        ``(256, 3)`` uint8 RGB colour of each index; written as 16-bit LUT entries
        (``value * 257``: 255 is full scale), first mapped value 0.

    Raises
    ------
    ReportInputError
        When ``palette`` is not ``(256, 3)`` uint8 or ``ds`` has not one 8-bit sample.
    """
    palette = np.asarray(palette)
    if palette.shape != (256, 3) or palette.dtype != np.uint8:
        raise ReportInputError(f"palette must be (256, 3) uint8, got {palette.shape} "
                               f"{palette.dtype}")
    if int(ds.SamplesPerPixel) != 1 or int(ds.BitsAllocated) != 8:
        raise ReportInputError("ds must have one 8-bit sample per pixel for a palette, got "
                               f"{ds.SamplesPerPixel} x {ds.BitsAllocated} bits")
    ds.PhotometricInterpretation = "PALETTE COLOR"
    for i, colour in enumerate(("Red", "Green", "Blue")):
        setattr(ds, f"{colour}PaletteColorLookupTableDescriptor", [256, 0, 16])
        entries = palette[:, i].astype("<u2") * 257
        setattr(ds, f"{colour}PaletteColorLookupTableData", entries.tobytes())


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
        lossless JPEG-LS of the palette image by default).

    Returns
    -------
    highdicom.sc.SCImage
        Colour secondary capture (PALETTE COLOR or RGB) in the transfer syntax of
        ``encoding``.
    """
    source = check_source(source)
    records = check_measurements(measurements, need_model=False)
    for name, value in (("series_number", series_number), ("instance_number", instance_number)):
        if not isinstance(value, int) or isinstance(value, bool) or not 0 < value < 2**31:
            raise ReportInputError(f"{name} must be a positive integer, got {value!r}")
    if not isinstance(manufacturer, str) or not manufacturer.strip():
        raise ReportInputError(f"manufacturer must be a non-empty string, got {manufacturer!r}")
    ink = inks_for(encoding)
    algorithms = identities(records)
    footer = ", ".join(f"Model {a.name} {a.version}" for a in algorithms)
    pixels = draw_overlay(display_image(source), records, footer, ink)
    sc = sc_image(
        source, pixels, ink, encoding,
        series_instance_uid=hd.UID(),
        series_number=series_number,
        sop_instance_uid=hd.UID(),
        instance_number=instance_number,
        manufacturer=manufacturer,
        patient_orientation=_patient_orientation(source),
        laterality=records[0].laterality if len({m.laterality for m in records}) == 1 else None,
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
