"""``knee-node db``, ``status``, ``resend``, ``purge`` and ``check-config``."""

from __future__ import annotations

from pathlib import Path

import typer

from dicom_node.commands.common import CONFIG_OPTION, settings_or_exit
from dicom_node.db.states import UNFINISHED_DELIVERY_STATES, DeliveryState, transition
from dicom_node.settings import Settings

db_app = typer.Typer(help="Database schema (Alembic migrations).", no_args_is_help=True)


@db_app.command("upgrade")
def db_upgrade(
    config: Path | None = CONFIG_OPTION,
    revision: str = typer.Option("head", help="target revision"),
) -> None:
    """Upgrade the database schema to REVISION (default: head)."""
    from dicom_node.db import migrate

    settings = settings_or_exit(config)
    if settings.database.url is None:
        settings.storage.data_dir.mkdir(parents=True, exist_ok=True)
    migrate.upgrade(settings.database_url, revision)
    typer.echo(f"database at {migrate.current_revision(settings.database_url)}")


@db_app.command("current")
def db_current(config: Path | None = CONFIG_OPTION) -> None:
    """Print the schema revision of the database and of the code."""
    from dicom_node.db import migrate

    settings = settings_or_exit(config)
    cur = migrate.current_revision(settings.database_url)
    typer.echo(f"database: {cur or 'not migrated'}; code: {migrate.head_revision()}")


def check_config(
    file: Path = typer.Argument(..., help="config.yaml to check", dir_okay=False),
) -> None:
    """Validate FILE; name each bad key and why (exit status 1 on errors)."""
    from dicom_node.errors import ConfigError
    from dicom_node.settings import load_settings

    try:
        settings = load_settings(file, environ={})
    except ConfigError as exc:
        typer.echo(f"invalid: {exc}", err=True)
        raise typer.Exit(1) from None
    problems = _path_problems(settings)
    base = file.resolve().parent
    for line in _path_lines(settings):
        typer.echo(line)
    if problems:
        typer.echo(f"invalid: {file} (relative paths resolved against {base}):", err=True)
        for p in problems:
            typer.echo(f"  {p}", err=True)
        raise typer.Exit(1)
    typer.echo(f"{file}: valid (relative paths resolved against {base})")


def _path_lines(settings: Settings) -> list[str]:
    """Where the node will keep its data, as resolved."""
    st = settings.storage
    lines = []
    for key, path in (
        ("storage.data_dir", st.data_dir),
        ("storage spool", st.spool),
        ("storage results", st.results),
    ):
        state = "exists" if path.is_dir() else "does not exist yet; `serve` creates it"
        lines.append(f"{key}: {path.resolve()} ({state})")
    return lines


def _path_problems(settings: Settings) -> list[str]:
    """Paths the node could not use: a data folder it cannot create, TLS files missing."""
    import os

    problems = []
    st = settings.storage
    for key, path in (("storage.data_dir", st.data_dir), ("storage.spool_dir", st.spool),
                      ("storage.results_dir", st.results)):
        path = path.resolve()
        if path.exists() and not path.is_dir():
            problems.append(f"{key}: {path} is a file, not a folder")
            continue
        existing = next(p for p in (path, *path.parents) if p.exists())
        if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
            problems.append(f"{key}: {path} cannot be created ({existing} is not writable)")
    tls = settings.node.tls
    for key, file in (("node.tls.cert_file", tls.cert_file), ("node.tls.key_file", tls.key_file),
                      ("node.tls.ca_file", tls.ca_file)):
        if file is not None and not file.is_file():
            problems.append(f"{key}: {file.resolve()} does not exist")
    return problems


#: Delivery states the node itself still works on (a retry is scheduled or running).
IN_FLIGHT_DELIVERY_STATES = UNFINISHED_DELIVERY_STATES


