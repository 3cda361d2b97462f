"""DICOM + JSON output of the independent renderer (``knee-node synth-independent``).

Never used for training or checkpoint choice: only for measuring (``knee-node evaluate``).
The JSON beside each instance has the keys ``knee-node evaluate`` reads (``landmarks``,
``phase``, ``pixel_spacing_mm``, ``atfa_deg``, ``knees``), with ``renderer`` set to
``"independent"``.  The DICOM header is written here with pydicom directly (not with the
training generator's writer).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    ComputedRadiographyImageStorage,
    DigitalXRayImageStorageForPresentation,
    ExplicitVRLittleEndian,
    generate_uid,
)

from inference.alignment import atfa_all
from inference.landmarks import names_for
from training.independent.bones import draw_knee
from training.independent.xray import IndependentRadiograph, render

#: Salt of the independent renderer's random streams (apart from every training stream).
STREAM = 0x1DE9E7D
NOTE = ("Synthetic radiograph made by knee-node training.independent (evaluation only); "
        "not a patient image.")


def draw(seed: int, phase: str | None = None, laterality: str | None = None,
         max_side: int | None = None) -> IndependentRadiograph:
    """Draw and render the knee of ``seed`` (``None`` options come from the seed)."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    if phase not in (None, "pre", "post"):
        raise ValueError(f"phase must be 'pre', 'post' or None, got {phase!r}")
    if laterality not in (None, "L", "R"):
        raise ValueError(f"laterality must be 'L', 'R' or None, got {laterality!r}")
    rng = np.random.default_rng([int(seed), STREAM])
    if phase is None:
        phase = "post" if rng.random() < 0.5 else "pre"
    if laterality is None:
        laterality = "R" if rng.random() < 0.5 else "L"
    knee = draw_knee(rng, post_op=phase == "post")
    return render(knee, rng, laterality, max_side=max_side)


def to_dataset(r: IndependentRadiograph, seed: int, modality: str) -> Dataset:
    """A DX (For Presentation) or CR dataset of ``r``, Explicit VR Little Endian."""
    if modality not in ("DX", "CR"):
        raise ValueError(f"modality must be 'DX' or 'CR', got {modality!r}")
    rng = np.random.default_rng([int(seed), STREAM, 2])
    key = f"independent|{seed}|{modality}|{r.phase}|{r.laterality}"
    sop_class = DigitalXRayImageStorageForPresentation if modality == "DX" else \
        ComputedRadiographyImageStorage
    sop = generate_uid(entropy_srcs=[key, "sop"])
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.file_meta.MediaStorageSOPInstanceUID = sop
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.preamble = b"\x00" * 128
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, sop
    ds.PatientName = f"INDEP^KNEE{seed}"
    ds.PatientID = f"INDEP-{seed}"
    ds.PatientComments = NOTE
    ds.StudyInstanceUID = generate_uid(entropy_srcs=[key, "study"])
    ds.SeriesInstanceUID = generate_uid(entropy_srcs=[key, "series"])
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = "20240101"
    ds.StudyTime = ds.ContentTime = "120000"
    ds.Modality = modality
    ds.SeriesNumber, ds.InstanceNumber = 1, 1
    ds.BodyPartExamined = "KNEE"
    ds.ViewPosition = "AP"
    ds.ImageLaterality = r.laterality
    ds.Manufacturer = "knee-node independent renderer"
    ds.ImageComments = NOTE
    if modality == "DX":
        ds.PresentationIntentType = "FOR PRESENTATION"
    ps = r.pixel_spacing_mm
    sid = float(rng.choice([1000.0, 1150.0, 1800.0]))
    sod = round(sid - float(rng.uniform(50.0, 180.0)), 1)
    mag = sid / sod
    ds.DistanceSourceToDetector = f"{sid:.1f}"
    ds.DistanceSourceToPatient = f"{sod:.1f}"
    ds.ImagerPixelSpacing = [f"{ps[0] * mag:.6f}", f"{ps[1] * mag:.6f}"]
    if modality == "DX":
        ds.EstimatedRadiographicMagnificationFactor = f"{mag:.6f}"
    if rng.random() < 0.5:
        ds.PixelSpacing = [f"{ps[0]:.6f}", f"{ps[1]:.6f}"]
    ds.set_pixel_data(r.pixels, r.photometric, r.bits_stored, generate_instance_uid=False)
    ds.RescaleIntercept, ds.RescaleSlope = 0, 1
    lo, hi = np.percentile(r.pixels[::4, ::4], [0.5, 99.5])
    ds.WindowCenter = int((lo + hi) / 2)
    ds.WindowWidth = max(int(hi - lo), 2)
    return ds


def truth(r: IndependentRadiograph, seed: int, modality: str) -> dict[str, Any]:
    """The JSON ground truth of ``r`` (same knee keys as ``knee-node synth``)."""
    knee = {
        "landmarks": np.asarray(r.landmarks).tolist(),
        "landmark_names": list(names_for(r.phase)),  # type: ignore[arg-type]
        "laterality": r.laterality, "phase": r.phase,
        "pixel_spacing_mm": list(r.pixel_spacing_mm),
        "atfa_deg": atfa_all(r.landmarks),
        "built_in_atfa_deg": float(r.knee.shape.target_atfa),
    }
    rec = dict(knee)
    rec.update({"knees": [knee], "image_phase": r.phase, "seed": int(seed),
                "renderer": "independent", "modality": modality,
                "photometric": r.photometric, "bits_stored": r.bits_stored,
                "rows": int(r.pixels.shape[0]), "columns": int(r.pixels.shape[1]),
                "settings": r.settings})
    return rec


def write(seed: int, out_dir: str | Path, phase: str | None = None,
          laterality: str | None = None, max_side: int | None = None) -> tuple[Path, Path]:
    """Write ``<out_dir>/indep_<seed>.dcm`` and its ``.json``; return both paths."""
    r = draw(seed, phase=phase, laterality=laterality, max_side=max_side)
    modality = "DX" if np.random.default_rng([int(seed), STREAM, 1]).random() < 0.6 else "CR"
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = out / f"indep_{int(seed):010d}"
    ds = to_dataset(r, seed, modality)
    ds.save_as(stem.with_suffix(".dcm"), enforce_file_format=True)
    stem.with_suffix(".json").write_text(json.dumps(truth(r, seed, modality), indent=1) + "\n")
    return stem.with_suffix(".dcm"), stem.with_suffix(".json")
