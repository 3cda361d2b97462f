"""``knee-node synth independent-leg`` / ``python -m training.independent_leg``.

Writes DICOM + JSON truth from the independent full-leg renderer, for measuring only
(``python -m training.leg_evaluate --data DIR``, ``python -m training.leg_node_evaluate
--data DIR``); never for training or for choosing a checkpoint.
"""

from __future__ import annotations

import time
from pathlib import Path

import typer


def synth_independent_leg(
    count: int = typer.Option(..., "--count", min=1, help="Number of studies to write."),
    out: Path = typer.Option(..., "--out", help="Output folder (created if missing)."),
    seed: int = typer.Option(0, "--seed", min=0, help="First seed; study i uses S+i."),
    modality: str = typer.Option("mixed", "--modality", help="DX, CR or mixed."),
) -> None:
    """Write COUNT bilateral full-leg studies from the independent renderer (evaluation only).

    Files are OUT/full_leg_<10-digit seed>.dcm and .json, seed = S + i.
    """
    from training.independent_leg.storage import write

    if modality not in ("DX", "CR", "mixed"):
        raise typer.BadParameter(f"must be DX, CR or mixed; got {modality!r}",
                                 param_hint="--modality")
    t0 = time.perf_counter()
    for i in range(count):
        write(seed + i, out, None if modality == "mixed" else modality)
    dt = time.perf_counter() - t0
    typer.echo(f"wrote {count} independent full-leg DICOM + JSON pairs to {out} "
               f"(seeds {seed}..{seed + count - 1}; {dt / count:.2f} s per study)")


def register(app: typer.Typer) -> None:
    """Attach ``synth-independent-leg`` (placed as ``knee-node synth independent-leg``)."""
    app.command("synth-independent-leg")(synth_independent_leg)


def main() -> None:
    """``python -m training.independent_leg``."""
    typer.run(synth_independent_leg)
