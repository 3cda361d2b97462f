"""The demo: a node on embedded defaults in this process, one synthetic study pushed to it
by C-STORE, the SR and SC received by a local storage SCP standing in for the PACS.
"""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pydicom.dataset import Dataset
from pynetdicom import AE, AllStoragePresentationContexts, evt

from dicom_node.errors import KneeNodeError
from dicom_node.settings import Settings

if TYPE_CHECKING:
    from dicom_node.measurer import Measurer


class DemoError(KneeNodeError):
    """The demo could not complete (no SR arrived in time, the push was refused...)."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on ``host`` right now."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class DemoResult:
    """What the demo produced."""

    atfa_fts_deg: float | None
    atfa_fnts_deg: float | None
    truth_atfa_deg: dict[str, float]
    verdict: str | None
    sr_path: Path
    sc_path: Path | None
    received: list[Path]

    def summary(self) -> str:
        """Human-readable lines for the terminal."""

        def fmt(v: float | None) -> str:
            return "n/a" if v is None else f"{v:+.1f} deg"

        lines = [
            f"aTFA by FTS {fmt(self.atfa_fts_deg)}, by FNTS {fmt(self.atfa_fnts_deg)}"
            f" ({self.verdict}); generator truth FTS {self.truth_atfa_deg.get('FTS', 0):+.1f},"
            f" FNTS {self.truth_atfa_deg.get('FNTS', 0):+.1f}",
            f"SR written to {self.sr_path}",
            f"SC written to {self.sc_path}",
            "received by the demo PACS: " + ", ".join(str(p) for p in self.received),
        ]
        return "\n".join(lines)


def run_demo(
    out: Path,
    *,
    seed: int = 900_000_000,
    timeout_s: float = 300.0,
    measurer: Measurer | None = None,
) -> DemoResult:
    """Run the demo in ``out`` (data, results and what the demo PACS received).

    ``measurer`` replaces the shipped landmark model (tests only).
    """
    from pydicom import dcmread

    from dicom_node.db import Job
    from dicom_node.node import KneeNode
    from training.synth_dicom import make_instance, write_instance

    out = Path(out)
    inst = make_instance(seed, max_side=1024, syntax="explicit")
    src, _ = write_instance(inst, out / "source")
    ds = dcmread(src)

    received: list[Path] = []
    cond = threading.Condition()
    pacs_dir = out / "pacs"
    pacs_dir.mkdir(parents=True, exist_ok=True)

    def on_store(event: evt.Event) -> int:
        rx: Dataset = event.dataset
        rx.file_meta = event.file_meta
        path = pacs_dir / f"{rx.Modality}_{len(received) + 1}.dcm"
        rx.save_as(path, enforce_file_format=True)
        with cond:
            received.append(path)
            cond.notify_all()
        return 0x0000

    pacs = AE(ae_title="DEMO_PACS")
    pacs.supported_contexts = AllStoragePresentationContexts
    pacs_port = free_port()
    server = pacs.start_server(
        ("127.0.0.1", pacs_port), block=False, evt_handlers=[(evt.EVT_C_STORE, on_store)]
    )
    settings = Settings.model_validate(
        {
            "storage": {"data_dir": str(out / "var")},
            "delivery": {
                "destinations": [
                    {
                        "name": "demo-pacs",
                        "ae_title": "DEMO_PACS",
                        "host": "127.0.0.1",
                        "port": pacs_port,
                    }
                ]
            },
        }
    )
    node = KneeNode(settings, measurer=measurer, port=0).start()
    try:
        scu = AE(ae_title="DEMO_MODALITY")
        scu.add_requested_context(ds.SOPClassUID, ds.file_meta.TransferSyntaxUID)
        assoc = scu.associate("127.0.0.1", node.port, ae_title=settings.node.ae_title)
        if not assoc.is_established:
            raise DemoError("the node refused the demo association")
        status = assoc.send_c_store(ds)
        assoc.release()
        if getattr(status, "Status", None) != 0x0000:
            raise DemoError(f"the node answered C-STORE status {status}")
        deadline = time.monotonic() + timeout_s
        with cond:
            cond.wait_for(
                lambda: any(p.name.startswith("SR") for p in received),
                max(0.0, deadline - time.monotonic()),
            )
        node.wait_idle(max(1.0, deadline - time.monotonic()))
        with node.ctx.db.session() as s:
            job = s.query(Job).order_by(Job.id.desc()).first()
            if job is None:
                raise DemoError("no job was recorded")
            if job.state == "failed" or job.sr_path is None:
                raise DemoError(f"the measurement failed: {job.error}")
            result = DemoResult(
                job.atfa_fts_deg,
                job.atfa_fnts_deg,
                dict(inst.truth["atfa_deg"]),
                job.verdict,
                Path(job.sr_path),
                Path(job.sc_path) if job.sc_path else None,
                list(received),
            )
        if not any(p.name.startswith("SR") for p in received):
            raise DemoError(f"no SR reached the demo PACS within {timeout_s:.0f} s")
        return result
    finally:
        node.stop()
        if server is not None:
            server.shutdown()
        pacs.shutdown()
