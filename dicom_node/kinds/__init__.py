"""Study kinds: what the node measures, one declared record per kind.

A kind (``knee-ap``, and next ``full-leg``) says which measurer reads its images, how its
results become rows of named coded values, and which DICOM objects it writes back. The
pipeline, routing, ``status`` and the metrics ask the kind; none of them names one.

Adding a kind is one module in this package defining ``KIND = StudyKind(...)``: it is
found by :func:`registry` (every module of ``dicom_node.kinds`` is imported once), so no
other node file changes. The kind's model lives under ``inference/`` and its report
content under ``dicom_node/reports/``. Keep the modules light: import torch, highdicom
and the model inside the functions the record points at, never at module level.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dicom_node.errors import ConfigError
from dicom_node.plugins import discover

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

    from dicom_node.settings import Settings

#: Name of the kind a routing rule measures when it names none (the product before kinds).
DEFAULT_KIND = "knee-ap"
_NAME = re.compile(r"^[a-z][a-z0-9-]{0,31}$")
_OBJECT_KIND = re.compile(r"^[A-Z][A-Z0-9]{0,15}$")


@dataclass(frozen=True)
class Code:
    """A coded value: a DICOM code triplet (Code Value, Coding Scheme Designator, Code
    Meaning), e.g. the CPAK class ``Code("CPAK-II", "99KNEENODE", "CPAK type II")``.

    Parameters
    ----------
    value
        Code Value (at most 16 characters, SH).
    scheme
        Coding Scheme Designator (at most 16 characters), e.g. ``"DCM"``, ``"SCT"`` or a
        private ``"99..."`` scheme.
    meaning
        Code Meaning (at most 64 characters, LO), what ``status`` shows.
    """

    value: str
    scheme: str
    meaning: str

    def __post_init__(self) -> None:
        for argument, limit in (("value", 16), ("scheme", 16), ("meaning", 64)):
            text = getattr(self, argument)
            if not isinstance(text, str) or not text.strip() or len(text) > limit:
                raise ValueError(
                    f"{argument} must be a non-empty string of at most {limit} characters, "
                    f"got {text!r}"
                )


#: The unit of a coded value (it has none); stored as "" in ``result_values.unit``.
NO_UNIT = ""


@dataclass(frozen=True)
class ResultValue:
    """One named, coded result value of one measured item (a knee, a leg).

    A value is a number (``value`` and ``unit``) or a code (``code``, with ``value`` None
    and ``unit`` :data:`NO_UNIT`): :meth:`coded` makes the latter.

    Parameters
    ----------
    name
        What is measured, e.g. ``"aTFA"``, ``"HKA"``, ``"CPAK"``.
    value
        The number; None when the item has landmarks but they define none, or the value is
        coded.
    unit
        UCUM unit, e.g. ``"deg"``, ``"mm"``; :data:`NO_UNIT` for a coded value.
    method
        How it was measured, e.g. ``"FTS"`` or ``"FNTS"`` for the aTFA; None if one way.
    uncertainty
        Half-width of its 95 % interval in ``unit``, when known.
    code
        The coded value (e.g. the CPAK class), or None for a number.
    """

    name: str
    value: float | None
    unit: str
    method: str | None = None
    uncertainty: float | None = None
    code: Code | None = None

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError(f"name must be a non-empty string, got {self.name!r}")
        if self.code is not None:
            if not isinstance(self.code, Code):
                raise TypeError(f"code must be a Code, got {type(self.code).__name__}")
            if self.value is not None:
                raise ValueError(f"value must be None for coded value {self.name!r}, "
                                 f"got {self.value!r}")
            if self.unit != NO_UNIT:
                raise ValueError(f"unit must be {NO_UNIT!r} for coded value {self.name!r}, "
                                 f"got {self.unit!r}")
        elif not self.unit:
            raise ValueError(f"unit must be a non-empty UCUM unit, got {self.unit!r}")

    @classmethod
    def coded(cls, name: str, code: Code, method: str | None = None) -> ResultValue:
        """A coded value: ``ResultValue.coded("CPAK", Code("II", "99KNEENODE", "type II"))``."""
        return cls(name, None, NO_UNIT, method, None, code)

    @property
    def label(self) -> str:
        """``name`` and ``method`` as ``status`` and the logs show them: "aTFA FTS"."""
        return self.name if self.method is None else f"{self.name} {self.method}"


@dataclass(frozen=True)
class MeasuredItem:
    """One item a job measured (a knee, a leg) with its values, as the job's rows record it.

    Parameters
    ----------
    laterality
        ``"L"`` or ``"R"`` (patient's side).
    quality
        ``"pass"`` or ``"flag"``; a flagged item's values are kept for analysis only.
    confidence
        Landmark detection confidence in [0, 1].
    verdict
        The finding in words ("varus", "not determined (flagged)").
    values
        Its named coded values.
    flag_reasons
        Why it is flagged (empty when it passed).
    phase
        Kind-specific variant of the item (the knee's landmark phase), if any.
    """

    laterality: str
    quality: str
    confidence: float
    verdict: str
    values: tuple[ResultValue, ...]
    flag_reasons: tuple[str, ...] = ()
    phase: str | None = None

    def __post_init__(self) -> None:
        if self.laterality not in ("L", "R"):
            raise ValueError(f"laterality must be 'L' or 'R', got {self.laterality!r}")
        if self.quality not in ("pass", "flag"):
            raise ValueError(f"quality must be 'pass' or 'flag', got {self.quality!r}")


#: Builds one output object of a kind: ``make(settings, source, measurements) -> Dataset``
#: where ``measurements`` is what the kind's measurer returned.
MakeObject = Callable[["Settings", "Dataset", Sequence[Any]], "Dataset"]


@dataclass(frozen=True)
class OutputWriter:
    """One DICOM object a kind writes for a measured image and sends back.

    Parameters
    ----------
    object_kind
        Short upper-case name of the object, as its output row records it ("SR", "SC").
    file_name
        File name in the job's results folder ("sr.dcm").
    make
        ``make(settings, source, measurements) -> pydicom.Dataset``.
    optional
        Written and sent only to destinations whose ``objects`` name it (the GSPS); the
        others (SR, SC) go to every destination whose ``objects`` is not set.
    sent_first
        Written and sent before the kind's other objects are made (the SR: it needs only
        the measurements, and it is what a surgeon waits for); the others follow in a
        second delivery.
    """

    object_kind: str
    file_name: str
    make: MakeObject
    optional: bool = False
    sent_first: bool = False

    def __post_init__(self) -> None:
        if not _OBJECT_KIND.match(self.object_kind):
            raise ValueError(
                f"object_kind must be short upper-case letters/digits, got {self.object_kind!r}"
            )
        if not self.file_name.endswith(".dcm") or "/" in self.file_name:
            raise ValueError(f"file_name must be a plain 'name.dcm', got {self.file_name!r}")


@dataclass(frozen=True)
class StudyKind:
    """What the node does with one kind of study.

    Parameters
    ----------
    name
        The kind's name, as routing rules (``kind:``) and the job rows name it.
    description
        One line for ``check-config`` and the docs.
    measurer_factory
        Default ``"module:callable"`` taking the ``ModelSettings`` and returning a
        :class:`dicom_node.measurer.Measurer` (``model.factories.<name>`` overrides it).
    items
        ``items(measurements) -> list[MeasuredItem]``: the measurer's records as rows.
    writers
        The objects written and sent for each measured image, in sending order.
    nothing_found
        The job's error when the measurer returns no item ("no knee found in the image").
    headline
        Labels (:attr:`ResultValue.label`) of the values ``status`` shows for a job.
    """

    name: str
    description: str
    measurer_factory: str
    items: Callable[[Sequence[Any]], list[MeasuredItem]]
    writers: tuple[OutputWriter, ...]
    nothing_found: str
    headline: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ValueError(f"name must be lower-case letters, digits and '-', got {self.name!r}")
        if not re.match(r"^[\w.]+:\w+$", self.measurer_factory):
            raise ValueError(
                f"measurer_factory must look like 'package.module:callable', "
                f"got {self.measurer_factory!r}"
            )
        if not self.writers:
            raise ValueError(f"writers of kind {self.name!r} must name at least one object")
        kinds = [w.object_kind for w in self.writers]
        if len(set(kinds)) != len(kinds):
            raise ValueError(f"writers of kind {self.name!r} repeat an object kind: {kinds}")

    def writers_for(self, objects: Sequence[str] | None) -> tuple[OutputWriter, ...]:
        """The writers whose objects go to a destination with ``objects`` (its list of
        object kinds; None: every writer that is not optional), in sending order."""
        if objects is None:
            return tuple(w for w in self.writers if not w.optional)
        return tuple(w for w in self.writers if w.object_kind in objects)


_LOCK = threading.Lock()
_REGISTRY: dict[str, StudyKind] = {}


def registry() -> Mapping[str, StudyKind]:
    """Every study kind, by name: each module of this package's ``KIND``, loaded once."""
    with _LOCK:
        if not _REGISTRY:
            _REGISTRY.update(discover(__name__, __path__, "KIND", StudyKind,
                                      lambda k: k.name, "study kind"))
        return dict(_REGISTRY)


def names() -> list[str]:
    """The names of the known kinds, sorted."""
    return sorted(registry())


def get(name: str) -> StudyKind:
    """The kind called ``name``; ConfigError naming the known ones if there is none."""
    kinds = registry()
    if name not in kinds:
        raise ConfigError(f"unknown study kind {name!r}; known kinds: {', '.join(sorted(kinds))}")
    return kinds[name]


__all__ = [
    "DEFAULT_KIND",
    "NO_UNIT",
    "Code",
    "MakeObject",
    "MeasuredItem",
    "OutputWriter",
    "ResultValue",
    "StudyKind",
    "get",
    "names",
    "registry",
]
