"""The full-leg secondary capture: mechanical axes, joint lines, values and CPAK class drawn.

A standing full-leg image is about three times taller than wide, so the text does not go
below the image (as in the knee overlay) but into two side panels: the right leg's (image
left) on the left, the left leg's on the right, with the banner above and the notice below.
Fonts and line widths follow :class:`dicom_node.reports.overlay.Style` computed for the whole
canvas shown on a 1920 x 1080 screen, so a 2800 x 8100 source reduced to a screen keeps
about 22-pixel text. A flagged leg is written in red with its reasons and has no axes drawn
(its found landmarks are marked). Research use only, not a medical device.
"""

from __future__ import annotations

import highdicom as hd
import numpy as np
import numpy.typing as npt
from PIL import Image, ImageDraw
from pydicom import Dataset

from dicom_node.reports import full_leg_codes as fc
from dicom_node.reports._checks import ReportInputError, ReportTypeError, check_source
from dicom_node.reports.algorithm import AlgorithmIdentity
from dicom_node.reports.full_leg_report import leg_geometry
from dicom_node.reports.overlay import (
    BANNER_TEXT,
    COLOURS,
    FLAG_TEXT,
    MAX_SIDE,
    RESAMPLE,
    Inks,
    Style,
    _dashed,
    _font,
    display_image,
    draw_text,
    wrap_lines,
)
from dicom_node.reports.secondary_capture import _patient_orientation, inks_for, sc_image
from inference.leg import landmarks as leg
from inference.leg.predictor import MEASUREMENTS, FullLegResult, LegResult

_SIDE = {"L": "Left", "R": "Right"}
#: Colours of the drawn geometry.
LEG_COLOURS = {
    "femoral_mech": (255, 215, 0),  # yellow
    "tibial_mech": (0, 200, 255),  # cyan
    "hip_ankle": (255, 255, 255),  # white dashed (Mikulicz line)
    "condylar": (80, 255, 80),  # green
    "plateau": (255, 150, 40),  # orange
}
#: Side panel width as a fraction of the drawn image height.
PANEL_FRACTION = 0.36


def leg_lines(lg: LegResult) -> list[str]:
    """The panel text of one leg (values rounded as in the SR)."""
    head = f"{_SIDE[lg.side]} leg"
    if lg.quality != "pass":
        return [head, FLAG_TEXT, *lg.flag_reasons]
    out = [head]
    for key, (name, unit, _) in MEASUREMENTS.items():
        v = lg.measurements.get(key, float("nan"))
        if np.isfinite(v):
            u = " mm" if unit == "mm" else " deg"
            out.append(f"{name} {v:+.1f}{u}" if key in ("HKA_deg", "MAD_mm", "JLCA_deg",
                                                         "aHKA_deg", "aTFA_FTS_deg")
                       else f"{name} {v:.1f}{u}")
    if lg.cpak is not None:
        out.append(f"CPAK {lg.cpak.roman}" + (
            " (borderline: " + "/".join(_roman(c) for c in lg.cpak.candidates) + ")"
            if lg.cpak.borderline else ""))
    return out


def _roman(c: int) -> str:
    from inference.leg.geometry import cpak_roman

    return cpak_roman(c)


def _extend(a: npt.NDArray[np.float64], b: npt.NDArray[np.float64], f: float
            ) -> tuple[tuple[float, float], tuple[float, float]]:
    d = b - a
    p, q = a - f * d, b + f * d
    return (float(p[0]), float(p[1])), (float(q[0]), float(q[1]))


