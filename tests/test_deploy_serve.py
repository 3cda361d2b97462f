"""``knee-node serve`` as an admin runs it: metrics endpoint up, SIGHUP reloads config.yaml."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml
from node_support import free_port, wait_port
from pynetdicom import AE
from pynetdicom.sop_class import Verification

pytestmark = pytest.mark.network


def associate(port: int, calling: str) -> Any:
    ae = AE(ae_title=calling)
    ae.add_requested_context(Verification)
    return ae.associate("127.0.0.1", port, ae_title="KNEE_NODE")


def test_serve_exposes_metrics_and_reloads_callers_on_sighup(tmp_path: Path) -> None:
    dicom_port, metrics_port = free_port(), free_port()
    config = tmp_path / "config.yaml"
    cfg: dict[str, Any] = {
        "node": {"port": dicom_port, "allowed_callers": [{"ae_title": "OLD_AE"}]},
        "storage": {"data_dir": str(tmp_path / "var")},
        "metrics": {"port": metrics_port},
    }
    config.write_text(yaml.safe_dump(cfg))
    log = tmp_path / "serve.log"
    with log.open("w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "dicom_node.cli", "serve", "--config", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=err,
            cwd=tmp_path,
        )
    try:
        wait_port(dicom_port, 60, proc)
        wait_port(metrics_port, 10, proc)
        url = f"http://127.0.0.1:{metrics_port}"
        with urllib.request.urlopen(f"{url}/healthz", timeout=10) as resp:
            assert json.loads(resp.read())["database"] == "ok"
        assert associate(dicom_port, "NEW_AE").is_rejected
        rejected = 1

        cfg["node"]["allowed_callers"] = [{"ae_title": "OLD_AE"}, {"ae_title": "NEW_AE"}]
        config.write_text(yaml.safe_dump(cfg))
        proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 20
        while True:
            assoc = associate(dicom_port, "NEW_AE")
            if assoc.is_established:
                assoc.release()
                break
            assert assoc.is_rejected, "NEW_AE neither accepted nor rejected"
            rejected += 1  # asked again before the reload took effect (a loaded machine)
            assert time.monotonic() < deadline, "NEW_AE still refused after SIGHUP"
            time.sleep(0.2)
        with urllib.request.urlopen(f"{url}/metrics", timeout=10) as resp:
            body = resp.read().decode()
        # every refusal this test saw is counted, none more
        assert f"knee_node_associations_rejected_total {float(rejected)}" in body
        assert proc.poll() is None, "SIGHUP must not stop the node"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    text = log.read_text()
    assert "config reloaded" in text and "node.allowed_callers" in text
