"""The process that makes a job's objects after its SR (the SC, the GSPS) for the
in-process queue.

Drawing and encoding the overlay is Python and numpy work, and part of it (the JPEG-LS
encoder) holds the GIL. In ``serve``'s own process it would take the GIL from the
listener receiving the next study, from the delivery sending this one's SR and from the
model's Python between its layers. So it runs in one child process, started with
``spawn`` (never ``fork`` from a process with torch's threads) and at a lower CPU
priority (``nice`` +10): on a 2-core machine the listener and the deliveries come first,
and the child takes what they leave.

The child reads the source from the spool itself (it stays there until every object is
written) and writes the objects durably, as the job would; only the settings, the
measurements and the file paths cross the process boundary.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import threading
import time
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool

from dicom_node.errors import KneeNodeError

log = logging.getLogger(__name__)

#: Added to the child's nice value: below the listener, the deliveries and the model.
NICE = 10
#: How often (s) the child checks that the node is still there.
WATCH_S = 0.5


def _child_init(node_pid: int) -> None:
    with contextlib.suppress(OSError):  # not allowed here: the same priority as the node
        os.nice(NICE)
    # the node's stdout is not the child's: a pipe reading it ends when the node does
    with contextlib.suppress(OSError), open(os.devnull, "wb") as null:
        os.dup2(null.fileno(), 1)
    threading.Thread(target=_exit_with, args=(node_pid,), name="parent-watch",
                     daemon=True).start()
    from dicom_node import kinds

    kinds.registry()  # the kinds' modules, once


def _exit_with(parent: int) -> None:
    """Exit as soon as the node that started the child is gone (killed with ``-9``, or
    stopped before it could stop the child): never an orphan holding its pipes."""
    while os.getppid() == parent:
        time.sleep(WATCH_S)
    os._exit(0)


def _warm() -> bool:
    """Import what the objects are built with, so the first job does not wait for it."""
    import highdicom  # noqa: F401
    import PIL.ImageDraw  # noqa: F401

    from dicom_node.reports import overlay, presentation_state, secondary_capture  # noqa: F401

    return True


class ReportProcessError(KneeNodeError):
    """The report process died or did not answer in time (it is replaced)."""


class ReportProcess:
    """One child process making objects; :meth:`make` runs a picklable function there.

    Parameters
    ----------
    warm
        Start the child now and import the report builders in it (not waited for).
    timeout_s
        Longest :meth:`make` waits; a child that takes longer is killed and replaced.
    """

    def __init__(self, warm: bool = True, timeout_s: float = 180.0) -> None:
        if not timeout_s > 0:
            raise ValueError(f"timeout_s must be > 0, got {timeout_s!r}")
        self.timeout_s = float(timeout_s)
        self._pool = self._new_pool()
        if warm:
            self._pool.submit(_warm)

    @staticmethod
    def _new_pool() -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            max_workers=1, mp_context=multiprocessing.get_context("spawn"),
            initializer=_child_init, initargs=(os.getpid(),),
        )

    def submit(self, fn: object, *args: object) -> Future[object]:
        """``fn(*args)`` in the child; a child that died is replaced first."""
        try:
            return self._pool.submit(fn, *args)  # type: ignore[arg-type]
        except BrokenProcessPool:
            log.warning("the report process had stopped: starting a new one")
            self._pool = self._new_pool()
            return self._pool.submit(fn, *args)  # type: ignore[arg-type]

    def make(self, fn: object, *args: object) -> object:
        """``fn(*args)`` in the child, its result or its exception.

        Raises
        ------
        ReportProcessError
            The child died (a crash in an encoder, out of memory) or took longer than
            ``timeout_s``; it is killed and the next call starts a new one.
        """
        future = self.submit(fn, *args)
        try:
            return future.result(timeout=self.timeout_s)
        except BrokenProcessPool as exc:
            self._replace()
            raise ReportProcessError(f"the report process stopped: {exc}") from None
        except FutureTimeout:
            self._replace()
            raise ReportProcessError(
                f"the report process took longer than {self.timeout_s:g} s: killed") from None

    def _replace(self) -> None:
        old, self._pool = self._pool, self._new_pool()
        for proc in list(getattr(old, "_processes", {}).values()):  # no public handle
            with contextlib.suppress(OSError, AttributeError):
                proc.kill()
        old.shutdown(wait=False, cancel_futures=True)

    def shutdown(self, timeout_s: float = 30.0) -> None:
        """Let the child finish what it is doing (at most ``timeout_s``), then stop it."""
        procs = list(getattr(self._pool, "_processes", {}).values())
        self._pool.shutdown(wait=False, cancel_futures=True)
        for proc in procs:
            proc.join(timeout_s)
            if proc.is_alive():
                proc.kill()


__all__ = ["NICE", "ReportProcess", "ReportProcessError"]
