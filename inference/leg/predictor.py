"""The full-leg measurer: a bilateral standing AP radiograph -> alignment of each leg.

``FullLegPredictor`` is a plain class (``preprocess`` / ``predict`` / ``postprocess``, no
queue):

1. ``preprocess`` reads the pixels (:func:`inference.pixels.read_radiograph`: any transfer
   syntax, MONOCHROME1 turned bone bright) and the pixel spacing, and refuses what is not a
   full-leg image (:class:`NotAFullLegError`, an :class:`InputImageError`);
2. ``predict`` runs the ROI stage (:mod:`inference.leg.roi`) on the whole image, cuts each
   found joint's square (170 / 170 / 150 mm, the crop the landmark model was trained on),
   runs the shipped hourglass leg method (:mod:`inference.leg_models`) and re-centres the
   crop on the joint it found for a second pass; then the shaft points
   (:mod:`inference.leg.shafts`) are read off the image;
3. ``postprocess`` measures each leg (:mod:`inference.leg.geometry`), classifies CPAK with a
   borderline flag, and gives a quality verdict with reasons.

Research use on synthetic data only; not a medical device.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pydicom
import torch
from scipy import ndimage

from inference.errors import InputImageError, KneeNodeError
from inference.leg import geometry as geo
from inference.leg import landmarks as leg
from inference.leg.roi import (
    DEFAULT_ROI_WEIGHTS,
    JointHit,
    RoiDetector,
    RoiResult,
    check_layout,
)
from inference.leg.shafts import shaft_points
from inference.leg_models import JOINT_LANDMARKS, LegLandmarkMethod, load_method
from inference.measurement import ModelInfo
from inference.pixels import RadiographPixels, read_radiograph

FloatArray = npt.NDArray[np.float64]
WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "weights"
DEFAULT_LANDMARK_WEIGHTS = WEIGHTS_DIR / "full_leg_hourglass.pt"
#: SHA-256 of the shipped files (also in FULL_LEG_MODEL_CARD.md; a test checks both).
SHIPPED_SHA256: dict[str, str] = {
    "full_leg_hourglass.pt": "71bf5a3811d432344b74ffd25dc33039d027746d5331c255a278709fe35203e0",
    "full_leg_roi.pt": "ec0ebff8c218b1dbc1594df334b4880937a83a68457d9940057d278e971855d8",
}
#: Square region of each joint, patient mm (the crops the landmark method was trained on).
ROI_MM: dict[str, float] = {"hip": 170.0, "knee": 170.0, "ankle": 150.0}
#: Landmark a second pass re-centres each joint's crop on.
CENTRE_OF: dict[str, str] = {"hip": "femoral_head_centre", "knee": "knee_centre",
                             "ankle": "ankle_centre"}
#: Measurements reported per leg: key of :func:`inference.leg.geometry.measure_leg`,
#: (short name, UCUM unit, method).
MEASUREMENTS: dict[str, tuple[str, str, str]] = {
    "HKA_deg": ("HKA", "deg", "hip-knee-ankle angle, signed, varus negative"),
    "mLDFA_deg": ("mLDFA", "deg", "mechanical lateral distal femoral angle"),
    "mMPTA_deg": ("mMPTA", "deg", "mechanical medial proximal tibial angle"),
    "aHKA_deg": ("aHKA", "deg", "arithmetic HKA = mMPTA - mLDFA"),
    "JLO_deg": ("JLO", "deg", "joint line obliquity = mMPTA + mLDFA"),
    "FVA_deg": ("FVA", "deg", "femoral valgus angle (diaphysis centre from image profile)"),
    "JLCA_deg": ("JLCA", "deg", "joint line convergence angle"),
    "MAD_mm": ("MAD", "mm", "mechanical axis deviation, signed, varus negative"),
    "aTFA_FTS_deg": ("aTFA", "deg", "long-leg anatomical tibiofemoral angle, FTS, valgus +"),
}
#: Typical femur length (mm) used to estimate the scale when the header gives no spacing.
NOMINAL_FEMUR_MM = 450.0

Verdict = Literal["pass", "flag"]


class NotAFullLegError(InputImageError):
    """The image is not a bilateral full-leg radiograph (knee only, lower leg, blank, noise...)."""


class FullLegPredictorError(KneeNodeError):
    """The predictor was built with bad arguments."""


@dataclass(frozen=True)
class QualityLimits:
    """Plausibility limits of one leg's measurements (degrees, mm)."""

    mldfa: tuple[float, float] = (75.0, 105.0)
    mmpta: tuple[float, float] = (75.0, 105.0)
    hka_abs: float = 25.0
    jlca: tuple[float, float] = (-10.0, 12.0)
    fva: tuple[float, float] = (-2.0, 14.0)
    condylar_mm: tuple[float, float] = (30.0, 80.0)
    tibia_to_femur: tuple[float, float] = (0.6, 1.05)
    #: A second pass moving a joint's centre by more than this (mm) means the crop was off.
    recentre_mm: float = 20.0
    #: CPAK borderline margin (deg): a value within it of a threshold is borderline.
    cpak_margin_deg: float = 1.0
    #: Crop-shift test: each joint's crop is moved this far (mm, both axes, both ways) and
    #: predicted again; 0 switches the test off.
    shift_test_mm: float = 8.0
    #: A joint whose landmarks move (median over them, mm) more than this when the crop
    #: moves is flagged: the points follow the crop, not the image.
    shift_consistency_mm: float = 2.0
    #: Second look at a hip: one the ROI stage gives a presence of at least this (below its
    #: threshold) is cropped anyway from the network's point, with its knee found, and kept
    #: only if its landmarks hold when the crop moves (the shift test) and lie within
    #: ``second_look_recentre_mm`` of that point; 0 switches the second look off. The shift
    #: test decides; 0.1 only bounds the work (FULL_LEG_MODEL_CARD.md says how it was set).
    second_look_presence: float = 0.1
    second_look_recentre_mm: float = 60.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.second_look_presence < 1.0:
            raise FullLegPredictorError(
                f"second_look_presence must be in [0, 1), got {self.second_look_presence!r}")
        if not self.second_look_recentre_mm > 0:
            raise FullLegPredictorError(
                f"second_look_recentre_mm must be > 0, got {self.second_look_recentre_mm!r}")
        if not self.shift_test_mm >= 0:
            raise FullLegPredictorError(f"shift_test_mm must be >= 0, got {self.shift_test_mm!r}")
        if not self.shift_consistency_mm > 0:
            raise FullLegPredictorError(
                f"shift_consistency_mm must be > 0, got {self.shift_consistency_mm!r}")
        if not self.cpak_margin_deg >= 0:
            raise FullLegPredictorError(
                f"cpak_margin_deg must be >= 0, got {self.cpak_margin_deg!r}")
        if not self.recentre_mm > 0:
            raise FullLegPredictorError(f"recentre_mm must be > 0, got {self.recentre_mm!r}")


