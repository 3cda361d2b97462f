"""Runtime behaviour: flagged results, resuming after a restart, TLS, limits, the demo."""

from __future__ import annotations

import json
import shutil
import ssl
import subprocess
import time
from pathlib import Path

import pytest
from node_support import StoreSCP, TruthMeasurer, make_dx, sr_atfa, write_case
from pydicom import dcmread
from pynetdicom import AE
from pynetdicom.sop_class import Verification
from sqlalchemy import select

from dicom_node.db import Job, ReceivedInstance
from dicom_node.listener import make_ae
from dicom_node.node import KneeNode
from dicom_node.settings import Settings
from dicom_node.spool import store_received
from inference.landmarks import PLATEAU_LATERAL_CORNER, PLATEAU_MEDIAL_CORNER

pytestmark = pytest.mark.network


def _settings(tmp: Path, **extra: dict) -> Settings:
    cfg: dict = {"storage": {"data_dir": str(tmp / "var")}}
    cfg.update(extra)
    return Settings.model_validate(cfg)


def _push(port: int, ds: object) -> int:
    ae = AE(ae_title="MODALITY")
    ae.add_requested_context(ds.SOPClassUID, ds.file_meta.TransferSyntaxUID)  # type: ignore[attr-defined]
    assoc = ae.associate("127.0.0.1", port, ae_title="KNEE_NODE")
    assert assoc.is_established
    status = assoc.send_c_store(ds).Status
    assoc.release()
    return int(status)


@pytest.mark.parametrize("degenerate", [False, True])
def test_flagged_result_is_sent_marked_and_without_a_confident_angle(
    tmp_path: Path, degenerate: bool
) -> None:
    ds, truth = make_dx(4.0)
    truth.update(quality="flag", flag_reasons=["landmarks implausible"])
    if degenerate:  # landmarks that define no angle at all
        corners = (PLATEAU_MEDIAL_CORNER, PLATEAU_LATERAL_CORNER)
        truth["landmarks"][corners[1]] = truth["landmarks"][corners[0]]
    write_case(tmp_path / "cases", ds, truth, "f")
    pacs = StoreSCP().start()
    s = _settings(
        tmp_path,
        delivery={
            "destinations": [
                {"name": "p", "ae_title": "TEST_PACS", "host": "127.0.0.1", "port": pacs.port}
            ]
        },
    )
    try:
        with KneeNode(s, measurer=TruthMeasurer(tmp_path / "cases"), port=0) as node:
            assert _push(node.port, ds) == 0
            assert node.wait_idle(60)
            with node.ctx.db.session() as sess:
                job = sess.scalars(select(Job)).one()
                assert (job.state, job.quality) == ("flagged", "flag")
                assert job.verdict == "not determined (flagged)"
                assert job.measurements[0].flag_reasons == ["landmarks implausible"]
                assert (job.value("aTFA FTS").value is None) is degenerate
        got = pacs.wait_for(2, 10)
        [sr] = [g for g in got if g.Modality == "SR"]
        assert sr_atfa(sr) == {"FTS": [], "FNTS": []}, "no confident angle in a flagged SR"
    finally:
        pacs.stop()


def test_queued_instance_is_measured_after_a_restart(tmp_path: Path) -> None:
    ds, truth = make_dx(2.0)
    write_case(tmp_path / "cases", ds, truth, "r")
    s = _settings(tmp_path)
    node = KneeNode(s, measurer=TruthMeasurer(tmp_path / "cases"), port=0)
    node.start()
    node.stop()
    # as if the node had stored and recorded an instance, then stopped before measuring it
    raw = tmp_path / "raw.dcm"
    ds.save_as(raw, enforce_file_format=True)
    spooled = s.storage.spool / "x.dcm"
    shutil.copy(raw, spooled)
    with node.ctx.db.session() as sess:
        sess.add(
            ReceivedInstance(
                calling_ae_title="MODALITY",
                peer_address="127.0.0.1",
                sop_class_uid=str(ds.SOPClassUID),
                sop_instance_uid=str(ds.SOPInstanceUID),
                transfer_syntax_uid=str(ds.file_meta.TransferSyntaxUID),
                spool_path=str(spooled),
                state="queued",
            )
        )
    with KneeNode(s, measurer=TruthMeasurer(tmp_path / "cases"), port=0) as again:
        assert again.wait_idle(60)
        with again.ctx.db.session() as sess:
            job = sess.scalars(select(Job)).one()
            assert job.state == "done"
            assert job.value("aTFA FTS").value == pytest.approx(truth["atfa_deg"]["FTS"])


def test_spool_files_are_complete_dicom_named_by_hash(tmp_path: Path) -> None:
    ds, _ = make_dx()
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_dataset

    buf = DicomBytesIO()
    buf.is_little_endian, buf.is_implicit_VR = True, False
    write_dataset(buf, ds)
    path = store_received(tmp_path, "1.2/../../evil", ds.file_meta, buf.getvalue())
    assert path.parent == tmp_path and "evil" not in path.name and path.suffix == ".dcm"
    assert dcmread(path).SOPInstanceUID == ds.SOPInstanceUID
    assert not list(tmp_path.glob(".*.tmp")), "no temporary file left behind"


