"""The aTFA's 95 % interval (issue 11 §4) wherever the result goes: the SR (a standard-coded
measurement property), the job's result value rows, ``knee-node status`` and the status page,
``knee-node predict`` and the overlay ("+6.0° ± 0.8°")."""

from __future__ import annotations

import dataclasses
import html
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest
import yaml
from PIL import Image, ImageDraw
from pydicom import Dataset
from pydicom.uid import generate_uid
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parent))
from node_support import StoreSCP, TruthMeasurer, make_dx, write_case  # noqa: E402
from test_reports_common import knee_landmarks, make_measurement, make_source, pass_case  # noqa: E402

from dicom_node.cli import app  # noqa: E402
from dicom_node.commands.status import results_text  # noqa: E402
from dicom_node.reports import codes, create_measurement_report  # noqa: E402
from dicom_node.reports.overlay import (  # noqa: E402
    _font,
    display_image,
    draw_overlay,
    knee_summary,
    label_lines,
)
from inference.measurement import KneeMeasurement, value_text  # noqa: E402

#: SCT 371884006 "+/-, range of measurement uncertainty" (CID 225, in TID 310).
UNCERTAINTY = ("371884006", "SCT")
HALF_WIDTH = {"FTS": 0.8123, "FNTS": 0.7}


def _name(item: Dataset) -> tuple[str, str]:
    code = item.ConceptNameCodeSequence[0]
    return str(code.CodeValue), str(code.CodingSchemeDesignator)


def _walk(items: object) -> list[Dataset]:
    out: list[Dataset] = []
    for item in items or []:  # type: ignore[attr-defined]
        out.append(item)
        out.extend(_walk(item.get("ContentSequence")))
    return out


def sr_intervals(sr: Dataset) -> dict[str, list[tuple[float, float, tuple[str, str], str]]]:
    """Per aTFA method, every (angle, half-width, unit code, relationship) the SR holds."""
    found: dict[str, list[tuple[float, float, tuple[str, str], str]]] = {"FTS": [], "FNTS": []}
    for item in _walk(sr.ContentSequence):
        if item.get("ValueType") != "NUM" or _name(item)[0] not in ("ATFA-FTS", "ATFA-FNTS"):
            continue
        method = _name(item)[0].split("-", 1)[1]
        for prop in item.get("ContentSequence", []):
            if prop.ValueType == "NUM" and _name(prop) == UNCERTAINTY:
                unit = prop.MeasuredValueSequence[0].MeasurementUnitsCodeSequence[0]
                found[method].append((
                    float(item.MeasuredValueSequence[0].NumericValue),
                    float(prop.MeasuredValueSequence[0].NumericValue),
                    (str(unit.CodeValue), str(unit.CodingSchemeDesignator)),
                    str(prop.RelationshipType),
                ))
    return found


def with_interval(m: KneeMeasurement, half_width: dict[str, float] = HALF_WIDTH) -> KneeMeasurement:
    return dataclasses.replace(m, atfa_ci95_deg=dict(half_width))


def _sr_file(source: Dataset, knees: list[KneeMeasurement], tmp_path: Path) -> Path:
    sr = create_measurement_report(source, knees, device_observer_uid=generate_uid())
    path = tmp_path / "sr.dcm"
    sr.save_as(path, enforce_file_format=True)
    return path


# -- SR ---------------------------------------------------------------------------------------
def test_the_sr_codes_each_interval_as_a_measurement_property(tmp_path: Path) -> None:
    """Written and read back: each aTFA NUM HAS PROPERTIES one NUM (SCT 371884006) = the
    half-width in UCUM deg; a knee without an interval and a flagged knee have none."""
    right = knee_landmarks(-5.0, laterality="R", scale=1.2, centre=(150, 300))
    left = knee_landmarks(4.0, laterality="L", scale=1.2, centre=(400, 300))
    source = make_source(rows=600, cols=560, knees=(right, left))
    knees = [with_interval(make_measurement(right, laterality="R")),
             make_measurement(left, laterality="L")]
    sr = pydicom.dcmread(_sr_file(source, knees, tmp_path))
    found = sr_intervals(sr)
    for method in ("FTS", "FNTS"):
        assert len(found[method]) == 1, "only the right knee has an interval"
        angle, half_width, unit, relationship = found[method][0]
        assert angle == pytest.approx(knees[0].atfa_deg[method], abs=0.006)
        assert half_width == pytest.approx(round(HALF_WIDTH[method], 2))
        assert unit == ("deg", "UCUM") and relationship == "HAS PROPERTIES"
    assert codes.MEASUREMENT_UNCERTAINTY.value == UNCERTAINTY[0]

    flagged = with_interval(make_measurement(left, laterality="L", quality="flag",
                                             reasons=("low heatmap peak",)))
    sr = pydicom.dcmread(_sr_file(source, [flagged], tmp_path))
    assert sr_intervals(sr) == {"FTS": [], "FNTS": []}, "a flagged knee has no angle"


