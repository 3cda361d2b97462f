"""Deliveries never wait behind measurements: their own lane in-process, their own queue
(polled first) on Celery workers."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from dicom_node.celery_app import DeliveriesFirst, make_celery, worker_argv
from dicom_node.queue import DELIVER_TASK, InProcessQueue
from dicom_node.settings import Settings


def test_in_process_queue_delivers_while_a_measurement_runs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import dicom_node.pipeline as pipeline

    order: list[tuple[str, int]] = []
    lock = threading.Lock()
    first_done, delivered, release = threading.Event(), threading.Event(), threading.Event()
    threads: dict[str, str] = {}
    q = InProcessQueue()

    def measure(ctx: Any, row_id: int) -> int:
        with lock:
            order.append(("measure", row_id))
            threads["measure"] = threading.current_thread().name
        if row_id == 1:
            q.submit_delivery(100)  # the result of study 1 is ready
            first_done.set()
        if row_id == 2:  # study 2 is still being measured when study 1's result goes back
            assert release.wait(10)
        return row_id

    def deliver(ctx: Any, row_id: int) -> Any:
        with lock:
            order.append(("deliver", row_id))
            threads["deliver"] = threading.current_thread().name
        delivered.set()
        return pipeline.DeliveryOutcome("delivered")

    monkeypatch.setattr(pipeline, "measure_instance", measure)
    monkeypatch.setattr(pipeline, "deliver", deliver)
    q.bind(object())  # type: ignore[arg-type]
    q.start()
    try:
        for row_id in (1, 2, 3):  # a burst
            q.submit_measurement(row_id)
        assert first_done.wait(10)
        assert delivered.wait(10), "the delivery waited behind the measurements"
        with lock:
            assert ("measure", 3) not in order  # measurement 2 still holds its thread
        release.set()
        assert q.wait_idle(10)
    finally:
        q.stop()
    assert [o for o in order if o[0] == "measure"] == [("measure", 1), ("measure", 2),
                                                      ("measure", 3)]
    assert threads == {"measure": "knee-node-worker", "deliver": "knee-node-delivery"}


def test_a_hanging_delivery_holds_up_no_measurement(monkeypatch: pytest.MonkeyPatch) -> None:
    import dicom_node.pipeline as pipeline

    measured: list[int] = []
    unblock = threading.Event()
    q = InProcessQueue()

    def measure(ctx: Any, row_id: int) -> int:
        measured.append(row_id)
        return row_id

    def deliver(ctx: Any, row_id: int) -> Any:
        assert unblock.wait(10)  # a PACS that does not answer (a DIMSE timeout)
        return pipeline.DeliveryOutcome("delivered")

    monkeypatch.setattr(pipeline, "measure_instance", measure)
    monkeypatch.setattr(pipeline, "deliver", deliver)
    q.bind(object())  # type: ignore[arg-type]
    q.start()
    try:
        q.submit_delivery(7)
        for row_id in (1, 2):
            q.submit_measurement(row_id)
        assert not q.wait_idle(0.5)  # the delivery is still hanging ...
        assert measured == [1, 2]  # ... and both measurements are done
        unblock.set()
        assert q.wait_idle(10)
    finally:
        q.stop()


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
