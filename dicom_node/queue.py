"""Job queues: the tasks of :data:`dicom_node.tasks.TASKS` run in-process (embedded
default) or through Celery.

Only row ids travel through a queue. Task names (Celery): ``knee_node.measure_instance``
and ``knee_node.deliver_result``.
"""

from __future__ import annotations

import logging
import queue as stdlib_queue
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from dicom_node.tasks import DELIVER, MEASURE, TASKS

if TYPE_CHECKING:
    from celery import Celery

    from dicom_node.context import NodeContext
    from dicom_node.report_process import ReportProcess

log = logging.getLogger(__name__)

#: (task key, row id, and for the reports lane the work itself)
_Item = tuple[str, int, "Callable[[], object] | None"]

MEASURE_TASK = TASKS[MEASURE].celery_name
DELIVER_TASK = TASKS[DELIVER].celery_name

class JobQueue(Protocol):
    """Where the listener and the measurement task put work."""

    def submit_measurement(self, instance_id: int) -> None:
        """Queue the measurement of a received instance."""
        ...

    def submit_delivery(self, delivery_id: int, countdown_s: float = 0.0) -> None:
        """Queue a delivery attempt, after ``countdown_s`` seconds."""
        ...


class InProcessQueue:
    """Worker threads running the task functions, in the listener's process.

    Three lanes, each a queue and a thread: measurements (thread ``knee-node-worker``),
    deliveries (thread ``knee-node-delivery``), as a Celery deployment has its delivery
    queue, and reports (thread ``knee-node-reports``). A delivery never waits behind
    measurements, so in a burst each result goes back as soon as it is made, and a PACS
    that is slow to answer (or the DIMSE timeout of one that is down) holds up no
    measurement. The reports lane makes each job's objects after its SR (the SC, the
    GSPS) while the worker measures the next image, in a child process of lower priority
    (:mod:`dicom_node.report_process`). Within a lane, first come first served.

    Before its first task the measurement thread sets torch's threads once
    (:func:`dicom_node.measurer.worker_threads`): ``model.num_threads``, else all CPUs
    but one, leaving a core to the listener, the deliveries and the reports.

    Call :meth:`bind` with the node context before :meth:`start`.
    """

    #: Lane of each task (deliveries apart, by :attr:`Task.delivery_queue`), and its
    #: thread; the reports lane makes a job's objects after its SR (:meth:`submit_reports`).
    LANES: dict[str, str] = {
        "measure": "knee-node-worker",
        "deliver": "knee-node-delivery",
        "reports": "knee-node-reports",
    }
    #: Jobs the reports lane may hold (each holds its source image in memory): when it is
    #: this far behind, the measurement thread waits before it measures the next image.
    REPORTS_BACKLOG = 2

    def __init__(self) -> None:
        # per lane: tasks first come first served; None stops the lane's thread
        self._lanes: dict[str, stdlib_queue.Queue[_Item | None]] = {
            lane: stdlib_queue.Queue(self.REPORTS_BACKLOG if lane == "reports" else 0)
            for lane in self.LANES
        }
        self._ctx: NodeContext | None = None
        #: where the reports lane makes the objects (started with the lanes)
        self.report_process: ReportProcess | None = None
        self._threads: list[threading.Thread] = []
        self._timers: set[threading.Timer] = set()
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._busy = 0

    @staticmethod
    def lane_of(key: str) -> str:
        """``"deliver"`` for a task on the delivery queue, else ``"measure"``."""
        return "deliver" if TASKS[key].delivery_queue else "measure"

    def bind(self, ctx: NodeContext) -> None:
        """Give the queue the context its tasks run with."""
        self._ctx = ctx

    def start(self) -> None:
        """Start one thread per lane."""
        if self._ctx is None:
            raise RuntimeError("bind(ctx) before start()")
        from dicom_node.report_process import ReportProcess

        settings = getattr(self._ctx, "settings", None)  # tests bind a bare context
        self.report_process = (ReportProcess() if settings is None
                               else ReportProcess(timeout_s=settings.queue.time_limit_s))
        for lane, name in self.LANES.items():
            t = threading.Thread(target=self._run, args=(lane,), name=name, daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self, timeout: float = 30.0) -> None:
        """Cancel pending retries and stop each thread after its current task."""
        with self._lock:
            for t in self._timers:
                t.cancel()
            self._timers.clear()
        # measurements, then the reports, then the deliveries: each lane drains what the one
        # before it queued (what is left is in the database, and resumed at the next start)
        threads = {t.name: t for t in self._threads}
        for lane in ("measure", "reports", "deliver"):
            self._lanes[lane].put(None)
            t = threads.get(self.LANES[lane])
            if t is not None:
                t.join(timeout)
        self._threads = []
        if self.report_process is not None:
            self.report_process.shutdown()
            self.report_process = None

    def qsize(self) -> int:
        """Tasks waiting in all lanes (not counting running or scheduled ones)."""
        return sum(q.qsize() for q in self._lanes.values())

    def _put(self, item: _Item, countdown_s: float) -> None:
        with self._lock:
            self._busy += 1
        lane = self._lanes["reports" if item[2] is not None else self.lane_of(item[0])]
        if countdown_s <= 0:
            lane.put(item)
            return

        def fire() -> None:
            with self._lock:
                self._timers.discard(timer)
            lane.put(item)

        timer = threading.Timer(countdown_s, fire)
        timer.daemon = True
        with self._lock:
            self._timers.add(timer)
        timer.start()

    def submit_measurement(self, instance_id: int) -> None:
        """Queue the measurement of a received instance."""
        self._put((MEASURE, int(instance_id), None), 0.0)

    def submit_delivery(self, delivery_id: int, countdown_s: float = 0.0) -> None:
        """Queue a delivery attempt, after ``countdown_s`` seconds."""
        self._put((DELIVER, int(delivery_id), None), countdown_s)

    def submit_reports(self, job_id: int, make: Callable[[], object]) -> None:
        """Run ``make()`` (the objects job ``job_id`` makes after its SR) on the reports
        lane, beside the next measurement; blocks while the lane holds
        :attr:`REPORTS_BACKLOG` jobs. Held in memory only: the job row names the objects
        still to make, so a node stopped before they are made makes them at its restart
        (:func:`dicom_node.pipeline.pending_work`)."""
        self._put(("reports", int(job_id), make), 0.0)

    def wait_idle(self, timeout: float) -> bool:
        """Block until no task is queued, scheduled or running (True), or timeout (False)."""
        with self._idle:
            return self._idle.wait_for(lambda: self._busy == 0, timeout)

    def _set_threads(self) -> None:
        assert self._ctx is not None
        from dicom_node.measurer import apply_worker_threads, worker_threads

        try:
            threads = apply_worker_threads(
                worker_threads(self._ctx.settings.model, in_process=True)
            )
            log.info("in-process worker: torch runs the model with %s thread(s)", threads)
        except Exception:  # never lose the worker over a thread count
            log.exception("in-process worker: cannot set torch's threads; torch's default used")

    def _run(self, lane: str) -> None:
        assert self._ctx is not None
        if lane == "measure":
            self._set_threads()
        q = self._lanes[lane]
        while True:
            item = q.get()
            if item is None:
                return
            key, row_id, make = item
            try:
                if make is not None:  # the reports lane
                    make()
                elif (retry_in_s := TASKS[key].run(self._ctx, row_id)) is not None:
                    self._put(item, retry_in_s)
            except Exception:  # the job row holds the error; the worker goes on
                log.exception("%s task for row %d failed", key, row_id)
            finally:
                with self._idle:
                    self._busy -= 1
                    self._idle.notify_all()


class CeleryQueue:
    """Submits the tasks to Celery by name (the broker carries row ids only)."""

    def __init__(self, app: Celery) -> None:
        self.app = app

    def submit_measurement(self, instance_id: int) -> None:
        """Queue the measurement of a received instance."""
        self.app.send_task(TASKS[MEASURE].celery_name, args=[int(instance_id)])

    def submit_delivery(self, delivery_id: int, countdown_s: float = 0.0) -> None:
        """Queue a delivery attempt, after ``countdown_s`` seconds."""
        self.app.send_task(
            TASKS[DELIVER].celery_name, args=[int(delivery_id)], countdown=countdown_s or None
        )


SubmitFn = Callable[..., Any]
