"""coded result values: code_value, code_scheme, code_meaning on result_values

A result value is a number (``value``, ``unit``) or a code: the CPAK class of a leg is a
DICOM code triplet (Code Value, Coding Scheme Designator, Code Meaning), stored in three
nullable columns; its ``value`` is NULL and its ``unit`` "". Existing rows are numbers and
keep NULL codes. A separate revision (not an amended 0003) so that databases already at
0003 gain the columns too.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 06:40:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COLUMNS = (("code_value", 16), ("code_scheme", 16), ("code_meaning", 64))


def upgrade() -> None:
    with op.batch_alter_table("result_values") as batch:
        for name, length in _COLUMNS:
            batch.add_column(sa.Column(name, sa.String(length=length), nullable=True))


def downgrade() -> None:
    # coded rows cannot be held without the columns: drop them, keep the numbers
    op.execute("DELETE FROM result_values WHERE code_value IS NOT NULL")
    with op.batch_alter_table("result_values") as batch:
        for name, _ in reversed(_COLUMNS):
            batch.drop_column(name)
