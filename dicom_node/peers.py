"""Loopback helpers and the one stand-in PACS, shared by the demo, the benchmarks and the tests.

:func:`free_port` and :func:`wait_port` find and wait for loopback ports;
:class:`StandInPacs` is a pynetdicom storage SCP that accepts every storage SOP class and
records what it receives (datasets, arrival times per study and modality, and, given a
folder, the files).
"""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydicom.dataset import Dataset

from dicom_node.errors import KneeNodeError


class PortError(KneeNodeError):
    """Nothing listened on a port in time, or the process that should have exited."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on ``host`` right now."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def wait_port(
    port: int, timeout_s: float = 10.0, proc: subprocess.Popen[Any] | None = None
) -> None:
    """Wait until something listens on loopback ``port``.

    Parameters
    ----------
    port
        The TCP port, 1-65535.
    timeout_s
        Seconds to wait at most.
    proc
        The process that should listen there: PortError at once if it exits first.
    """
    if not 1 <= int(port) <= 65535:
        raise ValueError(f"port must be 1-65535, got {port!r}")
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise PortError(f"process exited with {proc.returncode} before listening")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise PortError(f"nothing listens on port {port} after {timeout_s:.0f} s")


#: What the stand-in accepts by default: the uncompressed syntaxes and the lossless and
#: baseline compressed ones a PACS such as Orthanc or dcm4chee accepts out of the box.
PACS_TRANSFER_SYNTAXES: tuple[str, ...] = (
    "1.2.840.10008.1.2.1",     # Explicit VR Little Endian
    "1.2.840.10008.1.2",       # Implicit VR Little Endian
    "1.2.840.10008.1.2.4.80",  # JPEG-LS Lossless
    "1.2.840.10008.1.2.4.90",  # JPEG 2000 Lossless
    "1.2.840.10008.1.2.4.70",  # JPEG Lossless SV1
    "1.2.840.10008.1.2.4.50",  # JPEG Baseline
    "1.2.840.10008.1.2.5",     # RLE Lossless
)
#: A peer that takes uncompressed objects only (the node must decompress for it).
UNCOMPRESSED_ONLY: tuple[str, ...] = PACS_TRANSFER_SYNTAXES[:2]


class StandInPacs:
    """A storage SCP on loopback standing in for the PACS.

    Parameters
    ----------
    ae_title
        Its AE title.
    port
        Its port (default: a free one).
    folder
        If given, each object received is written there as ``<Modality>_<SOP UID>.dcm``.
    transfer_syntaxes
        The transfer syntaxes it accepts for every storage SOP class (default
        :data:`UNCOMPRESSED_ONLY`, the strictest peer; :data:`PACS_TRANSFER_SYNTAXES` for one
        that takes compressed objects as Orthanc and dcm4chee do out of the box).
    """

    def __init__(
        self,
        ae_title: str = "TEST_PACS",
        port: int | None = None,
        folder: Path | None = None,
        transfer_syntaxes: Sequence[str] | None = None,
    ) -> None:
        from pynetdicom import AE, AllStoragePresentationContexts
        from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

        if not ae_title or len(ae_title) > 16:
            raise ValueError(f"ae_title must be 1-16 characters, got {ae_title!r}")
        syntaxes = list(UNCOMPRESSED_ONLY if transfer_syntaxes is None else transfer_syntaxes)
        if not syntaxes:
            raise ValueError("transfer_syntaxes must name at least one syntax, got []")
        self.ae_title = ae_title
        self.ae = AE(ae_title=ae_title)
        for cx in AllStoragePresentationContexts:
            self.ae.add_supported_context(cx.abstract_syntax, syntaxes)
        self.ae.add_supported_context(Verification)
        self.port = free_port() if port is None else int(port)
        self.folder = None if folder is None else Path(folder)
        self.received: list[Dataset] = []
        self.paths: list[Path] = []
        #: Study Instance UID -> Modality -> arrival time (``time.time()``)
        self.arrivals: dict[str, dict[str, float]] = {}
        self.event = threading.Condition()
        self.server: Any = None

    def _on_store(self, event: Any) -> int:
        now = time.time()
        ds = event.dataset
        ds.file_meta = event.file_meta
        path = None
        if self.folder is not None:
            self.folder.mkdir(parents=True, exist_ok=True)
            path = self.folder / f"{ds.Modality}_{ds.SOPInstanceUID}.dcm"
            ds.save_as(path, enforce_file_format=True)
        with self.event:
            self.received.append(ds)
            if path is not None:
                self.paths.append(path)
            self.arrivals.setdefault(str(ds.StudyInstanceUID), {})[str(ds.Modality)] = now
            self.event.notify_all()
        return 0x0000

    def start(self) -> StandInPacs:
        """Listen on loopback (returns itself)."""
        from pynetdicom import evt

        self.server = self.ae.start_server(
            ("127.0.0.1", self.port), block=False,
            evt_handlers=[(evt.EVT_C_STORE, self._on_store)],
        )
        return self

    def wait_for(self, count: int, timeout: float) -> list[Dataset]:
        """The datasets received, once there are ``count`` of them or ``timeout`` passed."""
        with self.event:
            self.event.wait_for(lambda: len(self.received) >= count, timeout)
            return list(self.received)

    def wait_sr(self, study_uids: list[str], timeout_s: float) -> bool:
        """Wait until an SR of every study arrived; False on timeout."""
        return self.wait_arrivals(study_uids, ("SR",), timeout_s)

    def wait_arrivals(self, study_uids: list[str], modalities: Sequence[str],
                      timeout_s: float) -> bool:
        """Wait until an object of each of ``modalities`` ("SR", "OT", "PR") arrived for
        every study; False on timeout."""
        with self.event:
            return self.event.wait_for(
                lambda: all(set(modalities) <= set(self.arrivals.get(u, {}))
                            for u in study_uids), timeout_s
            )

    def destination(self, name: str = "pacs") -> dict[str, Any]:
        """A ``delivery.destinations`` entry pointing here."""
        return {"name": name, "ae_title": self.ae_title, "host": "127.0.0.1", "port": self.port}

    def stop(self) -> None:
        """Stop listening."""
        if self.server is not None:
            self.server.shutdown()
            self.server = None
        self.ae.shutdown()


__all__ = ["PortError", "StandInPacs", "free_port", "wait_port"]
