"""Builders of a knee DX source and KneeMeasurement records for the report tests, and the
input checks shared by the SR and SC constructors.

Other ``test_reports_*`` modules import the builders from here.
"""

from __future__ import annotations

import copy
import math
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image, ImageDraw
from pydicom import Dataset
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from dicom_node.reports import (
    ReportInputError,
    ReportTypeError,
    create_measurement_report,
    create_overlay_image,
)
from inference import landmarks as lm
from inference.measurement import KneeMeasurement, ModelInfo

DX_FOR_PRESENTATION = "1.2.840.10008.5.1.4.1.1.1.1"
MODEL = ModelInfo(
    name="knee-hourglass",
    version="0.0.1-test",
    sha256={"global.pt": "ab" * 32, "local.pt": "cd" * 32},
    parameters={"input_side": 256, "stages": 2},
)


def _template(notch_shift: float) -> dict[str, tuple[float, float]]:
    """Untilted outline of a left knee (lateral +x, distal +y, joint centre at the origin)."""
    pts: dict[str, tuple[float, float]] = {}
    for i in range(8):  # lateral femoral cortex, proximal to metaphysis
        pts[f"femur_lateral_cortex_{i}"] = ((14, 14, 14, 14, 15, 20, 28, 34)[i], -150 + 15 * i)
    for i in range(12):
        t = i / 11
        pts[f"femur_lateral_condyle_{i}"] = (36 + 4 * math.sin(math.pi * t), -40 + 35 * t)
    for i in range(6):
        pts[f"femur_lateral_articular_{i}"] = (36 - 24 * i / 5, -2.0)
    for i in range(9):
        t = i / 8
        pts[f"femur_notch_{i}"] = (10 * math.cos(math.pi * t) + notch_shift,
                                   -3 - 15 * math.sin(math.pi * t))
    for i in range(6):  # lateral tibial cortex, 0 most distal
        pts[f"tibia_lateral_cortex_{i}"] = ((13, 13, 13, 16, 22, 30)[i], 150 - 20 * i)
    for i in range(5):
        pts[f"tibia_lateral_margin_{i}"] = (34 + i, 40 - 7 * i)
    pts["tibia_plateau_lateral_corner"] = (38.0, 6.0)
    for i in range(6):
        pts[f"tibia_lateral_plateau_{i}"] = (34 - 24 * i / 5, 5.0)
    for i, p in enumerate([(8.0, 2.0), (6.0, -2.0), (3.0, 0.0)]):
        pts[f"tibia_lateral_spine_{i}"] = p
    for i in range(10):
        a = 2 * math.pi * i / 10
        pts[f"fibula_head_{i}"] = (44 + 8 * math.cos(a), 42 + 9 * math.sin(a))

    def mirror(name: str) -> tuple[float, float]:
        x, y = pts[name]
        return (-x, y)

    for i in range(8):
        pts[f"femur_medial_cortex_{i}"] = mirror(f"femur_lateral_cortex_{i}")
    for i in range(12):
        pts[f"femur_medial_condyle_{i}"] = mirror(f"femur_lateral_condyle_{11 - i}")
    for i in range(6):
        pts[f"femur_medial_articular_{i}"] = mirror(f"femur_lateral_articular_{5 - i}")
        pts[f"tibia_medial_plateau_{i}"] = mirror(f"tibia_lateral_plateau_{5 - i}")
        pts[f"tibia_medial_cortex_{i}"] = mirror(f"tibia_lateral_cortex_{i}")
    for i in range(3):
        pts[f"tibia_medial_spine_{i}"] = mirror(f"tibia_lateral_spine_{2 - i}")
    for i in range(5):
        pts[f"tibia_medial_margin_{i}"] = mirror(f"tibia_lateral_margin_{4 - i}")
    pts["tibia_plateau_medial_corner"] = mirror("tibia_plateau_lateral_corner")
    for i in range(16):  # femoral component hugging the condyles
        a = math.pi * i / 15
        pts[f"implant_femoral_{i}"] = (40 * math.cos(a), -4 - 30 * math.sin(a))
    for i in range(12):
        pts[f"implant_tibial_{i}"] = (-36 + 72 * i / 11, 4.0 + (6.0 if 3 < i < 8 else 0.0))
    return pts


def knee_landmarks(tibia_deg: float, femur_deg: float = 0.0, *, laterality: str = "L",
                   phase: str = "pre", scale: float = 1.0, centre: tuple[float, float] = (0, 0),
                   notch_shift: float = 3.0) -> np.ndarray:
    """``(N, 2)`` landmarks of a knee in image pixels; aTFA by FTS is ``tibia_deg - femur_deg``.

    A right knee is the mirror image of a left one (lateral toward -x in the image).
    """
    template = _template(notch_shift)
    names = lm.names_for(phase)  # type: ignore[arg-type]
    out = np.zeros((len(names), 2))
    for i, name in enumerate(names):
        x, y = template[name]
        tilt = math.radians(tibia_deg if name.startswith(("tibia", "fibula", "implant_tibial"))
                            else femur_deg)
        # rotate so the distal direction (0, 1) turns toward lateral (+x) by ``tilt``
        out[i] = (x * math.cos(tilt) + y * math.sin(tilt), -x * math.sin(tilt) + y * math.cos(tilt))
    if laterality == "R":
        out[:, 0] = -out[:, 0]
    return out * scale + np.asarray(centre, dtype=float)


