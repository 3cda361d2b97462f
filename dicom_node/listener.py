"""The listening AE: C-ECHO and C-STORE of projection radiographs.

Association: the calling AE title and address must match ``node.allowed_callers``, else
A-ASSOCIATE-RJ (rejected permanent, calling AE title not recognised). C-STORE: the
instance is written durably to the spool and recorded in the database *before* success
is answered; any failure answers a failure status (0xA700 out of resources, 0xC000
cannot understand), never success. An instance whose SOP Instance UID was already queued
or measured is answered success (it is stored) and recorded as ``duplicate``: no second
job, no second SR.
"""

from __future__ import annotations

import logging
import ssl
import struct
import threading
from io import BytesIO
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from pydicom import Dataset, dcmread
from pydicom.errors import InvalidDicomError
from pydicom.uid import (
    JPEG2000,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEGLSNearLossless,
    RLELossless,
)
from pynetdicom import AE, _config, evt
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    ComputedRadiographyImageStorage,
    DigitalXRayImageStorageForPresentation,
    DigitalXRayImageStorageForProcessing,
    Verification,
)
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from dicom_node.admission import (
    ConnectionGuard,
    NodeAssociationServer,
    PduDeadline,
    install_pdu_deadline,
)
from dicom_node.db.models import ReceivedInstance
from dicom_node.db.session import audit_event, uid_hash
from dicom_node.db.states import (
    FINISHED_JOB_STATES,
    DeliveryState,
    InstanceState,
    transition,
)
from dicom_node.routing import route
from dicom_node.spool import DecodedSizeError, store_received

if TYPE_CHECKING:
    from pynetdicom.transport import ThreadedAssociationServer

    from dicom_node.context import NodeContext
    from dicom_node.settings import TLSSettings

log = logging.getLogger(__name__)

#: Projection radiography storage classes the node accepts.
STORAGE_SOP_CLASSES: tuple[str, ...] = (
    ComputedRadiographyImageStorage,
    DigitalXRayImageStorageForPresentation,
    DigitalXRayImageStorageForProcessing,
)
#: Transfer syntaxes accepted for them: uncompressed, deflated, JPEG, JPEG-LS, JPEG 2000, RLE.
TRANSFER_SYNTAXES: tuple[str, ...] = (
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    DeflatedExplicitVRLittleEndian,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEGLSNearLossless,
    JPEG2000Lossless,
    JPEG2000,
    RLELossless,
)

#: What reading a damaged dataset may raise (pydicom parses lazily, so also on access).
_UNREADABLE = (
    InvalidDicomError,
    ValueError,
    KeyError,
    AttributeError,
    TypeError,
    EOFError,
    OSError,
    struct.error,
    NotImplementedError,
)

SUCCESS = 0x0000
OUT_OF_RESOURCES = 0xA700
CANNOT_UNDERSTAND = 0xC000

#: A-ASSOCIATE-RJ (result, source, reason): rejected-transient, service-provider
#: (presentation related), local-limit-exceeded
LOCAL_LIMIT_EXCEEDED = (0x02, 0x03, 0x02)


def _status(code: int, comment: str) -> Dataset:
    """A C-STORE response status with an Error Comment (LO: 64 characters, no PHI)."""
    ds = Dataset()
    ds.Status = code
    ds.ErrorComment = comment[:64]
    return ds


