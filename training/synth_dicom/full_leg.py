"""DICOM instances of the full-leg generator (``knee-node synth --kind full-leg``).

The dataset is the knee writer's (:func:`training.synth_dicom.dataset.to_dataset`: patient,
study, series, equipment, DX/CR modules, pixels and VOI), re-labelled for a long-leg study:

* ``BodyPartExamined`` ``LOWER LIMB``, ``AnatomicRegionSequence`` SCT 61685007 "Lower limb",
  ``ViewPosition`` ``AP``, ``ImageLaterality`` ``B``, ``PatientOrientation`` ``L\\F``;
* ``StudyDescription`` "XR LOWER LIMBS STANDING AP", ``ImageType`` ``DERIVED\\PRIMARY`` with a
  ``DerivationDescription`` naming the stitched exposures;
* ``ImagerPixelSpacing`` is the detector spacing and nothing in the header gives the
  magnification (no ``PixelSpacing``, ``EstimatedRadiographicMagnificationFactor`` or
  ``DistanceSourceToPatient``): the calibration ball or ruler in the image is the only way to
  it, as on many real long-leg images. The truth JSON has the magnification.

Beside each ``full_leg_<seed>.dcm`` goes ``full_leg_<seed>.json``::

    {"kind": "full-leg", "pixel_spacing_mm": [row, col], "magnification": ..,
     "legs": [{"side": "R"|"L", "phase": "pre"|"post", "landmarks": [[x, y], ...],
               "landmark_names": [...], "measurements": {HKA_deg, HKA_180_deg, mLDFA_deg,
               mMPTA_deg, aHKA_deg, JLO_deg, FVA_deg, JLCA_deg, MAD_mm, aTFA_FTS_deg},
               "cpak_class": 1..9, "built_in": {...}, "built_in_cpak_class": 1..9,
               "in_image": [...], "hip_stem": ..}, ...],
     "calibration": {...}, "hard_cases": [...], "exposures": [...], "seed": .., ...}

``landmarks`` are stored-image pixels (column, row); ``MAD_mm`` is at the patient (pixel
spacing divided by the magnification).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from inference import landmarks as lm
from inference.leg.geometry import cpak_class
from inference.leg.landmarks import NAMES
from training.synth.types import KneeTruth, SynthRadiograph
from training.synth_dicom.dataset import DicomChoice, Modality, acquisition_rng, to_dataset
from training.synth_dicom.encode import encode
from training.synth_dicom.instance import resolve_choices

_LOWER_LIMB = ("61685007", "SCT", "Lower limb")
STUDY_DESCRIPTION = "XR LOWER LIMBS STANDING AP"
_DROP = ("PixelSpacing", "PixelSpacingCalibrationType", "PixelSpacingCalibrationDescription",
         "EstimatedRadiographicMagnificationFactor", "DistanceSourceToPatient")


@dataclass(frozen=True)
class FullLegInstance:
    """A full-leg instance in memory: the radiograph, its encoded dataset and its truth."""

    radiograph: Any  # training.synth_leg.FullLegRadiograph
    dataset: Dataset
    truth: dict[str, Any]
    syntax: str


def full_leg_name(seed: int) -> str:
    """File stem of the full-leg instance of ``seed``: ``full_leg_<seed, 10 digits>``."""
    acquisition_rng(seed)  # validates the seed
    return f"full_leg_{int(seed):010d}"


def _shim(r: Any) -> SynthRadiograph:
    """The knee writer's input type carrying the full-leg pixels (two sides, image "B")."""
    knees = tuple(KneeTruth(landmarks=np.zeros((lm.N_POST_OP, 2)), laterality=lt.side,
                            phase=lt.phase, atfa_deg={}, built_in_atfa_deg=0.0)
                  for lt in r.legs)
    phase = "post" if any(lt.phase == "post" for lt in r.legs) else "pre"
    return SynthRadiograph(pixels=r.pixels, bits_stored=r.bits_stored, photometric=r.photometric,
                           pixel_spacing_mm=r.pixel_spacing_mm, knees=knees,
                           phase=phase,  # type: ignore[arg-type]
                           seed=r.seed, marker="")