def make_source(rows: int = 640, cols: int = 520, knees: tuple[np.ndarray, ...] = (),
                photometric: str = "MONOCHROME2") -> Dataset:
    """A DX-for-presentation instance with bones drawn where ``knees`` put them (12-bit)."""
    canvas = Image.new("L", (cols, rows), 40)
    draw = ImageDraw.Draw(canvas)
    for pts in knees:
        for curve in ("femur", "tibia", "fibula_head"):
            start, stop = lm.CURVES[curve]
            draw.polygon([tuple(p) for p in pts[start:stop]], fill=170)
    rng = np.random.default_rng(0)
    pixels = np.asarray(canvas, dtype=np.float64) * 16 + rng.normal(0, 30, (rows, cols))
    pixels = np.clip(pixels, 0, 4095).astype(np.uint16)
    if photometric == "MONOCHROME1":
        pixels = (4095 - pixels).astype(np.uint16)
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = DX_FOR_PRESENTATION
    ds.SOPClassUID = DX_FOR_PRESENTATION
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.PatientName = "Synthetic^Knee"
    ds.PatientID = "SYN-0001"
    ds.PatientBirthDate = "19700101"
    ds.PatientSex = "F"
    ds.StudyDate, ds.StudyTime, ds.StudyID, ds.AccessionNumber = "20260101", "101500", "1", "ACC1"
    ds.ReferringPhysicianName = ""
    ds.Modality = "DX"
    ds.Manufacturer = "synthetic"
    ds.BodyPartExamined = "KNEE"
    ds.ViewPosition = "AP"
    ds.PatientOrientation = ["L", "F"]
    ds.SeriesNumber, ds.InstanceNumber = 1, 1
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.Rows, ds.Columns = rows, cols
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.WindowCenter, ds.WindowWidth = 1900, 3200
    ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = 0, 1, "US"
    ds.PixelData = pixels.tobytes()
    return ds


def make_measurement(landmarks: np.ndarray, *, laterality: str = "L", quality: str = "pass",
                     phase: str = "pre", reasons: tuple[str, ...] = ()) -> KneeMeasurement:
    """A KneeMeasurement of ``landmarks`` by :data:`MODEL`."""
    return KneeMeasurement(
        landmarks=landmarks, phase=phase, laterality=laterality, quality=quality,  # type: ignore[arg-type]
        confidence=0.91 if quality == "pass" else 0.32, flag_reasons=reasons, model=MODEL,
    )


def pass_case() -> tuple[Dataset, KneeMeasurement]:
    """One left knee, 6 deg valgus by FTS, on a 640x520 source."""
    pts = knee_landmarks(8.0, 2.0, scale=1.6, centre=(260, 320))
    return make_source(knees=(pts,)), make_measurement(pts)


# --- input checks -------------------------------------------------------------------------


def test_builder_angle_is_known() -> None:
    _, m = pass_case()
    assert m.atfa_deg["FTS"] == pytest.approx(6.0, abs=1e-9)
    assert m.verdict == "valgus"
    right = knee_landmarks(-4.0, laterality="R", centre=(100, 100))
    assert make_measurement(right, laterality="R").atfa_deg["FTS"] == pytest.approx(-4.0, abs=1e-9)


@pytest.mark.parametrize("create", [create_measurement_report, create_overlay_image])
def test_constructors_refuse_bad_inputs(create: object) -> None:
    source, m = pass_case()
    kwargs = {"device_observer_uid": generate_uid()} if create is create_measurement_report else {}
    call = create  # type: ignore[assignment]
    with pytest.raises(ValueError, match="measurements is empty"):
        call(source, [], **kwargs)
    with pytest.raises(TypeError, match="measurements"):
        call(source, m, **kwargs)
    with pytest.raises(TypeError, match="source"):
        call("file.dcm", [m], **kwargs)
    no_pixels = copy.deepcopy(source)
    del no_pixels.PixelData
    with pytest.raises(ValueError, match="PixelData"):
        call(no_pixels, [m], **kwargs)
    no_uid = copy.deepcopy(source)
    del no_uid.SOPInstanceUID
    with pytest.raises(ValueError, match="SOPInstanceUID"):
        call(no_uid, [m], **kwargs)
    wrong_shape = replace(m, landmarks=m.landmarks[:50])
    with pytest.raises(ValueError, match=r"measurements\[0\]\.landmarks must have shape"):
        call(source, [wrong_shape], **kwargs)
    nan = m.landmarks.copy()
    nan[3, 1] = np.nan
    with pytest.raises(ReportInputError, match="NaN"):
        call(source, [replace(m, landmarks=nan)], **kwargs)
    with pytest.raises(ReportTypeError, match=r"measurements\[1\]"):
        call(source, [m, "knee"], **kwargs)


def test_sr_needs_model_and_valid_observer_uid() -> None:
    source, m = pass_case()
    with pytest.raises(ValueError, match=r"measurements\[0\]\.model"):
        create_measurement_report(
            source, [replace(m, model=None)], device_observer_uid=generate_uid()
        )
    with pytest.raises(ValueError, match="device_observer_uid"):
        create_measurement_report(source, [m], device_observer_uid="not-a-uid")
