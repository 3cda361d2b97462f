"""ROI stage of the full-leg measurer: hip, knee and ankle of each leg on the whole image.

A small attention-gated hourglass with soft-argmax (:class:`inference.networks.HourglassNet`,
the knee global search's network) looks at the whole radiograph letterboxed into
``ROI_INPUT_HW`` (rows x columns) pixels and gives, per joint, a point and a *presence*
logit (its pooled image-level head). One channel per joint **and per image side**
(:data:`ROI_JOINTS`), so the two ankles are two separate outputs and cannot be averaged into
one; :func:`check_layout` then checks the six points make a bilateral standing leg pair
(ankles apart and on their sides, hip above knee above ankle).

A joint whose presence probability is below ``presence_threshold`` is reported missing: a
joint cut off by the image edge (or by collimation) is not guessed.

Side convention: a standard AP display, the patient's right leg on the image left (the
generator's and paper 001's convention). Research use only, not a medical device.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from PIL import Image

from inference.leg_models.base import LegModelError
from inference.networks import HourglassConfig, HourglassNet

FloatArray = npt.NDArray[np.float64]

#: Network input (rows, columns): a standing full-leg image is about 3 times taller than wide.
ROI_INPUT_HW: tuple[int, int] = (384, 128)
#: Output channels: (patient side, joint); the right leg lies on the image left.
ROI_JOINTS: tuple[tuple[str, str], ...] = (
    ("R", "hip"), ("R", "knee"), ("R", "ankle"), ("L", "hip"), ("L", "knee"), ("L", "ankle"),
)
#: Landmark (of :mod:`inference.leg.landmarks`) each joint channel is trained on.
ROI_CENTRE: dict[str, str] = {"hip": "femoral_head_centre", "knee": "knee_centre",
                              "ankle": "ankle_centre"}
#: Where the shipped weights are.
DEFAULT_ROI_WEIGHTS = Path(__file__).resolve().parents[1] / "weights" / "full_leg_roi.pt"


@dataclass(frozen=True)
class Letterbox:
    """A whole image reduced into the network input, and the map back.

    ``input px = stored px * scale + offset`` (pixel centres at integer coordinates).

    Attributes
    ----------
    image
        ``(rows, cols)`` float32 in [0, 1], the reduced image centred on zero padding.
    scale
        Input pixels per stored pixel (< 1 when reducing).
    offset
        ``(x, y)`` offset of the reduced image in the input, input px.
    content
        ``(x0, y0, x1, y1)`` input-pixel box of the reduced image (the rest is padding).
    """

    image: npt.NDArray[np.float32]
    scale: float
    offset: tuple[float, float]
    content: tuple[int, int, int, int]

    def to_input(self, stored_xy: npt.ArrayLike) -> FloatArray:
        """Stored px -> input px."""
        p = np.asarray(stored_xy, dtype=np.float64)
        return (p + 0.5) * self.scale - 0.5 + np.asarray(self.offset)

    def to_stored(self, input_xy: npt.ArrayLike) -> FloatArray:
        """Input px -> stored px."""
        p = np.asarray(input_xy, dtype=np.float64)
        return (p - np.asarray(self.offset) + 0.5) / self.scale - 0.5


def letterbox(image: npt.ArrayLike, size_hw: tuple[int, int] = ROI_INPUT_HW) -> Letterbox:
    """Area-average ``image`` (bone bright, any range) into ``size_hw``, keeping its aspect.

    The reduced image is centred; its intensities are scaled to [0, 1] by its own 0.5th and
    99.5th percentiles. A constant image gives zeros.

    Raises
    ------
    LegModelError
        ``image`` is not a finite 2-D array of at least 8 x 8 pixels, or ``size_hw`` is not
        two positive ints.
    """
    a = np.asarray(image, dtype=np.float32)
    if a.ndim != 2 or min(a.shape) < 8:
        raise LegModelError(f"image must be 2-D and at least 8 x 8, got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise LegModelError("image contains NaN or infinite values")
    if (len(size_hw) != 2 or any(isinstance(v, bool) or not isinstance(v, int) or v < 8
                                 for v in size_hw)):
        raise LegModelError(f"size_hw must be two ints >= 8, got {size_hw!r}")
    rows, cols = a.shape
    H, W = size_hw
    s = min(H / rows, W / cols)
    h, w = max(1, min(H, int(round(rows * s)))), max(1, min(W, int(round(cols * s))))
    small = np.asarray(Image.fromarray(np.ascontiguousarray(a), mode="F").resize(
        (w, h), Image.Resampling.BOX), dtype=np.float32)
    sy, sx = h / rows, w / cols
    scale = float(0.5 * (sx + sy))
    lo, hi = np.percentile(small, (0.5, 99.5))
    small = (np.clip((small - lo) / (hi - lo), 0, 1) if hi - lo > 1e-6 * max(1.0, abs(hi))
             else np.zeros_like(small)).astype(np.float32)
    out = np.zeros((H, W), np.float32)
    y0, x0 = (H - h) // 2, (W - w) // 2
    out[y0:y0 + h, x0:x0 + w] = small
    return Letterbox(out, scale, (float(x0), float(y0)), (x0, y0, x0 + w, y0 + h))


@dataclass(frozen=True)
class JointHit:
    """One joint of the ROI stage.

    Attributes
    ----------
    side, joint
        Patient side ("R"/"L") and "hip"/"knee"/"ankle".
    centre
        ``(x, y)`` stored px (NaN when not ``present``).
    probability
        Presence probability in [0, 1].
    present
        ``probability >= presence_threshold`` and the point lies in the image.
    spread
        Soft-argmax spread in stored px.
    point
        ``(x, y)`` stored px the network pointed at, present or not (NaN if not given): where
        a second look at a joint with a low presence starts.
    """

    side: str
    joint: str
    centre: FloatArray
    probability: float
    present: bool
    spread: float
    point: FloatArray = field(default_factory=lambda: np.full(2, np.nan))


@dataclass(frozen=True)
class RoiResult:
    """The six joints of one image, with the layout problems :func:`check_layout` found."""

    joints: tuple[JointHit, ...]
    problems: tuple[str, ...]

    def get(self, side: str, joint: str) -> JointHit:
        """The hit of ``side`` ``joint``.

        Raises
        ------
        LegModelError
            No such joint.
        """
        for j in self.joints:
            if j.side == side and j.joint == joint:
                return j
        raise LegModelError(f"no joint {side!r} {joint!r}; joints are {ROI_JOINTS}")

    @property
    def n_present(self) -> int:
        """How many of the six joints were found."""
        return sum(j.present for j in self.joints)


def check_layout(joints: tuple[JointHit, ...], mm_per_px: float) -> tuple[str, ...]:
    """Plausibility of the present joints as a bilateral standing pair (AP display).

    Checks: the right leg's joints lie left of the left leg's at the same level; the two
    ankles (and knees) are at least 25 mm apart; per leg, hip above knee above ankle with
    femur and tibia lengths of 250-650 mm and 200-550 mm.

    Parameters
    ----------
    joints
        The six hits in :data:`ROI_JOINTS` order.
    mm_per_px
        Patient mm per stored pixel (> 0).
    """
    if not (np.isfinite(mm_per_px) and mm_per_px > 0):
        raise LegModelError(f"mm_per_px must be positive, got {mm_per_px!r}")
    by = {(j.side, j.joint): j for j in joints}
    out: list[str] = []
    for joint in ("hip", "knee", "ankle"):
        r, left = by[("R", joint)], by[("L", joint)]
        if r.present and left.present:
            dx = float(left.centre[0] - r.centre[0]) * mm_per_px
            if dx < 25.0:
                out.append(f"{joint}s not apart: left minus right {dx:.0f} mm (need >= 25 mm on "
                           "their own image sides)")
    for side in ("R", "L"):
        h, k, a = by[(side, "hip")], by[(side, "knee")], by[(side, "ankle")]
        for (p, q, name, lo, hi) in ((h, k, "femur", 250.0, 650.0),
                                     (k, a, "tibia", 200.0, 550.0)):
            if p.present and q.present:
                d = q.centre - p.centre
                length = float(np.hypot(*d)) * mm_per_px
                if d[1] <= 0:
                    out.append(f"{side} leg: {q.joint} not below {p.joint}")
                elif not lo <= length <= hi:
                    out.append(f"{side} leg: {name} {length:.0f} mm long, outside {lo:.0f}-{hi:.0f}"
                               " mm")
    return tuple(out)


def build_roi_network(width: int = 16, depth: int = 4, dropout: float = 0.1,
                      beta: float = 10.0) -> HourglassNet:
    """The ROI network: 6 soft-argmax channels and 6 presence logits."""
    return HourglassNet(HourglassConfig(in_channels=1, n_landmarks=len(ROI_JOINTS), width=width,
                                        depth=depth, n_logits=len(ROI_JOINTS), dropout=dropout,
                                        beta=beta))


class RoiDetector:
    """Finds the six joints on a whole image.

    Parameters
    ----------
    net
        A :func:`build_roi_network` network with trained weights.
    input_hw
        Network input (rows, columns), multiples of the network's size multiple.
    presence_threshold
        Presence probability at and above which a joint counts as found, in (0, 1).
    edge_margin_mm
        A joint whose point lies closer than this to the image edge is reported missing (a
        joint cut by the edge draws the point to the edge).
    sha256
        Checksum of the weights file (for the model info record), or "" when not from a file.
    """

    def __init__(self, net: HourglassNet, input_hw: tuple[int, int] = ROI_INPUT_HW,
                 presence_threshold: float = 0.5, sha256: str = "",
                 edge_margin_mm: float = 10.0) -> None:
        if not isinstance(net, HourglassNet) or net.config.n_landmarks != len(ROI_JOINTS) \
                or net.config.n_logits != len(ROI_JOINTS):
            raise LegModelError(f"net must be a 6-channel ROI HourglassNet, got {net!r:.80}")
        k = net.config.size_multiple
        if len(input_hw) != 2 or any(not isinstance(v, int) or v <= 0 or v % k for v in input_hw):
            raise LegModelError(f"input_hw must be two positive multiples of {k}, got {input_hw!r}")
        if not 0.0 < presence_threshold < 1.0:
            raise LegModelError(
                f"presence_threshold must be in (0, 1), got {presence_threshold!r}")
        self.net = net.eval()
        self.input_hw = (int(input_hw[0]), int(input_hw[1]))
        self.presence_threshold = float(presence_threshold)
        if not (np.isfinite(edge_margin_mm) and edge_margin_mm >= 0):
            raise LegModelError(f"edge_margin_mm must be >= 0, got {edge_margin_mm!r}")
        self.sha256 = sha256
        self.edge_margin_mm = float(edge_margin_mm)

    @classmethod
    def from_weights(cls, path: str | Path = DEFAULT_ROI_WEIGHTS, sha256: str | None = None,
                     presence_threshold: float | None = None) -> RoiDetector:
        """Load weights written by ``training.leg_roi_train``.

        Raises
        ------
        LegModelError
            The file is missing, does not match ``sha256`` or is not an ROI model.
        """
        p = Path(path)
        if not p.is_file():
            raise LegModelError(f"ROI weights file {str(p)!r} does not exist")
        digest = hashlib.sha256(p.read_bytes()).hexdigest()
        if sha256 is not None and digest != sha256:
            raise LegModelError(f"ROI weights file {str(p)!r} does not match its SHA-256 {sha256}")
        state = torch.load(p, map_location="cpu", weights_only=True)
        if not isinstance(state, dict) or state.get("kind") != "full_leg_roi":
            raise LegModelError(f"{str(p)!r} is not a full-leg ROI model file")
        if [tuple(j) for j in state["joints"]] != [tuple(j) for j in ROI_JOINTS]:
            raise LegModelError(f"{str(p)!r} has joints {state['joints']}, expected {ROI_JOINTS}")
        net = build_roi_network(**state["network"])
        net.load_state_dict(state["state_dict"])
        thr = float(state.get("presence_threshold", 0.5)) if presence_threshold is None \
            else presence_threshold
        hw = (int(state["input_hw"][0]), int(state["input_hw"][1]))
        return cls(net, hw, thr, digest)

    def preprocess(self, image: npt.ArrayLike) -> tuple[torch.Tensor, Letterbox]:
        """Whole image (bone bright) -> ``(1, 1, H, W)`` network input and its letterbox."""
        lb = letterbox(image, self.input_hw)
        return torch.from_numpy(lb.image)[None, None], lb

    def predict(self, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        """Network outputs (evaluation mode, no gradients)."""
        with torch.no_grad():
            out: dict[str, torch.Tensor] = self.net(batch)
        return out

    def postprocess(self, raw: dict[str, torch.Tensor], lb: Letterbox,
                    image_shape: tuple[int, int], mm_per_px: float) -> RoiResult:
        """Stored-pixel joints with presence, and :func:`check_layout` of them."""
        coords = raw["coords"][0].detach().cpu().numpy().astype(np.float64)
        spread = raw["spread"][0].detach().cpu().numpy().astype(np.float64)
        prob = torch.sigmoid(raw["logits"][0]).detach().cpu().numpy().astype(np.float64)
        rows, cols = image_shape
        hits = []
        for c, (side, joint) in enumerate(ROI_JOINTS):
            xy = lb.to_stored(coords[c])
            m = self.edge_margin_mm / mm_per_px
            inside = bool(m - 0.5 <= xy[0] <= cols - 0.5 - m and m - 0.5 <= xy[1] <= rows - 0.5 - m)
            present = bool(prob[c] >= self.presence_threshold and inside)
            hits.append(JointHit(side, joint, xy if present else np.full(2, np.nan),
                                 float(prob[c]), present, float(spread[c] / lb.scale),
                                 xy if inside else np.full(2, np.nan)))
        joints = tuple(hits)
        return RoiResult(joints, check_layout(joints, mm_per_px))

    def detect(self, image: npt.ArrayLike, mm_per_px: float) -> RoiResult:
        """``postprocess(predict(preprocess(image)))``.

        Parameters
        ----------
        image
            The whole stored image, bone bright.
        mm_per_px
            Patient mm per stored pixel (for the layout check).
        """
        a = np.asarray(image)
        batch, lb = self.preprocess(a)
        return self.postprocess(self.predict(batch), lb, (int(a.shape[0]), int(a.shape[1])),
                                mm_per_px)

    def state(self, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        """What :meth:`from_weights` reads."""
        c = self.net.config
        return {"kind": "full_leg_roi", "joints": [list(j) for j in ROI_JOINTS],
                "input_hw": list(self.input_hw), "presence_threshold": self.presence_threshold,
                "network": {"width": c.width, "depth": c.depth, "dropout": c.dropout,
                            "beta": c.beta},
                "state_dict": self.net.state_dict(), **(extra or {})}
