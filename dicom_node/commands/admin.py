"""``knee-node db``, ``status``, ``resend``, ``purge`` and ``check-config``."""

from __future__ import annotations

from pathlib import Path

import typer

from dicom_node.commands.common import CONFIG_OPTION, settings_or_exit

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
        load_settings(file, environ={})
    except ConfigError as exc:
        typer.echo(f"invalid: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"{file}: valid")


def status(
    config: Path | None = CONFIG_OPTION,
    limit: int = typer.Option(20, min=1, help="number of recent jobs"),
) -> None:
    """Show recent jobs: state, aTFA by FTS and FNTS, verdict, model, deliveries."""
    from rich.console import Console
    from rich.table import Table
    from sqlalchemy import func, select

    from dicom_node.db import Database, Job, ReceivedInstance

    settings = settings_or_exit(config)
    db = Database(settings.database_url)
    table = Table(title="knee-node: recent jobs")
    for col in (
        "job",
        "finished",
        "state",
        "aTFA FTS",
        "aTFA FNTS",
        "verdict",
        "quality",
        "model",
        "ms",
        "deliveries",
        "error",
    ):
        table.add_column(col)
    try:
        with db.session() as s:
            jobs = s.scalars(select(Job).order_by(Job.id.desc()).limit(limit)).all()
            for j in jobs:
                sent = sum(d.state == "delivered" for d in j.deliveries)
                total_ms = (j.timings_ms or {}).get("total_ms")
                table.add_row(
                    str(j.id),
                    j.finished_at.strftime("%Y-%m-%d %H:%M:%S") if j.finished_at else "",
                    j.state,
                    _angle(j.atfa_fts_deg, j.quality),
                    _angle(j.atfa_fnts_deg, j.quality),
                    j.verdict or "",
                    j.quality or "",
                    f"{j.model_name or ''} {j.model_version or ''}".strip(),
                    "" if total_ms is None else f"{total_ms:.0f}",
                    f"{sent}/{len(j.deliveries)}",
                    (j.error or "")[:60],
                )
            counts = dict(
                s.execute(
                    select(ReceivedInstance.state, func.count()).group_by(ReceivedInstance.state)
                ).all()
            )
    finally:
        db.dispose()
    import sys

    console = Console(width=None if sys.stdout.isatty() else 160)
    console.print(table)
    console.print(
        "received instances: "
        + (", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none")
    )


def _angle(value: float | None, quality: str | None) -> str:
    """An angle for the status table; a flagged one in parentheses (not a result)."""
    if value is None:
        return ""
    return f"({value:+.1f}°)" if quality == "flag" else f"{value:+.1f}°"


#: Delivery states the node itself still works on (a retry is scheduled or running).
IN_FLIGHT_DELIVERY_STATES = ("pending", "sending", "retrying")


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
                if row is None or row.sr_path is None:
                    typer.echo(f"error: job {job} has no results to send", err=True)
                    raise typer.Exit(1)
                have = {d.destination for d in row.deliveries}
                busy = [d for d in row.deliveries if d.state in IN_FLIGHT_DELIVERY_STATES]
                for dest in settings.delivery.destinations:
                    if dest.name not in have:
                        s.add(
                            Delivery(
                                job_id=job,
                                destination=dest.name,
                                ae_title=dest.ae_title,
                                host=dest.host,
                                port=dest.port,
                            )
                        )
                s.flush()
                rows = list(s.scalars(select(Delivery).where(Delivery.job_id == job)))
            else:
                rows = list(s.scalars(select(Delivery).where(Delivery.state == "failed")))
                busy = []
            for d in busy:
                typer.echo(
                    f"delivery {d.id}: left alone, the node is still retrying it "
                    f"(state {d.state}, {d.attempts} attempt(s))"
                )
            rows = [d for d in rows if d not in busy]
            for d in rows:
                d.state, d.attempts = "pending", 0
            ids = [d.id for d in rows]
        for delivery_id in ids:
            outcome = deliver(ctx, delivery_id)
            failed += outcome.state != "delivered"
            typer.echo(
                f"delivery {delivery_id}: {outcome.state}"
                + (f" ({outcome.error})" if outcome.error else "")
                + (
                    f"; the node's retry loop takes it over (next attempt in about "
                    f"{outcome.retry_in_s:.0f} s, once `knee-node serve` runs)"
                    if outcome.state == "retrying" and outcome.retry_in_s is not None
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
    app.command()(status)
    app.command()(resend)
    app.command()(purge)
    app.command("check-config")(check_config)
