"""Issue 5, item 2: a real ``knee-node worker`` process killed (SIGKILL) mid-measurement.

Celery with Redis, ``acks_late`` and ``reject_on_worker_lost``: the pool child measuring
is killed with ``kill -9``; the master process sees the child lost, the message goes
back to the queue, a new child measures it. When the whole worker is killed (solo pool),
the unacknowledged message goes back after ``queue.visibility_timeout_s`` and a worker
started later takes it. Either way the PACS receives exactly one SR and one SC per
source image; the interrupted job is recorded as such, not left "running".
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import yaml
from node_support import StoreSCP, redis_reachable
from reliability_support import knee_case
from sqlalchemy import select
from test_node_runtime import _push

from dicom_node.db import Job, ReceivedInstance
from dicom_node.node import KneeNode
from dicom_node.settings import load_settings

pytestmark = [pytest.mark.services, pytest.mark.network]

TESTS = Path(__file__).resolve().parent
KNEE_NODE = str(Path(sys.executable).with_name("knee-node"))
BROKER = "redis://127.0.0.1:6379/13"


def _wait(predicate: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_killed_worker_child_job_is_redelivered_and_sent_once(tmp_path: Path) -> None:
    if not redis_reachable(BROKER):
        pytest.skip("Redis unreachable at 127.0.0.1:6379")
    pacs = StoreSCP().start()
    markers = tmp_path / "markers"
    cfg = {
        "storage": {"data_dir": str(tmp_path / "var")},
        "queue": {
            "backend": "celery",
            "broker_url": BROKER,
            "queue_name": f"knee_rel_{uuid.uuid4().hex[:8]}",
            "worker_pool": "prefork",
            "worker_concurrency": 1,
            "worker_name": f"rel{uuid.uuid4().hex[:6]}@%h",
        },
        "model": {"factory": "reliability_support:header_truth_measurer"},
        "delivery": {
            "destinations": [
                {"name": "pacs", "ae_title": "TEST_PACS", "host": "127.0.0.1", "port": pacs.port}
            ],
            "backoff_initial_s": 0.2,
        },
    }
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(cfg))
    settings = load_settings(config, environ={})
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
        KNEE_NODE_CONFIG=str(config),
        KNEE_NODE_TEST_MEASURE_S="3",
        KNEE_NODE_TEST_MARKERS=str(markers),
    )
    cases = [knee_case(a) for a in (6.0, -2.0)]
    log = open(tmp_path / "worker.log", "w")  # noqa: SIM115
    node = KneeNode(settings, port=0).start()
    worker = subprocess.Popen([KNEE_NODE, "worker"], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        for ds in cases:
            assert _push(node.port, ds) == 0
        _wait(lambda: list(markers.glob("*.start")), 60, "the first measurement to start")
        [first] = list(markers.glob("*.start"))
        child = int(first.name.split("-")[0])
        assert child != worker.pid, "the measurement runs in a pool child"
        os.kill(child, signal.SIGKILL)
        _wait(lambda: len(pacs.received) >= 4, 90, "SR and SC of both instances")
        time.sleep(2.0)  # a duplicate would arrive now
        assert worker.poll() is None, "the worker master survives its child"
        got = pacs.received
        srs = [d for d in got if d.Modality == "SR"]
        assert len(got) == 4 and len(srs) == 2, (tmp_path / "worker.log").read_text()[-3000:]
        assert {str(d.StudyInstanceUID) for d in srs} == {str(c.StudyInstanceUID) for c in cases}
        assert not first.with_suffix(".end").exists(), "the killed attempt never finished"
        with node.ctx.db.session() as s:
            jobs = s.scalars(select(Job).order_by(Job.id)).all()
            by_instance: dict[int, list[str]] = {}
            for j in jobs:
                by_instance.setdefault(j.instance_id, []).append(j.state)
            assert sorted(by_instance.values()) == [["done"], ["failed", "done"]]
            [interrupted] = [j for j in jobs if j.state == "failed"]
            assert "interrupted" in (interrupted.error or "")
            states = s.scalars(select(ReceivedInstance.state)).all()
            assert sorted(states) == ["measured", "measured"]
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(20)
        except subprocess.TimeoutExpired:
            worker.kill()
        log.close()
        node.stop()
        pacs.stop()


def test_killed_whole_worker_task_returns_after_the_visibility_timeout(tmp_path: Path) -> None:
    if not redis_reachable(BROKER):
        pytest.skip("Redis unreachable at 127.0.0.1:6379")
    pacs = StoreSCP().start()
    markers = tmp_path / "markers"
    cfg = {
        "storage": {"data_dir": str(tmp_path / "var")},
        "queue": {
            "backend": "celery",
            "broker_url": BROKER,
            "queue_name": f"knee_rel_{uuid.uuid4().hex[:8]}",
            "worker_pool": "solo",
            "soft_time_limit_s": 4,
            "time_limit_s": 5,
            "visibility_timeout_s": 6,
        },
        "model": {"factory": "reliability_support:header_truth_measurer"},
        "delivery": {
            "destinations": [
                {"name": "pacs", "ae_title": "TEST_PACS", "host": "127.0.0.1", "port": pacs.port}
            ],
            "backoff_initial_s": 0.2,
            "backoff_max_s": 2,
        },
    }
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(cfg))
    settings = load_settings(config, environ={})
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
        KNEE_NODE_CONFIG=str(config),
        KNEE_NODE_TEST_MEASURE_S="2",
        KNEE_NODE_TEST_MARKERS=str(markers),
    )
    ds = knee_case(-4.0)
    workers: list[subprocess.Popen[bytes]] = []

    def start(name: str) -> subprocess.Popen[bytes]:
        log = open(tmp_path / f"{name}.log", "w")  # noqa: SIM115
        proc = subprocess.Popen(
            [KNEE_NODE, "worker"],
            env=dict(env, KNEE_NODE_QUEUE__WORKER_NAME=f"{name}{uuid.uuid4().hex[:4]}@%h"),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        workers.append(proc)
        return proc

    node = KneeNode(settings, port=0).start()
    try:
        first = start("first")
        assert _push(node.port, ds) == 0
        _wait(lambda: list(markers.glob("*.start")), 60, "the measurement to start")
        [mark] = list(markers.glob("*.start"))
        assert int(mark.name.split("-")[0]) == first.pid, "solo pool: the worker itself"
        first.send_signal(signal.SIGKILL)  # the whole worker, not a child
        first.wait(10)
        start("second")
        _wait(lambda: len(pacs.received) >= 2, 90, "SR and SC from the second worker")
        time.sleep(2.0)
        assert sorted(str(d.Modality) for d in pacs.received) == ["OT", "SR"]
        with node.ctx.db.session() as s:
            jobs = [(j.state, j.error) for j in s.scalars(select(Job).order_by(Job.id))]
        assert [j[0] for j in jobs] == ["failed", "done"] and "interrupted" in (jobs[0][1] or "")
    finally:
        for w in workers:
            if w.poll() is None:
                w.send_signal(signal.SIGTERM)
                try:
                    w.wait(20)
                except subprocess.TimeoutExpired:
                    w.kill()
        node.stop()
        pacs.stop()
