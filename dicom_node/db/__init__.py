"""The node's database: SQLAlchemy 2 models, engine/session set-up, Alembic migrations."""

from dicom_node.db.models import (
    AuditEvent,
    Base,
    Delivery,
    Job,
    Measurement,
    OutputObject,
    ReceivedInstance,
    ResultValueRow,
)
from dicom_node.db.session import Database

__all__ = [
    "AuditEvent",
    "Base",
    "Database",
    "Delivery",
    "Job",
    "Measurement",
    "OutputObject",
    "ReceivedInstance",
    "ResultValueRow",
]
