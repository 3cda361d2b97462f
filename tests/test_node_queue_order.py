"""Deliveries go before measurements still waiting, in-process and on Celery workers."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from dicom_node.celery_app import DeliveriesFirst, make_celery, worker_argv
from dicom_node.queue import DELIVER_TASK, InProcessQueue
from dicom_node.settings import Settings


def test_in_process_queue_runs_a_delivery_before_waiting_measurements(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import dicom_node.pipeline as pipeline

    order: list[tuple[str, int]] = []
    first_started, release = threading.Event(), threading.Event()
    q = InProcessQueue()

    def measure(ctx: Any, row_id: int) -> int:
        order.append(("measure", row_id))
        if row_id == 1:
            first_started.set()
            assert release.wait(10)
            q.submit_delivery(100)  # the result of study 1 is ready
        return row_id

    def deliver(ctx: Any, row_id: int) -> Any:
        order.append(("deliver", row_id))
        return pipeline.DeliveryOutcome("delivered")

    monkeypatch.setattr(pipeline, "measure_instance", measure)
    monkeypatch.setattr(pipeline, "deliver", deliver)
    q.bind(object())  # type: ignore[arg-type]
    q.start()
    try:
        q.submit_measurement(1)
        assert first_started.wait(10)
        for row_id in (2, 3, 4):  # a burst waits behind study 1
            q.submit_measurement(row_id)
        release.set()
        assert q.wait_idle(10)
    finally:
        q.stop()
    assert order == [("measure", 1), ("deliver", 100), ("measure", 2), ("measure", 3),
                     ("measure", 4)]


def test_celery_workers_poll_the_delivery_queue_first() -> None:
    settings = Settings.model_validate({"queue": {"backend": "celery", "queue_name": "kn"}})
    assert settings.queue.delivery_queue_name == "kn.deliveries"
    argv = worker_argv(settings)
    assert "--queues=kn.deliveries,kn" in argv
    app = make_celery(settings)
    try:
        assert app.conf.task_routes[DELIVER_TASK] == {"queue": "kn.deliveries"}
        route = app.amqp.router.route({}, DELIVER_TASK)
        assert route["queue"].name == "kn.deliveries"
        strategy = app.conf.broker_transport_options["queue_order_strategy"]
        from kombu.utils.scheduling import cycle_by_name

        assert cycle_by_name(strategy) is DeliveriesFirst
    finally:
        app.close()
    cycle = DeliveriesFirst(["kn", "kn.deliveries"])
    for _ in range(3):  # every poll, whatever was used last
        assert cycle.consume(2) == ["kn.deliveries", "kn"]
        cycle.rotate("kn.deliveries")
