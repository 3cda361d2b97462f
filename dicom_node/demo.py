"""The demo: a node on embedded defaults in this process, one synthetic study pushed to it
by C-STORE, the SR and SC received by a local storage SCP standing in for the PACS.

Every run sends a study with fresh UIDs, so a second run in the same folder is measured
again (not recorded as a duplicate of the first). Progress is reported line by line, and
the demo stops as soon as the node records why it will not produce a result (instance
ignored, rejected or duplicate, measurement failed, delivery failed), with that reason.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from pynetdicom import AE

from dicom_node.db.states import (
    FINISHED_JOB_STATES,
    DeliveryState,
    InstanceState,
    JobState,
)
from dicom_node.errors import KneeNodeError
from dicom_node.peers import StandInPacs
from dicom_node.settings import Settings

if TYPE_CHECKING:
    from dicom_node.db import Job, Measurement, ResultValueRow
    from dicom_node.measurer import Measurer
    from dicom_node.node import KneeNode

#: Seconds between two looks at the node's database while waiting for the SR.
POLL_S = 0.25
#: Instance states after which no result will come.
_DEAD_END_STATES = (
    InstanceState.IGNORED,
    InstanceState.REJECTED,
    InstanceState.DUPLICATE,
    InstanceState.FAILED,
)


class DemoError(KneeNodeError):
    """The demo could not complete (no SR arrived in time, the push was refused...)."""


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
    quality: str | None = "pass"
    #: One line per knee in the image (an image may show both knees).
    knees: tuple[str, ...] = ()

    def summary(self) -> str:
        """Human-readable lines for the terminal (a flagged result shows no angle)."""

        def fmt(v: float | None) -> str:
            return "n/a" if v is None else f"{v:+.1f} deg"

        truth = (
            f"generator truth FTS {self.truth_atfa_deg.get('FTS', 0):+.1f},"
            f" FNTS {self.truth_atfa_deg.get('FNTS', 0):+.1f}"
        )
        if self.quality == "flag":
            first = f"FLAGGED: no reliable measurement ({self.verdict}); {truth}"
        else:
            first = (
                f"aTFA by FTS {fmt(self.atfa_fts_deg)}, by FNTS {fmt(self.atfa_fnts_deg)}"
                f" ({self.verdict}); {truth}"
            )
        lines = [
            first,
            *(f"  {k}" for k in self.knees if len(self.knees) > 1),
            f"SR written to {self.sr_path}",
            f"SC written to {self.sc_path}",
            "received by the demo PACS: " + ", ".join(str(p) for p in self.received),
        ]
        return "\n".join(lines)


def _fresh_uids(ds: Dataset, truth: dict[str, object]) -> None:
    """New Study, Series and SOP Instance UIDs (this run's study is not a duplicate)."""
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    truth["sop_instance_uid"] = str(ds.SOPInstanceUID)
    truth["study_instance_uid"] = str(ds.StudyInstanceUID)


def _state(node: KneeNode, sop_uid: str) -> tuple[str, str | None, Job | None]:
    """(instance state, reason, newest job) of the demo instance; ``("not recorded", ...)``."""
    from sqlalchemy import select

    from dicom_node.db import ReceivedInstance

    with node.ctx.db.session() as s:
        inst = s.scalars(
            select(ReceivedInstance)
            .where(ReceivedInstance.sop_instance_uid == sop_uid)
            .order_by(ReceivedInstance.id.desc())
            .limit(1)
        ).first()
        if inst is None:
            return "not recorded", None, None
        job = max(inst.jobs, key=lambda j: j.id) if inst.jobs else None
        if job is not None:
            job.deliveries  # noqa: B018 -- load before the session closes
            for m in job.measurements:
                m.values  # noqa: B018
            job.values  # noqa: B018
            job.outputs  # noqa: B018
        return inst.state, inst.reason, job


def _knee_line(k: Measurement) -> str:
    """One knee of the result; a flagged one without any angle."""
    side = {"L": "left", "R": "right"}.get(k.laterality, k.laterality)
    fts, fnts = _angle(k.value("aTFA FTS")), _angle(k.value("aTFA FNTS"))
    if k.quality != "pass" or fts is None or fnts is None:
        why = "; ".join(k.flag_reasons or []) or "quality check failed"
        return f"{side} knee: FLAGGED, no reliable measurement ({why})"
    return f"{side} knee: aTFA by FTS {fts:+.1f} deg, by FNTS {fnts:+.1f} deg ({k.verdict})"


def _angle(row: ResultValueRow | None) -> float | None:
    """The value of a result row (None if there is no row or no value)."""
    return None if row is None else row.value


def run_demo(
    out: Path,
    *,
    seed: int = 900_000_000,
    timeout_s: float = 300.0,
    measurer: Measurer | None = None,
    progress: Callable[[str], None] | None = None,
) -> DemoResult:
    """Run the demo in ``out`` (data, results and what the demo PACS received).

    Parameters
    ----------
    out
        Folder of the demo's node data (``var/``), source study and received results.
    seed
        Generator seed of the synthetic knee (its UIDs are fresh on every run).
    timeout_s
        Longest wait for the SR, in seconds.
    measurer
        Replaces the shipped landmark model (tests only).
    progress
        Called with one line at each step (node up, study sent, measuring, SR received).

    Raises
    ------
    DemoError
        As soon as the node records why no SR will come, naming that reason.
    """
    from pydicom import dcmread

    from dicom_node.node import KneeNode
    from training.synth_dicom import make_instance, write_instance

    say = progress or (lambda _line: None)
    out = Path(out)
    say(f"making a synthetic knee (seed {seed})")
    inst = make_instance(seed, max_side=1024, syntax="explicit")
    _fresh_uids(inst.dataset, inst.truth)
    src, _ = write_instance(inst, out / "source")
    ds = dcmread(src)
    sop_uid = str(ds.SOPInstanceUID)

    pacs = StandInPacs("DEMO_PACS", folder=out / "pacs").start()  # writes what it receives
    pacs_port, received, cond = pacs.port, pacs.paths, pacs.event
    settings = Settings.model_validate(
        {
            "storage": {"data_dir": str(out / "var")},
            "delivery": {
                "max_attempts": 1,  # the demo PACS is local: a failed send is the answer
                "destinations": [
                    {
                        "name": "demo-pacs",
                        "ae_title": "DEMO_PACS",
                        "host": "127.0.0.1",
                        "port": pacs_port,
                    }
                ],
            },
        }
    )
    node: KneeNode | None = None
    try:
        node = KneeNode(settings, measurer=measurer, port=0).start()
        say(
            f"node up: {settings.node.ae_title} on 127.0.0.1:{node.port}, data in "
            f"{settings.storage.data_dir.resolve()}; demo PACS DEMO_PACS on 127.0.0.1:{pacs_port}"
        )
        scu = AE(ae_title="DEMO_MODALITY")
        scu.add_requested_context(ds.SOPClassUID, ds.file_meta.TransferSyntaxUID)
        assoc = scu.associate("127.0.0.1", node.port, ae_title=settings.node.ae_title)
        if not assoc.is_established:
            raise DemoError("the node refused the demo association")
        status = assoc.send_c_store(ds)
        assoc.release()
        if getattr(status, "Status", None) != 0x0000:
            raise DemoError(f"the node answered C-STORE status {status}")
        say(f"study sent: C-STORE of {src.name} answered success")
        return _wait_for_sr(node, sop_uid, inst.truth, received, cond, timeout_s, say)
    finally:
        if node is not None:
            node.stop()
        pacs.stop()


def _wait_for_sr(
    node: KneeNode,
    sop_uid: str,
    truth: dict[str, object],
    received: list[Path],
    cond: threading.Condition,
    timeout_s: float,
    say: Callable[[str], None],
) -> DemoResult:
    """Watch the demo instance until its SR reached the demo PACS; fail on a dead end."""
    deadline = time.monotonic() + timeout_s
    told: set[str] = set()
    state: str = "not recorded"
    reason: str | None = None
    job: Job | None = None

    def once(key: str, line: str) -> None:
        if key not in told:
            told.add(key)
            say(line)

    while True:
        state, reason, job = _state(node, sop_uid)
        if state in _DEAD_END_STATES and (job is None or job.state == JobState.FAILED):
            why = job.error if job is not None and job.error else reason
            raise DemoError(f"the node did not measure the study: instance {state}: {why}")
        if job is not None:
            once("measuring", f"measuring: job {job.id} (the model loads on first use)")
            if job.state == JobState.FAILED:
                raise DemoError(f"the measurement failed: {job.error}")
            if job.state in FINISHED_JOB_STATES:
                what = (
                    "FLAGGED, no reliable measurement"
                    if job.state == JobState.FLAGGED
                    else f"aTFA FTS {_angle(job.value('aTFA FTS')):+.1f} deg, "
                    f"FNTS {_angle(job.value('aTFA FNTS')):+.1f} deg"
                )
                once("measured", f"measured: job {job.id}: {what}; sending to the demo PACS")
                for d in job.deliveries:
                    if d.state == DeliveryState.FAILED:
                        raise DemoError(
                            f"sending the results to the demo PACS failed: {d.last_error}"
                        )
        with cond:
            sr = [p for p in received if p.name.startswith("SR")]
        sent = job is not None and any(d.state == DeliveryState.DELIVERED for d in job.deliveries)
        sr_path, sc_path = (None, None) if job is None else (
            job.output_path("SR"), job.output_path("SC")
        )
        if sr and sent and job is not None and sr_path is not None:
            say(f"SR received by the demo PACS: {sr[-1]}")
            return DemoResult(
                _angle(job.value("aTFA FTS")),
                _angle(job.value("aTFA FNTS")),
                dict(truth["atfa_deg"]),  # type: ignore[call-overload]
                job.verdict,
                Path(sr_path),
                Path(sc_path) if sc_path else None,
                list(received),
                job.quality,
                tuple(_knee_line(k) for k in job.measurements),
            )
        if time.monotonic() >= deadline:
            now = f"instance {state}" + (f", job {job.id} {job.state}" if job else "")
            raise DemoError(f"no SR reached the demo PACS within {timeout_s:.0f} s ({now})")
        with cond:
            cond.wait(POLL_S)
