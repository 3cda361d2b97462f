"""Destinations: where results are sent, one transport per module of this package.

``delivery.destinations`` in the settings is a typed list: each entry's ``type`` (default
``dimse``, so configs from before types load) picks its transport. A transport is one
module here defining ``TRANSPORT = Transport(type, settings model, send)``; it is found by
:func:`transports` (every module of this package is imported once), so the next transport
(DICOMweb STOW-RS) is one file. The settings model derives from :class:`DestinationBase`;
``send(paths, destination, settings)`` sends every file in one go or raises
``DeliveryError``. Keep the modules light at import (the settings import them): import
the network libraries inside ``send``.
"""

from __future__ import annotations

import builtins
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field, field_validator

from dicom_node.errors import ConfigError
from dicom_node.plugins import discover

if TYPE_CHECKING:
    from dicom_node.settings import Settings

#: ``type`` of a destination that names none.
DEFAULT_TYPE = "dimse"
_OBJECT_KIND = re.compile(r"^[A-Z][A-Z0-9]{0,15}$")


class DestinationBase(BaseModel):
    """Fields every destination has; a transport's model adds its own and a ``type``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    objects: tuple[str, ...] | None = Field(
        None,
        description="object kinds sent there, e.g. [SR, SC, GSPS]; default: the study "
        "kind's standard objects (knee-ap: SR and SC)",
    )

    @field_validator("objects")
    @classmethod
    def _objects(cls, v: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if v is None:
            return v
        if not v:
            raise ValueError("must name at least one object kind (or be left out)")
        for kind in v:
            if not _OBJECT_KIND.match(kind):
                raise ValueError(f"{kind!r} is not an object kind (upper case, e.g. SR, GSPS)")
        if len(set(v)) != len(v):
            raise ValueError(f"names an object kind twice: {list(v)}")
        return v

    @property
    def address(self) -> tuple[str, str, int]:
        """(AE title or "", host, port) as the delivery row and the audit record it."""
        raise NotImplementedError

    def describe(self) -> str:
        """Where it is, for the startup line: ``"PACS@10.0.0.5:104, TLS"``."""
        raise NotImplementedError


#: ``send(paths, destination, settings)``: every file to ``destination``, or DeliveryError.
SendFn = Callable[[Sequence[Path], DestinationBase, "Settings"], None]


@dataclass(frozen=True)
class Transport:
    """One way of sending results.

    Parameters
    ----------
    type
        The ``type:`` value of its destinations in config.yaml (``"dimse"``).
    model
        Its destinations' settings model (a :class:`DestinationBase` with ``type``).
    send
        ``send(paths, destination, settings) -> None``; raises DeliveryError.
    """

    type: str
    model: builtins.type[DestinationBase]
    send: SendFn

    def __post_init__(self) -> None:
        if not self.type.isidentifier() or self.type != self.type.lower():
            raise ValueError(f"type must be a lower-case identifier, got {self.type!r}")
        if not (isinstance(self.model, type) and issubclass(self.model, DestinationBase)):
            raise TypeError(f"model must be a DestinationBase subclass, got {self.model!r}")


_LOCK = threading.Lock()
_REGISTRY: dict[str, Transport] = {}


def transports() -> Mapping[str, Transport]:
    """Every transport, by type: each module of this package's ``TRANSPORT``, loaded once."""
    with _LOCK:
        if not _REGISTRY:
            _REGISTRY.update(discover(__name__, __path__, "TRANSPORT", Transport,
                                      lambda t: t.type, "transport"))
        return dict(_REGISTRY)


def send(paths: Sequence[Path], destination: DestinationBase, settings: Settings) -> None:
    """Send ``paths`` to ``destination`` with its transport's handler."""
    kind = str(getattr(destination, "type", DEFAULT_TYPE))
    transport = transports().get(kind)
    if transport is None:
        raise ConfigError(
            f"destination {destination.name!r}: no transport {kind!r}; "
            f"known: {', '.join(sorted(transports()))}"
        )
    transport.send(paths, destination, settings)


__all__ = ["DEFAULT_TYPE", "DestinationBase", "SendFn", "Transport", "send", "transports"]
