"""The Celery application, configured from the node's settings.

Tasks acknowledge late and are rejected (redelivered) when a worker dies; one task is
prefetched at a time; soft and hard time limits come from ``queue.*``. Deliveries retry
with exponential backoff (``delivery.*``), counted in the database. The model and the
database engine are created lazily in each worker process, after the fork.

Delivery tasks have a queue of their own (``queue.delivery_queue_name``) that a worker
empties before it takes the next measurement, so in a burst each result goes back to
PACS as soon as it is made rather than behind every study still waiting.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from celery import Celery, Task
from kombu.utils.scheduling import priority_cycle

from dicom_node.queue import CeleryQueue
from dicom_node.settings import Settings
from dicom_node.tasks import TASKS
from dicom_node.tasks import Task as NodeTask

log = logging.getLogger(__name__)

_STATE: dict[str, Any] = {}


def make_celery(settings: Settings) -> Celery:
    """A Celery app for ``settings`` with the node's two tasks registered."""
    if not isinstance(settings, Settings):
        raise TypeError(f"settings must be Settings, got {type(settings).__name__}")
    q = settings.queue
    app = Celery("knee_node", broker=q.broker_url, set_as_current=False)
    app.conf.update(
        task_default_queue=q.queue_name,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_soft_time_limit=q.soft_time_limit_s,
        task_time_limit=q.time_limit_s,
        task_ignore_result=True,
        task_serializer="json",
        accept_content=["json"],
        broker_connection_retry_on_startup=True,
        # a task taken by a worker that died (kill -9, power) goes back to the queue after
        # this; delivery retries wait in Redis as ETA tasks, bounded by it too
        # (kombu looks for such tasks every unacked_restore_interval seconds)
        task_routes={
            t.celery_name: {"queue": q.delivery_queue_name} for t in TASKS.values()
            if t.delivery_queue
        },
        broker_transport_options={
            # poll the delivery queue first (Redis BRPOP takes keys in the order given)
            "queue_order_strategy": f"{__name__}:DeliveriesFirst",
            "visibility_timeout": q.visibility_timeout_s,
            "unacked_restore_interval": max(1, min(10, int(q.visibility_timeout_s // 2))),
            "unacked_restore_throttle": 1,
        },
        worker_hijack_root_logger=False,
    )
    _STATE["settings"] = settings

    for task in TASKS.values():
        _register(app, task)
    return app


def _register(app: Celery, task: NodeTask) -> None:
    """Register one task of the table under its name: acknowledged late, rejected (so
    redelivered) when its worker dies; retried after the countdown ``run`` returns."""

    def run(self: Task, row_id: int) -> str:
        retry_in_s = task.run(_context(app), row_id)
        if retry_in_s is not None and task.retries:
            raise self.retry(countdown=retry_in_s)
        return "retrying" if retry_in_s is not None else "done"

    run.__name__ = f"{task.key}_task"
    options: dict[str, Any] = {"max_retries": None} if task.retries else {}
    app.task(
        name=task.celery_name,
        bind=True,
        acks_late=True,
        reject_on_worker_lost=True,
        shared=False,  # this app's tasks only (a later app in the process makes its own)
        **options,
    )(run)


class DeliveriesFirst(priority_cycle):
    """kombu queue order: delivery queues before the others, each time a worker polls."""

    def consume(self, n: int) -> list[str]:
        """The first ``n`` queues, delivery queues first."""
        items: list[str] = self.items[:n]
        return sorted(items, key=lambda name: not name.endswith(".deliveries"))


def _context(app: Celery) -> Any:
    """The node context of this worker process (built on first task after the fork)."""
    from dicom_node.context import NodeContext

    ctx = _STATE.get("ctx")
    if ctx is None or _STATE.get("pid") != os.getpid():
        ctx = NodeContext.create(_STATE["settings"], CeleryQueue(app))
        _STATE["ctx"], _STATE["pid"] = ctx, os.getpid()
    return ctx


def worker_argv(settings: Settings, loglevel: str = "INFO") -> list[str]:
    """Arguments for ``app.worker_main`` from the settings."""
    q = settings.queue
    return [
        "worker",
        f"--loglevel={loglevel}",
        f"--pool={q.worker_pool}",
        f"--concurrency={q.worker_concurrency}",
        f"--queues={q.delivery_queue_name},{q.queue_name}",
        f"--hostname={q.worker_name}",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
    ]
