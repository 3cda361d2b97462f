"""The measuring step, injectable: anything with ``measure(ds)`` and ``model_info``.

Workers load the measurer named by ``model.factory`` once per process, lazily (so a
Celery prefork worker loads the model in each child after the fork, never in the parent).
"""

from __future__ import annotations

import importlib
import threading
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from dicom_node.errors import ConfigError

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

    from dicom_node.settings import ModelSettings
    from inference.measurement import KneeMeasurement, ModelInfo


@runtime_checkable
class Measurer(Protocol):
    """What the node needs from a landmark model."""

    @property
    def model_info(self) -> ModelInfo:
        """Identity of the algorithm (name, version, weights hashes, parameters)."""
        ...

    def measure(self, ds: Dataset) -> list[KneeMeasurement]:
        """Landmarks and aTFA of each knee in ``ds``; InputImageError for unusable images."""
        ...


def shipped_predictor(settings: ModelSettings) -> Measurer:
    """The project's landmark model with its shipped weights (the production measurer)."""
    from inference.predictor import KneePredictor

    return KneePredictor.from_shipped_weights(
        device=settings.device, num_threads=settings.num_threads
    )


def build_measurer(settings: ModelSettings) -> Measurer:
    """Import ``settings.factory`` ("module:callable") and call it with ``settings``."""
    module_name, _, attr = settings.factory.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"model.factory: cannot load {settings.factory!r}: {exc}") from exc
    measurer = factory(settings)
    if not isinstance(measurer, Measurer):
        raise ConfigError(
            f"model.factory: {settings.factory!r} returned {type(measurer).__name__}, "
            "which has no measure(ds) and model_info"
        )
    return measurer


class LazyMeasurer:
    """Builds the measurer on first use, once, thread-safely."""

    def __init__(self, settings: ModelSettings) -> None:
        self._settings = settings
        self._measurer: Measurer | None = None
        self._lock = threading.Lock()

    def get(self) -> Measurer:
        """The measurer (loaded now if this is the first call in this process)."""
        if self._measurer is None:
            with self._lock:
                if self._measurer is None:
                    self._measurer = build_measurer(self._settings)
        return self._measurer