def to_full_leg_dataset(radiograph: Any, choice: DicomChoice, generator_version: str) -> Dataset:
    """Native (Explicit VR Little Endian) DX/CR dataset of a full-leg radiograph.

    Parameters
    ----------
    radiograph
        A :class:`training.synth_leg.FullLegRadiograph`.
    choice
        Modality and DX flavour.
    generator_version
        ``training.synth_leg.FULL_LEG_GENERATOR_VERSION``.
    """
    if not hasattr(radiograph, "legs") or len(radiograph.legs) != 2:
        raise ValueError("radiograph must be a FullLegRadiograph with two legs")
    ds = to_dataset(_shim(radiograph), choice, f"full-leg-{generator_version}")
    for key in _DROP:
        if key in ds:
            delattr(ds, key)
    row, col = radiograph.pixel_spacing_mm
    ds.ImagerPixelSpacing = [f"{row:.6f}", f"{col:.6f}"]
    ds.StudyDescription = STUDY_DESCRIPTION
    ds.SeriesDescription = "LOWER LIMBS AP STANDING"
    ds.BodyPartExamined = "LOWER LIMB"
    ds.ViewPosition = "AP"
    ds.ImageLaterality = "B"
    ds.PatientOrientation = ["L", "F"]
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = _LOWER_LIMB
    ds.AnatomicRegionSequence = Sequence([item])
    n = len(radiograph.study.exposures)
    ds.ImageType = ["DERIVED", "PRIMARY"]
    ds.DerivationDescription = f"stitched from {n} exposures (synthetic)"
    ds.ManufacturerModelName = "training.synth_leg"
    ds.PatientName = f"SYNTH^LEGS{int(radiograph.seed):04d}"
    return ds


def full_leg_truth(radiograph: Any, ds: Dataset, syntax: str, generator_version: str
                   ) -> dict[str, Any]:
    """The JSON object written beside the full-leg instance ``ds``."""
    st = radiograph.study
    legs = []
    for lt in radiograph.legs:
        legs.append({
            "side": lt.side, "phase": lt.phase,
            "landmarks": np.asarray(lt.landmarks, dtype=float).tolist(),
            "landmark_names": list(NAMES),
            "measurements": {k: float(v) for k, v in lt.measurements.items()},
            "cpak_class": int(lt.cpak_class),
            "built_in": {k: float(v) for k, v in lt.built_in.items()},
            "built_in_cpak_class": cpak_class(lt.built_in["aHKA_deg"], lt.built_in["JLO_deg"]),
            "in_image": [bool(v) for v in lt.in_image],
            "hip_stem": bool(lt.hip_stem),
        })
    return {
        "kind": "full-leg",
        "pixel_spacing_mm": [float(v) for v in radiograph.pixel_spacing_mm],
        "magnification": float(radiograph.magnification),
        "legs": legs,
        "calibration": json.loads(json.dumps(st.calibration)),
        "hard_cases": list(st.hard_cases),
        "exposures": [{"rows": [e.row0, e.row1], "shift_px": list(e.shift_px)}
                      for e in st.exposures],
        "seed": int(radiograph.seed),
        "generator_version": str(generator_version),
        "modality": str(ds.Modality),
        "sop_class_uid": str(ds.SOPClassUID),
        "sop_instance_uid": str(ds.SOPInstanceUID),
        "study_instance_uid": str(ds.StudyInstanceUID),
        "transfer_syntax": syntax,
        "transfer_syntax_uid": str(ds.file_meta.TransferSyntaxUID),
        "photometric": str(radiograph.photometric),
        "bits_stored": int(radiograph.bits_stored),
        "rows": int(radiograph.pixels.shape[0]),
        "columns": int(radiograph.pixels.shape[1]),
    }


