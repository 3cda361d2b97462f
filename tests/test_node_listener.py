"""The listener with real pynetdicom peers: a modality pushing, a PACS receiving.

Measurements come from a test double returning the ground truth (tests/node_support.py);
the acceptance test with the real predictor is tests/test_node_e2e.py.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pynetdicom
import pytest
import yaml
from node_support import (
    PHI_BIRTH,
    PHI_ID,
    PHI_NAME,
    StoreSCP,
    TruthMeasurer,
    free_port,
    make_dx,
    sr_atfa,
    write_case,
)
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLSLossless,
    RLELossless,
)
from pynetdicom import AE
from pynetdicom.sop_class import Verification
from sqlalchemy import select
from typer.testing import CliRunner

from dicom_node.cli import app
from dicom_node.db import AuditEvent, Delivery, Job, ReceivedInstance
from dicom_node.node import KneeNode
from dicom_node.settings import load_settings

pytestmark = pytest.mark.network


class Env:
    """A node, its config file, its truth folder and a PACS, all on loopback."""

    def __init__(self, tmp: Path, pacs_port: int | None = None, **overrides: Any) -> None:
        self.tmp = tmp
        self.cases = tmp / "cases"
        self.cases.mkdir(exist_ok=True)
        self.pacs = StoreSCP()
        if pacs_port is not None:
            self.pacs.port = pacs_port
        cfg: dict[str, Any] = {
            "storage": {"data_dir": str(tmp / "var")},
            "delivery": {
                "destinations": [
                    {
                        "name": "pacs",
                        "ae_title": "TEST_PACS",
                        "host": "127.0.0.1",
                        "port": self.pacs.port,
                    }
                ],
                "backoff_initial_s": 0.1,
                "max_attempts": 3,
            },
        }
        for section, values in overrides.items():
            cfg.setdefault(section, {}).update(values)
        self.config = tmp / "config.yaml"
        self.config.write_text(yaml.safe_dump(cfg))
        self.settings = load_settings(self.config, environ={})
        self.node = KneeNode(self.settings, measurer=TruthMeasurer(self.cases), port=0)

    def push(self, *datasets: Dataset | Path, calling: str = "MODALITY") -> list[int | None]:
        """C-STORE each dataset in one association; the statuses answered."""
        ae = AE(ae_title=calling)
        for ds in datasets:
            d = dcmread(ds, stop_before_pixels=True) if isinstance(ds, Path) else ds
            ae.add_requested_context(
                d.file_meta.MediaStorageSOPClassUID, d.file_meta.TransferSyntaxUID
            )
        assoc = ae.associate("127.0.0.1", self.node.port, ae_title="KNEE_NODE")
        assert assoc.is_established
        out = [getattr(assoc.send_c_store(ds), "Status", None) for ds in datasets]
        assoc.release()
        return out

    def case(self, stem: str, **kw: Any) -> tuple[Dataset, dict[str, Any]]:
        ds, truth = make_dx(**kw)
        write_case(self.cases, ds, truth, stem)
        return ds, truth

    def rows(self, model: type) -> list[Any]:
        with self.node.ctx.db.session() as s:
            return list(s.scalars(select(model).order_by(model.id)))


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    e = Env(tmp_path)
    e.pacs.start()
    e.node.start()
    yield e
    e.node.stop()
    e.pacs.stop()


def test_echo(env: Env) -> None:
    ae = AE(ae_title="MODALITY")
    ae.add_requested_context(Verification)
    assoc = ae.associate("127.0.0.1", env.node.port, ae_title="KNEE_NODE")
    assert assoc.is_established
    assert assoc.send_c_echo().Status == 0x0000
    assoc.release()


@pytest.mark.parametrize(
    "syntax", [None, DeflatedExplicitVRLittleEndian, RLELossless, JPEG2000Lossless, JPEGLSLossless]
)
def test_knee_is_measured_and_sr_and_sc_reach_the_pacs(env: Env, syntax: str | None) -> None:
    ds, truth = env.case("a", atfa_deg=-6.5)
    if syntax == DeflatedExplicitVRLittleEndian:
        ds.file_meta.TransferSyntaxUID = syntax  # pynetdicom deflates when it encodes
    elif syntax is not None:
        ds.compress(syntax, generate_instance_uid=False)
    assert env.push(ds) == [0x0000]
    assert env.node.wait_idle(60)
    got = env.pacs.wait_for(2, 10)
    assert sorted(g.Modality for g in got) == ["OT", "SR"]
    assert {str(g.StudyInstanceUID) for g in got} == {str(ds.StudyInstanceUID)}
    [sr] = [g for g in got if g.Modality == "SR"]
    assert sr_atfa(sr)["FNTS"] == [pytest.approx(truth["atfa_deg"]["FNTS"], abs=0.01)]
    [job] = env.rows(Job)
    assert job.state == "done" and job.verdict == "varus"
    assert job.value("aTFA FTS").value == pytest.approx(truth["atfa_deg"]["FTS"], abs=1e-6)
    assert job.value("aTFA FNTS").value == pytest.approx(-6.5, abs=1e-6)
    assert job.model_name == "truth-double" and job.timings_ms["total_ms"] > 0
    assert Path(job.output_path("SR")).is_file() and Path(job.output_path("SC")).is_file()
    # the SR's delivery, then the SC's (made after the SR is queued)
    assert [(d.object_kinds, d.state, d.attempts) for d in env.rows(Delivery)] == [
        (["SR"], "delivered", 1), (["SC"], "delivered", 1)]
    [inst] = env.rows(ReceivedInstance)
    assert inst.state == "measured" and inst.spool_path is None
    assert not list(env.settings.storage.spool.glob("*.dcm")), "measured source not kept"
    status = CliRunner().invoke(app, ["status", "--config", str(env.config)])
    assert status.exit_code == 0 and "-6.5°" in status.output and "varus" in status.output


def test_unknown_calling_ae_is_rejected(tmp_path: Path) -> None:
    e = Env(tmp_path, node={"allowed_callers": [{"ae_title": "MODALITY"}]})
    with e.node:
        ae = AE(ae_title="STRANGER")
        ae.add_requested_context(Verification)
        assoc = ae.associate("127.0.0.1", e.node.port, ae_title="KNEE_NODE")
        assert assoc.is_rejected and not assoc.is_established
        ae.ae_title = "MODALITY"
        ok = ae.associate("127.0.0.1", e.node.port, ae_title="KNEE_NODE")
        assert ok.is_established
        ok.release()
        events = [(a.event, a.ae_title) for a in e.rows(AuditEvent)]
        assert ("association_rejected", "STRANGER") in events
        assert ("association_accepted", "MODALITY") in events


def test_caller_from_a_foreign_address_is_rejected(tmp_path: Path) -> None:
    e = Env(tmp_path, node={"allowed_callers": [{"ae_title": "*", "addresses": ["10.9.0.0/16"]}]})
    with e.node:
        ae = AE(ae_title="MODALITY")
        ae.add_requested_context(Verification)
        assoc = ae.associate("127.0.0.1", e.node.port, ae_title="KNEE_NODE")
        # refused at accept time, before any PDU (issue 18): the connection is closed
        assert not assoc.is_established
        events = [(a.event, a.peer_address, a.detail) for a in e.rows(AuditEvent)]
        rejected = ("association_rejected", "127.0.0.1", "address not in node.allowed_callers")
        assert rejected in events


def test_non_knee_is_ignored_and_not_kept(env: Env) -> None:
    chest, _ = env.case("chest", body_part="CHEST")
    lateral, _ = env.case("lat", view="LL")
    assert env.push(chest, lateral) == [0x0000, 0x0000]
    assert env.node.wait_idle(30)
    rows = env.rows(ReceivedInstance)
    assert [r.state for r in rows] == ["ignored", "ignored"]
    assert "BodyPartExamined CHEST" in rows[0].reason and "ViewPosition LL" in rows[1].reason
    assert all(r.spool_path is None for r in rows)
    assert not list(env.settings.storage.spool.iterdir()), "ignored instances must not be kept"
    assert env.rows(Job) == []


def _corrupt_file(folder: Path) -> Path:
    """Valid file meta, then bytes that are not a dataset."""
    ds, _ = make_dx()
    good = folder / "good.dcm"
    ds.save_as(good, enforce_file_format=True)
    raw = good.read_bytes()
    meta_end = raw.index(b"\x08\x00")  # first (0008,xxxx) element follows the file meta
    bad = folder / "corrupt.dcm"
    bad.write_bytes(raw[:meta_end] + b"\x08\x00\x16\x00UI\xff\xff" + b"\x00garbage" * 8)
    return bad


def test_corrupt_instance_fails_and_the_node_keeps_serving(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pynetdicom._config, "STORE_SEND_CHUNKED_DATASET", True)  # raw bytes
    bad = _corrupt_file(env.tmp)
    truncated, _ = env.case("trunc")
    truncated.PixelData = truncated.PixelData[:100]  # header fine, pixels cut short
    statuses = env.push(bad, truncated)
    assert statuses[0] is not None and statuses[0] != 0x0000, "a corrupt dataset is never success"
    assert statuses[1] == 0x0000
    assert env.node.wait_idle(30)
    good, truth = env.case("good", atfa_deg=3.0)
    assert env.push(good) == [0x0000]
    assert env.node.wait_idle(30)
    rows = env.rows(ReceivedInstance)
    assert [r.state for r in rows] == ["rejected", "failed", "measured"]
    assert "cannot understand" in rows[0].reason
    jobs = env.rows(Job)
    assert jobs[0].state == "failed" and jobs[0].error
    assert jobs[1].state == "done"
    assert jobs[1].value("aTFA FTS").value == pytest.approx(truth["atfa_deg"]["FTS"])


@pytest.mark.filterwarnings("ignore:Invalid value for VR UI")
def test_uid_crafted_as_a_path_stays_in_the_spool(env: Env, tmp_path: Path) -> None:
    ds, _ = make_dx()
    ds.SOPInstanceUID = "../../../../../../tmp/knee-node-escape"
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    escape = Path("/tmp/knee-node-escape")
    escape.unlink(missing_ok=True)
    env.push(ds)
    env.node.wait_idle(30)
    assert not escape.exists()
    [row] = env.rows(ReceivedInstance)
    spool = env.settings.storage.spool.resolve()
    assert row.spool_path is not None, "kept for inspection after its measurement failed"
    assert Path(row.spool_path).resolve().parent == spool
    assert ".." not in Path(row.spool_path).name


def test_storage_failure_answers_a_failure_status(env: Env) -> None:
    spool = env.settings.storage.spool
    shutil.rmtree(spool)
    spool.write_text("a file where the spool folder should be")  # every write now fails
    ds, _ = env.case("a")
    assert env.push(ds) == [0xA700]
    assert env.rows(ReceivedInstance) == []
    shutil.rmtree(spool.parent / "spool", ignore_errors=True)
    spool.unlink()
    assert env.push(ds) == [0x0000], "the node recovers once the disk is back"


def test_delivery_retries_gives_up_then_resend_delivers(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there yet
    e = Env(tmp_path, pacs_port=port)
    with e.node:
        ds, _ = e.case("a")
        assert e.push(ds) == [0x0000]
        assert e.node.wait_idle(60)
        rows = e.rows(Delivery)  # the SR's, then the SC's
        assert [(d.object_kinds, d.state, d.attempts) for d in rows] == [
            (["SR"], "failed", 3), (["SC"], "failed", 3)]
        assert all("association" in d.last_error for d in rows)
    e.pacs.start()
    try:
        result = CliRunner().invoke(app, ["resend", "--undelivered", "--config", str(e.config)])
        assert result.exit_code == 0, result.output
        assert "2 of 2 delivered" in result.output
        assert sorted(g.Modality for g in e.pacs.wait_for(2, 10)) == ["OT", "SR"]
        again = CliRunner().invoke(app, ["resend", "--job", "1", "--config", str(e.config)])
        assert again.exit_code == 0 and len(e.pacs.wait_for(4, 10)) == 4
    finally:
        e.pacs.stop()


def test_info_logs_carry_no_patient_data(env: Env, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    good, _ = env.case("a")
    unknown, _ = make_dx()  # no truth: the measurement fails
    chest, _ = env.case("c", body_part="CHEST")
    env.push(good, unknown, chest)
    assert env.node.wait_idle(60)
    env.pacs.wait_for(2, 10)
    text = caplog.text
    assert "job 1" in text, "the test must actually capture the node's logs"
    for phi in (PHI_NAME, PHI_ID, PHI_BIRTH, "Doe", "Janet"):
        assert phi not in text
    for event in env.rows(AuditEvent):
        assert PHI_ID not in str(event.detail) and "Doe" not in str(event.detail)
