"""Structured logs: ``logging.format: json`` makes ``knee-node serve`` write one JSON object
per line, and an instance carrying patient name, ID and birth date leaves none of them in
the log while it is received, measured and delivered."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from node_support import (
    PHI_BIRTH,
    PHI_ID,
    PHI_NAME,
    StoreSCP,
    free_port,
    make_dx,
    wait_port,
    write_case,
)
from pynetdicom import AE

from dicom_node.logs import JsonFormatter, configure_logging

pytestmark = pytest.mark.network
TESTS = Path(__file__).resolve().parent


def test_serve_writes_json_lines_without_phi(tmp_path: Path) -> None:
    pacs = StoreSCP().start()
    port = free_port()
    cases = tmp_path / "cases"
    ds, truth = make_dx(atfa_deg=7.0)
    write_case(cases, ds, truth, "knee")
    config = tmp_path / "config.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "node": {"port": port},
                "storage": {"data_dir": str(tmp_path / "var")},
                "model": {
                    "factory": "node_support:truth_measurer",
                    "options": {"truth_dir": str(cases)},
                },
                "delivery": {
                    "destinations": [
                        {
                            "name": "pacs",
                            "ae_title": "TEST_PACS",
                            "host": "127.0.0.1",
                            "port": pacs.port,
                        }
                    ]
                },
                "logging": {"format": "json"},
                "metrics": {"enabled": False},
            }
        )
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
    }
    log = tmp_path / "serve.log"
    with log.open("w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "dicom_node.cli", "serve", "--config", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=err,
            env=env,
        )
    try:
        wait_port(port, 60, proc)
        ae = AE(ae_title="MODALITY")
        ae.add_requested_context(ds.SOPClassUID, ds.file_meta.TransferSyntaxUID)
        assoc = ae.associate("127.0.0.1", port, ae_title="KNEE_NODE")
        assert assoc.is_established
        assert assoc.send_c_store(ds).Status == 0x0000
        assoc.release()
        assert len(pacs.wait_for(2, 60)) == 2
        time.sleep(0.5)  # let the delivery's log line be written
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        pacs.stop()
    text = log.read_text()
    # patient attributes never; the instance's UID only as the node's short hash
    for secret in (PHI_NAME, PHI_ID, PHI_BIRTH, "Doe", "Janet", str(ds.SOPInstanceUID)):
        assert secret not in text
    records = [json.loads(line) for line in text.splitlines() if line.strip()]
    assert records and all({"time", "level", "logger", "message"} <= r.keys() for r in records), (
        text[:500]
    )
    messages = " | ".join(r["message"] for r in records)
    assert "queued" in messages and "aTFA FTS" in messages and "delivery" in messages


def test_json_formatter_keeps_the_exception_and_the_argument_checks() -> None:
    import logging

    try:
        raise KeyError("boom")
    except KeyError:
        record = logging.LogRecord(
            "x", logging.ERROR, __file__, 1, "failed %d", (3,), sys.exc_info()
        )
    out = json.loads(JsonFormatter().format(record))
    assert out["message"] == "failed 3" and out["level"] == "ERROR"
    assert "KeyError: 'boom'" in out["exception"]
    with pytest.raises(ValueError, match="fmt"):
        configure_logging("INFO", "xml")
