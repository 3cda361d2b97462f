"""A new user's first hour (issue 17): every message says what happened and what to do.

Each test runs a command as a user does (typer's CliRunner or a subprocess), reads what it
prints, and checks that the message names the port, the path or the reason.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from node_support import TruthMeasurer, free_port, store
from typer.testing import CliRunner

from dicom_node.cli import app
from dicom_node.node import KneeNode
from dicom_node.settings import Settings

REPO = Path(__file__).resolve().parents[1]


def _config(folder: Path, cfg: dict[str, Any]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _cli(*args: str, cwd: Path | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """``knee-node ARGS`` in a subprocess, as a user types it."""
    return subprocess.run(
        [sys.executable, "-m", "dicom_node.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
    )


# -- 1. the demo works every time --------------------------------------------------------
@pytest.mark.network
def test_demo_run_three_times_in_one_folder_succeeds_each_time(tmp_path: Path) -> None:
    """Before: the second run's study had the first run's UIDs, was recorded as a
    duplicate, and the demo waited 300 s in silence. Now each run sends fresh UIDs."""
    pytest.importorskip("training.synth")
    from dicom_node.demo import run_demo

    uids = set()
    for run in range(3):
        lines: list[str] = []
        result = run_demo(
            tmp_path,
            seed=900_000_007,
            measurer=TruthMeasurer(tmp_path / "source"),
            timeout_s=120,
            progress=lines.append,
        )
        text = "\n".join(lines)
        for step in ("node up", "study sent", "measuring", "SR received"):
            assert step in text, f"run {run + 1}: no {step!r} progress line in:\n{text}"
        assert result.sr_path.is_file()
        uids.add(result.sr_path.parent.name)
    assert len(uids) == 3, "each run is a job of its own"


@pytest.mark.network
def test_demo_fails_fast_with_the_real_reason(tmp_path: Path) -> None:
    """A measurement that fails ends the demo at once with its reason, not after 300 s."""
    pytest.importorskip("training.synth")
    from dicom_node.demo import DemoError, run_demo

    empty = tmp_path / "no-truth"
    empty.mkdir()
    with pytest.raises(DemoError, match="no ground truth for this instance"):
        run_demo(tmp_path, seed=900_000_007, measurer=TruthMeasurer(empty), timeout_s=300)


@pytest.mark.slow
@pytest.mark.network
def test_demo_command_passes_three_times_with_the_shipped_model(tmp_path: Path) -> None:
    """``knee-node demo`` as documented, three times in a row in one folder."""
    for _ in range(3):
        out = _cli("demo", "--out", str(tmp_path / "demo"), cwd=tmp_path, timeout=300)
        assert out.returncode == 0, out.stdout + out.stderr
        assert "SR received by the demo PACS" in out.stdout
        # a result: angles, or (a flagged knee) the flag without any angle
        assert "aTFA by FTS" in out.stdout or "FLAGGED: no reliable measurement" in out.stdout
        assert "Traceback" not in out.stderr


# -- 4. serve on a port in use ---------------------------------------------------------------
@pytest.mark.network
def test_serve_on_a_port_in_use_prints_one_line_naming_the_port(tmp_path: Path) -> None:
    port = free_port()
    config = _config(
        tmp_path, {"node": {"port": port}, "storage": {"data_dir": "var"},
                   "metrics": {"enabled": False}}
    )
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        out = _cli("serve", "--config", str(config), cwd=tmp_path)
    assert out.returncode == 1
    assert "Traceback" not in out.stderr, out.stderr
    errors = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, out.stderr
    assert f"127.0.0.1:{port}" in errors[0] and "already in use" in errors[0]
    assert "--port" in errors[0], "says what to do"
    # the failed start released the data directory: a node can start on it now
    s = Settings.model_validate({"storage": {"data_dir": str(tmp_path / "var")}})
    with KneeNode(s, measurer=TruthMeasurer(tmp_path), port=0):
        pass


# -- 6. one node per data directory -----------------------------------------------------------
@pytest.mark.network
def test_second_node_on_the_same_data_dir_refuses_naming_the_holder(tmp_path: Path) -> None:
    config = _config(
        tmp_path, {"node": {"port": 0}, "storage": {"data_dir": "var"},
                   "metrics": {"enabled": False}}
    )
    first = Settings.model_validate({"storage": {"data_dir": str(tmp_path / "var")}})
    with KneeNode(first, measurer=TruthMeasurer(tmp_path), port=0):
        out = _cli("serve", "--config", str(config), cwd=REPO, timeout=60)  # not a hang
        assert out.returncode == 1, out.stdout + out.stderr
        assert "Traceback" not in out.stderr, out.stderr
        assert f"PID {os.getpid()}" in out.stderr
        assert str((tmp_path / "var").resolve()) in out.stderr
        assert "storage.data_dir" in out.stderr, "says what to do"
        other = Settings.model_validate({"storage": {"data_dir": str(tmp_path / "other")}})
        with KneeNode(other, measurer=TruthMeasurer(tmp_path), port=0):
            pass  # another data directory: no conflict
    with KneeNode(first, measurer=TruthMeasurer(tmp_path), port=0):
        pass  # released when the first node stopped


# -- 2 and 3. predict --out; the file names synth --help promises -------------------------------
@pytest.mark.network
def test_synth_names_files_as_its_help_says_and_predict_out_writes_sr_and_sc(
    tmp_path: Path,
) -> None:
    pytest.importorskip("training.synth")
    from pydicom import dcmread

    runner = CliRunner()
    helptext = runner.invoke(app, ["synth", "dicom", "--help"]).output  # the grouped form
    assert "knee_0000000777.dcm" in helptext, "the help shows the real file name"
    made = runner.invoke(
        app, ["synth", "--count", "1", "--out", str(tmp_path / "d"), "--seed", "777",
              "--max-side", "512"]
    )
    assert made.exit_code == 0, made.output
    src = tmp_path / "d" / "knee_0000000777.dcm"
    assert src.is_file(), sorted(p.name for p in (tmp_path / "d").iterdir())

    result = runner.invoke(app, ["predict", str(src), "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    written = json.loads(result.output.strip().splitlines()[-1])["written"]
    sr, sc = dcmread(written["sr"]), dcmread(written["sc"])
    source = dcmread(src, stop_before_pixels=True)
    assert sr.Modality == "SR" and sr.StudyInstanceUID == source.StudyInstanceUID
    assert sc.SOPClassUID == "1.2.840.10008.5.1.4.1.1.7"  # Secondary Capture Image Storage
    assert sc.SourceImageSequence[0].ReferencedSOPInstanceUID == source.SOPInstanceUID
    assert sr.SeriesNumber == Settings().reports.sr_series_number  # what the node would send


# -- 5. relative paths against the config file's folder --------------------------------------
def test_status_from_another_folder_finds_a_relative_data_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site, elsewhere = tmp_path / "site", tmp_path / "elsewhere"
    config = _config(site, {"storage": {"data_dir": "var"}})
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    runner = CliRunner()
    before = runner.invoke(app, ["status", "--config", str(config)])
    assert before.exit_code == 1, before.output
    assert str(site.resolve() / "var" / "knee-node.sqlite") in before.output, before.output
    assert "Traceback" not in before.output
    checked = runner.invoke(app, ["check-config", str(config)])
    assert checked.exit_code == 0, checked.output
    assert f"storage.data_dir: {site.resolve() / 'var'}" in checked.output
    assert runner.invoke(app, ["db", "upgrade", "--config", str(config)]).exit_code == 0
    assert (site / "var" / "knee-node.sqlite").is_file()
    assert not (elsewhere / "var").exists(), "not resolved against the current directory"
    after = runner.invoke(app, ["status", "--config", str(config)])
    assert after.exit_code == 0, after.output


def test_check_config_names_a_data_dir_it_cannot_create(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    config = _config(tmp_path, {"storage": {"data_dir": "file/var"}})
    result = CliRunner().invoke(app, ["check-config", str(config)])
    assert result.exit_code == 1
    assert f"storage.data_dir: {blocker.resolve() / 'var'} cannot be created" in result.output


# -- 7 (status view), 8, 9 (status column), 12 ---------------------------------------------
@pytest.mark.network
def test_status_maps_jobs_to_studies_hides_flagged_angles_and_names_delivery_errors(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    from node_support import make_dx, sr_atfa, write_case
    from pydicom import dcmread
    from pynetdicom import AE

    from dicom_node.commands.status import study_tag

    cases = tmp_path / "cases"
    good, good_truth = make_dx(4.0)
    flagged, flagged_truth = make_dx(-12.3)
    flagged_truth.update(quality="flag", flag_reasons=["landmarks implausible"])
    chest, chest_truth = make_dx(1.0, body_part="CHEST")
    for stem, (ds, truth) in {"g": (good, good_truth), "f": (flagged, flagged_truth),
                              "c": (chest, chest_truth)}.items():
        write_case(cases, ds, truth, stem)
    dead_port = free_port()  # nothing listens: every delivery fails
    cfg = {
        "storage": {"data_dir": str(tmp_path / "var")},
        "delivery": {"max_attempts": 1, "destinations": [
            {"name": "pacs", "ae_title": "PACS", "host": "127.0.0.1", "port": dead_port}]},
        "status": {"show_accession_number": True},
    }
    config = _config(tmp_path, cfg)
    settings = Settings.model_validate(cfg)
    caplog.set_level(logging.INFO)
    with KneeNode(settings, measurer=TruthMeasurer(cases), port=0) as node:
        ae = AE(ae_title="XRAY_ROOM_3")
        ae.add_requested_context(good.SOPClassUID, good.file_meta.TransferSyntaxUID)
        assoc = ae.associate("127.0.0.1", node.port, ae_title="KNEE_NODE")
        for ds in (good, flagged, chest):
            assert assoc.send_c_store(ds).Status == 0x0000
        assoc.release()
        assert node.wait_idle(60)
    log_text = caplog.text
    assert "flagged: no reliable measurement (landmarks implausible" in log_text
    assert "-12.3" not in log_text, "a flagged job's angle is not in the log"

    runner = CliRunner()
    jobs = runner.invoke(app, ["status", "--config", str(config)])
    assert jobs.exit_code == 0, jobs.output
    out = jobs.output
    assert "XRAY_ROOM_3" in out  # calling AE
    assert study_tag(str(good.StudyInstanceUID)) in out  # short study hash, not the UID
    assert str(good.StudyInstanceUID) not in out
    assert "A1" in out  # accession number, configured to show
    assert "+4.0°" in out and "-12.3" not in out, "no angle for the flagged job"
    assert "aborted or unreachable" in out and "resend --job" in out  # last delivery error
    assert "destination pacs: 0 delivered, 2 failed" in out
    found = runner.invoke(
        app, ["status", "--config", str(config), "--study", str(flagged.StudyInstanceUID)]
    )
    assert "not determined (flagged)" in found.output and "+4.0°" not in found.output

    listed = runner.invoke(app, ["status", "--config", str(config), "--instances"])
    assert listed.exit_code == 0, listed.output
    assert "ignored" in listed.output and "CHEST" in listed.output  # the reason, no sqlite3

    with KneeNode(settings, measurer=TruthMeasurer(cases), port=0) as node:
        from sqlalchemy import select

        from dicom_node.db import Job

        with node.ctx.db.session() as s:
            raw = [j for j in s.scalars(select(Job)) if j.quality == "flag"][0]
            kept = raw.value("aTFA FTS").value
            assert kept == pytest.approx(-12.3, abs=0.05), "raw value kept in the DB"
            sr = dcmread(raw.output_path("SR"))
            assert sr_atfa(sr) == {"FTS": [], "FNTS": []}, "none in the SR"


# -- 11. the start-up line -----------------------------------------------------------------
@pytest.mark.network
def test_serve_start_up_line_names_callers_and_destinations_without_secrets(
    tmp_path: Path,
) -> None:
    import signal

    port = free_port()
    config = _config(tmp_path, {
        "node": {"port": port, "allowed_callers": [
            {"ae_title": "XRAY_ROOM_3", "addresses": ["127.0.0.1/32"]}]},
        "storage": {"data_dir": "var"},
        "metrics": {"enabled": False},
        "database": {"password": "s3cret-db"},
        "queue": {"broker_url": "redis://:s3cret-broker@127.0.0.1:6379/0"},
        "delivery": {"destinations": [
            {"name": "main-pacs", "ae_title": "PACS", "host": "10.1.2.3", "port": 104}]},
    })
    config.chmod(0o600)
    proc = subprocess.Popen(
        [sys.executable, "-m", "dicom_node.cli", "serve", "--config", str(config)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # the process prints it, or exits (then: '')
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    assert f"listening as KNEE_NODE on 127.0.0.1:{port}" in line, line + err
    assert "accepts XRAY_ROOM_3 from 127.0.0.1/32" in line
    assert "sends results to main-pacs (PACS@10.1.2.3:104)" in line
    assert "s3cret" not in line + err


# -- 14. a compressed SC -------------------------------------------------------------------
@pytest.mark.parametrize("encoding", ["jpeg-ls-lossless-palette", "jpeg-ls-lossless",
                                      "jpeg2000-lossless", "jpeg-baseline"])
def test_sc_is_compressed_lossless_by_default_and_dciodvfy_clean(
    tmp_path: Path, encoding: str
) -> None:
    import shutil

    import numpy as np
    from pydicom import dcmread
    from test_reports_common import pass_case

    from dicom_node.reports import create_overlay_image
    from dicom_node.results import make_results

    source, knee = pass_case()
    measurements = [knee]
    settings = Settings.model_validate({"reports": {"sc_transfer_syntax": encoding}})
    if encoding == "jpeg-ls-lossless-palette":
        assert Settings().reports.sc_transfer_syntax == encoding, "the default"
    sc = make_results(settings, source, measurements).sc
    plain = create_overlay_image(source, measurements, encoding="explicit")
    sc.save_as(tmp_path / "sc.dcm", enforce_file_format=True)
    plain.save_as(tmp_path / "plain.dcm", enforce_file_format=True)
    back = dcmread(tmp_path / "sc.dcm")
    assert back.file_meta.TransferSyntaxUID.is_compressed
    size, plain_size = (tmp_path / "sc.dcm").stat().st_size, (tmp_path / "plain.dcm").stat().st_size
    assert size < plain_size / 2, (size, plain_size)
    if encoding.endswith("-palette"):  # lossless: the indices as drawn (RGB is not comparable)
        from dicom_node.reports.overlay import PALETTE_INKS, display_image, draw_overlay

        footer = f"Model {knee.model.name} {knee.model.version}"
        expected = draw_overlay(display_image(source), measurements, footer, PALETTE_INKS)
        assert back.PhotometricInterpretation == "PALETTE COLOR"
    else:
        expected = dcmread(tmp_path / "plain.dcm").pixel_array
    diff = np.abs(back.pixel_array.astype(int) - expected)
    if "-lossless" in encoding:
        assert diff.max() == 0, "lossless"
    if shutil.which("dciodvfy"):
        out = subprocess.run(["dciodvfy", str(tmp_path / "sc.dcm")], capture_output=True,
                             text=True, timeout=60)
        text = out.stdout + out.stderr
        assert [line for line in text.splitlines() if line.startswith("Error")] == [], text


@pytest.mark.network
def test_compressed_sc_reaches_a_pacs_that_takes_it_and_one_that_does_not(
    tmp_path: Path,
) -> None:
    from node_support import StoreSCP, make_dx, write_case
    from pydicom.uid import JPEG2000Lossless
    from pynetdicom.sop_class import SecondaryCaptureImageStorage

    plain_pacs = StoreSCP("PLAIN").start()  # uncompressed transfer syntaxes only
    j2k_pacs = StoreSCP("J2K")
    j2k_pacs.ae.add_supported_context(SecondaryCaptureImageStorage, [JPEG2000Lossless])
    j2k_pacs.start()
    ds, truth = make_dx(3.0)
    write_case(tmp_path / "cases", ds, truth, "k")
    s = Settings.model_validate({
        "storage": {"data_dir": str(tmp_path / "var")},
        "reports": {"sc_transfer_syntax": "jpeg2000-lossless"},
        "delivery": {"destinations": [
            {"name": "plain", "ae_title": "PLAIN", "host": "127.0.0.1", "port": plain_pacs.port},
            {"name": "j2k", "ae_title": "J2K", "host": "127.0.0.1", "port": j2k_pacs.port},
        ]},
    })
    try:
        with KneeNode(s, measurer=TruthMeasurer(tmp_path / "cases"), port=0) as node:
            assert store(node.port, ds) == 0x0000
            assert node.wait_idle(60)
        [plain_sc] = [d for d in plain_pacs.wait_for(2, 30) if d.Modality != "SR"]
        [j2k_sc] = [d for d in j2k_pacs.wait_for(2, 30) if d.Modality != "SR"]
    finally:
        plain_pacs.stop()
        j2k_pacs.stop()
    assert j2k_sc.file_meta.TransferSyntaxUID == JPEG2000Lossless
    assert not plain_sc.file_meta.TransferSyntaxUID.is_compressed
    assert (plain_sc.pixel_array == j2k_sc.pixel_array).all(), "the same image either way"


# -- 16. the algorithm identified once per knee --------------------------------------------
def test_sr_names_the_algorithm_once_per_knee_with_parameters_in_the_equipment() -> None:
    from test_reports_common import knee_landmarks, make_measurement, make_source

    from dicom_node.reports.algorithm import AlgorithmIdentity
    from dicom_node.results import make_results

    left = knee_landmarks(8.0, 2.0, scale=1.2, centre=(150, 320))
    right = knee_landmarks(-4.0, 1.0, scale=1.2, centre=(390, 320), laterality="R")
    source = make_source(knees=(left, right))
    knees = [make_measurement(left), make_measurement(right, laterality="R")]
    sr = make_results(Settings(), source, knees).sr

    names: list[str] = []
    parameters: list[str] = []

    def walk(items: Any) -> None:
        for item in items:
            concept = item.get("ConceptNameCodeSequence")
            if concept and concept[0].CodeValue == "111001":  # Algorithm Name
                names.append(item.TextValue)
            if concept and concept[0].CodeValue == "111002":  # Algorithm Parameters
                parameters.append(item.TextValue)
            walk(item.get("ContentSequence", []))

    walk(sr.ContentSequence)
    assert len(names) == 2, f"once per knee (measurement group), got {len(names)}"
    assert parameters == [], "the parameters are in Contributing Equipment, not per item"
    ident = AlgorithmIdentity.from_model(knees[0].model)  # type: ignore[arg-type]
    [equipment] = [e for e in sr.ContributingEquipmentSequence
                   if e.get("ManufacturerModelName") == ident.name]
    for p in ident.parameters:
        assert p in equipment.ContributionDescription


# -- 15. the overlay shows the angle itself -------------------------------------------------
def test_overlay_axes_meet_and_the_angle_is_drawn_as_an_arc() -> None:
    import math

    import numpy as np
    from test_reports_common import pass_case

    from dicom_node.reports import create_overlay_image
    from dicom_node.reports.overlay import COLOURS, axis_intersection
    from inference.landmarks import PLATEAU_LATERAL_CORNER, PLATEAU_MEDIAL_CORNER

    source, m = pass_case()  # 640x520: drawn at scale 1
    rgb = create_overlay_image(source, [m]).pixel_array.astype(int)
    top = int(np.argmax(np.any(rgb[:, :, :] != COLOURS["banner"], axis=2)[:, 0]))
    femoral, tibial = m.axes("FTS")["femoral"], m.axes("FTS")["tibial"]
    width = float(np.linalg.norm(m.landmarks[PLATEAU_LATERAL_CORNER]
                                 - m.landmarks[PLATEAU_MEDIAL_CORNER]))
    meet = np.asarray(axis_intersection(femoral, tibial, width))
    old_end = np.asarray(femoral.distal) + 0.15 * np.subtract(femoral.distal, femoral.proximal)
    assert np.linalg.norm(meet - old_end) > 10, "the case shows the gap the old drawing left"

    def near(point: np.ndarray, colour: tuple[int, int, int], r: int = 3) -> bool:
        x, y = int(round(point[0])), int(round(point[1])) + top
        patch = rgb[y - r:y + r + 1, x - r:x + r + 1]
        return bool((np.abs(patch - colour).max(axis=2) < 40).any())

    gap = [old_end + t * (meet - old_end) for t in np.linspace(0.1, 0.9, 9)]
    assert all(near(p, COLOURS["femoral_FTS"]) for p in gap), "femoral axis drawn to the meeting"
    below = meet + 0.5 * width * tibial.direction
    assert near(below, COLOURS["tibial"]), "tibial axis drawn from the meeting"
    radius = 1.1 * width
    arc_dir = femoral.direction + tibial.direction
    arc_dir = arc_dir / np.linalg.norm(arc_dir)
    assert near(meet + radius * arc_dir, COLOURS["text"]), "the angle's arc"
    assert math.isclose(m.atfa_deg["FTS"], 6.0, abs_tol=0.05)


@pytest.mark.network
def test_demo_kind_full_leg_sends_a_long_leg_study_and_gets_its_sr_and_sc(
    tmp_path: Path,
) -> None:
    """``knee-node demo --kind full-leg``: a 2800 x 8100 long-leg study through the node
    (the real full-leg model); the demo PACS receives the SR and SC, and the summary gives
    HKA, mLDFA, mMPTA and the CPAK class of each leg next to the generator truth."""
    pytest.importorskip("training.synth_leg")
    run = _cli("demo", "--kind", "full-leg", "--out", str(tmp_path / "demo"),
               "--seed", "900000011", "--timeout", "240", timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    out = run.stdout
    for step in ("making a synthetic full-leg study", "node up", "study sent", "measuring",
                 "SR received by the demo PACS", "SC received by the demo PACS"):
        assert step in out, f"no {step!r} line in:\n{out}"
    legs = [ln.strip() for ln in out.splitlines() if ln.strip().startswith(("right leg",
                                                                           "left leg"))]
    assert len(legs) == 2, out
    for line in legs:
        assert "truth HKA" in line and "CPAK" in line, line
        if "FLAGGED" not in line:
            assert "mLDFA" in line and "mMPTA" in line, line
    received = sorted(p.name[:2] for p in (tmp_path / "demo" / "pacs").iterdir())
    assert received == ["OT", "SR"]
    sr = tmp_path / "demo" / "var" / "results" / "job-000001" / "sr.dcm"
    assert sr.is_file()


def test_demo_refuses_an_unknown_kind(tmp_path: Path) -> None:
    run = _cli("demo", "--kind", "elbow", "--out", str(tmp_path / "demo"), timeout=60)
    assert run.returncode == 1
    assert "kind must be one of knee-ap, full-leg, got 'elbow'" in run.stderr
