"""The result objects the node sends for one measured image (for a knee: the SR and the SC).

One function, :func:`make_results`, used by the node's measurement task
(:func:`dicom_node.pipeline.measure_instance`) and by ``knee-node predict --out``, so the
files ``predict`` writes are the ones the node would send. What is made is the study
kind's :attr:`~dicom_node.kinds.StudyKind.writers`: those not optional, and the optional
ones (the GSPS) when a destination lists them in its ``objects``.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydicom import Dataset

from dicom_node.kinds import DEFAULT_KIND, OutputWriter, get
from dicom_node.settings import Settings


@dataclass(frozen=True)
class Results:
    """The output objects of one image, in memory, in sending order."""

    objects: tuple[tuple[OutputWriter, Dataset], ...]

    def __getitem__(self, object_kind: str) -> Dataset:
        for writer, ds in self.objects:
            if writer.object_kind == object_kind:
                return ds
        raise KeyError(f"no {object_kind} object among {[w.object_kind for w, _ in self.objects]}")

    @property
    def sr(self) -> Dataset:
        """The Structured Report."""
        return self["SR"]

    @property
    def sc(self) -> Dataset:
        """The secondary-capture overlay."""
        return self["SC"]

    def save(self, folder: Path) -> tuple[Path, ...]:
        """Write each object to ``folder/<its file name>`` (``sr.dcm``, ``sc.dcm``; plain
        writes, the node's own are durable, see ``dicom_node.spool.write_durably``)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        paths = []
        for writer, ds in self.objects:
            path = folder / writer.file_name
            ds.save_as(path, enforce_file_format=True)
            paths.append(path)
        return tuple(paths)


def planned_writers(settings: Settings, kind: str = DEFAULT_KIND) -> tuple[OutputWriter, ...]:
    """The writers of the objects the node makes for an image of ``kind``, in sending
    order: the kind's writers that are not optional, and the optional ones a destination
    lists in its ``objects``."""
    study_kind = get(kind)
    wanted = {
        w.object_kind
        for d in settings.delivery.destinations
        for w in study_kind.writers_for(d.objects)
    }
    return tuple(w for w in study_kind.writers if not w.optional or w.object_kind in wanted)


def make_results(
    settings: Settings,
    source: Dataset,
    measurements: Sequence[Any],
    kind: str = DEFAULT_KIND,
    only: Collection[str] | None = None,
) -> Results:
    """The output objects of ``source`` for ``kind`` (knee-ap: TID 1500 SR and SC overlay).

    Parameters
    ----------
    settings
        The node's settings (series numbers, institution, device observer, SC encoding).
    source
        The measured image.
    measurements
        The items the kind's measurer returned (one record per knee).
    kind
        The study kind's name.
    only
        Object kinds to make (the node's job makes the SR, sends it, then the others);
        None: every planned object (:func:`planned_writers`).
    """
    writers = planned_writers(settings, kind)
    if only is not None:
        unknown = set(only) - {w.object_kind for w in writers}
        if unknown:
            raise ValueError(
                f"only names objects not made for kind {kind!r}: {sorted(unknown)} "
                f"(made: {[w.object_kind for w in writers]})"
            )
        writers = tuple(w for w in writers if w.object_kind in only)
    return Results(tuple((w, w.make(settings, source, measurements)) for w in writers))