@dataclass(frozen=True)
class CpakResult:
    """CPAK class of a leg: the class, and the classes it could be within the margin."""

    cls: int
    roman: str
    borderline: bool
    candidates: tuple[int, ...]


@dataclass(frozen=True)
class LegResult:
    """One leg of a full-leg radiograph.

    Attributes
    ----------
    side
        Patient side, "R" (image left) or "L".
    landmarks
        ``(50, 2)`` stored px (x = column, y = row), scheme order; NaN where not found.
    found
        ``(50,)`` which landmarks were found.
    measurements
        ``{key: value}`` with the keys of :data:`MEASUREMENTS` (NaN when not measurable).
    units
        UCUM unit per key.
    cpak
        CPAK class with its borderline flag; None when aHKA or JLO is missing.
    quality
        "pass", or "flag" (do not present as a confident result).
    flag_reasons
        Why it is flagged.
    joint_probability
        ROI presence probability per joint.
    shift_mm
        Per joint, how far (median over its landmarks, mm) the landmarks moved when its crop
        was moved by :attr:`QualityLimits.shift_test_mm` (empty when the test is off).
    """

    side: str
    landmarks: FloatArray
    found: npt.NDArray[np.bool_]
    measurements: dict[str, float]
    units: dict[str, str]
    cpak: CpakResult | None
    quality: Verdict
    flag_reasons: tuple[str, ...]
    joint_probability: dict[str, float]
    mm_per_px: float
    shift_mm: dict[str, float] = field(default_factory=dict)

    @property
    def measured(self) -> bool:
        """Whether the leg's joints were all found (measurements are numbers)."""
        return bool(np.isfinite(self.measurements.get("HKA_deg", np.nan)))

    def point(self, name: str) -> FloatArray:
        """Stored-px point ``name``."""
        return self.landmarks[leg.idx(name)]


