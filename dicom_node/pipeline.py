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
from dicom_node.results import make_results, planned_writers
from dicom_node.spool import write_durably

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from dicom_node.context import NodeContext
    from dicom_node.kinds import MeasuredItem, ResultValue, StudyKind
    from dicom_node.settings import Settings

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


def _save(settings: Settings, folder: Path, name: str, ds: object) -> Path:
    return write_durably(
        folder,
        name,
        lambda fh: ds.save_as(fh, enforce_file_format=True),  # type: ignore[attr-defined]
        modes=settings.storage.modes,
    )


def measure_instance(ctx: NodeContext, instance_id: int) -> int:
    """Measure the received instance ``instance_id`` as its study kind, write the kind's
    output objects (knee-ap: SR, SC, GSPS when a destination takes it), schedule their
    delivery.

    In two stages: the objects sent first (:attr:`OutputWriter.sent_first`, the SR) are
    written, recorded with the job and queued for delivery at once; then the others are
    made (:func:`make_pending_objects`), by the queue's reports lane when it has one (the
    in-process queue: beside the next measurement) or else here. Until they are written
    the job row names them in ``pending_objects`` and the source stays in the spool.

    Idempotent: a task delivered again (its worker died) does not measure an instance
    that already has a finished job; it only queues that job's deliveries never tried,
    and makes the objects it still lacks from a second measurement of the source.

    Returns
    -------
    int
        The job id. On failure the job row records the error, then the exception goes on.
    """
    t0 = time.perf_counter()
    opened = _open_job(ctx, instance_id)
    if isinstance(opened, int):
        return opened
    job_id, spool_path, kind_name = opened
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
        planned = planned_writers(ctx.settings, kind.name)
        first = [w.object_kind for w in planned if w.sent_first] or [
            w.object_kind for w in planned
        ]
        pending = [w.object_kind for w in planned if w.object_kind not in first]
        outputs = _write_objects(ctx.settings, job_id, ds, measurements, kind.name, first)
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
        job.pending_objects = pending or None
        _record_items(s, job_id, items)
        inst = s.get_one(ReceivedInstance, instance_id)
        inst.state = transition(inst.state, InstanceState.MEASURED)
        delivery_ids = _record_outputs(ctx, s, job_id, kind, outputs)
        if not pending:
            _release_source(ctx, inst)
    _log_result(job_id, kind, items, info.version, timings["total_ms"])
    for delivery_id in delivery_ids:
        ctx.queue.submit_delivery(delivery_id)
    if pending:
        def rest() -> None:
            make_pending_objects(ctx, job_id, ds, measurements, phi)

        submit_reports = getattr(ctx.queue, "submit_reports", None)
        if submit_reports is None:  # no reports lane (a Celery worker): made here
            rest()
        else:
            submit_reports(job_id, rest)
    return job_id


_Opened = tuple[int, "str | None", str]


def _open_job(ctx: NodeContext, instance_id: int) -> _Opened | int:
    """A new running job for the instance: (job id, spool path, kind name); or, for an
    instance measured already (a redelivered task), that job's id, after queueing what it
    has left undone."""
    with ctx.db.session() as s:
        inst = s.get(ReceivedInstance, instance_id)
        if inst is None:
            raise ValueError(f"instance_id {instance_id} is not a received instance")
        finished = _finished_job(s, instance_id)
        if finished is None:
            for stale in s.scalars(
                select(Job).where(Job.instance_id == instance_id,
                                  Job.state.in_(OPEN_JOB_STATES))
            ):  # its worker died (the task was redelivered): record it, measure again
                stale.state = transition(stale.state, JobState.FAILED)
                stale.finished_at = utcnow()
                stale.error = "interrupted: the worker stopped during the measurement"
            kind_name = inst.kind or kinds.DEFAULT_KIND  # rows routed before kinds: knee-ap
            job = Job(instance_id=instance_id, kind=kind_name, state=JobState.RUNNING,
                      started_at=utcnow())
            s.add(job)
            s.flush()
            return job.id, inst.spool_path, kind_name
    job_id, undelivered, pending = finished
    log.info("job %d: instance %d is measured already", job_id, instance_id)
    for delivery_id in undelivered:
        ctx.queue.submit_delivery(delivery_id)
    if pending:
        _remake_pending_objects(ctx, job_id)
    return job_id


def _write_objects(
    settings: Settings,
    job_id: int,
    ds: object,
    measurements: Sequence[object],
    kind_name: str,
    only: Sequence[str],
) -> list[tuple[str, Path, str]]:
    """Make the objects ``only`` names, write each durably in the job's results folder:
    (object kind, path, SOP Instance UID) of each."""
    folder = settings.storage.results.resolve() / f"job-{job_id:06d}"  # absolute paths
    made = make_results(settings, ds, measurements, kind_name, only=only)  # type: ignore[arg-type]
    return [
        (w.object_kind, _save(settings, folder, w.file_name, obj), str(obj.SOPInstanceUID))
        for w, obj in made.objects
    ]


