"""What ``knee-node serve`` says when it starts, or why it cannot.

:func:`startup_line` names the AE, the address, who may call and where results go,
never a secret (no password, no broker or database URL). :func:`bind_error` turns the
operating system's refusal to listen into one line naming the port and what to do.
"""

from __future__ import annotations

import errno

from dicom_node.settings import Settings


def callers_text(settings: Settings) -> str:
    """Who may open an association: ``"any AE from 127.0.0.1/32, ::1/128"``..."""
    parts = []
    for c in settings.node.allowed_callers:
        who = "any AE" if c.ae_title == "*" else c.ae_title
        parts.append(f"{who} from {', '.join(c.addresses) or 'nowhere'}")
    return "; ".join(parts) or "nobody"


def destinations_text(settings: Settings) -> str:
    """Where results go: ``"pacs (PACS@10.0.0.5:104, TLS)"``..., or that they stay local."""
    dests = settings.delivery.destinations
    if not dests:
        return f"none (results stay in {settings.storage.results.resolve()})"
    return ", ".join(
        f"{d.name} ({d.describe()}{'; ' + ' '.join(d.objects) if d.objects else ''})"
        for d in dests
    )


def startup_line(settings: Settings, port: int) -> str:
    """The line ``serve`` prints once listening (no secrets: no URL, no password)."""
    n = settings.node
    return (
        f"knee-node listening as {n.ae_title} on {n.host}:{port}{' (TLS)' if n.tls.enabled else ''}"
        f"; accepts {callers_text(settings)}; sends results to {destinations_text(settings)}"
        f"; queue {settings.queue.backend}; data in {settings.storage.data_dir.resolve()}"
        "; Ctrl-C stops"
    )


def bind_error(exc: OSError, host: str, port: int, what: str = "DICOM") -> str | None:
    """One line for an ``OSError`` raised while binding ``host:port``; None if not a bind error.

    Parameters
    ----------
    exc
        What binding raised.
    host, port
        The address the node tried to listen on.
    what
        Which listener ("DICOM" or "metrics"), to name the setting to change.
    """
    key = "node.port, or serve --port" if what == "DICOM" else "metrics.port"
    if exc.errno == errno.EADDRINUSE:
        return (
            f"error: cannot listen for {what} on {host}:{port}: the port is already in use "
            f"(another knee-node or DICOM service?); stop it, or choose another port ({key})"
        )
    if exc.errno == errno.EACCES:
        return (
            f"error: cannot listen for {what} on {host}:{port}: permission denied (ports below "
            f"1024 need privileges); choose a port above 1024 ({key})"
        )
    if exc.errno == errno.EADDRNOTAVAIL:
        return (
            f"error: cannot listen for {what} on {host}:{port}: {host} is not an address of "
            "this machine; fix node.host"
        )
    return None
