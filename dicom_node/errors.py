"""The project's exception base, as the node imports it.

The classes live in :mod:`inference.errors` (so ``inference/`` and ``training/`` need not
import the node); ``from dicom_node.errors import X`` keeps working for the node.
"""

from __future__ import annotations

from inference.errors import (
    ConfigError,
    DeliveryError,
    InputImageError,
    KneeNodeError,
    MeasurementFailedError,
    ModelError,
    StorageError,
)

__all__ = [
    "ConfigError",
    "DeliveryError",
    "InputImageError",
    "KneeNodeError",
    "MeasurementFailedError",
    "ModelError",
    "StorageError",
]