def resend(
    config: Path | None = CONFIG_OPTION,
    job: int | None = typer.Option(None, "--job", help="send this job's results again"),
    undelivered: bool = typer.Option(
        False, "--undelivered", help="every delivery the node gave up on (state failed)"
    ),
) -> None:
    """Send results again now (one attempt per destination), and show the outcome.

    Deliveries the node is still retrying are left alone, so nothing is sent twice by
    the node and by this command at once.
    """
    from sqlalchemy import select

    from dicom_node import kinds
    from dicom_node.context import NodeContext
    from dicom_node.db import Delivery, Job
    from dicom_node.pipeline import deliver

    if (job is None) == (not undelivered):
        typer.echo("error: give exactly one of --job ID or --undelivered", err=True)
        raise typer.Exit(2)
    settings = settings_or_exit(config)
    ctx = NodeContext.create(settings, _NoQueue())
    failed = 0
    try:
        with ctx.db.session() as s:
            if job is not None:
                row = s.get(Job, job)
                if row is None or not any(o.path for o in row.outputs):
                    typer.echo(f"error: job {job} has no results to send", err=True)
                    raise typer.Exit(1)
                have = {d.destination for d in row.deliveries}
                busy = [d for d in row.deliveries if d.state in IN_FLIGHT_DELIVERY_STATES]
                made = {o.object_kind for o in row.outputs if o.path}
                kind = kinds.get(row.kind or kinds.DEFAULT_KIND)
                for dest in settings.delivery.destinations:
                    takes = {w.object_kind for w in kind.writers_for(dest.objects)}
                    if dest.name not in have and made & takes:  # else nothing to send there
                        s.add(
                            Delivery(
                                job_id=job,
                                destination=dest.name,
                                ae_title=dest.address[0],
                                host=dest.address[1],
                                port=dest.address[2],
                            )
                        )
                s.flush()
                rows = list(s.scalars(select(Delivery).where(Delivery.job_id == job)))
            else:
                failed_rows = select(Delivery).where(Delivery.state == DeliveryState.FAILED)
                rows = list(s.scalars(failed_rows))
                busy = []
            for d in busy:
                typer.echo(
                    f"delivery {d.id}: left alone, the node is still retrying it "
                    f"(state {d.state}, {d.attempts} attempt(s))"
                )
            rows = [d for d in rows if d not in busy]
            for d in rows:
                d.state, d.attempts = transition(d.state, DeliveryState.PENDING), 0
            ids = [d.id for d in rows]
        for delivery_id in ids:
            outcome = deliver(ctx, delivery_id)
            failed += outcome.state != DeliveryState.DELIVERED
            typer.echo(
                f"delivery {delivery_id}: {outcome.state}"
                + (f" ({outcome.error})" if outcome.error else "")
                + (
                    f"; the node's retry loop takes it over (next attempt in about "
                    f"{outcome.retry_in_s:.0f} s, once `knee-node serve` runs)"
                    if outcome.state == DeliveryState.RETRYING and outcome.retry_in_s is not None
                    else ""
                )
            )
    finally:
        ctx.db.dispose()
    typer.echo(f"{len(ids) - failed} of {len(ids)} delivered")
    if failed:
        raise typer.Exit(1)


def purge(
    config: Path | None = CONFIG_OPTION,
    older_than_h: float | None = typer.Option(
        None, "--older-than-h", min=0, help="hours (default storage.ignored_retention_h)"
    ),
) -> None:
    """Forget instances never measured (ignored, rejected, duplicate) and orphaned spool files."""
    from dicom_node.db import Database
    from dicom_node.retention import purge as run_purge

    settings = settings_or_exit(config)
    db = Database(settings.database_url)
    try:
        report = run_purge(settings, db, older_than_h=older_than_h)
    finally:
        db.dispose()
    typer.echo(
        f"purged {report.instances} instance row(s), {report.spool_files} spool file(s); "
        f"{report.audit_events_cleared} audit event(s) no longer name an instance"
    )


class _NoQueue:
    """`resend` sends synchronously; nothing is queued."""

    def submit_measurement(self, instance_id: int) -> None:
        raise RuntimeError("resend does not measure")

    def submit_delivery(self, delivery_id: int, countdown_s: float = 0.0) -> None:
        raise RuntimeError("resend sends synchronously")


def register(app: typer.Typer) -> None:
    """Attach db, status, resend, purge and check-config."""
    app.add_typer(db_app, name="db")
    from dicom_node.commands.status import status

    app.command()(status)
    app.command()(resend)
    app.command()(purge)
    app.command("check-config")(check_config)
