"""``knee-node bench-model`` (``knee-node predict`` is the node's: it writes the SR and SC
with ``--out``, see ``dicom_node.commands.predict``)."""

from __future__ import annotations

import json
from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    """Attach ``bench-model`` to the ``knee-node`` command."""

    @app.command("bench-model")
    def bench_model(
        count: int = typer.Option(10, help="Synthetic images to time."),
        threads: int = typer.Option(2, help="torch CPU threads."),
        seed: int = typer.Option(950_000_000, help="First generator seed."),
        out: Path = typer.Option(Path("benchmarks/model.json"), help="Where to write figures."),
        weights: Path | None = typer.Option(None, help="Weights folder (default: shipped)."),
        edge_refinement: str = typer.Option(
            "off", "--edge-refinement", help="Shaft-point edge refinement: off (the node's), "
            "report (computed, not used) or use."),
    ) -> None:
        """CPU latency per image (global, local, total) and peak memory of the predictor."""
        from inference.bench import run_benchmark

        if edge_refinement not in ("off", "report", "use"):
            raise typer.BadParameter(f"must be off, report or use; got {edge_refinement!r}",
                                     param_hint="--edge-refinement")
        figures = run_benchmark(count=count, threads=threads, seed=seed,
                                weights_dir=None if weights is None else str(weights),
                                edge_refinement=edge_refinement)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(figures, indent=2) + "\n")
        typer.echo(json.dumps(figures))
