"""The measuring step, injectable: anything with ``measure(ds)`` and ``model_info``.

Each study kind has its measurer factory (``StudyKind.measurer_factory``, overridden by
``model.factories.<kind>``; ``model.factory`` is knee-ap's). Workers load each kind's
measurer once per process, lazily, on its first image (so a Celery prefork worker loads
the model in each child after the fork, never in the parent).
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from dicom_node.errors import ConfigError

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

    from dicom_node.settings import ModelSettings
    from inference.measurement import ModelInfo


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
