"""Helpers for the node tests: small synthetic DX instances, a truth-reading measurer,
free ports, and a pynetdicom storage SCP standing in for a PACS.

The truth measurer is a *test double* for plumbing tests: it returns the ground-truth
landmarks recorded for the instance (same JSON layout as ``knee-node synth``). The
end-to-end acceptance test uses the real ``KneePredictor``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from pynetdicom.sop_class import DigitalXRayImageStorageForPresentation

from dicom_node.peers import StandInPacs, free_port, wait_port  # noqa: F401 -- re-exported
from inference.alignment import atfa_all
from inference.landmarks import N_PRE_OP, PRE_OP_NAMES, idx
from inference.measurement import KneeMeasurement, ModelInfo

PHI_NAME = "Doe^Janet^Secret"
PHI_ID = "PID-7731-SECRET"
PHI_BIRTH = "19450317"


def synthetic_knee_cases(
    folder: Path, seeds: tuple[int, ...], syntaxes: tuple[str, ...] = ("explicit", "jpeg-lossless"),
    fake_patient: bool = False,
) -> list[tuple[Path, dict[str, Any]]]:
    """Single-knee instances from the generator (``.dcm`` + JSON truth), one per seed.

    Syntaxes cycle over ``syntaxes``; with ``fake_patient`` the instances carry the
    recognisable fake patient name, ID and birth date above (for PHI-in-log checks).
    """
    from training.synth_dicom import make_instance, write_instance

    made = []
    for i, seed in enumerate(seeds):
        inst = make_instance(seed, max_side=1024, syntax=syntaxes[i % len(syntaxes)],
                             both_knees=False)
        if fake_patient:
            inst.dataset.PatientName = PHI_NAME
            inst.dataset.PatientID = PHI_ID
            inst.dataset.PatientBirthDate = PHI_BIRTH
        dcm, _ = write_instance(inst, folder)
        made.append((dcm, inst.truth))
    return made


def knee_landmarks(atfa_deg: float, rows: int = 320, cols: int = 256) -> np.ndarray:
    """113 pre-op landmarks of a schematic left-to-right knee with a built-in aTFA."""
    cx = cols / 2
    pts = np.zeros((N_PRE_OP, 2))
    # spread every point on an ellipse around the joint (for drawing), then set the key ones
    t = np.linspace(0, 2 * math.pi, N_PRE_OP, endpoint=False)
    pts[:, 0] = cx + 0.3 * cols * np.cos(t)
    pts[:, 1] = 0.5 * rows + 0.35 * rows * np.sin(t)
    half = 0.08 * cols
    for level, y in ((0, 0.08 * rows), (3, 0.35 * rows)):
        pts[idx(f"femur_medial_cortex_{level}")] = (cx - half, y)
        pts[idx(f"femur_lateral_cortex_{level}")] = (cx + half, y)
    pts[idx("femur_notch_8")] = (cx - 0.03 * cols, 0.5 * rows)
    pts[idx("femur_notch_0")] = (cx + 0.03 * cols, 0.5 * rows)
    pts[idx("tibia_plateau_medial_corner")] = (cx - 0.2 * cols, 0.55 * rows)
    pts[idx("tibia_plateau_lateral_corner")] = (cx + 0.2 * cols, 0.55 * rows)
    th = math.radians(atfa_deg)
    d = np.array([math.sin(th), math.cos(th)])
    n = np.array([d[1], -d[0]])
    prox = np.array([cx, 0.62 * rows])
    for level, dist in ((2, 0.0), (0, 0.3 * rows)):
        mid = prox + dist * d
        pts[idx(f"tibia_medial_cortex_{level}")] = mid - half * n
        pts[idx(f"tibia_lateral_cortex_{level}")] = mid + half * n
    return pts


def make_dx(
    atfa_deg: float = 4.0,
    *,
    body_part: str = "KNEE",
    view: str = "AP",
    modality: str = "DX",
    rows: int = 320,
    cols: int = 256,
) -> tuple[Dataset, dict[str, Any]]:
    """A small DX For Presentation instance (with PHI to check logs) and its JSON truth."""
    pts = knee_landmarks(atfa_deg, rows, cols)
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = DigitalXRayImageStorageForPresentation
    ds.SOPClassUID = DigitalXRayImageStorageForPresentation
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.PatientName, ds.PatientID, ds.PatientBirthDate, ds.PatientSex = (
        PHI_NAME,
        PHI_ID,
        PHI_BIRTH,
        "F",
    )
    ds.StudyDate, ds.StudyTime, ds.AccessionNumber, ds.ReferringPhysicianName = (
        "20260101",
        "101010",
        "A1",
        "",
    )
    ds.StudyID, ds.SeriesNumber, ds.InstanceNumber = "1", 1, 1
    ds.Modality, ds.BodyPartExamined, ds.ViewPosition = modality, body_part, view
    ds.Manufacturer, ds.PatientOrientation, ds.ImageLaterality, ds.Laterality = (
        "test",
        ["R", "F"],
        "L",
        "L",
    )
    ds.PresentationIntentType, ds.ImageType = "FOR PRESENTATION", ["ORIGINAL", "PRIMARY"]
    ds.BurnedInAnnotation, ds.ContentDate, ds.ContentTime = "NO", "20260101", "101010"
    ds.PixelSpacing = ds.ImagerPixelSpacing = [0.5, 0.5]
    ds.Rows, ds.Columns, ds.SamplesPerPixel, ds.PhotometricInterpretation = (
        rows,
        cols,
        1,
        "MONOCHROME2",
    )
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = 0, 1, "US"
    ds.WindowCenter, ds.WindowWidth, ds.PixelIntensityRelationship = 2048, 4096, "LIN"
    ds.PixelIntensityRelationshipSign, ds.DetectorType = 1, "SCINTILLATOR"
    img = np.full((rows, cols), 400, np.uint16)
    yy, xx = np.mgrid[0:rows, 0:cols]
    img[np.abs(xx - cols / 2) < 0.08 * cols] = 2600
    ds.PixelData = img.tobytes()
    truth = {
        "landmarks": pts.tolist(),
        "landmark_names": list(PRE_OP_NAMES),
        "laterality": "L",
        "phase": "pre",
        "pixel_spacing_mm": [0.5, 0.5],
        "atfa_deg": atfa_all(pts),
        "sop_instance_uid": str(ds.SOPInstanceUID),
        "study_instance_uid": str(ds.StudyInstanceUID),
    }
    return ds, truth


def store(port: int, ds: Dataset, calling: str = "MODALITY") -> int:
    """C-STORE ``ds`` to the node on ``port`` in one association; the status answered."""
    from pynetdicom import AE

    ae = AE(ae_title=calling)
    ae.add_requested_context(ds.SOPClassUID, ds.file_meta.TransferSyntaxUID)
    assoc = ae.associate("127.0.0.1", port, ae_title="KNEE_NODE")
    assert assoc.is_established, "the node refused the association"
    try:
        return int(assoc.send_c_store(ds).Status)
    finally:
        assoc.release()


def write_case(folder: Path, ds: Dataset, truth: dict[str, Any], stem: str) -> Path:
    """Write ``<stem>.dcm`` and ``<stem>.json`` in ``folder``; return the .dcm path."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{stem}.dcm"
    ds.save_as(path, enforce_file_format=True)
    (folder / f"{stem}.json").write_text(json.dumps(truth))
    return path


