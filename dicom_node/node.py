"""A running node: database checked, queue started, listener listening.

Used by ``knee-node serve``, ``knee-node demo`` and the tests (which start it on a free
port and stop it in teardown).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from dicom_node.context import NodeContext
from dicom_node.datalock import DataDirLock
from dicom_node.db import migrate
from dicom_node.listener import start_listener
from dicom_node.queue import CeleryQueue, InProcessQueue, JobQueue
from dicom_node.settings import Settings

if TYPE_CHECKING:
    from collections.abc import Mapping

    from pynetdicom import AE

    from dicom_node.measurer import Measurer

log = logging.getLogger(__name__)


def secure_data_dir(settings: Settings) -> None:
    """Create the data directory private (``storage.modes``); warn if it was open to others."""
    data_dir, modes = settings.storage.data_dir, settings.storage.modes
    if data_dir.is_dir() and data_dir.stat().st_mode & 0o007:
        log.warning(
            "data directory %s was open to other users (mode %o): set to %o "
            "(storage.group gives a group read access)",
            data_dir,
            data_dir.stat().st_mode & 0o777,
            modes.folder,
        )
    modes.make_folder(data_dir)


def prepare_database(settings: Settings) -> None:
    """Create the data folders; upgrade the schema (``auto_migrate``) or require head."""
    storage = settings.storage
    modes = storage.modes
    secure_data_dir(settings)
    for folder in (storage.spool, storage.results):
        modes.make_folder(folder)  # modes set explicitly, not left to the umask
    url = settings.database_url
    if settings.database.auto_migrate:
        migrate.upgrade(url)
    else:
        migrate.require_head(url)
    if url.startswith("sqlite:///"):
        db_file = Path(url.removeprefix("sqlite:///"))
        for path in (db_file, *(db_file.with_name(db_file.name + x) for x in ("-wal", "-shm"))):
            if path.is_file():
                modes.apply(path)


class KneeNode:
    """The listener plus, on the in-process backend, the worker thread.

    Parameters
    ----------
    settings
        The node's settings.
    measurer
        Use this measurer instead of the model factories (tests, demo): one for every
        study kind, or a mapping kind name -> measurer.
    port
        Listen on this port instead of ``node.port`` (0: any free port).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        measurer: Measurer | Mapping[str, Measurer] | None = None,
        port: int | None = None,
    ) -> None:
        self.settings = settings
        self._port = port
        queue: JobQueue
        if settings.queue.backend == "celery":
            from dicom_node.celery_app import make_celery

            queue = CeleryQueue(make_celery(settings))
        else:
            queue = InProcessQueue()
        self.ctx = NodeContext.create(settings, queue, measurer)
        self.ae: AE | None = None
        self.server: object | None = None
        #: one node per data directory (dicom_node.datalock); held from start to stop
        self.lock = DataDirLock(settings.storage.data_dir)

    @property
    def port(self) -> int:
        """The port the listener is bound to."""
        if self.server is None:
            raise RuntimeError("the node is not started")
        return int(self.server.server_address[1])  # type: ignore[attr-defined]

    def start(self) -> KneeNode:
        """Lock the data directory, migrate/check the database, start the queue, resume
        unfinished work, listen.

        Raises
        ------
        dicom_node.datalock.DataDirLockedError
            Another running node uses the same ``storage.data_dir`` (names its PID).
        OSError
            The port cannot be bound (the lock is released again).
        """
        if self.server is not None:
            raise RuntimeError("the node is already started")
        secure_data_dir(self.settings)
        self.lock.acquire()
        try:
            self._start_locked()
        except BaseException:
            if isinstance(self.ctx.queue, InProcessQueue):
                self.ctx.queue.stop()
            self.lock.release()
            raise
        return self

    def _start_locked(self) -> None:
        prepare_database(self.settings)
        q = self.ctx.queue
        if isinstance(q, InProcessQueue):
            from dicom_node.pipeline import pending_work

            q.bind(self.ctx)
            q.start()
            instances, deliveries = pending_work(self.ctx)
            for i in instances:
                q.submit_measurement(i)
            for d in deliveries:
                q.submit_delivery(d)
            if instances or deliveries:
                log.info(
                    "resumed %d measurement(s), %d delivery(ies)", len(instances), len(deliveries)
                )
        self.ae, self.server = start_listener(self.ctx, self._port)
        from dicom_node.sweeper import DeliverySweeper

        self.sweeper = DeliverySweeper(self.ctx).start()

    def wait_idle(self, timeout: float = 60.0) -> bool:
        """In-process backend: wait until the queue is empty and idle."""
        q = self.ctx.queue
        if not isinstance(q, InProcessQueue):
            raise RuntimeError("wait_idle needs the in-process queue")
        return q.wait_idle(timeout)

    def stop(self) -> None:
        """Stop listening, stop the worker thread, close the database."""
        if self.server is not None:
            self.server.shutdown()  # type: ignore[attr-defined]
            self.server = None
        sweeper = getattr(self, "sweeper", None)
        if sweeper is not None:
            sweeper.stop()
            self.sweeper = None
        if self.ae is not None:
            self.ae.shutdown()
            guard = getattr(self.ae, "guard", None)
            if guard is not None:
                guard.stop()
        if isinstance(self.ctx.queue, InProcessQueue):
            self.ctx.queue.stop()
        self.ctx.db.dispose()
        self.lock.release()

    def __enter__(self) -> KneeNode:
        return self if self.server is not None else self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
