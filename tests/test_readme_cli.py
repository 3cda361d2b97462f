"""The README's command table matches the CLI: every command it shows answers ``--help``
and has every option the table gives it (issue 17: `predict --out` was documented but
missing)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dicom_node.cli import app

README = Path(__file__).resolve().parents[1] / "README.md"
_WORD = re.compile(r"^[a-z][a-z0-9-]*$")


def table_commands(text: str) -> list[tuple[tuple[str, ...], tuple[str, ...]]]:
    """(sub-command path, options) of each backticked command in the command table."""
    start = text.index("| command | what it does |")
    rows = []
    for line in text[start:].splitlines()[2:]:
        if not line.startswith("|"):
            break
        first_column = line.split("|")[1]
        for span in re.findall(r"`([^`]+)`", first_column):
            tokens = span.split()
            if tokens and tokens[0] == "knee-node":
                tokens = tokens[1:]
            path = []
            for tok in tokens:
                if not _WORD.match(tok):
                    break
                path.append(tok)
            options = tuple(sorted({o for o in re.findall(r"--[a-z][a-z0-9-]*", span)}))
            rows.append((tuple(path), options))
    return rows


def readme_commands(text: str) -> list[tuple[tuple[str, ...], tuple[str, ...]]]:
    """Every ```knee-node ...``` code span of the README (table or prose), as above."""
    spans = sorted(set(re.findall(r"`(knee-node [^`]+)`", text)))
    rows = []
    for span in spans:
        tokens = span.split()[1:]
        path = []
        for tok in tokens:
            if not _WORD.match(tok):
                break
            path.append(tok)
        rows.append((tuple(path), tuple(sorted(set(re.findall(r"--[a-z][a-z0-9-]*", span))))))
    return rows


def test_the_table_is_parsed() -> None:
    rows = dict(table_commands(README.read_text()))
    assert ("model", "predict") in rows and rows[("model", "predict")] == ("--out",)
    assert ("db", "upgrade") in rows and ("status",) in rows and len(rows) >= 12


@pytest.mark.parametrize(
    ("path", "options"),
    sorted(set(table_commands(README.read_text()) + readme_commands(README.read_text()))),
    ids=lambda v: " ".join(v),
)
def test_readme_command_has_its_options(path: tuple[str, ...], options: tuple[str, ...]) -> None:
    result = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, f"`knee-node {' '.join(path)} --help`: {result.output}"
    missing = [o for o in options if o not in result.output]
    assert not missing, f"`knee-node {' '.join(path)}` has no {missing} (README says it has)"
