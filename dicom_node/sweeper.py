"""The delivery sweeper: every delivery row not yet delivered has a process working on it.

A delivery is normally owned by whoever scheduled its next attempt (the node's queue, or
Celery). A row can lose its owner: ``knee-node resend`` tries once and cannot schedule a
retry, and a process can die between attempts. The serve process therefore looks, every
``delivery.sweep_interval_s``, for rows in ``pending``/``retrying`` untouched for longer
than any scheduled retry waits (``delivery.backoff_max_s`` plus a margin), and for rows
left ``sending`` longer than an attempt can last, and queues them again.
"""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from dicom_node.db.models import Delivery
from dicom_node.db.states import UNFINISHED_DELIVERY_STATES, DeliveryState

if TYPE_CHECKING:
    from dicom_node.context import NodeContext

log = logging.getLogger(__name__)

#: states of a delivery some process still has to finish
UNFINISHED_STATES = UNFINISHED_DELIVERY_STATES


def orphaned_deliveries(ctx: NodeContext, now: datetime | None = None) -> list[int]:
    """Ids of unfinished deliveries that no scheduled attempt will pick up."""
    settings = ctx.settings
    now = now or datetime.now(UTC)
    margin = 2 * settings.delivery.sweep_interval_s
    limits = settings.node.limits
    attempt_s = limits.acse_timeout_s + 2 * limits.dimse_timeout_s + limits.network_timeout_s
    with ctx.db.session() as s:
        rows = s.scalars(select(Delivery).where(Delivery.state.in_(UNFINISHED_STATES))).all()
        found = []
        for d in rows:
            if d.state == DeliveryState.SENDING:  # an attempt cannot last longer than its timeouts
                wait = attempt_s
            elif d.state == DeliveryState.RETRYING:  # its retry was due after the backoff
                wait = settings.delivery.backoff(max(d.attempts, 1))
            else:  # pending: queued when created, may wait behind a task's time limit
                wait = settings.queue.time_limit_s
            updated = d.updated_at if d.updated_at.tzinfo else d.updated_at.replace(tzinfo=UTC)
            if updated <= now - timedelta(seconds=wait + margin):
                found.append(d.id)
    return found


class DeliverySweeper:
    """A daemon thread re-queueing :func:`orphaned_deliveries`.

    Parameters
    ----------
    ctx
        The running node's context (its queue receives the deliveries).
    """

    def __init__(self, ctx: NodeContext) -> None:
        self.ctx = ctx
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def sweep(self) -> list[int]:
        """Queue every orphaned delivery once; their ids."""
        ids = orphaned_deliveries(self.ctx)
        for delivery_id in ids:
            log.warning("delivery %d had no process working on it: queued again", delivery_id)
            self.ctx.queue.submit_delivery(delivery_id)
        return ids

    def start(self) -> DeliverySweeper:
        """Sweep every ``delivery.sweep_interval_s`` until :meth:`stop`."""
        self._thread = threading.Thread(target=self._run, name="knee-node-sweeper", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop sweeping."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.wait(self.ctx.settings.delivery.sweep_interval_s):
            try:
                self.sweep()
            except SQLAlchemyError as exc:  # the database is away: try at the next sweep
                log.error("delivery sweep skipped: %s", type(exc).__name__)
