"""The presentation state: the result as switchable graphics on the source image (GSPS).

A Grayscale Softcopy Presentation State (highdicom ``pr``) referencing the measured
image, in a new series of its study. Unlike the burned-in secondary capture, a viewer
draws it over the original pixels and can hide it, layer by layer:

* ``KNEE_AXES``: per passed knee, the femoral axis by FTS and by FNTS and the tibial axis,
  each a 2-point POLYLINE, exactly the SR's axis SCOORDs;
* ``KNEE_LANDMARKS``: every landmark of each knee, one POLYLINE per outline (femur, tibia,
  fibular head, implant parts) through its landmarks in the SR's order: its vertices are
  exactly the points of the SR's landmark MULTIPOINT of that outline (one graphic object
  per outline rather than one POINT per landmark: a fifth of the objects to build and
  write, and the outline as the SC draws it);
* ``KNEE_VALUES``: per knee a TEXT with each aTFA as the SR states it ("Right aTFA FTS
  +4.21 deg valgus"), or "FLAGGED: no reliable measurement", and the research-use notice.

Coordinates are in PIXEL units, whose origin is the top-left corner of the first pixel,
as in the SR (:data:`~dicom_node.reports.measurement_report.PIXEL_CENTRE_OFFSET`).
See ``docs/sr_content.md`` (section "Presentation state").
"""

from __future__ import annotations

from collections.abc import Sequence

import highdicom as hd
import numpy as np
from pydicom import Dataset

from dicom_node.reports._checks import ReportInputError, check_measurements, check_source
from dicom_node.reports.algorithm import identities
from dicom_node.reports.measurement_report import ANGLE_DECIMALS, PIXEL_CENTRE_OFFSET
from dicom_node.reports.overlay import BANNER_TEXT, COLOURS, FLAG_TEXT
from inference.landmarks import CURVES
from inference.measurement import KneeMeasurement

#: The graphic layers, in rendering order: name, description, colour (as the SC draws it).
LAYERS: tuple[tuple[str, str, tuple[int, int, int]], ...] = (
    ("KNEE_LANDMARKS", "knee-node landmarks used for the axes", COLOURS["landmark"]),
    ("KNEE_AXES", "knee-node femoral (FTS, FNTS) and tibial axes", COLOURS["femoral_FTS"]),
    ("KNEE_VALUES", "knee-node aTFA values and notice", COLOURS["text"]),
)
CONTENT_LABEL = "KNEE_ATFA"
CONTENT_DESCRIPTION = "aTFA axes, landmarks, values - NOT FOR DIAGNOSTIC USE"
SERIES_DESCRIPTION_PR = "knee-node aTFA GSPS - NOT FOR DIAGNOSTIC USE"
_SIDE = {"L": "Left", "R": "Right"}
METHODS = ("FTS", "FNTS")


def value_text(m: KneeMeasurement, method: str) -> str:
    """The text of one aTFA as the SR states its value: "Right aTFA FTS +4.21 deg varus"."""
    value = round(float(m.atfa_deg[method]), ANGLE_DECIMALS)
    text = f"{_SIDE[m.laterality]} aTFA {method} {value:+.{ANGLE_DECIMALS}f} deg"
    return f"{text} {m.verdict}" if method == "FNTS" else text  # the verdict is by FNTS


def _pixels(points: object) -> np.ndarray:
    return np.asarray(points, dtype=np.float64).reshape(-1, 2) + PIXEL_CENTRE_OFFSET


def _axes(m: KneeMeasurement) -> list[hd.pr.GraphicObject]:
    """The femoral axes by FTS and FNTS and the tibial axis, as 2-point POLYLINEs."""
    lines = []
    for method in METHODS:
        axes = m.axes(method)  # type: ignore[arg-type]
        lines.append(axes["femoral"])
        if method == METHODS[0]:
            lines.append(axes["tibial"])
    return [
        hd.pr.GraphicObject(
            graphic_type=hd.pr.GraphicTypeValues.POLYLINE,
            graphic_data=_pixels([axis.proximal, axis.distal]),
            units=hd.pr.AnnotationUnitsValues.PIXEL,
        )
        for axis in lines
    ]


def _landmarks(m: KneeMeasurement) -> list[hd.pr.GraphicObject]:
    """Each outline the SR lists as a MULTIPOINT, as a POLYLINE through the same points.

    Parameters
    ----------
    m
        One knee.

    Returns
    -------
    list[highdicom.pr.GraphicObject]
        One POLYLINE per outline of :data:`~inference.landmarks.CURVES` that ``m`` has,
        its vertices the SR's MULTIPOINT of that outline, in the same order.
    """
    return [
        hd.pr.GraphicObject(
            graphic_type=hd.pr.GraphicTypeValues.POLYLINE,
            graphic_data=_pixels(m.landmarks[start:stop]),
            units=hd.pr.AnnotationUnitsValues.PIXEL,
        )
        for start, stop in CURVES.values()
        if stop <= m.landmarks.shape[0]
    ]


