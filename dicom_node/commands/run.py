"""``knee-node serve`` and ``knee-node worker``."""

from __future__ import annotations

import signal
import threading
from pathlib import Path

import typer

from dicom_node.commands.common import CONFIG_OPTION, settings_or_exit


def serve(
    config: Path | None = CONFIG_OPTION,
    port: int | None = typer.Option(None, help="listen on this port instead of node.port"),
) -> None:
    """Run the DICOM listener (and, on the in-process queue, the worker thread)."""
    from dicom_node.db.migrate import MigrationError
    from dicom_node.logs import configure_logging
    from dicom_node.node import KneeNode

    settings = settings_or_exit(config)
    configure_logging(settings.logging.level, settings.logging.format)
    from dicom_node.datalock import DataDirLockedError
    from dicom_node.startup import bind_error, startup_line

    node = KneeNode(settings, port=port)
    try:
        node.start()
    except (MigrationError, DataDirLockedError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    except OSError as exc:  # the listener could not bind: one line naming the port
        line = bind_error(exc, settings.node.host, settings.node.port if port is None else port)
        if line is None:
            raise
        typer.echo(line, err=True)
        raise typer.Exit(1) from None
    line = startup_line(settings, node.port)
    typer.echo(line)
    from dicom_node.metrics import start_metrics_server
    from dicom_node.reload import install_reload

    start_metrics_server(node.ctx)  # /metrics and /healthz (metrics.*), until the process exits
    install_reload(node.ctx, config)  # SIGHUP: take up an edited config.yaml (dicom_node.reload)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    node.stop()
    typer.echo("knee-node stopped")


def worker(
    config: Path | None = CONFIG_OPTION,
    loglevel: str = typer.Option("INFO", help="Celery log level"),
) -> None:
    """Run a Celery worker for the node's tasks (needs queue.backend: celery)."""
    from dicom_node.celery_app import make_celery, worker_argv
    from dicom_node.logs import configure_logging

    settings = settings_or_exit(config)
    if settings.queue.backend != "celery":
        typer.echo(
            "error: queue.backend is 'inprocess': `knee-node serve` runs the tasks itself; "
            "set queue.backend: celery to use separate workers",
            err=True,
        )
        raise typer.Exit(1)
    configure_logging(settings.logging.level, settings.logging.format)
    app = make_celery(settings)
    app.worker_main(argv=worker_argv(settings, loglevel))


def register(app: typer.Typer) -> None:
    """Attach serve and worker."""
    app.command()(serve)
    app.command()(worker)
