"""Migration 0003 (results as rows): a database filled at 0001 keeps every result.

Rows are inserted as the 0001 schema had them (angles and SR/SC paths in fixed columns of
``jobs`` and ``measurements``), the database is upgraded to head, and every old value is
found in ``result_values``/``output_objects`` and in ``knee-node status``. Downgrading to
0002 puts them back in the fixed columns. On SQLite and (if reachable) Postgres.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from node_support import postgres_database
from sqlalchemy import create_engine, pool, text
from typer.testing import CliRunner

from alembic import command
from dicom_node.cli import app
from dicom_node.db import Database, Job, migrate

NOW = "2026-11-30 10:00:00+00:00"
#: job id -> (state, FTS, FNTS, verdict, quality, sr path, sc path, sr uid, sc uid)
JOBS = {
    1: ("done", 4.25, 3.5, "valgus", "pass", "/r/job-000001/sr.dcm", "/r/job-000001/sc.dcm",
        "1.2.826.0.1.1", "1.2.826.0.1.2"),
    2: ("flagged", -12.3, -11.0, "not determined (flagged)", "flag", "/r/job-000002/sr.dcm",
        "/r/job-000002/sc.dcm", "1.2.826.0.2.1", "1.2.826.0.2.2"),
    3: ("failed", None, None, None, None, None, None, None, None),
    # a job whose own angle differs from its first knee's (hand-edited, or an older node)
    4: ("done", -6.5, -6.0, "varus", "pass", "/r/job-000004/sr.dcm", None,
        "1.2.826.0.4.1", None),
}
#: (job id, knee index, laterality, FTS, FNTS, verdict, quality)
KNEES = [
    (1, 0, "R", 4.25, 3.5, "valgus", "pass"),
    (1, 1, "L", -1.75, -2.0, "normal", "pass"),
    (2, 0, "L", -12.3, -11.0, "not determined (flagged)", "flag"),
    (4, 0, "R", -6.25, None, "varus", "pass"),
]


def _fill_at_0001(url: str) -> None:
    migrate.upgrade(url, "0001")
    engine = create_engine(url, poolclass=pool.NullPool)
    try:
        with engine.begin() as c:
            for i in JOBS:
                c.execute(text(
                    "INSERT INTO received_instances (id, received_at, calling_ae_title, "
                    "peer_address, sop_class_uid, sop_instance_uid, study_instance_uid, "
                    "transfer_syntax_uid, size_bytes, state, routing_rule) VALUES (:id, :now, "
                    "'XRAY_ROOM_3', '127.0.0.1', '1.2.840.10008.5.1.4.1.1.1.1', :uid, :study, "
                    "'1.2.840.10008.1.2.1', 10, 'measured', 'ap-pa-knee')"
                ), {"id": i, "now": NOW, "uid": f"1.2.3.{i}", "study": f"1.2.4.{i}"})
            for i, (state, fts, fnts, verdict, quality, sr, sc, sr_uid, sc_uid) in JOBS.items():
                c.execute(text(
                    "INSERT INTO jobs (id, instance_id, state, created_at, finished_at, "
                    "model_name, model_version, atfa_fts_deg, atfa_fnts_deg, verdict, quality, "
                    "sr_path, sc_path, sr_sop_instance_uid, sc_sop_instance_uid, error) VALUES "
                    "(:id, :id, :state, :now, :now, 'knee-landmarks', '1.0', :fts, :fnts, "
                    ":verdict, :quality, :sr, :sc, :sr_uid, :sc_uid, :error)"
                ), {"id": i, "state": state, "now": NOW, "fts": fts, "fnts": fnts,
                    "verdict": verdict, "quality": quality, "sr": sr, "sc": sc,
                    "sr_uid": sr_uid, "sc_uid": sc_uid,
                    "error": "InputImageError: no knee" if state == "failed" else None})
            for n, (job, index, side, fts, fnts, verdict, quality) in enumerate(KNEES, 1):
                c.execute(text(
                    "INSERT INTO measurements (id, job_id, knee_index, laterality, phase, "
                    "atfa_fts_deg, atfa_fnts_deg, verdict, quality, confidence, flag_reasons) "
                    "VALUES (:id, :job, :index, :side, 'pre', :fts, :fnts, :verdict, :quality, "
                    "0.9, '[]')"
                ), {"id": n, "job": job, "index": index, "side": side, "fts": fts,
                    "fnts": fnts, "verdict": verdict, "quality": quality})
            c.execute(text(
                "INSERT INTO deliveries (job_id, destination, ae_title, host, port, state, "
                "attempts, created_at, updated_at) VALUES (1, 'pacs', 'PACS', '127.0.0.1', "
                "104, 'delivered', 1, :now, :now)"
            ), {"now": NOW})
    finally:
        engine.dispose()


def _rows(url: str, sql: str) -> list[tuple[object, ...]]:
    engine = create_engine(url, poolclass=pool.NullPool)
    try:
        with engine.connect() as c:
            return [tuple(r) for r in c.execute(text(sql)).all()]
    finally:
        engine.dispose()


def _check_upgrade_keeps_every_result(url: str, tmp_path: Path) -> None:
    _fill_at_0001(url)
    migrate.upgrade(url)
    assert migrate.current_revision(url) == migrate.head_revision() == "0005"

    values = _rows(url, "SELECT v.job_id, m.item_index, v.laterality, v.name, v.method, "
                        "v.value, v.unit FROM result_values v LEFT JOIN measurements m "
                        "ON m.id = v.measurement_id ORDER BY v.job_id, v.id")
    for job, index, side, fts, fnts, _, _ in KNEES:  # every knee's two angles, as rows
        assert (job, index, side, "aTFA", "FTS", fts, "deg") in values
        assert (job, index, side, "aTFA", "FNTS", fnts, "deg") in values
    # job 4's own angles differed from its first knee's: kept as job-level rows
    assert (4, None, None, "aTFA", "FTS", -6.5, "deg") in values
    assert (4, None, None, "aTFA", "FNTS", -6.0, "deg") in values
    assert len(values) == 2 * len(KNEES) + 2, "no row made up for the failed job"

    outputs = _rows(url, "SELECT job_id, object_kind, path, sop_instance_uid FROM "
                         "output_objects ORDER BY job_id, position")
    expected = [
        (i, kind, path, uid)
        for i, (_, _, _, _, _, sr, sc, sr_uid, sc_uid) in JOBS.items()
        for kind, path, uid in (("SR", sr, sr_uid), ("SC", sc, sc_uid))
        if path is not None or uid is not None
    ]
    assert outputs == expected
    assert _rows(url, "SELECT DISTINCT kind FROM jobs") == [("knee-ap",)]
    assert _rows(url, "SELECT item_index, phase, verdict FROM measurements WHERE id = 2") == [
        (1, "pre", "normal")
    ]

    db = Database(url)  # the models read the migrated rows
    try:
        with db.session() as s:
            jobs = {j.id: j for j in s.query(Job)}
            for i, (_, fts, fnts, *_rest) in JOBS.items():
                got = jobs[i].value("aTFA FTS"), jobs[i].value("aTFA FNTS")
                assert [None if v is None else v.value for v in got] == (
                    [None, None] if fts is None else [fts, fnts]
                )
            assert jobs[1].output_path("SC") == "/r/job-000001/sc.dcm"
            assert jobs[1].measurements[1].value("aTFA FTS").value == -1.75
    finally:
        db.dispose()

    config = tmp_path / "c.yaml"
    config.write_text(f"storage:\n  data_dir: {tmp_path / 'data'}\n"
                      f"database:\n  url: {url}\n")
    shown = CliRunner().invoke(app, ["status", "--config", str(config)])
    assert shown.exit_code == 0, shown.output
    out = shown.output
    assert "+4.2°" in out and "+3.5°" in out, "job 1's angles"  # rounded to 0.1 as before
    assert "-6.5°" in out and "-6.0°" in out, "job 4's own angles"
    assert "-12.3" not in out, "a flagged job shows no angle"
    assert out.count("knee-ap") >= 4 and "1/1" in out

    command.downgrade(migrate.alembic_config(url), "0002")
    back = _rows(url, "SELECT id, atfa_fts_deg, atfa_fnts_deg, sr_path, sc_path, "
                      "sr_sop_instance_uid, sc_sop_instance_uid FROM jobs ORDER BY id")
    assert back == [(i, j[1], j[2], j[5], j[6], j[7], j[8]) for i, j in JOBS.items()]
    knees = _rows(url, "SELECT job_id, knee_index, laterality, atfa_fts_deg, atfa_fnts_deg "
                       "FROM measurements ORDER BY id")
    assert knees == [k[:5] for k in KNEES]
    migrate.upgrade(url)  # and up again
    assert len(_rows(url, "SELECT id FROM result_values")) == 2 * len(KNEES) + 2


def test_upgrade_from_0001_keeps_every_result_on_sqlite(tmp_path: Path) -> None:
    _check_upgrade_keeps_every_result(f"sqlite:///{tmp_path / 'old.sqlite'}", tmp_path)


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh Postgres database for this test, dropped afterwards."""
    with postgres_database() as url:
        if url is None:
            pytest.skip("Postgres unreachable at 127.0.0.1:5432")
        yield url


