"""Admission of callers: who may hold a connection, for how long, before being admitted.

pynetdicom counts every open connection against ``maximum_associations`` and checks the
calling AE title only once the whole A-ASSOCIATE-RQ has arrived, and its timeouts restart
on every byte. Ten sockets trickling one byte every few seconds could therefore hold
every slot and lock the allowed PACS out. This module closes that gap in three places:

* **At accept**, before any PDU (:meth:`ConnectionGuard.on_connect`): a peer whose
  address is in none of ``node.allowed_callers``' networks is closed at once (logged,
  audited as ``association_rejected``, counted). Connections not yet admitted are
  *pending*; at most ``limits.max_pending_connections`` are kept, and when a new one
  arrives with the pool full the oldest pending connection is closed, so a trickle
  cannot keep a quickly-completing caller out.
* **A total deadline** for the A-ASSOCIATE-RQ: a watchdog closes any pending connection
  older than ``limits.association_request_deadline_s``, however slowly it sends.
* **A deadline per PDU** (:func:`install_pdu_deadline`): once a PDU has begun it must
  arrive within ``pdu_deadline_s + length / min_receive_rate_bytes_s``, and no PDU may
  claim more than the PDU size the node accepts, so a P-DATA trickle ends too.

Admitted associations are counted apart (:meth:`ConnectionGuard.admit`): only callers
that passed the allowed-caller check take one of ``limits.max_associations``.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pynetdicom import transport

if TYPE_CHECKING:
    from dicom_node.settings import LimitSettings, NodeSettings

log = logging.getLogger(__name__)

#: the smallest PDU size cap ever applied (an A-ASSOCIATE-RQ/AC is far smaller)
MIN_PDU_CAP = 65536


@dataclass
class _Pending:
    sock: Any
    address: str
    opened: float
    closed: bool = False


@dataclass
class ConnectionGuard:
    """Bookkeeping of pending and admitted connections of one listener.

    Parameters
    ----------
    node
        Returns the current node settings (re-read so a reload applies).
    on_refused
        Called with ``(address, reason)`` for each connection refused at accept time
        (audit and count it); must be quick.
    """

    node: Callable[[], NodeSettings]
    on_refused: Callable[[str, str], None] = lambda address, reason: None
    _pending: dict[int, _Pending] = field(default_factory=dict)
    _admitted: list[Any] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)
    _watchdog: threading.Thread | None = None

    # -- accept time ----------------------------------------------------------------
    def on_connect(self, sock: Any, client_address: Any) -> bool:
        """socketserver's ``verify_request``: keep the connection (True) or close it."""
        address = str(client_address[0]) if isinstance(client_address, tuple) else str(
            client_address
        )
        node = self.node()
        if not admits_address(node, address):
            log.warning("refused a connection from %s: address not allowed", address)
            self.on_refused(address, "address not in node.allowed_callers")
            return False
        evict: list[_Pending] = []
        with self._lock:
            live = [p for p in self._pending.values() if not p.closed]
            live.sort(key=lambda p: p.opened)
            while len(live) >= node.limits.max_pending_connections:
                oldest = live.pop(0)
                oldest.closed = True
                evict.append(oldest)
            self._pending[id(sock)] = _Pending(sock, address, time.monotonic())
        for p in evict:
            log.warning(
                "closed a pending connection from %s: %d connections awaiting admission "
                "(node.limits.max_pending_connections)",
                p.address,
                node.limits.max_pending_connections,
            )
            _shut(p.sock)
        return True

    # -- after the A-ASSOCIATE-RQ ----------------------------------------------------
    def settle(self, assoc: Any) -> None:
        """The request of ``assoc`` has arrived (admitted or not): it is no longer pending."""
        with self._lock:
            self._pending.pop(id(_raw_socket(assoc)), None)

    def admit(self, assoc: Any, max_associations: int) -> bool:
        """Take an association slot for an allowed caller; False when all are taken."""
        with self._lock:
            self._pending.pop(id(_raw_socket(assoc)), None)
            self._admitted = [a for a in self._admitted if a.is_alive() and a is not assoc]
            if len(self._admitted) >= max_associations:
                return False
            self._admitted.append(assoc)
            return True

    def release(self, assoc: Any) -> None:
        """``assoc`` has closed: free its slot (pending or admitted)."""
        with self._lock:
            self._pending.pop(id(_raw_socket(assoc)), None)
            self._admitted = [a for a in self._admitted if a is not assoc and a.is_alive()]

    @property
    def counts(self) -> tuple[int, int]:
        """(pending, admitted) connections now."""
        with self._lock:
            pending = sum(1 for p in self._pending.values() if not p.closed)
            admitted = sum(1 for a in self._admitted if a.is_alive())
        return pending, admitted

    # -- the deadline ---------------------------------------------------------------
    def start(self, interval_s: float = 0.25) -> ConnectionGuard:
        """Start the watchdog closing pending connections past their deadline."""
        self._watchdog = threading.Thread(
            target=self._watch, args=(interval_s,), name="knee-node-admission", daemon=True
        )
        self._watchdog.start()
        return self

    def stop(self) -> None:
        """Stop the watchdog."""
        self._stop.set()
        if self._watchdog is not None:
            self._watchdog.join(timeout=5)

    def _watch(self, interval_s: float) -> None:
        while not self._stop.wait(interval_s):
            self.close_overdue()

    def close_overdue(self, now: float | None = None) -> int:
        """Close pending connections older than the A-ASSOCIATE-RQ deadline; how many."""
        deadline = self.node().limits.association_request_deadline_s
        now = time.monotonic() if now is None else now
        overdue: list[_Pending] = []
        with self._lock:
            for key, p in list(self._pending.items()):
                if p.closed:
                    if now - p.opened > 4 * deadline:  # long gone: forget it
                        del self._pending[key]
                    continue
                if now - p.opened > deadline:
                    p.closed = True
                    overdue.append(p)
        for p in overdue:
            log.warning(
                "closed a connection from %s: no complete A-ASSOCIATE-RQ within %.0f s "
                "(node.limits.association_request_deadline_s)",
                p.address,
                deadline,
            )
            _shut(p.sock)
        return len(overdue)


