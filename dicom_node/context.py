"""What a running node process holds: settings, database, queue, measurer."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from dicom_node.db.session import Database
from dicom_node.measurer import LazyMeasurer, Measurer
from dicom_node.queue import JobQueue
from dicom_node.settings import Settings


@dataclass
class NodeContext:
    """The node's state in one process.

    ``measurer(kind)`` returns the measurer of a study kind, so each model is loaded on
    first use in the process that measures (never in the listener, never before a fork).
    """

    settings: Settings
    db: Database
    queue: JobQueue
    measurer: Callable[[str], Measurer] = field(default=lambda kind: _no_measurer(kind))

    @classmethod
    def create(
        cls,
        settings: Settings,
        queue: JobQueue,
        measurer: Measurer | Mapping[str, Measurer] | None = None,
    ) -> NodeContext:
        """A context for ``settings``.

        ``measurer`` overrides the model factories (tests, demo): one measurer for every
        study kind, or a mapping kind name -> measurer (the other kinds load theirs).
        """
        if not isinstance(settings, Settings):
            raise TypeError(f"settings must be Settings, got {type(settings).__name__}")
        db = Database(settings.database_url, echo=settings.database.echo)
        lazy = LazyMeasurer(settings.model)
        if measurer is None:
            return cls(settings, db, queue, lazy.get)
        if isinstance(measurer, Mapping):
            fixed = dict(measurer)
            return cls(settings, db, queue, lambda kind: fixed.get(kind) or lazy.get(kind))
        one = measurer
        return cls(settings, db, queue, lambda kind: one)


def _no_measurer(kind: str) -> Measurer:
    raise RuntimeError(f"this process has no measurer (asked for study kind {kind!r})")