@pytest.mark.services
def test_upgrade_from_0001_keeps_every_result_on_postgres(pg_url: str, tmp_path: Path) -> None:
    _check_upgrade_keeps_every_result(pg_url, tmp_path)


def test_upgrade_from_0002_the_previous_head_keeps_results_and_warnings(tmp_path: Path) -> None:
    """A database at 0002 (the head before results became rows), with a job warning, keeps
    every result and the warning when upgraded to head."""
    url = f"sqlite:///{tmp_path / 'at0002.sqlite'}"
    _fill_at_0001(url)
    migrate.upgrade(url, "0002")
    warning = '["PatientName: emptied (not valid for PN)"]'
    engine = create_engine(url, poolclass=pool.NullPool)
    try:
        with engine.begin() as c:
            c.execute(text("UPDATE jobs SET warnings = :w WHERE id = 1"), {"w": warning})
    finally:
        engine.dispose()
    migrate.upgrade(url)
    assert migrate.current_revision(url) == "0005"
    assert _rows(url, "SELECT id FROM jobs ORDER BY id") == [(i,) for i in JOBS]
    assert _rows(url, "SELECT warnings FROM jobs WHERE id = 1") == [(warning,)]
    values = _rows(url, "SELECT job_id, name, method, value FROM result_values")
    for job, _, _, fts, fnts, _, _ in KNEES:
        assert (job, "aTFA", "FTS", fts) in values and (job, "aTFA", "FNTS", fnts) in values
    kept = sum(1 for (_, _, _, _, _, sr, sc, sr_uid, sc_uid) in JOBS.values()
               for path, uid in ((sr, sr_uid), (sc, sc_uid)) if path is not None or uid is not None)
    assert _rows(url, "SELECT COUNT(*) FROM output_objects") == [(kept,)]


