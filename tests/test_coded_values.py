"""Coded result values (the CPAK class): the record, the rows (migration 0004), status."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import inspect

from dicom_node import kinds
from dicom_node.commands.status import results_text
from dicom_node.db import Job, ReceivedInstance, migrate
from dicom_node.db.session import Database
from dicom_node.kinds import NO_UNIT, Code, MeasuredItem, OutputWriter, ResultValue, StudyKind
from dicom_node.kinds.knee_ap import overlay_image
from dicom_node.pipeline import _record_items, values_text

CPAK_II = Code("CPAK-II", "99KNEENODE", "CPAK type II")


def test_a_coded_value_has_a_code_and_no_number() -> None:
    v = ResultValue.coded("CPAK", CPAK_II)
    assert (v.value, v.unit, v.code) == (None, NO_UNIT, CPAK_II)
    with pytest.raises(ValueError, match="value must be None for coded value 'CPAK'"):
        ResultValue("CPAK", 2.0, NO_UNIT, code=CPAK_II)
    with pytest.raises(ValueError, match="unit must be '' for coded value 'CPAK', got 'deg'"):
        ResultValue("CPAK", None, "deg", code=CPAK_II)
    with pytest.raises(TypeError, match="code must be a Code"):
        ResultValue("CPAK", None, NO_UNIT, code=("II", "99X", "II"))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unit must be a non-empty UCUM unit"):
        ResultValue("HKA", 1.0, NO_UNIT)
    with pytest.raises(ValueError, match="value must be a non-empty string of at most 16"):
        Code("X" * 17, "99KNEENODE", "too long")
    with pytest.raises(ValueError, match="meaning must be"):
        Code("II", "99KNEENODE", "")
    assert values_text([ResultValue("HKA", -2.5, "deg"), v]) == "HKA -2.5 deg, CPAK CPAK type II"


def test_coded_values_round_trip_and_status_prints_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'node.db'}"
    migrate.upgrade(url)
    db = Database(url)
    try:
        columns = {c["name"] for c in inspect(db.engine).get_columns("result_values")}
        assert {"code_value", "code_scheme", "code_meaning"} <= columns
        kind = StudyKind(
            name="test-coded", description="for the test",
            measurer_factory="node_support:truth_measurer", items=lambda ms: [],
            writers=(OutputWriter("SC", "sc.dcm", overlay_image),),
            nothing_found="none", headline=("HKA", "CPAK"),
        )
        kinds.registry()
        monkeypatch.setitem(kinds._REGISTRY, kind.name, kind)
        items = [MeasuredItem("R", "pass", 0.9, "varus", (
            ResultValue("HKA", -3.25, "deg", uncertainty=1.5),
            ResultValue.coded("CPAK", CPAK_II),
        ))]
        with db.session() as s:
            inst = ReceivedInstance(calling_ae_title="MOD", peer_address="127.0.0.1",
                                    sop_class_uid="1.2", sop_instance_uid="1.2.3",
                                    transfer_syntax_uid="1.2.840.10008.1.2.1", kind=kind.name)
            s.add(inst)
            s.flush()
            job = Job(instance_id=inst.id, kind=kind.name, quality="pass", verdict="varus")
            s.add(job)
            s.flush()
            _record_items(s, job.id, items)
            job_id = job.id
        with db.session() as s:
            job = s.get(Job, job_id)
            assert job is not None
            cpak = job.value("CPAK")
            assert cpak is not None and cpak.is_coded
            assert (cpak.value, cpak.unit, cpak.laterality) == (None, "", "R")
            assert (cpak.code_value, cpak.code_scheme, cpak.code_meaning) == (
                "CPAK-II", "99KNEENODE", "CPAK type II")
            hka = job.value("HKA")
            assert hka is not None and not hka.is_coded and hka.code_value is None
            assert (hka.value, hka.uncertainty) == (-3.25, 1.5)
            assert results_text(job) == "HKA -3.2° ± 1.5°, CPAK CPAK type II"  # 95 % half-width
    finally:
        db.dispose()


def test_downgrade_to_0003_drops_the_code_columns(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'node.db'}"
    migrate.upgrade(url)
    from alembic import command

    command.downgrade(migrate.alembic_config(url), "0003")
    db = Database(url)
    try:
        columns = {c["name"] for c in inspect(db.engine).get_columns("result_values")}
        assert "code_value" not in columns and "value" in columns
    finally:
        db.dispose()
