"""Seconds for one ``dimse.send_files`` of two small objects to a pynetdicom SCP on loopback.

Usage: ``PYTHONPATH=$PWD python -m benchmarks.delivery_send [on]`` (``on`` sets
``TCP_NODELAY``, which the node no longer does, to show the Nagle/delayed-ACK cost).
"""

from __future__ import annotations

import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from pynetdicom import AE, AllStoragePresentationContexts, evt

import dicom_node.destinations.dimse as d
from dicom_node.settings import Settings


def set_no_delay() -> None:
    """Make every C-STORE set ``TCP_NODELAY`` on its association's socket first."""
    from pynetdicom.association import Association

    store = Association.send_c_store

    def _nodelay_store(self: Any, *a: Any, **k: Any) -> Any:
        self.dul.socket.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return store(self, *a, **k)

    Association.send_c_store = _nodelay_store  # type: ignore[method-assign]


def main(argv: list[str], repeats: int = 10) -> None:
    """Send two small files ``repeats`` times; print the median and minimum seconds."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from test_delivery_association import _write

    if argv and argv[0] == "on":
        set_no_delay()
    scp = AE()
    scp.supported_contexts = AllStoragePresentationContexts
    srv = scp.start_server(("127.0.0.1", 0), block=False,
                           evt_handlers=[(evt.EVT_C_STORE, lambda e: 0)])
    assert srv is not None  # block=False returns the server
    dest = d.DimseDestination(name="p", ae_title="ANY", host="127.0.0.1",
                              port=srv.server_address[1])
    paths = _write(Path(tempfile.mkdtemp()), 2)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        d.send_files(paths, dest, calling_ae_title="KN", limits=Settings().node.limits)
        times.append(time.perf_counter() - t)
    srv.shutdown()
    print(argv, "median s", round(statistics.median(times), 3), "min", round(min(times), 3))


if __name__ == "__main__":
    main(sys.argv[1:])
