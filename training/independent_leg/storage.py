"""DICOM + JSON output of the independent full-leg renderer.

Never used for training or checkpoint choice: only for measuring. Each study is written as
``full_leg_<10-digit seed>.dcm`` (so :mod:`training.leg_evaluate` and
:mod:`training.leg_node_evaluate` read the folder unchanged) with a ``.json`` beside it in the
layout of ``knee-node synth --kind full-leg`` (``kind``, ``pixel_spacing_mm``,
``magnification``, ``legs[side, phase, landmarks, landmark_names, measurements, cpak_class,
built_in, built_in_cpak_class, in_image, hip_stem]``, ``calibration``, ``seed``, ...) and
``"renderer": "independent-leg"``.

The header is written here with pydicom directly: DX For Presentation or CR, Explicit VR
Little Endian, ``ImagerPixelSpacing`` = the detector spacing and no magnification in the
header (the steel ball in the image calibrates it; the JSON has the magnification), as on
many real stitched long-leg images.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import (
    ComputedRadiographyImageStorage,
    DigitalXRayImageStorageForPresentation,
    ExplicitVRLittleEndian,
    generate_uid,
)

from inference.errors import KneeNodeError
from inference.leg.geometry import cpak_class
from inference.leg.landmarks import NAMES
from training.independent_leg.radiograph import STREAM, LegRadiograph, render
from training.independent_leg.standing import BALL_MM

RENDERER_NAME = "independent-leg"
NOTE = ("Synthetic radiograph made by knee-node training.independent_leg (evaluation only); "
        "not a patient image.")


class IndependentLegError(KneeNodeError):
    """Bad arguments to the independent full-leg renderer's writer."""


def stem(seed: int) -> str:
    """File stem of a study: ``full_leg_<seed, 10 digits>``."""
    return f"full_leg_{int(seed):010d}"


