"""Tables of the node (SQLAlchemy 2, typed ``Mapped[]`` style).

No patient name, patient ID or birth date is stored anywhere. Instances are identified by
their DICOM UIDs (needed to place the results in the same study); audit events carry a
SHA-256 of the SOP Instance UID only.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Float, ForeignKey, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from dicom_node.db.states import DeliveryState, InstanceState, JobState


def utcnow() -> datetime:
    """Timezone-aware now (UTC)."""
    return datetime.now(UTC)


class Base(DeclarativeBase):
    """Declarative base; ``Base.metadata`` is what Alembic migrates."""


#: States of a received instance, of a job, of a delivery (see dicom_node.db.states).
INSTANCE_STATES: tuple[str, ...] = tuple(InstanceState)
JOB_STATES: tuple[str, ...] = tuple(JobState)
DELIVERY_STATES: tuple[str, ...] = tuple(DeliveryState)


class ReceivedInstance(Base):
    """One C-STORE the node accepted (or refused after reading it)."""

    __tablename__ = "received_instances"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    calling_ae_title: Mapped[str] = mapped_column(String(16))
    peer_address: Mapped[str] = mapped_column(String(64))
    sop_class_uid: Mapped[str] = mapped_column(String(64))
    sop_instance_uid: Mapped[str] = mapped_column(String(64), index=True)
    study_instance_uid: Mapped[str | None] = mapped_column(String(64), nullable=True)
    series_instance_uid: Mapped[str | None] = mapped_column(String(64), nullable=True)
    transfer_syntax_uid: Mapped[str] = mapped_column(String(64))
    modality: Mapped[str | None] = mapped_column(String(16), nullable=True)
    body_part: Mapped[str | None] = mapped_column(String(64), nullable=True)
    view_position: Mapped[str | None] = mapped_column(String(16), nullable=True)
    spool_path: Mapped[str | None] = mapped_column(Text, nullable=True)
    size_bytes: Mapped[int] = mapped_column(Integer, default=0)
    state: Mapped[str] = mapped_column(
        String(16), default=InstanceState.STORED.value, index=True
    )
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    routing_rule: Mapped[str | None] = mapped_column(String(64), nullable=True)
    #: the study kind its routing rule measures it as (None: not routed to one)
    kind: Mapped[str | None] = mapped_column(String(32), nullable=True)

    jobs: Mapped[list[Job]] = relationship(back_populates="instance")


class Job(Base):
    """One measurement of one received instance."""

    __tablename__ = "jobs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    instance_id: Mapped[int] = mapped_column(ForeignKey("received_instances.id"), index=True)
    state: Mapped[str] = mapped_column(
        String(16), default=JobState.QUEUED.value, index=True
    )
    #: the study kind measured (dicom_node.kinds): its measurer made the results
    kind: Mapped[str | None] = mapped_column(String(32), nullable=True, index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    model_name: Mapped[str | None] = mapped_column(String(64), nullable=True)
    model_version: Mapped[str | None] = mapped_column(String(64), nullable=True)
    timings_ms: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    #: the first item's verdict (the summary line; each item has its own)
    verdict: Mapped[str | None] = mapped_column(String(32), nullable=True)
    #: "flag" if any item is flagged, else "pass"
    quality: Mapped[str | None] = mapped_column(String(8), nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    #: what was changed to make a valid result (e.g. an invalid patient attribute
    #: dropped); names attributes, never their values
    warnings: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    #: object kinds the finished job has still to write ("SC", "GSPS"): its SR is written
    #: and sent first (:func:`dicom_node.pipeline.measure_instance`); None when all are
    pending_objects: Mapped[list[str] | None] = mapped_column(
        JSON(none_as_null=True), nullable=True
    )

    instance: Mapped[ReceivedInstance] = relationship(back_populates="jobs")
    # the results are loaded with the job (few rows), so a job read in a session can be
    # read after it closes
    measurements: Mapped[list[Measurement]] = relationship(
        back_populates="job", order_by="Measurement.item_index", lazy="selectin"
    )
    values: Mapped[list[ResultValueRow]] = relationship(
        back_populates="job", order_by="ResultValueRow.id", lazy="selectin"
    )
    outputs: Mapped[list[OutputObject]] = relationship(
        back_populates="job", order_by="OutputObject.position", lazy="selectin"
    )
    deliveries: Mapped[list[Delivery]] = relationship(back_populates="job")

    def value(self, label: str) -> ResultValueRow | None:
        """The job's headline value called ``label`` ("aTFA FTS": name and method).

        A value recorded for the job itself (migrated from the columns before 0003, when
        it differed from its first item's) wins; else the first item's.
        """
        rows = [v for v in self.values if v.label == label]
        own = [v for v in rows if v.measurement_id is None]
        if own:
            return own[0]
        first = min(self.measurements, key=lambda m: m.item_index, default=None)
        return next((v for v in rows if first is not None and v.measurement_id == first.id),
                    None)

    def output(self, object_kind: str) -> OutputObject | None:
        """The job's output object of kind ``object_kind`` ("SR", "SC"), if it has one."""
        return next((o for o in self.outputs if o.object_kind == object_kind), None)

    def output_path(self, object_kind: str) -> str | None:
        """Path of the job's output object of kind ``object_kind``, if it has one."""
        out = self.output(object_kind)
        return None if out is None else out.path


class Measurement(Base):
    """One item measured in a job's image: a knee (an image may show both), a leg."""

    __tablename__ = "measurements"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id"), index=True)
    item_index: Mapped[int] = mapped_column(Integer)
    laterality: Mapped[str] = mapped_column(String(1))
    phase: Mapped[str | None] = mapped_column(String(4), nullable=True)
    verdict: Mapped[str] = mapped_column(String(32))
    quality: Mapped[str] = mapped_column(String(8))
    confidence: Mapped[float] = mapped_column(Float)
    flag_reasons: Mapped[list[str]] = mapped_column(JSON, default=list)

    job: Mapped[Job] = relationship(back_populates="measurements")
    values: Mapped[list[ResultValueRow]] = relationship(
        back_populates="measurement", order_by="ResultValueRow.id", lazy="selectin"
    )

    def value(self, label: str) -> ResultValueRow | None:
        """This item's value called ``label`` ("aTFA FTS"), if it has one."""
        return next((v for v in self.values if v.label == label), None)


class ResultValueRow(Base):
    """One named, coded result value: of an item (``measurement_id``) or of the job."""

    __tablename__ = "result_values"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id"), index=True)
    measurement_id: Mapped[int | None] = mapped_column(
        ForeignKey("measurements.id"), nullable=True, index=True
    )
    name: Mapped[str] = mapped_column(String(64))
    value: Mapped[float | None] = mapped_column(Float, nullable=True)
    unit: Mapped[str] = mapped_column(String(16))
    laterality: Mapped[str | None] = mapped_column(String(1), nullable=True)
    method: Mapped[str | None] = mapped_column(String(32), nullable=True)
    uncertainty: Mapped[float | None] = mapped_column(Float, nullable=True)
    #: a coded value (value None, unit ""): Code Value, Coding Scheme Designator, Meaning
    code_value: Mapped[str | None] = mapped_column(String(16), nullable=True)
    code_scheme: Mapped[str | None] = mapped_column(String(16), nullable=True)
    code_meaning: Mapped[str | None] = mapped_column(String(64), nullable=True)

    job: Mapped[Job] = relationship(back_populates="values")
    measurement: Mapped[Measurement | None] = relationship(back_populates="values")

    @property
    def label(self) -> str:
        """Name and method as ``status`` shows them: "aTFA FTS"."""
        return self.name if self.method is None else f"{self.name} {self.method}"

    @property
    def is_coded(self) -> bool:
        """Whether the row holds a code (the ``code_*`` columns) rather than a number."""
        return self.code_value is not None


class OutputObject(Base):
    """One DICOM object a job wrote to send back (an SR, an SC...)."""

    __tablename__ = "output_objects"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id"), index=True)
    #: sending order within the job
    position: Mapped[int] = mapped_column(Integer)
    object_kind: Mapped[str] = mapped_column(String(16))
    path: Mapped[str | None] = mapped_column(Text, nullable=True)
    sop_instance_uid: Mapped[str | None] = mapped_column(String(64), nullable=True)

    job: Mapped[Job] = relationship(back_populates="outputs")


class Delivery(Base):
    """Sending one job's output objects (SR, SC) to one destination."""

    __tablename__ = "deliveries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id"), index=True)
    destination: Mapped[str] = mapped_column(String(64))
    ae_title: Mapped[str] = mapped_column(String(16))
    host: Mapped[str] = mapped_column(String(255))
    port: Mapped[int] = mapped_column(Integer)
    #: the object kinds this delivery carries (["SR"], then ["SC", "GSPS"]); None (rows
    #: before migration 0005, and ``resend``): every object of the job its destination takes
    object_kinds: Mapped[list[str] | None] = mapped_column(
        JSON(none_as_null=True), nullable=True
    )
    state: Mapped[str] = mapped_column(
        String(16), default=DeliveryState.PENDING.value, index=True
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)

    job: Mapped[Job] = relationship(back_populates="deliveries")


class AuditEvent(Base):
    """Who did what, when: associations, instances received, results sent. No PHI."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    event: Mapped[str] = mapped_column(String(32), index=True)
    ae_title: Mapped[str | None] = mapped_column(String(16), nullable=True)
    peer_address: Mapped[str | None] = mapped_column(String(64), nullable=True)
    sop_class_uid: Mapped[str | None] = mapped_column(String(64), nullable=True)
    sop_instance_uid_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    detail: Mapped[str | None] = mapped_column(Text, nullable=True)