def write_objects_from_spool(
    settings: Settings,
    job_id: int,
    spool_path: str | None,
    measurements: Sequence[object],
    kind_name: str,
    only: Sequence[str],
) -> list[tuple[str, Path, str]]:
    """:func:`_write_objects` from the spooled source, read and cleaned as the job read
    it: what the report process (:mod:`dicom_node.report_process`) runs."""
    ds = _read_source(spool_path)
    clean_source_attributes(ds)  # type: ignore[arg-type]
    return _write_objects(settings, job_id, ds, measurements, kind_name, only)


def _record_outputs(
    ctx: NodeContext,
    s: Session,
    job_id: int,
    kind: StudyKind,
    outputs: Sequence[tuple[str, Path, str]],
) -> list[int]:
    """Output rows for ``outputs`` (after the job's rows already there) and one delivery
    row for each destination that takes any of them; the delivery ids."""
    position = len(s.scalars(select(OutputObject.id).where(OutputObject.job_id == job_id)).all())
    s.add_all(
        OutputObject(job_id=job_id, position=position + i, object_kind=object_kind,
                     path=str(path), sop_instance_uid=uid)
        for i, (object_kind, path, uid) in enumerate(outputs)
    )
    made = [object_kind for object_kind, _, _ in outputs]
    deliveries = []
    for d in ctx.settings.delivery.destinations:
        carried = [k for k in made if k in {w.object_kind for w in kind.writers_for(d.objects)}]
        if carried:  # else nothing for it in this stage
            deliveries.append(Delivery(
                job_id=job_id, destination=d.name, ae_title=d.address[0], host=d.address[1],
                port=d.address[2], object_kinds=carried,
            ))
    s.add_all(deliveries)
    s.flush()
    return [d.id for d in deliveries]


def _release_source(ctx: NodeContext, inst: ReceivedInstance) -> None:
    """Delete the source from the spool once every object is written, unless kept."""
    if not ctx.settings.storage.keep_source and inst.spool_path:
        Path(inst.spool_path).unlink(missing_ok=True)
        inst.spool_path = None


def make_pending_objects(
    ctx: NodeContext,
    job_id: int,
    ds: object,
    measurements: Sequence[object],
    phi: set[str],
) -> list[int]:
    """Make the objects finished job ``job_id`` still lacks (its ``pending_objects``),
    record them and queue their delivery; the delivery ids.

    A failure here does not undo the job (its SR is written and sent): the job row's
    warnings say which objects were not made and why, and nothing is retried.
    """
    t0 = time.perf_counter()
    with ctx.db.session() as s:
        job = s.get_one(Job, job_id)
        pending, kind_name = list(job.pending_objects or []), job.kind or kinds.DEFAULT_KIND
        spool_path = job.instance.spool_path
    if not pending:
        return []
    kind = kinds.get(kind_name)
    planned = {w.object_kind for w in planned_writers(ctx.settings, kind.name)}
    dropped = [k for k in pending if k not in planned]  # no destination takes it any more
    pending = [k for k in pending if k in planned]
    if dropped:
        log.warning("job %d: %s no longer wanted by any destination, not made",
                    job_id, ", ".join(dropped))
    apart = getattr(ctx.queue, "report_process", None)
    try:
        if not pending:
            outputs = []
        elif apart is not None:  # the in-process queue: in its child process
            outputs = apart.make(write_objects_from_spool, ctx.settings, job_id, spool_path,
                                 measurements, kind.name, pending)
        else:
            outputs = _write_objects(ctx.settings, job_id, ds, measurements, kind.name, pending)
    except Exception as exc:  # noqa: BLE001 -- recorded on the job; its SR stands
        _fail_pending(ctx, job_id, exc, phi)
        return []
    with ctx.db.session() as s:
        job = s.get_one(Job, job_id)
        delivery_ids = _record_outputs(ctx, s, job_id, kind, outputs)
        job.pending_objects = None
        job.timings_ms = {**(job.timings_ms or {}),
                          "pending_reports_ms": 1000 * (time.perf_counter() - t0)}
        _release_source(ctx, s.get_one(ReceivedInstance, job.instance_id))
    for delivery_id in delivery_ids:
        ctx.queue.submit_delivery(delivery_id)
    return delivery_ids


