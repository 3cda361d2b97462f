"""Running the Alembic migrations from the node (``knee-node db upgrade``, ``serve``).

The migration scripts live in the repository's top-level ``alembic/`` folder; an
installed (non-editable) copy finds them through ``$KNEE_NODE_MIGRATIONS`` if set.
"""

from __future__ import annotations

import os
from pathlib import Path

from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, pool

from alembic import command
from dicom_node.errors import KneeNodeError


class MigrationError(KneeNodeError):
    """The database schema is not at the code's revision, or migrations cannot be found."""


def migrations_dir() -> Path:
    """Folder holding ``env.py`` and ``versions/``.

    Looked up in order: ``$KNEE_NODE_MIGRATIONS``; the repository's top-level ``alembic/``
    (source checkout, editable install); ``dicom_node/alembic_migrations`` (where a wheel
    build may copy them, see pyproject package-data).
    """
    env = os.environ.get("KNEE_NODE_MIGRATIONS")
    here = Path(__file__).resolve()
    candidates = (
        [Path(env)]
        if env
        else [here.parents[2] / "alembic", here.parents[1] / "alembic_migrations"]
    )
    for path in candidates:
        if (path / "env.py").is_file():
            return path
    raise MigrationError(
        f"Alembic migrations not found in {', '.join(map(str, candidates))}; set "
        "KNEE_NODE_MIGRATIONS to the repository's alembic/ folder"
    )


def alembic_config(url: str) -> Config:
    """An Alembic config pointing at the migrations, with ``url`` handed to env.py."""
    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir()))
    cfg.attributes["url"] = url
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    """Upgrade the database at ``url`` to ``revision``."""
    command.upgrade(alembic_config(url), revision)


def head_revision() -> str:
    """The newest revision of the migration scripts."""
    head = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    if head is None:
        raise MigrationError("no migration scripts found")
    return head


def current_revision(url: str) -> str | None:
    """The revision the database at ``url`` is at (None if never migrated)."""
    engine = create_engine(url, poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()


def require_head(url: str) -> None:
    """Raise :class:`MigrationError` unless the database is at head."""
    cur, head = current_revision(url), head_revision()
    if cur != head:
        raise MigrationError(
            f"database schema is at {cur or 'no revision'}, the code needs {head}: "
            "run `knee-node db upgrade`"
        )
