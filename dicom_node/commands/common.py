"""Options and helpers shared by the node's commands."""

from __future__ import annotations

from pathlib import Path

import typer

from dicom_node.errors import ConfigError
from dicom_node.settings import Settings, load_settings

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