class TruthMeasurer:
    """Test double: returns the ground-truth landmarks recorded for the instance (and the
    95 % half-widths ``atfa_ci95_deg`` when the record has them)."""

    def __init__(self, truth_dir: Path) -> None:
        self.truth_dir = Path(truth_dir)
        self.model_info = ModelInfo(name="truth-double", version="test", sha256={})

    def measure(self, ds: Dataset) -> list[KneeMeasurement]:
        from dicom_node.errors import InputImageError

        ds.pixel_array  # noqa: B018 -- decode, as the real predictor does
        uid = str(ds.SOPInstanceUID)
        for path in self.truth_dir.glob("*.json"):
            rec = json.loads(path.read_text())
            if rec.get("sop_instance_uid") == uid:
                knees = rec.get("knees", [rec])
                return [
                    KneeMeasurement(
                        landmarks=np.asarray(k["landmarks"], float),
                        phase=k["phase"],
                        laterality=k["laterality"],
                        quality=k.get("quality", "pass"),
                        confidence=0.99,
                        flag_reasons=tuple(k.get("flag_reasons", ())),
                        pixel_spacing_mm=tuple(k["pixel_spacing_mm"]),
                        model=self.model_info,
                        timings_ms={"forward": 1.0},
                        atfa_ci95_deg=dict(k.get("atfa_ci95_deg", {})),
                    )
                    for k in knees
                ]
        raise InputImageError("no ground truth for this instance")


def truth_measurer(settings: Any) -> TruthMeasurer:
    """``model.factory`` entry for worker processes: ``node_support:truth_measurer``."""
    return TruthMeasurer(Path(settings.options["truth_dir"]))


