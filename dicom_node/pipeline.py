"""The node's two tasks as plain functions: measure an instance, deliver a result.

The in-process queue and the Celery worker call exactly these functions; only a row id
travels through the queue, never pixels.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pydicom import dcmread
from pydicom.errors import InvalidDicomError
from sqlalchemy import select

from dicom_node import kinds
from dicom_node.db.models import (
    Delivery,
    Job,
    Measurement,
    OutputObject,
    ReceivedInstance,
    ResultValueRow,
    utcnow,
)
from dicom_node.db.session import uid_hash
from dicom_node.db.states import (
    FINISHED_JOB_STATES,
    OPEN_JOB_STATES,
    UNFINISHED_DELIVERY_STATES,
    DeliveryState,
    InstanceState,
    JobState,
    transition,
)
from dicom_node.destinations import send as send_to
from dicom_node.errors import (
    ConfigError,
    DeliveryError,
    InputImageError,
    KneeNodeError,
    MeasurementFailedError,
)
from dicom_node.reports.source_attributes import (
    clean_source_attributes,
    patient_values,
    redact,
)
from dicom_node.results import make_results
from dicom_node.spool import write_durably

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from dicom_node.context import NodeContext
    from dicom_node.kinds import MeasuredItem, ResultValue, StudyKind

log = logging.getLogger(__name__)


#: What the results may reference: at most 64 characters, digits and dots (leading zeros
#: in a component, seen in the wild, are tolerated; letters, slashes and ".." are not).
_UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")


def _read_source(path: str | None) -> object:
    if path is None or not Path(path).is_file():
        raise InputImageError("the received instance is no longer in the spool")
    try:
        ds = dcmread(path)
    except (InvalidDicomError, EOFError, ValueError, OSError) as exc:
        raise InputImageError(f"cannot read the received instance: {exc}") from exc
    for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"):
        uid = str(ds.get(keyword, ""))
        if len(uid) > 64 or not _UID.match(uid):
            raise InputImageError(
                f"{keyword} is not a valid DICOM UID ({len(uid)} characters, "
                f"{uid[:70]!r}): results could not reference the source"
            )
    return ds


def _save(ctx: NodeContext, folder: Path, name: str, ds: object) -> Path:
    return write_durably(
        folder,
        name,
        lambda fh: ds.save_as(fh, enforce_file_format=True),  # type: ignore[attr-defined]
        modes=ctx.settings.storage.modes,
    )


def measure_instance(ctx: NodeContext, instance_id: int) -> int:
    """Measure the received instance ``instance_id`` as its study kind, write the kind's
    output objects (knee-ap: SR and SC), schedule their delivery.

    Idempotent: a task delivered again (its worker died) does not measure an instance
    that already has a finished job; it only queues that job's deliveries never tried.

    Returns
    -------
    int
        The job id. On failure the job row records the error, then the exception goes on.
    """
    t0 = time.perf_counter()
    with ctx.db.session() as s:
        inst = s.get(ReceivedInstance, instance_id)
        if inst is None:
            raise ValueError(f"instance_id {instance_id} is not a received instance")
        finished = _finished_job(s, instance_id)
        if finished is not None:  # a redelivered task: measured already, never twice
            job_id, undelivered = finished
            log.info("job %d: instance %d is measured already", job_id, instance_id)
            for delivery_id in undelivered:
                ctx.queue.submit_delivery(delivery_id)
            return job_id
        for stale in s.scalars(
            select(Job).where(Job.instance_id == instance_id, Job.state.in_(OPEN_JOB_STATES))
        ):  # its worker died (the task was redelivered): record it, measure again
            stale.state, stale.finished_at = transition(stale.state, JobState.FAILED), utcnow()
            stale.error = "interrupted: the worker stopped during the measurement"
        kind_name = inst.kind or kinds.DEFAULT_KIND  # rows routed before kinds: knee-ap
        job = Job(instance_id=instance_id, kind=kind_name, state=JobState.RUNNING,
                  started_at=utcnow())
        s.add(job)
        s.flush()
        job_id, spool_path = job.id, inst.spool_path
    log.info("job %d: measuring instance %d (%s)", job_id, instance_id, kind_name)
    phi: set[str] = set()
    warnings: list[str] = []
    try:
        kind = kinds.get(kind_name)
        ds = _read_source(spool_path)
        phi = patient_values(ds)  # type: ignore[arg-type]
        warnings = clean_source_attributes(ds)  # type: ignore[arg-type]
        for w in warnings:
            log.warning("job %d: %s", job_id, w)
        t_read = time.perf_counter()
        measurer = ctx.measurer(kind.name)
        measurements = list(measurer.measure(ds))  # type: ignore[arg-type]
        t_measure = time.perf_counter()
        if not measurements:
            raise InputImageError(kind.nothing_found)
        items = kind.items(measurements)
        folder = ctx.settings.storage.results.resolve() / f"job-{job_id:06d}"  # absolute paths
        outputs = [
            (w.object_kind, _save(ctx, folder, w.file_name, obj), str(obj.SOPInstanceUID))
            for w, obj in make_results(ctx.settings, ds, measurements, kind.name).objects  # type: ignore[arg-type]
        ]
        t_reports = time.perf_counter()
    except Exception as exc:  # noqa: BLE001 -- recorded, then raised again sanitised
        # the row and the log hold the sanitised message only: never a patient value,
        # nor (for errors not our own, which quote what they refuse) a quoted literal
        error = redact(
            f"{type(exc).__name__}: {exc}", phi, quoted=not isinstance(exc, KneeNodeError)
        )[:4000]
        with ctx.db.session() as s:
            job = s.get_one(Job, job_id)
            job.state, job.finished_at = transition(job.state, JobState.FAILED), utcnow()
            job.error, job.warnings = error, warnings or None
            inst = s.get_one(ReceivedInstance, instance_id)
            inst.state = transition(inst.state, InstanceState.FAILED)
        log.warning("job %d failed: %s", job_id, type(exc).__name__)
        raise MeasurementFailedError(f"job {job_id} failed: {error}") from None
    info = measurer.model_info
    flagged = any(item.quality != "pass" for item in items)
    timings = {
        f"model_{k}": float(v) for k, v in getattr(measurements[0], "timings_ms", {}).items()
    }
    timings.update(
        read_ms=1000 * (t_read - t0),
        measure_ms=1000 * (t_measure - t_read),
        reports_ms=1000 * (t_reports - t_measure),
        total_ms=1000 * (time.perf_counter() - t0),
    )
    with ctx.db.session() as s:
        job = s.get_one(Job, job_id)
        job.state = transition(job.state, JobState.FLAGGED if flagged else JobState.DONE)
        job.finished_at = utcnow()
        job.model_name, job.model_version = info.name, info.version
        job.timings_ms = timings
        job.warnings = warnings or None
        job.verdict = items[0].verdict
        job.quality = "flag" if flagged else "pass"
        _record_items(s, job_id, items)
        s.add_all(
            OutputObject(job_id=job_id, position=i, object_kind=object_kind, path=str(path),
                         sop_instance_uid=uid)
            for i, (object_kind, path, uid) in enumerate(outputs)
        )
        inst = s.get_one(ReceivedInstance, instance_id)
        inst.state = transition(inst.state, InstanceState.MEASURED)
        if not ctx.settings.storage.keep_source and inst.spool_path:
            Path(inst.spool_path).unlink(missing_ok=True)
            inst.spool_path = None
        made = {object_kind for object_kind, _, _ in outputs}
        deliveries = [
            Delivery(
                job_id=job_id,
                destination=d.name,
                ae_title=d.address[0],
                host=d.address[1],
                port=d.address[2],
            )
            for d in ctx.settings.delivery.destinations
            if made & {w.object_kind for w in kind.writers_for(d.objects)}  # else nothing for it
        ]
        s.add_all(deliveries)
        s.flush()
        delivery_ids = [d.id for d in deliveries]
    _log_result(job_id, kind, items, info.version, timings["total_ms"])
    for delivery_id in delivery_ids:
        ctx.queue.submit_delivery(delivery_id)
    return job_id


def _record_items(s: Session, job_id: int, items: list[MeasuredItem]) -> None:
    """One measurement row per item and one result value row per value of it."""
    for i, item in enumerate(items):
        row = Measurement(
            job_id=job_id,
            item_index=i,
            laterality=item.laterality,
            phase=item.phase,
            verdict=item.verdict,
            quality=item.quality,
            confidence=item.confidence,
            flag_reasons=list(item.flag_reasons),
        )
        s.add(row)
        s.flush()
        s.add_all(
            ResultValueRow(
                job_id=job_id, measurement_id=row.id, name=v.name, value=v.value, unit=v.unit,
                laterality=item.laterality, method=v.method, uncertainty=v.uncertainty,
                code_value=None if v.code is None else v.code.value,
                code_scheme=None if v.code is None else v.code.scheme,
                code_meaning=None if v.code is None else v.code.meaning,
            )
            for v in item.values
        )


def _log_result(
    job_id: int, kind: StudyKind, items: list[MeasuredItem], version: str, total_ms: float
) -> None:
    """The job's result line. A flagged job shows no value (its raw values stay in the
    database for analysis): only that it is flagged, and why."""
    if any(item.quality != "pass" for item in items):
        reasons = sorted({r for item in items for r in item.flag_reasons}) or ["quality check"]
        log.info(
            "job %d flagged: no reliable measurement (%s; model %s), %.0f ms",
            job_id, "; ".join(reasons), version, total_ms,
        )
        return
    first = items[0]
    shown = [v for label in kind.headline for v in first.values if v.label == label]
    log.info(
        "job %d done: %s (%s; model %s), %.0f ms",
        job_id,
        values_text(shown) or kind.name,
        first.verdict,
        version,
        total_ms,
    )


def values_text(values: Sequence[ResultValue]) -> str:
    """Values as the log says them: "aTFA FTS +4.2 deg, FNTS -1.0 deg" (a name repeated
    by the next value is not said again)."""
    parts, previous = [], None
    for v in values:
        label = v.label if v.name != previous or v.method is None else v.method
        if v.code is not None:
            parts.append(f"{label} {v.code.meaning}")
        else:
            parts.append(f"{label} " + ("n/a" if v.value is None else f"{v.value:+.1f} {v.unit}"))
        previous = v.name
    return ", ".join(parts)


def _finished_job(s: Session, instance_id: int) -> tuple[int, list[int]] | None:
    """The finished (done or flagged) job of an instance and its deliveries never tried."""
    job = s.scalars(
        select(Job)
        .where(Job.instance_id == instance_id, Job.state.in_(FINISHED_JOB_STATES))
        .order_by(Job.id)
        .limit(1)
    ).first()
    if job is None:
        return None
    never_tried = [
        d.id for d in job.deliveries if d.state == DeliveryState.PENDING and d.attempts == 0
    ]
    return job.id, never_tried


@dataclass(frozen=True)
class DeliveryOutcome:
    """What happened to one delivery attempt and what to do next."""

    state: DeliveryState
    retry_in_s: float | None = None
    error: str | None = None


def deliver(ctx: NodeContext, delivery_id: int) -> DeliveryOutcome:
    """Attempt delivery ``delivery_id`` once; record the outcome and say whether to retry."""
    settings = ctx.settings
    with ctx.db.session() as s:
        d = s.get(Delivery, delivery_id)
        if d is None:
            raise ValueError(f"delivery_id {delivery_id} is not a delivery")
        if d.state == DeliveryState.DELIVERED:
            return DeliveryOutcome(DeliveryState.DELIVERED)
        d.state = transition(d.state, DeliveryState.SENDING)
        d.attempts, d.updated_at = d.attempts + 1, utcnow()
        attempt, name, job_id = d.attempts, d.destination, d.job_id
        kind_name = d.job.kind or kinds.DEFAULT_KIND
        made = [(o.object_kind, Path(o.path), o.sop_instance_uid) for o in d.job.outputs if o.path]
    dest = next((x for x in settings.delivery.destinations if x.name == name), None)
    paths: list[Path] = []
    sr_uid = None
    try:
        if dest is None:
            raise DeliveryError(f"destination {name!r} is no longer configured")
        wanted = {w.object_kind for w in kinds.get(kind_name).writers_for(dest.objects)}
        chosen = [(path, uid) for object_kind, path, uid in made if object_kind in wanted]
        if not chosen:
            raise DeliveryError(
                f"job {job_id} has none of the objects {name} takes ({', '.join(sorted(wanted))})"
            )
        paths, sr_uid = [p for p, _ in chosen], chosen[0][1]
        send_to(paths, dest, settings)
    except (DeliveryError, ConfigError, OSError, InvalidDicomError) as exc:
        error = f"{type(exc).__name__}: {exc}"[:4000]
        give_up = attempt >= settings.delivery.max_attempts or dest is None
        with ctx.db.session() as s:
            d = s.get_one(Delivery, delivery_id)
            d.state = transition(
                d.state, DeliveryState.FAILED if give_up else DeliveryState.RETRYING
            )
            d.last_error, d.updated_at = error, utcnow()
        log.warning("delivery %d to %s attempt %d failed: %s", delivery_id, name, attempt, error)
        if give_up:
            log.warning(
                "delivery %d to %s: gave up after %d attempt(s); to send it again: "
                "knee-node resend --job %d",
                *(delivery_id, name, attempt, job_id),
            )
            return DeliveryOutcome(DeliveryState.FAILED, error=error)
        return DeliveryOutcome(DeliveryState.RETRYING, settings.delivery.backoff(attempt), error)
    with ctx.db.session() as s:
        d = s.get_one(Delivery, delivery_id)
        d.state = transition(d.state, DeliveryState.DELIVERED)
        d.delivered_at, d.updated_at, d.last_error = utcnow(), utcnow(), None
    ctx.db.audit(
        "results_sent",
        ae_title=dest.address[0] or None,
        peer_address=f"{dest.address[1]}:{dest.address[2]}",
        sop_instance_uid=sr_uid,
        detail=f"delivery {delivery_id}, {len(paths)} object(s)",
    )
    log.info("delivery %d to %s done (attempt %d)", delivery_id, name, attempt)
    return DeliveryOutcome(DeliveryState.DELIVERED)


def pending_work(ctx: NodeContext) -> tuple[list[int], list[int]]:
    """Work left unfinished by a stopped in-process node: instances queued but never
    measured (jobs left running are marked failed), and deliveries not finished."""
    with ctx.db.session() as s:
        for job in s.scalars(select(Job).where(Job.state.in_(OPEN_JOB_STATES))):
            job.state, job.finished_at = transition(job.state, JobState.FAILED), utcnow()
            job.error = "interrupted: the node stopped during the measurement"
        instances = s.scalars(
            select(ReceivedInstance.id).where(ReceivedInstance.state == InstanceState.QUEUED)
        ).all()
        deliveries = s.scalars(
            select(Delivery.id).where(Delivery.state.in_(UNFINISHED_DELIVERY_STATES))
        ).all()
    return list(instances), list(deliveries)


__all__ = ["DeliveryOutcome", "deliver", "measure_instance", "pending_work", "uid_hash"]
