"""What a running node process holds: settings, database, queue, measurer."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from dicom_node.db.session import Database
from dicom_node.measurer import LazyMeasurer, Measurer
from dicom_node.queue import JobQueue
from dicom_node.settings import Settings


@dataclass
class NodeContext:
    """The node's state in one process.

    ``measurer`` is a callable returning the measurer, so the model is loaded on first
    use in the process that measures (never in the listener, never before a fork).
    """

    settings: Settings
    db: Database
    queue: JobQueue
    measurer: Callable[[], Measurer] = field(default=lambda: _no_measurer())

    @classmethod
    def create(
        cls, settings: Settings, queue: JobQueue, measurer: Measurer | None = None
    ) -> NodeContext:
        """A context for ``settings``; ``measurer`` overrides ``model.factory`` (tests)."""
        if not isinstance(settings, Settings):
            raise TypeError(f"settings must be Settings, got {type(settings).__name__}")
        db = Database(settings.database_url, echo=settings.database.echo)
        if measurer is not None:
            fixed = measurer
            return cls(settings, db, queue, lambda: fixed)
        return cls(settings, db, queue, LazyMeasurer(settings.model).get)


def _no_measurer() -> Measurer:
    raise RuntimeError("this process has no measurer")
