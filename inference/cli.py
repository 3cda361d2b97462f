"""``knee-node bench-model`` (``knee-node predict`` is the node's: it writes the SR and SC
with ``--out``, see ``dicom_node.commands.predict``).

``--kind`` picks the predictor (:mod:`inference.bench_kinds`: knee, the default, or
full-leg); each kind brings its own defaults and refuses the other kinds' options.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    """Attach ``bench-model`` to the ``knee-node`` command."""

    @app.command("bench-model")
    def bench_model(
        kind: str = typer.Option("knee", "--kind", help="Predictor: knee or full-leg."),
        count: int | None = typer.Option(
            None, help="Images (knee, default 10) or bilateral studies (full-leg, default 5)."),
        threads: int = typer.Option(2, help="torch CPU threads."),
        seed: int | None = typer.Option(
            None, help="First generator seed (knee 950000000, full-leg 990000000)."),
        out: Path | None = typer.Option(
            None, help="Where to write figures (knee benchmarks/model.json, full-leg "
            "benchmarks/model_full_leg.json)."),
        weights: Path | None = typer.Option(None, help="Weights folder (default: shipped)."),
        edge_refinement: str | None = typer.Option(
            None, "--edge-refinement", help="Knee: shaft-point edge refinement: off (the "
            "node's, default), report (computed, not used) or use."),
        max_rows: int | None = typer.Option(
            None, "--max-rows", help="Full-leg: render at most this many rows (smaller images)."),
        full_size: bool | None = typer.Option(
            None, "--full-size/--generator-size",
            help="Full-leg: every study 2800 x 8100 (default: the generator's own size)."),
        transfer_syntax: str | None = typer.Option(
            None, "--transfer-syntax",
            help="Full-leg: transfer syntax of the rendered studies (default explicit; mixed "
            "draws it per seed)."),
    ) -> None:
        """CPU latency and peak memory of a predictor (knee: per image; full-leg: per study)."""
        from inference.bench_kinds import (
            BenchError,
            BenchKind,
            BenchOptionError,
            BenchRequest,
            registry,
            run,
        )

        kinds = registry()
        try:
            spec = kinds[BenchKind(kind)]
        except ValueError:
            raise typer.BadParameter(f"must be one of {', '.join(k.value for k in kinds)}; "
                                     f"got {kind!r}", param_hint="--kind") from None
        if edge_refinement not in (None, "off", "report", "use"):
            raise typer.BadParameter(f"must be off, report or use; got {edge_refinement!r}",
                                     param_hint="--edge-refinement")
        try:
            request = BenchRequest(
                count=spec.count if count is None else count, threads=threads,
                seed=spec.seed if seed is None else seed, weights=weights,
                edge_refinement=edge_refinement, max_rows=max_rows, full_size=full_size,
                transfer_syntax=transfer_syntax)
            figures = run(spec.kind, request)
        except BenchOptionError as exc:
            raise typer.BadParameter(str(exc)) from None
        except BenchError as exc:
            typer.echo(f"bench-model failed: {exc}", err=True)
            raise typer.Exit(1) from None
        target = spec.out if out is None else out
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(figures, indent=2) + "\n")
        typer.echo(json.dumps(figures))
