"""Issue 18: each attack of the security review, reproduced, and what now stops it.

Slowloris on the A-ASSOCIATE-RQ and on P-DATA, a deflate bomb, planted PHI in malformed
patient attributes, a 10k-character name, a resend while the PACS is down, world-readable
files, a wrong called AE title, idle metrics connections. See docs/security.md.
"""

from __future__ import annotations

import contextlib
import grp
import logging
import os
import shutil
import socket
import stat
import subprocess
import threading
import time
import warnings
import zlib
from pathlib import Path
from typing import Any

import pytest
import yaml
from node_support import StoreSCP, free_port
from pydicom import Dataset, dcmread
from pydicom import config as pydicom_config
from pydicom.dataset import FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset, write_file_meta_info
from pydicom.uid import DeflatedExplicitVRLittleEndian, generate_uid
from pynetdicom import AE, _config
from pynetdicom.sop_class import DigitalXRayImageStorageForPresentation, Verification
from reliability_support import HeaderTruthMeasurer, knee_case
from sqlalchemy import inspect, select, text
from typer.testing import CliRunner

from dicom_node.cli import app
from dicom_node.db import AuditEvent, Delivery, Job, ReceivedInstance
from dicom_node.node import KneeNode
from dicom_node.settings import Settings, load_settings

pytestmark = pytest.mark.network

ALLOWED = "MODALITY"


def _settings(tmp_path: Path, **sections: Any) -> Settings:
    data: dict[str, Any] = {"storage": {"data_dir": str(tmp_path / "var")}}
    for key, value in sections.items():
        data.setdefault(key, {}).update(value)
    return Settings.model_validate(data)


def _echo(port: int, ae_title: str = ALLOWED, called: str = "KNEE_NODE") -> tuple[bool, float]:
    ae = AE(ae_title=ae_title)
    ae.add_requested_context(Verification)
    t0 = time.monotonic()
    assoc = ae.associate("127.0.0.1", port, ae_title=called)
    ok = assoc.is_established and assoc.send_c_echo().Status == 0
    if assoc.is_established:
        assoc.release()
    return ok, time.monotonic() - t0


def _closed(sock: socket.socket) -> bool:
    """True once the peer has closed ``sock`` (recv gives b'' or an error)."""
    sock.settimeout(0.05)
    try:
        return sock.recv(1) == b""
    except TimeoutError:
        return False
    except OSError:
        return True


def _rq_prefix(calling: str) -> bytes:
    """The first bytes of an A-ASSOCIATE-RQ from ``calling`` (never completed)."""
    body = b"\x00\x01\x00\x00" + b"KNEE_NODE".ljust(16) + calling.encode().ljust(16) + bytes(32)
    return b"\x01\x00" + (len(body) + 200).to_bytes(4, "big") + body


# -- 1. slowloris ---------------------------------------------------------------------
def test_slowloris_on_the_association_request_cannot_lock_the_allowed_caller_out(
    tmp_path: Path,
) -> None:
    deadline = 2.0
    s = _settings(
        tmp_path,
        node={
            "allowed_callers": [{"ae_title": ALLOWED}],
            "limits": {
                "max_associations": 2,
                "max_pending_connections": 4,
                "association_request_deadline_s": deadline,
            },
        },
    )
    with KneeNode(s, measurer=HeaderTruthMeasurer(), port=0) as node:
        attackers = [socket.create_connection(("127.0.0.1", node.port)) for _ in range(10)]
        prefix = _rq_prefix("NOT_ALLOWED")
        stop = threading.Event()

        def trickle() -> None:  # one byte per socket every 0.2 s, as the review did
            for i in range(len(prefix)):
                for sock in attackers:
                    with contextlib.suppress(OSError):
                        sock.send(prefix[i : i + 1])
                if stop.wait(0.2):
                    return

        t = threading.Thread(target=trickle, daemon=True)
        t.start()
        t0 = time.monotonic()
        try:
            time.sleep(0.5)  # the attack is under way
            for _ in range(3):  # the allowed caller gets through, and again
                ok, took = _echo(node.port)
                assert ok, "the allowed caller was locked out"
                assert took < deadline
            # every attacker socket is closed within the deadline (plus scheduling slack)
            while time.monotonic() - t0 < deadline + 3 and not all(map(_closed, attackers)):
                time.sleep(0.1)
            assert all(_closed(sock) for sock in attackers), "an attacker kept its connection"
            assert time.monotonic() - t0 < deadline + 3
            assert node.ae is not None and node.ae.guard is not None
            assert node.ae.guard.counts[0] == 0, "no pending connection left"
            assert _echo(node.port)[0]
        finally:
            stop.set()
            for sock in attackers:
                sock.close()


