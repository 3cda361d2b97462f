"""The grouped command line: db, model, synth, bench; the old flat names as hidden aliases."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import typer.main
from typer.testing import CliRunner

from dicom_node import cli
from dicom_node.cli import app

ROOT = Path(__file__).resolve().parents[1]


def _group(name: str) -> object:
    return typer.main.get_command(app).commands[name]  # type: ignore[attr-defined]


@pytest.mark.parametrize(("group", "commands"), [
    ("db", {"upgrade", "current"}),
    ("model", {"predict", "evaluate", "train", "export", "bench-model"}),
    ("synth", {"dicom", "independent", "contact-sheet", "landmark-figure"}),
    ("bench", {"run", "node", "synth"}),
])
def test_each_group_holds_its_commands(group: str, commands: set[str]) -> None:
    assert commands <= set(_group(group).commands)  # type: ignore[attr-defined]
    result = CliRunner().invoke(app, [group, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for name in commands:
        assert name in result.output


@pytest.mark.parametrize(("old", "new"), [
    (["predict"], ["model", "predict"]),
    (["train"], ["model", "train"]),
    (["evaluate"], ["model", "evaluate"]),
    (["export-weights"], ["model", "export"]),
    (["bench-model"], ["model", "bench-model"]),
    (["bench-node"], ["bench", "node"]),
    (["contact-sheet"], ["synth", "contact-sheet"]),
    (["synth", "--count", "1"], ["synth", "dicom"]),
    (["bench", "--sections", "ingest"], ["bench", "run"]),
])
def test_the_flat_names_still_work(old: list[str], new: list[str]) -> None:
    runner = CliRunner()
    before = runner.invoke(app, [*old, "--help"], env={"COLUMNS": "200"})
    after = runner.invoke(app, [*new, "--help"], env={"COLUMNS": "200"})
    assert before.exit_code == 0 and after.exit_code == 0, before.output + after.output
    options = lambda text: sorted(w for w in text.split() if w.startswith("--"))  # noqa: E731
    assert options(before.output) == options(after.output)


def test_the_flat_aliases_are_hidden_from_help() -> None:
    top = CliRunner().invoke(app, ["--help"], env={"COLUMNS": "200"}).output
    for hidden in ("predict", "train", "export-weights", "bench-model", "contact-sheet"):
        assert f" {hidden} " not in top, f"{hidden} shows in knee-node --help"
    for shown in ("serve", "worker", "db", "model", "synth", "bench", "status"):
        assert f" {shown} " in top


def test_bench_with_no_words_runs_its_default() -> None:
    group = _group("bench")
    assert group.default_command == "run" and group.default_when_empty  # type: ignore[attr-defined]


def test_the_cli_imports_its_modules_by_name_in_the_source() -> None:
    """Static tools can follow: no importlib with a computed name in dicom_node/cli.py."""
    tree = ast.parse((ROOT / "dicom_node" / "cli.py").read_text())
    names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    assert "importlib" not in names
    targets = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert {"dicom_node.commands", "benchmarks", "inference.cli", "training.cli",
            "training.synth.cli", "training.synth_dicom", "training.independent.cli",
            "training.independent_leg.cli"} <= targets
    assert len(cli.COMMAND_SOURCES) == 8
