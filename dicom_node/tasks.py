"""The node's task table: measure an instance, deliver a result.

Both queue backends read this one table: the in-process queue (its order and what it
runs) and Celery (task names, which queue, retries). Only a row id travels through a
queue, never pixels. The tasks themselves are plain functions of
:mod:`dicom_node.pipeline`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from dicom_node import pipeline
from dicom_node.db.states import DeliveryState

if TYPE_CHECKING:
    from dicom_node.context import NodeContext

MEASURE = "measure"
DELIVER = "deliver"


@dataclass(frozen=True)
class Task:
    """One kind of work the node queues.

    Parameters
    ----------
    key
        Short name (``"measure"``, ``"deliver"``), as the in-process queue holds it.
    celery_name
        Registered name of the Celery task (kept stable: queued messages carry it).
    run
        ``run(ctx, row_id) -> float | None``: do the work once; the seconds after which to
        try again, or None when it is finished (done, or failed for good).
    delivery_queue
        On Celery, sent to ``queue.delivery_queue_name`` (polled first) rather than
        ``queue.queue_name``; in-process, run by the delivery lane's own thread.
    retries
        On Celery, retried when ``run`` says so, without limit (the database counts the
        attempts and gives up after ``delivery.max_attempts``).
    """

    key: str
    celery_name: str
    run: Callable[[NodeContext, int], float | None]
    delivery_queue: bool = False
    retries: bool = False

    def __post_init__(self) -> None:
        if not self.key.isidentifier():
            raise ValueError(f"key must be an identifier, got {self.key!r}")
        if not self.celery_name.startswith("knee_node."):
            raise ValueError(f"celery_name must start with 'knee_node.', got {self.celery_name!r}")


def _measure(ctx: NodeContext, instance_id: int) -> float | None:
    pipeline.measure_instance(ctx, instance_id)  # looked up now: tests may replace it
    return None


def _deliver(ctx: NodeContext, delivery_id: int) -> float | None:
    outcome = pipeline.deliver(ctx, delivery_id)
    if outcome.state == DeliveryState.RETRYING and outcome.retry_in_s is not None:
        return outcome.retry_in_s
    return None


#: The task table, by key.
TASKS: Mapping[str, Task] = {
    MEASURE: Task(MEASURE, "knee_node.measure_instance", _measure),
    DELIVER: Task(
        DELIVER, "knee_node.deliver_result", _deliver, delivery_queue=True,
        retries=True,
    ),
}

__all__ = ["DELIVER", "MEASURE", "TASKS", "Task"]