def _texts(m: KneeMeasurement, rows: int, columns: int) -> list[hd.pr.TextObject]:
    """The knee's values (or its flag) anchored beside the knee, one line per value."""
    lines = [value_text(m, method) for method in METHODS] if m.quality == "pass" else [
        f"{_SIDE[m.laterality]} knee {FLAG_TEXT}"
    ]
    centre = _pixels(m.landmarks).mean(axis=0)
    step = max(rows / 40.0, 12.0)
    x = float(np.clip(centre[0], 0.0, columns))
    out = []
    for i, line in enumerate(lines):
        y = float(np.clip(centre[1] + step * (i + 2), 0.0, rows))
        out.append(
            hd.pr.TextObject(
                text_value=line,
                units=hd.pr.AnnotationUnitsValues.PIXEL,
                anchor_point=(x, y),
                anchor_point_visible=False,
            )
        )
    return out


def _notice() -> hd.pr.TextObject:
    """The research-use banner, across the top of the display."""
    return hd.pr.TextObject(
        text_value=BANNER_TEXT,
        units=hd.pr.AnnotationUnitsValues.DISPLAY,
        bounding_box=(0.02, 0.01, 0.98, 0.05),
        text_justification=hd.pr.TextJustificationValues.CENTER,
    )


def create_presentation_state(
    source: Dataset,
    measurements: Sequence[KneeMeasurement],
    *,
    series_number: int = 9903,
    instance_number: int = 1,
    manufacturer: str = "knee-node project",
    device_serial_number: str = "knee-node",
    institution_name: str | None = None,
) -> hd.pr.GrayscaleSoftcopyPresentationState:
    """GSPS of the knees measured in ``source``: axes, landmarks and values as graphics.

    Parameters
    ----------
    source
        The measured image (single frame, one sample per pixel); patient and study are
        copied from it and every graphic is drawn on it.
    measurements
        One record per knee. A flagged knee has its landmarks and its flag, no axis.
    series_number, instance_number
        Numbers of the new series (its UID is new) and of the presentation state in it.
    manufacturer, device_serial_number, institution_name
        Equipment and institution of the object (the source's institution by default).

    Returns
    -------
    highdicom.pr.GrayscaleSoftcopyPresentationState
        With the graphic layers of :data:`LAYERS`, the source's VOI window (if any) kept.

    Raises
    ------
    ReportInputError, ReportTypeError
        Subclasses of ValueError/TypeError naming the bad argument.
    """
    source = check_source(source)
    records = check_measurements(measurements, need_model=False)
    for name, value in (("series_number", series_number), ("instance_number", instance_number)):
        if not isinstance(value, int) or isinstance(value, bool) or not 0 < value < 2**31:
            raise ReportInputError(f"{name} must be a positive integer, got {value!r}")
    if int(source.get("SamplesPerPixel", 1)) != 1:
        raise ReportInputError("source must have one sample per pixel for a grayscale state")
    if int(source.get("NumberOfFrames", 1) or 1) != 1:
        raise ReportInputError("source must be a single-frame image")
    layers = [
        hd.pr.GraphicLayer(name, order=i + 1, description=text,
                           display_color=hd.color.CIELabColor.from_rgb(*rgb))
        for i, (name, text, rgb) in enumerate(LAYERS)
    ]
    by_name = {layer.GraphicLayer: layer for layer in layers}
    rows, columns = int(source.Rows), int(source.Columns)
    landmarks = [g for m in records for g in _landmarks(m)]
    axes = [g for m in records if m.quality == "pass" for g in _axes(m)]
    texts = [t for m in records for t in _texts(m, rows, columns)] + [_notice()]
    annotations = [
        hd.pr.GraphicAnnotation([source], by_name["KNEE_LANDMARKS"], graphic_objects=landmarks),
        hd.pr.GraphicAnnotation([source], by_name["KNEE_VALUES"], text_objects=texts),
    ]
    if axes:
        annotations.insert(
            1, hd.pr.GraphicAnnotation([source], by_name["KNEE_AXES"], graphic_objects=axes)
        )
    algorithms = identities(records)
    pr = hd.pr.GrayscaleSoftcopyPresentationState(
        referenced_images=[source],
        series_instance_uid=hd.UID(),
        series_number=series_number,
        sop_instance_uid=hd.UID(),
        instance_number=instance_number,
        manufacturer=manufacturer,
        manufacturer_model_name=(algorithms[0].name[:64] if algorithms else "knee-node"),
        software_versions=(algorithms[0].version[:64] if algorithms else "unknown"),
        device_serial_number=device_serial_number,
        content_label=CONTENT_LABEL,
        content_description=CONTENT_DESCRIPTION,
        graphic_layers=layers,
        graphic_annotations=annotations,
        institution_name=institution_name or source.get("InstitutionName") or None,
        contributing_equipment=[a.contributing_equipment() for a in algorithms] or None,
    )
    pr.SeriesDescription = SERIES_DESCRIPTION_PR
    sides = {m.laterality for m in records}  # General Series: type 2C for a paired body part
    pr.Laterality = sides.pop() if len(sides) == 1 else ""
    return pr
