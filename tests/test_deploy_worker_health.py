"""The worker container's health check: ``python -m dicom_node.metrics --celery-worker``
answers 0 while this host's ``knee-node worker`` (named by ``queue.worker_name``) runs,
1 once it is gone."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import yaml
from node_support import redis_reachable

from dicom_node.metrics import main, ping_worker
from dicom_node.settings import load_settings

pytestmark = pytest.mark.services

BROKER = "redis://127.0.0.1:6379/14"


def test_worker_ping_health_check(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if not redis_reachable(BROKER):
        pytest.skip("Redis is not reachable on 127.0.0.1:6379")
    config = tmp_path / "config.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "storage": {"data_dir": str(tmp_path / "var")},
                "queue": {
                    "backend": "celery",
                    "broker_url": BROKER,
                    "queue_name": f"knee_health_{uuid.uuid4().hex[:8]}",
                    "worker_name": "gpu7@%h",  # e.g. one worker per GPU on one host
                },
            }
        )
    )
    monkeypatch.setenv("KNEE_NODE_CONFIG", str(config))
    settings = load_settings()
    assert ping_worker(settings, timeout=0.5) == 1, "no worker yet: must be unhealthy"
    log = (tmp_path / "worker.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "dicom_node.cli", "worker"],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "KNEE_NODE_CONFIG": str(config)},
    )
    try:
        deadline = time.monotonic() + 60
        while main(["--celery-worker"]) != 0:
            assert proc.poll() is None, (tmp_path / "worker.log").read_text()
            assert time.monotonic() < deadline, "the worker never answered a ping"
            time.sleep(0.5)
        # the check names this worker, not any worker of the host
        assert ping_worker(settings, f"celery@{socket.gethostname()}", timeout=0.5) == 1
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
        log.close()
    assert ping_worker(settings, timeout=0.5) == 1
