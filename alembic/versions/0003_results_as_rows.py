"""results as rows: study kinds, named coded result values, output objects

Issue 14 asked for this migration as ``0002``; that number was taken by
``0002_job_warnings`` before it landed, so it is ``0003``.

What it does (data moved in SQL that runs on SQLite and Postgres, nothing lost):

- ``jobs.kind`` and ``received_instances.kind``: the study kind (``knee-ap`` for every
  job before this revision; instances a routing rule matched are ``knee-ap`` too).
- ``result_values``: one row per named coded value (name, value, unit, laterality,
  method, uncertainty), of an item (``measurement_id``) or of the job. Each knee's
  ``measurements.atfa_fts_deg``/``atfa_fnts_deg`` becomes ``aTFA`` by ``FTS``/``FNTS`` in
  ``deg``; a job's own ``jobs.atfa_*`` becomes a job-level row only where it differs from
  its first knee's (the pipeline always wrote the first knee's there).
- ``output_objects``: one row per object written (``SR``, ``SC``): path and SOP Instance
  UID, from ``jobs.sr_path``/``sr_sop_instance_uid`` and ``sc_*``.
- The fixed columns go; ``measurements.knee_index`` becomes ``item_index`` (a knee or a
  leg) and ``measurements.phase`` becomes nullable (a leg has none).

Downgrade puts the knee values and the SR/SC back in the fixed columns (values and objects
of other kinds, which 0002 cannot hold, are dropped).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 05:40:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_METHODS = (("FTS", "atfa_fts_deg"), ("FNTS", "atfa_fnts_deg"))
_OBJECTS = (
    ("SR", 0, "sr_path", "sr_sop_instance_uid"),
    ("SC", 1, "sc_path", "sc_sop_instance_uid"),
)


def upgrade() -> None:
    op.create_table(
        "result_values",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("measurement_id", sa.Integer(), nullable=True),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("unit", sa.String(length=16), nullable=False),
        sa.Column("laterality", sa.String(length=1), nullable=True),
        sa.Column("method", sa.String(length=32), nullable=True),
        sa.Column("uncertainty", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"]),
        sa.ForeignKeyConstraint(["measurement_id"], ["measurements.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("result_values") as batch:
        batch.create_index(batch.f("ix_result_values_job_id"), ["job_id"], unique=False)
        batch.create_index(
            batch.f("ix_result_values_measurement_id"), ["measurement_id"], unique=False
        )
    op.create_table(
        "output_objects",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("object_kind", sa.String(length=16), nullable=False),
        sa.Column("path", sa.Text(), nullable=True),
        sa.Column("sop_instance_uid", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("output_objects") as batch:
        batch.create_index(batch.f("ix_output_objects_job_id"), ["job_id"], unique=False)
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("kind", sa.String(length=32), nullable=True))
        batch.create_index(batch.f("ix_jobs_kind"), ["kind"], unique=False)
    with op.batch_alter_table("received_instances") as batch:
        batch.add_column(sa.Column("kind", sa.String(length=32), nullable=True))

    # -- the data ---------------------------------------------------------------------------
    op.execute("UPDATE jobs SET kind = 'knee-ap'")
    op.execute("UPDATE received_instances SET kind = 'knee-ap' WHERE routing_rule IS NOT NULL")
    for method, column in _METHODS:
        op.execute(
            "INSERT INTO result_values (job_id, measurement_id, name, value, unit, laterality, "
            f"method) SELECT m.job_id, m.id, 'aTFA', m.{column}, 'deg', m.laterality, "
            f"'{method}' FROM measurements m ORDER BY m.job_id, m.knee_index"
        )
        first = "m0.job_id = j.id AND m0.knee_index = 0"
        op.execute(  # the job's own value, where it is not its first knee's
            "INSERT INTO result_values (job_id, measurement_id, name, value, unit, laterality, "
            f"method) SELECT j.id, NULL, 'aTFA', j.{column}, 'deg', NULL, '{method}' "
            f"FROM jobs j WHERE (j.{column} IS NOT NULL "
            f"OR EXISTS (SELECT 1 FROM measurements m0 WHERE {first})) "
            f"AND NOT EXISTS (SELECT 1 FROM measurements m0 WHERE {first} AND "
            f"(m0.{column} = j.{column} OR (m0.{column} IS NULL AND j.{column} IS NULL))) "
            "ORDER BY j.id"
        )
    for kind, position, path, uid in _OBJECTS:
        op.execute(
            "INSERT INTO output_objects (job_id, position, object_kind, path, sop_instance_uid) "
            f"SELECT id, {position}, '{kind}', {path}, {uid} FROM jobs "
            f"WHERE {path} IS NOT NULL OR {uid} IS NOT NULL ORDER BY id"
        )

    with op.batch_alter_table("jobs") as batch:
        for column in ("atfa_fts_deg", "atfa_fnts_deg", "sr_path", "sc_path",
                       "sr_sop_instance_uid", "sc_sop_instance_uid"):
            batch.drop_column(column)
    with op.batch_alter_table("measurements") as batch:
        batch.drop_column("atfa_fts_deg")
        batch.drop_column("atfa_fnts_deg")
        batch.alter_column("knee_index", new_column_name="item_index",
                           existing_type=sa.Integer(), existing_nullable=False)
        batch.alter_column("phase", existing_type=sa.String(length=4), nullable=True)


def downgrade() -> None:
    with op.batch_alter_table("measurements") as batch:
        batch.alter_column("item_index", new_column_name="knee_index",
                           existing_type=sa.Integer(), existing_nullable=False)
        batch.add_column(sa.Column("atfa_fts_deg", sa.Float(), nullable=True))
        batch.add_column(sa.Column("atfa_fnts_deg", sa.Float(), nullable=True))
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("atfa_fts_deg", sa.Float(), nullable=True))
        batch.add_column(sa.Column("atfa_fnts_deg", sa.Float(), nullable=True))
        batch.add_column(sa.Column("sr_path", sa.Text(), nullable=True))
        batch.add_column(sa.Column("sc_path", sa.Text(), nullable=True))
        batch.add_column(sa.Column("sr_sop_instance_uid", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("sc_sop_instance_uid", sa.String(length=64), nullable=True))

    for method, column in _METHODS:
        item = (
            "SELECT rv.value FROM result_values rv WHERE rv.measurement_id = measurements.id "
            f"AND rv.name = 'aTFA' AND rv.method = '{method}'"
        )
        op.execute(f"UPDATE measurements SET {column} = ({item})")
        own = (
            "FROM result_values rv WHERE rv.job_id = jobs.id AND rv.measurement_id IS NULL "
            f"AND rv.name = 'aTFA' AND rv.method = '{method}'"
        )
        first = (
            f"SELECT m.{column} FROM measurements m "
            "WHERE m.job_id = jobs.id AND m.knee_index = 0"
        )
        op.execute(
            f"UPDATE jobs SET {column} = CASE WHEN EXISTS (SELECT 1 {own}) "
            f"THEN (SELECT rv.value {own}) ELSE ({first}) END"
        )
    for kind, _, path, uid in _OBJECTS:
        rows = f"FROM output_objects o WHERE o.job_id = jobs.id AND o.object_kind = '{kind}'"
        op.execute(
            f"UPDATE jobs SET {path} = (SELECT MIN(o.path) {rows}), "
            f"{uid} = (SELECT MIN(o.sop_instance_uid) {rows})"
        )
    op.execute("UPDATE measurements SET phase = '' WHERE phase IS NULL")

    with op.batch_alter_table("measurements") as batch:
        batch.alter_column("phase", existing_type=sa.String(length=4), nullable=False)
    with op.batch_alter_table("received_instances") as batch:
        batch.drop_column("kind")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_index(batch.f("ix_jobs_kind"))
        batch.drop_column("kind")
    with op.batch_alter_table("output_objects") as batch:
        batch.drop_index(batch.f("ix_output_objects_job_id"))
    op.drop_table("output_objects")
    with op.batch_alter_table("result_values") as batch:
        batch.drop_index(batch.f("ix_result_values_measurement_id"))
        batch.drop_index(batch.f("ix_result_values_job_id"))
    op.drop_table("result_values")
