"""The measuring step, injectable: anything with ``measure(ds)`` and ``model_info``.

Each study kind has its measurer factory (``StudyKind.measurer_factory``, overridden by
``model.factories.<kind>``; ``model.factory`` is knee-ap's). Workers load each kind's
measurer once per process, lazily, on its first image (so a Celery prefork worker loads
the model in each child after the fork, never in the parent).
"""

from __future__ import annotations

import importlib
import logging
import os
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from dicom_node.errors import ConfigError

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

    from dicom_node.settings import ModelSettings
    from inference.measurement import ModelInfo

log = logging.getLogger(__name__)


@runtime_checkable
class Measurer(Protocol):
    """What the node needs from a landmark model (of any study kind)."""

    @property
    def model_info(self) -> ModelInfo:
        """Identity of the algorithm (name, version, weights hashes, parameters)."""
        ...

    def measure(self, ds: Dataset) -> Sequence[Any]:
        """One record per item (knee, leg) in ``ds``, which the kind's ``items`` and
        ``writers`` read (knee-ap: ``KneeMeasurement``); InputImageError for unusable
        images."""
        ...


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def worker_threads(
    settings: ModelSettings, *, in_process: bool, cpus: int | None = None
) -> int | None:
    """torch CPU threads a worker runs the model with.

    Parameters
    ----------
    settings
        The model settings; ``num_threads`` wins when set.
    in_process
        True for the in-process worker of ``knee-node serve``, which shares its process
        with the listener, the report building and the delivery: with ``num_threads``
        unset it gets all CPUs but one (at least one), so torch's threads do not wait
        for the listener's at every layer. False for a Celery worker: unset means
        torch's default.
    cpus
        CPUs available (default: :func:`available_cpus`).

    Returns
    -------
    int or None
        The thread count, or None to leave torch's default.
    """
    if settings.num_threads is not None:
        return settings.num_threads
    if not in_process:
        return None
    return max(1, (available_cpus() if cpus is None else cpus) - 1)


def apply_worker_threads(threads: int | None) -> int | None:
    """Set torch's intra-op threads to ``threads`` (None: leave them); returns what torch
    then uses, or None when torch cannot be imported. Call it in the thread that runs
    the jobs, once, before the first."""
    if threads is not None and threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    try:
        import torch
    except ImportError:  # a node with a measurer that needs no torch
        log.warning("torch is not importable; model.num_threads not applied")
        return None
    if threads is not None and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return int(torch.get_num_threads())


def shipped_predictor(settings: ModelSettings) -> Measurer:
    """The project's landmark model with its shipped weights (the production measurer)."""
    from inference.predictor import KneePredictor

    return KneePredictor.from_shipped_weights(
        device=settings.device, num_threads=settings.num_threads
    )


def build_measurer(settings: ModelSettings, factory: str) -> Measurer:
    """Import ``factory`` ("module:callable") and call it with ``settings``."""
    module_name, _, attr = factory.partition(":")
    try:
        make = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"model factory: cannot load {factory!r}: {exc}") from exc
    measurer = make(settings)
    if not isinstance(measurer, Measurer):
        raise ConfigError(
            f"model factory: {factory!r} returned {type(measurer).__name__}, "
            "which has no measure(ds) and model_info"
        )
    return measurer


class LazyMeasurer:
    """Builds each study kind's measurer on first use, once, thread-safely."""

    def __init__(self, settings: ModelSettings) -> None:
        self._settings = settings
        self._measurers: dict[str, Measurer] = {}
        self._lock = threading.Lock()

    def get(self, kind: str = "knee-ap") -> Measurer:
        """The measurer of study kind ``kind`` (loaded now if this is its first use here)."""
        measurer = self._measurers.get(kind)
        if measurer is None:
            from dicom_node import kinds

            factory = self._settings.factory_for(kind, kinds.get(kind).measurer_factory)
            with self._lock:
                measurer = self._measurers.get(kind)
                if measurer is None:
                    measurer = self._measurers[kind] = build_measurer(self._settings, factory)
        return measurer
