"""The ``knee-node`` command line.

Each sub-command lives in the module that owns the work; this file only wires them up.
Imports are done inside the commands so ``knee-node --help`` stays fast (no torch).
"""

from __future__ import annotations

import typer

app = typer.Typer(
    name="knee-node",
    help="DICOM node measuring knee alignment (aTFA). Research use only; not a medical device.",
    no_args_is_help=True,
    add_completion=False,
)


#: Modules that own sub-commands; each has ``register(app: typer.Typer) -> None``.
COMMAND_MODULES: tuple[str, ...] = (
    "training.synth.cli",  # synth-sample utilities: contact-sheet, landmark-figure, bench-synth
    "training.synth_dicom",  # knee-node synth (DICOM + JSON ground truth)
    "training.cli",  # knee-node train, evaluate
    "training.independent.cli",  # knee-node synth-independent (evaluation renderer)
    "inference.cli",  # knee-node predict
    "dicom_node.commands",  # serve, worker, db, status, resend, check-config, demo
    "dicom_node.benchmark",  # knee-node bench (ingest, inference, end to end, scaling)
)


def _register() -> None:
    """Attach the sub-commands of each part of the product."""
    import importlib

    for name in COMMAND_MODULES:
        importlib.import_module(name).register(app)


@app.callback()
def main() -> None:
    """DICOM node measuring knee alignment (aTFA). Research use only; not a medical device."""


@app.command()
def version() -> None:
    """Print the knee-node version."""
    from dicom_node import __version__

    typer.echo(__version__)


_register()

if __name__ == "__main__":  # pragma: no cover
    app()