def test_limits_reach_the_application_entity(tmp_path: Path) -> None:
    s = _settings(
        tmp_path,
        node={
            "limits": {
                "max_associations": 3,
                "acse_timeout_s": 7,
                "dimse_timeout_s": 8,
                "network_timeout_s": 9,
                "max_pdu_size": 65536,
            }
        },
    )
    node = KneeNode(s, measurer=TruthMeasurer(tmp_path))
    ae = make_ae(node.ctx)
    assert (
        ae.maximum_associations,
        ae.acse_timeout,
        ae.dimse_timeout,
        ae.network_timeout,
        ae.maximum_pdu_size,
    ) == (2 * (3 + 16), 7, 8, 9, 65536)  # pynetdicom's cap leaves room for pending ones
    node.ctx.db.dispose()


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)


def _pki(folder: Path) -> dict[str, Path]:
    """A throw-away CA and certificates for the node and a client."""
    f = {n: folder / n for n in ("ca.key", "ca.pem", "node.key", "node.pem", "cli.key", "cli.pem")}
    _openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        str(f["ca.key"]),
        "-out",
        str(f["ca.pem"]),
        "-days",
        "2",
        "-subj",
        "/CN=knee-node test CA",
    )
    for who in ("node", "cli"):
        csr = folder / f"{who}.csr"
        _openssl(
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(f[f"{who}.key"]),
            "-out",
            str(csr),
            "-subj",
            f"/CN={who}",
        )
        _openssl(
            "x509",
            "-req",
            "-in",
            str(csr),
            "-CA",
            str(f["ca.pem"]),
            "-CAkey",
            str(f["ca.key"]),
            "-CAcreateserial",
            "-out",
            str(f[f"{who}.pem"]),
            "-days",
            "2",
        )
    return f


def test_tls_listener_requires_a_client_certificate(tmp_path: Path) -> None:
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command to make test certificates")
    pki = _pki(tmp_path)
    s = _settings(
        tmp_path,
        node={
            "tls": {
                "enabled": True,
                "cert_file": str(pki["node.pem"]),
                "key_file": str(pki["node.key"]),
                "ca_file": str(pki["ca.pem"]),
                "require_client_cert": True,
            }
        },
    )

    def echo(port: int, cert: bool, tls: bool = True) -> bool:
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(pki["ca.pem"]))
        ctx.check_hostname = False
        if cert:
            ctx.load_cert_chain(pki["cli.pem"], pki["cli.key"])
        ae = AE(ae_title="MODALITY")
        ae.acse_timeout = ae.network_timeout = 5
        ae.add_requested_context(Verification)
        assoc = ae.associate(
            "127.0.0.1", port, ae_title="KNEE_NODE", tls_args=(ctx, None) if tls else None
        )
        ok = assoc.is_established and assoc.send_c_echo().Status == 0
        if assoc.is_established:
            assoc.release()
        return bool(ok)

    with KneeNode(s, measurer=TruthMeasurer(tmp_path), port=0) as node:
        assert echo(node.port, cert=True)
        assert not echo(node.port, cert=False)
        assert not echo(node.port, cert=True, tls=False)


def test_demo_pushes_a_synthetic_study_and_receives_the_sr(tmp_path: Path) -> None:
    pytest.importorskip("training.synth")
    from dicom_node.demo import run_demo

    result = run_demo(
        tmp_path, seed=900_000_007, measurer=TruthMeasurer(tmp_path / "source"), timeout_s=120
    )
    truth = json.loads(next((tmp_path / "source").glob("*.json")).read_text())
    assert result.atfa_fts_deg == pytest.approx(truth["atfa_deg"]["FTS"], abs=1e-6)
    assert result.sr_path.is_file() and any(p.name.startswith("SR") for p in result.received)
    # the SC is made after the SR is sent: the demo waits until it is written
    assert result.sc_path is not None and result.sc_path.is_file()
    assert f"SC written to {result.sc_path}" in result.summary()
    assert "aTFA by FTS" in result.summary()


def test_associations_beyond_the_limit_are_rejected(tmp_path: Path) -> None:
    s = _settings(tmp_path, node={"limits": {"max_associations": 1}})
    with KneeNode(s, measurer=TruthMeasurer(tmp_path), port=0) as node:
        ae = AE(ae_title="MODALITY")
        ae.add_requested_context(Verification)
        first = ae.associate("127.0.0.1", node.port, ae_title="KNEE_NODE")
        second = ae.associate("127.0.0.1", node.port, ae_title="KNEE_NODE")
        try:
            assert first.is_established
            assert second.is_rejected
        finally:
            first.release()
        deadline = time.monotonic() + 10  # the released association's thread ends soon after
        third = ae.associate("127.0.0.1", node.port, ae_title="KNEE_NODE")
        while not third.is_established and time.monotonic() < deadline:
            time.sleep(0.2)
            third = ae.associate("127.0.0.1", node.port, ae_title="KNEE_NODE")
        assert third.is_established, "a slot frees when an association ends"
        third.release()


def test_broker_down_answers_a_failure_status_not_success(tmp_path: Path) -> None:
    from node_support import free_port

    ds, _ = make_dx()
    s = _settings(
        tmp_path,
        queue={"backend": "celery", "broker_url": f"redis://127.0.0.1:{free_port()}/0"},
    )
    with KneeNode(s, port=0) as node:
        assert _push(node.port, ds) == 0xA700
        with node.ctx.db.session() as sess:
            row = sess.scalars(select(ReceivedInstance)).one()
            assert (row.state, row.reason, row.spool_path) == ("failed", "queue unavailable", None)
    assert not list(s.storage.spool.glob("*.dcm")), "nothing kept that nobody will measure"
