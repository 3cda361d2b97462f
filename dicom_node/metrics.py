"""Prometheus metrics and a health endpoint of the node (``/metrics``, ``/healthz``).

``/status`` serves a read-only HTML page of recent jobs (:mod:`dicom_node.status_page`).

The figures are read from the node's database at each scrape, not counted in one
process: the listener and every ``knee-node worker`` on every machine write to the same
database, so the one endpoint of ``knee-node serve`` shows the whole installation, and
nothing is lost when a worker restarts. Counters are totals of rows (they only go back if
rows are deleted by hand, or a ``knee-node resend`` resets delivery attempts).

Latency histograms are filled from jobs and deliveries created *after* the endpoint
started, once each when they finish: measurement time (``jobs.timings_ms.total_ms``) and
end to end (instance received to results delivered, per destination). Across machines the
end-to-end figure needs synchronised clocks (NTP).

Queue depth: Redis ``LLEN`` of the Celery queue, or the in-process queue's size.
``/healthz`` answers 200 when the database (and, on Celery, the broker) answers, else 503.

No patient data is exported: the only label is a row state.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select, text
from sqlalchemy.exc import SQLAlchemyError

from dicom_node.db.models import (
    DELIVERY_STATES,
    INSTANCE_STATES,
    JOB_STATES,
    AuditEvent,
    Delivery,
    Job,
    ReceivedInstance,
)
from dicom_node.db.states import FINAL_JOB_STATES, DeliveryState, InstanceState

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from dicom_node.context import NodeContext
    from dicom_node.settings import Settings

log = logging.getLogger(__name__)

PREFIX = "knee_node"
#: Buckets (seconds) of the measurement and end-to-end histograms.
LATENCY_BUCKETS: tuple[float, ...] = (0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800)
_FINAL_JOB = FINAL_JOB_STATES
_SCAN_LIMIT = 1000  # new rows looked at per scrape and histogram, at most
_PENDING_MAX = 900  # unfinished rows re-checked per scrape (under SQLite's 999 variables)


def _seconds(later: datetime | None, earlier: datetime | None) -> float | None:
    """``later - earlier`` in seconds (None if either is missing or tz-awareness differs)."""
    if later is None or earlier is None:
        return None
    if (later.tzinfo is None) != (earlier.tzinfo is None):
        later, earlier = later.replace(tzinfo=None), earlier.replace(tzinfo=None)
    return max(0.0, (later - earlier).total_seconds())


@dataclass
class _Cursor:
    """Which rows of one table were looked at for a histogram.

    ``scanned``: the highest row id looked at. ``pending``: ids looked at before they
    finished, checked again at each scrape (rows finish out of order with several
    workers). Beyond :data:`_PENDING_MAX` the oldest are dropped: rows left unfinished
    for good, such as the job of a worker that died.
    """

    scanned: int
    pending: set[int] = field(default_factory=set)

    def trim(self) -> None:
        """Keep the newest :data:`_PENDING_MAX` pending ids."""
        if len(self.pending) > _PENDING_MAX:
            self.pending = set(sorted(self.pending)[-_PENDING_MAX:])


class NodeCollector(Collector):
    """Collects the node's figures from its database at each scrape.

    Parameters
    ----------
    ctx
        The running node's context (database, queue, settings).
    """

    def __init__(self, ctx: NodeContext) -> None:
        self.ctx = ctx
        self._lock = threading.Lock()
        self.measurement_seconds = Histogram(
            f"{PREFIX}_measurement_seconds",
            "Time to measure one instance and write its SR and SC (jobs finished since start)",
            buckets=LATENCY_BUCKETS,
            registry=None,  # yielded by collect(), after this scrape's observations
        )
        self.end_to_end_seconds = Histogram(
            f"{PREFIX}_end_to_end_seconds",
            "Instance received to its first results (the SR) delivered, per destination "
            "(since start)",
            buckets=LATENCY_BUCKETS,
            registry=None,
        )
        with ctx.db.session() as s:
            self._jobs = _Cursor(s.scalar(select(func.max(Job.id))) or 0)
            self._deliveries = _Cursor(s.scalar(select(func.max(Delivery.id))) or 0)

    # -- histograms ----------------------------------------------------------------
    def _scan(
        self,
        s: Session,
        cursor: _Cursor,
        stmt: Any,
        id_col: Any,
        state_col: Any,
        final: tuple[str, ...],
    ) -> list[Any]:
        """Rows of ``stmt`` (id, state, ...) that finished since the last scrape, once each."""
        rows = list(
            s.execute(stmt.where(id_col > cursor.scanned).order_by(id_col).limit(_SCAN_LIMIT))
        )
        if cursor.pending:
            rows += s.execute(stmt.where(id_col.in_(cursor.pending), state_col.in_(final)))
        finished = []
        for row in rows:
            row_id, state = row[0], row[1]
            cursor.scanned = max(cursor.scanned, row_id)
            if state in final:
                cursor.pending.discard(row_id)
                finished.append(row)
            else:
                cursor.pending.add(row_id)
        cursor.trim()
        return finished

    def _observe_jobs(self, s: Session) -> None:
        stmt = select(Job.id, Job.state, Job.timings_ms)
        for _, _, timings in self._scan(s, self._jobs, stmt, Job.id, Job.state, _FINAL_JOB):
            total_ms = (timings or {}).get("total_ms")
            if total_ms is not None:
                self.measurement_seconds.observe(float(total_ms) / 1000.0)

    def _observe_deliveries(self, s: Session) -> None:
        from sqlalchemy.orm import aliased

        earlier = aliased(Delivery)
        first_id = (  # a job's first delivery to a destination: its SR (the rest follow)
            select(func.min(earlier.id))
            .where(earlier.job_id == Delivery.job_id, earlier.destination == Delivery.destination)
            .scalar_subquery()
        )
        stmt = (
            select(Delivery.id, Delivery.state, Delivery.delivered_at, ReceivedInstance.received_at,
                   Delivery.id == first_id)
            .join(Job, Delivery.job_id == Job.id)
            .join(ReceivedInstance, Job.instance_id == ReceivedInstance.id)
        )
        final = (DeliveryState.DELIVERED, DeliveryState.FAILED)
        for row in self._scan(s, self._deliveries, stmt, Delivery.id, Delivery.state, final):
            seconds = _seconds(row[2], row[3])
            if seconds is not None and row[4]:  # None for failed deliveries: not delivered
                self.end_to_end_seconds.observe(seconds)

    # -- counters and gauges -------------------------------------------------------
    def _by_state(self, s: Session, column: Any, states: tuple[str, ...]) -> dict[str, int]:
        counts = {state: 0 for state in states}
        for state, n in s.execute(select(column, func.count()).group_by(column)).all():
            counts[str(state)] = int(n)
        return counts

    def _by_kind(self, s: Session) -> dict[tuple[str, str], int]:
        """Jobs by (study kind, state); every registered kind appears, with 0 if none."""
        from dicom_node import kinds

        counts: dict[tuple[str, str], int] = {
            (kind, str(state)): 0 for kind in kinds.names() for state in _FINAL_JOB
        }
        stmt = select(Job.kind, Job.state, func.count()).group_by(Job.kind, Job.state)
        for kind, state, n in s.execute(stmt).all():
            counts[(str(kind or kinds.DEFAULT_KIND), str(state))] = int(n)
        return counts

    def collect(self) -> Iterator[Metric]:
        """The figures of this scrape (nothing but ``up`` 0 if the database fails)."""
        up = GaugeMetricFamily(f"{PREFIX}_database_up", "1 if the database answered this scrape")
        try:
            with self._lock, self.ctx.db.session() as s:
                instances = self._by_state(s, ReceivedInstance.state, INSTANCE_STATES)
                jobs = self._by_state(s, Job.state, JOB_STATES)
                by_kind = self._by_kind(s)
                deliveries = self._by_state(s, Delivery.state, DELIVERY_STATES)
                attempts = int(s.scalar(select(func.sum(Delivery.attempts))) or 0)
                tried = int(s.scalar(select(func.count()).where(Delivery.attempts > 0)) or 0)
                assoc_rejected = int(
                    s.scalar(select(func.count()).where(AuditEvent.event == "association_rejected"))
                    or 0
                )
                self._observe_jobs(s)
                self._observe_deliveries(s)
        except SQLAlchemyError as exc:
            log.warning("metrics: database unavailable (%s)", type(exc).__name__)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from self.measurement_seconds.collect()
        yield from self.end_to_end_seconds.collect()
        simple = (
            (
                "instances_received",
                "C-STORE instances accepted and recorded",
                sum(instances.values()),
            ),
            (
                "instances_ignored",
                "Instances not matching any routing rule",
                instances[InstanceState.IGNORED],
            ),
            (
                "instances_rejected",
                "Instances refused as unreadable (0xC000)",
                instances[InstanceState.REJECTED],
            ),
            ("associations_rejected", "Associations refused (caller not allowed)", assoc_rejected),
            ("jobs", "Measurement jobs started", sum(jobs.values())),
            (
                "deliveries_delivered",
                "Deliveries that succeeded",
                deliveries[DeliveryState.DELIVERED],
            ),
            (
                "deliveries_failed",
                "Deliveries given up after max_attempts",
                deliveries[DeliveryState.FAILED],
            ),
            ("delivery_attempts", "C-STORE associations opened to destinations", attempts),
            ("delivery_retries", "Delivery attempts after a failed one", attempts - tried),
        )
        for name, doc, value in simple:
            counter = CounterMetricFamily(f"{PREFIX}_{name}", doc)
            counter.add_metric([], value)
            yield counter
        for name, doc, counts in (
            ("instances_by_state", "Received instances by current state", instances),
            ("jobs_by_state", "Jobs by current state", jobs),
            ("deliveries_by_state", "Deliveries by current state", deliveries),
        ):
            gauge = GaugeMetricFamily(f"{PREFIX}_{name}", doc, labels=["state"])
            for state, n in sorted(counts.items()):
                gauge.add_metric([state], n)
            yield gauge
        gauge = GaugeMetricFamily(
            f"{PREFIX}_jobs_by_kind",
            "Jobs by study kind and current state",
            labels=["kind", "state"],
        )
        for (kind, state), n in sorted(by_kind.items()):
            gauge.add_metric([kind, state], n)
        yield gauge
        depth = queue_depth(self.ctx)
        if depth is not None:
            g = GaugeMetricFamily(f"{PREFIX}_queue_depth", "Tasks waiting in the job queue")
            g.add_metric([], depth)
            yield g


def queue_depth(ctx: NodeContext) -> int | None:
    """Tasks waiting: Redis ``LLEN`` of the Celery queue, or the in-process queue's size.

    None when it cannot be known (broker not Redis, or unreachable).
    """
    q = ctx.settings.queue
    if q.backend == "celery":
        if not q.broker_url.startswith(("redis://", "rediss://")):
            return None
        import redis

        try:
            client = redis.Redis.from_url(q.broker_url, socket_timeout=2)
            return int(client.llen(q.queue_name)) + int(client.llen(q.delivery_queue_name))
        except redis.exceptions.RedisError:
            return None
    qsize = getattr(ctx.queue, "qsize", None)  # InProcessQueue: tasks waiting in its lanes
    return None if qsize is None else int(qsize())


def health(ctx: NodeContext) -> tuple[bool, dict[str, str]]:
    """Check the database (``SELECT 1``) and, on Celery, the broker (Redis ``PING``).

    Returns
    -------
    tuple
        ``(healthy, {"database": "ok" | why, "broker": ...})``.
    """
    checks: dict[str, str] = {}
    try:
        with ctx.db.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except SQLAlchemyError as exc:
        checks["database"] = f"unreachable: {type(exc).__name__}"
    q = ctx.settings.queue
    if q.backend == "celery":
        checks["broker"] = _broker_health(q.broker_url)
    return all(v == "ok" for v in checks.values()), checks


def _broker_health(url: str) -> str:
    if url.startswith(("redis://", "rediss://")):
        import redis

        try:
            return "ok" if redis.Redis.from_url(url, socket_timeout=2).ping() else "no PONG"
        except redis.exceptions.RedisError as exc:
            return f"unreachable: {type(exc).__name__}"
    from kombu import Connection

    try:
        with Connection(url, connect_timeout=2) as conn:
            conn.ensure_connection(max_retries=1)
        return "ok"
    except OSError as exc:  # kombu raises OperationalError (an OSError) when it gives up
        return f"unreachable: {type(exc).__name__}"


class MetricsServer:
    """HTTP server of ``/metrics`` and ``/healthz`` in a background thread.

    Parameters
    ----------
    ctx
        The running node's context.
    host, port
        Where to listen (port 0: any free port; see :attr:`port`).
    """

    def __init__(self, ctx: NodeContext, host: str = "127.0.0.1", port: int = 9102) -> None:
        if not isinstance(port, int) or not 0 <= port <= 65535:
            raise ValueError(f"port must be an integer 0-65535, got {port!r}")
        if not host:
            raise ValueError(f"host must be an address to listen on, got {host!r}")
        self.ctx = ctx
        self.registry = CollectorRegistry(auto_describe=False)
        self.collector = NodeCollector(ctx)
        self.registry.register(self.collector)
        self._httpd = BoundedHTTPServer((host, port), self._handler_class())
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The port listened on."""
        return int(self._httpd.server_address[1])

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            timeout = REQUEST_TIMEOUT_S  # an idle or slow client is closed after this

            def do_GET(self) -> None:  # noqa: N802 -- http.server's naming
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    self._send(200, CONTENT_TYPE_LATEST, generate_latest(server.registry))
                elif path == "/healthz":
                    ok, checks = health(server.ctx)
                    body = json.dumps({"status": "ok" if ok else "unhealthy", **checks})
                    self._send(200 if ok else 503, "application/json", body.encode())
                elif path == "/status":
                    from dicom_node.status_page import render_status

                    code, page = render_status(server.ctx)
                    self._send(code, "text/html; charset=utf-8", page)
                else:
                    self._send(404, "text/plain", b"not found: try /metrics, /healthz or /status\n")

            def _send(self, code: int, ctype: str, body: bytes) -> None:
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                log.debug("metrics %s: " + format, self.client_address[0], *args)

        return Handler

    def start(self) -> MetricsServer:
        """Serve in a daemon thread."""
        if self._thread is not None:
            raise RuntimeError("the metrics server is already started")
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, name="knee-node-metrics", daemon=True
        )
        self._thread.start()
        host, port = self._httpd.server_address[:2]
        log.info("metrics on http://%s:%d/metrics, health on /healthz", host, port)
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(10)
            self._thread = None
        self._httpd.server_close()


