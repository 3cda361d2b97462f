"""Seconds for one ``dimse.send_files`` of two small objects to a pynetdicom SCP on loopback.

Usage: ``PYTHONPATH=$PWD python -m benchmarks.delivery_send [nagle]``. Without an argument it
times the product: ``TCP_NODELAY`` set while pynetdicom's reactor is parked
(``dimse._park_reactor``). ``nagle`` times the way before (no park, Nagle on), to show the
Nagle/delayed-ACK cost.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

from pynetdicom import AE, AllStoragePresentationContexts, evt

import dicom_node.destinations.dimse as d
from dicom_node.settings import Settings


def leave_nagle_on() -> None:
    """Make ``send_files`` behave as before the park: the reactor is never parked, so
    ``TCP_NODELAY`` stays off."""
    d._park_reactor = lambda assoc: False  # type: ignore[assignment]


def main(argv: list[str], repeats: int = 10) -> None:
    """Send two small files ``repeats`` times; print the median and minimum seconds."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from test_delivery_association import _write

    if argv and argv[0] == "nagle":
        leave_nagle_on()
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
    print(argv or ["park + TCP_NODELAY"], "median s", round(statistics.median(times), 3),
          "min", round(min(times), 3))


if __name__ == "__main__":
    main(sys.argv[1:])
