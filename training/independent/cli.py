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


def register(app: typer.Typer) -> None:
    """Attach ``synth-independent`` to the knee-node command line."""
    app.command("synth-independent")(synth_independent)
