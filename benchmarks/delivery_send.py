"""Seconds for one ``dimse.send_files`` of two small objects to a pynetdicom SCP on loopback.

Usage: ``PYTHONPATH=$PWD python -m benchmarks.delivery_send [nagle]``. Without an argument it
times the product: ``TCP_NODELAY`` set while pynetdicom's reactor is parked
(``dimse._park_reactor``). ``nagle`` times the way before (no park, Nagle on), to show the
Nagle/delayed-ACK cost.
"""
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from test_delivery_association import _write
from pynetdicom import AE, AllStoragePresentationContexts, evt
import dicom_node.destinations.dimse as d
from dicom_node.settings import Settings
if len(sys.argv) > 1 and sys.argv[1] == "nagle":
    d._park_reactor = lambda assoc: False  # the reactor is not parked: Nagle stays on
scp = AE(); scp.supported_contexts = AllStoragePresentationContexts
srv = scp.start_server(("127.0.0.1", 0), block=False, evt_handlers=[(evt.EVT_C_STORE, lambda e: 0)])
dest = d.DimseDestination(name="p", ae_title="ANY", host="127.0.0.1", port=srv.server_address[1])
paths = _write(Path(tempfile.mkdtemp()), 2)
ts = []
for _ in range(10):
    t = time.perf_counter(); d.send_files(paths, dest, calling_ae_title="KN", limits=Settings().node.limits); ts.append(time.perf_counter() - t)
srv.shutdown()
print(sys.argv[1:] or ["park + TCP_NODELAY"], "median s", round(statistics.median(ts), 3), "min", round(min(ts), 3))
