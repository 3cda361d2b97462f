"""Issue 5, item 8: security. Already proven elsewhere (see docs/reliability.md): unknown
AE title or address rejected (tests/test_node_listener.py), TLS listener refusing plain
and certificate-less peers (tests/test_node_runtime.py), no PHI in INFO logs
(tests/test_node_listener.py, tests/test_deploy_logs.py). Here: results delivered only
over TLS to a TLS PACS (certificates made by the test), secrets only from the
environment or a 0600 file, and retention of instances never measured.
"""

from __future__ import annotations

import logging
import os
import shutil
import ssl
import time
from pathlib import Path

import pytest
import yaml
from node_support import PHI_BIRTH, PHI_ID, PHI_NAME, StoreSCP
from pynetdicom import evt
from reliability_support import HeaderTruthMeasurer, knee_case
from sqlalchemy import select
from test_node_runtime import _pki, _push
from typer.testing import CliRunner

from dicom_node.cli import app
from dicom_node.datalock import DataDirLock
from dicom_node.db import AuditEvent, Delivery, ReceivedInstance
from dicom_node.node import KneeNode
from dicom_node.settings import Settings, load_settings

pytestmark = pytest.mark.network


def test_results_go_to_a_tls_pacs_only_over_tls(tmp_path: Path) -> None:
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command to make test certificates")
    pki = _pki(tmp_path)
    pacs = StoreSCP()
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(pki["cli.pem"], pki["cli.key"])  # the PACS's certificate
    ctx.load_verify_locations(pki["ca.pem"])
    ctx.verify_mode = ssl.CERT_REQUIRED  # and it wants the node's
    pacs.server = pacs.ae.start_server(
        ("127.0.0.1", pacs.port),
        block=False,
        evt_handlers=[(evt.EVT_C_STORE, pacs._on_store)],
        ssl_context=ctx,
    )
    dest = {"ae_title": "TEST_PACS", "host": "127.0.0.1", "port": pacs.port}
    s = Settings.model_validate(
        {
            "storage": {"data_dir": str(tmp_path / "var")},
            "node": {
                "tls": {
                    "enabled": True,
                    "cert_file": str(pki["node.pem"]),
                    "key_file": str(pki["node.key"]),
                    "ca_file": str(pki["ca.pem"]),
                }
            },
            "delivery": {
                "destinations": [
                    {"name": "tls", "tls": True, **dest},
                    {"name": "plain", "tls": False, **dest},
                ],
                "max_attempts": 1,
            },
        }
    )
    cctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(pki["ca.pem"]))
    cctx.check_hostname = False
    try:
        with KneeNode(s, measurer=HeaderTruthMeasurer(), port=0) as node:
            from pynetdicom import AE

            ae = AE(ae_title="MODALITY")
            ds = knee_case(4.0)
            ae.add_requested_context(ds.SOPClassUID, ds.file_meta.TransferSyntaxUID)
            assoc = ae.associate(
                "127.0.0.1", node.port, ae_title="KNEE_NODE", tls_args=(cctx, None)
            )
            assert assoc.is_established
            assert assoc.send_c_store(ds).Status == 0
            assoc.release()
            assert node.wait_idle(60)
            with node.ctx.db.session() as sess:
                states = {d.destination: d.state for d in sess.scalars(select(Delivery))}
        assert states == {"tls": "delivered", "plain": "failed"}, "plain is refused by TLS"
        got = pacs.wait_for(2, 10)
        assert sorted(d.Modality for d in got) == ["OT", "SR"]
    finally:
        pacs.stop()


