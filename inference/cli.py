"""``knee-node predict`` and ``knee-node bench-model``."""

from __future__ import annotations

import json
from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    """Attach ``predict`` and ``bench-model`` to the ``knee-node`` command."""

    @app.command()
    def predict(
        file: Path = typer.Argument(..., help="DICOM instance (AP knee radiograph)."),
        weights: Path | None = typer.Option(None, help="Weights folder (default: shipped)."),
        threads: int = typer.Option(2, help="torch CPU threads."),
        device: str = typer.Option("cpu", help="torch device."),
        out: Path | None = typer.Option(
            None, "--out", help="Also write the SR and SC the node would send (OUT/sr.dcm, "
            "OUT/sc.dcm).", file_okay=False,
        ),
        config: Path | None = typer.Option(
            None, "--config", "-c", help="config.yaml whose reports.* settings the SR and SC "
            "use (default: embedded defaults).", dir_okay=False,
        ),
    ) -> None:
        """Print landmarks, aTFA (FTS, FNTS), verdict and quality of every knee as JSON.

        With --out, also write the SR and SC the node would send for this image.
        """
        import pydicom
        from pydicom.errors import InvalidDicomError

        from dicom_node.errors import InputImageError
        from inference.predictor import KneePredictor

        if not file.is_file():
            raise typer.BadParameter(f"{file} does not exist", param_hint="FILE")
        try:
            ds = pydicom.dcmread(file)
        except (InvalidDicomError, OSError) as exc:
            typer.echo(json.dumps({"error": f"not a readable DICOM file: {exc}"}))
            raise typer.Exit(2) from exc
        if weights is None:
            predictor = KneePredictor.from_shipped_weights(device=device, num_threads=threads)
        else:
            predictor = KneePredictor.from_weights_dir(weights, device=device, num_threads=threads)
        try:
            knees = predictor.measure(ds)
        except InputImageError as exc:
            typer.echo(json.dumps({"error": str(exc)}))
            raise typer.Exit(2) from exc
        written: dict[str, str] = {}
        if out is not None:
            from dicom_node.commands.common import settings_or_exit
            from dicom_node.results import make_results

            if not knees:
                typer.echo(json.dumps({"error": "no knee found in the image"}))
                raise typer.Exit(2)
            from dicom_node.reports.source_attributes import clean_source_attributes

            warnings = clean_source_attributes(ds)  # as the node does before copying them
            results = make_results(settings_or_exit(config), ds, knees)
            sr_path, sc_path = results.save(out)
            written = {"sr": str(sr_path), "sc": str(sc_path), "warnings": warnings}
        typer.echo(json.dumps({"file": str(file), "knees": [k.to_json() for k in knees],
                               **({"written": written} if written else {})}))

    @app.command("bench-model")
    def bench_model(
        count: int = typer.Option(10, help="Synthetic images to time."),
        threads: int = typer.Option(2, help="torch CPU threads."),
        seed: int = typer.Option(950_000_000, help="First generator seed."),
        out: Path = typer.Option(Path("benchmarks/model.json"), help="Where to write figures."),
        weights: Path | None = typer.Option(None, help="Weights folder (default: shipped)."),
    ) -> None:
        """CPU latency per image (global, local, total) and peak memory of the predictor."""
        from inference.bench import run_benchmark

        figures = run_benchmark(count=count, threads=threads, seed=seed,
                                weights_dir=None if weights is None else str(weights))
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(figures, indent=2) + "\n")
        typer.echo(json.dumps(figures))