def decoded_size(header: Dataset) -> int:
    """Bytes the pixel data decodes to: Rows x Columns x frames x samples x bytes each."""
    rows, cols = int(header.get("Rows") or 0), int(header.get("Columns") or 0)
    frames = int(header.get("NumberOfFrames") or 1)
    samples = int(header.get("SamplesPerPixel") or 1)
    bits = int(header.get("BitsAllocated") or 16)
    return rows * cols * max(frames, 1) * max(samples, 1) * max((bits + 7) // 8, 1)


def _received(event: evt.Event) -> Path | bytes:
    """The received dataset: the chunked-receive file, or the bytes when not chunked."""
    try:
        return Path(event.dataset_path)
    except AttributeError:
        return cast(BytesIO, cast(C_STORE, event.request).DataSet).getvalue()


def server_ssl_context(tls: TLSSettings) -> ssl.SSLContext:
    """TLS context of the listener (client certificates required if configured)."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    assert tls.cert_file is not None and tls.key_file is not None
    ctx.load_cert_chain(tls.cert_file, tls.key_file)
    if tls.ca_file is not None:
        ctx.load_verify_locations(tls.ca_file)
    ctx.verify_mode = ssl.CERT_REQUIRED if tls.require_client_cert else ssl.CERT_OPTIONAL
    return ctx


class StorageSCP:
    """The node's handlers, bound to a :class:`NodeContext`."""

    def __init__(self, ctx: NodeContext, guard: ConnectionGuard | None = None) -> None:
        self.ctx = ctx
        self.guard = guard if guard is not None else ConnectionGuard(
            lambda: ctx.settings.node, self._refused_at_accept
        )
        # one check-and-insert at a time, so two associations sending the same SOP
        # Instance UID at once cannot both queue it
        self._record_lock = threading.Lock()

    # -- association ---------------------------------------------------------------
    def on_requested(self, event: evt.Event) -> None:
        """Reject callers not in ``node.allowed_callers`` (A-ASSOCIATE-RJ)."""
        assoc = event.assoc
        primitive = assoc.requestor.primitive
        if primitive is None:
            raise RuntimeError("EVT_REQUESTED without an A-ASSOCIATE request")
        calling = str(primitive.calling_ae_title).strip()
        address = str(assoc.requestor.address)
        node = self.ctx.settings.node
        if node.admits(calling, address):
            if self.guard.admit(assoc, node.limits.max_associations):
                return
            log.warning(
                "rejecting association from %s at %s: %d associations open "
                "(node.limits.max_associations)",
                calling,
                address,
                node.limits.max_associations,
            )
            assoc.acse.send_reject(*LOCAL_LIMIT_EXCEEDED)
            assoc.kill()
            return
        self.guard.settle(assoc)
        log.warning("rejecting association from %s at %s: not an allowed caller", calling, address)
        self.ctx.db.audit(
            "association_rejected",
            ae_title=calling[:16],
            peer_address=address,
            detail="calling AE title/address not allowed",
        )
        # rejected-permanent, service-user, calling-AE-title-not-recognised
        assoc.acse.send_reject(0x01, 0x01, 0x03)
        assoc.kill()  # as pynetdicom's own rejections do: wait until the A-ASSOCIATE-RJ is sent

    def on_rejected(self, event: evt.Event) -> None:
        """Log, audit and count an association pynetdicom rejected (e.g. wrong called AE)."""
        assoc = event.assoc
        self.guard.settle(assoc)
        primitive = assoc.requestor.primitive
        calling = str(getattr(primitive, "calling_ae_title", "") or "").strip()
        called = str(getattr(primitive, "called_ae_title", "") or "").strip()
        address = str(assoc.requestor.address)
        if called != self.ctx.settings.node.ae_title:
            why = "called AE title not recognised"
        else:
            why = "rejected by the association negotiation"
        log.warning("rejected association from %s at %s: %s", calling[:16], address, why)
        self.ctx.db.audit(
            "association_rejected", ae_title=calling[:16], peer_address=address, detail=why
        )

    def on_closed(self, event: evt.Event) -> None:
        """The connection closed: free its pending or admitted slot."""
        self.guard.release(event.assoc)

    def _refused_at_accept(self, address: str, reason: str) -> None:
        try:
            self.ctx.db.audit("association_rejected", peer_address=address[:64], detail=reason)
        except SQLAlchemyError:
            log.error("cannot audit a refused connection: database unavailable")

    def on_accepted(self, event: evt.Event) -> None:
        """Audit an accepted association."""
        req = event.assoc.requestor
        self.ctx.db.audit(
            "association_accepted",
            ae_title=str(req.ae_title).strip()[:16],
            peer_address=str(req.address),
        )

    # -- DIMSE ---------------------------------------------------------------------
    def on_echo(self, event: evt.Event) -> int:
        """C-ECHO: success."""
        return SUCCESS

    def on_store(self, event: evt.Event) -> int | Dataset:
        """C-STORE: store durably, record, route, queue; answer success only then."""
        req = cast(C_STORE, event.request)
        sop_uid = str(req.AffectedSOPInstanceUID)
        sop_class = str(req.AffectedSOPClassUID)
        calling = str(event.assoc.requestor.ae_title).strip()
        address = str(event.assoc.requestor.address)
        tag = uid_hash(sop_uid)[:12]
        limits = self.ctx.settings.node.limits
        storage = self.ctx.settings.storage
        try:
            path = store_received(
                storage.spool,
                sop_uid,
                event.file_meta,
                _received(event),
                max_decoded_bytes=limits.max_decoded_bytes,
                modes=storage.modes,
            )
        except DecodedSizeError as exc:
            log.warning("instance %s from %s: refused: %s", tag, calling, exc)
            self._record_refusal(calling, address, sop_class, sop_uid, event, str(exc))
            return _status(OUT_OF_RESOURCES, "inflated size exceeds the node's limit")
        except OSError as exc:
            log.error("instance %s: cannot write to spool: %s", tag, exc.strerror)
            return OUT_OF_RESOURCES
        row: dict[str, Any] = {
            "calling_ae_title": calling[:16],
            "peer_address": address,
            "sop_class_uid": sop_class,
            "sop_instance_uid": sop_uid[:64],
            "transfer_syntax_uid": str(event.file_meta.TransferSyntaxUID),
            "spool_path": str(path.resolve()),  # absolute: a worker may run from elsewhere
            "size_bytes": path.stat().st_size,
        }
        status = SUCCESS
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
            if str(header.SOPInstanceUID) != sop_uid:
                raise ValueError("SOP Instance UID in the dataset differs from the request")
            size = decoded_size(header)
            if size > limits.max_decoded_bytes:
                reason = (
                    f"decoded size {size} bytes (Rows x Columns x frames x samples x bytes) "
                    f"exceeds node.limits.max_decoded_bytes {limits.max_decoded_bytes}"
                )
                log.warning("instance %s from %s: refused: %s", tag, calling, reason)
                Path(path).unlink(missing_ok=True)
                self._record_refusal(calling, address, sop_class, sop_uid, event, reason)
                return _status(OUT_OF_RESOURCES, "decoded image size exceeds the node's limit")
            decision = route(header, self.ctx.settings.routing)
        except _UNREADABLE as exc:  # an unreadable dataset: recorded, then refused
            log.warning(
                "instance %s from %s: cannot be read (%s)", tag, calling, type(exc).__name__
            )
            row.update(
                state=InstanceState.REJECTED,
                reason=f"cannot understand: {type(exc).__name__}: {exc}"[:2000],
            )
            status = CANNOT_UNDERSTAND
        else:
            row.update(
                state=InstanceState.QUEUED if decision.measure else InstanceState.IGNORED,
                reason=None if decision.measure else decision.reason[:2000],
                routing_rule=decision.rule,
                kind=decision.kind,
            )
        try:
            with self._record_lock, self.ctx.db.session() as s:
                if row["state"] == InstanceState.QUEUED:
                    first = s.scalars(
                        select(ReceivedInstance)
                        .where(
                            ReceivedInstance.sop_instance_uid == row["sop_instance_uid"],
                            ReceivedInstance.state.in_(
                                (InstanceState.QUEUED, InstanceState.MEASURED)
                            ),
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
                        missing_job = self._undelivered_job(first)
                if row["state"] != InstanceState.QUEUED:
                    Path(path).unlink(missing_ok=True)
                    row["spool_path"] = None
                inst = ReceivedInstance(**row)
                s.add(inst)
                s.flush()
                instance_id = inst.id
                s.add(audit_event(  # same transaction: one commit per instance
                    "instance_received",
                    ae_title=calling[:16],
                    peer_address=address,
                    sop_class_uid=sop_class,
                    sop_instance_uid=sop_uid,
                    detail=f"{row['state']}; instance {instance_id}",
                ))
        except SQLAlchemyError as exc:
            log.error("instance %s: cannot record in the database: %s", tag, type(exc).__name__)
            Path(path).unlink(missing_ok=True)
            return OUT_OF_RESOURCES
        if row["state"] == InstanceState.QUEUED:
            try:
                self.ctx.queue.submit_measurement(instance_id)
            except Exception:  # broker down: the sender must retry, so say failure
                log.exception("instance %s: cannot queue", tag)
                with self.ctx.db.session() as s:
                    inst = s.get_one(ReceivedInstance, instance_id)
                    inst.state = transition(inst.state, InstanceState.FAILED)
                    inst.reason, inst.spool_path = "queue unavailable", None
                Path(path).unlink(missing_ok=True)
                return OUT_OF_RESOURCES
        # the reason names rules, never PHI
        if row["state"] in (InstanceState.IGNORED, InstanceState.DUPLICATE):
            log.info(
                "instance %s from %s: %s (row %d): %s",
                *(tag, calling, row["state"], instance_id, row["reason"]),
            )
        else:
            log.info("instance %s from %s: %s (row %d)", tag, calling, row["state"], instance_id)
        if row["state"] == InstanceState.DUPLICATE and missing_job is not None:
            job_id, names = missing_job
            log.warning(
                "instance %s: sent again, but job %d's result never reached %s; to send it "
                "there: knee-node resend --job %d",
                *(tag, job_id, ", ".join(names), job_id),
            )
        return status

    def _undelivered_job(self, first: ReceivedInstance) -> tuple[int, list[str]] | None:
        """The first instance's finished job and the configured destinations it never
        reached (e.g. added since), or None."""
        jobs = [j for j in first.jobs if j.state in FINISHED_JOB_STATES]
        if not jobs:
            return None
        job = jobs[0]
        reached = {d.destination for d in job.deliveries if d.state == DeliveryState.DELIVERED}
        missing = [
            d.name for d in self.ctx.settings.delivery.destinations if d.name not in reached
        ]
        return (job.id, missing) if missing else None

    def _record_refusal(
        self,
        calling: str,
        address: str,
        sop_class: str,
        sop_uid: str,
        event: evt.Event,
        reason: str,
    ) -> None:
        """Record an instance refused before it was stored (nothing kept in the spool)."""
        try:
            with self.ctx.db.session() as s:
                inst = ReceivedInstance(
                    calling_ae_title=calling[:16],
                    peer_address=address,
                    sop_class_uid=sop_class,
                    sop_instance_uid=sop_uid[:64],
                    transfer_syntax_uid=str(event.file_meta.TransferSyntaxUID),
                    spool_path=None,
                    size_bytes=0,
                    state=InstanceState.REJECTED,
                    reason=f"refused: {reason}"[:2000],
                )
                s.add(inst)
                s.flush()
                s.add(audit_event(
                    "instance_received",
                    ae_title=calling[:16],
                    peer_address=address,
                    sop_class_uid=sop_class,
                    sop_instance_uid=sop_uid,
                    detail=f"rejected; instance {inst.id}",
                ))
        except SQLAlchemyError as exc:
            log.error("cannot record a refused instance: %s", type(exc).__name__)

    def handlers(self) -> list[Any]:
        """pynetdicom event handlers."""
        return [
            (evt.EVT_REQUESTED, self.on_requested),
            (evt.EVT_ACCEPTED, self.on_accepted),
            (evt.EVT_REJECTED, self.on_rejected),
            (evt.EVT_CONN_CLOSE, self.on_closed),
            (evt.EVT_C_ECHO, self.on_echo),
            (evt.EVT_C_STORE, self.on_store),
        ]


class NodeAE(AE):
    """pynetdicom's AE whose servers check callers at accept time (:mod:`.admission`)."""

    guard: ConnectionGuard | None = None

    def make_server(self, *args: Any, **kwargs: Any) -> Any:  # noqa: D102
        kwargs["server_class"] = NodeAssociationServer
        return super().make_server(*args, **kwargs)


def make_ae(ctx: NodeContext, guard: ConnectionGuard | None = None) -> NodeAE:
    """The application entity with the node's limits and presentation contexts.

    pynetdicom's own association limit is set above ``max_associations`` plus the pending
    connections: the node counts admitted callers itself (:class:`ConnectionGuard`), so
    connections that are not (yet) admitted cannot take an allowed caller's slot. The
    ACSE timeout (the wait for the A-ASSOCIATE-RQ) is at most the request deadline.
    """
    node = ctx.settings.node
    ae = NodeAE(ae_title=node.ae_title)
    ae.guard = guard
    limits = node.limits
    ae.maximum_associations = 2 * (limits.max_associations + limits.max_pending_connections)
    ae.acse_timeout = min(node.limits.acse_timeout_s, node.limits.association_request_deadline_s)
    ae.dimse_timeout = node.limits.dimse_timeout_s
    ae.network_timeout = node.limits.network_timeout_s
    ae.maximum_pdu_size = node.limits.max_pdu_size
    ae.require_called_aet = True
    for sop_class in STORAGE_SOP_CLASSES:
        ae.add_supported_context(sop_class, list(TRANSFER_SYNTAXES))
    ae.add_supported_context(Verification, [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
    return ae


def start_listener(
    ctx: NodeContext, port: int | None = None
) -> tuple[AE, ThreadedAssociationServer]:
    """Start the listener in background threads; returns the AE and its server."""
    node = ctx.settings.node
    scp = StorageSCP(ctx)
    ae = make_ae(ctx, scp.guard)
    _config.STORE_RECV_CHUNKED_DATASET = True  # received datasets go to a file, in chunks
    install_pdu_deadline(PduDeadline.from_limits(node.limits))
    ssl_context = server_ssl_context(node.tls) if node.tls.enabled else None
    server = ae.start_server(
        (node.host, node.port if port is None else port),
        block=False,
        evt_handlers=scp.handlers(),
        ssl_context=ssl_context,
    )
    assert server is not None
    scp.guard.start()
    log.info(
        "listening as %s on %s:%d%s",
        node.ae_title,
        node.host,
        server.server_address[1],
        " (TLS)" if ssl_context else "",
    )
    return ae, server