def _code(value: str, scheme: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, scheme, meaning
    return item


def to_dataset(r: LegRadiograph, modality: str, version: str) -> Dataset:
    """The DX (For Presentation) or CR dataset of ``r``.

    Raises
    ------
    IndependentLegError
        ``modality`` is not DX or CR.
    """
    if modality not in ("DX", "CR"):
        raise IndependentLegError(f"modality must be 'DX' or 'CR', got {modality!r}")
    dx = modality == "DX"
    rng = np.random.default_rng([r.seed, STREAM, 2])
    key = f"{RENDERER_NAME}|{version}|{r.seed}|{modality}"
    sop_class = DigitalXRayImageStorageForPresentation if dx else ComputedRadiographyImageStorage
    sop = generate_uid(entropy_srcs=[key, "sop"])
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.file_meta.MediaStorageSOPInstanceUID = sop
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.preamble = b"\x00" * 128
    day = f"2023{int(rng.integers(1, 13)):02d}{int(rng.integers(1, 29)):02d}"
    clock = f"{int(rng.integers(7, 19)):02d}{int(rng.integers(0, 60)):02d}00"
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, sop
    ds.PatientName = f"INDEP^LEGS{r.seed}"
    ds.PatientID = f"INDEPLEG-{r.seed}"
    ds.PatientBirthDate = ""
    ds.PatientSex = str(rng.choice(["F", "M"]))
    ds.PatientComments = NOTE
    ds.StudyInstanceUID = generate_uid(entropy_srcs=[key, "study"])
    ds.SeriesInstanceUID = generate_uid(entropy_srcs=[key, "series"])
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = ds.AcquisitionDate = day
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = ds.AcquisitionTime = clock
    ds.ReferringPhysicianName = ""
    ds.StudyID = f"{r.seed % 10**8:08d}"
    ds.AccessionNumber = f"IL{r.seed:012d}"[-16:]
    ds.StudyDescription = "XR BOTH LEGS LONG STANDING"
    ds.SeriesDescription = "LONG LEG AP STANDING"
    ds.Modality = modality
    ds.SeriesNumber, ds.InstanceNumber, ds.AcquisitionNumber = 1, 1, 1
    ds.BodyPartExamined = "LOWER LIMB"
    ds.ViewPosition = "AP"
    ds.Manufacturer = "knee-node independent full-leg renderer"
    ds.ManufacturerModelName = "training.independent_leg"
    ds.SoftwareVersions = version
    ds.ImageType = ["DERIVED", "PRIMARY"]
    ds.DerivationDescription = f"stitched from {len(r.exposures)} exposures (synthetic)"
    ds.PatientOrientation = ["L", "F"]
    ds.ImageLaterality = "B"
    ds.BurnedInAnnotation = "NO"
    ds.LossyImageCompression = "00"
    ds.ImageComments = NOTE
    ds.AnatomicRegionSequence = Sequence([_code("61685007", "SCT", "Lower limb")])
    if dx:
        ds.PresentationIntentType = "FOR PRESENTATION"
        ds.ViewCodeSequence = Sequence([_code("399348003", "SCT", "antero-posterior")])
        ds.PositionerType = "NONE"
        ds.AcquisitionContextSequence = Sequence()
        ds.DetectorType = str(rng.choice(["SCINTILLATOR", "DIRECT"]))
        ds.DetectorConfiguration = "AREA"
    else:
        ds.PlateType = "IP-LONG"
    ds.KVP = int(rng.integers(70, 91))
    ds.DistanceSourceToDetector = f"{float(rng.choice([1800.0, 2000.0, 2500.0])):.1f}"
    sp = r.pixel_spacing_mm
    ds.ImagerPixelSpacing = [f"{sp[0]:.6f}", f"{sp[1]:.6f}"]
    ds.set_pixel_data(r.pixels, r.photometric, r.bits_stored, generate_instance_uid=False)
    ds.RescaleIntercept, ds.RescaleSlope = 0, 1
    ds.RescaleType = "US"
    mono1 = r.photometric == "MONOCHROME1"
    if dx:
        ds.PixelIntensityRelationship = "LOG"
        ds.PixelIntensityRelationshipSign = 1 if mono1 else -1
        ds.CalibrationImage = "NO"
        ds.PresentationLUTShape = "INVERSE" if mono1 else "IDENTITY"
    lo, hi = np.percentile(r.pixels[::4, ::4], [0.5, 99.5])
    ds.WindowCenter = int(round((lo + hi) / 2))
    ds.WindowWidth = max(int(round(hi - lo)), 2)
    ds.VOILUTFunction = "LINEAR"
    return ds


def truth(r: LegRadiograph, ds: Dataset, version: str) -> dict[str, Any]:
    """The JSON ground truth of ``r`` (the keys of ``knee-node synth --kind full-leg``)."""
    st = r.standing
    legs = []
    for lt in r.legs:
        legs.append({
            "side": lt.side, "phase": "pre",
            "landmarks": np.asarray(lt.landmarks, dtype=float).tolist(),
            "landmark_names": list(NAMES),
            "measurements": {k: float(v) for k, v in lt.measurements.items()},
            "cpak_class": int(lt.cpak_class),
            "built_in": {k: float(v) for k, v in lt.built_in.items()},
            "built_in_cpak_class": cpak_class(lt.built_in["aHKA_deg"], lt.built_in["JLO_deg"]),
            "in_image": [bool(v) for v in lt.in_image],
            "hip_stem": False,
        })
    centre = st.to_px(st.ball_centre_mm)
    return {
        "kind": "full-leg", "renderer": RENDERER_NAME,
        "pixel_spacing_mm": [float(v) for v in r.pixel_spacing_mm],
        "magnification": float(r.magnification), "legs": legs,
        "calibration": {"kind": "ball", "diameter_mm": BALL_MM, "plane": "bone",
                        "centre_px": centre.tolist(), "diameter_px": BALL_MM * st.scale},
        "hard_cases": [],
        "exposures": [{"rows": [a, b], "shift_px": [0, 0]} for a, b in r.exposures],
        "seed": int(r.seed), "generator_version": version,
        "modality": str(ds.Modality), "sop_class_uid": str(ds.SOPClassUID),
        "sop_instance_uid": str(ds.SOPInstanceUID),
        "study_instance_uid": str(ds.StudyInstanceUID), "transfer_syntax": "explicit",
        "transfer_syntax_uid": str(ds.file_meta.TransferSyntaxUID),
        "photometric": r.photometric, "bits_stored": int(r.bits_stored),
        "rows": int(r.pixels.shape[0]), "columns": int(r.pixels.shape[1]),
        "settings": json.loads(json.dumps(r.settings)),
    }


def make(seed: int, modality: str | None = None) -> tuple[LegRadiograph, Dataset, dict[str, Any]]:
    """Render ``seed`` and build its dataset and truth (modality drawn when None)."""
    from training.independent_leg import RENDERER_VERSION

    if modality is None:
        modality = "DX" if np.random.default_rng([int(seed), STREAM, 1]).random() < 0.6 else "CR"
    r = render(seed)
    ds = to_dataset(r, modality, RENDERER_VERSION)
    return r, ds, truth(r, ds, RENDERER_VERSION)


def write(seed: int, out_dir: str | Path, modality: str | None = None) -> tuple[Path, Path]:
    """Write ``<out_dir>/full_leg_<seed>.dcm`` and its ``.json``; return both paths."""
    _, ds, tr = make(seed, modality)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    base = out / stem(seed)
    ds.save_as(base.with_suffix(".dcm"), enforce_file_format=True)
    base.with_suffix(".json").write_text(json.dumps(tr, indent=1) + "\n", encoding="utf-8")
    return base.with_suffix(".dcm"), base.with_suffix(".json")
