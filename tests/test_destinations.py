"""Typed destinations: ``type: dimse`` by default, a handler registry by type."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from dicom_node import destinations
from dicom_node.destinations import DestinationBase, Transport
from dicom_node.destinations.dimse import DimseDestination
from dicom_node.errors import ConfigError
from dicom_node.settings import Settings
from dicom_node.startup import destinations_text

PACS = {"name": "pacs", "ae_title": "PACS", "host": "10.0.0.5", "port": 104}


def test_a_destination_without_type_is_dimse_as_before() -> None:
    s = Settings.model_validate({"delivery": {"destinations": [PACS]}})
    [d] = s.delivery.destinations
    assert isinstance(d, DimseDestination) and d.type == "dimse"
    assert d.address == ("PACS", "10.0.0.5", 104)
    assert "pacs (PACS@10.0.0.5:104)" in destinations_text(s)
    typed = Settings.model_validate(
        {"delivery": {"destinations": [PACS | {"type": "dimse", "tls": True}]}}
    )
    assert typed.delivery.destinations[0].describe() == "PACS@10.0.0.5:104, TLS"


def test_an_unknown_type_or_a_bad_field_is_named() -> None:
    with pytest.raises(ValidationError, match="'pigeon'.*expected tags: 'dicomweb', 'dimse'"):
        Settings.model_validate({"delivery": {"destinations": [PACS | {"type": "pigeon"}]}})
    with pytest.raises(ValidationError, match="dicomweb.url\n  Field required"):
        Settings.model_validate({"delivery": {"destinations": [PACS | {"type": "dicomweb"}]}})
    with pytest.raises(ValidationError, match="AE title must be"):
        Settings.model_validate(
            {"delivery": {"destinations": [PACS | {"ae_title": "A\\B"}]}}
        )


def test_send_dispatches_on_the_type(monkeypatch: pytest.MonkeyPatch) -> None:
    sent: list[tuple[list[Path], str]] = []

    def fake_send(paths: object, dest: DestinationBase, settings: Settings) -> None:
        sent.append((list(paths), dest.name))  # type: ignore[call-overload]

    registry = dict(destinations.transports())
    assert set(registry) == {"dicomweb", "dimse"}
    monkeypatch.setitem(
        destinations._REGISTRY, "dimse", Transport("dimse", DimseDestination, fake_send)
    )
    destinations.send([Path("a.dcm")], DimseDestination(**PACS), Settings())
    assert sent == [([Path("a.dcm")], "pacs")]


def test_the_transport_record_checks_its_fields() -> None:
    with pytest.raises(ValueError, match="type must be a lower-case identifier, got 'DICOM web'"):
        Transport("DICOM web", DimseDestination, lambda p, d, s: None)
    with pytest.raises(TypeError, match="model must be a DestinationBase subclass"):
        Transport("web", dict, lambda p, d, s: None)  # type: ignore[arg-type]


def test_a_destination_of_no_known_transport_is_refused() -> None:
    class Odd(DestinationBase):
        type: str = "carrier-pigeon"

    with pytest.raises(ConfigError, match="no transport 'carrier-pigeon'; known: dicomweb, dimse"):
        destinations.send([Path("a.dcm")], Odd(name="odd"), Settings())
