"""The states of received instances, jobs and deliveries, and the moves allowed between them.

Each state is a :class:`enum.StrEnum` member, stored as its string in the ``state`` column
(so the rows, the SQL in the docs and the metrics' labels read as before, and a member
compares equal to its string). Every change of state in the node goes through
:func:`transition`, which refuses a move not listed here.

::

    instance  stored -> queued | ignored | rejected | duplicate | failed
              queued -> measured | failed          failed -> measured | failed
    job       queued -> running | failed           running -> done | flagged | failed
    delivery  pending -> sending | failed          sending -> delivered | retrying | failed
              retrying -> sending | pending | failed
              failed | delivered -> pending (``knee-node resend``)
"""

from __future__ import annotations

from enum import StrEnum
from typing import TypeVar

from dicom_node.errors import KneeNodeError


class InstanceState(StrEnum):
    """What became of one received instance."""

    STORED = "stored"
    QUEUED = "queued"
    IGNORED = "ignored"
    REJECTED = "rejected"
    MEASURED = "measured"
    FAILED = "failed"
    #: same SOP Instance UID as one queued or measured before: not measured again
    DUPLICATE = "duplicate"


class JobState(StrEnum):
    """Where one measurement job is."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FLAGGED = "flagged"
    FAILED = "failed"


class DeliveryState(StrEnum):
    """Where sending one job's objects to one destination is."""

    PENDING = "pending"
    SENDING = "sending"
    DELIVERED = "delivered"
    RETRYING = "retrying"
    FAILED = "failed"


State = InstanceState | JobState | DeliveryState

_I, _J, _D = InstanceState, JobState, DeliveryState
#: per state enum: state -> the states it may move to (staying in a state is allowed).
#: Keyed by enum first: members of different enums with the same value ("failed") are
#: equal strings, so they cannot share one dict.
ALLOWED: dict[type[State], dict[State, frozenset[State]]] = {
    InstanceState: {
        _I.STORED: frozenset({_I.QUEUED, _I.IGNORED, _I.REJECTED, _I.DUPLICATE, _I.FAILED}),
        _I.QUEUED: frozenset({_I.MEASURED, _I.FAILED}),
        _I.FAILED: frozenset({_I.MEASURED}),  # measured again by a redelivered task
        _I.MEASURED: frozenset(),
        _I.IGNORED: frozenset(),
        _I.REJECTED: frozenset(),
        _I.DUPLICATE: frozenset(),
    },
    JobState: {
        _J.QUEUED: frozenset({_J.RUNNING, _J.FAILED}),
        _J.RUNNING: frozenset({_J.DONE, _J.FLAGGED, _J.FAILED}),
        _J.DONE: frozenset(),
        _J.FLAGGED: frozenset(),
        _J.FAILED: frozenset(),
    },
    DeliveryState: {
        _D.PENDING: frozenset({_D.SENDING, _D.FAILED}),
        _D.SENDING: frozenset({_D.DELIVERED, _D.RETRYING, _D.FAILED}),
        _D.RETRYING: frozenset({_D.SENDING, _D.PENDING, _D.FAILED}),
        _D.FAILED: frozenset({_D.PENDING}),
        _D.DELIVERED: frozenset({_D.PENDING}),
    },
}

#: Jobs with a result (its objects written).
FINISHED_JOB_STATES: tuple[JobState, ...] = (JobState.DONE, JobState.FLAGGED)
#: Jobs that will not change again.
FINAL_JOB_STATES: tuple[JobState, ...] = (JobState.DONE, JobState.FLAGGED, JobState.FAILED)
#: Jobs a worker may still be on (or died on).
OPEN_JOB_STATES: tuple[JobState, ...] = (JobState.QUEUED, JobState.RUNNING)
#: Deliveries some process still has to finish.
UNFINISHED_DELIVERY_STATES: tuple[DeliveryState, ...] = (
    DeliveryState.PENDING,
    DeliveryState.SENDING,
    DeliveryState.RETRYING,
)


class IllegalTransitionError(KneeNodeError):
    """A row was asked to move between two states that :data:`ALLOWED` does not link."""


S = TypeVar("S", InstanceState, JobState, DeliveryState)


def transition(old: str | S | None, new: S) -> S:
    """``new``, if a row in state ``old`` may move to it; else IllegalTransitionError.

    Parameters
    ----------
    old
        The row's current state (a member, or the string read from the column); None for a
        row being created, which may start in any state.
    new
        The state to move to.
    """
    kind = type(new)
    if kind not in (InstanceState, JobState, DeliveryState):
        raise TypeError(f"new must be a state enum member, got {new!r}")
    if old is None:
        return new
    try:
        current = kind(old)
    except ValueError:
        raise IllegalTransitionError(
            f"{old!r} is not a {kind.__name__}; known: {', '.join(kind)}"
        ) from None
    moves = ALLOWED[kind][current]
    if current != new and new not in moves:
        allowed = ", ".join(sorted(moves)) or "none"
        raise IllegalTransitionError(
            f"{kind.__name__} cannot move from {current.value!r} to {new.value!r} "
            f"(allowed from {current.value!r}: {allowed})"
        )
    return new


__all__ = [
    "ALLOWED",
    "FINAL_JOB_STATES",
    "FINISHED_JOB_STATES",
    "OPEN_JOB_STATES",
    "UNFINISHED_DELIVERY_STATES",
    "DeliveryState",
    "IllegalTransitionError",
    "InstanceState",
    "JobState",
    "transition",
]