def admits_address(node: NodeSettings, address: str) -> bool:
    """True if ``address`` is in the networks of any entry of ``node.allowed_callers``."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(
        ip in ipaddress.ip_network(net, strict=False)
        for caller in node.allowed_callers
        for net in caller.addresses
    )


def _raw_socket(assoc: Any) -> Any:
    dul = getattr(assoc, "dul", None)
    wrapper = getattr(dul, "socket", None)
    return getattr(wrapper, "socket", None)


def _shut(sock: Any) -> None:
    """Wake whatever thread is blocked reading ``sock`` and close the connection."""
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


# -- per-PDU deadline ---------------------------------------------------------------
_original_recv = transport.AssociationSocket.recv


@dataclass(frozen=True)
class PduDeadline:
    """Time and size bounds on receiving one PDU (see :func:`install_pdu_deadline`)."""

    base_s: float
    min_rate: int
    max_bytes: int

    @classmethod
    def from_limits(cls, limits: LimitSettings) -> PduDeadline:
        cap = max(limits.max_pdu_size, MIN_PDU_CAP) + 6 if limits.max_pdu_size else 1 << 32
        return cls(limits.pdu_deadline_s, limits.min_receive_rate_bytes_s, cap)

    def seconds(self, nr_bytes: int) -> float:
        """The time allowed to receive ``nr_bytes``."""
        return self.base_s + nr_bytes / self.min_rate


_deadline: PduDeadline | None = None


def install_pdu_deadline(deadline: PduDeadline) -> None:
    """Bound every pynetdicom PDU read in this process by ``deadline``.

    pynetdicom reads a PDU with a blocking loop of ``recv`` calls, each allowed the full
    network timeout, so a peer sending one byte at a time never times out. After this,
    the whole read must finish within ``deadline.seconds(length)``, and a PDU claiming
    more than ``deadline.max_bytes`` is refused; either ends the association (pynetdicom
    treats it as a closed connection). Process-wide: the last listener started sets it.
    """
    global _deadline
    _deadline = deadline
    transport.AssociationSocket.recv = _recv_with_deadline  # type: ignore[method-assign]


def _recv_with_deadline(self: Any, nr_bytes: int) -> bytearray:
    limit = _deadline
    if limit is None:
        return _original_recv(self, nr_bytes)
    if nr_bytes > limit.max_bytes:
        raise TimeoutError(f"PDU of {nr_bytes} bytes exceeds the {limit.max_bytes} accepted")
    sock = self.socket
    end = time.monotonic() + limit.seconds(nr_bytes)
    previous = sock.gettimeout()
    buf = bytearray()
    try:
        while len(buf) < nr_bytes:
            remaining = end - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(
                    f"PDU not received within {limit.seconds(nr_bytes):.1f} s "
                    f"({len(buf)} of {nr_bytes} bytes)"
                )
            sock.settimeout(remaining if previous is None else min(remaining, previous))
            chunk = sock.recv(min(65536, nr_bytes - len(buf)))
            if not chunk:
                return buf
            buf.extend(chunk)
    finally:
        with contextlib.suppress(OSError):
            sock.settimeout(previous)
    return buf


class NodeAssociationServer(transport.ThreadedAssociationServer):
    """pynetdicom's threaded server with the :class:`ConnectionGuard` at accept time."""

    guard: ConnectionGuard | None = None

    def verify_request(self, request: Any, client_address: Any) -> bool:  # noqa: D102
        guard = getattr(self.ae, "guard", None)
        return True if guard is None else guard.on_connect(request, client_address)
