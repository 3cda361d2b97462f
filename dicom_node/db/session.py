"""Engine and sessions, created lazily per process (after a Celery fork)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from dicom_node.db.models import AuditEvent


def uid_hash(uid: str) -> str:
    """SHA-256 hex of a UID: what audit rows and INFO logs carry instead of the UID."""
    return hashlib.sha256(uid.encode("ascii", "replace")).hexdigest()


def make_engine(url: str, *, echo: bool = False) -> Engine:
    """An engine for ``url``; SQLite gets WAL, a busy timeout and foreign keys."""
    if not isinstance(url, str) or not url:
        raise ValueError(f"url must be a non-empty string, got {url!r}")
    kwargs: dict[str, Any] = {"echo": echo, "future": True}
    if url.startswith("sqlite"):
        kwargs["connect_args"] = {"timeout": 30, "check_same_thread": False}
    else:
        kwargs["pool_pre_ping"] = True
    engine = create_engine(url, **kwargs)
    if url.startswith("sqlite"):

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=FULL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

    return engine


class Database:
    """The node's database handle: an engine and a session factory.

    Parameters
    ----------
    url
        SQLAlchemy URL (``Settings.database_url``).
    """

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = url
        self.engine = make_engine(url, echo=echo)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session committed on success and rolled back on any error."""
        with self._sessions() as s:
            try:
                yield s
                s.commit()
            except BaseException:
                s.rollback()
                raise

    def audit(self, event_name: str, **fields: str | None) -> None:
        """Record an audit event in a transaction of its own (fields: :func:`audit_event`)."""
        with self.session() as s:
            s.add(audit_event(event_name, **fields))

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()


def audit_event(
    event_name: str,
    *,
    ae_title: str | None = None,
    peer_address: str | None = None,
    sop_class_uid: str | None = None,
    sop_instance_uid: str | None = None,
    detail: str | None = None,
) -> AuditEvent:
    """An audit event row (the instance UID is stored as its SHA-256 only), not yet added.

    Add it to the session that records what it audits, so both land in one commit.
    """
    return AuditEvent(
        event=event_name,
        ae_title=ae_title,
        peer_address=peer_address,
        sop_class_uid=sop_class_uid,
        sop_instance_uid_sha256=None if sop_instance_uid is None else uid_hash(sop_instance_uid),
        detail=detail,
    )
