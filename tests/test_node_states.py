"""States are enums; every allowed move is in one table; an illegal move raises."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from dicom_node.db.states import (
    ALLOWED,
    DeliveryState,
    IllegalTransitionError,
    InstanceState,
    JobState,
    transition,
)
from dicom_node.errors import KneeNodeError

ROOT = Path(__file__).resolve().parents[1]


def test_allowed_moves_pass_and_return_the_new_state() -> None:
    assert transition("queued", JobState.RUNNING) is JobState.RUNNING
    assert transition(JobState.RUNNING, JobState.FLAGGED) is JobState.FLAGGED
    assert transition("sending", DeliveryState.RETRYING) is DeliveryState.RETRYING
    assert transition("failed", DeliveryState.PENDING) is DeliveryState.PENDING  # resend
    assert transition("stored", InstanceState.DUPLICATE) is InstanceState.DUPLICATE
    assert transition(None, JobState.RUNNING) is JobState.RUNNING  # a new row
    assert transition("sending", DeliveryState.SENDING) is DeliveryState.SENDING  # stays


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("done", JobState.RUNNING),
        ("failed", JobState.DONE),
        ("delivered", DeliveryState.FAILED),
        ("pending", DeliveryState.DELIVERED),
        ("ignored", InstanceState.QUEUED),
        ("measured", InstanceState.FAILED),
    ],
)
def test_an_illegal_move_raises_naming_both_states(old: str, new: object) -> None:
    with pytest.raises(IllegalTransitionError, match=f"from '{old}' to '{new}'") as info:
        transition(old, new)  # type: ignore[type-var]
    assert isinstance(info.value, KneeNodeError)


def test_a_value_of_another_enum_is_refused() -> None:
    with pytest.raises(IllegalTransitionError, match="'measured' is not a JobState"):
        transition("measured", JobState.FAILED)
    with pytest.raises(TypeError, match="new must be a state enum member"):
        transition("queued", "running")  # type: ignore[type-var]


def test_every_state_has_its_row_in_the_table() -> None:
    for enum in (InstanceState, JobState, DeliveryState):
        assert set(ALLOWED[enum]) == set(enum)
        for targets in ALLOWED[enum].values():
            assert all(isinstance(t, enum) for t in targets)


def test_members_are_the_strings_the_rows_hold() -> None:
    assert JobState.DONE == "done" and f"{DeliveryState.RETRYING}" == "retrying"


STATE_WORDS = {s.value for e in (InstanceState, JobState, DeliveryState) for s in e}
#: Files whose strings happen to be state words but are not states.
NOT_STATES = {
    "dicom_node/reports/overlay.py",  # colour names ("flagged")
    "dicom_node/destinations/dimse.py",  # "rejected" association, in a message
    "dicom_node/db/states.py",  # the definitions
}


def test_the_product_compares_no_state_as_a_string_literal() -> None:
    """``x.state == "done"``, ``state="failed"`` or ``.in_(("queued", ...))`` are gone
    from the node's product modules (the benchmark harness, a dev tool, may keep them)."""
    found = []
    for path in sorted((ROOT / "dicom_node").rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        if rel in NOT_STATES:  # the benchmark harness (benchmarks/, a dev tool) is not scanned
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Compare) and any(
                isinstance(c, ast.Constant) and c.value in STATE_WORDS
                for c in [node.left, *node.comparators]
            ):
                found.append(f"{rel}:{node.lineno}")
            if isinstance(node, ast.keyword) and node.arg == "state" and (
                isinstance(node.value, ast.Constant) and node.value.value in STATE_WORDS
            ):
                found.append(f"{rel}:{node.lineno}")
            if isinstance(node, ast.Tuple) and node.elts and all(
                isinstance(e, ast.Constant) and e.value in STATE_WORDS for e in node.elts
            ):
                found.append(f"{rel}:{node.lineno}")
    assert found == []
