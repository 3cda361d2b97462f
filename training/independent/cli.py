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


def _predictor(weights: Path | None, threads: int, tta_frames: int | None,
               edges: bool = False, notch: bool = False) -> object:
    """The predictor measured; with ``edges`` it also reports the edge-refined angles, with
    ``notch`` the angles with the notch pair refined (both from the same network points)."""
    from inference.edges import EdgeRefinement
    from inference.notch import NotchRefinement
    from inference.predictor import WEIGHTS_DIR, KneePredictor

    options: dict[str, object] = {} if tta_frames is None else {"tta_frames": tta_frames}
    options["edge_refinement"] = EdgeRefinement.REPORT if edges else EdgeRefinement.OFF
    options["notch_refinement"] = NotchRefinement.REPORT if notch else NotchRefinement.OFF
    return KneePredictor.from_weights_dir(weights or WEIGHTS_DIR, num_threads=threads,
                                          **options)  # type: ignore[arg-type]


def evaluate_renderers(
    synth: Path = typer.Option(..., "--synth", help="Hold-out folder from `knee-node synth`."),
    independent: Path = typer.Option(..., "--independent",
                                     help="Folder from `knee-node synth-independent`."),
    out: Path = typer.Option(Path("docs/results"), "--out", help="Where results go."),
    weights: Path | None = typer.Option(None, help="Weights folder (default: shipped)."),
    threads: int = typer.Option(2, help="torch CPU threads."),
    tta_frames: int | None = typer.Option(None, help="Frame ensemble size (default: shipped)."),
    only: str | None = typer.Option(None, "--only", help="synth or independent: measure only "
                                    "that folder and write OUT/knees_<name>.json."),
    merge: bool = typer.Option(False, "--merge", help="Measure nothing: summarise the "
                               "OUT/knees_*.json already written (with the shipped interval "
                               "constants)."),
    edges: bool = typer.Option(False, "--edges", help="Also refine the shaft points on the "
                               "image's edges (inference.edges, off in the node) and report "
                               "the '+edges' columns."),
    notch: bool = typer.Option(False, "--notch", help="Also refine the femoral notch pair on "
                               "the notch walls (inference.notch) and report the '+notch' "
                               "columns (the same knees, the same network points)."),
) -> None:
    """Measure both renderers' folders and write the side-by-side figures to OUT.

    OUT/renderers.json and OUT/renderers.md (per renderer, method and phase: MAD, OLS and
    Deming slope/intercept, Bland-Altman limits, flag rate, max unflagged error, interval
    coverage and AUROC), and OUT/knees_<renderer>.json (one record per knee).
    """
    import json
    import sys

    from inference import uncertainty
    from training.evaluate import KneeResult, evaluate_folder, result_records
    from training.robustness import with_interval, write_results

    folders = {"synth": synth, "independent": independent}
    if only is not None and only not in folders:
        raise typer.BadParameter(f"must be synth or independent; got {only!r}",
                                 param_hint="--only")
    command = "knee-node " + " ".join(sys.argv[1:])
    if not merge:
        for name, folder in folders.items():
            if only in (None, name) and not folder.is_dir():
                raise typer.BadParameter(f"{folder} is not a folder", param_hint=f"--{name}")
        predictor = _predictor(weights, threads, tta_frames, edges, notch)
        info = predictor.model_info  # type: ignore[attr-defined]
        out.mkdir(parents=True, exist_ok=True)
        for name, folder in folders.items():
            if only in (None, name):
                recs = result_records(evaluate_folder(predictor, folder))
                (out / f"knees_{name}.json").write_text(json.dumps(
                    {"model": f"{info.name} {info.version}", "command": command,
                     "knees": recs}, indent=0))
        if only is not None:
            return
    groups, model, commands = {}, "", []
    for name in folders:
        path = out / f"knees_{name}.json"
        if not path.is_file():
            raise typer.BadParameter(f"{path} is missing: measure it first", param_hint="--out")
        blob = json.loads(path.read_text())
        model = blob["model"]
        if blob["command"] not in commands:
            commands.append(blob["command"])
        recs = [with_interval(r, uncertainty.INTERVAL_SCALE, uncertainty.SPREAD_WEIGHT,
                              uncertainty.MAX_HALF_WIDTH_DEG, uncertainty.FLAG_ON_INTERVAL,
                              uncertainty.INTERVAL_FLOOR_DEG)
                for r in blob["knees"]]
        groups[name] = [KneeResult(**{**r, "flag_reasons": tuple(r["flag_reasons"])})
                        for r in recs]
    write_results(groups, out, model,
                  "; ".join(commands + ([command] if command not in commands else [])))
    typer.echo((out / "renderers.md").read_text())


def calibrate_interval(
    data: Path = typer.Option(..., "--data", help="Validation folder from `knee-node synth` "
                              "(seeds apart from training and hold-out; never independent)."),
    out: Path = typer.Option(Path("docs/results/interval_calibration.json"), "--out"),
    weights: Path | None = typer.Option(None, help="Weights folder (default: shipped)."),
    threads: int = typer.Option(2, help="torch CPU threads."),
    reuse: bool = typer.Option(False, "--reuse", help="Fit on the per-knee records already "
                               "written next to OUT (OUT stem + _knees.json) instead of "
                               "measuring DATA again."),
) -> None:
    """Fit the 95 % interval (floor, scale, soft-argmax weight) on validation renders.

    Writes OUT and the per-knee records OUT stem + ``_knees.json``; prints the fit.
    """
    import json
    import sys

    from training.evaluate import evaluate_folder, result_records
    from training.robustness import calibrate

    if not data.is_dir():
        raise typer.BadParameter(f"{data} is not a folder", param_hint="--data")
    if any(p.name.startswith("indep_") for p in data.glob("*.dcm")):
        raise typer.BadParameter(f"{data} holds independent renders: they are for measuring "
                                 "only, never for calibration", param_hint="--data")
    knees = out.with_name(out.stem + "_knees.json")
    if reuse and knees.is_file():
        records = json.loads(knees.read_text())["knees"]
    else:
        records = result_records(evaluate_folder(_predictor(weights, threads, None), data))
        out.parent.mkdir(parents=True, exist_ok=True)
        knees.write_text(json.dumps({"command": "knee-node " + " ".join(sys.argv[1:]),
                                     "knees": records}, indent=0))
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
