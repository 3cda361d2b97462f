"""The ``knee-node`` command line.

Each sub-command lives in the module that owns the work; this file only wires them up.
Imports are done inside the commands so ``knee-node --help`` stays fast (no torch).
"""

from __future__ import annotations

from pathlib import Path

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
    "inference.cli",  # knee-node bench-model
    "dicom_node.commands",  # serve, worker, db, status, resend, check-config, demo, predict
    "dicom_node.benchmark",  # knee-node bench (ingest, inference, end to end, scaling)
)


#: The node's own operations: run as ``knee-node <one of these>`` they need only
#: ``dicom_node.commands``, so the generator and the models (scipy, ...) are not imported
#: and ``scripts/serve`` listens sooner. ``knee-node --help`` still lists everything.
NODE_COMMANDS = frozenset({"serve", "worker", "status", "resend", "purge", "check-config", "db"})


def _modules_for(argv: list[str]) -> tuple[str, ...]:
    """The command modules to import for a command line (``sys.argv[1:]``)."""
    first = next((a for a in argv if not a.startswith("-")), None)
    return ("dicom_node.commands",) if first in NODE_COMMANDS else COMMAND_MODULES


def _register() -> None:
    """Attach the sub-commands of each part of the product (of the node only, when the
    command line runs one of :data:`NODE_COMMANDS`)."""
    import importlib
    import sys

    argv = sys.argv[1:] if Path(sys.argv[0]).name in ("knee-node", "cli.py", "-m") else []
    for name in _modules_for(argv):
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