def test_upgrade_from_0004_the_previous_head_keeps_every_row_and_reads_as_one_stage(
    tmp_path: Path,
) -> None:
    """Migration 0005 (the SR first): a database at 0004 keeps every row; its deliveries
    carry NULL object kinds (every object the destination takes, as before) and its jobs
    no pending objects; a downgrade drops the two columns and keeps the rows."""
    url = f"sqlite:///{tmp_path / 'at0004.sqlite'}"
    _fill_at_0001(url)
    migrate.upgrade(url, "0004")
    tables = ("received_instances", "jobs", "measurements", "result_values",
              "output_objects", "deliveries")
    before = {t: _rows(url, f"SELECT * FROM {t} ORDER BY id") for t in tables}
    assert before["deliveries"] and before["output_objects"]
    migrate.upgrade(url)
    assert migrate.current_revision(url) == "0005"
    for t in tables:
        after = _rows(url, f"SELECT * FROM {t} ORDER BY id")
        extra = {"deliveries": 1, "jobs": 1}.get(t, 0)  # the column 0005 adds, last
        assert [r[:len(r) - extra] for r in after] == before[t], t
    assert _rows(url, "SELECT object_kinds FROM deliveries") == [(None,)]
    assert _rows(url, "SELECT COUNT(*) FROM jobs WHERE pending_objects IS NOT NULL") == [(0,)]
    db = Database(url)
    try:
        with db.session() as s:
            job = s.get(Job, 1)
            assert job is not None and job.pending_objects is None
            assert [d.object_kinds for d in job.deliveries] == [None]
    finally:
        db.dispose()
    command.downgrade(migrate.alembic_config(url), "0004")
    for t in tables:
        assert _rows(url, f"SELECT * FROM {t} ORDER BY id") == before[t], t