def make_full_leg_instance(
    seed: int,
    *,
    post_op: str | None = None,
    full_size: bool = False,
    max_rows: int | None = None,
    modality: Modality | None = None,
    for_processing: bool | None = None,
    syntax: str | None = "explicit",
) -> FullLegInstance:
    """Generate the full-leg radiograph of ``seed`` as an encoded dataset with its truth.

    Parameters
    ----------
    seed
        Generator seed (non-negative int).
    post_op, full_size, max_rows
        Passed to :func:`training.synth_leg.plan_study`.
    modality, for_processing, syntax
        DICOM flavour and transfer syntax name (``None``: drawn from the seed).
    """
    from training.synth_leg import FULL_LEG_GENERATOR_VERSION, synthesize_full_leg

    choice, syntax_name = resolve_choices(seed, modality, for_processing, syntax)
    r = synthesize_full_leg(seed, post_op=post_op, full_size=full_size, max_rows=max_rows)
    ds = encode(to_full_leg_dataset(r, choice, FULL_LEG_GENERATOR_VERSION), syntax_name)
    truth = full_leg_truth(r, ds, syntax_name, FULL_LEG_GENERATOR_VERSION)
    return FullLegInstance(r, ds, truth, syntax_name)


def write_full_leg_instance(instance: FullLegInstance, out_dir: str | Path) -> tuple[Path, Path]:
    """Write ``<out_dir>/full_leg_<seed>.dcm`` and its ``.json``; return both paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = out / full_leg_name(int(instance.radiograph.seed))
    dcm, js = stem.with_suffix(".dcm"), stem.with_suffix(".json")
    instance.dataset.save_as(dcm, enforce_file_format=True)
    js.write_text(json.dumps(instance.truth, indent=1) + "\n", encoding="utf-8")
    return dcm, js


def full_leg_cli(count: int, out: Path, seed: int, phase: str, laterality: str,
                 both_knees_fraction: float | None, transfer_syntax: str, modality: str,
                 dx_intent: str, max_side: int | None) -> None:
    """``knee-node synth --kind full-leg``: write COUNT full-leg instances and their truth.

    ``--phase pre`` writes no knee replacements, ``--phase post`` one on one leg (the other
    leg pre-op), ``mixed`` draws it from the seed. The knee-only options (``--laterality``,
    ``--both-knees-fraction``, ``--max-side``) are refused.
    """
    import typer

    from training.synth_dicom.cli import _pick
    from training.synth_dicom.encode import TRANSFER_SYNTAXES

    for name, value, default in (("--laterality", laterality, "mixed"),
                                 ("--both-knees-fraction", both_knees_fraction, None),
                                 ("--max-side", max_side, None)):
        if value != default:
            raise typer.BadParameter("is a knee option; full-leg images show both legs at "
                                     "full size", param_hint=name)
    phase_v = _pick(phase, ("pre", "post"), "--phase")
    syntax_v = _pick(transfer_syntax, tuple(TRANSFER_SYNTAXES), "--transfer-syntax")
    modality_v = _pick(modality, ("DX", "CR"), "--modality")
    intent_v = _pick(dx_intent, ("presentation", "processing"), "--dx-intent")
    if modality_v == "CR" and intent_v == "processing":
        raise typer.BadParameter("CR has no For Processing class", param_hint="--dx-intent")
    for_processing = None if intent_v is None else intent_v == "processing"
    post_op = None if phase_v is None else ("none" if phase_v == "pre" else "one")
    for i in range(count):
        s = seed + i
        inst = make_full_leg_instance(s, post_op=post_op,
                                      modality=modality_v,  # type: ignore[arg-type]
                                      for_processing=for_processing, syntax=syntax_v)
        dcm, _ = write_full_leg_instance(inst, out)
        typer.echo(f"{dcm.name}: {inst.truth['rows']}x{inst.truth['columns']}, "
                   f"{inst.syntax}, CPAK {[leg_['cpak_class'] for leg_ in inst.truth['legs']]}")
    typer.echo(f"wrote {count} full-leg DICOM + JSON pairs to {out} "
               f"(seeds {seed}..{seed + count - 1})")