@pytest.mark.skipif(shutil.which("dciodvfy") is None, reason="dciodvfy (dicom3tools) not installed")
def test_dciodvfy_accepts_the_interval(tmp_path: Path) -> None:
    source, m = pass_case()
    path = _sr_file(source, [with_interval(m)], tmp_path)
    assert sr_intervals(pydicom.dcmread(path))["FTS"], "the interval is in the file checked"
    out = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, timeout=60)
    text = out.stdout + out.stderr
    assert "Comprehensive3DSR" in text
    assert [line for line in text.splitlines() if line.startswith("Error")] == []
    assert [line for line in text.splitlines()
            if line.startswith("Warning") and "99KNEENODE" not in line] == []


@pytest.mark.skipif(shutil.which("dsr2html") is None, reason="dsr2html (dcmtk) not installed")
def test_dsr2html_shows_the_interval(tmp_path: Path) -> None:
    source, m = pass_case()
    path = _sr_file(source, [with_interval(m)], tmp_path)
    out = subprocess.run(["dsr2html", str(path)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "range of measurement uncertainty" in out.stdout and "0.81 deg" in out.stdout


# -- texts ------------------------------------------------------------------------------------
def test_value_text() -> None:
    assert value_text(6.24, 0.78) == "+6.2\N{DEGREE SIGN} \N{PLUS-MINUS SIGN} 0.8\N{DEGREE SIGN}"
    assert value_text(-3.05, None) == "-3.0\N{DEGREE SIGN}"  # -3.05 is -3.04999... in binary
    assert value_text(-3.0, float("nan")) == "-3.0\N{DEGREE SIGN}"
    assert value_text(12.0, 1.5, " mm") == "+12.0 mm \N{PLUS-MINUS SIGN} 1.5 mm"


def test_the_overlay_writes_the_interval() -> None:
    source, m = pass_case()  # 6 deg valgus by FTS
    knee = with_interval(m)
    fnts = value_text(knee.atfa_deg["FNTS"], 0.7)
    assert label_lines(knee)[1:3] == ["aTFA FTS +6.0° ± 0.8°", f"FNTS {fnts}"]
    assert "aTFA FTS +6.0° ± 0.8°, FNTS" in knee_summary(knee)
    assert "±" not in knee_summary(m) and label_lines(m)[1] == "aTFA FTS +6.0°"
    flagged = dataclasses.replace(knee, quality="flag", flag_reasons=("low heatmap peak",))
    assert "±" not in knee_summary(flagged) and "±" not in "".join(label_lines(flagged))
    # the overlay's font has a glyph for the sign (not the box of a missing one), and the
    # drawn image changes with the interval
    font = _font(30)

    def glyph(text: str) -> np.ndarray:
        image = Image.new("L", (60, 60))
        ImageDraw.Draw(image).text((10, 10), text, font=font, fill=255)
        return np.asarray(image)

    assert glyph("±").any() and not np.array_equal(glyph("±"), glyph("\uffff"))
    gray = display_image(source)
    assert not np.array_equal(draw_overlay(gray, [knee], "Model x 1"),
                              draw_overlay(gray, [m], "Model x 1"))


def test_predict_json_has_the_interval() -> None:
    _, m = pass_case()
    shown = with_interval(m).to_json()
    assert shown["atfa_ci95_deg"] == {"FTS": 0.81, "FNTS": 0.7}
    assert shown["atfa_text"]["FTS"] == "+6.0° ± 0.8°"
    flagged = dataclasses.replace(with_interval(m), quality="flag", flag_reasons=("x",))
    assert flagged.to_json()["atfa_ci95_deg"] is None and flagged.to_json()["atfa_text"] is None


@pytest.mark.network
def test_knee_node_predict_prints_and_writes_the_interval(tmp_path: Path) -> None:
    """The shipped model on a synthetic knee: ``predict --out`` prints "± " and the SR it
    writes holds the same half-widths as the printed ones."""
    pytest.importorskip("training.synth")
    runner = CliRunner()
    made = runner.invoke(app, ["synth", "--count", "1", "--out", str(tmp_path / "d"),
                               "--seed", "777", "--max-side", "512"])
    assert made.exit_code == 0, made.output
    result = runner.invoke(app, ["predict", str(tmp_path / "d" / "knee_0000000777.dcm"),
                                 "--out", str(tmp_path / "out"), "--threads", "1"])
    assert result.exit_code == 0, result.output
    line = result.output.strip().splitlines()[-1]
    (knee,) = json.loads(line)["knees"]
    assert knee["quality"] == "pass", knee["flag_reasons"]
    hw = knee["atfa_ci95_deg"]
    assert set(hw) == {"FTS", "FNTS"} and all(0.0 < v < 10.0 for v in hw.values())
    for method in ("FTS", "FNTS"):
        text = value_text(knee["atfa_deg"][method], hw[method])
        assert knee["atfa_text"][method] == text and text in line, "printed as written"
    found = sr_intervals(pydicom.dcmread(json.loads(line)["written"]["sr"]))
    for method in ("FTS", "FNTS"):
        ((angle, half_width, unit, _),) = found[method]
        assert half_width == pytest.approx(hw[method], abs=0.006) and unit == ("deg", "UCUM")
        assert angle == pytest.approx(knee["atfa_deg"][method], abs=0.006)


# -- the node: job rows, status, status page, the SR it sends -----------------------------------
@pytest.mark.network
def test_the_node_records_prints_and_sends_the_interval(tmp_path: Path) -> None:
    from dicom_node.context import NodeContext
    from dicom_node.db import Job
    from dicom_node.db.session import Database
    from dicom_node.node import KneeNode
    from dicom_node.settings import load_settings
    from dicom_node.status_page import render_status

    pacs = StoreSCP()
    cfg = {
        "storage": {"data_dir": str(tmp_path / "var")},
        "delivery": {"destinations": [
            {"name": "pacs", "ae_title": "TEST_PACS", "host": "127.0.0.1", "port": pacs.port}
        ]},
    }
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(cfg))
    settings = load_settings(config, environ={})
    knee, truth = make_dx(atfa_deg=6.2)
    truth["atfa_ci95_deg"] = {"FTS": 0.78, "FNTS": 0.66}
    write_case(tmp_path / "cases", knee, truth, "knee")
    pacs.start()
    try:
        with KneeNode(settings, measurer=TruthMeasurer(tmp_path / "cases"), port=0) as node:
            from pynetdicom import AE

            ae = AE(ae_title="MODALITY")
            ae.add_requested_context(knee.file_meta.MediaStorageSOPClassUID,
                                     knee.file_meta.TransferSyntaxUID)
            assoc = ae.associate("127.0.0.1", node.port, ae_title="KNEE_NODE")
            assert assoc.send_c_store(knee).Status == 0
            assoc.release()
            assert node.wait_idle(60)
            with node.ctx.db.session() as s:
                (job,) = s.query(Job).all()
                assert job.state == "done"
                rows = {v.label: (v.value, v.unit, v.uncertainty) for v in job.values}
                assert rows["aTFA FTS"][1:] == ("deg", 0.78)
                assert rows["aTFA FNTS"][1:] == ("deg", 0.66)
                assert rows["aTFA FTS"][0] == pytest.approx(6.2, abs=1e-6)
                shown = results_text(job)
            received = pacs.wait_for(2, 30)
        assert shown.startswith("aTFA FTS +6.2° ± 0.8°, FNTS ") and "± 0.7°" in shown
        status = CliRunner().invoke(app, ["status", "--config", str(config)])
        assert status.exit_code == 0, status.output
        assert "aTFA FTS +6.2° ± 0.8°" in status.output, status.output
        ctx = NodeContext(settings=settings, db=Database(settings.database_url),
                          queue=object())  # type: ignore[arg-type]  # no queue: depth unknown
        try:
            code, page = render_status(ctx)
        finally:
            ctx.db.dispose()
        assert code == 200 and html.escape(shown) in page.decode("utf-8")
        (sr,) = [d for d in received if d.Modality == "SR"]
        intervals = sr_intervals(sr)
        assert [hw for _, hw, _, _ in intervals["FTS"]] == [0.78]
        assert [hw for _, hw, _, _ in intervals["FNTS"]] == [0.66]
    finally:
        pacs.stop()
