"""Turn a synthetic radiograph into the DICOM dataset a real DX or CR modality would send.

Three storage SOP classes are offered:

* ``DX`` -- Digital X-Ray Image Storage - For Presentation (the default DX flavour),
* ``DX`` with ``for_processing=True`` -- Digital X-Ray Image Storage - For Processing,
* ``CR`` -- Computed Radiography Image Storage.

Everything that is not set by an option comes from the seed, through a random stream
of its own (``np.random.default_rng([seed, ACQUISITION_STREAM])``), so the same seed and
options always give the same dataset, UIDs included.

Header choices (see ``docs/generator_dicom.md`` for the reasons)
----------------------------------------------------------------
* Patient identity is fake and says so: ``SYNTH^KNEE<seed>``, ID ``SYNTH-<seed>``,
  issuer ``KNEE-NODE-SYNTH``; ``ImageComments`` and ``PatientComments`` say the image
  is synthetic.
* ``ImagerPixelSpacing`` (detector plane) is always present; it is the true spacing
  times ``EstimatedRadiographicMagnificationFactor`` (= SID / SOD).  About half the
  instances also carry a calibrated ``PixelSpacing`` (= the true spacing at the knee,
  ``PixelSpacingCalibrationType`` GEOMETRY).  A reader gets the true spacing from
  ``PixelSpacing`` if present, else ``ImagerPixelSpacing / magnification``.
* ``BurnedInAnnotation`` is ``NO``: the lead side marker burned into the image names
  the side, not the patient or the date, which is what the attribute is about.
* ``PatientOrientation`` is read from the true landmarks, so it stays right whatever
  the generator does to the image.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np
import numpy.typing as npt
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import (
    UID,
    ComputedRadiographyImageStorage,
    DigitalXRayImageStorageForPresentation,
    DigitalXRayImageStorageForProcessing,
    ExplicitVRLittleEndian,
    generate_uid,
)

from inference import landmarks as lm

if TYPE_CHECKING:
    from training.synth import KneeTruth, SynthRadiograph

Modality = Literal["DX", "CR"]

#: Salt of the random stream for header values (kept apart from the generator's streams).
ACQUISITION_STREAM = 0xD1C0
#: Our own implementation identity in the file meta information.
IMPLEMENTATION_CLASS_UID = generate_uid(entropy_srcs=["knee-node", "synth_dicom", "implementation"])
IMPLEMENTATION_VERSION_NAME = "KNEENODE_SYN_1"
MANUFACTURER = "knee-node synthetic generator"
SYNTHETIC_NOTE = "Synthetic radiograph made by knee-node training.synth; not a patient image."

#: SNOMED CT codes used in code sequences.
_KNEE = ("72696002", "SCT", "Knee")
_AP_VIEW = ("399348003", "SCT", "antero-posterior")


@dataclass(frozen=True)
class DicomChoice:
    """The storage flavour of one instance.

    Parameters
    ----------
    modality
        "DX" or "CR".
    for_processing
        DX only: Digital X-Ray Image Storage - For Processing instead of For Presentation.
    """

    modality: Modality
    for_processing: bool = False

    def __post_init__(self) -> None:
        if self.modality not in ("DX", "CR"):
            raise ValueError(f"modality must be 'DX' or 'CR', got {self.modality!r}")
        if self.for_processing and self.modality != "DX":
            raise ValueError(
                "for_processing=True needs modality 'DX' (CR has no For Processing class)"
            )

    @property
    def sop_class_uid(self) -> UID:
        """The storage SOP class of this flavour."""
        if self.modality == "CR":
            return ComputedRadiographyImageStorage
        if self.for_processing:
            return DigitalXRayImageStorageForProcessing
        return DigitalXRayImageStorageForPresentation


def acquisition_rng(seed: int) -> np.random.Generator:
    """The random stream of header values for ``seed`` (independent of the image's)."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    return np.random.default_rng([int(seed), ACQUISITION_STREAM])


def _code(value: tuple[str, str, str]) -> Dataset:
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value
    return item


def image_laterality(radiograph: SynthRadiograph) -> str:
    """"L", "R", or "B" when the image shows both knees."""
    sides = {k.laterality for k in radiograph.knees}
    if len(radiograph.knees) > 1:
        return "B"
    (side,) = sides
    return str(side)


def patient_orientation(knee: KneeTruth) -> list[str]:
    """Patient directions of the image rows and columns, read from the true landmarks.

    The first value is the direction of increasing column, the second of increasing
    row (PS3.3 C.7.6.1.1.1); an AP knee displayed as usual gives ``["L", "F"]``.
    """
    pts = np.asarray(knee.landmarks, dtype=float)
    lateral_x = pts[lm.PLATEAU_LATERAL_CORNER, 0] - pts[lm.PLATEAU_MEDIAL_CORNER, 0]
    # The lateral side of a right knee is the patient's right.
    toward_patient_right = (lateral_x > 0) == (knee.laterality == "R")
    femur_y = pts[lm.FEMUR_SHAFT_PROXIMAL.medial, 1]
    tibia_y = pts[lm.TIBIA_SHAFT_DISTAL.medial, 1]
    return ["R" if toward_patient_right else "L", "F" if tibia_y > femur_y else "H"]


def _uid(key: str, role: str) -> UID:
    return generate_uid(entropy_srcs=["knee-node synth", key, role])


def identity_key(radiograph: SynthRadiograph, choice: DicomChoice, generator_version: str) -> str:
    """Everything that makes the instance's content: same key, same UIDs."""
    rows, cols = radiograph.pixels.shape
    sides = "".join(str(k.laterality) for k in radiograph.knees)
    return (
        f"seed={radiograph.seed}|gen={generator_version}|phase={radiograph.phase}|sides={sides}"
        f"|size={rows}x{cols}|bits={radiograph.bits_stored}|pi={radiograph.photometric}"
        f"|sop={choice.sop_class_uid}"
    )


def _window(pixels: npt.NDArray[np.uint16]) -> tuple[int, int]:
    """A VOI window (centre, width) over the 0.5-99.5 % range of the stored values."""
    lo, hi = np.percentile(pixels[::4, ::4], [0.5, 99.5])
    width = max(int(round(hi - lo)), 2)
    return int(round((lo + hi) / 2)), width


def _da(d: dt.date) -> str:
    return d.strftime("%Y%m%d")


def _tm(t: dt.datetime) -> str:
    return t.strftime("%H%M%S")


def to_dataset(
    radiograph: SynthRadiograph, choice: DicomChoice, generator_version: str
) -> Dataset:
    """Build the DICOM dataset of ``radiograph`` (Explicit VR Little Endian, with file meta).

    Parameters
    ----------
    radiograph
        A :class:`training.synth.SynthRadiograph`.
    choice
        Modality and DX flavour.
    generator_version
        ``training.synth.GENERATOR_VERSION``; goes into SoftwareVersions and the UIDs.

    Returns
    -------
    pydicom.dataset.Dataset
        Ready to be encoded by :func:`training.synth_dicom.encode.encode` and written.
    """
    if not isinstance(choice, DicomChoice):
        raise TypeError(f"choice must be a DicomChoice, got {type(choice).__name__}")
    pixels = np.asarray(radiograph.pixels)
    if pixels.dtype != np.uint16 or pixels.ndim != 2:
        raise ValueError(f"radiograph.pixels must be 2-D uint16, got {pixels.dtype} {pixels.shape}")
    bits = int(radiograph.bits_stored)
    if not 8 <= bits <= 16:
        raise ValueError(f"radiograph.bits_stored must be 8..16, got {bits}")
    if int(pixels.max()) >= 1 << bits:
        raise ValueError(f"pixel values exceed bits_stored={bits}")
    if radiograph.photometric not in ("MONOCHROME1", "MONOCHROME2"):
        raise ValueError(
            f"radiograph.photometric must be MONOCHROME1/2, got {radiograph.photometric!r}"
        )
    if not radiograph.knees:
        raise ValueError("radiograph.knees is empty")

    seed = int(radiograph.seed)
    rng = acquisition_rng(seed)
    key = identity_key(radiograph, choice, generator_version)
    sop_class = choice.sop_class_uid
    sop_instance = _uid(key, "sop-instance")
    dx = choice.modality == "DX"
    laterality = image_laterality(radiograph)

    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.file_meta.MediaStorageSOPInstanceUID = sop_instance
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.ImplementationClassUID = IMPLEMENTATION_CLASS_UID
    ds.file_meta.ImplementationVersionName = IMPLEMENTATION_VERSION_NAME
    ds.file_meta.SourceApplicationEntityTitle = "KNEE_SYNTH"
    ds.preamble = b"\x00" * 128

    # --- dates: a study in 2020-2025, a patient of 40-90 years
    study_day = dt.date(2020, 1, 1) + dt.timedelta(days=int(rng.integers(0, 6 * 365)))
    study_time = dt.datetime.combine(study_day, dt.time(7, 0)) + dt.timedelta(
        seconds=int(rng.integers(0, 12 * 3600))
    )
    acquired = study_time + dt.timedelta(seconds=int(rng.integers(60, 900)))
    age_years = int(rng.integers(40, 91))
    birth = study_day - dt.timedelta(days=int(age_years * 365.25 + rng.integers(0, 365)))
    age_years = (study_day - birth).days * 100 // 36525

    # --- SOP common
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_instance
    ds.InstanceCreationDate = _da(acquired)
    ds.InstanceCreationTime = _tm(acquired)

    # --- patient, clearly synthetic
    ds.PatientName = f"SYNTH^KNEE{seed:04d}"
    ds.PatientID = f"SYNTH-{seed}"
    ds.IssuerOfPatientID = "KNEE-NODE-SYNTH"
    ds.PatientBirthDate = _da(birth)
    ds.PatientSex = str(rng.choice(["F", "M"]))
    ds.PatientComments = SYNTHETIC_NOTE
    ds.PatientAge = f"{age_years:03d}Y"

    # --- study
    ds.StudyInstanceUID = _uid(key, "study")
    ds.StudyDate = _da(study_day)
    ds.StudyTime = _tm(study_time)
    ds.ReferringPhysicianName = ""
    ds.StudyID = f"{seed % 10**8:08d}"
    ds.AccessionNumber = f"SYN{seed:013d}"[-16:]
    ds.StudyDescription = "XR KNEE AP" + (" BILATERAL" if laterality == "B" else "")

    # --- series
    ds.Modality = choice.modality
    ds.SeriesInstanceUID = _uid(key, "series")
    ds.SeriesNumber = 1
    ds.SeriesDate = _da(acquired)
    ds.SeriesTime = _tm(acquired)
    ds.SeriesDescription = {"L": "KNEE AP LEFT", "R": "KNEE AP RIGHT", "B": "KNEES AP BOTH"}[
        laterality
    ]
    ds.BodyPartExamined = "KNEE"
    ds.ViewPosition = "AP"
    # No series Laterality: it is type 2C and must be absent when ImageLaterality is sent.
    if dx:
        intent = "FOR PROCESSING" if choice.for_processing else "FOR PRESENTATION"
        ds.PresentationIntentType = intent

    # --- equipment
    ds.Manufacturer = MANUFACTURER
    ds.ManufacturerModelName = "training.synth"
    ds.SoftwareVersions = str(generator_version)
    ds.DeviceSerialNumber = "SYNTH-0001"
    ds.StationName = "SYNTHXR"
    ds.InstitutionName = "knee-node synthetic data"

    # --- image
    ds.InstanceNumber = 1
    ds.AcquisitionNumber = 1
    ds.ContentDate = _da(acquired)
    ds.ContentTime = _tm(acquired)
    ds.AcquisitionDate = _da(acquired)
    ds.AcquisitionTime = _tm(acquired)
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.PatientOrientation = patient_orientation(radiograph.knees[0])
    ds.ImageLaterality = laterality
    ds.BurnedInAnnotation = "NO"
    ds.RecognizableVisualFeatures = "NO"
    ds.LossyImageCompression = "00"
    ds.ImageComments = SYNTHETIC_NOTE
    ds.AnatomicRegionSequence = Sequence([_code(_KNEE)])
    if dx:
        ds.ViewCodeSequence = Sequence([_code(_AP_VIEW)])
        ds.PositionerType = "NONE"
        ds.AcquisitionContextSequence = Sequence()

    # --- acquisition: geometry and exposure
    sid_mm = float(rng.choice([1000.0, 1100.0, 1150.0, 1200.0]))
    object_to_detector_mm = float(rng.uniform(40.0, 160.0))
    sod_mm = round(sid_mm - object_to_detector_mm, 1)  # as written, so the ratio matches
    magnification = sid_mm / sod_mm
    ds.KVP = int(rng.integers(55, 76))
    ds.ExposureInuAs = int(rng.integers(2000, 12000))
    ds.Exposure = max(1, int(round(ds.ExposureInuAs / 1000)))
    ds.DistanceSourceToDetector = f"{sid_mm:.1f}"
    ds.DistanceSourceToPatient = f"{sod_mm:.1f}"
    if dx:  # not in the CR IOD; there SID / SOD gives the magnification
        ds.EstimatedRadiographicMagnificationFactor = f"{magnification:.6f}"
    row_mm, col_mm = (float(v) for v in radiograph.pixel_spacing_mm)
    ds.ImagerPixelSpacing = [f"{row_mm * magnification:.6f}", f"{col_mm * magnification:.6f}"]
    if rng.random() < 0.5:
        ds.PixelSpacing = [f"{row_mm:.6f}", f"{col_mm:.6f}"]
        ds.PixelSpacingCalibrationType = "GEOMETRY"
        ds.PixelSpacingCalibrationDescription = "magnification corrected at the knee (synthetic)"
    if dx:
        ds.DetectorType = str(rng.choice(["SCINTILLATOR", "DIRECT"]))
        ds.DetectorConfiguration = "AREA"
        ds.DetectorID = "SYNTH-DET-01"
    else:
        ds.PlateType = "SYNTH-IP"
        ds.PhosphorType = "BaFBr:Eu"

    # --- pixels and grey-scale pipeline
    ds.set_pixel_data(pixels, str(radiograph.photometric), bits, generate_instance_uid=False)
    monochrome1 = radiograph.photometric == "MONOCHROME1"
    ds.RescaleIntercept = 0
    ds.RescaleSlope = 1
    ds.RescaleType = "US"
    if dx:
        ds.PixelIntensityRelationship = "LOG"
        # MONOCHROME2 stores bone (less X-ray reaching the detector) as high values.
        ds.PixelIntensityRelationshipSign = 1 if monochrome1 else -1
        ds.CalibrationImage = "NO"
        ds.PresentationLUTShape = "INVERSE" if monochrome1 else "IDENTITY"
    if not choice.for_processing:
        centre, width = _window(pixels)
        ds.WindowCenter = centre
        ds.WindowWidth = width
        ds.WindowCenterWidthExplanation = "NORMAL"
        ds.VOILUTFunction = "LINEAR"
    return ds
