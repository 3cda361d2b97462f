"""``knee-node status``: recent jobs (or, with ``--instances``, recent received instances).

What a user needs to find a result and to know what went wrong, without PHI: the calling
AE, a short hash of the Study Instance UID (``--study UID`` finds it), the accession
number only when ``status.show_accession_number`` is set, the study kind and its headline
values of results that passed (knee-ap: the aTFA by FTS and FNTS; a flagged result shows
none), each delivery's state and last error, and the reason an instance was not measured.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from dicom_node.commands.common import CONFIG_OPTION, open_database_or_exit, settings_or_exit
from dicom_node.db.states import UNFINISHED_DELIVERY_STATES, DeliveryState

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table
    from sqlalchemy.orm import Session

    from dicom_node.db import Delivery, Job

#: Characters of the SHA-256 of the Study Instance UID shown (enough to tell studies apart).
STUDY_HASH_CHARS = 10
NO_ANGLE = "-"


def study_tag(study_uid: str | None) -> str:
    """Short hash of a Study Instance UID, as ``status`` shows it ("" if unknown)."""
    from dicom_node.db.session import uid_hash

    return uid_hash(study_uid)[:STUDY_HASH_CHARS] if study_uid else ""


def results_text(j: Job) -> str:
    """The job's headline values (its kind's ``headline``) for the table: "aTFA FTS +4.0°,
    FNTS -1.0°", with the 95 % half-width when the row has one ("aTFA FTS +6.2° ± 0.8°"),
    a coded value by its meaning ("CPAK type II"); a flagged or failed job shows none."""
    from dicom_node import kinds
    from inference.measurement import value_text

    kind = kinds.registry().get(j.kind or kinds.DEFAULT_KIND)
    if kind is None or j.quality != "pass":
        return NO_ANGLE
    parts, previous = [], None
    for label in kind.headline:
        row = j.value(label)
        if row is None:
            continue
        name = label if row.name != previous or row.method is None else row.method
        if row.is_coded:
            parts.append(f"{name} {row.code_meaning or row.code_value}")
        else:
            unit = "°" if row.unit == "deg" else f" {row.unit}"
            shown = NO_ANGLE if row.value is None else value_text(row.value, row.uncertainty,
                                                                   unit)
            parts.append(f"{name} {shown}")
        previous = row.name
    return ", ".join(parts) or NO_ANGLE


def recent_jobs(s: Session, limit: int, wanted: str | None = None) -> list[Job]:
    """The newest ``limit`` jobs, newest first (only study hash ``wanted`` if given)."""
    from sqlalchemy import select

    from dicom_node.db import Job, ReceivedInstance

    q = select(Job).join(ReceivedInstance).order_by(Job.id.desc())
    if wanted is None:
        return list(s.scalars(q.limit(limit)).all())
    out = []
    for j in s.scalars(q).all():
        if study_tag(j.instance.study_instance_uid) == wanted:
            out.append(j)
            if len(out) >= limit:
                break
    return out


def verdict_text(j: Job) -> str:
    """The verdict as ``status`` shows it (a flagged result has none)."""
    return "not determined (flagged)" if j.quality == "flag" else (j.verdict or "")


def accession(sr_path: str | None) -> str:
    """Accession Number of the job's SR file (see :func:`_accession`)."""
    return _accession(sr_path)


def _accession(sr_path: str | None) -> str:
    """Accession Number of the job's SR file (copied from the source); "" if unreadable."""
    if not sr_path or not Path(sr_path).is_file():
        return ""
    from pydicom import dcmread

    try:
        ds = dcmread(sr_path, stop_before_pixels=True, specific_tags=["AccessionNumber"])
    except (OSError, ValueError):
        return ""
    return str(ds.get("AccessionNumber", "") or "")


def _console() -> Console:
    from rich.console import Console

    return Console(width=None if sys.stdout.isatty() else 200)


def status(
    config: Path | None = CONFIG_OPTION,
    limit: int = typer.Option(20, min=1, help="number of recent jobs (or instances)"),
    instances: bool = typer.Option(
        False, "--instances", help="recent received instances: state and why not measured"
    ),
    study: str | None = typer.Option(
        None, "--study", help="only this Study Instance UID (matched by its hash)"
    ),
) -> None:
    """Show recent jobs: caller, study, kind, results (knee: aTFA by FTS and FNTS),
    verdict, deliveries, errors."""
    from rich.table import Table
    from sqlalchemy import func, select

    from dicom_node.db import ReceivedInstance

    settings = settings_or_exit(config)
    db = open_database_or_exit(settings, config)
    show_acc = settings.status.show_accession_number
    console = _console()
    wanted = study_tag(study.strip()) if study else None
    try:
        with db.session() as s:
            if instances:
                table = _instances_table(s, limit, wanted)
            else:
                table = Table(title="knee-node: recent jobs")
                cols = ["job", "finished", "state", "caller", "study"]
                cols += ["accession"] if show_acc else []
                cols += ["kind", "results", "verdict", "model", "ms", "sent", "error"]
                for col in cols:
                    table.add_column(col)
                for j in recent_jobs(s, limit, wanted):
                    inst = j.instance
                    tag = study_tag(inst.study_instance_uid)
                    per_dest = destination_states(j.deliveries)
                    sent = sum(v == DeliveryState.DELIVERED for v in per_dest.values())
                    total_ms = (j.timings_ms or {}).get("total_ms")
                    row = [
                        str(j.id),
                        j.finished_at.strftime("%Y-%m-%d %H:%M:%S") if j.finished_at else "",
                        j.state,
                        inst.calling_ae_title,
                        tag,
                    ]
                    row += [_accession(j.output_path("SR"))] if show_acc else []
                    row += [
                        j.kind or "",
                        results_text(j),
                        verdict_text(j),
                        f"{j.model_name or ''} {j.model_version or ''}".strip(),
                        "" if total_ms is None else f"{total_ms:.0f}",
                        f"{sent}/{len(per_dest)}",
                        _job_error(j),
                    ]
                    table.add_row(*row)
            counts = dict(
                s.execute(
                    select(ReceivedInstance.state, func.count()).group_by(ReceivedInstance.state)
                ).all()
            )
            destinations = _destinations(s)
    finally:
        db.dispose()
    console.print(table)
    console.print(
        "received instances: "
        + (", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none")
        + ("" if instances else " (`knee-node status --instances` lists them with reasons)")
    )
    for line in destinations:
        console.print(line, markup=False)


