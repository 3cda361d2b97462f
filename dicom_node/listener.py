"""The listening AE: C-ECHO and C-STORE of projection radiographs.

Association: the calling AE title and address must match ``node.allowed_callers``, else
A-ASSOCIATE-RJ (rejected permanent, calling AE title not recognised). C-STORE: the
instance, written into the spool folder as it arrives (:mod:`dicom_node.incoming`), is
made durable there (:mod:`dicom_node.spool`: fsync, rename, folder fsync), then routed, recorded
and queued by :func:`dicom_node.intake.take_in` *before* success is answered; any
failure answers a failure status (0xA700 out of resources, 0xC000 cannot understand),
never success. An instance whose SOP Instance UID was already queued
or measured is answered success (it is stored) and recorded as ``duplicate``: no second
job, no second SR.
"""

from __future__ import annotations

import logging
import ssl
from io import BytesIO
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from pydicom import Dataset
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
from sqlalchemy.exc import SQLAlchemyError

from dicom_node.admission import (
    ConnectionGuard,
    NodeAssociationServer,
    PduDeadline,
    install_pdu_deadline,
)
from dicom_node.incoming import (
    SpoolReceive,
    discard_unclaimed,
    incoming_at,
    install_spool_receive,
)
from dicom_node.intake import Answer, Arrival, record_refusal, take_in
from dicom_node.spool import DecodedSizeError, store_incoming, store_received

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

SUCCESS = 0x0000
OUT_OF_RESOURCES = 0xA700
CANNOT_UNDERSTAND = 0xC000
#: The C-STORE status of each intake answer.
_ANSWERS = {
    Answer.STORED: SUCCESS,
    Answer.CANNOT_UNDERSTAND: CANNOT_UNDERSTAND,
    Answer.OUT_OF_RESOURCES: OUT_OF_RESOURCES,
}

#: A-ASSOCIATE-RJ (result, source, reason): rejected-transient, service-provider
#: (presentation related), local-limit-exceeded
LOCAL_LIMIT_EXCEEDED = (0x02, 0x03, 0x02)


def _status(code: int, comment: str) -> Dataset:
    """A C-STORE response status with an Error Comment (LO: 64 characters, no PHI)."""
    ds = Dataset()
    ds.Status = code
    ds.ErrorComment = comment[:64]
    return ds


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
        """The connection closed: free its pending or admitted slot, and delete what an
        aborted C-STORE left half-received in the spool."""
        self.guard.release(event.assoc)
        if discard_unclaimed(event.assoc):
            log.info("connection closed mid C-STORE: the partial dataset was deleted")

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
        """C-STORE: spool (durably), then intake (route, record, dedupe, queue); answer
        success only then."""
        req = cast(C_STORE, event.request)
        arrival = Arrival(
            calling_ae_title=str(event.assoc.requestor.ae_title).strip(),
            peer_address=str(event.assoc.requestor.address),
            sop_class_uid=str(req.AffectedSOPClassUID),
            sop_instance_uid=str(req.AffectedSOPInstanceUID),
            transfer_syntax_uid=str(event.file_meta.TransferSyntaxUID),
        )
        storage = self.ctx.settings.storage
        received = _received(event)
        incoming = incoming_at(received) if isinstance(received, Path) else None
        try:
            if (
                incoming is not None
                and arrival.transfer_syntax_uid != DeflatedExplicitVRLittleEndian
                and incoming.path.parent.resolve() == storage.spool.resolve()
            ):  # written in the spool as it arrived: fsync and rename, no copy
                path = store_incoming(storage.spool, arrival.sop_instance_uid, incoming)
            else:  # deflated (inflated on the way), or received outside the spool: copy
                if incoming is not None and incoming.error is not None:
                    raise incoming.error
                try:
                    path = store_received(
                        storage.spool,
                        arrival.sop_instance_uid,
                        event.file_meta,
                        received,
                        max_decoded_bytes=self.ctx.settings.node.limits.max_decoded_bytes,
                        modes=storage.modes,
                    )
                finally:
                    if incoming is not None:
                        incoming.discard()
        except DecodedSizeError as exc:
            log.warning("instance %s from %s: refused: %s", arrival.tag,
                        arrival.calling_ae_title, exc)
            record_refusal(self.ctx, arrival, str(exc))
            return _status(OUT_OF_RESOURCES, "inflated size exceeds the node's limit")
        except OSError as exc:
            log.error("instance %s: cannot write to spool: %s", arrival.tag, exc.strerror)
            return OUT_OF_RESOURCES
        result = take_in(self.ctx, arrival, path)
        code = _ANSWERS[result.answer]
        return code if result.comment is None else _status(code, result.comment)

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
    """pynetdicom's AE whose servers check callers at accept time (:mod:`.admission`) and
    whose chunked receive writes into the spool (:mod:`.incoming`)."""

    guard: ConnectionGuard | None = None
    spool_receive: SpoolReceive | None = None

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
    ae.spool_receive = SpoolReceive(ctx.settings.storage.spool, ctx.settings.storage.modes)
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
    _config.STORE_RECV_CHUNKED_DATASET = True  # received datasets go to a file, in chunks,
    install_spool_receive()  # in the spool folder of the AE that receives them
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
