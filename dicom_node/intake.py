"""Intake: a spooled instance becomes a ``received_instances`` row, and a queued task.

After :func:`dicom_node.spool.store_received` has written the file durably, the C-STORE
handler calls :func:`take_in`, which

1. reads the header (never the pixels) and refuses what cannot be read or decodes to more
   than ``node.limits.max_decoded_bytes``;
2. routes it (:func:`dicom_node.routing.route`): a study kind, or ignored with a reason;
3. records it, deduplicated by SOP Instance UID (an instance already queued or measured
   is recorded as ``duplicate``; the first result stands), with its audit row in the
   same transaction;
4. queues the measuring task of a ``queued`` instance.

Its :class:`IntakeResult` tells the handler what to answer. Nothing here knows DIMSE
status codes: the listener turns :class:`Answer` into one.
"""

from __future__ import annotations

import enum
import logging
import struct
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydicom import Dataset, dcmread
from pydicom.errors import BytesLengthException, InvalidDicomError
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from dicom_node.db.models import ReceivedInstance
from dicom_node.db.session import audit_event, uid_hash
from dicom_node.db.states import (
    FINISHED_JOB_STATES,
    DeliveryState,
    InstanceState,
    transition,
)
from dicom_node.routing import route

if TYPE_CHECKING:
    from dicom_node.context import NodeContext

log = logging.getLogger(__name__)

#: What reading a damaged dataset may raise (pydicom parses lazily, so also on access).
UNREADABLE = (
    InvalidDicomError,
    BytesLengthException,  # an element whose length does not fit its VR (a US of 1 byte)
    ValueError,
    KeyError,
    AttributeError,
    TypeError,
    EOFError,
    OSError,
    struct.error,
    NotImplementedError,
)

# one check-and-insert at a time, so two associations sending the same SOP Instance UID at
# once cannot both queue it (one node per process; a second node only waits a little)
_RECORD_LOCK = threading.Lock()


class Answer(enum.Enum):
    """What the sender is told: stored, or which failure."""

    STORED = "stored"
    CANNOT_UNDERSTAND = "cannot understand"
    OUT_OF_RESOURCES = "out of resources"


@dataclass(frozen=True)
class Arrival:
    """Who sent which instance (from the association and the C-STORE request)."""

    calling_ae_title: str
    peer_address: str
    sop_class_uid: str
    sop_instance_uid: str
    transfer_syntax_uid: str

    @property
    def tag(self) -> str:
        """The short hash the logs name the instance by (never the UID itself)."""
        return uid_hash(self.sop_instance_uid)[:12]


@dataclass(frozen=True)
class IntakeResult:
    """The outcome of :func:`take_in`.

    Parameters
    ----------
    answer
        What to answer the sender.
    comment
        Error Comment for a refusal (no PHI), or None.
    instance_id
        The ``received_instances`` row, when one was recorded.
    state
        Its state (queued, ignored, duplicate, rejected, failed), when recorded.
    """

    answer: Answer
    comment: str | None = None
    instance_id: int | None = None
    state: str | None = None


