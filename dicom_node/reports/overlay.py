"""Drawing of the overlay: display image, landmarks, axes, angle, verdict and banner.

Pure image work (numpy + Pillow, no DICOM writing): :func:`display_image` turns the source
pixels into 8-bit as a viewer would show them, :func:`draw_overlay` draws the result.
Sizes scale with the image so text stays legible on a 1080p screen showing the whole image.

The overlay is drawn either in RGB or, for a PALETTE COLOR secondary capture, as 8-bit
indices into :data:`PALETTE_INKS` (:class:`Inks`): a grey ramp of :data:`PALETTE_GREYS` levels
for the image, one entry per drawing colour and, for text drawn on a coloured background,
a ramp of :data:`TEXT_STEPS` blends so the text stays antialiased. One sample per pixel
instead of three: the lossless encoder takes less than half the time.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageDraw, ImageFont
from pydicom import Dataset
from pydicom.pixels import apply_modality_lut, apply_voi_lut

from dicom_node.reports._checks import ReportInputError
from inference.alignment import Axis
from inference.landmarks import CURVES, PLATEAU_LATERAL_CORNER, PLATEAU_MEDIAL_CORNER
from inference.measurement import KneeMeasurement, value_text

BANNER_TEXT = "ALGORITHM RESULT - RESEARCH USE - NOT FOR DIAGNOSTIC USE"
FLAG_TEXT = "FLAGGED: no reliable measurement"
#: Longest side of the drawn image; larger sources are downscaled to it.
MAX_SIDE = 1536
#: Filter of that downscale (Pillow's antialiased bilinear, a triangle filter as wide as
#: the scale): on a 1963 x 1134 knee reduced to 1536 x 887 it is within 5 grey levels of
#: Lanczos at 99 % of the pixels (mean 1.2, at most 28 at sharp edges) and takes about
#: 60 % less time (bicubic: within 2, 30 % less). Viewers show the SC reduced again.
RESAMPLE = Image.Resampling.BILINEAR
#: Text height on a 1920x1080 screen showing the whole overlay, in screen pixels.
SCREEN_TEXT_PX = 22

RGB = tuple[int, int, int]
COLOURS: dict[str, RGB] = {
    "femoral_FTS": (255, 215, 0),  # yellow, solid
    "femoral_FNTS": (255, 64, 255),  # magenta, dashed
    "tibial": (0, 200, 255),  # cyan
    "landmark": (80, 255, 80),  # green
    "implant": (255, 150, 40),  # orange
    "flagged": (255, 70, 70),  # red
    "banner": (190, 0, 0),
    "text": (255, 255, 255),
    "panel": (0, 0, 0),
}
_SIDE = {"L": "Left", "R": "Right"}

#: Text colour over background pairs drawn antialiased on a palette canvas, each with a
#: ramp of blends of its own (white on black is the grey ramp itself).
TEXT_PAIRS: tuple[tuple[RGB, RGB], ...] = (
    (COLOURS["text"], COLOURS["banner"]),
    (COLOURS["flagged"], COLOURS["panel"]),
)
#: Steps of a text ramp: the background, TEXT_STEPS - 1 blends, the text colour.
TEXT_STEPS = 8


@dataclass(frozen=True)
class Inks:
    """Colours as a canvas takes them: RGB tuples on an ``"RGB"`` canvas, or indices into
    ``palette`` on an ``"L"`` canvas (a PALETTE COLOR image).

    Attributes
    ----------
    mode
        Pillow mode of the canvas, ``"RGB"`` or ``"L"``.
    palette
        ``(256, 3)`` uint8 colours of the indices (``None`` for RGB).
    greys
        Levels of the grey ramp at the start of ``palette`` (index 0 black, ``greys - 1``
        white); 0 for RGB.
    text_steps
        Blends of each text ramp in ``palette``.
    """

    mode: str
    palette: npt.NDArray[np.uint8] | None = None
    greys: int = 0
    text_steps: int = TEXT_STEPS
    #: First index of each colour of ``palette`` (filled from it).
    indices: dict[RGB, int] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.palette is not None and not self.indices:
            for i in range(self.palette.shape[0] - 1, self.greys - 1, -1):  # first one wins
                self.indices[_rgb(self.palette[i])] = i
            self.indices.update({(0, 0, 0): 0, (255, 255, 255): self.greys - 1})

    @classmethod
    def rgb(cls) -> Inks:
        """Inks of an RGB canvas: every colour is itself."""
        return cls("RGB")

    @classmethod
    def indexed(cls, colours: Sequence[RGB], text_pairs: Sequence[tuple[RGB, RGB]] = TEXT_PAIRS,
                text_steps: int = TEXT_STEPS) -> Inks:
        """Inks of an 8-bit palette canvas: a grey ramp, a ramp per text pair, the colours.

        Parameters
        ----------
        colours
            Every colour the drawing uses (greys are on the ramp; duplicates are dropped).
        text_pairs
            ``(text colour, background)`` pairs drawn antialiased: each adds
            ``text_steps + 1`` entries (white or black on black or white need none).
        text_steps
            Blends between background and text colour of each ramp.

        Raises
        ------
        ReportInputError
            When the colours and ramps leave fewer than 128 grey levels.
        """
        if not isinstance(text_steps, int) or text_steps < 1:
            raise ReportInputError(f"text_steps must be a positive integer, got {text_steps!r}")
        ramps = [_blends(fg, bg, text_steps) for fg, bg in text_pairs if not _on_grey_ramp(fg, bg)]
        extra = [c for r in ramps for c in r]
        solids = [c for c in dict.fromkeys(_rgb(c) for c in colours)
                  if not _is_grey_end(c) and c not in extra]
        greys = 256 - len(extra) - len(solids)
        if greys < 128:
            raise ReportInputError(f"colours and text_pairs leave {greys} grey levels of 256 "
                                   "(at least 128 needed)")
        ramp = np.round(np.arange(greys) * 255.0 / (greys - 1)).astype(np.uint8)
        palette = np.concatenate([np.repeat(ramp[:, None], 3, axis=1),
                                  np.asarray(extra + solids, dtype=np.uint8).reshape(-1, 3)])
        return cls("L", palette, greys, text_steps)

    def __call__(self, colour: RGB) -> RGB | int:
        """The ink of ``colour``: itself on RGB, else its first index in the palette."""
        if self.palette is None:
            return colour
        index = self.indices.get(tuple(colour))  # type: ignore[arg-type]
        if index is None:
            raise ReportInputError(f"colour {colour!r} is not in the overlay palette")
        return index

    def text(self, fg: RGB, bg: RGB) -> tuple[RGB | int | None, RGB | int]:
        """Inks to draw antialiased ``fg`` text on ``bg``: the background ink the text
        area must have first (``None``: the canvas's ``bg`` will do) and the text's."""
        if self.palette is None or _on_grey_ramp(fg, bg):
            return None, self(fg)
        ramp = np.asarray(_blends(fg, bg, self.text_steps), dtype=np.uint8)
        tail = self.palette[self.greys:]
        for start in range(tail.shape[0] - ramp.shape[0] + 1):
            if np.array_equal(tail[start:start + ramp.shape[0]], ramp):
                return self.greys + start, self.greys + start + ramp.shape[0] - 1
        raise ReportInputError(f"text colour {fg!r} on {bg!r} has no ramp in the overlay palette")

    def image(self, gray: Image.Image) -> Image.Image:
        """The 8-bit display image ``gray`` as this canvas's mode (grey levels as indices)."""
        if self.palette is None:
            return gray.convert("RGB")
        return gray.point(np.round(np.arange(256) * (self.greys - 1) / 255.0)
                          .astype(np.uint8).tolist())


def _is_grey_end(colour: RGB) -> bool:
    return tuple(colour) in ((0, 0, 0), (255, 255, 255))


def _on_grey_ramp(fg: RGB, bg: RGB) -> bool:
    """Whether ``fg`` text on ``bg`` blends along the grey ramp (black and white)."""
    return _is_grey_end(fg) and _is_grey_end(bg) and tuple(fg) != tuple(bg)


def _blends(fg: RGB, bg: RGB, steps: int) -> list[RGB]:
    """``bg``, ``steps - 1`` blends and ``fg``: the colours of ``fg`` text at coverage
    k / ``steps`` on ``bg`` (Pillow blends an ``"L"`` canvas linearly between two indices)."""
    a, b = np.asarray(bg, float), np.asarray(fg, float)
    return [_rgb(np.round(a + (b - a) * k / steps)) for k in range(steps + 1)]


def _rgb(colour: Sequence[float] | npt.NDArray[np.float64]) -> RGB:
    """``colour`` as an ``(r, g, b)`` tuple of ints 0-255.

    Raises
    ------
    ReportInputError
        When ``colour`` is not three values in 0-255.
    """
    values = [int(v) for v in colour]
    if len(values) != 3 or not all(0 <= v <= 255 for v in values):
        raise ReportInputError(f"colour must be three values 0-255, got {colour!r}")
    return values[0], values[1], values[2]


#: The palette of the knee and full-leg overlays (their colours are those of COLOURS).
PALETTE_INKS = Inks.indexed(list(COLOURS.values()))
#: Grey levels of :data:`PALETTE_INKS`.
PALETTE_GREYS = PALETTE_INKS.greys


def display_image(source: Dataset) -> npt.NDArray[np.uint8]:
    """The source as an 8-bit grey image as shown: modality LUT, VOI window, MONOCHROME1 inverted.

    Without a VOI window in the dataset the 0.5-99.5 percentile range is used.

    Every step is a function of the stored value alone, so for integer pixel data the
    chain runs once per distinct stored value (a table of at most 2**16 entries) and the
    image is one lookup into that table: the same values as running the chain on every
    pixel, at a fraction of the cost (``knee-node bench reports``).
    """
    photometric = str(source.get("PhotometricInterpretation", ""))
    if photometric not in ("MONOCHROME1", "MONOCHROME2"):
        raise ReportInputError(f"source must be MONOCHROME1/2 for the overlay, got {photometric!r}")
    raw = source.pixel_array
    if raw.ndim != 2:
        raise ReportInputError(f"source must be a single-frame image, pixel shape {raw.shape}")
    if raw.dtype.kind in "iu" and raw.dtype.itemsize <= 2 and raw.size > 0:
        low = int(raw.min())
        index = raw if low == 0 and raw.dtype.kind == "u" else raw.astype(np.int32) - low
        stored = np.arange(low, int(raw.max()) + 1).astype(raw.dtype)
        # the histogram only for the percentile range (no VOI window in the dataset)
        counts = None if _has_voi(source) else np.bincount(index.ravel(), minlength=stored.size)
        return _look_up(_to_display(source, stored, photometric, counts), index)
    return _to_display(source, raw, photometric, None)


#: Rows looked up at a time by :func:`_look_up`.
LOOKUP_ROWS = 64


def _look_up(table: npt.NDArray[np.uint8], index: npt.NDArray[np.integer]
             ) -> npt.NDArray[np.uint8]:
    """``table[index]`` for a 2-D ``index`` whose every value is a valid index of ``table``.

    numpy takes with a machine-integer copy of the indices (8 bytes each: 18 MB for a
    1963 x 1134 image), so the lookup runs :data:`LOOKUP_ROWS` rows at a time, the copy
    staying in cache (about a third of the time of one ``np.take``); and with ``"wrap"``
    mode, which skips the bounds check of the default ``"raise"`` (every index is in
    range: 0 .. max - min, the table's size - 1).

    Raises
    ------
    ReportInputError
        When ``index`` is not 2-D.
    """
    if index.ndim != 2:
        raise ReportInputError(f"index must be a 2-D image, got shape {index.shape}")
    out = np.empty(index.shape, dtype=np.uint8)
    for start in range(0, index.shape[0], LOOKUP_ROWS):
        rows = slice(start, start + LOOKUP_ROWS)
        np.take(table, index[rows], mode="wrap", out=out[rows])
    return out


def _has_voi(source: Dataset) -> bool:
    """Whether ``source`` states a VOI window or LUT (else the percentile range is used)."""
    return "WindowCenter" in source or "VOILUTSequence" in source


def _to_display(source: Dataset, stored: npt.NDArray[np.generic], photometric: str,
                counts: npt.NDArray[np.intp] | None) -> npt.NDArray[np.uint8]:
    """8-bit display values of ``stored`` values; ``counts``: how often each one occurs in
    the image (for the percentile range), None when ``stored`` is the image itself or the
    source has a VOI window (no percentiles needed)."""
    values = apply_modality_lut(stored, source).astype(np.float64)
    if _has_voi(source):
        values = apply_voi_lut(values, source, index=0).astype(np.float64)
        lo, hi = _voi_output_range(source, values)
    elif counts is None:
        lo, hi = (float(v) for v in np.percentile(values, [0.5, 99.5]))
    else:
        lo, hi = _weighted_percentiles(values, counts, (0.5, 99.5))
    scaled = np.clip((values - lo) / max(hi - lo, 1e-9), 0.0, 1.0)
    if photometric == "MONOCHROME1":
        scaled = 1.0 - scaled
    return np.round(scaled * 255.0).astype(np.uint8)


def _weighted_percentiles(values: npt.NDArray[np.float64], counts: npt.NDArray[np.intp],
                          q: tuple[float, float]) -> tuple[float, float]:
    """``np.percentile`` (linear method) of the image whose pixels take ``values[i]``
    ``counts[i]`` times, without expanding it."""
    order = np.argsort(values, kind="stable")
    ordered, cumulative = values[order], np.cumsum(counts[order])
    n = int(cumulative[-1])

    def at(rank: int) -> float:  # the value of rank ``rank`` (0-based) in the sorted image
        return float(ordered[np.searchsorted(cumulative, rank, side="right")])

    out = []
    for percent in q:  # numpy's "linear" method, with numpy's own arithmetic
        quantile = percent / 100.0
        position = n * quantile + (1.0 + quantile * (1.0 - 1.0 - 1.0)) - 1.0
        below = int(math.floor(position))
        a, b = at(max(below, 0)), at(min(below + 1, n - 1))
        t = position - below
        diff = b - a
        out.append(b - diff * (1.0 - t) if t >= 0.5 else a + diff * t)
    return out[0], out[1]


def _voi_output_range(source: Dataset, values: npt.NDArray[np.float64]) -> tuple[float, float]:
    """Output range of pydicom's VOI step: the LUT's range, or the window's y_min..y_max."""
    if "VOILUTSequence" in source and "WindowCenter" not in source:
        bits = int(source.VOILUTSequence[0].LUTDescriptor[2])
        return 0.0, float(2**bits - 1)
    bits = int(source.get("BitsStored", 16))
    if int(source.get("PixelRepresentation", 0)) == 0:
        lo, hi = 0.0, float(2**bits - 1)
    else:
        lo, hi = float(-(2 ** (bits - 1))), float(2 ** (bits - 1) - 1)
    slope = float(source.get("RescaleSlope", 1.0) or 1.0)
    intercept = float(source.get("RescaleIntercept", 0.0) or 0.0)
    rescaled = "RescaleSlope" in source or "RescaleIntercept" in source
    if "ModalityLUTSequence" not in source and rescaled:
        lo, hi = sorted((lo * slope + intercept, hi * slope + intercept))
    return lo, hi


@dataclass(frozen=True)
class Style:
    """Sizes for one overlay, from the drawn image size."""

    font_px: int
    line_px: int
    dot_px: int

    @classmethod
    def for_size(cls, width: int, height: int) -> Style:
        """Text about :data:`SCREEN_TEXT_PX` high when the image fits a 1920x1080 screen."""
        screen_scale = min(1920 / width, 1080 * 0.78 / height)  # image ~78 % of the canvas
        font = max(12, math.ceil(SCREEN_TEXT_PX / screen_scale))
        return cls(font_px=font, line_px=max(2, round(font / 8)), dot_px=max(2, round(font / 7)))


#: Fonts loaded per thread (a FreeType face must not be used by two threads at once).
_PER_THREAD = threading.local()
#: Font sizes kept per thread before the cache is emptied (a node sees a few image sizes).
_FONTS_KEPT = 32


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """Pillow's default font at ``size`` px, loaded once per thread and size."""
    fonts: dict[int, ImageFont.FreeTypeFont | ImageFont.ImageFont]
    fonts = _PER_THREAD.__dict__.setdefault("fonts", {})
    if size not in fonts:
        if len(fonts) >= _FONTS_KEPT:
            fonts.clear()
        fonts[size] = ImageFont.load_default(size=size)
    return fonts[size]


@lru_cache(maxsize=512)
def wrap_lines(text: str, font_px: int, width: float) -> tuple[str, ...]:
    """``text`` broken into lines no wider than ``width`` px in :func:`_font` ``font_px``
    (words kept whole), once per text, size and width: the banner, legend and notice are
    the same on every overlay of a size.

    Parameters
    ----------
    text
        Words separated by white space.
    font_px
        Font size, px.
    width
        Widest line, px.
    """
    probe = _PER_THREAD.__dict__.get("probe")
    if probe is None:
        probe = _PER_THREAD.probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    return tuple(_wrap(probe, text, _font(font_px), width))


def _wrap(draw: ImageDraw.ImageDraw, text: str, font: ImageFont.FreeTypeFont | ImageFont.ImageFont,
          width: float) -> list[str]:
    lines: list[str] = []
    current = ""
    for word in text.split():
        trial = f"{current} {word}".strip()
        if current and draw.textlength(trial, font=font) > width:
            lines.append(current)
            current = word
        else:
            current = trial
    return [*lines, current] if current else lines


def _extend(axis: Axis, fraction: float) -> tuple[tuple[float, float], tuple[float, float]]:
    p, d = np.asarray(axis.proximal), np.asarray(axis.distal)
    v = (d - p) * fraction
    return tuple(p - v), tuple(d + v)


def axis_intersection(femoral: Axis, tibial: Axis, joint_width: float) -> tuple[float, float]:
    """Where the femoral and tibial axes meet (image pixels): their lines' intersection.

    Nearly parallel axes (a near-zero angle) meet far away or never: then the point of the
    femoral line nearest the tibial axis's proximal end is used, so the drawn axes still
    meet at the joint. ``joint_width`` (tibial plateau width) bounds "far".
    """
    p, u = np.asarray(femoral.proximal, float), femoral.direction
    q, v = np.asarray(tibial.proximal, float), tibial.direction
    cross = u[0] * v[1] - u[1] * v[0]
    nearest = p + u * float(np.dot(q - p, u))
    if abs(cross) > 1e-6:
        t = ((q[0] - p[0]) * v[1] - (q[1] - p[1]) * v[0]) / cross
        x = p + u * t
        if np.linalg.norm(x - q) <= 1.5 * max(joint_width, 1.0):
            return float(x[0]), float(x[1])
    return float(nearest[0]), float(nearest[1])


def _arc(draw: ImageDraw.ImageDraw, centre: tuple[float, float], a: npt.NDArray[np.float64],
         b: npt.NDArray[np.float64], radius: float, colour: RGB | int, width: int) -> None:
    """The smaller arc from direction ``a`` to direction ``b`` around ``centre``."""
    start = math.degrees(math.atan2(a[1], a[0]))
    end = math.degrees(math.atan2(b[1], b[0]))
    if (end - start) % 360 > 180:
        start, end = end, start
    box = [centre[0] - radius, centre[1] - radius, centre[0] + radius, centre[1] + radius]
    draw.arc(box, start, end, fill=colour, width=width)


def _dashed(draw: ImageDraw.ImageDraw, a: tuple[float, float], b: tuple[float, float],
            colour: RGB | int, width: int) -> None:
    length = math.dist(a, b)
    dash = 4.0 * width
    steps = max(1, int(length // dash))
    def at(t: float) -> tuple[float, float]:
        return (a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t)

    for i in range(0, steps, 2):
        draw.line([at(i / steps), at(min(1.0, (i + 1) / steps))], fill=colour, width=width)


def knee_summary(m: KneeMeasurement) -> str:
    """One line: side, both angles and the verdict, or the flag without any angle."""
    side = _SIDE.get(m.laterality, m.laterality)
    if m.quality != "pass":
        reasons = "; ".join(m.flag_reasons) or "quality check failed"
        return f"{side} knee: {FLAG_TEXT} ({reasons})"
    fts, fnts = angle_texts(m)
    return (f"{side} knee: aTFA FTS {fts}, FNTS {fnts} -> {m.verdict.upper()} "
            f"(confidence {m.confidence:.2f})")


def angle_texts(m: KneeMeasurement) -> tuple[str, str]:
    """The aTFA by FTS and by FNTS as drawn: "+6.2° ± 0.8°" (value and the half-width of
    its 95 % interval), or "+6.2°" when the record has no interval."""
    a, hw = m.atfa_deg, m.atfa_ci95_deg
    return value_text(a["FTS"], hw.get("FTS")), value_text(a["FNTS"], hw.get("FNTS"))


def label_lines(m: KneeMeasurement) -> list[str]:
    """The lines of the label drawn beside a knee: side, both angles and the verdict, or
    the flag without any angle."""
    side = f"{_SIDE.get(m.laterality, m.laterality)} knee"
    if m.quality != "pass":
        return [side, "FLAGGED:", "no reliable", "measurement"]
    fts, fnts = angle_texts(m)
    return [side, f"aTFA FTS {fts}", f"FNTS {fnts}", m.verdict.upper()]


def _draw_knee(draw: ImageDraw.ImageDraw, m: KneeMeasurement, scale: float, style: Style,
               offset_y: int, size: tuple[int, int], ink: Inks) -> None:
    def to_canvas(p: Sequence[float]) -> tuple[float, float]:
        return ((p[0] + 0.5) * scale - 0.5, (p[1] + 0.5) * scale - 0.5 + offset_y)

    passed = m.quality == "pass"
    for curve, (start, stop) in CURVES.items():
        if stop > m.landmarks.shape[0]:
            continue
        colour = COLOURS["flagged"] if not passed else (
            COLOURS["implant"] if curve.startswith("implant") else COLOURS["landmark"])
        pts = [to_canvas(p) for p in m.landmarks[start:stop]]
        draw.line(pts, fill=ink(colour), width=max(1, style.line_px // 2))
        r = style.dot_px
        for x, y in pts:
            draw.ellipse([x - r, y - r, x + r, y + r], fill=ink(colour))
    font = _font(style.font_px)
    # Label beside the femoral condyles, on the lateral side (outward for two knees side by side).
    medial, lateral = m.landmarks[PLATEAU_MEDIAL_CORNER], m.landmarks[PLATEAU_LATERAL_CORNER]
    width = float(np.linalg.norm(lateral - medial))
    outward = 1.0 if lateral[0] >= medial[0] else -1.0
    anchor = to_canvas((float(lateral[0]) + outward * 0.25 * width,
                        float(lateral[1]) - 0.6 * width))
    if passed:
        # each femoral axis and the tibial axis drawn to where they meet, the angle as an arc
        tibial = m.axes("FTS")["tibial"]
        meet = axis_intersection(m.axes("FTS")["femoral"], tibial, width)
        for method in ("FNTS", "FTS"):  # FTS last: the arc is FTS's
            femoral = m.axes(method)["femoral"]
            here = axis_intersection(femoral, tibial, width)
            far, _ = _extend(femoral, 0.15)
            a, b = to_canvas(far), to_canvas(here)
            if method == "FTS":  # wide solid line under the dashed FNTS one: both stay visible
                draw.line([a, b], fill=ink(COLOURS["femoral_FTS"]), width=2 * style.line_px)
            else:
                _dashed(draw, a, b, ink(COLOURS["femoral_FNTS"]), style.line_px)
        _, end = _extend(tibial, 0.35)
        draw.line([to_canvas(meet), to_canvas(end)], fill=ink(COLOURS["tibial"]),
                  width=2 * style.line_px)
        centre = to_canvas(meet)
        radius = 1.1 * width * scale  # long arms: a few degrees still show as a wedge
        u = m.axes("FTS")["femoral"].direction  # proximal -> distal: the femoral axis continued
        _dashed(draw, centre, (centre[0] + u[0] * radius * 1.2, centre[1] + u[1] * radius * 1.2),
                ink(COLOURS["femoral_FTS"]), style.line_px)
        _arc(draw, centre, u, tibial.direction, radius, ink(COLOURS["text"]), 2 * style.line_px)
        # the value beside the arc, outward (off the bone), joined to the arc by a leader
        anchor = (centre[0] + outward * (0.9 * width * scale), centre[1] + radius)
        mid = u + tibial.direction
        mid = mid / max(float(np.linalg.norm(mid)), 1e-9)
        draw.line([(centre[0] + mid[0] * radius, centre[1] + mid[1] * radius), anchor],
                  fill=ink(COLOURS["text"]), width=max(1, style.line_px // 2))
        colour = COLOURS["text"]
    else:
        colour = COLOURS["flagged"]
    _label(draw, anchor, outward, label_lines(m), font, colour, style, (offset_y, size), ink)


def _label(draw: ImageDraw.ImageDraw, anchor: tuple[float, float], outward: float, lines: list[str],
           font: ImageFont.FreeTypeFont | ImageFont.ImageFont, colour: RGB, style: Style,
           frame: tuple[int, tuple[int, int]], ink: Inks) -> None:
    """Lines on a black box beside ``anchor`` (on the ``outward`` side), kept inside the image."""
    offset_y, size = frame
    line_h = round(style.font_px * 1.25)
    half_w = max(draw.textlength(t, font=font) for t in lines) / 2
    half_h = line_h * len(lines) / 2
    pad = style.font_px // 4
    x = anchor[0] + outward * (half_w + pad)
    x = min(max(x, half_w + pad), size[0] - half_w - pad)
    y = min(max(anchor[1], offset_y + half_h + pad), offset_y + size[1] - half_h - pad)
    base, text_ink = ink.text(colour, COLOURS["panel"])
    draw.rectangle([x - half_w - pad, y - half_h - pad, x + half_w + pad, y + half_h + pad],
                   fill=ink(COLOURS["panel"]) if base is None else base)
    for i, text in enumerate(lines):
        draw.text((x, y - half_h + (i + 0.5) * line_h), text, font=font, fill=text_ink,
                  anchor="mm")


def draw_text(draw: ImageDraw.ImageDraw, xy: tuple[float, float], text: str,
              font: ImageFont.FreeTypeFont | ImageFont.ImageFont, colour: RGB, background: RGB,
              ink: Inks, anchor: str | None = None) -> None:
    """``text`` in ``colour``, antialiased on the solid ``background`` under it.

    On a palette canvas a text ramp's background index is painted under the text first
    (the same colour as ``background``), so Pillow's blend runs along the ramp.
    """
    base, text_ink = ink.text(colour, background)
    if base is not None:
        draw.rectangle(draw.textbbox(xy, text, font=font, anchor=anchor), fill=base)
    draw.text(xy, text, font=font, fill=text_ink, anchor=anchor)


#: Rendered text patches kept: the banner, legend and notice lines of a few overlay sizes.
_PATCHES_KEPT = 64
#: Inks whose text patches are kept, by name (any other ink is drawn every time).
_PATCH_INKS = {"palette": PALETTE_INKS, "rgb": Inks.rgb()}


def _ink_name(ink: Inks) -> str | None:
    if ink.palette is None:
        return "rgb" if ink.mode == "RGB" else None
    return "palette" if ink is PALETTE_INKS else None


@lru_cache(maxsize=_PATCHES_KEPT)
def _text_patch(text: str, font_px: int, colour: RGB, background: RGB, ink_name: str,
                start: tuple[float, float], anchor: str | None
                ) -> tuple[Image.Image, tuple[int, int]]:
    """``text`` as :func:`draw_text` draws it at a point whose fractional part is
    ``start``, on a patch of solid ``background``, and the patch's margins (mx, my): drawn
    at (x, y) on a canvas, the patch's pixel (i, j) is the canvas's pixel
    (int(x) - mx + i, int(y) - my + j), where the canvas is ``background`` too (Pillow
    places text at ``int(x)`` plus offsets that depend on the fractional part only)."""
    ink = _PATCH_INKS[ink_name]
    font = _font(font_px)
    probe = ImageDraw.Draw(Image.new(ink.mode, (1, 1)))
    left, top, right, bottom = probe.textbbox(start, text, font=font, anchor=anchor)
    mx, my = 2 + math.ceil(max(0.0, -left)), 2 + math.ceil(max(0.0, -top))
    patch = Image.new(ink.mode, (mx + math.ceil(right) + 2, my + math.ceil(bottom) + 2),
                      ink(background))
    draw_text(ImageDraw.Draw(patch), (mx + start[0], my + start[1]), text, font, colour,
              background, ink, anchor)
    return patch, (mx, my)


def draw_text_patch(canvas: Image.Image, draw: ImageDraw.ImageDraw, xy: tuple[float, float],
                    text: str, font_px: int, colour: RGB, background: RGB, ink: Inks,
                    anchor: str | None = None) -> None:
    """:func:`draw_text` of ``text`` in :func:`_font` ``font_px`` on ``canvas`` (``draw`` its
    ``ImageDraw``), pasted from a patch rendered once per text, size, colours and
    fractional position: the same pixels, when the canvas under the patch is all
    ``background`` (else, or on a custom palette, drawn as :func:`draw_text` draws it).

    Parameters
    ----------
    canvas, draw
        The image drawn on and its ``ImageDraw.Draw``.
    xy, text, colour, background, ink, anchor
        As :func:`draw_text`.
    font_px
        Font size, px.
    """
    name = _ink_name(ink)
    if name is not None and xy[0] >= 0 and xy[1] >= 0:
        start = (math.modf(xy[0])[0], math.modf(xy[1])[0])
        patch, (mx, my) = _text_patch(text, font_px, colour, background, name, start, anchor)
        x0, y0 = int(xy[0]) - mx, int(xy[1]) - my
        box = (x0, y0, x0 + patch.width, y0 + patch.height)
        if x0 >= 0 and y0 >= 0 and box[2] <= canvas.width and box[3] <= canvas.height:
            under = np.asarray(canvas.crop(box))
            if np.all(under == np.asarray(ink(background), dtype=np.uint8)):
                canvas.paste(patch, box[:2])
                return
    draw_text(draw, xy, text, _font(font_px), colour, background, ink, anchor)


def draw_overlay(gray: npt.NDArray[np.uint8], measurements: Sequence[KneeMeasurement],
                 footer: str, ink: Inks | None = None) -> npt.NDArray[np.uint8]:
    """The overlay: banner on top, the (downscaled) image with drawings, a text panel below.

    Parameters
    ----------
    gray
        ``(rows, columns)`` 8-bit display image of the source (landmarks' pixel grid).
    measurements
        The knees to draw (checked by the caller).
    footer
        Last line of the panel (algorithm name and version).
    ink
        :meth:`Inks.rgb` (the default) or a palette's inks (:data:`PALETTE_INKS`).

    Returns
    -------
    numpy.ndarray
        ``(height, width, 3)`` RGB, or ``(height, width)`` indices into ``ink.palette``.
    """
    ink = Inks.rgb() if ink is None else ink
    rows, cols = gray.shape
    scale = min(1.0, MAX_SIDE / max(rows, cols))
    width, height = max(1, round(cols * scale)), max(1, round(rows * scale))
    image = Image.fromarray(gray).resize((width, height), RESAMPLE) if scale < 1 \
        else Image.fromarray(gray)
    style = Style.for_size(width, height)
    margin = style.font_px // 2
    line_h = round(style.font_px * 1.3)
    banner = wrap_lines(BANNER_TEXT, style.font_px, width - 2 * margin)
    panel: list[tuple[str, RGB]] = []
    for m in measurements:
        colour = COLOURS["text"] if m.quality == "pass" else COLOURS["flagged"]
        panel += [(t, colour) for t in wrap_lines(knee_summary(m), style.font_px,
                                                   width - 2 * margin)]
    legend = ("Yellow: femoral axis (FTS); magenta dashed: femoral axis (FNTS); cyan: tibial "
              "axis; white arc: aTFA. Valgus +, varus -.")
    notice = "Trained on synthetic images only; must be reviewed by a clinician. " + footer
    for text in (legend, notice):
        panel += [(t, COLOURS["text"]) for t in wrap_lines(text, style.font_px,
                                                            width - 2 * margin)]
    top = len(banner) * line_h + 2 * margin
    bottom = len(panel) * line_h + 2 * margin
    canvas = Image.new(ink.mode, (width, top + height + bottom), ink(COLOURS["panel"]))
    canvas.paste(ink.image(image), (0, top))
    draw = ImageDraw.Draw(canvas)
    draw.rectangle([0, 0, width, top - 1], fill=ink(COLOURS["banner"]))
    for i, text in enumerate(banner):
        draw_text_patch(canvas, draw, (width / 2, margin + i * line_h + line_h / 2), text,
                        style.font_px, COLOURS["text"], COLOURS["banner"], ink, anchor="mm")
    for m in measurements:
        _draw_knee(draw, m, scale, style, top, (width, height), ink)
    for i, (text, colour) in enumerate(panel):
        draw_text_patch(canvas, draw, (margin, top + height + margin + i * line_h), text,
                        style.font_px, colour, COLOURS["panel"], ink)
    return np.asarray(canvas, dtype=np.uint8)