@dataclass(frozen=True)
class FullLegResult:
    """Both legs of one image, with the model identity shared by the SR and SC."""

    legs: tuple[LegResult, ...]
    image_shape: tuple[int, int]
    pixel_spacing_mm: tuple[float, float] | None
    spacing_source: str | None
    model: ModelInfo
    roi: RoiResult
    timings_ms: dict[str, float] = field(default_factory=dict)

    @property
    def quality(self) -> Verdict:
        """"pass" only when every leg passes."""
        return "pass" if all(lg.quality == "pass" for lg in self.legs) else "flag"

    def leg(self, side: str) -> LegResult:
        """The leg of patient ``side``.

        Raises
        ------
        FullLegPredictorError
            No such leg.
        """
        for lg in self.legs:
            if lg.side == side:
                return lg
        raise FullLegPredictorError(f"side must be one of {[x.side for x in self.legs]}, "
                                    f"got {side!r}")

    def rows(self) -> list[tuple[str, float, str, str, str]]:
        """Result rows ``(name, value, unit, leg, method)`` of every measured value.

        The CPAK class is a row with unit ``"{class}"``; flagged legs keep their rows (the
        quality row says so), unmeasurable values are left out.
        """
        out: list[tuple[str, float, str, str, str]] = []
        method = f"{self.model.name} {self.model.version}"
        for lg in self.legs:
            for key, (name, unit, _) in MEASUREMENTS.items():
                v = lg.measurements.get(key, float("nan"))
                if np.isfinite(v):
                    out.append((name, float(v), unit, lg.side, method))
            if lg.cpak is not None:
                out.append(("CPAK", float(lg.cpak.cls), "{class}", lg.side,
                            method + (" (borderline)" if lg.cpak.borderline else "")))
            out.append(("quality_pass", 1.0 if lg.quality == "pass" else 0.0, "1", lg.side,
                        method))
        return out

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready summary."""
        return {
            "quality": self.quality, "image_shape": list(self.image_shape),
            "pixel_spacing_mm": self.pixel_spacing_mm, "model": self.model.name,
            "model_version": self.model.version, "timings_ms": self.timings_ms,
            "legs": [{"side": lg.side, "quality": lg.quality, "flag_reasons": list(lg.flag_reasons),
                      "measurements": {k: (round(v, 3) if np.isfinite(v) else None)
                                       for k, v in lg.measurements.items()},
                      "cpak": None if lg.cpak is None else {
                          "class": lg.cpak.roman, "borderline": lg.cpak.borderline,
                          "candidates": [geo.cpak_roman(c) for c in lg.cpak.candidates]},
                      "joint_probability": lg.joint_probability} for lg in self.legs],
        }


def cut_region(pixels: npt.NDArray[np.float32], x0: float, y0: float, side_px: float,
               size: int, fill: float = 0.0) -> npt.NDArray[np.float32]:
    """The square ``(x0, y0, side_px)`` of ``pixels`` resampled to ``size`` x ``size``.

    Output pixel ``(x, y)`` shows stored px ``(x0 + x * side_px / size, y0 + y * side_px /
    size)`` (the training crops' convention); the image is block-averaged by
    ``floor(side_px / size)`` first against aliasing. Outside the image: ``fill`` (default 0:
    the crops were trained with zero padding).
    """
    if not (side_px > 0 and size >= 1):
        raise FullLegPredictorError(f"side_px and size must be positive, got {side_px}, {size}")
    f = max(int(side_px // size), 1)
    bx0, by0 = int(np.floor(x0 / f)) - 2, int(np.floor(y0 / f)) - 2
    nb = int(np.ceil(side_px / f)) + 5
    win = np.full((nb * f, nb * f), fill, np.float32)
    r0, c0 = by0 * f, bx0 * f
    rs, cs = max(r0, 0), max(c0, 0)
    re, ce = min(r0 + nb * f, pixels.shape[0]), min(c0 + nb * f, pixels.shape[1])
    if re > rs and ce > cs:
        win[rs - r0:re - r0, cs - c0:ce - c0] = pixels[rs:re, cs:ce]
    small = win.reshape(nb, f, nb, f).mean((1, 3))
    g = np.arange(size, dtype=np.float64) * (side_px / size)
    xs = (x0 + g - 0.5 * (f - 1)) / f - bx0
    ys = (y0 + g - 0.5 * (f - 1)) / f - by0
    yy, xx = np.meshgrid(ys, xs, indexing="ij")
    return ndimage.map_coordinates(small, [yy, xx], order=1, mode="constant",
                                   cval=fill).astype(np.float32)


def cpak_with_margin(ahka_deg: float, jlo_deg: float, margin_deg: float) -> CpakResult:
    """CPAK class of ``(aHKA, JLO)`` and every class within ``margin_deg`` of it.

    Borderline when a value lies within ``margin_deg`` of a threshold (aHKA +-2, JLO 177 and
    183): ``candidates`` then lists the classes of the corners of the margin box.
    """
    c = geo.cpak_class(ahka_deg, jlo_deg)
    cands = sorted({geo.cpak_class(ahka_deg + da, jlo_deg + dj)
                    for da in (-margin_deg, 0.0, margin_deg)
                    for dj in (-margin_deg, 0.0, margin_deg)})
    return CpakResult(c, geo.cpak_roman(c), len(cands) > 1, tuple(cands))


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class FullLegPredictor:
    """ROI stage + per-joint hourglass landmarks + geometry, for bilateral full-leg images.

    Not thread-safe: one instance per worker thread.

    Parameters
    ----------
    roi
        The ROI detector (:class:`inference.leg.roi.RoiDetector`).
    method
        The per-joint landmark method (:class:`inference.leg_models.LegLandmarkMethod`).
    model_info
        Identity of the weights (SR algorithm identification, result rows).
    device
        Torch device, e.g. "cpu".
    passes
        Landmark passes per joint (>= 1); passes after the first re-centre the crop on the
        joint the previous pass found.
    limits
        Quality limits.
    min_aspect
        Rows / columns below which an image is refused as not a full leg.
    min_height_mm
        Image height (with a known spacing) below which it is refused.
    """

    def __init__(self, roi: RoiDetector, method: LegLandmarkMethod, model_info: ModelInfo,
                 device: str | torch.device = "cpu", passes: int = 2,
                 limits: QualityLimits = QualityLimits(), min_aspect: float = 1.6,
                 min_height_mm: float = 650.0, crop_average: bool = True) -> None:
        if not isinstance(roi, RoiDetector):
            raise FullLegPredictorError(f"roi must be a RoiDetector, got {type(roi).__name__}")
        if not isinstance(method, LegLandmarkMethod):
            raise FullLegPredictorError(
                f"method must be a LegLandmarkMethod, got {type(method).__name__}")
        if not isinstance(model_info, ModelInfo):
            raise FullLegPredictorError(
                f"model_info must be a ModelInfo, got {type(model_info).__name__}")
        if isinstance(passes, bool) or not isinstance(passes, int) or passes < 1:
            raise FullLegPredictorError(f"passes must be an int >= 1, got {passes!r}")
        if not (np.isfinite(min_aspect) and min_aspect > 0):
            raise FullLegPredictorError(f"min_aspect must be > 0, got {min_aspect!r}")
        if not (np.isfinite(min_height_mm) and min_height_mm > 0):
            raise FullLegPredictorError(f"min_height_mm must be > 0, got {min_height_mm!r}")
        self.device = torch.device(device)
        self.roi = roi
        self.roi.net.to(self.device)
        self.method = method
        self.method.net.to(self.device).eval()
        self.model_info = model_info
        self.passes = passes
        self.limits = limits
        self.min_aspect = float(min_aspect)
        self.min_height_mm = float(min_height_mm)
        if not isinstance(crop_average, bool):
            raise FullLegPredictorError(f"crop_average must be a bool, got {crop_average!r}")
        #: Each joint's landmarks are the mean of its centred crop and the two crops the
        #: shift test moves (test-time augmentation at no extra forward pass).
        self.crop_average = crop_average

    # ------------------------------------------------------------------ loading
    @classmethod
    def from_weights(cls, roi_weights: str | Path, landmark_weights: str | Path,
                     roi_sha256: str | None = None, landmark_sha256: str | None = None,
                     device: str = "cpu", num_threads: int | None = None,
                     **kwargs: Any) -> FullLegPredictor:
        """Load both weight files (checked against the SHA-256s when given).

        Raises
        ------
        inference.leg_models.LegModelError
            A file is missing, altered or not the right kind.
        """
        if num_threads is not None:
            if isinstance(num_threads, bool) or not isinstance(num_threads, int) or num_threads < 1:
                raise FullLegPredictorError(f"num_threads must be an int >= 1, got {num_threads!r}")
            torch.set_num_threads(num_threads)
        roi = RoiDetector.from_weights(roi_weights, roi_sha256)
        method = load_method(landmark_weights, landmark_sha256)
        lp, rp = Path(landmark_weights), Path(roi_weights)
        info = ModelInfo(
            name="knee-node full-leg (ROI hourglass + joint hourglass)",
            version=f"roi-{roi.sha256[:8]}-lm-{_sha(lp)[:8]}",
            sha256={rp.name: roi.sha256, lp.name: _sha(lp)},
            parameters={"roi_input_hw": list(roi.input_hw),
                        "presence_threshold": roi.presence_threshold,
                        "landmark_method": method.name, "landmark_input": method.input_size,
                        "roi_mm": ROI_MM},
            trained_on="synthetic full-leg radiographs only (training/synth_leg); research use, "
                       "not a medical device",
        )
        return cls(roi, method, info, device=device, **kwargs)

    @classmethod
    def from_default_weights(cls, device: str = "cpu", num_threads: int | None = None,
                             **kwargs: Any) -> FullLegPredictor:
        """Load the weights shipped in ``inference/weights`` (hash-checked)."""
        return cls.from_weights(DEFAULT_ROI_WEIGHTS, DEFAULT_LANDMARK_WEIGHTS,
                                SHIPPED_SHA256["full_leg_roi.pt"] or None,
                                SHIPPED_SHA256["full_leg_hourglass.pt"], device=device,
                                num_threads=num_threads, **kwargs)

    # ------------------------------------------------------------------ steps
    def preprocess(self, ds: pydicom.Dataset) -> RadiographPixels:
        """Pixels (bone bright, [0, 1]) and spacing of ``ds``; refuses non-full-leg images.

        Raises
        ------
        InputImageError
            The pixels cannot be read (:func:`inference.pixels.read_radiograph`).
        NotAFullLegError
            Too squat, too short, or blank to be a standing full-leg image.
        """
        px = read_radiograph(ds)
        self.check_image(px.image, px.pixel_spacing_mm)
        return px

    def check_image(self, image: npt.NDArray[np.float32],
                    pixel_spacing_mm: tuple[float, float] | None) -> None:
        """Refuse images that cannot be a full-leg radiograph (before any network).

        Raises
        ------
        NotAFullLegError
            Aspect below ``min_aspect``, height below ``min_height_mm``, or no contrast.
        """
        rows, cols = image.shape
        if rows / cols < self.min_aspect:
            raise NotAFullLegError(
                f"not a full-leg image: {rows} x {cols} px has aspect {rows / cols:.2f} "
                f"(rows/columns), a standing hip-to-ankle image has >= {self.min_aspect}")
        if pixel_spacing_mm is not None and rows * pixel_spacing_mm[0] < self.min_height_mm:
            raise NotAFullLegError(
                f"not a full-leg image: {rows * pixel_spacing_mm[0]:.0f} mm tall, a hip-to-ankle "
                f"image is >= {self.min_height_mm:.0f} mm")
        step = max(1, int(np.sqrt(image.size / 250_000)))
        if float(np.std(image[::step, ::step])) < 0.01:
            raise NotAFullLegError("not a full-leg image: the image is blank (no contrast)")

    def _crops(self, image: npt.NDArray[np.float32], centres: dict[tuple[str, str], FloatArray],
               mm_per_px: float) -> dict[tuple[str, str], FloatArray]:
        """One landmark pass: crop round each centre, predict, map back to stored px."""
        keys = list(centres)
        if not keys:
            return {}
        size = self.method.input_size
        boxes, batch = [], []
        for side, joint in keys:
            side_px = ROI_MM[joint] / mm_per_px
            c = centres[(side, joint)]
            x0, y0 = float(c[0] - 0.5 * side_px), float(c[1] - 0.5 * side_px)
            boxes.append((x0, y0, side_px))
            batch.append(self.method.preprocess(cut_region(image, x0, y0, side_px, size), side))
        raw = self.method.predict(torch.cat(batch).to(self.device))
        out = {}
        for i, (side, joint) in enumerate(keys):
            p = self.method.postprocess(raw, joint, side, index=i)
            x0, y0, side_px = boxes[i]
            out[(side, joint)] = np.column_stack([x0 + p.points[:, 0] * side_px / size,
                                                  y0 + p.points[:, 1] * side_px / size])
        return out

    def _second_look(self, hit: JointHit, roi: RoiResult) -> bool:
        """Whether a joint the ROI stage did not find gets a second look (a hip only)."""
        lim = self.limits
        return bool(lim.second_look_presence > 0 and lim.shift_test_mm > 0
                    and hit.joint == "hip" and hit.probability >= lim.second_look_presence
                    and np.all(np.isfinite(hit.point)) and roi.get(hit.side, "knee").present)

    def _second_look_holds(self, shift_mm: float, moved_mm: float) -> bool:
        """Whether a second-look joint's landmarks were read from the image."""
        return bool(shift_mm <= self.limits.shift_consistency_mm
                    and moved_mm <= self.limits.second_look_recentre_mm)

    def shift_test(self, image: npt.NDArray[np.float32],
                   found: dict[tuple[str, str], FloatArray],
                   mm_per_px: float) -> dict[tuple[str, str], float]:
        """How far each joint's landmarks follow its crop when the crop moves.

        Each crop is centred on the joint's landmarks, moved by ``+s`` and ``-s`` mm
        (:attr:`QualityLimits.shift_test_mm`, along both image axes) and predicted again. A
        network that reads the image puts the landmarks where they were; one that falls back
        on its prior moves them with the crop. Returns, per joint, the median over its
        landmarks of the distance between the two shifted predictions, in mm (empty when the
        test is off).
        """
        shifted = self.shifted_crops(image, found, mm_per_px)
        return {k: float(np.median(np.hypot(*(plus - minus).T))) * mm_per_px
                for k, (plus, minus) in shifted.items()}

    def shifted_crops(self, image: npt.NDArray[np.float32],
                      found: dict[tuple[str, str], FloatArray], mm_per_px: float
                      ) -> dict[tuple[str, str], tuple[FloatArray, FloatArray]]:
        """Each joint's landmarks predicted again with its crop moved by ``+s`` and ``-s``
        mm along both axes (:attr:`QualityLimits.shift_test_mm`; empty when it is 0)."""
        s_mm = self.limits.shift_test_mm
        if s_mm <= 0 or not found:
            return {}
        centres = {}
        for key, pts in found.items():
            names = JOINT_LANDMARKS[key[1]]
            cn = CENTRE_OF[key[1]]
            centres[key] = pts[names.index(cn)] if cn in names else pts.mean(0)
        step = np.array([s_mm, s_mm]) / mm_per_px
        plus = self._crops(image, {k: c + step for k, c in centres.items()}, mm_per_px)
        minus = self._crops(image, {k: c - step for k, c in centres.items()}, mm_per_px)
        return {k: (plus[k], minus[k]) for k in centres}

    def predict(self, px: RadiographPixels
                ) -> tuple[RoiResult, dict[str, FloatArray], dict[str, list[str]], float, str,
                           dict[str, float], dict[str, dict[str, float]]]:
        """ROI -> joint crops -> landmarks -> shaft points.

        Returns
        -------
        roi, landmarks, notes, mm_per_px, scale_source, timings_ms, shift_mm
            ``landmarks`` per side ``(50, 2)`` stored px (NaN where not found); ``notes`` per
            side the flag reasons the prediction found (missing joints, re-centring, landmarks
            that follow a moved crop); ``shift_mm`` per side and joint the result of
            :meth:`shift_test`.

        Raises
        ------
        NotAFullLegError
            The ROI stage finds no knee, or fewer than three joints.
        """
        t0 = time.perf_counter()
        image = px.image
        if px.pixel_spacing_mm is not None:
            mm_per_px, scale_src = float(px.pixel_spacing_mm[0]), str(px.spacing_source)
        else:
            mm_per_px, scale_src = float("nan"), "estimated"
        roi = self.roi.detect(image, mm_per_px if np.isfinite(mm_per_px) else 0.15)
        t1 = time.perf_counter()
        n_knees = sum(roi.get(s, "knee").present for s in ("R", "L"))
        if n_knees == 0 or roi.n_present < 3:
            raise NotAFullLegError(
                f"not a full-leg image: the ROI stage found {roi.n_present} of 6 joints "
                f"({n_knees} knees); a full-leg image shows hips, knees and ankles")
        if not np.isfinite(mm_per_px):
            lengths = [float(np.hypot(*(roi.get(s, "knee").centre - roi.get(s, "hip").centre)))
                       for s in ("R", "L") if roi.get(s, "knee").present
                       and roi.get(s, "hip").present]
            if not lengths:
                raise NotAFullLegError("no pixel spacing and no femur found to estimate the scale")
            mm_per_px = NOMINAL_FEMUR_MM / float(np.median(lengths))
            roi = RoiResult(roi.joints, check_layout(roi.joints, mm_per_px))
        notes: dict[str, list[str]] = {"R": [], "L": []}
        centres: dict[tuple[str, str], FloatArray] = {}
        second: set[tuple[str, str]] = set()  # joints on a second look (see QualityLimits)
        for hit in roi.joints:
            if hit.present:
                centres[(hit.side, hit.joint)] = hit.centre
            elif self._second_look(hit, roi):
                centres[(hit.side, hit.joint)] = hit.point
                second.add((hit.side, hit.joint))
            else:
                notes[hit.side].append(f"{hit.joint} not found (presence {hit.probability:.2f}): "
                                       "cut off or not in the image")
        start = dict(centres)  # where each joint's crops began (the ROI stage's point)
        found: dict[tuple[str, str], FloatArray] = {}
        first: dict[tuple[str, str], FloatArray] = {}
        for k in range(self.passes):
            found = self._crops(image, centres, mm_per_px)
            new = {}
            for key, pts in found.items():
                names = JOINT_LANDMARKS[key[1]]
                cn = CENTRE_OF[key[1]]
                c = pts[names.index(cn)] if cn in names else pts.mean(0)
                if key[1] == "ankle":
                    c = 0.5 * (pts[names.index("malleolus_medial")]
                               + pts[names.index("malleolus_lateral")])
                new[key] = c
                if k == 0:
                    first[key] = c
            centres = new
        moved = {key: float(np.hypot(*(c - start[key]))) * mm_per_px
                 for key, c in centres.items()}
        for key, d in moved.items():
            if key not in second and d > self.limits.recentre_mm:
                notes[key[0]].append(f"{key[1]} landmarks {d:.0f} mm from the ROI centre")
        shift: dict[str, dict[str, float]] = {"R": {}, "L": {}}
        shifted = self.shifted_crops(image, found, mm_per_px)
        if self.crop_average:
            found = {k: (pts + shifted[k][0] + shifted[k][1]) / 3 if k in shifted else pts
                     for k, pts in found.items()}
        for (side, joint), (plus, minus) in shifted.items():
            d = float(np.median(np.hypot(*(plus - minus).T))) * mm_per_px
            shift[side][joint] = round(d, 3)
            if (side, joint) in second:
                if not self._second_look_holds(d, moved[(side, joint)]):
                    del found[(side, joint)]
                    p = roi.get(side, joint).probability
                    notes[side].append(
                        f"{joint} not found (presence {p:.2f}): cut off or not in the image; a "
                        f"second look did not confirm it (landmarks move {d:.1f} mm with the "
                        f"crop, {moved[(side, joint)]:.0f} mm from the ROI point)")
            elif d > self.limits.shift_consistency_mm:
                notes[side].append(f"{joint} landmarks move {d:.1f} mm when the crop moves "
                                   f"{self.limits.shift_test_mm:g} mm: not read from the image")
        t2 = time.perf_counter()
        out: dict[str, FloatArray] = {}
        for side in ("R", "L"):
            core = np.full((leg.N_CORE, 2), np.nan)
            for joint in ("hip", "knee", "ankle"):
                if (side, joint) in found:
                    for name, p in zip(JOINT_LANDMARKS[joint], found[(side, joint)], strict=True):
                        core[leg.idx(name)] = p
            core[leg.ANKLE_CENTRE] = 0.5 * (core[leg.MALLEOLUS_MEDIAL]
                                            + core[leg.MALLEOLUS_LATERAL])
            pts, _ = shaft_points(image, core)
            out[side] = pts
        t3 = time.perf_counter()
        timings = {"roi": 1000 * (t1 - t0), "landmarks": 1000 * (t2 - t1),
                   "shafts": 1000 * (t3 - t2)}
        return roi, out, notes, mm_per_px, scale_src, timings, shift

    def _measure_leg(self, pts: FloatArray, mm_per_px: float, side: str) -> tuple[
            dict[str, float], list[str]]:
        vals = dict.fromkeys(MEASUREMENTS, float("nan"))
        reasons: list[str] = []
        if not np.all(np.isfinite(pts[[leg.FEMORAL_HEAD_CENTRE, leg.KNEE_CENTRE,
                                       leg.ANKLE_CENTRE, leg.CONDYLE_MEDIAL,
                                       leg.CONDYLE_LATERAL, leg.PLATEAU_MEDIAL,
                                       leg.PLATEAU_LATERAL]])):
            return vals, reasons
        core = pts[:leg.N_CORE].copy()
        dia_ok = bool(np.all(np.isfinite(core[leg.DIAPHYSIS_CENTRE])))
        if not dia_ok:
            core[leg.DIAPHYSIS_CENTRE] = core[leg.KNEE_CENTRE] + 0.3 * (
                core[leg.FEMORAL_HEAD_CENTRE] - core[leg.KNEE_CENTRE])
        try:
            m = geo.measure_leg(core, mm_per_px)
        except ValueError as exc:
            return vals, [f"geometry undefined: {exc}"]
        for k in MEASUREMENTS:
            if k in m:
                vals[k] = float(m[k])
        if not dia_ok:
            vals["FVA_deg"] = float("nan")
            reasons.append("femoral diaphysis not found: FVA not measured")
        shafts = [leg.FEMUR_SHAFT_PROXIMAL, leg.FEMUR_SHAFT_DISTAL, leg.TIBIA_SHAFT_PROXIMAL,
                  leg.TIBIA_SHAFT_DISTAL]
        if all(np.all(np.isfinite(pts[[p.medial, p.lateral]])) for p in shafts):
            try:
                vals["aTFA_FTS_deg"] = float(geo.atfa_fts(np.nan_to_num(pts)))
            except ValueError:
                vals["aTFA_FTS_deg"] = float("nan")
        if not np.isfinite(vals["aTFA_FTS_deg"]):
            reasons.append("shaft cortices not found: long-leg aTFA not measured")
        lim = self.limits
        if not lim.mldfa[0] <= vals["mLDFA_deg"] <= lim.mldfa[1]:
            reasons.append(f"implausible mLDFA {vals['mLDFA_deg']:.1f} deg")
        if not lim.mmpta[0] <= vals["mMPTA_deg"] <= lim.mmpta[1]:
            reasons.append(f"implausible mMPTA {vals['mMPTA_deg']:.1f} deg")
        if abs(vals["HKA_deg"]) > lim.hka_abs:
            reasons.append(f"implausible HKA {vals['HKA_deg']:.1f} deg")
        if not lim.jlca[0] <= vals["JLCA_deg"] <= lim.jlca[1]:
            reasons.append(f"implausible JLCA {vals['JLCA_deg']:.1f} deg")
        if np.isfinite(vals["FVA_deg"]) and not lim.fva[0] <= vals["FVA_deg"] <= lim.fva[1]:
            reasons.append(f"implausible FVA {vals['FVA_deg']:.1f} deg")
        cw = float(np.hypot(*(pts[leg.CONDYLE_LATERAL] - pts[leg.CONDYLE_MEDIAL]))) * mm_per_px
        if not lim.condylar_mm[0] <= cw <= lim.condylar_mm[1]:
            reasons.append(f"implausible condylar line length {cw:.0f} mm")
        fem = float(np.hypot(*(pts[leg.KNEE_CENTRE] - pts[leg.FEMORAL_HEAD_CENTRE])))
        tib = float(np.hypot(*(pts[leg.ANKLE_CENTRE] - pts[leg.KNEE_CENTRE])))
        if fem > 0 and not lim.tibia_to_femur[0] <= tib / fem <= lim.tibia_to_femur[1]:
            reasons.append(f"implausible tibia/femur length ratio {tib / fem:.2f}")
        lat_x = pts[leg.CONDYLE_LATERAL][0] - pts[leg.CONDYLE_MEDIAL][0]
        if (side == "R" and lat_x > 0) or (side == "L" and lat_x < 0):
            reasons.append("condyles mirrored: lateral condyle on the medial side for this leg")
        return vals, reasons

    def postprocess(self, px: RadiographPixels, roi: RoiResult, landmarks: dict[str, FloatArray],
                    notes: dict[str, list[str]], mm_per_px: float, scale_source: str,
                    timings_ms: dict[str, float],
                    shift_mm: dict[str, dict[str, float]] | None = None) -> FullLegResult:
        """Geometry, CPAK and quality per leg -> :class:`FullLegResult`."""
        legs = []
        for side in ("R", "L"):
            pts = landmarks[side]
            vals, reasons = self._measure_leg(pts, mm_per_px, side)
            reasons = list(notes[side]) + [p for p in roi.problems if p.startswith(f"{side} leg")
                                          or not p.startswith(("R leg", "L leg"))] + reasons
            rows, cols = px.image.shape
            core = pts[:leg.N_CORE]
            ok = np.all(np.isfinite(core), axis=1)
            outside = ok & ((core[:, 0] < -0.5) | (core[:, 0] > cols - 0.5) | (core[:, 1] < -0.5)
                            | (core[:, 1] > rows - 0.5))
            if outside.any():
                reasons.append("landmark outside the image: " + ", ".join(
                    leg.NAMES[i] for i in np.flatnonzero(outside)))
            if scale_source == "estimated":
                vals["MAD_mm"] = float("nan")
                reasons.append("no pixel spacing: scale estimated from a nominal femur length, "
                               "MAD not reported")
            if not np.isfinite(vals["HKA_deg"]):
                reasons.append("leg not measured: a joint is missing")
            cpak = None
            if np.isfinite(vals["aHKA_deg"]) and np.isfinite(vals["JLO_deg"]):
                cpak = cpak_with_margin(vals["aHKA_deg"], vals["JLO_deg"],
                                        self.limits.cpak_margin_deg)
            # shaft-only problems (FVA / aTFA not found) do not fail the mechanical values
            hard = [r for r in reasons if "not measured" not in r or "joint" in r]
            legs.append(LegResult(
                side=side, landmarks=pts, found=np.all(np.isfinite(pts), axis=1),
                measurements=vals, units={k: v[1] for k, v in MEASUREMENTS.items()}, cpak=cpak,
                quality="flag" if hard else "pass", flag_reasons=tuple(reasons),
                joint_probability={h.joint: round(h.probability, 4) for h in roi.joints
                                   if h.side == side},
                mm_per_px=mm_per_px, shift_mm=dict((shift_mm or {}).get(side, {}))))
        return FullLegResult(tuple(legs), (int(px.image.shape[0]), int(px.image.shape[1])),
                             px.pixel_spacing_mm, px.spacing_source, self.model_info, roi,
                             {k: round(v, 1) for k, v in timings_ms.items()})

    # ------------------------------------------------------------------ one call
    def measure_pixels(self, px: RadiographPixels) -> FullLegResult:
        """Measure a decoded radiograph (see :meth:`measure`)."""
        t0 = time.perf_counter()
        self.check_image(px.image, px.pixel_spacing_mm)
        roi, pts, notes, mmpp, src, timings, shift = self.predict(px)
        res = self.postprocess(px, roi, pts, notes, mmpp, src, timings, shift)
        res.timings_ms["total"] = round(1000 * (time.perf_counter() - t0), 1)
        return res

    def measure(self, ds: pydicom.Dataset) -> FullLegResult:
        """Measure both legs of one full-leg DICOM instance (landmarks in stored px).

        Raises
        ------
        InputImageError
            Pixels that cannot be read, or :class:`NotAFullLegError` for an image that is not
            a full-leg radiograph.
        """
        t0 = time.perf_counter()
        px = self.preprocess(ds)
        t1 = time.perf_counter()
        roi, pts, notes, mmpp, src, timings, shift = self.predict(px)
        res = self.postprocess(px, roi, pts, notes, mmpp, src, timings, shift)
        res.timings_ms["read"] = round(1000 * (t1 - t0), 1)
        res.timings_ms["total"] = round(1000 * (time.perf_counter() - t0), 1)
        return res
