"""The JSON ground truth written beside each synthetic DICOM instance.

Layout (one object per file)::

    {
      "landmarks": [[x, y], ...],      # first knee; x = column, y = row of the stored image
      "landmark_names": [...],          # inference.landmarks.names_for(phase)
      "laterality": "L" | "R",          # first knee
      "phase": "pre" | "post",          # first knee (landmark count follows it)
      "pixel_spacing_mm": [row, col],   # true spacing at the knee
      "atfa_deg": {"FTS": .., "FNTS": ..},   # inference.alignment.atfa_all(landmarks)
      "built_in_atfa_deg": ..,          # the angle the generator built in
      "knees": [ {the keys above}, ...],     # one record per knee (1 or 2), image order
      "image_phase": "pre" | "post",    # "post" when any knee has an implant
      "seed": .., "generator_version": .., "modality": "DX" | "CR",
      "sop_class_uid": .., "sop_instance_uid": .., "study_instance_uid": ..,
      "transfer_syntax": "explicit" | ..., "transfer_syntax_uid": ..,
      "image_laterality": "L" | "R" | "B", "photometric": .., "bits_stored": ..,
      "rows": .., "columns": .., "marker": ..
    }

The top-level landmark keys describe the first knee of ``knees`` so single-knee readers
work unchanged; a reader of both-knee images iterates ``knees``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from pydicom.dataset import Dataset

from inference.alignment import atfa_all
from inference.landmarks import names_for

if TYPE_CHECKING:
    from training.synth import KneeTruth, SynthRadiograph

#: Keys every per-knee record has (also present at the top level, for the first knee).
KNEE_KEYS: tuple[str, ...] = (
    "landmarks",
    "landmark_names",
    "laterality",
    "phase",
    "pixel_spacing_mm",
    "atfa_deg",
    "built_in_atfa_deg",
)


def knee_record(knee: KneeTruth, pixel_spacing_mm: tuple[float, float]) -> dict[str, Any]:
    """Ground truth of one knee; the angles are measured from its true landmarks."""
    pts = np.asarray(knee.landmarks, dtype=np.float64)
    names = names_for(knee.phase)
    if pts.shape != (len(names), 2):
        raise ValueError(
            f"knee.landmarks must have shape ({len(names)}, 2) for phase {knee.phase!r}, "
            f"got {pts.shape}"
        )
    return {
        "landmarks": pts.tolist(),
        "landmark_names": list(names),
        "laterality": str(knee.laterality),
        "phase": str(knee.phase),
        "pixel_spacing_mm": [float(v) for v in pixel_spacing_mm],
        "atfa_deg": atfa_all(pts),
        "built_in_atfa_deg": float(knee.built_in_atfa_deg),
    }


def truth_record(
    radiograph: SynthRadiograph, ds: Dataset, syntax: str, generator_version: str
) -> dict[str, Any]:
    """The JSON object written beside the instance ``ds`` made from ``radiograph``."""
    spacing = (float(radiograph.pixel_spacing_mm[0]), float(radiograph.pixel_spacing_mm[1]))
    knees = [knee_record(k, spacing) for k in radiograph.knees]
    record: dict[str, Any] = dict(knees[0])
    record.update(
        {
            "knees": knees,
            "image_phase": str(radiograph.phase),
            "seed": int(radiograph.seed),
            "generator_version": str(generator_version),
            "modality": str(ds.Modality),
            "sop_class_uid": str(ds.SOPClassUID),
            "sop_instance_uid": str(ds.SOPInstanceUID),
            "study_instance_uid": str(ds.StudyInstanceUID),
            "transfer_syntax": syntax,
            "transfer_syntax_uid": str(ds.file_meta.TransferSyntaxUID),
            "image_laterality": str(ds.ImageLaterality),
            "photometric": str(radiograph.photometric),
            "bits_stored": int(radiograph.bits_stored),
            "rows": int(radiograph.pixels.shape[0]),
            "columns": int(radiograph.pixels.shape[1]),
            "marker": None if radiograph.marker is None else str(radiograph.marker),
        }
    )
    return record
