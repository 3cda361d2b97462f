"""``knee-node synth-independent``: DICOM + JSON truth from the independent renderer.

For measuring only (``knee-node evaluate --data DIR``); never for training or for
choosing a checkpoint.
"""

from __future__ import annotations

from pathlib import Path

import typer


def synth_independent(
    count: int = typer.Option(..., "--count", min=1, help="Number of instances to write."),
    out: Path = typer.Option(..., "--out", help="Output folder (created if missing)."),
    seed: int = typer.Option(0, "--seed", min=0, help="First seed; instance i uses S+i."),
    phase: str = typer.Option("mixed", "--phase", help="pre, post or mixed."),
    max_side: int | None = typer.Option(None, "--max-side", min=64,
                                        help="Longest image side (default: full size)."),
) -> None:
    """Write COUNT knees from the independent evaluation renderer (never used for training).

    Files are OUT/indep_<seed>.dcm and OUT/indep_<seed>.json, seed = S + i.
    """
    from training.independent.truth import write

    if phase not in ("pre", "post", "mixed"):
        raise typer.BadParameter(f"must be pre, post or mixed; got {phase!r}",
                                 param_hint="--phase")
    for i in range(count):
        write(seed + i, out, phase=None if phase == "mixed" else phase, max_side=max_side)
    typer.echo(f"wrote {count} independent DICOM + JSON pairs to {out} "
               f"(seeds {seed}..{seed + count - 1})")


def _predictor(weights: Path | None, threads: int, tta_frames: int | None) -> object:
    from inference.predictor import WEIGHTS_DIR, KneePredictor

    options = {} if tta_frames is None else {"tta_frames": tta_frames}
    return KneePredictor.from_weights_dir(weights or WEIGHTS_DIR, num_threads=threads, **options)


def evaluate_renderers(
    synth: Path = typer.Option(..., "--synth", help="Hold-out folder from `knee-node synth`."),
    independent: Path = typer.Option(..., "--independent",
                                     help="Folder from `knee-node synth-independent`."),
    out: Path = typer.Option(Path("docs/results"), "--out", help="Where results go."),
    weights: Path | None = typer.Option(None, help="Weights folder (default: shipped)."),
    threads: int = typer.Option(2, help="torch CPU threads."),
    tta_frames: int | None = typer.Option(None, help="Frame ensemble size (default: shipped)."),
) -> None:
    """Measure both renderers' folders and write the side-by-side figures to OUT.

    OUT/renderers.json and OUT/renderers.md (per renderer, method and phase: MAD, OLS and
    Deming slope/intercept, Bland-Altman limits, flag rate, max unflagged error, interval
    coverage and AUROC), and OUT/knees_<renderer>.json (one record per knee).
    """
    import sys

    from training.evaluate import evaluate_folder
    from training.robustness import write_results

    for option, folder in (("--synth", synth), ("--independent", independent)):
        if not folder.is_dir():
            raise typer.BadParameter(f"{folder} is not a folder", param_hint=option)
    predictor = _predictor(weights, threads, tta_frames)
    groups = {"synth": evaluate_folder(predictor, synth),
              "independent": evaluate_folder(predictor, independent)}
    info = predictor.model_info  # type: ignore[attr-defined]
    summary = write_results(groups, out, f"{info.name} {info.version}",
                            "knee-node " + " ".join(sys.argv[1:]))
    typer.echo((out / "renderers.md").read_text())
    del summary


def calibrate_interval(
    data: Path = typer.Option(..., "--data", help="Validation folder from `knee-node synth` "
                              "(seeds apart from training and hold-out; never independent)."),
    out: Path = typer.Option(Path("docs/results/interval_calibration.json"), "--out"),
    weights: Path | None = typer.Option(None, help="Weights folder (default: shipped)."),
    threads: int = typer.Option(2, help="torch CPU threads."),
) -> None:
    """Fit the 95 % interval's scale on validation renders; print and write it."""
    import json
    import sys

    from training.evaluate import evaluate_folder, result_records
    from training.robustness import calibrate

    if not data.is_dir():
        raise typer.BadParameter(f"{data} is not a folder", param_hint="--data")
    if any(p.name.startswith("indep_") for p in data.glob("*.dcm")):
        raise typer.BadParameter(f"{data} holds independent renders: they are for measuring "
                                 "only, never for calibration", param_hint="--data")
    records = result_records(evaluate_folder(_predictor(weights, threads, None), data))
    cal = calibrate(records)
    cal["command"] = "knee-node " + " ".join(sys.argv[1:])
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(cal, indent=2) + "\n")
    typer.echo(json.dumps(cal, indent=2))


def register(app: typer.Typer) -> None:
    """Attach ``synth-independent``, ``evaluate-renderers`` and ``calibrate-interval``."""
    app.command("synth-independent")(synth_independent)
    app.command("evaluate-renderers")(evaluate_renderers)
    app.command("calibrate-interval")(calibrate_interval)
