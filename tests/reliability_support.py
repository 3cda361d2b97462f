"""Helpers for the reliability tests (issue 5): a measurer test double that reads its
ground truth from the image header, can be made slow, and leaves a marker per attempt;
cases generated quickly; spool/PACS bookkeeping.

The double decodes the pixels with the project's real DICOM pixel path
(:func:`inference.pixels.read_radiograph`), so bad pixel data fails as it would with the
shipped predictor; the landmarks are the schematic knee of ``node_support``, with the
aTFA written in Image Comments as ``atfa=<degrees>``. These tests are about the node,
not the model.

Environment read by the double (worker processes get it from the test):

``KNEE_NODE_TEST_MEASURE_S``
    seconds each measurement sleeps (default 0);
``KNEE_NODE_TEST_MARKERS``
    folder where each measurement attempt leaves ``<pid>-<n>.start`` (and ``.end``).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import socket
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
from node_support import knee_landmarks, make_dx
from pydicom.dataset import Dataset

from dicom_node.errors import InputImageError
from inference.measurement import KneeMeasurement, ModelInfo

_COUNTER = itertools.count()


class HeaderTruthMeasurer:
    """Test double: real pixel decoding, landmarks of a schematic knee with the header's aTFA."""

    def __init__(self, delay_s: float | None = None, markers: Path | None = None) -> None:
        env_delay = os.environ.get("KNEE_NODE_TEST_MEASURE_S")
        env_markers = os.environ.get("KNEE_NODE_TEST_MARKERS")
        self.delay_s = float(env_delay or 0.0) if delay_s is None else float(delay_s)
        self.markers = Path(env_markers) if markers is None and env_markers else markers
        self.model_info = ModelInfo(name="header-truth-double", version="test", sha256={})

    def measure(self, ds: Dataset) -> list[KneeMeasurement]:
        from inference.pixels import read_radiograph

        mark = None
        if self.markers is not None:
            self.markers.mkdir(parents=True, exist_ok=True)
            mark = self.markers / f"{os.getpid()}-{next(_COUNTER)}"
            mark.with_suffix(".start").write_text(str(ds.SOPInstanceUID))
        pixels = read_radiograph(ds)
        comment = str(ds.get("ImageComments", ""))
        if not comment.startswith("atfa="):
            raise InputImageError("no knee found in the image (no atfa= in Image Comments)")
        rows, cols = pixels.image.shape
        time.sleep(self.delay_s)
        if mark is not None:
            mark.with_suffix(".end").write_text(str(ds.SOPInstanceUID))
        return [
            KneeMeasurement(
                landmarks=knee_landmarks(float(comment[5:]), rows, cols),
                phase="pre",
                laterality="L",
                quality="pass",
                confidence=0.99,
                pixel_spacing_mm=pixels.pixel_spacing_mm,
                model=self.model_info,
                timings_ms={"forward": 1.0},
            )
        ]


def header_truth_measurer(settings: Any) -> HeaderTruthMeasurer:
    """``model.factory`` for worker processes: ``reliability_support:header_truth_measurer``."""
    return HeaderTruthMeasurer()


def knee_case(atfa_deg: float = 4.0, rows: int = 128, cols: int = 128, **kw: Any) -> Dataset:
    """A small DX knee instance carrying its aTFA for :class:`HeaderTruthMeasurer`."""
    ds, _ = make_dx(atfa_deg, rows=rows, cols=cols, **kw)
    ds.ImageComments = f"atfa={atfa_deg:.3f}"
    return ds


def files_under(folder: Path) -> set[Path]:
    """Every file below ``folder`` (relative paths)."""
    return {p.relative_to(folder) for p in folder.rglob("*") if p.is_file()}


def expected_atfa(atfa_deg: float, rows: int = 128, cols: int = 128) -> dict[str, float]:
    """The aTFA (FTS, FNTS) the double reports for a case made with ``atfa_deg``."""
    from inference.alignment import atfa_all

    return atfa_all(np.asarray(knee_landmarks(atfa_deg, rows, cols)))


class TcpProxy:
    """A loopback TCP forwarder to ``target_port``; :meth:`stop` is the service going away
    (listener closed, every connection cut), :meth:`start` brings it back on the same port."""

    def __init__(self, target_port: int, port: int = 0) -> None:
        self.target_port = target_port
        self.port = port
        self._server: socket.socket | None = None
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()

    def start(self) -> TcpProxy:
        srv = socket.socket()
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind(("127.0.0.1", self.port))
        srv.listen(64)
        self.port = srv.getsockname()[1]
        self._server = srv
        threading.Thread(target=self._accept, args=(srv,), daemon=True).start()
        return self

    def _accept(self, srv: socket.socket) -> None:
        while True:
            try:
                client, _ = srv.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass  # the other side was cut: this direction ends too
        finally:
            for sock in (src, dst):
                with contextlib.suppress(OSError):  # already closed
                    sock.shutdown(socket.SHUT_RDWR)

    def stop(self) -> None:
        if self._server is not None:
            with contextlib.suppress(OSError):  # wakes the blocked accept() (Linux)
                self._server.shutdown(socket.SHUT_RDWR)
            self._server.close()
            self._server = None
        with self._lock:
            conns, self._conns = self._conns, []
        for sock in conns:
            with contextlib.suppress(OSError):  # already closed
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
