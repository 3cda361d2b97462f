"""The secondary-capture overlay: DICOM attributes, what is drawn, size, dciodvfy.

``python tests/test_reports_sc.py`` writes ``docs/sc_example.png`` (a pass and a flagged case).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom import Dataset

sys.path.insert(0, str(Path(__file__).parent))
from test_reports_common import (  # noqa: E402
    knee_landmarks,
    make_measurement,
    make_source,
    pass_case,
)

from dicom_node.reports import create_overlay_image  # noqa: E402
from dicom_node.reports._checks import ReportInputError  # noqa: E402
from dicom_node.reports.algorithm import identities  # noqa: E402
from dicom_node.reports.overlay import (  # noqa: E402
    COLOURS,
    MAX_SIDE,
    PALETTE_INKS,
    TEXT_PAIRS,
    TEXT_STEPS,
    Inks,
    Style,
    display_image,
    draw_overlay,
)
from dicom_node.reports.secondary_capture import sc_image  # noqa: E402
from inference.measurement import KneeMeasurement  # noqa: E402

SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"


def _roundtrip(source: Dataset, measurements: list[KneeMeasurement], tmp_path: Path) -> Dataset:
    sc = create_overlay_image(source, measurements)
    path = tmp_path / "sc.dcm"
    sc.save_as(path, enforce_file_format=True)
    return pydicom.dcmread(path)


def _count(rgb: np.ndarray, colour: tuple[int, int, int], tol: int = 12) -> int:
    return int(np.all(np.abs(rgb.astype(int) - np.asarray(colour)) <= tol, axis=-1).sum())


def two_knee_case() -> tuple[Dataset, list[KneeMeasurement]]:
    """Right knee 6 deg varus (pass) and left knee flagged, on a 3000 px MONOCHROME1 source."""
    right = knee_landmarks(-5.0, 1.0, laterality="R", scale=7, centre=(900, 1500))
    left = knee_landmarks(4.0, 0.0, laterality="L", scale=7, centre=(2100, 1500))
    source = make_source(rows=3000, cols=3000, knees=(right, left), photometric="MONOCHROME1")
    return source, [
        make_measurement(right, laterality="R"),
        make_measurement(left, laterality="L", quality="flag",
                         reasons=("landmark spread too large", "low heatmap peak")),
    ]


def test_attributes(tmp_path: Path) -> None:
    source, m = pass_case()
    sc = _roundtrip(source, [m], tmp_path)
    assert sc.SOPClassUID == SECONDARY_CAPTURE
    assert sc.StudyInstanceUID == source.StudyInstanceUID
    assert sc.PatientID == source.PatientID and sc.PatientName == source.PatientName
    assert sc.SeriesInstanceUID != source.SeriesInstanceUID
    assert sc.SeriesNumber == 9902
    assert sc.BurnedInAnnotation == "YES"
    assert "NOT FOR DIAGNOSTIC USE" in sc.SeriesDescription
    assert sc.PhotometricInterpretation == "RGB" and sc.SamplesPerPixel == 3
    assert sc.SourceImageSequence[0].ReferencedSOPInstanceUID == source.SOPInstanceUID
    purposes = {e.PurposeOfReferenceCodeSequence[0].CodeValue
                for e in sc.ContributingEquipmentSequence}
    assert "109102" in purposes  # Processing Equipment: the algorithm
    assert sc.ManufacturerModelName == m.model.name  # type: ignore[union-attr]
    assert sc.SoftwareVersions == m.model.version  # type: ignore[union-attr]


def test_pass_draws_axes_and_banner(tmp_path: Path) -> None:
    source, m = pass_case()
    rgb = _roundtrip(source, [m], tmp_path).pixel_array
    assert _count(rgb[:10], COLOURS["banner"]) > 0.5 * 10 * rgb.shape[1]  # banner across the top
    for name in ("femoral_FTS", "femoral_FNTS", "tibial", "landmark"):
        assert _count(rgb, COLOURS[name]) > 30, name
    assert _count(rgb, COLOURS["flagged"]) == 0


def test_flagged_knee_has_no_axes(tmp_path: Path) -> None:
    source, measurements = two_knee_case()
    sc = _roundtrip(source, measurements, tmp_path)
    rgb = sc.pixel_array
    assert max(sc.Rows, sc.Columns) <= MAX_SIDE * 1.4  # downscaled image plus banner and panel
    assert sc.Columns == MAX_SIDE
    assert _count(rgb, COLOURS["flagged"]) > 100
    # the passing right knee sits in the left half of the image: its axes are only there
    half = rgb.shape[1] // 2
    for name in ("femoral_FTS", "tibial"):
        assert _count(rgb[:, :half], COLOURS[name]) > 30
        assert _count(rgb[:, half:], COLOURS[name]) == 0, name
    only_flagged = _roundtrip(source, measurements[1:], tmp_path)
    for name in ("femoral_FTS", "femoral_FNTS", "tibial"):
        assert _count(only_flagged.pixel_array, COLOURS[name]) == 0


def test_text_is_legible_on_1080p() -> None:
    for rows, cols in ((512, 400), (1536, 1200), (1200, 1536), (700, 1536)):
        style = Style.for_size(cols, rows)
        canvas_rows = rows / 0.78
        screen = min(1920 / cols, 1080 / canvas_rows)
        assert style.font_px * screen >= 16, (rows, cols)


def test_monochrome1_is_inverted_for_display() -> None:
    pts = knee_landmarks(3.0, scale=1.5, centre=(260, 320))
    for photometric in ("MONOCHROME1", "MONOCHROME2"):
        gray = display_image(make_source(knees=(pts,), photometric=photometric))
        bone, background = gray[320 - 150, 260], gray[20, 20]  # femoral shaft vs corner
        assert int(bone) > int(background) + 60, photometric


def _display_per_pixel(source: Dataset) -> np.ndarray:
    """The display chain run on every pixel (what ``display_image`` did before its table)."""
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    from dicom_node.reports.overlay import _voi_output_range

    values = apply_modality_lut(source.pixel_array, source).astype(np.float64)
    if "WindowCenter" in source or "VOILUTSequence" in source:
        values = apply_voi_lut(values, source, index=0).astype(np.float64)
        lo, hi = _voi_output_range(source, values)
    else:
        lo, hi = (float(v) for v in np.percentile(values, [0.5, 99.5]))
    scaled = np.clip((values - lo) / max(hi - lo, 1e-9), 0.0, 1.0)
    if source.PhotometricInterpretation == "MONOCHROME1":
        scaled = 1.0 - scaled
    return np.round(scaled * 255.0).astype(np.uint8)


@pytest.mark.parametrize("variant", ["window", "no window", "signed rescaled", "sigmoid",
                                     "monochrome1 no window"])
def test_display_table_equals_the_chain_on_every_pixel(variant: str) -> None:
    pts = knee_landmarks(3.0, scale=1.5, centre=(260, 320))
    source = make_source(knees=(pts,), photometric="MONOCHROME1" if "monochrome1" in variant
                         else "MONOCHROME2")
    if "no window" in variant:
        del source.WindowCenter, source.WindowWidth
    if variant == "signed rescaled":
        signed = (source.pixel_array.astype(np.int32) - 2048).astype(np.int16)
        source.PixelRepresentation, source.PixelData = 1, signed.tobytes()
        source.RescaleSlope, source.RescaleIntercept = 0.5, -100
        source.WindowCenter, source.WindowWidth = -150, 1200
    if variant == "sigmoid":
        source.VOILUTFunction = "SIGMOID"
    gray = display_image(source)
    expected = _display_per_pixel(source)
    assert gray.dtype == np.uint8 and gray.shape == expected.shape
    assert np.array_equal(gray, expected)
    assert len(np.unique(gray)) > 20  # a real image, not a constant


@pytest.mark.parametrize("ink", [PALETTE_INKS, Inks.rgb()], ids=["palette", "rgb"])
@pytest.mark.parametrize("size", [(640, 520), (1963, 1134), (3000, 2400)])
def test_text_patches_draw_the_same_pixels(monkeypatch: pytest.MonkeyPatch, ink: Inks,
                                           size: tuple[int, int]) -> None:
    """Text pasted from its cached patch is the text drawn in place, pixel for pixel, at
    several sizes (so several fonts and fractional positions); where a knee's axis runs
    into the text panel the text is drawn in place (not pasted), and is the same too."""
    from dicom_node.reports import overlay

    rows, cols = size
    scale = rows / 640 * 1.6
    near = knee_landmarks(8.0, 2.0, scale=scale, centre=(cols * 0.5, rows * 0.5))
    low = knee_landmarks(-6.0, scale=scale, laterality="R", centre=(cols * 0.5, rows * 0.97))
    gray = display_image(make_source(rows=rows, cols=cols, knees=(near,)))
    cases = {"inside": [make_measurement(near)],
             "into-panel": [make_measurement(low, laterality="R")]}
    for knees in cases.values():  # every patch made
        draw_overlay(gray, knees, "Model x 1.0", ink)
    in_place: dict[str, int] = {}
    pasted = {}
    real_draw_text = overlay.draw_text
    for name, knees in cases.items():
        calls = []
        monkeypatch.setattr(overlay, "draw_text", lambda *a, c=calls, **k: (
            c.append(1), real_draw_text(*a, **k))[1])
        pasted[name] = draw_overlay(gray, knees, "Model x 1.0", ink)
        in_place[name] = len(calls)
    assert in_place == {"inside": 0, "into-panel": in_place["into-panel"]}
    assert in_place["into-panel"] > 0
    monkeypatch.setattr(overlay, "draw_text", real_draw_text)
    monkeypatch.setattr(overlay, "_ink_name", lambda ink: None)  # every text drawn in place
    for name, knees in cases.items():
        assert np.array_equal(pasted[name], draw_overlay(gray, knees, "Model x 1.0", ink)), name


def test_refuses_colour_source() -> None:
    source, m = pass_case()
    source.PhotometricInterpretation = "RGB"
    with pytest.raises(ValueError, match="MONOCHROME"):
        create_overlay_image(source, [m])


@pytest.mark.skipif(shutil.which("dciodvfy") is None, reason="dciodvfy (dicom3tools) not installed")
def test_dciodvfy_finds_no_error(tmp_path: Path) -> None:
    source, measurements = two_knee_case()
    sc = create_overlay_image(source, measurements)
    path = tmp_path / "sc.dcm"
    sc.save_as(path, enforce_file_format=True)
    out = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, timeout=60)
    text = out.stdout + out.stderr
    assert "SCImage" in text
    assert [line for line in text.splitlines() if line.startswith("Error")] == []
    assert path.stat().st_size < 12_000_000


PALETTE = "jpeg-ls-lossless-palette"


def _palette_roundtrip(source: Dataset, measurements: list[KneeMeasurement], tmp_path: Path
                       ) -> tuple[Dataset, Path]:
    sc = create_overlay_image(source, measurements, encoding=PALETTE)
    path = tmp_path / "sc_palette.dcm"
    sc.save_as(path, enforce_file_format=True)
    return pydicom.dcmread(path), path


def _as_rgb(sc: Dataset) -> np.ndarray:
    """The palette SC's colours as a viewer shows them (8-bit: the 16-bit entries' top byte)."""
    from pydicom.pixels import apply_color_lut

    return (apply_color_lut(sc.pixel_array, sc) >> 8).astype(np.uint8)


def test_palette_sc_is_the_drawn_overlay_losslessly(tmp_path: Path) -> None:
    """The default encoding: one 8-bit index per pixel, JPEG-LS lossless; read back, the
    indices are the overlay as drawn, and through the palette it is the RGB overlay except
    for sub-level grey rounding and the text edges on coloured backgrounds."""
    source, measurements = two_knee_case()
    back, path = _palette_roundtrip(source, measurements, tmp_path)
    assert back.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.80"
    assert back.PhotometricInterpretation == "PALETTE COLOR"
    assert (back.SamplesPerPixel, back.BitsAllocated, back.BitsStored) == (1, 8, 8)
    for colour in ("Red", "Green", "Blue"):
        assert list(back[f"{colour}PaletteColorLookupTableDescriptor"].value) == [256, 0, 16]
    footer = ", ".join(f"Model {a.name} {a.version}" for a in identities(measurements))
    drawn = draw_overlay(display_image(source), measurements, footer, PALETTE_INKS)
    assert np.array_equal(back.pixel_array, drawn), "lossless: the indices as drawn"
    shown = _as_rgb(back)
    rgb = create_overlay_image(source, measurements).pixel_array  # explicit RGB
    assert shown.shape == rgb.shape
    diff = np.abs(shown.astype(int) - rgb.astype(int)).max(axis=-1)
    assert diff.max() <= 255 // (2 * TEXT_STEPS) + 1, diff.max()
    assert (diff > 1).mean() < 0.01
    assert path.stat().st_size < 0.5 * rgb.nbytes / 3  # one sample, compressed
    for name in ("femoral_FTS", "femoral_FNTS", "tibial", "landmark"):  # drawn, not blended
        assert _count(shown, COLOURS[name], tol=0) == _count(rgb, COLOURS[name], tol=0) > 30, name
    for name in ("flagged", "banner"):  # also text ink or background: text edges round to them
        n, n_rgb = _count(shown, COLOURS[name], tol=0), _count(rgb, COLOURS[name], tol=0)
        assert n_rgb > 100 and abs(n - n_rgb) < 0.05 * n_rgb, (name, n, n_rgb)


def test_palette_has_every_colour_a_grey_ramp_and_the_text_ramps() -> None:
    palette = PALETTE_INKS.palette
    assert palette is not None and palette.shape == (256, 3) and palette.dtype == np.uint8
    greys = palette[:PALETTE_INKS.greys]
    assert (greys[:, 0] == greys[:, 1]).all() and (greys[:, 1] == greys[:, 2]).all()
    assert greys[0, 0] == 0 and greys[-1, 0] == 255 and (np.diff(greys[:, 0].astype(int)) > 0).all()
    assert PALETTE_INKS.greys >= 224  # grey steps of at most 255/223 levels
    from PIL import Image

    levels = np.arange(256, dtype=np.uint8)
    indices = np.asarray(PALETTE_INKS.image(Image.fromarray(levels[None, :])))[0]
    assert indices.max() == PALETTE_INKS.greys - 1  # only grey-ramp indices
    assert np.abs(greys[indices, 0].astype(int) - levels).max() <= 1  # every level within one
    for name, colour in COLOURS.items():
        assert tuple(palette[PALETTE_INKS(colour)]) == colour, name
    for fg, bg in TEXT_PAIRS:
        base, top = PALETTE_INKS.text(fg, bg)
        assert base is not None and top - base == TEXT_STEPS
        assert tuple(palette[base]) == bg and tuple(palette[top]) == fg
    assert PALETTE_INKS.text(COLOURS["text"], COLOURS["panel"]) == (None, PALETTE_INKS.greys - 1)
    with pytest.raises(ReportInputError, match="not in the overlay palette"):
        PALETTE_INKS((1, 2, 3))
    with pytest.raises(ReportInputError, match="no ramp"):
        PALETTE_INKS.text(COLOURS["tibial"], COLOURS["panel"])
    with pytest.raises(ReportInputError, match="text_steps"):
        Inks.indexed(list(COLOURS.values()), text_steps=0)
    with pytest.raises(ReportInputError, match="grey levels"):
        Inks.indexed([(i, 0, 1) for i in range(140)])


def test_palette_needs_palette_inks() -> None:
    source, m = pass_case()
    with pytest.raises(ReportInputError, match="does not fit encoding"):
        sc_image(source, np.zeros((8, 8, 3), np.uint8), Inks.rgb(), PALETTE)
    with pytest.raises(ReportInputError, match="does not fit encoding"):
        sc_image(source, np.zeros((8, 8), np.uint8), PALETTE_INKS, "jpeg-ls-lossless")
    for call in (lambda: create_overlay_image(source, [m], encoding="palette"),
                 lambda: sc_image(source, np.zeros((8, 8), np.uint8), PALETTE_INKS, "palette")):
        with pytest.raises(ReportInputError, match="encoding must be one of"):
            call()


@pytest.mark.skipif(shutil.which("dciodvfy") is None, reason="dciodvfy (dicom3tools) not installed")
def test_palette_sc_dciodvfy_finds_no_error(tmp_path: Path) -> None:
    """No error, and no warning the RGB SC of the same case does not have."""
    source, measurements = two_knee_case()
    _, path = _palette_roundtrip(source, measurements, tmp_path)
    create_overlay_image(source, measurements).save_as(tmp_path / "rgb.dcm",
                                                      enforce_file_format=True)
    found = {}
    for name, p in (("palette", path), ("rgb", tmp_path / "rgb.dcm")):
        out = subprocess.run(["dciodvfy", str(p)], capture_output=True, text=True, timeout=60)
        text = out.stdout + out.stderr
        assert "SCImage" in text, name
        found[name] = {line for line in text.splitlines() if line.startswith(("Error", "Warning"))}
    assert not any(line.startswith("Error") for line in found["palette"]), found["palette"]
    assert found["palette"] <= found["rgb"], found["palette"] - found["rgb"]


def test_palette_sc_decompresses_for_a_peer_without_jpeg_ls(tmp_path: Path) -> None:
    """As the DIMSE sender does for a peer that does not accept JPEG-LS."""
    source, measurements = two_knee_case()
    back, _ = _palette_roundtrip(source, measurements, tmp_path)
    indices = back.pixel_array.copy()
    back.decompress(generate_instance_uid=False)
    assert not back.file_meta.TransferSyntaxUID.is_compressed
    assert back.PhotometricInterpretation == "PALETTE COLOR"
    back.save_as(tmp_path / "plain.dcm", enforce_file_format=True)
    assert np.array_equal(pydicom.dcmread(tmp_path / "plain.dcm").pixel_array, indices)


def _synthetic_case(seed: int, quality: str) -> tuple[Dataset, list[KneeMeasurement]]:
    """A generator radiograph with measurements at its true landmarks."""
    from training.synth_dicom import make_instance

    inst = make_instance(seed, max_side=1024, syntax="explicit")
    reasons = ("low heatmap peak on the femoral notch",) if quality == "flag" else ()
    return inst.dataset, [
        make_measurement(np.asarray(k["landmarks"]), laterality=k["laterality"],
                         phase=k["phase"], quality=quality, reasons=reasons)
        for k in inst.truth["knees"]
    ]


def write_example(path: Path, height: int = 900) -> None:
    """A pass case and a flagged case side by side, as PNG (generator images when available)."""
    from PIL import Image

    try:
        cases = [_synthetic_case(4, "pass"), _synthetic_case(3, "flag")]
    except ImportError:  # generator not installed: the drawn test knees
        source, m = pass_case()
        flagged = two_knee_case()
        cases = [(source, [m]), flagged]
    panels = []
    for source, measurements in cases:
        image = Image.fromarray(create_overlay_image(source, measurements).pixel_array)
        panels.append(image.resize((round(image.width * height / image.height), height),
                                   Image.Resampling.LANCZOS))
    sheet = Image.new("RGB", (sum(p.width for p in panels) + 20, height), (255, 255, 255))
    sheet.paste(panels[0], (0, 0))
    sheet.paste(panels[1], (panels[0].width + 20, 0))
    sheet.save(path, optimize=True)


if __name__ == "__main__":
    out = Path(__file__).resolve().parents[1] / "docs" / "sc_example.png"
    write_example(out)
    print(out, out.stat().st_size)
