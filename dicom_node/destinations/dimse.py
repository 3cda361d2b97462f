"""``type: dimse`` destinations: results sent by C-STORE (pynetdicom as SCU).

The default transport: a destination without ``type`` is one of these.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import Field, field_validator

from dicom_node.destinations import DestinationBase, Transport
from dicom_node.errors import DeliveryError

if TYPE_CHECKING:
    import ssl

    from pydicom.dataset import Dataset
    from pynetdicom.association import Association

    from dicom_node.settings import LimitSettings, Settings, TLSSettings

log = logging.getLogger(__name__)


class DimseDestination(DestinationBase):
    """A peer (PACS, viewer) the result objects are sent to by C-STORE."""

    type: Literal["dimse"] = "dimse"
    ae_title: str
    host: str
    port: int = Field(ge=1, le=65535)
    tls: bool = False

    @field_validator("ae_title")
    @classmethod
    def _ae(cls, v: str) -> str:
        from dicom_node.settings import _check_ae_title

        return _check_ae_title(v)

    @property
    def address(self) -> tuple[str, str, int]:
        """(AE title, host, port)."""
        return self.ae_title, self.host, self.port

    def describe(self) -> str:
        """``"PACS@10.0.0.5:104, TLS"``."""
        return f"{self.ae_title}@{self.host}:{self.port}{', TLS' if self.tls else ''}"


#: What the settings called a destination before there were types.
Destination = DimseDestination


def client_ssl_context(tls: TLSSettings) -> ssl.SSLContext:
    """TLS context for associations the node opens (verifies the peer with ``ca_file``)."""
    import ssl

    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=tls.ca_file)
    ctx.check_hostname = False
    if tls.cert_file is not None and tls.key_file is not None:
        ctx.load_cert_chain(tls.cert_file, tls.key_file)
    return ctx


def send(paths: Sequence[Path], destination: DestinationBase, settings: Settings) -> None:
    """The transport's handler: :func:`send_files` with the node's settings."""
    if not isinstance(destination, DimseDestination):
        raise TypeError(f"destination must be a DimseDestination, got {type(destination).__name__}")
    send_files(
        paths,
        destination,
        calling_ae_title=settings.delivery.calling_ae_title or settings.node.ae_title,
        limits=settings.node.limits,
        tls=settings.node.tls,
    )


def send_files(
    paths: Sequence[Path],
    destination: DimseDestination,
    *,
    calling_ae_title: str,
    limits: LimitSettings,
    tls: TLSSettings | None = None,
) -> None:
    """C-STORE every file of ``paths`` to ``destination`` in one association.

    Raises
    ------
    DeliveryError
        If the association is refused or any C-STORE does not answer success (0x0000)
        or a warning (0xB000, 0xB007, 0xB006).
    """
    from pydicom import dcmread
    from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
    from pynetdicom import AE

    if not paths:
        raise ValueError("paths must name at least one file")
    datasets = [dcmread(p) for p in paths]
    ae = AE(ae_title=calling_ae_title)
    ae.acse_timeout = limits.acse_timeout_s
    ae.dimse_timeout = limits.dimse_timeout_s
    ae.network_timeout = limits.network_timeout_s
    ae.maximum_pdu_size = limits.max_pdu_size
    for sop_class in sorted({str(ds.SOPClassUID) for ds in datasets}):
        ae.add_requested_context(sop_class, [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
        for syntax in sorted(_compressed_syntaxes(datasets, sop_class)):  # e.g. the SC's
            ae.add_requested_context(sop_class, [syntax])
    tls_args = None
    if destination.tls:
        if tls is None:
            raise DeliveryError(f"destination {destination.name} wants TLS but no tls settings")
        tls_args = (client_ssl_context(tls), destination.host)
    assoc = ae.associate(
        destination.host, destination.port, ae_title=destination.ae_title, tls_args=tls_args
    )
    if not assoc.is_established:
        why = "rejected" if assoc.is_rejected else "aborted or unreachable"
        raise DeliveryError(
            f"association to {destination.name} ({destination.ae_title}@"
            f"{destination.host}:{destination.port}) {why}"
        )
    try:
        for ds in datasets:
            prepare_c_store(assoc)
            status = assoc.send_c_store(_as_accepted(assoc, ds))
            code = getattr(status, "Status", None)
            if code not in (0x0000, 0xB000, 0xB006, 0xB007):
                raise DeliveryError(
                    f"{destination.name} answered C-STORE status "
                    f"{'none (timeout/abort)' if code is None else hex(code)}"
                )
    finally:
        _unpark_reactor(assoc)  # if a send failed before pynetdicom woke it
        if assoc.is_established:
            assoc.release()
    log.info("sent %d object(s) to %s", len(datasets), destination.name)


#: Seconds to wait for pynetdicom's reactor thread to park before a C-STORE.
PARK_TIMEOUT_S = 1.0


def prepare_c_store(assoc: Association) -> None:
    """Ready ``assoc`` for its next ``send_c_store``: ``TCP_NODELAY`` on while pynetdicom's
    reactor is provably parked (:func:`_park_reactor`), else Nagle left on (slower, and
    the race only rarer). Call it before each C-STORE."""
    _set_no_delay(assoc, _park_reactor(assoc))


def _park_reactor(assoc: Association) -> bool:
    """Hold pynetdicom's reactor thread in its checkpoint until the next C-STORE is answered.

    pynetdicom 3.0's ``send_c_store`` pauses the association's reactor by clearing an event
    and waiting for a flag the reactor sets *before* it waits on that event. A reactor that
    has just passed the event but not yet cleared the flag runs one more turn, and if the
    C-STORE response is already queued it takes it and drops it ("Received unexpected C-STORE
    service message"); the send then waits the whole DIMSE timeout. Nagle's delay on the
    response made that rare, not impossible. Here the event is cleared and the call returns
    only once the reactor thread is blocked *inside* the event's wait (it is among the
    event's condition waiters), from where only ``send_c_store``'s own ``set()`` after the
    response wakes it.

    Returns
    -------
    bool
        ``True`` if the reactor is parked; ``False`` if this pynetdicom has no such event
        or the reactor did not park within :data:`PARK_TIMEOUT_S` (the caller then leaves
        Nagle on).
    """
    import time

    checkpoint = getattr(assoc, "_reactor_checkpoint", None)
    waiters = getattr(getattr(checkpoint, "_cond", None), "_waiters", None)
    if checkpoint is None or waiters is None:
        return False
    checkpoint.clear()
    deadline = time.monotonic() + PARK_TIMEOUT_S
    while not waiters:
        if not assoc.is_alive() or time.monotonic() > deadline:
            log.debug("pynetdicom's reactor did not park: leaving Nagle on")
            return False
        time.sleep(0.0001)
    return True


def _unpark_reactor(assoc: Association) -> None:
    """Let the reactor run again (pynetdicom's ``release`` pauses it itself)."""
    checkpoint = getattr(assoc, "_reactor_checkpoint", None)
    if checkpoint is not None:
        checkpoint.set()


def _set_no_delay(assoc: Association, on: bool) -> None:
    """Set ``TCP_NODELAY`` on the association's socket (``on``) or clear it (Nagle on)."""
    import socket

    transport = getattr(assoc.dul, "socket", None)
    sock = getattr(transport, "socket", None)
    if sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1 if on else 0)


def _compressed_syntaxes(datasets: Sequence[Dataset], sop_class: str) -> set[str]:
    """Compressed transfer syntaxes of the ``sop_class`` datasets (proposed as they are)."""
    return {
        str(ds.file_meta.TransferSyntaxUID)
        for ds in datasets
        if str(ds.SOPClassUID) == sop_class and ds.file_meta.TransferSyntaxUID.is_compressed
    }


def _as_accepted(assoc: Association, ds: Dataset) -> Dataset:
    """``ds`` as is if the peer accepted its transfer syntax, else decompressed (every
    peer accepts Explicit or Implicit VR Little Endian; the SC is lossless-compressed by
    default, and not every PACS takes JPEG 2000)."""
    syntax = ds.file_meta.TransferSyntaxUID
    if not syntax.is_compressed:
        return ds
    accepted = {
        (str(cx.abstract_syntax), str(ts))
        for cx in assoc.accepted_contexts
        for ts in cx.transfer_syntax
    }
    if (str(ds.SOPClassUID), str(syntax)) in accepted:
        return ds
    log.info("%s does not accept %s: sending it uncompressed", assoc.acceptor.ae_title, syntax.name)
    # the same object keeps its SOP Instance UID (decoding changes no pixel): the PACS gets
    # the UID the output row records (pydicom would otherwise make a new one per attempt)
    ds.decompress(generate_instance_uid=False)
    return ds


TRANSPORT = Transport("dimse", DimseDestination, send)
