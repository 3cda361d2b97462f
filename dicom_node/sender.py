"""Sending results to a destination by C-STORE (pynetdicom as SCU)."""

from __future__ import annotations

import logging
import ssl
from collections.abc import Sequence
from pathlib import Path

from pydicom import dcmread
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import AE

from dicom_node.errors import DeliveryError
from dicom_node.settings import Destination, LimitSettings, TLSSettings

log = logging.getLogger(__name__)


def client_ssl_context(tls: TLSSettings) -> ssl.SSLContext:
    """TLS context for associations the node opens (verifies the peer with ``ca_file``)."""
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=tls.ca_file)
    ctx.check_hostname = False
    if tls.cert_file is not None and tls.key_file is not None:
        ctx.load_cert_chain(tls.cert_file, tls.key_file)
    return ctx


def send_files(
    paths: Sequence[Path],
    destination: Destination,
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
            status = assoc.send_c_store(ds)
            code = getattr(status, "Status", None)
            if code not in (0x0000, 0xB000, 0xB006, 0xB007):
                raise DeliveryError(
                    f"{destination.name} answered C-STORE status "
                    f"{'none (timeout/abort)' if code is None else hex(code)}"
                )
    finally:
        if assoc.is_established:
            assoc.release()
    log.info("sent %d object(s) to %s", len(datasets), destination.name)
