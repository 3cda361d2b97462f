"""Prometheus metrics and health endpoint, fed through the node's real code paths.

A node (in-process queue, truth-reading test double as measurer) receives instances from
a pynetdicom modality and sends results to a pynetdicom PACS; the endpoint is scraped
over HTTP with urllib.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from node_support import MetricsSite, StoreSCP, free_port
from prometheus_client.parser import text_string_to_metric_families
from pynetdicom import AE
from pynetdicom.sop_class import Verification

from dicom_node.context import NodeContext
from dicom_node.metrics import MetricsServer, check_url, health
from dicom_node.queue import InProcessQueue
from dicom_node.settings import load_settings

pytestmark = pytest.mark.network


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """``{(sample name, sorted labels): value}`` from /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        assert resp.status == 200
        body = resp.read().decode()
    out = {}
    for family in text_string_to_metric_families(body):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def get(samples: dict[Any, float], name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


@pytest.fixture
def pacs() -> Iterator[StoreSCP]:
    p = StoreSCP().start()
    yield p
    p.stop()


def test_counters_follow_received_ignored_measured_and_delivered(
    tmp_path: Path, pacs: StoreSCP
) -> None:
    site = MetricsSite(tmp_path, pacs.port).start()
    try:
        port = site.metrics.port  # type: ignore[union-attr]
        before = scrape(port)
        assert get(before, "knee_node_instances_received_total") == 0
        assert get(before, "knee_node_database_up") == 1
        site.push(("knee", {"atfa_deg": 5.0}), ("chest", {"body_part": "CHEST"}))
        assert site.node.wait_idle(60)
        assert len(pacs.wait_for(2, 10)) == 2
        stranger = AE(ae_title="STRANGER")
        stranger.add_requested_context(Verification)
        assert stranger.associate("127.0.0.1", site.node.port, ae_title="KNEE_NODE").is_rejected
        after = scrape(port)
    finally:
        site.stop()
    assert get(after, "knee_node_instances_received_total") == 2
    assert get(after, "knee_node_instances_ignored_total") == 1
    assert get(after, "knee_node_instances_rejected_total") == 0
    assert get(after, "knee_node_associations_rejected_total") == 1
    assert get(after, "knee_node_instances_by_state", state="measured") == 1
    assert get(after, "knee_node_jobs_by_state", state="done") == 1
    assert get(after, "knee_node_jobs_by_kind", kind="knee-ap", state="done") == 1
    assert get(after, "knee_node_deliveries_delivered_total") == 2  # the SR, then the SC
    assert get(after, "knee_node_delivery_retries_total") == 0
    assert get(after, "knee_node_queue_depth") == 0
    assert get(after, "knee_node_measurement_seconds_count") == 1
    assert 0 < get(after, "knee_node_measurement_seconds_sum") < 60
    assert get(after, "knee_node_end_to_end_seconds_count") == 1
    assert get(after, "knee_node_end_to_end_seconds_bucket", le="+Inf") == 1


def test_delivery_retries_and_failures_are_counted(tmp_path: Path) -> None:
    site = MetricsSite(tmp_path, free_port(), max_attempts=3).start()  # nobody listens there
    try:
        site.push(("knee", {"atfa_deg": -3.0}))
        assert site.node.wait_idle(60)
        samples = scrape(site.metrics.port)  # type: ignore[union-attr]
        again = scrape(site.metrics.port)  # type: ignore[union-attr]
    finally:
        site.stop()
    # two deliveries (the SR, then the SC), each tried 3 times
    assert get(samples, "knee_node_deliveries_failed_total") == 2
    assert get(samples, "knee_node_delivery_attempts_total") == 6
    assert get(samples, "knee_node_delivery_retries_total") == 4
    assert get(samples, "knee_node_deliveries_by_state", state="failed") == 2
    # end to end counts delivered results only; each finished job is observed once
    assert get(samples, "knee_node_end_to_end_seconds_count") == 0
    assert get(samples, "knee_node_measurement_seconds_count") == 1
    assert get(again, "knee_node_measurement_seconds_count") == 1


def test_healthz_ok_then_unhealthy_when_the_broker_is_down(tmp_path: Path, pacs: StoreSCP) -> None:
    site = MetricsSite(tmp_path, pacs.port).start()
    try:
        port = site.metrics.port  # type: ignore[union-attr]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10) as resp:
            assert resp.status == 200
            assert json.loads(resp.read()) == {"status": "ok", "database": "ok"}
        assert check_url(f"http://127.0.0.1:{port}/healthz") == 0
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/nothing", timeout=10)
        assert info.value.code == 404
    finally:
        site.stop()
    dead = free_port()
    settings = site.settings.model_copy(
        update={
            "queue": site.settings.queue.model_copy(
                update={"backend": "celery", "broker_url": f"redis://127.0.0.1:{dead}/0"}
            )
        }
    )
    ctx = NodeContext.create(settings, InProcessQueue())
    server = MetricsServer(ctx, "127.0.0.1", 0).start()
    try:
        ok, checks = health(ctx)
        assert not ok and checks["database"] == "ok"
        assert checks["broker"].startswith("unreachable")
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(f"http://127.0.0.1:{server.port}/healthz", timeout=10)
        assert info.value.code == 503
        assert json.loads(info.value.read())["status"] == "unhealthy"
        assert check_url(f"http://127.0.0.1:{server.port}/healthz") == 1
    finally:
        server.stop()
        ctx.db.dispose()


def test_metrics_server_checks_its_arguments(tmp_path: Path) -> None:
    settings = load_settings(None, environ={"KNEE_NODE_STORAGE__DATA_DIR": str(tmp_path)})
    ctx = NodeContext.create(settings, InProcessQueue())
    with pytest.raises(ValueError, match="port"):
        MetricsServer(ctx, "127.0.0.1", 70000)
    with pytest.raises(ValueError, match="url"):
        check_url("file:///etc/passwd")
    ctx.db.dispose()


@pytest.mark.services
def test_queue_depth_is_the_length_of_the_celery_queue_in_redis(tmp_path: Path) -> None:
    import uuid

    import redis
    from node_support import redis_reachable

    from dicom_node.celery_app import make_celery
    from dicom_node.metrics import queue_depth
    from dicom_node.queue import CeleryQueue

    broker = "redis://127.0.0.1:6379/14"
    if not redis_reachable(broker):
        pytest.skip("Redis is not reachable on 127.0.0.1:6379")
    name = f"knee_depth_{uuid.uuid4().hex[:8]}"
    settings = load_settings(
        None,
        environ={
            "KNEE_NODE_STORAGE__DATA_DIR": str(tmp_path),
            "KNEE_NODE_QUEUE__BACKEND": "celery",
            "KNEE_NODE_QUEUE__BROKER_URL": broker,
            "KNEE_NODE_QUEUE__QUEUE_NAME": name,
        },
    )
    app = make_celery(settings)
    ctx = NodeContext.create(settings, CeleryQueue(app))
    try:
        assert queue_depth(ctx) == 0
        ctx.queue.submit_measurement(1)
        ctx.queue.submit_measurement(2)
        assert queue_depth(ctx) == 2
        ctx.queue.submit_delivery(7)  # routed to the delivery queue, counted too
        client = redis.Redis.from_url(broker)
        assert client.llen(settings.queue.delivery_queue_name) == 1
        assert client.llen(name) == 2
        assert queue_depth(ctx) == 3
    finally:
        redis.Redis.from_url(broker).delete(name, settings.queue.delivery_queue_name)
        app.close()
        ctx.db.dispose()


def test_histograms_observe_each_finished_job_once_past_a_job_stuck_running(
    tmp_path: Path,
) -> None:
    """A job left running for good (its worker died) must not stop the histogram, and jobs
    finishing out of order are observed once each."""
    from dicom_node.db.models import Job, ReceivedInstance
    from dicom_node.metrics import _SCAN_LIMIT, NodeCollector
    from dicom_node.node import prepare_database

    settings = load_settings(None, environ={"KNEE_NODE_STORAGE__DATA_DIR": str(tmp_path)})
    prepare_database(settings)
    ctx = NodeContext.create(settings, InProcessQueue())
    collector = NodeCollector(ctx)

    def count() -> float:
        [family] = [f for f in collector.collect() if f.name.endswith("measurement_seconds")]
        [sample] = [x for x in family.samples if x.name.endswith("_count")]
        return sample.value

    def add_jobs(n: int, state: str) -> list[int]:
        with ctx.db.session() as s:
            inst = ReceivedInstance(
                calling_ae_title="A",
                peer_address="127.0.0.1",
                sop_class_uid="1.2",
                sop_instance_uid="1.2.3",
                transfer_syntax_uid="1.2.840.10008.1.2.1",
            )
            s.add(inst)
            s.flush()
            jobs = [
                Job(instance_id=inst.id, state=state, timings_ms={"total_ms": 500.0})
                for _ in range(n)
            ]
            s.add_all(jobs)
            s.flush()
            return [j.id for j in jobs]

    try:
        [stuck] = add_jobs(1, "running")
        [late] = add_jobs(1, "running")
        add_jobs(_SCAN_LIMIT + 200, "done")
        assert count() == _SCAN_LIMIT - 2  # at most _SCAN_LIMIT new rows per scrape
        assert count() == _SCAN_LIMIT + 200
        assert count() == _SCAN_LIMIT + 200  # nothing observed twice
        with ctx.db.session() as s:
            s.get_one(Job, late).state = "flagged"
        assert count() == _SCAN_LIMIT + 201
        add_jobs(3, "failed")
        assert count() == _SCAN_LIMIT + 204
        assert stuck in collector._jobs.pending
    finally:
        ctx.db.dispose()
