"""The knee predictor: DICOM instance in, one :class:`KneeMeasurement` per knee out.

A plain class with three steps and no queue:

1. :meth:`KneePredictor.preprocess` -- pixels through pydicom (transfer syntax, Modality
   LUT / rescale, MONOCHROME1), normalised, bone bright; pixel spacing; header laterality.
2. :meth:`KneePredictor.predict` -- **global search** on the letterboxed whole image (and
   on its left and right halves when the image is wide enough to hold two knees) finds
   the two tibial plateau corners and a knee-present probability; for each knee the
   **local search** runs in the aligned patch the corners define (right knees come out
   mirrored into left ones), then once more in the patch its own corners define
   (refinement); landmarks are mapped back to source pixels.
3. :meth:`KneePredictor.postprocess` -- phase, laterality, quality control
   (:mod:`inference.quality`, including whether the shafts the axes run on are in the
   image, :mod:`inference.shaft_evidence`) and the measurement records.

When no knee is found the predictor still returns **one flagged measurement** holding its
best guess, so the node can always send a report that says "flagged" and why.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import time
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt
import pydicom
import torch

from inference import landmarks as lm
from inference.alignment import atfa_all
from inference.edges import EdgeRefinement, refine_shaft_points
from inference.errors import InputImageError, ModelError
from inference.frame import PatchFrame, apply_affine, cut_patch, letterbox_matrix
from inference.measurement import KneeMeasurement, ModelInfo
from inference.networks import HourglassConfig, HourglassNet, PhaseConfig, PhaseNet
from inference.notch import DEFAULT_MODE as NOTCH_DEFAULT
from inference.notch import NotchRefinement, refine_notch_pair
from inference.pixels import RadiographPixels, normalize_intensity, read_radiograph
from inference.quality import QualityThresholds, assess
from inference.shaft_evidence import shaft_contrast
from inference.uncertainty import assess_angles

WEIGHTS_DIR = Path(__file__).parent / "weights"
MANIFEST = "manifest.json"
#: A wide image (columns >= this x rows) is also searched half by half for two knees.
TWO_KNEE_ASPECT = 0.9
#: Two half-image detections are two knees when their plateau mid-points are at least this
#: many plateau widths apart.
TWO_KNEE_MIN_SEPARATION = 1.5


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _load_checked(path: Path, sha256: str, net_class: Any, config_class: Any) -> tuple[Any, dict]:
    """A network from exported weights at ``path``, after checking their SHA-256.

    Raises :class:`ModelError` when the file is missing, altered or unreadable.
    """
    if not path.is_file():
        raise ModelError(f"model weights {path} are missing")
    digest = _sha256(path)
    if digest != sha256:
        raise ModelError(
            f"model weights {path} were altered: SHA-256 {digest} != {sha256} in the manifest"
        )
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
        net = net_class(config_class(**blob["config"]))
        net.load_state_dict(blob["state_dict"])
    except (RuntimeError, KeyError, TypeError, ValueError, OSError,
            pickle.UnpicklingError) as exc:
        raise ModelError(f"model weights {path} cannot be loaded: {exc}") from exc
    return net, dict(blob.get("meta", {}))


def _model_input(patch: torch.Tensor) -> torch.Tensor:
    x = patch.float()
    return ((x - x.mean()) / (x.std() + 1e-4))[None, None]


@dataclass(frozen=True)
class GlobalHit:
    """One global-search answer: corners in source pixels and knee probability."""

    medial: tuple[float, float]
    lateral: tuple[float, float]
    knee_probability: float
    view: str
    #: How far the fibular head lies to one side of the plateau mid-point, in half plateau
    #: widths, capped at 1: near 0 the side (and so which corner is lateral) is a coin toss.
    side_certainty: float = 1.0


@dataclass(frozen=True)
class KneeCandidate:
    """Raw local-search result for one knee (before quality control)."""

    landmarks: npt.NDArray[np.float64]  # (141, 2) source pixels
    spread_pct: npt.NDArray[np.float64]  # (141,) percent of plateau width
    post_probability: float
    frame_probability: float
    knee_probability: float
    laterality: str
    view: str
    side_certainty: float = 1.0
    #: ``(F, 141, 2)`` landmarks of every local-search frame (final pass first), or None.
    frame_landmarks: npt.NDArray[np.float64] | None = None
    #: ``landmarks`` with the shaft cortex points moved onto the image's edges
    #: (:func:`inference.edges.refine_shaft_points`), or None.
    refined_landmarks: npt.NDArray[np.float64] | None = None
    #: Edge contrast of the four shaft cortex lines at the points quality control is run on
    #: (:func:`inference.shaft_evidence.shaft_contrast`), or None (check skipped).
    shaft_contrast: dict[str, float] | None = None
    #: The landmarks the angle uses with the notch pair moved onto the notch walls
    #: (:func:`inference.notch.refine_notch_pair`), or None (not computed).
    notch_landmarks: npt.NDArray[np.float64] | None = None


_E = TypeVar("_E", bound=Enum)


def _switch(kind: type[_E], value: object, name: str) -> _E:
    """``kind(value)``, or a ValueError that names the argument ``name`` and its choices."""
    try:
        return kind(value)
    except ValueError as exc:
        raise ValueError(f"{name} must be one of {[m.value for m in kind]}, got {value!r}"
                         ) from exc


class KneePredictor:
    """Two-stage hourglass landmark model with quality control.

    Not thread-safe (it keeps the box-averaged levels of the image being measured): use
    one instance per worker thread.

    Parameters
    ----------
    global_net, local_net
        Trained networks (eval mode is set here).
    global_size
        Side of the letterboxed global-search input.
    patch_size
        ``(width, height)`` of the local-search patch.
    model_info
        Identity of the weights (name, version, SHA-256).
    device
        Torch device, e.g. ``"cpu"`` or ``"cuda"``.
    refine_passes
        Local-search passes; every pass after the first re-centres the patch on the corners
        the previous pass found.
    thresholds
        Quality-control limits.
    phase_net
        Optional phase classifier run on the final patch (else the local model's logit).
    tta_frames
        Extra, slightly perturbed local-search frames whose landmarks are averaged with the
        final pass (test-time augmentation; 0 = off). The default 6 lowered the aTFA MAD
        on validation renders from 1.11/0.72 to 0.91/0.60 deg (FTS/FNTS) for ~120 ms.
    tta_amplitude
        Size of those perturbations: shift and scale change as a fraction of the plateau
        width, rotation in units of 100 degrees (0.02 = 2 %, 2 degrees, 2 %).
    edge_refinement
        Sub-pixel edge refinement of the shaft cortex points (:mod:`inference.edges`):
        ``"off"`` (default, not computed), ``"report"`` (computed, reported as
        ``atfa_refined_deg``, not used) or ``"use"`` (the angle from the refined points).
    notch_refinement
        Refinement of the femoral notch pair on the notch walls (:mod:`inference.notch`):
        ``"off"`` (not computed), ``"report"`` (computed, reported as ``atfa_notch_deg``,
        not used) or ``"use"`` (the angle from the refined pair); the default is
        :data:`inference.notch.DEFAULT_MODE`.
        Applied to the points the angle uses (after the shaft refinement when that is
        ``"use"``).
    """

    def __init__(
        self,
        global_net: HourglassNet,
        local_net: HourglassNet,
        global_size: int,
        patch_size: tuple[int, int],
        model_info: ModelInfo,
        device: str | torch.device = "cpu",
        refine_passes: int = 2,
        thresholds: QualityThresholds = QualityThresholds(),
        phase_net: PhaseNet | None = None,
        tta_frames: int = 6,
        tta_amplitude: float = 0.02,
        edge_refinement: EdgeRefinement | str = EdgeRefinement.OFF,
        notch_refinement: NotchRefinement | str = NOTCH_DEFAULT,
    ) -> None:
        if tta_frames < 0:
            raise ValueError(f"tta_frames must be >= 0, got {tta_frames}")
        if not 0.0 <= tta_amplitude <= 0.2:
            raise ValueError(f"tta_amplitude must be in [0, 0.2], got {tta_amplitude}")
        self.tta_frames = tta_frames
        #: whether the shaft points are refined on the image's edges, and whether the angle
        #: uses them (off by default: not better on the independent renderer,
        #: docs/results/renderers.md)
        self.edge_refinement = _switch(EdgeRefinement, edge_refinement, "edge_refinement")
        #: whether the notch pair is refined on the notch walls, and whether the angle uses it
        self.notch_refinement = _switch(NotchRefinement, notch_refinement, "notch_refinement")
        self.tta_amplitude = float(tta_amplitude)
        if refine_passes < 1:
            raise ValueError(f"refine_passes must be >= 1, got {refine_passes}")
        if global_net.config.n_landmarks != 3:
            raise ValueError("global_net must output 3 points (two plateau corners, fibular head)")
        if local_net.config.n_landmarks != lm.N_POST_OP:
            raise ValueError(f"local_net must output {lm.N_POST_OP} landmarks")
        self.device = torch.device(device)
        self.global_net = global_net.to(self.device).eval()
        self.local_net = local_net.to(self.device).eval()
        self.global_size = int(global_size)
        self.patch_size = (int(patch_size[0]), int(patch_size[1]))
        self.model_info = model_info
        self.refine_passes = refine_passes
        self.thresholds = thresholds
        self.phase_net = None if phase_net is None else phase_net.to(self.device).eval()
        #: box-averaged levels of the image being measured (see :func:`cut_patch`)
        self._cache: dict[int, torch.Tensor] = {}

    # ------------------------------------------------------------------ loading
    @classmethod
    def from_weights_dir(
        cls, weights_dir: str | Path, device: str = "cpu", num_threads: int | None = None,
        **kwargs: Any,
    ) -> KneePredictor:
        """Load ``global.pt`` and ``local.pt`` after checking them against ``manifest.json``.

        Raises
        ------
        ModelError
            A file is missing, its SHA-256 differs from the manifest, or it cannot be loaded.
        """
        d = Path(weights_dir)
        manifest_path = d / MANIFEST
        if not manifest_path.is_file():
            raise ModelError(f"model manifest {manifest_path} is missing; reinstall the weights")
        try:
            manifest = json.loads(manifest_path.read_text())
            expected: dict[str, str] = dict(manifest["sha256"])
        except (ValueError, KeyError, TypeError) as exc:
            raise ModelError(f"model manifest {manifest_path} is unreadable: {exc}") from exc
        nets: dict[str, tuple[HourglassNet, dict[str, Any]]] = {}
        for name in ("global.pt", "local.pt"):
            if name not in expected:
                raise ModelError(f"model manifest {manifest_path} lists no SHA-256 for {name}")
            net, meta = _load_checked(d / name, expected[name], HourglassNet, HourglassConfig)
            nets[name] = (net, meta)
        if num_threads is not None:
            if num_threads < 1:
                raise ValueError(f"num_threads must be >= 1, got {num_threads}")
            torch.set_num_threads(num_threads)
        phase_net: PhaseNet | None = None
        if "phase.pt" in expected:
            phase_net, _ = _load_checked(d / "phase.pt", expected["phase.pt"], PhaseNet,
                                         PhaseConfig)
        kwargs.setdefault("phase_net", phase_net)
        gnet, gmeta = nets["global.pt"]
        lnet, lmeta = nets["local.pt"]
        info = ModelInfo(
            name=str(manifest.get("name", "knee-node two-stage hourglass")),
            version=str(manifest.get("version", "0")),
            sha256=expected,
            parameters={
                "global": gnet.config.to_dict(), "local": lnet.config.to_dict(),
                "global_input": gmeta.get("input_size"), "patch_size": lmeta.get("patch_size"),
                "generator_version": gmeta.get("generator_version"),
            },
        )
        return cls(gnet, lnet, int(gmeta.get("input_size", 256)),
                   tuple(lmeta.get("patch_size", (192, 320))),
                   info, device=device, **kwargs)

    @classmethod
    def from_shipped_weights(
        cls, device: str = "cpu", num_threads: int | None = None, **kwargs: Any
    ) -> KneePredictor:
        """Load the weights shipped in ``inference/weights`` (hash-checked)."""
        return cls.from_weights_dir(WEIGHTS_DIR, device=device, num_threads=num_threads, **kwargs)

    # ------------------------------------------------------------------ steps
    def preprocess(self, ds: pydicom.Dataset) -> RadiographPixels:
        """Decode and normalise one instance (raises :class:`InputImageError`)."""
        return read_radiograph(ds)

    @torch.no_grad()
    def _global(self, image: torch.Tensor, x0: int, x1: int, view: str) -> GlobalHit:
        rows = image.shape[0]
        A = letterbox_matrix((rows, x1 - x0), self.global_size)
        A[0, 2] += x0
        patch = cut_patch(image, A, (self.global_size, self.global_size), cache=self._cache)
        out = self.global_net(_model_input(patch).to(self.device))
        pts = apply_affine(A, out["coords"][0].cpu().double().numpy())
        p_knee = float(torch.sigmoid(out["logits"][0, 0]))
        # points: image-left corner, image-right corner, fibular head (which is lateral)
        left, right, fibula = pts[0], pts[1], pts[2]
        axis = right - left
        w = max(float(np.linalg.norm(axis)), 1e-6)
        side = float(np.dot(fibula - 0.5 * (left + right), axis / w)) / (0.5 * w)
        medial, lateral = (left, right) if side >= 0 else (right, left)
        return GlobalHit(tuple(medial), tuple(lateral), p_knee, view,
                         side_certainty=float(min(abs(side), 1.0)))

    def global_search(self, image: torch.Tensor) -> list[GlobalHit]:
        """Reference points of every knee found (the best guess when none is)."""
        rows, cols = image.shape
        whole = self._global(image, 0, cols, "whole")
        if cols < TWO_KNEE_ASPECT * rows:
            return [whole]
        half = cols // 2
        left = self._global(image, 0, half, "left half")
        right = self._global(image, half, cols, "right half")
        p_min = self.thresholds.min_knee_probability
        if left.knee_probability >= p_min and right.knee_probability >= p_min:
            mids = [0.5 * (np.add(h.medial, h.lateral)) for h in (left, right)]
            widths = [max(float(np.linalg.norm(np.subtract(h.lateral, h.medial))), 1.0)
                      for h in (left, right)]
            if np.linalg.norm(mids[1] - mids[0]) >= TWO_KNEE_MIN_SEPARATION * max(widths):
                return sorted([left, right], key=lambda h: h.medial[0])
        return [max((whole, left, right), key=lambda h: h.knee_probability)]

    @torch.no_grad()
    def local_search(self, image: torch.Tensor, hit: GlobalHit) -> KneeCandidate:
        """Landmarks of one knee from its reference points (with refinement passes)."""
        medial = np.asarray(hit.medial, dtype=np.float64)
        lateral = np.asarray(hit.lateral, dtype=np.float64)
        rows, cols = image.shape
        if not (np.all(np.isfinite(medial)) and np.all(np.isfinite(lateral))) or np.linalg.norm(
            lateral - medial
        ) < 2.0:
            c = np.array([(cols - 1) / 2.0, (rows - 1) / 2.0])
            w = 0.25 * min(rows, cols)
            medial, lateral = c - [w / 2, 0.0], c + [w / 2, 0.0]
        # Which corner is lateral: the global search's fibular head says one thing; the local
        # model, trained to reject mirrored patches, checks it by scoring both orientations.
        side_certainty = hit.side_certainty
        # both orientations in one batch; the chosen one's output is the first pass
        frames_ = [PatchFrame(tuple(m_), tuple(l_), self.patch_size)
                   for m_, l_ in ((medial, lateral), (lateral, medial))]
        patches_ = [cut_patch(image, f_.matrix, self.patch_size, cache=self._cache)
                    for f_ in frames_]
        both = self.local_net(torch.cat([_model_input(p_) for p_ in patches_]).to(self.device))
        scores = [float(v) for v in torch.sigmoid(both["logits"][:, 1])]
        delta = abs(scores[0] - scores[1])
        chosen = 0
        if scores[1] > scores[0]:  # the local model overrules the global search
            medial, lateral = lateral, medial
            side_certainty = delta
            chosen = 1
        else:
            side_certainty = max(delta, side_certainty)
        frame, patch = frames_[chosen], patches_[chosen]
        result = {k: v[chosen : chosen + 1] for k, v in both.items()}
        for i in range(self.refine_passes):
            if i > 0:
                frame = PatchFrame(tuple(medial), tuple(lateral), self.patch_size)
                patch = cut_patch(image, frame.matrix, self.patch_size, cache=self._cache)
                result = self.local_net(_model_input(patch).to(self.device))
            pts = frame.to_image(result["coords"][0].cpu().double().numpy())
            new_m, new_l = pts[lm.PLATEAU_MEDIAL_CORNER], pts[lm.PLATEAU_LATERAL_CORNER]
            if np.linalg.norm(new_l - new_m) < 2.0:
                break
            medial, lateral = new_m, new_l
        stack = None
        if self.tta_frames > 0:
            pts, stack = self._frame_ensemble(image, frame, pts)
        spread = result["spread"][0].cpu().double().numpy() / frame.scale * 100.0
        logits = torch.sigmoid(result["logits"][0]).cpu().numpy()
        post = float(logits[0])
        if self.phase_net is not None:  # the dedicated phase classifier, on the final patch
            post = float(torch.sigmoid(self.phase_net(_model_input(patch).to(self.device))[0]))
        refined = (None if self.edge_refinement is EdgeRefinement.OFF
                   else refine_shaft_points(image.numpy(), pts))
        checked = refined if self.edge_refinement is EdgeRefinement.USE else pts
        notched = (None if self.notch_refinement is NotchRefinement.OFF
                   else refine_notch_pair(image.numpy(), checked,
                                          phase="post" if post >= 0.5 else "pre"))
        if self.notch_refinement is NotchRefinement.USE:
            checked = notched
        return KneeCandidate(
            landmarks=pts, spread_pct=spread, post_probability=post,
            frame_probability=float(logits[1]), knee_probability=hit.knee_probability,
            laterality=frame.laterality, view=hit.view, side_certainty=side_certainty,
            frame_landmarks=stack, refined_landmarks=refined,
            shaft_contrast=shaft_contrast(image.numpy(), checked),
            notch_landmarks=notched,
        )

    @torch.no_grad()
    def _frame_ensemble(
        self, image: torch.Tensor, frame: PatchFrame, pts: npt.NDArray[np.float64]
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """Average the landmarks over ``tta_frames`` slightly moved, turned and scaled frames.

        Returns the mean and the ``(F, N, 2)`` stack of every frame (final pass first).

        The perturbations are a fixed pattern (by default 2 % of the plateau width, 2
        degrees, 2 % scale; see ``tta_amplitude``), so results are reproducible.
        """
        amp = self.tta_amplitude
        m = np.asarray(frame.medial, dtype=np.float64)
        lat = np.asarray(frame.lateral, dtype=np.float64)
        mid, half = 0.5 * (m + lat), 0.5 * (lat - m)
        w = 2.0 * float(np.linalg.norm(half))
        frames, patches = [], []
        for k in range(self.tta_frames):
            a = 2.0 * np.pi * k / self.tta_frames
            shift = amp * w * np.array([np.cos(a), np.sin(a)])
            ang = np.radians(100.0 * amp * np.cos(2 * a + 0.5))
            scale = 1.0 + amp * np.sin(a + 0.3)
            rot = np.array([[np.cos(ang), -np.sin(ang)], [np.sin(ang), np.cos(ang)]])
            h = scale * (rot @ half)
            f = PatchFrame(tuple(mid + shift - h), tuple(mid + shift + h), self.patch_size)
            frames.append(f)
            patches.append(_model_input(cut_patch(image, f.matrix, self.patch_size,
                                                  cache=self._cache))[0])
        out = self.local_net(torch.stack(patches).to(self.device))["coords"].cpu().double().numpy()
        stack = np.stack([pts] + [f.to_image(c) for f, c in zip(frames, out, strict=True)])
        return np.mean(stack, axis=0), stack

    def predict(
        self, image: npt.NDArray[np.floating]
    ) -> tuple[list[KneeCandidate], dict[str, float]]:
        """Global then local search on a [0, 1] bone-bright image; returns candidates, timings."""
        t0 = time.perf_counter()
        img = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))
        self._cache = {}
        try:
            hits = self.global_search(img)
            t1 = time.perf_counter()
            cands = [self.local_search(img, h) for h in hits]
            t2 = time.perf_counter()
        finally:
            self._cache = {}
        return cands, {"global": 1000 * (t1 - t0), "local": 1000 * (t2 - t1)}

    def postprocess(
        self,
        candidates: list[KneeCandidate],
        image_shape: tuple[int, int],
        pixel_spacing_mm: tuple[float, float] | None,
        header_laterality: str | None,
        timings_ms: dict[str, float],
    ) -> list[KneeMeasurement]:
        """Phase, laterality and quality control -> measurement records."""
        out: list[KneeMeasurement] = []
        two = len(candidates) > 1
        for c in candidates:
            phase = "post" if c.post_probability >= 0.5 else "pre"
            n = lm.N_POST_OP if phase == "post" else lm.N_PRE_OP
            pts = c.landmarks[:n]
            refined = None if c.refined_landmarks is None else c.refined_landmarks[:n]
            if self.edge_refinement is EdgeRefinement.USE and refined is not None:
                pts = refined
            notched = None if c.notch_landmarks is None else c.notch_landmarks[:n]
            if self.notch_refinement is NotchRefinement.USE and notched is not None:
                pts = notched
            # With two knees in the image the header's single laterality cannot apply to both.
            hint = None if two else header_laterality
            q = assess(
                knee_probability=c.knee_probability,
                frame_probability=c.frame_probability,
                median_spread_pct=float(np.median(c.spread_pct[:n])),
                landmarks=pts,
                pixel_spacing_mm=pixel_spacing_mm,
                image_laterality=c.laterality,
                header_laterality=hint,
                image_shape=image_shape,
                side_certainty=c.side_certainty,
                shaft_contrast=c.shaft_contrast,
                thresholds=self.thresholds,
            )
            frames = None if c.frame_landmarks is None else c.frame_landmarks[:, :n]
            unc = assess_angles(pts, c.spread_pct[:n], frames)
            reasons = q.reasons + tuple(unc.reasons())
            out.append(KneeMeasurement(
                landmarks=pts, phase=phase, laterality=c.laterality,  # type: ignore[arg-type]
                quality="flag" if reasons else "pass", confidence=q.confidence,
                flag_reasons=reasons, pixel_spacing_mm=pixel_spacing_mm, model=self.model_info,
                timings_ms={k: round(v, 1) for k, v in timings_ms.items()},
                atfa_ci95_deg=unc.half_width,
                atfa_sd_deg={"frames": unc.frame_sd, "spread": unc.spread_sd},
                atfa_refined_deg={} if refined is None else atfa_all(refined),
                atfa_notch_deg={} if notched is None else atfa_all(notched),
            ))
        return out

    # ------------------------------------------------------------------ one call
    def measure_array(
        self,
        image: npt.NDArray[np.floating],
        pixel_spacing_mm: tuple[float, float] | None,
        laterality_hint: str | None = None,
    ) -> list[KneeMeasurement]:
        """Measure every knee in a 2-D float image with bone bright (any value range).

        Returns one measurement per knee found, or one flagged best guess when none is.
        """
        arr = np.asarray(image)
        if arr.ndim != 2 or min(arr.shape) < 32:
            raise InputImageError(f"expected a 2-D image of at least 32x32, got shape {arr.shape}")
        if laterality_hint not in (None, "L", "R"):
            raise ValueError(f"laterality_hint must be 'L', 'R' or None, got {laterality_hint!r}")
        if pixel_spacing_mm is not None:
            ps = tuple(float(v) for v in pixel_spacing_mm)
            if len(ps) != 2 or not all(np.isfinite(v) and v > 0 for v in ps):
                raise ValueError(
                    f"pixel_spacing_mm must be two positive numbers, got {pixel_spacing_mm!r}"
                )
            pixel_spacing_mm = (ps[0], ps[1])
        try:
            norm = normalize_intensity(arr)
        except ValueError as exc:
            raise InputImageError(str(exc)) from exc
        t0 = time.perf_counter()
        cands, timings = self.predict(norm)
        timings["total"] = 1000 * (time.perf_counter() - t0)
        return self.postprocess(cands, norm.shape, pixel_spacing_mm, laterality_hint, timings)

    def measure(self, ds: pydicom.Dataset) -> list[KneeMeasurement]:
        """Measure every knee in one DICOM instance (landmarks in stored-pixel coordinates).

        Raises
        ------
        InputImageError
            The pixel data cannot be used.
        """
        t0 = time.perf_counter()
        px = self.preprocess(ds)
        t1 = time.perf_counter()
        cands, timings = self.predict(px.image)
        timings["preprocess"] = 1000 * (t1 - t0)
        timings["total"] = 1000 * (time.perf_counter() - t0)
        return self.postprocess(cands, px.image.shape, px.pixel_spacing_mm, px.image_laterality,
                                timings)
