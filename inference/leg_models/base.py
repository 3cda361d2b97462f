"""The one interface of the per-joint landmark methods, and the channel layout they share."""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from inference.errors import KneeNodeError

FloatArray = npt.NDArray[np.float64]

#: The landmarks each joint's crop is asked for (names of :mod:`inference.leg.landmarks`).
JOINT_LANDMARKS: dict[str, tuple[str, ...]] = {
    "hip": ("femoral_head_centre",),
    "knee": ("condyle_medial_distal", "condyle_lateral_distal", "plateau_medial",
             "plateau_lateral", "knee_centre"),
    "ankle": ("malleolus_medial", "malleolus_lateral", "ankle_centre"),
}
#: Output channels of every method's network: the landmarks of all joints, in joint order.
CHANNELS: tuple[str, ...] = tuple(n for j in ("hip", "knee", "ankle") for n in JOINT_LANDMARKS[j])


def joint_channels(joint: str) -> list[int]:
    """Indices into :data:`CHANNELS` of the landmarks of ``joint``.

    Raises
    ------
    LegModelError
        ``joint`` is not "hip", "knee" or "ankle".
    """
    if joint not in JOINT_LANDMARKS:
        raise LegModelError(f"joint must be one of {tuple(JOINT_LANDMARKS)}, got {joint!r}")
    return [CHANNELS.index(n) for n in JOINT_LANDMARKS[joint]]


class LegModelError(KneeNodeError):
    """A full-leg landmark method got an input it cannot use, or bad weights."""


@dataclass(frozen=True)
class JointPrediction:
    """The landmarks one method found in one joint crop.

    Attributes
    ----------
    names
        Landmark names (the joint's entries of :data:`JOINT_LANDMARKS`).
    points
        ``(K, 2)`` (x, y) in the pixels of the crop as given to ``preprocess`` (not mirrored);
        NaN where ``found`` is False.
    found
        ``(K,)`` whether a point was found (mask methods can miss one).
    spread
        ``(K,)`` a per-point uncertainty in crop pixels (NaN when the method has none).
    candidates
        ``(K,)`` connected components seen (mask methods; 1 for the others); more than one is
        a false positive of paper 001's Table 3.
    """

    names: tuple[str, ...]
    points: FloatArray
    found: npt.NDArray[np.bool_]
    spread: FloatArray
    candidates: npt.NDArray[np.int64]


