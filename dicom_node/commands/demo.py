"""``knee-node demo``: a node on embedded defaults, one synthetic study pushed, SR received."""

from __future__ import annotations

from pathlib import Path

import typer

from dicom_node.commands.common import CONFIG_OPTION, settings_or_exit


def demo(
    out: Path = typer.Option(Path("var/demo"), help="folder for the demo's data and results"),
    seed: int = typer.Option(900_000_000, help="generator seed of the synthetic study"),
    timeout: float = typer.Option(300.0, help="seconds to wait for the SR"),
    kind: str = typer.Option(
        "knee-ap", help="study kind of the synthetic study: knee-ap (a knee radiograph) or "
        "full-leg (a bilateral standing long-leg study, 2800 x 8100 px)"),
) -> None:
    """Start a node in-process on a free port, C-STORE a synthetic study (a knee, or with
    ``--kind full-leg`` a long-leg study), wait for the SR and SC at the demo PACS.

    Each run sends a study with fresh UIDs, so it can be run again in the same folder.
    """
    from dicom_node.demo import run_demo
    from dicom_node.errors import KneeNodeError

    try:
        result = run_demo(out, seed=seed, timeout_s=timeout, progress=typer.echo, kind=kind)
    except KneeNodeError as exc:
        typer.echo(f"error: demo failed: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(result.summary())


def bench_node(
    config: Path | None = CONFIG_OPTION,
    count: int = typer.Option(10, min=1, help="synthetic instances to push"),
    max_side: int = typer.Option(1024, min=64, help="longest image side in pixels"),
) -> None:
    """Throughput of an in-process node (C-STORE to SR+SC back) with the configured model."""
    from benchmarks.bench_node import bench_node as run

    typer.echo(run(settings_or_exit(config), count, max_side).summary())


def register(app: typer.Typer) -> None:
    """Attach demo and bench-node."""
    app.command()(demo)
    app.command("bench-node")(bench_node)
