"""``knee-node train`` and ``knee-node evaluate``."""

from __future__ import annotations

import json
from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    """Attach ``train`` and ``evaluate`` to the ``knee-node`` command."""

    @app.command()
    def train(
        config: Path = typer.Option(Path(__file__).parent / "configs" / "cpu.yaml",
                                    help="YAML training config (training/configs/)."),
        out: Path = typer.Option(..., help="Run folder: checkpoints, log, training record."),
        export: Path | None = typer.Option(None, help="Write global.pt/local.pt here when done."),
        resume: bool = typer.Option(False, help="Continue from the checkpoints in --out."),
        stage: list[str] = typer.Option(["global", "local", "phase"], help="Stages to run."),
        init_from: Path | None = typer.Option(
            None, help="Start from these exported weights (e.g. inference/weights): fine-tune."
        ),
    ) -> None:
        """Train the global- and local-search models on synthetic radiographs.

        A config with ``kind: full-leg`` (training/configs/*_leg.yaml) trains a full-leg
        per-joint landmark method instead (training.leg_train).
        """
        from training.leg_train import is_leg_config

        if is_leg_config(config):
            from training.leg_train import run as run_leg

            typer.echo(json.dumps({k: v for k, v in run_leg(config, out).items()
                                   if k != "loss"}, default=str))
            return
        from training.train import run

        bad = set(stage) - {"global", "local", "phase"}
        if bad:
            raise typer.BadParameter(f"unknown stage(s) {sorted(bad)}", param_hint="--stage")
        record = run(config, out, export, resume, tuple(stage), init_from=init_from)
        typer.echo(json.dumps({k: v for k, v in record.items() if k != "meta"}, default=str))

    @app.command("export-weights")
    def export_weights_cmd(
        run: Path = typer.Option(..., help="Run folder with global_/local_checkpoint.pt."),
        out: Path = typer.Option(..., help="Where to write global.pt, local.pt, manifest.json."),
    ) -> None:
        """Export a run's latest checkpoints (finished or not) as shippable weights."""
        from training.train import export_from_checkpoints

        typer.echo(json.dumps(export_from_checkpoints(run, out)))

    @app.command("evaluate-leg")
    def evaluate_leg(
        data: Path = typer.Option(..., help="Folder written by `knee-node synth --kind full-leg`."),
        method: list[str] = typer.Option(..., help="NAME=PATH of a full-leg model.pt (repeat)."),
        jitter_mm: float = typer.Option(10.0, help="ROI centre jitter round the true joint."),
        limit: int | None = typer.Option(None, help="Only the first N instances."),
        out: Path = typer.Option(Path("docs/results"), help="Where full_leg_eval.* go."),
        crop_average_mm: float = typer.Option(
            0.0, help="Also report NAME+avg: points averaged over the crop and two crops "
            "moved this far (mm), as the full-leg predictor's crop_average (it uses 8)."),
    ) -> None:
        """Full-leg landmark methods on a hold-out, in the tables of papers 001/003."""
        from training.leg_evaluate import main as leg_main

        argv = ["--data", str(data), "--jitter-mm", str(jitter_mm), "--out", str(out),
                "--crop-average-mm", str(crop_average_mm)]
        argv += [a for m in method for a in ("--method", m)]
        leg_main(argv + (["--limit", str(limit)] if limit else []))

    @app.command()
    def evaluate(
        data: Path = typer.Option(..., help="Folder written by `knee-node synth` (.dcm + .json)."),
        weights: Path | None = typer.Option(None, help="Weights folder (default: shipped)."),
        out: Path | None = typer.Option(None, help="Where to write the PNG plots and "
                                        "results.json (default: DATA/evaluation)."),
        limit: int | None = typer.Option(None, help="Only the first N instances."),
        threads: int = typer.Option(2, help="torch CPU threads."),
        device: str = typer.Option("cpu", help="torch device."),
        tta_frames: int | None = typer.Option(
            None, help="Local-search frame ensemble size (default: the predictor's)."),
        tta_amplitude: float | None = typer.Option(
            None, help="Frame ensemble perturbation size (default: the predictor's)."),
    ) -> None:
        """Measure every instance of DATA and compare with its ground truth.

        Prints a table; the last line is one JSON object (all knees, then "pre" and
        "post").
        """
        from rich.console import Console
        from rich.progress import Progress
        from rich.table import Table

        from inference.predictor import WEIGHTS_DIR, KneePredictor
        from training.evaluate import evaluate_folder, plot, report, table_rows

        if not data.is_dir():
            raise typer.BadParameter(f"{data} is not a folder", param_hint="--data")
        options = {k: v for k, v in (("tta_frames", tta_frames),
                                     ("tta_amplitude", tta_amplitude)) if v is not None}
        predictor = KneePredictor.from_weights_dir(weights or WEIGHTS_DIR, device=device,
                                                   num_threads=threads, **options)
        console = Console(stderr=True)
        n_files = len(list(data.glob("*.dcm")))
        total = min(n_files, limit) if limit else n_files
        with Progress(console=console, transient=True) as progress:
            task = progress.add_task("evaluating", total=total)
            results = evaluate_folder(predictor, data, limit,
                                      progress=lambda: progress.advance(task))
        rep = report(results)
        rep["model"] = {"name": predictor.model_info.name, "version": predictor.model_info.version,
                        "tta_frames": predictor.tta_frames,
                        "tta_amplitude": predictor.tta_amplitude}
        rep["data"] = str(data)
        target = out or data / "evaluation"
        rep["plots"] = [str(p) for p in plot(results, target)]
        (target / "results.json").write_text(json.dumps(rep, indent=2))
        flagged = [{"file": r.name, "reasons": list(r.flag_reasons)} for r in results if r.flagged]
        (target / "flagged.json").write_text(json.dumps(flagged, indent=2))
        table = Table(title=f"knee-node evaluate {data}")
        for col in ("figure", "all", "pre-op", "post-op"):
            table.add_column(col)
        for row in table_rows(rep):
            table.add_row(*row)
        Console().print(table)
        typer.echo(json.dumps(rep))