def normalise_crop(image: npt.ArrayLike) -> npt.NDArray[np.float32]:
    """Scale a crop to [0, 1] by its 0.5th and 99.5th percentiles (bone bright in, bone bright out).

    Raises
    ------
    LegModelError
        ``image`` is not a finite 2-D array.
    """
    a = np.asarray(image, dtype=np.float32)
    if a.ndim != 2:
        raise LegModelError(f"image must be 2-D, got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise LegModelError("image contains NaN or infinite values")
    lo, hi = np.percentile(a, (0.5, 99.5))
    if hi - lo < 1e-6:
        return np.zeros_like(a)
    return np.clip((a - lo) / (hi - lo), 0.0, 1.0).astype(np.float32)


class LegLandmarkMethod(ABC):
    """A per-joint landmark method: ``preprocess`` -> ``predict`` -> ``postprocess``.

    A left leg's crop is mirrored in ``preprocess`` so that the network sees every leg as a
    right leg (medial toward the image right); ``postprocess`` mirrors the points back.

    Parameters
    ----------
    input_size
        Side of the square network input, pixels (a multiple of 32).
    options
        Method-specific options (stored in checkpoints).
    """

    #: Registry name ("hourglass", "seg", "heatmap", "coord", "sgr").
    name: str = ""

    def __init__(self, input_size: int = 128, **options: Any) -> None:
        if isinstance(input_size, bool) or not isinstance(input_size, int) or input_size < 32 \
                or input_size % 32:
            raise LegModelError(f"input_size must be a positive multiple of 32, got {input_size!r}")
        self.input_size = input_size
        self.options = dict(options)
        self.net: nn.Module = self.build_network()

    @abstractmethod
    def build_network(self) -> nn.Module:
        """The method's torch network (``len(CHANNELS)`` output landmarks)."""

    @abstractmethod
    def forward(self, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        """Raw network outputs for a ``(B, 1, S, S)`` batch (with gradients)."""

    @abstractmethod
    def loss(self, raw: dict[str, torch.Tensor], target: torch.Tensor,
             mask: torch.Tensor) -> torch.Tensor:
        """Training loss; ``target`` ``(B, C, 2)`` network-input px, ``mask`` ``(B, C)``."""

    @abstractmethod
    def decode(self, raw: dict[str, torch.Tensor], index: int, channels: list[int]
               ) -> tuple[FloatArray, npt.NDArray[np.bool_], FloatArray, npt.NDArray[np.int64]]:
        """Points, found, spread and candidates of ``channels`` of sample ``index``."""

    # ---- the interface --------------------------------------------------------------------
    def preprocess(self, image: npt.ArrayLike, side: str) -> torch.Tensor:
        """A square crop (bone bright) -> the ``(1, 1, S, S)`` network input.

        Parameters
        ----------
        image
            ``(S, S)`` crop, ``S`` = ``input_size``, any intensity range, bone bright.
        side
            Patient side of the leg, "R" or "L" (a left leg is mirrored).
        """
        if side not in ("R", "L"):
            raise LegModelError(f"side must be 'R' or 'L', got {side!r}")
        a = normalise_crop(image)
        if a.shape != (self.input_size, self.input_size):
            raise LegModelError(
                f"image must be {self.input_size} x {self.input_size}, got {a.shape}")
        if side == "L":
            a = a[:, ::-1]
        return torch.from_numpy(np.ascontiguousarray(a))[None, None]

    def predict(self, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        """Network outputs for ``batch`` in evaluation mode, without gradients."""
        self.net.eval()
        with torch.no_grad():
            return self.forward(batch)

    def postprocess(self, raw: dict[str, torch.Tensor], joint: str, side: str,
                    index: int = 0) -> JointPrediction:
        """The landmarks of ``joint`` of sample ``index``, in the un-mirrored crop's pixels."""
        ch = joint_channels(joint)
        pts, found, spread, cand = self.decode(raw, index, ch)
        pts = np.asarray(pts, dtype=np.float64).copy()
        if side == "L":
            pts[:, 0] = (self.input_size - 1) - pts[:, 0]
        pts[~found] = np.nan
        return JointPrediction(JOINT_LANDMARKS[joint], pts, found, spread, cand)

    def locate(self, image: npt.ArrayLike, joint: str, side: str) -> JointPrediction:
        """``postprocess(predict(preprocess(image, side)), joint, side)``."""
        return self.postprocess(self.predict(self.preprocess(image, side)), joint, side)

    # ---- persistence ----------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        """Everything needed to rebuild the method (see :func:`load_method`)."""
        return {"method": self.name, "input_size": self.input_size, "options": self.options,
                "channels": list(CHANNELS), "state_dict": self.net.state_dict()}

    def save(self, path: str | Path) -> str:
        """Write :meth:`state` to ``path``; return its SHA-256."""
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        torch.save(self.state(), p)
        return hashlib.sha256(p.read_bytes()).hexdigest()


def _registry() -> dict[str, type[LegLandmarkMethod]]:
    from inference.leg_models.coord import CoordMethod
    from inference.leg_models.hourglass import HourglassMethod
    from inference.leg_models.mask import HeatmapMethod, SegMethod
    from inference.leg_models.sgr import SgrMethod

    return {c.name: c for c in (HourglassMethod, SegMethod, HeatmapMethod, CoordMethod,
                                SgrMethod)}


def build_method(name: str, input_size: int = 128, **options: Any) -> LegLandmarkMethod:
    """A fresh (untrained) method by registry ``name``.

    Raises
    ------
    LegModelError
        ``name`` is not a known method.
    """
    reg = _registry()
    if name not in reg:
        raise LegModelError(f"method must be one of {sorted(reg)}, got {name!r}")
    return reg[name](input_size=input_size, **options)


def load_method(path: str | Path, sha256: str | None = None) -> LegLandmarkMethod:
    """Rebuild a method saved by :meth:`LegLandmarkMethod.save`.

    Raises
    ------
    LegModelError
        The file is missing, its checksum differs from ``sha256``, or it is not a method.
    """
    p = Path(path)
    if not p.is_file():
        raise LegModelError(f"weights file {str(p)!r} does not exist")
    if sha256 is not None and hashlib.sha256(p.read_bytes()).hexdigest() != sha256:
        raise LegModelError(f"weights file {str(p)!r} does not match its SHA-256 {sha256}")
    state = torch.load(p, map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or "method" not in state:
        raise LegModelError(f"{str(p)!r} is not a full-leg landmark method file")
    if list(state.get("channels", [])) != list(CHANNELS):
        raise LegModelError(f"{str(p)!r} has channels {state.get('channels')}, expected {CHANNELS}")
    m = build_method(state["method"], int(state["input_size"]), **state["options"])
    m.net.load_state_dict(state["state_dict"])
    m.net.eval()
    return m
