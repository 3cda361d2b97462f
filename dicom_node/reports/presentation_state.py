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
from functools import lru_cache

import highdicom as hd
import numpy as np
from pydicom import Dataset
from pydicom.sequence import Sequence as DicomSequence

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


@lru_cache(maxsize=64)
def display_colour(rgb: tuple[int, int, int]) -> hd.color.CIELabColor:
    """Graphic Layer Recommended Display CIELab Value of ``rgb``, converted once per colour
    (``hd.pr.GraphicLayer`` copies the value, so one object serves every study).

    Parameters
    ----------
    rgb
        sRGB colour, three integers 0-255.

    Raises
    ------
    ReportInputError
        When ``rgb`` is not three integers 0-255.
    """
    if len(rgb) != 3 or not all(isinstance(v, int) and 0 <= v <= 255 for v in rgb):
        raise ReportInputError(f"rgb must be three integers 0-255, got {rgb!r}")
    return hd.color.CIELabColor.from_rgb(*rgb)


def referenced_image(source: Dataset) -> Dataset:
    """The Referenced Image Sequence item of ``source`` (single frame): its SOP Class and
    Instance UIDs, as ``hd.pr.GraphicAnnotation`` writes them."""
    item = Dataset()
    item.ReferencedSOPClassUID = source.SOPClassUID
    item.ReferencedSOPInstanceUID = source.SOPInstanceUID
    return item


def _check_on_image(points: np.ndarray, units: str, rows: int, columns: int) -> None:
    """Refuse a point off the image (PIXEL: 0..columns x 0..rows) or off the display
    (DISPLAY: 0..1), as ``hd.pr.GraphicAnnotation`` refuses graphic data out of range."""
    x_limit, y_limit = (float(columns), float(rows)) if units == "PIXEL" else (1.0, 1.0)
    x, y = points[:, 0], points[:, 1]
    if x.min() < 0.0 or y.min() < 0.0 or x.max() > x_limit or y.max() > y_limit:
        raise ReportInputError(f"graphic data in {units} units must lie within 0..{x_limit:g} "
                               f"x 0..{y_limit:g}, got x {x.min():g}..{x.max():g}, y "
                               f"{y.min():g}..{y.max():g}")


def _points(graphic: Dataset) -> tuple[np.ndarray, str]:
    """The points of a graphic or text object and their units (anchor, else bounding box)."""
    if "GraphicData" in graphic:
        return np.asarray(graphic.GraphicData, dtype=np.float64).reshape(-1, 2), str(
            graphic.GraphicAnnotationUnits)
    if "AnchorPoint" in graphic:
        return np.asarray(graphic.AnchorPoint, dtype=np.float64).reshape(-1, 2), str(
            graphic.AnchorPointAnnotationUnits)
    box = [*graphic.BoundingBoxTopLeftHandCorner, *graphic.BoundingBoxBottomRightHandCorner]
    return np.asarray(box, dtype=np.float64).reshape(-1, 2), str(
        graphic.BoundingBoxAnnotationUnits)


def graphic_annotation(source: Dataset, layer: str,
                       objects: Sequence[hd.pr.GraphicObject | hd.pr.TextObject],
                       rows: int, columns: int) -> Dataset:
    """A Graphic Annotation Sequence item (PS3.3 C.10.5): ``objects`` on layer ``layer`` of
    the image ``source`` (:func:`referenced_image`), the item ``hd.pr.GraphicAnnotation``
    makes, without its per-annotation checks of the image's IOD (a single-frame image,
    checked once by the caller).

    Parameters
    ----------
    source
        The measured image.
    layer
        Graphic Layer, one of :data:`LAYERS`.
    objects
        Graphic objects or text objects, not both (one annotation per layer).
    rows, columns
        Size of the image: every PIXEL point must lie on it.

    Raises
    ------
    ReportInputError
        When ``layer`` is not a layer of :data:`LAYERS`, ``objects`` is empty or mixed, or a
        point lies off the image.
    """
    if layer not in {name for name, _, _ in LAYERS}:
        raise ReportInputError(f"layer must be one of {[n for n, _, _ in LAYERS]}, got {layer!r}")
    texts = [o for o in objects if isinstance(o, hd.pr.TextObject)]
    graphics = [o for o in objects if isinstance(o, hd.pr.GraphicObject)]
    if not objects or (texts and graphics) or len(texts) + len(graphics) != len(objects):
        kinds = [type(o).__name__ for o in objects]
        raise ReportInputError(f"objects of layer {layer} must be graphic objects or text objects "
                               f"(not both, at least one), got {kinds}")
    for graphic in objects:
        _check_on_image(*_points(graphic), rows, columns)
    item = Dataset()
    item.GraphicLayer = layer
    item.ReferencedImageSequence = DicomSequence([referenced_image(source)])
    if graphics:
        item.GraphicObjectSequence = DicomSequence(graphics)
    else:
        item.TextObjectSequence = DicomSequence(texts)
    return item


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
        hd.pr.GraphicLayer(name, order=i + 1, description=text, display_color=display_colour(rgb))
        for i, (name, text, rgb) in enumerate(LAYERS)
    ]
    rows, columns = int(source.Rows), int(source.Columns)
    landmarks = [g for m in records for g in _landmarks(m)]
    axes = [g for m in records if m.quality == "pass" for g in _axes(m)]
    texts = [t for m in records for t in _texts(m, rows, columns)] + [_notice()]
    annotations = [graphic_annotation(source, "KNEE_LANDMARKS", landmarks, rows, columns)]
    if axes:
        annotations.append(graphic_annotation(source, "KNEE_AXES", axes, rows, columns))
    annotations.append(graphic_annotation(source, "KNEE_VALUES", texts, rows, columns))
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
        institution_name=institution_name or source.get("InstitutionName") or None,
        contributing_equipment=[a.contributing_equipment() for a in algorithms] or None,
    )
    pr.GraphicAnnotationSequence = DicomSequence(annotations)
    pr.SeriesDescription = SERIES_DESCRIPTION_PR
    sides = {m.laterality for m in records}  # General Series: type 2C for a paired body part
    pr.Laterality = sides.pop() if len(sides) == 1 else ""
    return pr
