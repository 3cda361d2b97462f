"""``knee-node predict``: the model's result of one image as JSON, and with ``--out`` the
SR and SC the node would send for it (so it lives with the node, not in ``inference/``)."""

from __future__ import annotations

import json
from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    """Attach ``predict`` to the ``knee-node`` command."""

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
        """Print landmarks, aTFA (FTS, FNTS) with its 95 % interval, verdict and quality of
        every knee as JSON.

        With --out, also write the SR and SC the node would send for this image.
        """
        import pydicom
        from pydicom.errors import InvalidDicomError

        from inference.errors import InputImageError
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
        written: dict[str, object] = {}
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
        # ensure_ascii off: the angle texts ("+6.2° ± 0.8°") print as written
        typer.echo(json.dumps({"file": str(file), "knees": [k.to_json() for k in knees],
                               **({"written": written} if written else {})},
                              ensure_ascii=False))