#: seconds a metrics client may stay idle or take to send its request
REQUEST_TIMEOUT_S = 10.0
#: requests served at once; more are closed at once (a scraper needs one)
MAX_CONCURRENT_REQUESTS = 8


class BoundedHTTPServer(ThreadingHTTPServer):
    """A threading HTTP server with at most :data:`MAX_CONCURRENT_REQUESTS` threads."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._slots = threading.BoundedSemaphore(MAX_CONCURRENT_REQUESTS)

    def process_request(self, request: Any, client_address: Any) -> None:  # noqa: D102
        if not self._slots.acquire(blocking=False):
            log.warning("metrics: %d requests open, closing a new one", MAX_CONCURRENT_REQUESTS)
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request: Any, client_address: Any) -> None:  # noqa: D102
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()


def start_metrics_server(ctx: NodeContext) -> MetricsServer | None:
    """Start the endpoint configured in ``metrics``.

    Returns None when ``metrics.enabled`` is false, or when the port cannot be bound (an
    error is logged and the node goes on serving DICOM).
    """
    m = getattr(ctx.settings, "metrics", None)
    if m is None or not m.enabled:
        return None
    try:
        return MetricsServer(ctx, m.host, m.port).start()
    except OSError as exc:  # the DICOM service matters more than its metrics: say so, go on
        log.error(
            "metrics: cannot listen on %s:%d (%s); serving DICOM without /metrics and /healthz",
            m.host,
            m.port,
            exc.strerror,
        )
        return None


def check_url(url: str, timeout: float = 5.0) -> int:
    """GET ``url``; 0 if it answers 200, else 1 (for container health checks)."""
    import urllib.error
    import urllib.request

    if not url.startswith(("http://", "https://")):
        raise ValueError(f"url must be an http(s) URL, got {url!r}")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 -- http(s) only
            return 0 if resp.status == 200 else 1
    except (urllib.error.URLError, OSError):
        return 1


def ping_worker(settings: Settings, nodename: str | None = None, timeout: float = 5.0) -> int:
    """0 if the Celery worker ``nodename`` answers a ping, else 1.

    The default name is ``queue.worker_name`` with ``%h`` as this host's name: the worker
    started by ``knee-node worker`` with the same settings on this host. For the health
    check of a worker container or unit, which serves no HTTP.
    """
    import socket

    from dicom_node.celery_app import make_celery

    name = nodename or settings.queue.worker_name.replace("%h", socket.gethostname())
    app = make_celery(settings)
    try:
        replies = app.control.ping(destination=[name], timeout=timeout)
    except OSError as exc:  # broker unreachable (kombu's OperationalError is an OSError)
        log.error("worker ping: broker unreachable: %s", exc)
        return 1
    finally:
        app.close()
    return 0 if any(name in r for r in replies) else 1


def main(argv: list[str] | None = None) -> int:
    """Container health checks: ``python -m dicom_node.metrics [URL | --celery-worker]``."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m dicom_node.metrics", description=main.__doc__)
    parser.add_argument("url", nargs="?", default="http://127.0.0.1:9102/healthz")
    parser.add_argument(
        "--celery-worker",
        action="store_true",
        help="ping this host's Celery worker instead (settings from $KNEE_NODE_CONFIG)",
    )
    args = parser.parse_args(argv)
    if args.celery_worker:
        from dicom_node.settings import load_settings

        return ping_worker(load_settings())
    return check_url(args.url)


if __name__ == "__main__":
    raise SystemExit(main())