def _draw_leg(draw: ImageDraw.ImageDraw, lg: LegResult, scale: float, style: Style,
              origin: tuple[int, int], ink: Inks) -> None:
    ox, oy = origin

    def px(p: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        return (np.asarray(p, dtype=np.float64) + 0.5) * scale + np.array([ox, oy]) - 0.5

    r = style.dot_px
    if lg.quality != "pass":
        for p in lg.landmarks[:leg.N_CORE]:
            if np.all(np.isfinite(p)):
                c = px(p)
                draw.ellipse([c[0] - r, c[1] - r, c[0] + r, c[1] + r], fill=ink(COLOURS["flagged"]))
        return
    geom = leg_geometry(lg)
    w = style.line_px
    if "hip_ankle" in geom:
        a, b = (px(p) for p in geom["hip_ankle"][1])
        _dashed(draw, (float(a[0]), float(a[1])), (float(b[0]), float(b[1])),
                ink(LEG_COLOURS["hip_ankle"]), max(1, w - 1))
    for key in ("femoral_mech", "tibial_mech"):
        if key in geom:
            a, b = (px(p) for p in geom[key][1])
            draw.line([tuple(a), tuple(b)], fill=ink(LEG_COLOURS[key]), width=w)
    for key in ("condylar", "plateau"):
        if key in geom:
            a, b = (px(p) for p in geom[key][1])
            draw.line(list(_extend(a, b, 0.35)), fill=ink(LEG_COLOURS[key]), width=w)
    for key in ("head_centre", "knee_centre"):
        if key in geom:
            c = px(geom[key][1][0])
            draw.ellipse([c[0] - 1.5 * r, c[1] - 1.5 * r, c[0] + 1.5 * r, c[1] + 1.5 * r],
                         outline=ink(COLOURS["text"]), width=max(1, w // 2))
    a = lg.landmarks[leg.ANKLE_CENTRE]
    if np.all(np.isfinite(a)):
        c = px(a)
        draw.ellipse([c[0] - r, c[1] - r, c[0] + r, c[1] + r], fill=ink(LEG_COLOURS["tibial_mech"]))


def draw_full_leg_overlay(gray: npt.NDArray[np.uint8], result: FullLegResult, footer: str,
                          ink: Inks | None = None) -> npt.NDArray[np.uint8]:
    """The overlay: banner, right-leg panel | image with drawings | left-leg panel, notice.

    Parameters
    ----------
    gray
        ``(rows, columns)`` 8-bit display image of the source (the result's pixel grid).
    result
        The measured legs.
    footer
        Last line of the notice (algorithm name and version).
    ink
        RGB (the default) or a palette's inks, as
        :func:`dicom_node.reports.overlay.draw_overlay`.

    Returns
    -------
    numpy.ndarray
        ``(height, width, 3)`` RGB, or ``(height, width)`` indices into ``ink.palette``.
    """
    ink = Inks.rgb() if ink is None else ink
    rows, cols = gray.shape
    scale = min(1.0, MAX_SIDE / max(rows, cols))
    width, height = max(1, round(cols * scale)), max(1, round(rows * scale))
    image = Image.fromarray(gray).resize((width, height), RESAMPLE) \
        if scale < 1 else Image.fromarray(gray)
    panel_w = max(160, round(PANEL_FRACTION * height))
    canvas_w = width + 2 * panel_w
    # text size for the canvas (banner + notice add about 12 % to the height)
    style = Style.for_size(canvas_w, round(height * 1.12))
    font = _font(style.font_px)
    margin = style.font_px // 2
    line_h = round(style.font_px * 1.3)
    banner = wrap_lines(BANNER_TEXT, style.font_px, canvas_w - 2 * margin)
    legend = ("Yellow: femoral mechanical axis; cyan: tibial mechanical axis; white dashed: "
              "hip-ankle line; green: condylar line; orange: plateau line. HKA varus -.")
    notice = "Trained on synthetic images only; must be reviewed by a clinician. " + footer
    bottom_lines = [t for text in (legend, notice)
                    for t in wrap_lines(text, style.font_px, canvas_w - 2 * margin)]
    top = len(banner) * line_h + 2 * margin
    bottom = len(bottom_lines) * line_h + 2 * margin
    canvas = Image.new(ink.mode, (canvas_w, top + height + bottom), ink(COLOURS["panel"]))
    canvas.paste(ink.image(image), (panel_w, top))
    draw = ImageDraw.Draw(canvas)
    draw.rectangle([0, 0, canvas_w, top - 1], fill=ink(COLOURS["banner"]))
    for i, text in enumerate(banner):
        draw_text(draw, (canvas_w / 2, margin + i * line_h + line_h / 2), text, font,
                  COLOURS["text"], COLOURS["banner"], ink, anchor="mm")
    for lg in result.legs:
        _draw_leg(draw, lg, scale, style, (panel_w, top), ink)
        x0 = margin if lg.side == "R" else panel_w + width + margin
        colour = COLOURS["text"] if lg.quality == "pass" else COLOURS["flagged"]
        lines = [t for text in leg_lines(lg)
                 for t in wrap_lines(text, style.font_px, panel_w - 2 * margin)]
        y = top + margin
        for i, text in enumerate(lines):
            if y + (i + 1) * line_h > top + height:
                break
            draw_text(draw, (x0, y + i * line_h), text, font,
                      colour if i else COLOURS["text"], COLOURS["panel"], ink)
    for i, text in enumerate(bottom_lines):
        draw_text(draw, (margin, top + height + margin + i * line_h), text, font,
                  COLOURS["text"], COLOURS["panel"], ink)
    return np.asarray(canvas, dtype=np.uint8)


def build_full_leg_sc(
    source: Dataset,
    result: FullLegResult,
    *,
    series_number: int = 9912,
    instance_number: int = 1,
    manufacturer: str = "knee-node project",
    encoding: str = "explicit",
) -> hd.sc.SCImage:
    """Secondary capture of ``source`` with the full-leg result drawn (see the module doc).

    Parameters
    ----------
    source
        The measured image (MONOCHROME1/2, single frame).
    result
        :meth:`inference.leg.predictor.FullLegPredictor.measure` of ``source``.
    series_number, instance_number
        Numbers of the new series (new UID) and of the image in it.
    manufacturer
        Manufacturer of the SC.
    encoding
        A name of :data:`dicom_node.reports.secondary_capture.SC_ENCODINGS`.

    Raises
    ------
    ReportInputError, ReportTypeError
        A bad argument, named.
    """
    source = check_source(source)
    if not isinstance(result, FullLegResult):
        raise ReportTypeError(f"result must be a FullLegResult, got {type(result).__name__}")
    if (int(source.Rows), int(source.Columns)) != tuple(result.image_shape):
        raise ReportInputError(f"result was measured on a {result.image_shape} image, source is "
                               f"{(int(source.Rows), int(source.Columns))}")
    for name, value in (("series_number", series_number), ("instance_number", instance_number)):
        if not isinstance(value, int) or isinstance(value, bool) or not 0 < value < 2**31:
            raise ReportInputError(f"{name} must be a positive integer, got {value!r}")
    if not isinstance(manufacturer, str) or not manufacturer.strip():
        raise ReportInputError(f"manufacturer must be a non-empty string, got {manufacturer!r}")
    ink = inks_for(encoding)
    algo = AlgorithmIdentity.from_model(result.model)
    pixels = draw_full_leg_overlay(display_image(source), result,
                                   f"Model {algo.name} {algo.version}", ink)
    sc = sc_image(
        source, pixels, ink, encoding,
        series_instance_uid=hd.UID(), series_number=series_number, sop_instance_uid=hd.UID(),
        instance_number=instance_number, manufacturer=manufacturer,
        patient_orientation=_patient_orientation(source), laterality=None,
        contributing_equipment=[algo.contributing_equipment()],
        series_description=fc.SERIES_DESCRIPTION_SC,
        manufacturer_model_name=algo.name[:64], software_versions=algo.version[:64],
    )
    if "Laterality" not in sc:  # both legs: type 2C, present but empty
        sc.Laterality = ""
    sc.BurnedInAnnotation = "YES"
    sc.RecognizableVisualFeatures = "NO"
    sc.DerivationDescription = ("Overlay of algorithm full-leg landmarks, mechanical axes, joint "
                                "lines, alignment values and CPAK class; research use, NOT FOR "
                                "DIAGNOSTIC USE")
    ref = Dataset()
    ref.ReferencedSOPClassUID = source.SOPClassUID
    ref.ReferencedSOPInstanceUID = source.SOPInstanceUID
    sc.SourceImageSequence = [ref]
    return sc
