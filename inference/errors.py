"""The one exception base class of the project, and its few direct children.

Every error the node, the models or the generator raise on purpose derives from
:class:`KneeNodeError`, so callers can tell "we refused this, and said why" from
a programming error.

It lives in ``inference/`` (the lowest layer) so ``inference/`` and ``training/`` can
import it without importing the node; ``dicom_node.errors`` re-exports it.
"""

from __future__ import annotations


class KneeNodeError(Exception):
    """Base class of every error raised on purpose by knee-node."""


class ConfigError(KneeNodeError):
    """The configuration is invalid; the message names the key and why."""


class InputImageError(KneeNodeError):
    """A DICOM instance or image cannot be used (corrupt, unsupported, not a knee...)."""


class ModelError(KneeNodeError):
    """Model weights are missing, altered, or cannot be loaded."""


class DeliveryError(KneeNodeError):
    """Results could not be sent to a destination (association refused, failure status...)."""


class StorageError(KneeNodeError):
    """A received instance could not be stored or recorded durably."""


class MeasurementFailedError(KneeNodeError):
    """A job failed; the message is the sanitised one its row records (no patient data)."""


__all__ = [
    "ConfigError",
    "DeliveryError",
    "InputImageError",
    "KneeNodeError",
    "MeasurementFailedError",
    "ModelError",
    "StorageError",
]