def decoded_size(header: Dataset) -> int:
    """Bytes the pixel data decodes to: Rows x Columns x frames x samples x bytes each."""
    rows, cols = int(header.get("Rows") or 0), int(header.get("Columns") or 0)
    frames = int(header.get("NumberOfFrames") or 1)
    samples = int(header.get("SamplesPerPixel") or 1)
    bits = int(header.get("BitsAllocated") or 16)
    return rows * cols * max(frames, 1) * max(samples, 1) * max((bits + 7) // 8, 1)


def take_in(ctx: NodeContext, arrival: Arrival, path: Path) -> IntakeResult:
    """Route, record (deduplicated) and queue the instance spooled at ``path``.

    Parameters
    ----------
    ctx
        The node's context (settings, database, queue).
    arrival
        Who sent it, and its UIDs from the request.
    path
        Its spool file (written durably by ``store_received``); deleted unless queued.

    Returns
    -------
    IntakeResult
        ``STORED`` once the row is committed (and, if queued, the task submitted);
        otherwise the failure to answer. Never raises for a bad dataset or a database or
        broker failure.
    """
    if not isinstance(arrival, Arrival):
        raise TypeError(f"arrival must be an Arrival, got {type(arrival).__name__}")
    tag, calling = arrival.tag, arrival.calling_ae_title
    limits = ctx.settings.node.limits
    row: dict[str, Any] = {
        "calling_ae_title": calling[:16],
        "peer_address": arrival.peer_address,
        "sop_class_uid": arrival.sop_class_uid,
        "sop_instance_uid": arrival.sop_instance_uid[:64],
        "transfer_syntax_uid": arrival.transfer_syntax_uid,
        "spool_path": str(path.resolve()),  # absolute: a worker may run from elsewhere
        "size_bytes": path.stat().st_size,
    }
    answer = Answer.STORED
    missing_job: tuple[int, list[str]] | None = None
    try:
        header = dcmread(path, stop_before_pixels=True)
        row.update(
            study_instance_uid=str(header.StudyInstanceUID)[:64],
            series_instance_uid=str(header.SeriesInstanceUID)[:64],
            modality=str(header.get("Modality", ""))[:16] or None,
            body_part=str(header.get("BodyPartExamined", ""))[:64] or None,
            view_position=str(header.get("ViewPosition", ""))[:16] or None,
        )
        if str(header.SOPInstanceUID) != arrival.sop_instance_uid:
            raise ValueError("SOP Instance UID in the dataset differs from the request")
        size = decoded_size(header)
        if size > limits.max_decoded_bytes:
            reason = (
                f"decoded size {size} bytes (Rows x Columns x frames x samples x bytes) "
                f"exceeds node.limits.max_decoded_bytes {limits.max_decoded_bytes}"
            )
            log.warning("instance %s from %s: refused: %s", tag, calling, reason)
            Path(path).unlink(missing_ok=True)
            record_refusal(ctx, arrival, reason)
            return IntakeResult(Answer.OUT_OF_RESOURCES,
                                "decoded image size exceeds the node's limit")
        decision = route(header, ctx.settings.routing)
    except UNREADABLE as exc:  # an unreadable dataset: recorded, then refused
        log.warning("instance %s from %s: cannot be read (%s)", tag, calling, type(exc).__name__)
        row.update(
            state=InstanceState.REJECTED,
            reason=f"cannot understand: {type(exc).__name__}: {exc}"[:2000],
        )
        answer = Answer.CANNOT_UNDERSTAND
    else:
        row.update(
            state=InstanceState.QUEUED if decision.measure else InstanceState.IGNORED,
            reason=None if decision.measure else decision.reason[:2000],
            routing_rule=decision.rule,
            kind=decision.kind,
        )
    try:
        instance_id, missing_job = _record(ctx, arrival, path, row)
    except SQLAlchemyError as exc:
        log.error("instance %s: cannot record in the database: %s", tag, type(exc).__name__)
        Path(path).unlink(missing_ok=True)
        return IntakeResult(Answer.OUT_OF_RESOURCES)
    state = row["state"]
    if state == InstanceState.QUEUED:
        try:
            ctx.queue.submit_measurement(instance_id)
        except Exception:  # broker down: the sender must retry, so say failure
            log.exception("instance %s: cannot queue", tag)
            with ctx.db.session() as s:
                inst = s.get_one(ReceivedInstance, instance_id)
                inst.state = transition(inst.state, InstanceState.FAILED)
                inst.reason, inst.spool_path = "queue unavailable", None
            Path(path).unlink(missing_ok=True)
            return IntakeResult(Answer.OUT_OF_RESOURCES, None, instance_id, InstanceState.FAILED)
    _log_recorded(arrival, state, instance_id, row.get("reason"), missing_job)
    return IntakeResult(answer, None, instance_id, state)


def _record(
    ctx: NodeContext, arrival: Arrival, path: Path, row: dict[str, Any]
) -> tuple[int, tuple[int, list[str]] | None]:
    """Insert the row (a ``duplicate`` if its UID is already queued or measured) and its
    audit event in one transaction; delete the spool file of a row not queued. Updates
    ``row`` in place; returns the row id and, for a duplicate, its first job's missing
    destinations."""
    missing_job = None
    with _RECORD_LOCK, ctx.db.session() as s:
        if row["state"] == InstanceState.QUEUED:
            first = s.scalars(
                select(ReceivedInstance)
                .where(
                    ReceivedInstance.sop_instance_uid == row["sop_instance_uid"],
                    ReceivedInstance.state.in_((InstanceState.QUEUED, InstanceState.MEASURED)),
                )
                .order_by(ReceivedInstance.id)
                .limit(1)
            ).first()
            if first is not None:  # sent again: stored already, the first result stands
                row.update(
                    state=InstanceState.DUPLICATE,
                    reason=f"same SOP Instance UID as instance {first.id} "
                    f"({first.state}); the first result stands",
                )
                missing_job = undelivered_job(ctx, first)
        if row["state"] != InstanceState.QUEUED:
            Path(path).unlink(missing_ok=True)
            row["spool_path"] = None
        inst = ReceivedInstance(**row)
        s.add(inst)
        s.flush()
        instance_id = inst.id
        s.add(audit_event(  # same transaction: one commit per instance
            "instance_received",
            ae_title=arrival.calling_ae_title[:16],
            peer_address=arrival.peer_address,
            sop_class_uid=arrival.sop_class_uid,
            sop_instance_uid=arrival.sop_instance_uid,
            detail=f"{row['state']}; instance {instance_id}",
        ))
    return instance_id, missing_job


def _log_recorded(
    arrival: Arrival,
    state: str,
    instance_id: int,
    reason: str | None,
    missing_job: tuple[int, list[str]] | None,
) -> None:
    """The instance's log line; the reason names rules, never PHI."""
    tag, calling = arrival.tag, arrival.calling_ae_title
    if state in (InstanceState.IGNORED, InstanceState.DUPLICATE):
        log.info("instance %s from %s: %s (row %d): %s", tag, calling, state, instance_id, reason)
    else:
        log.info("instance %s from %s: %s (row %d)", tag, calling, state, instance_id)
    if state == InstanceState.DUPLICATE and missing_job is not None:
        job_id, names = missing_job
        log.warning(
            "instance %s: sent again, but job %d's result never reached %s; to send it "
            "there: knee-node resend --job %d",
            *(tag, job_id, ", ".join(names), job_id),
        )


def undelivered_job(ctx: NodeContext, first: ReceivedInstance) -> tuple[int, list[str]] | None:
    """The first instance's finished job and the configured destinations it never
    reached (e.g. added since), or None."""
    jobs = [j for j in first.jobs if j.state in FINISHED_JOB_STATES]
    if not jobs:
        return None
    job = jobs[0]
    reached = {d.destination for d in job.deliveries if d.state == DeliveryState.DELIVERED}
    missing = [d.name for d in ctx.settings.delivery.destinations if d.name not in reached]
    return (job.id, missing) if missing else None


def record_refusal(ctx: NodeContext, arrival: Arrival, reason: str) -> None:
    """Record an instance refused before it was stored (nothing kept in the spool)."""
    try:
        with ctx.db.session() as s:
            inst = ReceivedInstance(
                calling_ae_title=arrival.calling_ae_title[:16],
                peer_address=arrival.peer_address,
                sop_class_uid=arrival.sop_class_uid,
                sop_instance_uid=arrival.sop_instance_uid[:64],
                transfer_syntax_uid=arrival.transfer_syntax_uid,
                spool_path=None,
                size_bytes=0,
                state=InstanceState.REJECTED,
                reason=f"refused: {reason}"[:2000],
            )
            s.add(inst)
            s.flush()
            s.add(audit_event(
                "instance_received",
                ae_title=arrival.calling_ae_title[:16],
                peer_address=arrival.peer_address,
                sop_class_uid=arrival.sop_class_uid,
                sop_instance_uid=arrival.sop_instance_uid,
                detail=f"rejected; instance {inst.id}",
            ))
    except SQLAlchemyError as exc:
        log.error("cannot record a refused instance: %s", type(exc).__name__)


__all__ = [
    "UNREADABLE",
    "Answer",
    "Arrival",
    "IntakeResult",
    "decoded_size",
    "record_refusal",
    "take_in",
    "undelivered_job",
]