def _remake_pending_objects(ctx: NodeContext, job_id: int) -> None:
    """The objects a job lacks after its node stopped between its two stages: made from a
    second measurement of the source (the same model on the same file)."""
    with ctx.db.session() as s:
        job = s.get_one(Job, job_id)
        spool_path, kind_name = job.instance.spool_path, job.kind or kinds.DEFAULT_KIND
        version = job.model_version
    log.info("job %d: making %s after a restart", job_id, "the objects it lacks")
    phi: set[str] = set()
    try:
        ds = _read_source(spool_path)
        phi = patient_values(ds)  # type: ignore[arg-type]
        clean_source_attributes(ds)  # type: ignore[arg-type]
        measurer = ctx.measurer(kind_name)
        if measurer.model_info.version != version:  # the SC would not show the SR's values
            raise ConfigError(
                f"the model changed since the SR was made ({version} -> "
                f"{measurer.model_info.version}): send the job again with knee-node resend")
        measurements = list(measurer.measure(ds))  # type: ignore[arg-type]
        if not measurements:
            raise InputImageError(kinds.get(kind_name).nothing_found)
    except Exception as exc:  # noqa: BLE001 -- the objects cannot be made: said on the job
        _fail_pending(ctx, job_id, exc, phi)
        return
    make_pending_objects(ctx, job_id, ds, measurements, phi)


def _fail_pending(ctx: NodeContext, job_id: int, exc: Exception, phi: set[str]) -> None:
    """Record on the job that its pending objects could not be made, and why (sanitised
    as the job's own errors are); they are not tried again."""
    problem = redact(f"{type(exc).__name__}: {exc}", phi,
                     quoted=not isinstance(exc, KneeNodeError))[:1000]
    with ctx.db.session() as s:
        job = s.get_one(Job, job_id)
        pending = ", ".join(job.pending_objects or [])
        job.pending_objects = None
        job.warnings = [*(job.warnings or []), f"{pending} not made: {problem}"]
        _release_source(ctx, s.get_one(ReceivedInstance, job.instance_id))
    log.warning("job %d: %s not made: %s", job_id, pending, type(exc).__name__)


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


def _finished_job(s: Session, instance_id: int) -> tuple[int, list[int], list[str]] | None:
    """The finished (done or flagged) job of an instance, its deliveries never tried and
    the objects it has still to write."""
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
    return job.id, never_tried, list(job.pending_objects or [])


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
        carried = None if d.object_kinds is None else set(d.object_kinds)
        made = [
            (o.object_kind, Path(o.path), o.sop_instance_uid)
            for o in d.job.outputs
            if o.path and (carried is None or o.object_kind in carried)
        ]
    dest = next((x for x in settings.delivery.destinations if x.name == name), None)
    paths: list[Path] = []
    first_uid = None
    try:
        if dest is None:
            raise DeliveryError(f"destination {name!r} is no longer configured")
        wanted = {w.object_kind for w in kinds.get(kind_name).writers_for(dest.objects)}
        chosen = [(path, uid) for object_kind, path, uid in made if object_kind in wanted]
        if not chosen:
            raise DeliveryError(
                f"job {job_id} has none of the objects {name} takes ({', '.join(sorted(wanted))})"
            )
        paths, first_uid = [p for p, _ in chosen], chosen[0][1]
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
        sop_instance_uid=first_uid,
        detail=f"delivery {delivery_id}, {len(paths)} object(s)",
    )
    log.info("delivery %d to %s done (attempt %d)", delivery_id, name, attempt)
    return DeliveryOutcome(DeliveryState.DELIVERED)


def pending_work(ctx: NodeContext) -> tuple[list[int], list[int]]:
    """Work left unfinished by a stopped in-process node: instances queued but never
    measured (jobs left running are marked failed) or measured with objects still to
    write, and deliveries not finished."""
    with ctx.db.session() as s:
        for job in s.scalars(select(Job).where(Job.state.in_(OPEN_JOB_STATES))):
            job.state, job.finished_at = transition(job.state, JobState.FAILED), utcnow()
            job.error = "interrupted: the node stopped during the measurement"
        instances = s.scalars(
            select(ReceivedInstance.id).where(ReceivedInstance.state == InstanceState.QUEUED)
        ).all()
        unwritten = s.scalars(  # stopped between a job's SR and its other objects
            select(Job.instance_id).where(Job.state.in_(FINISHED_JOB_STATES),
                                          Job.pending_objects.is_not(None))
        ).all()
        unwritten_jobs = select(Job.id).where(Job.state.in_(FINISHED_JOB_STATES),
                                              Job.pending_objects.is_not(None))
        deliveries = s.scalars(
            select(Delivery.id).where(
                Delivery.state.in_(UNFINISHED_DELIVERY_STATES),
                # the measurement of such a job's instance queues those never tried
                ~(Delivery.job_id.in_(unwritten_jobs) & (Delivery.state == DeliveryState.PENDING)
                  & (Delivery.attempts == 0)),
            )
        ).all()
    return sorted({*instances, *unwritten}), list(deliveries)


__all__ = ["DeliveryOutcome", "deliver", "measure_instance", "pending_work", "uid_hash"]
