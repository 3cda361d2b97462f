"""Synthetic AP knee radiographs with exact ground truth (research use only).

Public API::

    GENERATOR_VERSION
    synthesize(seed, *, phase=None, laterality=None, both_knees=None, max_side=None)
    synthesize_negative(seed, kind, *, max_side=None)
    to_unit_float(pixels, bits_stored, photometric)
    KneeTruth, SynthRadiograph

See ``docs/generator.md`` for what is modelled and what is not.
"""

from __future__ import annotations

from training.synth.generator import synthesize
from training.synth.negatives import NEGATIVE_KINDS, synthesize_negative
from training.synth.types import KneeTruth, SynthRadiograph, to_unit_float

#: Bumped whenever rendering or anatomy changes (images of a seed change with it).
GENERATOR_VERSION = "1.0.0"

__all__ = [
    "GENERATOR_VERSION",
    "NEGATIVE_KINDS",
    "KneeTruth",
    "SynthRadiograph",
    "synthesize",
    "synthesize_negative",
    "to_unit_float",
]