def job_error(j: Job) -> str:
    """The job's error or its undelivered destinations' last errors (as ``status``)."""
    return _job_error(j)


def destination_states(deliveries: Sequence[Delivery]) -> dict[str, DeliveryState]:
    """Where a job's results stand at each destination, over its deliveries there (the SR,
    then the SC/GSPS): delivered when all are, failed when any has failed, else the state
    of the first one not delivered."""
    by_name: dict[str, list[Delivery]] = {}
    for d in deliveries:
        by_name.setdefault(d.destination, []).append(d)
    out = {}
    for name, ds in by_name.items():
        states = [DeliveryState(d.state) for d in ds]
        if all(x == DeliveryState.DELIVERED for x in states):
            out[name] = DeliveryState.DELIVERED
        elif DeliveryState.FAILED in states:
            out[name] = DeliveryState.FAILED
        else:
            out[name] = next(x for x in states if x != DeliveryState.DELIVERED)
    return out


def _job_error(j: Job) -> str:
    """The job's error, else each undelivered destination's last error (one per
    destination, whichever of its deliveries has it) and what to do."""
    if j.error:
        return str(j.error)[:120]
    later = [w for w in (j.warnings or []) if " not made: " in w]
    if j.pending_objects:
        later.append(f"{', '.join(j.pending_objects)} still to make")
    if later:  # the SR went; the objects after it did not (yet)
        return "; ".join(later)[:240]
    hint = (f"`knee-node resend --job {j.id}`"
            if any(d.state == DeliveryState.FAILED for d in j.deliveries) else "")
    parts, named = [], set()
    for d in reversed(j.deliveries):  # the latest first
        if d.state != DeliveryState.DELIVERED and d.last_error and d.destination not in named:
            named.add(d.destination)
            parts.append(f"{d.destination}: {d.state} after {d.attempts} attempt(s): "
                         f"{d.last_error}")
    text = "; ".join(reversed(parts))
    budget = 240 - len(hint) - 2
    return "; ".join(x for x in (text[:budget], hint) if x)


def _destinations(s: Session) -> list[str]:
    """One line per destination: delivered/failed counts and the last error, if any."""
    from sqlalchemy import select

    from dicom_node.db import Delivery

    rows = s.scalars(select(Delivery).order_by(Delivery.id)).all()
    by_name: dict[str, list[Delivery]] = {}
    for d in rows:
        by_name.setdefault(d.destination, []).append(d)
    lines = []
    for name, ds in sorted(by_name.items()):
        per_job: dict[int, list[Delivery]] = {}  # counted per job: its SR, then SC/GSPS
        for d in ds:
            per_job.setdefault(d.job_id, []).append(d)
        states = [destination_states(jd)[name] for jd in per_job.values()]
        ok = sum(x == DeliveryState.DELIVERED for x in states)
        failed = [x for x in states if x == DeliveryState.FAILED]
        waiting = sum(x in UNFINISHED_DELIVERY_STATES for x in states)
        last = next(
            (d for d in reversed(ds) if d.last_error and d.state != DeliveryState.DELIVERED),
            None,
        )
        line = f"destination {name}: {ok} delivered, {len(failed)} failed, {waiting} in progress"
        if last is not None:
            line += (
                f"; last error (delivery {last.id}, job {last.job_id}, {last.state}): "
                f"{last.last_error}"
            )
        if failed:
            line += "; send again with `knee-node resend --undelivered`"
        lines.append(line)
    return lines


def _instances_table(s: Session, limit: int, wanted: str | None) -> Table:
    """Recent received instances with state and, when not measured, why."""
    from rich.table import Table
    from sqlalchemy import select

    from dicom_node.db import ReceivedInstance

    table = Table(title="knee-node: recent received instances")
    for col in ("instance", "received", "caller", "study", "modality", "body part", "view",
                "state", "job", "reason"):
        table.add_column(col)
    q = select(ReceivedInstance).order_by(ReceivedInstance.id.desc())
    for inst in s.scalars(q).all():
        tag = study_tag(inst.study_instance_uid)
        if wanted is not None and tag != wanted:
            continue
        if len(table.rows) >= limit:
            break
        job = max(inst.jobs, key=lambda j: j.id) if inst.jobs else None
        table.add_row(
            str(inst.id),
            inst.received_at.strftime("%Y-%m-%d %H:%M:%S") if inst.received_at else "",
            inst.calling_ae_title,
            tag,
            inst.modality or "",
            inst.body_part or "",
            inst.view_position or "",
            inst.state,
            "" if job is None else str(job.id),
            (inst.reason or "")[:200],
        )
    return table