def test_a_secret_in_a_config_file_readable_by_others_is_warned_about(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="dicom_node.settings")
    cfg = tmp_path / "config.yaml"
    secret = "s3cr3t-pass-8472"
    cfg.write_text(
        yaml.safe_dump(
            {"database": {"url": "postgresql+psycopg://knee@db/knee", "password": secret}}
        )
    )
    os.chmod(cfg, 0o644)
    load_settings(cfg, environ={})
    [warning] = [r.getMessage() for r in caplog.records]
    assert "database.password" in warning and "0644" in warning and secret not in warning
    caplog.clear()
    os.chmod(cfg, 0o600)
    assert load_settings(cfg, environ={}).database.password is not None
    assert not caplog.records, "a 0600 file is the right place"
    url_cfg = tmp_path / "url.yaml"
    url_cfg.write_text(yaml.safe_dump({"queue": {"broker_url": f"redis://:{secret}@r:6379/0"}}))
    os.chmod(url_cfg, 0o640)
    load_settings(url_cfg, environ={})
    assert ["queue.broker_url" in r.getMessage() for r in caplog.records] == [True]
    caplog.clear()
    plain = tmp_path / "plain.yaml"
    plain.write_text(yaml.safe_dump({"database": {"url": "postgresql+psycopg://knee@db/knee"}}))
    os.chmod(plain, 0o644)
    s = load_settings(plain, environ={"KNEE_NODE_DATABASE__PASSWORD": secret})
    assert secret in s.database_url and not caplog.records, "from the environment: no warning"


def test_instances_never_measured_leave_nothing_after_the_retention(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    config = tmp_path / "config.yaml"
    config.write_text(
        yaml.safe_dump({"storage": {"data_dir": str(tmp_path / "var"), "ignored_retention_h": 24}})
    )
    s = load_settings(config, environ={})
    knee, chest = knee_case(3.0), knee_case(3.0, body_part="CHEST")
    with KneeNode(s, measurer=HeaderTruthMeasurer(), port=0) as node:
        for ds in (knee, chest, knee_case(1.0, view="LL"), knee):  # last: a duplicate
            assert _push(node.port, ds) == 0
        assert node.wait_idle(60)
    spool = s.storage.spool
    orphan_old, orphan_new = spool / "old-orphan.dcm", spool / "new-orphan.dcm"
    orphan_old.write_bytes(b"left by a crash")
    orphan_new.write_bytes(b"being recorded right now")
    two_hours_ago = time.time() - 7200
    os.utime(orphan_old, (two_hours_ago, two_hours_ago))
    runner = CliRunner()
    running = DataDirLock(s.storage.data_dir).acquire()  # as a running node holds it
    try:
        kept = runner.invoke(app, ["purge", "--config", str(config)])
        assert kept.exit_code == 0 and "purged 0 instance row(s), 0 spool" in kept.output
        done = runner.invoke(app, ["purge", "--older-than-h", "0", "--config", str(config)])
        assert done.exit_code == 0, done.output
        assert "purged 3 instance row(s), 1 spool file(s)" in done.output
        assert sorted(p.name for p in spool.iterdir()) == ["new-orphan.dcm"], "young files stay"
    finally:
        running.release()
    # no node runs (e.g. after a kill -9): an orphan of any age is nobody's, so it goes
    gone = runner.invoke(app, ["purge", "--config", str(config)])
    assert gone.exit_code == 0 and "purged 0 instance row(s), 1 spool file(s)" in gone.output
    assert list(spool.iterdir()) == []
    node = KneeNode(s, port=0)
    try:
        with node.ctx.db.session() as sess:
            rows = sess.scalars(select(ReceivedInstance)).all()
            assert [(r.state, r.sop_instance_uid) for r in rows] == [
                ("measured", str(knee.SOPInstanceUID))
            ]
            hashed = {
                a.sop_instance_uid_sha256
                for a in sess.scalars(select(AuditEvent))
                if a.event == "instance_received"
            }
            from dicom_node.db.session import uid_hash

            assert uid_hash(str(chest.SOPInstanceUID)) not in hashed
            assert uid_hash(str(knee.SOPInstanceUID)) in hashed, "the measured one stays"
    finally:
        node.ctx.db.dispose()
    for phi in (PHI_NAME, PHI_ID, PHI_BIRTH):
        assert phi not in caplog.text