def test_p_data_trickle_is_cut_at_the_pdu_deadline(tmp_path: Path) -> None:
    s = _settings(tmp_path, node={"limits": {"pdu_deadline_s": 1.0}})
    with KneeNode(s, measurer=HeaderTruthMeasurer(), port=0) as node:
        ae = AE(ae_title=ALLOWED)
        ae.add_requested_context(Verification)
        assoc = ae.associate("127.0.0.1", node.port, ae_title="KNEE_NODE")
        assert assoc.is_established
        raw = assoc.dul.socket.socket  # type: ignore[union-attr]
        raw.send(b"\x04\x00" + (100).to_bytes(4, "big"))  # a P-DATA-TF of 100 bytes ...
        t0 = time.monotonic()
        while assoc.is_alive() and time.monotonic() - t0 < 8:
            try:
                raw.send(b"\x00")  # ... one byte at a time
            except OSError:
                break
            time.sleep(0.3)
        took = time.monotonic() - t0
        assert took < 4, f"the trickle held the association {took:.1f} s"
        assert _echo(node.port)[0]


# -- 2. decompression bomb --------------------------------------------------------------
def _deflate_bomb(path: Path, side: int = 16384) -> Dataset:
    """A deflated DX instance of ``side`` x ``side`` 16-bit zeros, written in chunks."""
    ds = knee_case(2.0, rows=16, cols=16)
    del ds.PixelData
    ds.Rows = ds.Columns = side
    buf = DicomBytesIO()
    buf.is_little_endian, buf.is_implicit_VR = True, False
    write_dataset(buf, ds)
    n = side * side * 2
    pixel_header = b"\xe0\x7f\x10\x00OW\x00\x00" + n.to_bytes(4, "little")
    meta = FileMetaDataset(ds.file_meta)
    meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    z = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    with open(path, "wb") as fh:
        fh.write(b"\x00" * 128 + b"DICM")
        write_file_meta_info(fh, meta)  # type: ignore[arg-type]
        fh.write(z.compress(buf.getvalue() + pixel_header))
        zeros = bytes(1 << 22)
        for _ in range(n // len(zeros)):
            fh.write(z.compress(zeros))
        fh.write(z.flush())
    return ds


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc for RSS")
def test_deflate_bomb_gets_a_failure_status_within_the_memory_bound(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.dcm"
    ds = _deflate_bomb(bomb)
    assert bomb.stat().st_size < 2_000_000  # 512 MiB of pixels in well under 2 MB
    s = _settings(tmp_path)
    with KneeNode(s, measurer=HeaderTruthMeasurer(), port=0) as node:
        base = _rss_mb()
        peak = [base]
        done = threading.Event()

        def sample() -> None:
            while not done.wait(0.01):
                peak[0] = max(peak[0], _rss_mb())

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        ae = AE(ae_title=ALLOWED)
        ae.add_requested_context(
            DigitalXRayImageStorageForPresentation, DeflatedExplicitVRLittleEndian
        )
        _config.STORE_SEND_CHUNKED_DATASET = True  # send the file as it is, not decoded
        try:
            assoc = ae.associate("127.0.0.1", node.port, ae_title="KNEE_NODE")
            assert assoc.is_established
            rsp = assoc.send_c_store(bomb)
            assoc.release()
        finally:
            _config.STORE_SEND_CHUNKED_DATASET = False
            done.set()
            sampler.join()
        assert rsp.Status == 0xA700, hex(rsp.Status)
        assert "limit" in str(rsp.get("ErrorComment", ""))
        grew = peak[0] - base
        assert grew < 150, f"receiving the bomb grew the node's RSS by {grew:.0f} MB"
        assert node.wait_idle(30)
        with node.ctx.db.session() as sess:
            [row] = sess.scalars(select(ReceivedInstance)).all()
            assert row.state == "rejected" and "max_decoded_bytes" in (row.reason or "")
            assert row.sop_instance_uid == str(ds.SOPInstanceUID)
            assert sess.scalars(select(Job)).all() == [], "nothing was measured"
        assert list(s.storage.spool.iterdir()) == [], "nothing kept in the spool"
        assert _echo(node.port)[0], "the node keeps serving"


# -- 3 and 4. PHI never in errors; our output always valid ---------------------------------
PLANTED_BIRTH = "1967-11-03"
PLANTED_SEX = "SECRETSEX"
PLANTED_NAME = "Plantedname^" + "Q" * 10_000 + "\x1b\r\n\x00"
PLANTED_ID = "PLANTEDID" * 557  # 5,013 characters


def _planted_case() -> Dataset:
    ds = knee_case(3.0)
    previous = pydicom_config.settings.writing_validation_mode
    pydicom_config.settings.writing_validation_mode = pydicom_config.IGNORE  # a sender's bug
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds.PatientBirthDate = PLANTED_BIRTH
            ds.PatientSex = PLANTED_SEX
            ds.PatientName = PLANTED_NAME
            ds.PatientID = PLANTED_ID
    finally:
        pydicom_config.settings.writing_validation_mode = previous
    return ds


def _push(port: int, ds: Dataset) -> int:
    ae = AE(ae_title=ALLOWED)
    ae.add_requested_context(ds.SOPClassUID, ds.file_meta.TransferSyntaxUID)
    assoc = ae.associate("127.0.0.1", port, ae_title="KNEE_NODE")
    assert assoc.is_established
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        status = int(assoc.send_c_store(ds).Status)
    assoc.release()
    return status


def _every_value_in_the_database(node: KneeNode) -> str:
    engine = node.ctx.db.engine if hasattr(node.ctx.db, "engine") else None
    assert engine is not None
    dump = []
    with engine.connect() as conn:
        for table in inspect(engine).get_table_names():
            for row in conn.execute(text(f'SELECT * FROM "{table}"')):
                dump.append(" ".join(map(str, row)))
    return "\n".join(dump)


PLANTED = (PLANTED_BIRTH, PLANTED_SEX, "Plantedname", "QQQQQQQQ", "PLANTEDID")


def test_malformed_patient_attributes_neither_stop_the_measurement_nor_leak(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    pacs = StoreSCP().start()
    s = _settings(
        tmp_path,
        delivery={
            "destinations": [
                {"name": "pacs", "ae_title": "TEST_PACS", "host": "127.0.0.1", "port": pacs.port}
            ]
        },
    )
    try:
        with KneeNode(s, measurer=HeaderTruthMeasurer(), port=0) as node:
            case = _planted_case()
            caplog.clear()  # from here on, only what the node logs
            assert _push(node.port, case) == 0x0000
            assert node.wait_idle(60)
            received = pacs.wait_for(2, 30)
            with node.ctx.db.session() as sess:
                [job] = sess.scalars(select(Job)).all()
                assert job.state == "done", job.error
                warned = " ".join(job.warnings or [])
            for keyword in ("PatientBirthDate", "PatientSex", "PatientName", "PatientID"):
                assert keyword in warned, (keyword, warned)
            dump = _every_value_in_the_database(node)
    finally:
        pacs.stop()
    assert len(received) == 2
    sr = next(d for d in received if d.Modality == "SR")
    assert str(sr.PatientName) == "" and str(sr.PatientID) == "" and sr.PatientSex == ""
    for planted in PLANTED:
        assert planted not in caplog.text, f"{planted[:12]} in the log"
        assert planted not in dump, f"{planted[:12]} in the database"
        assert planted not in warned
    if shutil.which("dciodvfy") is not None:
        path = tmp_path / "sr.dcm"
        sr.save_as(path, enforce_file_format=True)
        out = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, timeout=60)
        errors = [ln for ln in (out.stdout + out.stderr).splitlines() if ln.startswith("Error")]
        assert errors == [], errors


class _QuotingMeasurer(HeaderTruthMeasurer):
    """Fails as libraries do: quoting the patient attribute it refuses."""

    def measure(self, ds: Dataset) -> list[Any]:
        raise ValueError(f"Unable to convert '{ds.PatientBirthDate}' for '{ds.PatientSex}'")


def test_an_error_quoting_a_patient_value_is_recorded_and_logged_without_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="dicom_node")
    s = _settings(tmp_path)
    ds = knee_case(3.0)
    ds.PatientBirthDate, ds.PatientSex = "19671103", "O"
    with KneeNode(s, measurer=_QuotingMeasurer(), port=0) as node:
        assert _push(node.port, ds) == 0x0000
        assert node.wait_idle(60)
        with node.ctx.db.session() as sess:
            [job] = sess.scalars(select(Job)).all()
            assert job.state == "failed" and "ValueError" in (job.error or "")
            assert "19671103" not in job.error and "<redacted>" in job.error
        dump = _every_value_in_the_database(node)
    assert "19671103" not in caplog.text and "19671103" not in dump


# -- 5. deliveries cannot stick ------------------------------------------------------------
def test_resend_while_the_pacs_is_down_is_taken_over_and_delivered_when_it_is_back(
    tmp_path: Path,
) -> None:
    port = free_port()
    config = tmp_path / "config.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "storage": {"data_dir": str(tmp_path / "var")},
                "delivery": {
                    "destinations": [
                        {"name": "pacs", "ae_title": "TEST_PACS", "host": "127.0.0.1", "port": port}
                    ],
                    "max_attempts": 2,
                    "backoff_initial_s": 0.2,
                    "backoff_max_s": 0.5,
                    "sweep_interval_s": 0.3,
                },
                "node": {"limits": {"acse_timeout_s": 2, "network_timeout_s": 2}},
            }
        )
    )
    s = load_settings(config, environ={})
    runner = CliRunner()
    with KneeNode(s, measurer=HeaderTruthMeasurer(), port=0) as node:
        assert _push(node.port, knee_case(2.0)) == 0x0000
        t0 = time.monotonic()
        while time.monotonic() - t0 < 30:  # the node gives up: the PACS is down
            with node.ctx.db.session() as sess:
                states = [d.state for d in sess.scalars(select(Delivery))]
            if len(states) == 2 and all(x == "failed" for x in states):
                break
            time.sleep(0.2)
        assert states == ["failed", "failed"], states  # the SR's delivery and the SC's
        out = runner.invoke(app, ["resend", "--undelivered", "--config", str(config)])
        assert "retry loop takes it over" in out.output, out.output
        with node.ctx.db.session() as sess:
            rows = sess.scalars(select(Delivery)).all()
            assert [(d.state, d.attempts) for d in rows] == [("retrying", 1)] * 2
        pacs = StoreSCP()
        pacs.port = port
        pacs.start()  # the PACS is back
        try:
            got = pacs.wait_for(2, 30)
            time.sleep(1.0)  # nothing more arrives
            assert len(pacs.received) == 2, "SR and SC, each once"
            assert sorted(x.Modality for x in got) == ["OT", "SR"] or len(got) == 2
            with node.ctx.db.session() as sess:
                rows = sess.scalars(select(Delivery)).all()
                assert [d.state for d in rows] == ["delivered"] * 2
        finally:
            pacs.stop()


