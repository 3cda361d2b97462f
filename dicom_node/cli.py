"""The ``knee-node`` command line, in groups.

- ``serve``, ``worker``, ``status``, ``resend``, ``purge``, ``check-config``, ``demo``,
  ``version``: the node's operations, at the top;
- ``db …`` (upgrade, current): the schema;
- ``model …`` (predict, evaluate, evaluate-leg, train, export, bench-model,
  evaluate-renderers, calibrate-interval): the models;
- ``synth …`` (dicom, independent, independent-leg, contact-sheet, landmark-figure): synthetic data;
- ``bench …`` (run, node, model, synth, synth-dicom, reports): benchmarks.

Each command lives in the module that owns the work and is attached by that module's
``register(app)``; this file only places them. The commands from before the groups
(``predict``, ``train``, ``bench-model``, ``synth --count``, ``bench --sections`` ...)
still work, as hidden aliases (``synth`` and ``bench`` run their default sub-command,
``dicom`` and ``run``, when the next word is not one), so scripts keep working.

Every module is imported by an explicit ``from … import register`` inside a function
(static tools follow them; nothing is imported by a name built at run time), and only
when needed, so ``knee-node --help`` stays fast (no torch) and the node's own commands
(:data:`NODE_COMMANDS`) import neither the generator nor the models.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer
from typer.core import TyperGroup
from typer.models import CommandInfo

app = typer.Typer(
    name="knee-node",
    help="DICOM node measuring knee alignment (aTFA). Research use only; not a medical device.",
    no_args_is_help=True,
    add_completion=False,
)


class DefaultCommandGroup(TyperGroup):
    """A group that runs :attr:`default_command` when the first word is not one of its
    sub-commands (``knee-node synth --count 3`` is ``knee-node synth dicom --count 3``)."""

    default_command: str = ""
    #: run the default sub-command with no words at all (``knee-node bench``), not help
    default_when_empty: bool = False

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:  # noqa: D102
        if self.default_command and (
            (not args and self.default_when_empty)
            or (args and args[0] not in self.commands and args[0] not in ("--help", "-h"))
        ):
            args = [self.default_command, *args]
        return super().parse_args(ctx, args)


def _default_group(default: str, when_empty: bool = False) -> type[DefaultCommandGroup]:
    return type(f"Default{default.title()}Group", (DefaultCommandGroup,),
                {"default_command": default, "default_when_empty": when_empty})


#: The groups: name -> its Typer.
GROUPS: dict[str, typer.Typer] = {
    "model": typer.Typer(help="The models: predict, evaluate, train, export, benchmark.",
                         no_args_is_help=True),
    "synth": typer.Typer(help="Synthetic radiographs with exact ground truth "
                              "(default sub-command: dicom).",
                         no_args_is_help=True, cls=_default_group("dicom")),
    "bench": typer.Typer(help="Benchmarks (default sub-command: run; `knee-node bench` "
                              "alone runs it).",
                         no_args_is_help=False, invoke_without_command=False,
                         cls=_default_group("run", when_empty=True)),
}

#: Where each command of the modules goes: flat name -> (group, name in the group).
#: A flat name not listed stays at the top (serve, worker, db, status, ...).
GROUPED: dict[str, tuple[str, str]] = {
    "predict": ("model", "predict"),
    "evaluate": ("model", "evaluate"),
    "evaluate-leg": ("model", "evaluate-leg"),
    "train": ("model", "train"),
    "export-weights": ("model", "export"),
    "bench-model": ("model", "bench-model"),
    "evaluate-renderers": ("model", "evaluate-renderers"),
    "calibrate-interval": ("model", "calibrate-interval"),
    "synth": ("synth", "dicom"),
    "synth-independent": ("synth", "independent"),
    "synth-independent-leg": ("synth", "independent-leg"),
    "contact-sheet": ("synth", "contact-sheet"),
    "landmark-figure": ("synth", "landmark-figure"),
    "bench": ("bench", "run"),
    "bench-node": ("bench", "node"),
    "bench-synth": ("bench", "synth"),
    "bench-synth-dicom": ("bench", "synth-dicom"),
    "bench-reports": ("bench", "reports"),
}


# -- the modules that own commands: explicit imports, inside functions ----------------------
def _node(target: typer.Typer) -> None:
    """serve, worker, db, status, resend, purge, check-config, demo, bench-node, predict."""
    from dicom_node.commands import register

    register(target)


def _benchmarks(target: typer.Typer) -> None:
    """bench (ingest, inference, end to end, scaling)."""
    from benchmarks import register

    register(target)


def _models(target: typer.Typer) -> None:
    """bench-model."""
    from inference.cli import register

    register(target)


def _training(target: typer.Typer) -> None:
    """train, evaluate, evaluate-leg, export-weights."""
    from training.cli import register

    register(target)


def _synth(target: typer.Typer) -> None:
    """contact-sheet, landmark-figure, bench-synth."""
    from training.synth.cli import register

    register(target)


def _synth_dicom(target: typer.Typer) -> None:
    """synth (DICOM + JSON ground truth), bench-synth-dicom."""
    from training.synth_dicom import register

    register(target)


def _independent(target: typer.Typer) -> None:
    """synth-independent, evaluate-renderers, calibrate-interval."""
    from training.independent.cli import register

    register(target)


def _independent_leg(target: typer.Typer) -> None:
    """synth-independent-leg (the independent full-leg renderer)."""
    from training.independent_leg.cli import register

    register(target)


#: Every module's registration, in the order ``--help`` lists them.
COMMAND_SOURCES: tuple[Callable[[typer.Typer], None], ...] = (
    _synth, _synth_dicom, _training, _independent, _independent_leg, _models, _node, _benchmarks,
)

#: The node's own operations: run as ``knee-node <one of these>`` they need only
#: ``dicom_node.commands``, so the generator and the models (scipy, ...) are not imported
#: and ``scripts/serve`` listens sooner. ``knee-node --help`` still lists everything.
NODE_COMMANDS = frozenset({"serve", "worker", "status", "resend", "purge", "check-config", "db"})


def _sources_for(argv: list[str]) -> tuple[Callable[[typer.Typer], None], ...]:
    """The registrations to run for a command line (``sys.argv[1:]``)."""
    first = next((a for a in argv if not a.startswith("-")), None)
    return (_node,) if first in NODE_COMMANDS else COMMAND_SOURCES


def _place(info: CommandInfo) -> None:
    """Attach one command: in its group (and, hidden, under its old flat name), or at
    the top."""
    flat = info.name or (info.callback.__name__.replace("_", "-") if info.callback else "")
    if flat not in GROUPED:
        app.registered_commands.append(info)
        return
    group, name = GROUPED[flat]
    fields = {k: getattr(info, k) for k in (
        "cls", "context_settings", "callback", "help", "epilog", "short_help",
        "options_metavar", "add_help_option", "no_args_is_help", "deprecated",
        "rich_help_panel")}
    GROUPS[group].registered_commands.append(CommandInfo(name=name, hidden=info.hidden, **fields))
    if flat not in GROUPS:  # the old name, unless a group has taken it
        app.registered_commands.append(CommandInfo(name=flat, hidden=True, **fields))


def _register() -> None:
    """Attach the sub-commands of each part of the product (of the node only, when the
    command line runs one of :data:`NODE_COMMANDS`)."""
    argv = sys.argv[1:] if Path(sys.argv[0]).name in ("knee-node", "cli.py", "-m") else []
    for source in _sources_for(argv):
        scratch = typer.Typer()
        source(scratch)
        for info in scratch.registered_commands:
            _place(info)
        app.registered_groups.extend(scratch.registered_groups)  # db
    for name, group in GROUPS.items():
        if group.registered_commands:
            app.add_typer(group, name=name)


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
