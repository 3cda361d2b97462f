"""The kinds of ``knee-node bench-model``: one registered entry per predictor.

Each kind is one function ``run(request) -> figures`` in its own module
(:func:`inference.bench.run_knee`, :func:`inference.bench_full_leg.run_full_leg`), named
here as ``"module:callable"`` so that building the command line imports neither torch nor
the generator. A kind also brings its defaults (image count, first seed, output file) and the
kind-specific options it accepts; the command refuses the others.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from inference.errors import KneeNodeError


class BenchKind(StrEnum):
    """The predictors ``bench-model`` can time."""

    KNEE = "knee"
    FULL_LEG = "full-leg"


class BenchError(KneeNodeError):
    """A benchmark could not run (e.g. its measuring process failed)."""


class BenchOptionError(BenchError):
    """A benchmark was asked for with bad or conflicting options."""


@dataclass(frozen=True)
class BenchRequest:
    """The options of one ``bench-model`` run (kind-specific ones None when not given).

    Attributes
    ----------
    count
        Synthetic images (knee) or bilateral studies (full-leg) to time, >= 1.
    threads
        torch CPU threads, >= 1.
    seed
        First generator seed.
    weights
        Weights folder; None: the shipped, hash-checked weights.
    edge_refinement
        Knee only: off, report or use (:class:`inference.edges.EdgeRefinement`).
    max_rows
        Full-leg only: render at most this many rows (a smaller, faster image).
    full_size
        Full-leg only: render every study at the generator's full 2800 x 8100.
    transfer_syntax
        Full-leg only: the transfer syntax name; None draws it from the seed, as
        ``knee-node synth --kind full-leg`` does.
    """

    count: int
    threads: int
    seed: int
    weights: Path | None = None
    edge_refinement: str | None = None
    max_rows: int | None = None
    full_size: bool | None = None
    transfer_syntax: str | None = None

    def __post_init__(self) -> None:
        for name in ("count", "threads"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise BenchOptionError(f"{name} must be an int >= 1, got {v!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise BenchOptionError(f"seed must be an int >= 0, got {self.seed!r}")


#: The kind-specific fields of :class:`BenchRequest` (None when the option was not given).
SPECIFIC_OPTIONS: tuple[str, ...] = ("edge_refinement", "max_rows", "full_size",
                                     "transfer_syntax")


@dataclass(frozen=True)
class BenchSpec:
    """One registered kind of ``bench-model``.

    Parameters
    ----------
    kind
        The kind.
    runner
        ``"package.module:callable"``, called with a :class:`BenchRequest`; returns the
        JSON-ready figures.
    count, seed, out
        Defaults of ``--count``, ``--seed`` and ``--out``.
    options
        The kind-specific fields of :data:`SPECIFIC_OPTIONS` it accepts.
    """

    kind: BenchKind
    runner: str
    count: int
    seed: int
    out: Path
    options: frozenset[str] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        if not re.match(r"^[\w.]+:\w+$", self.runner):
            raise BenchError(f"runner must look like 'package.module:callable', "
                             f"got {self.runner!r}")
        unknown = set(self.options) - set(SPECIFIC_OPTIONS)
        if unknown:
            raise BenchError(f"options of kind {self.kind.value!r} not in "
                             f"{SPECIFIC_OPTIONS}: {sorted(unknown)}")

    def load(self) -> Callable[[BenchRequest], dict[str, Any]]:
        """The runner function (its module imported now)."""
        module, _, name = self.runner.partition(":")
        fn: Callable[[BenchRequest], dict[str, Any]] = getattr(importlib.import_module(module),
                                                               name)
        return fn

    def check(self, request: BenchRequest) -> None:
        """Refuse kind-specific options this kind does not take.

        Raises
        ------
        BenchError
            Naming the first such option.
        """
        for name in SPECIFIC_OPTIONS:
            if name not in self.options and getattr(request, name) is not None:
                flag = "--" + name.replace("_", "-")
                raise BenchOptionError(f"{flag} is not an option of --kind {self.kind.value}")


_REGISTRY: dict[BenchKind, BenchSpec] = {}


def register(spec: BenchSpec) -> None:
    """Add ``spec`` to the registry.

    Raises
    ------
    BenchError
        The kind is registered already.
    """
    if spec.kind in _REGISTRY:
        raise BenchError(f"bench-model kind {spec.kind.value!r} is registered twice")
    _REGISTRY[spec.kind] = spec


def registry() -> Mapping[BenchKind, BenchSpec]:
    """Every registered kind."""
    return dict(_REGISTRY)


def run(kind: BenchKind, request: BenchRequest) -> dict[str, Any]:
    """Check ``request`` against ``kind`` and run its benchmark.

    Raises
    ------
    BenchOptionError
        Unknown kind, or an option the kind does not take.
    """
    try:
        spec = _REGISTRY[BenchKind(kind)]
    except (KeyError, ValueError):
        raise BenchOptionError(f"unknown bench-model kind {kind!r}; known: "
                         f"{', '.join(k.value for k in _REGISTRY)}") from None
    spec.check(request)
    return spec.load()(request)


register(BenchSpec(BenchKind.KNEE, "inference.bench:run_knee", count=10, seed=950_000_000,
                   out=Path("benchmarks/model.json"), options=frozenset({"edge_refinement"})))
register(BenchSpec(BenchKind.FULL_LEG, "inference.bench_full_leg:run_full_leg", count=5,
                   seed=990_000_000, out=Path("benchmarks/model_full_leg.json"),
                   options=frozenset({"max_rows", "full_size", "transfer_syntax"})))

__all__ = ["BenchError", "BenchKind", "BenchOptionError", "BenchRequest", "BenchSpec", "register",
           "registry", "run"]
