"""Results in two stages: the SR is sent before the other objects are made

deliveries.object_kinds: the object kinds a delivery carries (NULL, as on rows before
0005: every object of its job that its destination takes).
jobs.pending_objects: the object kinds a finished job still has to write (NULL: none).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04 21:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(sa.Column("object_kinds", sa.JSON(none_as_null=True), nullable=True))
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("pending_objects", sa.JSON(none_as_null=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("pending_objects")
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_column("object_kinds")
