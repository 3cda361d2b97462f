"""Options and helpers shared by the node's commands."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from dicom_node.errors import ConfigError
from dicom_node.settings import Settings, load_settings

if TYPE_CHECKING:
    from dicom_node.db import Database

CONFIG_OPTION = typer.Option(
    None,
    "--config",
    "-c",
    help="config.yaml (default: $KNEE_NODE_CONFIG, else embedded defaults)",
    dir_okay=False,
)


def settings_or_exit(config: Path | None) -> Settings:
    """Load the settings or print why not and exit with status 1."""
    try:
        return load_settings(config)
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None


def path_origin(config: Path | None) -> str:
    """How relative paths of these settings were resolved, for messages."""
    from dicom_node.settings import config_path

    file = config_path(config)
    if file is None:
        return f"embedded default, relative to the current directory {Path.cwd()}"
    return f"from {file}; relative paths there are resolved against {file.resolve().parent}"


def open_database_or_exit(settings: Settings, config: Path | None) -> Database:
    """The node's database, or print which path was tried and why it failed, and exit 1."""
    from sqlalchemy import text
    from sqlalchemy.exc import SQLAlchemyError

    from dicom_node.db import Database

    url = settings.database_url
    data_dir = settings.storage.data_dir.resolve()
    if url.startswith("sqlite:///") and settings.database.url is None:
        file = Path(url.removeprefix("sqlite:///"))
        if not file.is_file():
            why = "the folder does not exist" if not file.parent.is_dir() else "no such file"
            typer.echo(
                f"error: no database at {file} ({why}); storage.data_dir is {data_dir} "
                f"({path_origin(config)}). Point --config at the node's config.yaml, fix "
                "storage.data_dir, or start the node once (`knee-node serve`)",
                err=True,
            )
            raise typer.Exit(1)
    from dicom_node.db.migrate import MigrationError, require_head

    db = Database(url)
    try:
        with db.session() as s:
            s.execute(text("SELECT 1"))
        require_head(url)
    except MigrationError as exc:
        db.dispose()
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    except SQLAlchemyError as exc:
        db.dispose()
        shown = url if settings.database.url is None else "database.url"
        why = getattr(exc, "orig", None) or exc
        typer.echo(f"error: cannot open the database ({shown}): {why}", err=True)
        raise typer.Exit(1) from None
    return db
