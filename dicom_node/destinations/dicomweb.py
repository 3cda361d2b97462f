"""``type: dicomweb`` destinations: results sent by DICOMweb STOW-RS (``dicomweb-client``).

Every object of a delivery goes in one ``POST {url}/studies`` (``multipart/related;
type="application/dicom"``, encoded by ``dicomweb_client.DICOMwebClient.store_instances``).
The client's own retries are switched off: a failure raises :class:`DeliveryError` with a
readable reason (the HTTP status, the server's Failure Reasons), and the node retries it
with the same backoff and gives up after the same ``delivery.max_attempts`` as for DIMSE.

Credentials never sit in the config: ``auth_env`` names an environment variable holding
``user:password`` (``auth: basic``) or a token (``auth: bearer``), read at each send.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from dicom_node.destinations import DestinationBase, Transport
from dicom_node.errors import DeliveryError

if TYPE_CHECKING:
    import requests
    from pydicom.dataset import Dataset

    from dicom_node.settings import Settings

log = logging.getLogger(__name__)

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

#: Failure Reason (0008,1197) values of PS3.18 / PS3.4 and what they mean.
FAILURE_REASONS = {
    0x0110: "processing failure",
    0x0112: "no such object instance",
    0x0122: "SOP class not supported",
    0x0124: "not authorized",
    0xA700: "out of resources",
    0xA900: "data set does not match SOP class",
    0xC000: "cannot understand",
    0xC122: "referenced transfer syntax not supported",
    0xC123: "instance already exists with different content",
}


class DicomwebDestination(DestinationBase):
    """A DICOMweb service (PACS, VNA, Orthanc's plugin) the results are sent to by STOW-RS.

    Parameters
    ----------
    url
        The service root, e.g. ``http://pacs:8042/dicom-web`` (``/studies`` is appended).
        It must not hold a user name or password.
    timeout_s
        Seconds to wait for the connection and for the answer.
    auth
        ``none``, ``basic`` (``auth_env`` holds ``user:password``) or ``bearer`` (a token).
    auth_env
        Name of the environment variable holding the credentials (required unless
        ``auth: none``).
    tls_verify
        Verify the server's certificate for ``https`` URLs.
    ca_file
        CA bundle to verify it with (default: the system's).
    """

    type: Literal["dicomweb"] = "dicomweb"
    url: str
    timeout_s: float = Field(30.0, gt=0, le=3600)
    auth: Literal["none", "basic", "bearer"] = "none"
    auth_env: str | None = None
    tls_verify: bool = True
    ca_file: Path | None = None

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        parts = urlsplit(v)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"must be an http:// or https:// URL with a host, got {v!r}")
        if parts.username is not None or parts.password is not None:
            raise ValueError("must not hold a user name or password (use auth_env)")
        if parts.query or parts.fragment:
            raise ValueError("must have no query or fragment")
        try:
            parts.port  # noqa: B018 -- raises on a bad port
        except ValueError as exc:
            raise ValueError(f"bad port: {exc}") from None
        return v.rstrip("/")

    @field_validator("auth_env")
    @classmethod
    def _env(cls, v: str | None) -> str | None:
        if v is not None and not _ENV_NAME.match(v):
            raise ValueError(f"must be an environment variable name, got {v!r}")
        return v

    @field_validator("ca_file")
    @classmethod
    def _ca(cls, v: Path | None) -> Path | None:
        if v is not None and not v.is_file():
            raise ValueError(f"no such file: {v}")
        return v

    @model_validator(mode="after")
    def _auth_env_given(self) -> DicomwebDestination:
        if self.auth != "none" and self.auth_env is None:
            raise ValueError(f"auth_env must name the environment variable for auth {self.auth}")
        return self

    @property
    def address(self) -> tuple[str, str, int]:
        """("", host, port) of the URL (port 80/443 when it names none)."""
        parts = urlsplit(self.url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        return "", str(parts.hostname), port

    def describe(self) -> str:
        """``"STOW-RS http://pacs:8042/dicom-web, basic auth from $PACS_AUTH"``."""
        extra = "" if self.auth == "none" else f", {self.auth} auth from ${self.auth_env}"
        if self.url.startswith("https") and not self.tls_verify:
            extra += ", TLS not verified"
        return f"STOW-RS {self.url}{extra}"


def _session(destination: DicomwebDestination) -> requests.Session:
    """A requests session with the destination's credentials and TLS verification."""
    import requests

    session = requests.Session()
    session.verify = str(destination.ca_file) if destination.ca_file else destination.tls_verify
    if destination.auth == "none":
        return session
    secret = os.environ.get(str(destination.auth_env), "")
    if not secret:
        raise DeliveryError(
            f"destination {destination.name}: environment variable {destination.auth_env} "
            f"(its {destination.auth} credentials) is not set"
        )
    if destination.auth == "basic":
        user, sep, password = secret.partition(":")
        if not sep:
            raise DeliveryError(
                f"destination {destination.name}: {destination.auth_env} must hold "
                "'user:password' for basic auth"
            )
        session.auth = (user, password)
    else:
        session.headers["Authorization"] = f"Bearer {secret}"
    return session


def failure_reasons(answer: Dataset) -> list[str]:
    """The Failed SOP Sequence of a STOW-RS answer as ``"<uid>: 0xA700 (out of resources)"``."""
    out = []
    for item in answer.get("FailedSOPSequence", []):
        code = item.get("FailureReason")
        meaning = FAILURE_REASONS.get(int(code), "") if code is not None else ""
        text = "no reason given" if code is None else f"0x{int(code):04X}"
        out.append(f"{item.get('ReferencedSOPInstanceUID', '?')}: {text}"
                   + (f" ({meaning})" if meaning else ""))
    return out


def _answer_of(response: requests.Response | None) -> str:
    """The readable part of an error answer: its Failure Reasons or the start of its body."""
    if response is None:
        return ""
    from pydicom import Dataset

    kind = response.headers.get("Content-Type", "")
    if "json" in kind:
        try:
            reasons = failure_reasons(Dataset.from_json(response.json()))
        except (ValueError, TypeError, KeyError, AttributeError):
            reasons = []
        if reasons:
            return "; failed: " + "; ".join(reasons)
    body = response.text.strip().replace("\n", " ")[:300] if response.content else ""
    return f": {body}" if body else ""


def send(paths: Sequence[Path], destination: DestinationBase, settings: Settings) -> None:
    """The transport's handler: :func:`store` (the node's settings are not needed)."""
    if not isinstance(destination, DicomwebDestination):
        raise TypeError(
            f"destination must be a DicomwebDestination, got {type(destination).__name__}"
        )
    store(paths, destination)


def store(paths: Sequence[Path], destination: DicomwebDestination) -> None:
    """STOW-RS every file of ``paths`` to ``destination`` in one request.

    Raises
    ------
    DeliveryError
        If the server cannot be reached or does not answer in ``timeout_s``, answers an
        HTTP error status, or lists any instance in its Failed SOP Sequence.
    """
    import requests
    from dicomweb_client import DICOMwebClient
    from pydicom import dcmread

    if not paths:
        raise ValueError("paths must name at least one file")
    datasets = [dcmread(p) for p in paths]
    where = f"{destination.name} ({destination.url})"
    session = _session(destination)
    try:
        client = DICOMwebClient(destination.url, session=session, timeout=destination.timeout_s)
        client.set_http_retry_params(retry=False)  # the node retries, with its backoff
        answer = client.store_instances(datasets)
    except requests.HTTPError as exc:
        rsp = exc.response
        status = "?" if rsp is None else f"{rsp.status_code} {rsp.reason}"
        raise DeliveryError(f"{where} answered HTTP {status}{_answer_of(rsp)}") from None
    except requests.Timeout:
        raise DeliveryError(f"{where} did not answer in {destination.timeout_s:g} s") from None
    except requests.ConnectionError as exc:
        raise DeliveryError(f"{where} is unreachable: {_short(exc)}") from None
    except requests.RequestException as exc:
        raise DeliveryError(f"{where}: {type(exc).__name__}: {_short(exc)}") from None
    finally:
        session.close()
    failed = failure_reasons(answer)
    if failed:
        raise DeliveryError(
            f"{where} refused {len(failed)} of {len(datasets)} object(s): {'; '.join(failed)}"
        )
    log.info("sent %d object(s) to %s by STOW-RS", len(datasets), destination.name)


def _short(exc: BaseException) -> str:
    """The innermost reason of a requests error ("Connection refused"), not its repr chain."""
    text = str(exc)
    m = re.search(r"\[Errno -?\d+\] ([^'\")]+)", text)
    if m:
        return m.group(1).strip()
    return text[:300]


TRANSPORT = Transport("dicomweb", DicomwebDestination, send)