# -- 6. private by default -----------------------------------------------------------------
def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_data_directory_and_files_are_private_whatever_the_umask(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    var = tmp_path / "var"
    var.mkdir(mode=0o755)
    os.chmod(var, 0o755)  # as an admin's mkdir left it
    old = os.umask(0o022)
    pacs = StoreSCP().start()
    try:
        s = _settings(
            tmp_path,
            storage={"keep_source": True},
            delivery={
                "destinations": [
                    {"name": "p", "ae_title": "TEST_PACS", "host": "127.0.0.1", "port": pacs.port}
                ]
            },
        )
        with KneeNode(s, measurer=HeaderTruthMeasurer(), port=0) as node:
            assert "open to other users" in caplog.text
            assert _push(node.port, knee_case(2.0)) == 0x0000
            assert node.wait_idle(60)
            pacs.wait_for(2, 30)
        folders = [var, s.storage.spool, s.storage.results, *s.storage.results.iterdir()]
        files = [p for p in var.rglob("*") if p.is_file() and p.name != "knee-node.lock"]
        assert any(p.suffix == ".sqlite" for p in files) and any(p.name == "sr.dcm" for p in files)
        assert any(p.parent == s.storage.spool for p in files), "the kept source"
        assert {str(p): oct(_mode(p)) for p in folders if _mode(p) != 0o700} == {}
        assert {str(p): oct(_mode(p)) for p in files if _mode(p) != 0o600} == {}
    finally:
        os.umask(old)
        pacs.stop()


def test_a_configured_group_gets_read_access_only(tmp_path: Path) -> None:
    group = grp.getgrgid(os.getgid()).gr_name
    s = _settings(tmp_path, storage={"group": group})
    with KneeNode(s, measurer=HeaderTruthMeasurer(), port=0) as node:
        assert _push(node.port, knee_case(2.0)) == 0x0000
        assert node.wait_idle(60)
    sr = next(s.storage.results.rglob("sr.dcm"))
    assert _mode(sr) == 0o640 and _mode(sr.parent) == 0o750 and _mode(s.storage.data_dir) == 0o750
    assert dcmread(sr).Modality == "SR"
    with pytest.raises(ValueError, match="group"):
        _settings(tmp_path, storage={"group": "no-such-" + generate_uid()[-8:]})


# -- 7. the smaller gaps -----------------------------------------------------------------
def test_a_wrong_called_ae_title_is_logged_audited_and_counted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    from dicom_node.metrics import NodeCollector

    s = _settings(tmp_path)
    with KneeNode(s, measurer=HeaderTruthMeasurer(), port=0) as node:
        ok, _ = _echo(node.port, called="SOMEONE_ELSE")
        assert not ok
        time.sleep(0.3)
        with node.ctx.db.session() as sess:
            rows = [
                (a.event, a.ae_title, a.detail)
                for a in sess.scalars(select(AuditEvent))
                if a.event == "association_rejected"
            ]
        assert rows == [("association_rejected", ALLOWED, "called AE title not recognised")]
        assert "called AE title not recognised" in caplog.text
        metrics = {
            sample.name: sample.value
            for family in NodeCollector(node.ctx).collect()
            for sample in family.samples
        }
        assert metrics.get("knee_node_associations_rejected_total") == 1.0, metrics


def test_metrics_server_closes_idle_connections_and_bounds_its_threads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from urllib.request import urlopen

    from dicom_node import metrics

    monkeypatch.setattr(metrics, "REQUEST_TIMEOUT_S", 0.5)
    s = _settings(tmp_path)
    node = KneeNode(s, measurer=HeaderTruthMeasurer(), port=0).start()
    server = metrics.MetricsServer(node.ctx, port=0).start()
    try:
        threads_before = threading.active_count()
        idle = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(50)]
        time.sleep(0.3)
        assert threading.active_count() - threads_before <= metrics.MAX_CONCURRENT_REQUESTS
        time.sleep(1.0)
        assert all(_closed(sock) for sock in idle), "idle metrics connections stay open"
        for sock in idle:
            sock.close()
        with urlopen(f"http://127.0.0.1:{server.port}/healthz", timeout=5) as rsp:
            assert rsp.status in (200, 503)
    finally:
        server.stop()
        node.stop()
