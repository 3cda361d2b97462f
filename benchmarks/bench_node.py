"""``knee-node bench-node``: throughput of the node on embedded defaults.

Synthetic studies (``training.synth_dicom``) are pushed in one association to a node
running in this process (SQLite, in-process queue) with the configured measurer
(``model.*``; the shipped model by default); a
local storage SCP stands in for the PACS. Reports the C-STORE acceptance time per
instance and the time from the first C-STORE to the last SR and SC received.
"""

from __future__ import annotations

import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from pynetdicom import AE, AllStoragePresentationContexts, evt

from dicom_node.errors import KneeNodeError
from dicom_node.peers import free_port
from dicom_node.settings import Settings


@dataclass(frozen=True)
class NodeBench:
    """Figures of one benchmark run."""

    count: int
    max_side: int
    store_ms_per_instance: float
    seconds_to_last_result: float
    jobs_done: int
    jobs_flagged: int
    jobs_failed: int

    def summary(self) -> str:
        """Lines for the terminal."""
        return (
            f"{self.count} synthetic instances (max side {self.max_side} px), embedded defaults:\n"
            f"  C-STORE accepted (spooled, fsynced, recorded): {self.store_ms_per_instance:.0f} ms"
            " per instance\n"
            f"  first C-STORE to last SR+SC at the PACS: {self.seconds_to_last_result:.1f} s"
            f" ({self.seconds_to_last_result / self.count:.2f} s per instance)\n"
            f"  jobs: {self.jobs_done} done, {self.jobs_flagged} flagged, {self.jobs_failed} failed"
        )


def bench_node(base: Settings, count: int, max_side: int, seed: int = 910_000_000) -> NodeBench:
    """Run the benchmark (see the module docstring) with ``base``'s model settings;
    data go to a temporary folder (SQLite, in-process queue), results to the local PACS."""
    from dicom_node.db import Job
    from dicom_node.node import KneeNode
    from training.synth_dicom import make_instance

    if count < 1:
        raise ValueError(f"count must be >= 1, got {count}")
    datasets = [
        make_instance(seed + i, max_side=max_side, syntax="explicit").dataset for i in range(count)
    ]
    got: list[int] = []
    cond = threading.Condition()

    def on_store(event: evt.Event) -> int:
        with cond:
            got.append(1)
            cond.notify_all()
        return 0x0000

    pacs = AE(ae_title="BENCH_PACS")
    pacs.supported_contexts = AllStoragePresentationContexts
    port = free_port()
    server = pacs.start_server(
        ("127.0.0.1", port), block=False, evt_handlers=[(evt.EVT_C_STORE, on_store)]
    )
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings.model_validate(
            {
                "model": base.model.model_dump(),
                "storage": {"data_dir": str(Path(tmp) / "var")},
                "delivery": {
                    "destinations": [
                        {
                            "name": "bench",
                            "ae_title": "BENCH_PACS",
                            "host": "127.0.0.1",
                            "port": port,
                        }
                    ]
                },
            }
        )
        node = KneeNode(settings, port=0).start()
        try:
            scu = AE(ae_title="BENCH_MODALITY")
            for sop in {str(d.SOPClassUID) for d in datasets}:
                scu.add_requested_context(sop, datasets[0].file_meta.TransferSyntaxUID)
            assoc = scu.associate("127.0.0.1", node.port, ae_title=settings.node.ae_title)
            if not assoc.is_established:
                raise KneeNodeError("the node refused the benchmark association")
            t0 = time.perf_counter()
            for ds in datasets:
                assoc.send_c_store(ds)
            t1 = time.perf_counter()
            assoc.release()
            node.wait_idle(3600)
            with node.ctx.db.session() as s:
                states = [j.state for j in s.query(Job)]
            results = 2 * sum(st in ("done", "flagged") for st in states)
            with cond:
                cond.wait_for(lambda: len(got) >= results, 600)
            t2 = time.perf_counter()
        finally:
            node.stop()
            if server is not None:
                server.shutdown()
            pacs.shutdown()
    return NodeBench(
        count,
        max_side,
        1000 * (t1 - t0) / count,
        t2 - t0,
        states.count("done"),
        states.count("flagged"),
        states.count("failed"),
    )
