"""One synthetic instance: the generator's radiograph, its DICOM dataset and its JSON truth.

Options left as ``None`` are drawn from the seed through a random stream of their own
(``np.random.default_rng([seed, CHOICE_STREAM])``), so a seed always gives the same
modality and transfer syntax for the same options.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from pydicom.dataset import Dataset

from training.synth_dicom.dataset import DicomChoice, Modality, acquisition_rng, to_dataset
from training.synth_dicom.encode import TRANSFER_SYNTAXES, encode
from training.synth_dicom.truth import truth_record

if TYPE_CHECKING:
    from training.synth import SynthRadiograph

#: Salt of the random stream that picks modality, DX flavour and transfer syntax.
CHOICE_STREAM = 0xC401CE
#: Share of DX among instances whose modality is drawn from the seed.
DX_SHARE = 0.6
#: Share of DX For Processing among DX instances when the flavour is drawn from the seed.
FOR_PROCESSING_SHARE = 0.2


@dataclass(frozen=True)
class SynthInstance:
    """A synthetic instance in memory: ``dataset`` (encoded) and ``truth`` (JSON-ready)."""

    radiograph: SynthRadiograph
    dataset: Dataset
    truth: dict[str, Any]
    syntax: str


def instance_name(seed: int) -> str:
    """File stem of the instance of ``seed``: ``knee_<seed, 10 digits>``."""
    acquisition_rng(seed)  # validates the seed
    return f"knee_{int(seed):010d}"


def resolve_choices(
    seed: int,
    modality: Modality | None = None,
    for_processing: bool | None = None,
    syntax: str | None = None,
) -> tuple[DicomChoice, str]:
    """Fill the options left ``None`` from the seed; return the DICOM flavour and syntax name.

    ``for_processing`` is the DX flavour and is ignored when the modality is CR.
    """
    if modality not in (None, "DX", "CR"):
        raise ValueError(f"modality must be 'DX', 'CR' or None, got {modality!r}")
    if syntax is not None and syntax not in TRANSFER_SYNTAXES:
        raise ValueError(
            f"syntax must be one of {sorted(TRANSFER_SYNTAXES)} or None, got {syntax!r}"
        )
    acquisition_rng(seed)
    rng = np.random.default_rng([int(seed), CHOICE_STREAM])
    draws = rng.random(3)
    if modality is None:
        modality = "DX" if draws[0] < DX_SHARE else "CR"
    if for_processing is None:
        for_processing = bool(draws[1] < FOR_PROCESSING_SHARE)
    for_processing = for_processing and modality == "DX"  # a DX flavour; CR has none
    if syntax is None:
        names = sorted(TRANSFER_SYNTAXES)
        syntax = names[int(draws[2] * len(names))]
    return DicomChoice(modality, bool(for_processing)), syntax


def make_instance(
    seed: int,
    *,
    phase: str | None = None,
    laterality: str | None = None,
    both_knees: bool | None = None,
    max_side: int | None = None,
    modality: Modality | None = None,
    for_processing: bool | None = None,
    syntax: str | None = "explicit",
) -> SynthInstance:
    """Generate the radiograph of ``seed`` and turn it into an encoded DICOM dataset + truth.

    Parameters
    ----------
    seed
        Generator seed (non-negative int).
    phase, laterality, both_knees, max_side
        Passed to :func:`training.synth.synthesize` (``None``: drawn from the seed).
    modality, for_processing, syntax
        DICOM flavour and transfer syntax name (``None``: drawn from the seed).
    """
    from training.synth import GENERATOR_VERSION, synthesize

    choice, syntax_name = resolve_choices(seed, modality, for_processing, syntax)
    radiograph = synthesize(
        seed, phase=phase, laterality=laterality, both_knees=both_knees, max_side=max_side
    )
    ds = encode(to_dataset(radiograph, choice, GENERATOR_VERSION), syntax_name)
    truth = truth_record(radiograph, ds, syntax_name, GENERATOR_VERSION)
    return SynthInstance(radiograph, ds, truth, syntax_name)


def write_instance(instance: SynthInstance, out_dir: str | Path) -> tuple[Path, Path]:
    """Write ``<out_dir>/knee_<seed, 10 digits>.dcm`` and its ``.json``; return both paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = out / instance_name(int(instance.radiograph.seed))
    dcm, js = stem.with_suffix(".dcm"), stem.with_suffix(".json")
    instance.dataset.save_as(dcm, enforce_file_format=True)
    js.write_text(json.dumps(instance.truth, indent=1) + "\n", encoding="utf-8")
    return dcm, js
