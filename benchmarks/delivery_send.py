"""Seconds for one ``dimse.send_files`` of two small objects to a pynetdicom SCP on loopback.

Usage: ``PYTHONPATH=$PWD python -m benchmarks.delivery_send [on]`` (``on`` sets
``TCP_NODELAY``, which the node no longer does, to show the Nagle/delayed-ACK cost).
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
if len(sys.argv) > 1 and sys.argv[1] == "on":
    from pynetdicom.association import Association
    _store = Association.send_c_store
    def _nodelay_store(self, *a, **k):  # noqa: E301
        import socket
        self.dul.socket.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return _store(self, *a, **k)
    Association.send_c_store = _nodelay_store
scp = AE(); scp.supported_contexts = AllStoragePresentationContexts
srv = scp.start_server(("127.0.0.1", 0), block=False, evt_handlers=[(evt.EVT_C_STORE, lambda e: 0)])
dest = d.DimseDestination(name="p", ae_title="ANY", host="127.0.0.1", port=srv.server_address[1])
paths = _write(Path(tempfile.mkdtemp()), 2)
ts = []
for _ in range(10):
    t = time.perf_counter(); d.send_files(paths, dest, calling_ae_title="KN", limits=Settings().node.limits); ts.append(time.perf_counter() - t)
srv.shutdown()
print(sys.argv[1:], "median s", round(statistics.median(ts), 3), "min", round(min(ts), 3))
