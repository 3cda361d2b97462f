"""``knee-node`` commands of the generator: contact-sheet, landmark-figure, bench-synth."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    """Add the generator's commands to ``app``."""

    @app.command("contact-sheet")
    def contact_sheet(
        out: Path = typer.Option(Path("docs/contact_sheet.png"), help="PNG to write."),
        seed: int = typer.Option(0, help="First seed; the 16 images use seed, seed+1, ..."),
    ) -> None:
        """Write a 4x4 contact sheet of synthetic knees (pre/post, left/right)."""
        from training.synth.figures import contact_sheet as make

        make(out, seed)
        typer.echo(f"wrote {out}")

    @app.command("landmark-figure")
    def landmark_figure(
        out: Path = typer.Option(Path("docs/landmarks.png"), help="PNG to write."),
        seed: int = typer.Option(7, help="Seed of the knees drawn."),
    ) -> None:
        """Write the labelled picture of the landmark scheme (pre- and post-operative)."""
        from training.synth.figures import landmark_figure as make

        make(out, seed)
        typer.echo(f"wrote {out}")

    @app.command("bench-synth")
    def bench_synth(
        out: Path = typer.Option(Path("benchmarks/synth.json"), help="JSON to write."),
        n_small: int = typer.Option(200, help="Training-size samples (max_side=512) to time."),
        n_full: int = typer.Option(10, help="Full-size images to time."),
    ) -> None:
        """Time the generator on one thread; print and write ms per image."""
        from training.synth.figures import bench

        res = bench(out, n_small, n_full)
        for k, v in res.items():
            typer.echo(f"{k}: {v}")
