"""Retention: what the node forgets about instances it did not measure.

Instances that were ignored (not a knee radiograph), rejected (unreadable) or duplicates
have no job and no result; after ``storage.ignored_retention_h`` hours their database
rows are deleted and the audit events about them lose the instance's UID hash (who sent
something, and when, stays). Spool files that no row refers to (left by a crash between
writing and recording) and stale temporary files are deleted after the same period.
Spool files younger than an hour are always kept (the listener may be recording one).
Run by ``knee-node purge`` (e.g. from a daily timer).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import delete, select, update

from dicom_node.datalock import DataDirLock, DataDirLockedError
from dicom_node.db.models import AuditEvent, Job, ReceivedInstance
from dicom_node.db.session import Database, uid_hash
from dicom_node.db.states import InstanceState
from dicom_node.settings import Settings

log = logging.getLogger(__name__)

#: States of instances that are never measured, so nothing else refers to them.
UNMEASURED_STATES = (InstanceState.IGNORED, InstanceState.REJECTED, InstanceState.DUPLICATE)


@dataclass(frozen=True)
class PurgeReport:
    """What a purge removed."""

    instances: int
    audit_events_cleared: int
    spool_files: int


def purge(
    settings: Settings,
    db: Database,
    *,
    older_than_h: float | None = None,
    now: datetime | None = None,
) -> PurgeReport:
    """Delete rows of unmeasured instances and orphaned spool files older than the period.

    Parameters
    ----------
    settings
        The node's settings (``storage.ignored_retention_h``, the spool folder).
    db
        The node's database.
    older_than_h
        Retention in hours (default ``storage.ignored_retention_h``); 0 purges everything.
    now
        The current time (tests); default now, UTC.
    """
    hours = settings.storage.ignored_retention_h if older_than_h is None else older_than_h
    if hours < 0:
        raise ValueError(f"older_than_h must be >= 0, got {hours}")
    cutoff = (now or datetime.now(UTC)) - timedelta(hours=hours)
    with db.session() as s:
        rows = s.execute(
            select(ReceivedInstance.id, ReceivedInstance.sop_instance_uid).where(
                ReceivedInstance.state.in_(UNMEASURED_STATES),
                ReceivedInstance.received_at <= cutoff,
                ~select(Job.id).where(Job.instance_id == ReceivedInstance.id).exists(),
            )
        ).all()
        ids = [r.id for r in rows]
        hashes = sorted({uid_hash(r.sop_instance_uid) for r in rows})
        still_used = set(
            s.scalars(
                select(ReceivedInstance.sop_instance_uid).where(ReceivedInstance.id.not_in(ids))
            )
        )
        hashes = [h for h in hashes if h not in {uid_hash(u) for u in still_used}]
        cleared = 0
        for i in range(0, len(hashes), 500):
            done = s.execute(
                update(AuditEvent)
                .where(AuditEvent.sop_instance_uid_sha256.in_(hashes[i : i + 500]))
                .values(sop_instance_uid_sha256=None)
            )
            cleared += int(getattr(done, "rowcount", 0))
        for i in range(0, len(ids), 500):
            s.execute(delete(ReceivedInstance).where(ReceivedInstance.id.in_(ids[i : i + 500])))
        referenced = {
            Path(p).resolve()
            for p in s.scalars(
                select(ReceivedInstance.spool_path).where(ReceivedInstance.spool_path.is_not(None))
            )
            if p is not None
        }
    removed = 0
    spool = settings.storage.spool
    if spool.is_dir():
        lock = DataDirLock(settings.storage.data_dir)
        try:
            lock.acquire()
        except DataDirLockedError:  # a node runs: a young file may be one it records now
            limit = min(cutoff, (now or datetime.now(UTC)) - timedelta(hours=1)).timestamp()
        else:  # no node runs: every file no row refers to is an orphan (e.g. after kill -9)
            limit = float("inf")
        try:
            for path in spool.iterdir():
                if not path.is_file() or path.resolve() in referenced:
                    continue
                if path.stat().st_mtime <= limit:
                    path.unlink(missing_ok=True)
                    removed += 1
        finally:
            lock.release()
    report = PurgeReport(len(ids), cleared, removed)
    log.info(
        "purge: %d unmeasured instance row(s), %d audit UID hash(es), %d spool file(s)",
        *(report.instances, report.audit_events_cleared, report.spool_files),
    )
    return report
