"""DICOM output of the synthetic knee radiograph generator (``knee-node synth``).

Public API
----------
* :func:`make_instance` / :func:`write_instance` -- one seed to an encoded DICOM dataset
  and its JSON ground truth, and to ``knee_<seed, 10 digits>.dcm`` + ``.json``
  (e.g. ``knee_0000000777.dcm``).
* :func:`to_dataset` -- a :class:`training.synth.SynthRadiograph` to a native DX/CR dataset.
* :func:`encode` / :func:`write` -- transfer syntaxes of :data:`TRANSFER_SYNTAXES`.
* :func:`register` -- adds ``synth`` and ``bench-synth-dicom`` to the command line.

See ``docs/generator_dicom.md``.
"""

from __future__ import annotations

import typer

from training.synth_dicom.dataset import DicomChoice, to_dataset
from training.synth_dicom.encode import TRANSFER_SYNTAXES, SynthDicomError, encode, write
from training.synth_dicom.instance import (
    SynthInstance,
    instance_name,
    make_instance,
    resolve_choices,
    write_instance,
)

__all__ = [
    "TRANSFER_SYNTAXES",
    "DicomChoice",
    "SynthDicomError",
    "SynthInstance",
    "encode",
    "instance_name",
    "make_instance",
    "register",
    "resolve_choices",
    "to_dataset",
    "write",
    "write_instance",
]


def register(app: typer.Typer) -> None:
    """Attach ``knee-node synth`` and ``knee-node bench-synth-dicom``."""
    from training.synth_dicom import cli

    cli.register(app)
