"""docs/reliability.md names, for every fault, tests that exist."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_test_named_in_reliability_md_exists() -> None:
    doc = (ROOT / "docs" / "reliability.md").read_text()
    ids = re.findall(r"`(tests/[\w/]+\.py)::(\w+)`", doc)
    assert len(ids) >= 25
    missing = []
    for path, name in ids:
        tree = ast.parse((ROOT / path).read_text())
        names = {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}
        if name not in names:
            missing.append(f"{path}::{name}")
    assert not missing, missing
    rows = re.findall(r"^\| (\d+)[a-e]? \|", doc, re.MULTILINE)
    assert {int(r) for r in rows} == set(range(1, 10)), "one row per item of issue 5"
