"""The demo: a node on embedded defaults in this process, one synthetic study pushed to it
by C-STORE, the SR and SC received by a local storage SCP standing in for the PACS.

``kind`` picks the study: ``knee-ap`` (a knee radiograph, the default) or ``full-leg`` (a
bilateral standing long-leg study, 2800 x 8100 px, routed to the full-leg kind by the
:data:`FULL_LEG_RULES`; the demo then waits for its SR and SC and prints HKA, mLDFA, mMPTA
and the CPAK class of each leg next to the generator's truth).

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
#: Study kinds the demo can make a synthetic study of.
DEMO_KINDS = ("knee-ap", "full-leg")
#: Routing of the demo node: long-leg studies to full-leg first (the knee rule's body parts
#: include LOWER LIMB too), then the knee rule of the defaults.
FULL_LEG_RULES: list[dict[str, object]] = [
    {"name": "long-leg", "kind": "full-leg", "body_parts": ["LOWER LIMB", "LOWERLIMB"],
     "study_description": "lower limbs?"},
    {"name": "ap-pa-knee"},
]
#: Values of a leg the full-leg demo prints: result name -> generator truth key.
LEG_VALUES = {"HKA": "HKA_deg", "mLDFA": "mLDFA_deg", "mMPTA": "mMPTA_deg"}
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
    #: Study kind of the demo study.
    kind: str = "knee-ap"
    #: full-leg: one line per leg, its values and CPAK class next to the generator truth.
    legs: tuple[str, ...] = ()

    def summary(self) -> str:
        """Human-readable lines for the terminal (a flagged result shows no angle)."""
        if self.kind == "full-leg":
            return "\n".join([
                f"full-leg study measured ({self.quality or 'no result'}):",
                *(f"  {line}" for line in self.legs),
                f"SR written to {self.sr_path}",
                f"SC written to {self.sc_path}",
                "received by the demo PACS: " + ", ".join(str(p) for p in self.received),
            ])

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


def _deg(name: str, v: float | None) -> str:
    """An angle as the full-leg demo prints it: HKA signed (varus negative), others not."""
    if v is None:
        return "n/a"
    return f"{v:+.1f} deg" if name == "HKA" else f"{v:.1f} deg"


def _leg_line(m: Measurement, truth: dict[str, object]) -> str:
    """One leg of a full-leg result (HKA, mLDFA, mMPTA, CPAK) and the generator truth."""
    from inference.leg.geometry import cpak_roman

    side = {"L": "left", "R": "right"}.get(m.laterality, m.laterality)
    legs = truth.get("legs", [])
    want = next((lg for lg in legs if lg["side"] == m.laterality), None)  # type: ignore[attr-defined]
    told = "" if want is None else "; truth " + ", ".join(
        f"{name} {_deg(name, want['measurements'][key])}" for name, key in LEG_VALUES.items()
    ) + f", CPAK {cpak_roman(int(want['cpak_class']))}"
    if m.quality != "pass":
        why = "; ".join(m.flag_reasons or []) or "quality check failed"
        return f"{side} leg: FLAGGED, no reliable measurement ({why}){told}"
    values = ", ".join(f"{name} {_deg(name, _angle(m.value(name)))}" for name in LEG_VALUES)
    return f"{side} leg: {values}, {m.verdict}{told}"


def _headline(job: Job) -> str:
    """The measured line of the progress: the kind's headline values of its first item."""
    from dicom_node import kinds

    if job.state == JobState.FLAGGED:
        return "FLAGGED, no reliable measurement"
    labels = kinds.get(job.kind or kinds.DEFAULT_KIND).headline
    parts = []
    for label in labels:
        v = _angle(job.value(label))
        parts.append(f"{label} " + ("n/a" if v is None else f"{v:+.1f} deg"))
    return ", ".join(parts)


def _make_study(kind: str, seed: int, out: Path, say: Callable[[str], None]
                ) -> tuple[Path, dict[str, object]]:
    """Write the synthetic study of ``kind`` (fresh UIDs) under ``out/source``."""
    if kind == "full-leg":
        from training.synth_dicom.full_leg import make_full_leg_instance, write_full_leg_instance

        say(f"making a synthetic full-leg study, 2800 x 8100 px (seed {seed})")
        leg = make_full_leg_instance(seed, full_size=True, syntax="explicit")
        _fresh_uids(leg.dataset, leg.truth)
        return write_full_leg_instance(leg, out / "source")[0], leg.truth
    from training.synth_dicom import make_instance, write_instance

    say(f"making a synthetic knee (seed {seed})")
    inst = make_instance(seed, max_side=1024, syntax="explicit")
    _fresh_uids(inst.dataset, inst.truth)
    return write_instance(inst, out / "source")[0], inst.truth


def run_demo(
    out: Path,
    *,
    seed: int = 900_000_000,
    timeout_s: float = 300.0,
    measurer: Measurer | None = None,
    progress: Callable[[str], None] | None = None,
    kind: str = "knee-ap",
) -> DemoResult:
    """Run the demo in ``out`` (data, results and what the demo PACS received).

    Parameters
    ----------
    out
        Folder of the demo's node data (``var/``), source study and received results.
    seed
        Generator seed of the synthetic study (its UIDs are fresh on every run).
    timeout_s
        Longest wait for the SR, in seconds.
    measurer
        Replaces the shipped landmark model (tests only).
    progress
        Called with one line at each step (node up, study sent, measuring, SR received).
    kind
        Study kind of the synthetic study, one of :data:`DEMO_KINDS`.

    Raises
    ------
    DemoError
        As soon as the node records why no SR will come, naming that reason.
    """
    from pydicom import dcmread

    from dicom_node.node import KneeNode

    if kind not in DEMO_KINDS:
        raise DemoError(f"kind must be one of {', '.join(DEMO_KINDS)}, got {kind!r}")
    say = progress or (lambda _line: None)
    out = Path(out)
    src, truth = _make_study(kind, seed, out, say)
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
            **({"routing": {"rules": FULL_LEG_RULES}} if kind == "full-leg" else {}),
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
        return _wait_for_sr(node, sop_uid, truth, received, cond, timeout_s, say)
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
                once("measured",
                     f"measured: job {job.id}: {_headline(job)}; sending to the demo PACS")
                for d in job.deliveries:
                    if d.state == DeliveryState.FAILED:
                        raise DemoError(
                            f"sending the results to the demo PACS failed: {d.last_error}"
                        )
        with cond:
            sr = [p for p in received if p.name.startswith("SR")]
            if job is not None and job.kind == "full-leg" and not any(
                    p.name.startswith("OT") for p in received):
                sr = []  # the full-leg demo waits for the SC too
        sent = job is not None and any(d.state == DeliveryState.DELIVERED for d in job.deliveries)
        sr_path, sc_path = (None, None) if job is None else (
            job.output_path("SR"), job.output_path("SC")
        )
        written = job is not None and not job.pending_objects  # the SC follows the SR
        if sr and sent and written and job is not None and sr_path is not None:
            say(f"SR received by the demo PACS: {sr[-1]}")
            if job.kind == "full-leg":
                with cond:
                    say("SC received by the demo PACS: "
                        + next(str(p) for p in received if p.name.startswith("OT")))
                return DemoResult(
                    None, None, {}, job.verdict, Path(sr_path),
                    Path(sc_path) if sc_path else None, list(received), job.quality,
                    kind="full-leg",
                    legs=tuple(_leg_line(m, truth) for m in
                               sorted(job.measurements, key=lambda m: m.laterality != "R")))
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
