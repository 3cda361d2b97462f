"""Migrations on SQLite and Postgres; the migrated schema matches the models."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from node_support import postgres_database
from sqlalchemy import create_engine, inspect, pool
from typer.testing import CliRunner

from dicom_node.cli import app
from dicom_node.db import (
    Base,
    Database,
    Job,
    OutputObject,
    ReceivedInstance,
    ResultValueRow,
    migrate,
)

TABLES = {"received_instances", "jobs", "measurements", "result_values", "output_objects",
          "deliveries", "audit_events"}


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh Postgres database for this test, dropped afterwards."""
    with postgres_database() as url:
        if url is None:
            pytest.skip("Postgres unreachable at 127.0.0.1:5432")
        yield url


def _check_schema(url: str) -> None:
    with pytest.raises(migrate.MigrationError, match="db upgrade"):
        migrate.require_head(url)
    migrate.upgrade(url)
    migrate.require_head(url)
    engine = create_engine(url, poolclass=pool.NullPool)
    try:
        assert set(inspect(engine).get_table_names()) >= TABLES
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        assert diff == [], f"models and migrations differ: {diff}"
    finally:
        engine.dispose()
    db = Database(url)
    try:
        with db.session() as s:
            inst = ReceivedInstance(calling_ae_title="A", peer_address="127.0.0.1",
                                    sop_class_uid="1.2", sop_instance_uid="1.2.3",
                                    transfer_syntax_uid="1.2.840.10008.1.2.1")
            s.add(inst)
            s.flush()
            job = Job(instance_id=inst.id, kind="knee-ap", state="done",
                      timings_ms={"total_ms": 1.5})
            s.add(job)
            s.flush()
            s.add(ResultValueRow(job_id=job.id, name="aTFA", value=3.25, unit="deg",
                                 method="FTS"))
            s.add(OutputObject(job_id=job.id, position=0, object_kind="SR", path="/x/sr.dcm",
                               sop_instance_uid="1.2.4"))
        with db.session() as s:
            job = s.query(Job).one()
            assert job.timings_ms == {"total_ms": 1.5} and job.value("aTFA FTS").value == 3.25
            assert job.output_path("SR") == "/x/sr.dcm" and job.kind == "knee-ap"
            assert job.instance.sop_instance_uid == "1.2.3"
        db.audit("instance_received", sop_instance_uid="1.2.3")
    finally:
        db.dispose()


def test_migrations_on_sqlite(tmp_path: Path) -> None:
    _check_schema(f"sqlite:///{tmp_path / 'k.sqlite'}")


@pytest.mark.services
def test_migrations_on_postgres(pg_url: str) -> None:
    _check_schema(pg_url)


def test_db_upgrade_command_uses_the_settings(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"storage:\n  data_dir: {tmp_path / 'data'}\n")
    result = CliRunner().invoke(app, ["db", "upgrade", "--config", str(cfg)])
    assert result.exit_code == 0, result.output
    assert migrate.head_revision() in result.output
    assert (tmp_path / "data" / "knee-node.sqlite").is_file()
    current = CliRunner().invoke(app, ["db", "current", "--config", str(cfg)])
    assert f"database: {migrate.head_revision()}" in current.output


def test_serve_refuses_a_database_behind_head_without_auto_migrate(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        f"storage:\n  data_dir: {tmp_path / 'data'}\ndatabase:\n  auto_migrate: false\n"
        "node:\n  port: 0\n"
    )
    result = CliRunner().invoke(app, ["serve", "--config", str(cfg)])
    assert result.exit_code == 1
    assert "knee-node db upgrade" in result.output


def test_worker_needs_the_celery_backend(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"storage:\n  data_dir: {tmp_path / 'data'}\n")
    result = CliRunner().invoke(app, ["worker", "--config", str(cfg)])
    assert result.exit_code == 1 and "queue.backend" in result.output