class StoreSCP(StandInPacs):
    """The stand-in PACS of the tests (``dicom_node.peers.StandInPacs``)."""


PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


@contextmanager
def postgres_database() -> Iterator[str | None]:
    """A fresh Postgres database (URL), dropped afterwards; None if Postgres is unreachable."""
    from benchmarks.procs import postgres_database as fresh_database

    with fresh_database(PG_ADMIN) as url:
        yield url


def redis_reachable(url: str = "redis://127.0.0.1:6379/15") -> bool:
    """True if Redis answers PING at ``url``."""
    import redis

    try:
        return bool(redis.Redis.from_url(url, socket_timeout=2).ping())
    except redis.exceptions.ConnectionError:
        return False


def sr_atfa(sr: Dataset) -> dict[str, list[float]]:
    """Every aTFA value (degrees) in an SR, by method: ``{"FTS": [...], "FNTS": [...]}``."""
    found: dict[str, list[float]] = {"FTS": [], "FNTS": []}

    def walk(items: Any) -> None:
        for item in items:
            name = item.get("ConceptNameCodeSequence")
            if item.get("ValueType") == "NUM" and name:
                code = str(name[0].CodeValue)
                if code in ("ATFA-FTS", "ATFA-FNTS"):
                    mv = item.MeasuredValueSequence[0]
                    assert mv.MeasurementUnitsCodeSequence[0].CodeValue == "deg"
                    found[code.split("-")[1]].append(float(mv.NumericValue))
            if "ContentSequence" in item:
                walk(item.ContentSequence)

    walk(sr.ContentSequence)
    return found


class MetricsSite:
    """A node (in-process queue, :class:`TruthMeasurer`) with its metrics endpoint, a PACS
    ``pacs`` on ``pacs_port`` and, with ``dead_archive``, a destination ``archive`` nobody
    listens on (its deliveries fail after ``max_attempts``)."""

    def __init__(self, tmp: Path, pacs_port: int, max_attempts: int = 3,
                 dead_archive: bool = False) -> None:
        import yaml

        from dicom_node.node import KneeNode
        from dicom_node.settings import load_settings

        self.cases = tmp / "cases"
        destinations: list[dict[str, Any]] = [
            {"name": "pacs", "ae_title": "TEST_PACS", "host": "127.0.0.1", "port": pacs_port}]
        if dead_archive:
            destinations.append({"name": "archive", "ae_title": "ARCHIVE",
                                 "host": "127.0.0.1", "port": free_port()})
        cfg = {
            "storage": {"data_dir": str(tmp / "var")},
            "node": {"allowed_callers": [{"ae_title": "MODALITY"}]},
            "delivery": {"destinations": destinations, "backoff_initial_s": 0.05,
                         "max_attempts": max_attempts},
            "metrics": {"port": 0},
        }
        (tmp / "config.yaml").write_text(yaml.safe_dump(cfg))
        self.settings = load_settings(tmp / "config.yaml", environ={})
        self.node = KneeNode(self.settings, measurer=TruthMeasurer(self.cases), port=0)
        self.metrics: Any = None

    def start(self) -> MetricsSite:
        from dicom_node.metrics import MetricsServer

        self.node.start()
        m = self.settings.metrics
        self.metrics = MetricsServer(self.node.ctx, m.host, m.port).start()
        return self

    @property
    def status_url(self) -> str:
        """The node's ``/status`` page."""
        assert self.metrics is not None
        return f"http://127.0.0.1:{self.metrics.port}/status"

    def stop(self) -> None:
        if self.metrics is not None:
            self.metrics.stop()
        self.node.stop()

    def push(self, *cases: tuple[Any, ...], calling: str = "MODALITY") -> None:
        """Send ``(stem, make_dx kwargs[, truth overrides])`` cases in one association."""
        from pynetdicom import AE

        ae = AE(ae_title=calling)
        datasets = []
        for stem, kw, *extra in cases:
            ds, truth = make_dx(**kw)
            for e in extra:
                truth.update(e)
            write_case(self.cases, ds, truth, stem)
            datasets.append(ds)
            ae.add_requested_context(ds.SOPClassUID, ds.file_meta.TransferSyntaxUID)
        assoc = ae.associate("127.0.0.1", self.node.port, ae_title="KNEE_NODE")
        assert assoc.is_established
        assert [assoc.send_c_store(ds).Status for ds in datasets] == [0] * len(datasets)
        assoc.release()
