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
    Style,
    _dashed,
    _font,
    _wrap,
    display_image,
)
from dicom_node.reports.secondary_capture import SC_ENCODINGS, _patient_orientation
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
              origin: tuple[int, int]) -> None:
    ox, oy = origin

    def px(p: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        return (np.asarray(p, dtype=np.float64) + 0.5) * scale + np.array([ox, oy]) - 0.5

    r = style.dot_px
    if lg.quality != "pass":
        for p in lg.landmarks[:leg.N_CORE]:
            if np.all(np.isfinite(p)):
                c = px(p)
                draw.ellipse([c[0] - r, c[1] - r, c[0] + r, c[1] + r], fill=COLOURS["flagged"])
        return
    geom = leg_geometry(lg)
    w = style.line_px
    if "hip_ankle" in geom:
        a, b = (px(p) for p in geom["hip_ankle"][1])
        _dashed(draw, (float(a[0]), float(a[1])), (float(b[0]), float(b[1])),
                LEG_COLOURS["hip_ankle"], max(1, w - 1))
    for key in ("femoral_mech", "tibial_mech"):
        if key in geom:
            a, b = (px(p) for p in geom[key][1])
            draw.line([tuple(a), tuple(b)], fill=LEG_COLOURS[key], width=w)
    for key in ("condylar", "plateau"):
        if key in geom:
            a, b = (px(p) for p in geom[key][1])
            draw.line(list(_extend(a, b, 0.35)), fill=LEG_COLOURS[key], width=w)
    for key in ("head_centre", "knee_centre"):
        if key in geom:
            c = px(geom[key][1][0])
            draw.ellipse([c[0] - 1.5 * r, c[1] - 1.5 * r, c[0] + 1.5 * r, c[1] + 1.5 * r],
                         outline=COLOURS["text"], width=max(1, w // 2))
    a = lg.landmarks[leg.ANKLE_CENTRE]
    if np.all(np.isfinite(a)):
        c = px(a)
        draw.ellipse([c[0] - r, c[1] - r, c[0] + r, c[1] + r], fill=LEG_COLOURS["tibial_mech"])


def draw_full_leg_overlay(gray: npt.NDArray[np.uint8], result: FullLegResult, footer: str
                          ) -> npt.NDArray[np.uint8]:
    """RGB overlay: banner, right-leg panel | image with drawings | left-leg panel, notice.

    Parameters
    ----------
    gray
        ``(rows, columns)`` 8-bit display image of the source (the result's pixel grid).
    result
        The measured legs.
    footer
        Last line of the notice (algorithm name and version).
    """
    rows, cols = gray.shape
    scale = min(1.0, MAX_SIDE / max(rows, cols))
    width, height = max(1, round(cols * scale)), max(1, round(rows * scale))
    image = Image.fromarray(gray).resize((width, height), Image.Resampling.LANCZOS) \
        if scale < 1 else Image.fromarray(gray)
    panel_w = max(160, round(PANEL_FRACTION * height))
    canvas_w = width + 2 * panel_w
    # text size for the canvas (banner + notice add about 12 % to the height)
    style = Style.for_size(canvas_w, round(height * 1.12))
    font = _font(style.font_px)
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    margin = style.font_px // 2
    line_h = round(style.font_px * 1.3)
    banner = _wrap(probe, BANNER_TEXT, font, canvas_w - 2 * margin)
    legend = ("Yellow: femoral mechanical axis; cyan: tibial mechanical axis; white dashed: "
              "hip-ankle line; green: condylar line; orange: plateau line. HKA varus -.")
    notice = "Trained on synthetic images only; must be reviewed by a clinician. " + footer
    bottom_lines = [t for text in (legend, notice)
                    for t in _wrap(probe, text, font, canvas_w - 2 * margin)]
    top = len(banner) * line_h + 2 * margin
    bottom = len(bottom_lines) * line_h + 2 * margin
    canvas = Image.new("RGB", (canvas_w, top + height + bottom), COLOURS["panel"])
    canvas.paste(image.convert("RGB"), (panel_w, top))
    draw = ImageDraw.Draw(canvas)
    draw.rectangle([0, 0, canvas_w, top - 1], fill=COLOURS["banner"])
    for i, text in enumerate(banner):
        draw.text((canvas_w / 2, margin + i * line_h + line_h / 2), text, font=font,
                  fill=COLOURS["text"], anchor="mm")
    for lg in result.legs:
        _draw_leg(draw, lg, scale, style, (panel_w, top))
        x0 = margin if lg.side == "R" else panel_w + width + margin
        colour = COLOURS["text"] if lg.quality == "pass" else COLOURS["flagged"]
        lines = [t for text in leg_lines(lg) for t in _wrap(probe, text, font,
                                                             panel_w - 2 * margin)]
        y = top + margin
        for i, text in enumerate(lines):
            if y + (i + 1) * line_h > top + height:
                break
            draw.text((x0, y + i * line_h), text, font=font,
                      fill=colour if i else COLOURS["text"])
    for i, text in enumerate(bottom_lines):
        draw.text((margin, top + height + margin + i * line_h), text, font=font,
                  fill=COLOURS["text"])
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
    if encoding not in SC_ENCODINGS:
        raise ReportInputError(f"encoding must be one of {sorted(SC_ENCODINGS)}, got {encoding!r}")
    transfer_syntax, photometric = SC_ENCODINGS[encoding]
    algo = AlgorithmIdentity.from_model(result.model)
    pixels = draw_full_leg_overlay(display_image(source), result,
                                   f"Model {algo.name} {algo.version}")
    sc = hd.sc.SCImage.from_ref_dataset(
        ref_dataset=source, pixel_array=pixels, photometric_interpretation=photometric,
        bits_allocated=8, coordinate_system=hd.CoordinateSystemNames.PATIENT,
        series_instance_uid=hd.UID(), series_number=series_number, sop_instance_uid=hd.UID(),
        instance_number=instance_number, manufacturer=manufacturer,
        patient_orientation=_patient_orientation(source), laterality=None,
        transfer_syntax_uid=transfer_syntax,
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
