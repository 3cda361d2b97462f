"""Registries filled from a package's modules: one record per module, found by name.

Study kinds (:mod:`dicom_node.kinds`) and destination transports
(:mod:`dicom_node.destinations`) are each one module declaring one record; this finds them.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Iterable
from typing import TypeVar

T = TypeVar("T")


def discover(package: str, path: Iterable[str], attribute: str, record_type: type[T],
             key: Callable[[T], str], what: str) -> dict[str, T]:
    """``{key(record): record}`` of every module of ``package`` (folders ``path``).

    Each module must define ``attribute`` as a ``record_type``; modules are read in name
    order.

    Raises
    ------
    TypeError
        A module's ``attribute`` is missing or not a ``record_type``.
    ValueError
        Two modules declare the same key.
    """
    found: dict[str, T] = {}
    for info in sorted(pkgutil.iter_modules(list(path)), key=lambda i: i.name):
        module = importlib.import_module(f"{package}.{info.name}")
        record = getattr(module, attribute, None)
        if not isinstance(record, record_type):
            raise TypeError(f"{module.__name__}.{attribute} must be a {record_type.__name__}")
        name = key(record)
        if name in found:
            raise ValueError(f"{what} {name!r} is registered twice")
        found[name] = record
    return found
