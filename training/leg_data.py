"""Per-joint training crops of the full-leg generator, cached in one ``.npz``.

Each study seed gives six crops (two legs x hip, knee, ankle) from
:func:`training.synth_leg.render_joint_crop`, centred on the joint with a uniform jitter of
``jitter_mm``. Targets are the landmarks of :data:`inference.leg_models.CHANNELS` in crop
pixels; a crop's mask is 1 on its own joint's channels only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from inference.errors import ConfigError
from inference.leg import landmarks as leg
from inference.leg_models.base import CHANNELS, joint_channels, normalise_crop

JOINTS = ("hip", "knee", "ankle")


@dataclass(frozen=True)
class CropSet:
    """Crops with their targets.

    Attributes
    ----------
    images
        ``(N, S, S)`` float16 in [0, 1] (:func:`normalise_crop`), not mirrored.
    points
        ``(N, C, 2)`` crop px of every channel (most lie outside other joints' crops).
    mask
        ``(N, C)`` 1 on the crop's joint's channels.
    side
        ``(N,)`` 0 = right leg, 1 = left leg.
    joint
        ``(N,)`` index into ``("hip", "knee", "ankle")``.
    mm_per_px
        ``(N,)`` patient mm per crop pixel.
    """

    images: npt.NDArray[np.float16]
    points: npt.NDArray[np.float32]
    mask: npt.NDArray[np.float32]
    side: npt.NDArray[np.int8]
    joint: npt.NDArray[np.int8]
    mm_per_px: npt.NDArray[np.float32]

    def __len__(self) -> int:
        return int(self.images.shape[0])


def make_crops(seeds: range, size: int, jitter_mm: float) -> CropSet:
    """Render the six crops of every seed in ``seeds``.

    Raises
    ------
    ConfigError
        ``seeds`` is empty or reaches the hold-out range (>= 900,000,000).
    """
    from training.synth_leg import plan_study, render_joint_crop

    if len(seeds) == 0:
        raise ConfigError(f"seeds must not be empty, got {seeds!r}")
    if max(seeds) >= 900_000_000:
        raise ConfigError(f"training seeds must stay below 900,000,000, got {seeds!r}")
    ch_idx = [leg.idx(n) for n in CHANNELS]
    imgs, pts, masks, sides, joints, mmpp = [], [], [], [], [], []
    for s in seeds:
        st = plan_study(int(s))
        for side in ("R", "L"):
            for j, joint in enumerate(JOINTS):
                c = render_joint_crop(st, side, joint, size, jitter_mm=jitter_mm)
                imgs.append(normalise_crop(c.image).astype(np.float16))
                pts.append(c.landmarks[ch_idx].astype(np.float32))
                m = np.zeros(len(CHANNELS), np.float32)
                m[joint_channels(joint)] = 1.0
                masks.append(m)
                sides.append(0 if side == "R" else 1)
                joints.append(j)
                mmpp.append(c.mm_per_px)
    return CropSet(np.stack(imgs), np.stack(pts), np.stack(masks), np.array(sides, np.int8),
                   np.array(joints, np.int8), np.array(mmpp, np.float32))


def cached_crops(cache: Path, seeds: range, size: int, jitter_mm: float) -> CropSet:
    """:func:`make_crops`, read from ``cache`` when it was written with the same arguments."""
    key = f"{seeds.start}-{seeds.stop}-{size}-{jitter_mm}"
    if cache.is_file():
        z = np.load(cache)
        if str(z["key"]) == key:
            return CropSet(z["images"], z["points"], z["mask"], z["side"], z["joint"],
                           z["mm_per_px"])
    cs = make_crops(seeds, size, jitter_mm)
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(".tmp.npz")
    np.savez(tmp, key=np.array(key), images=cs.images, points=cs.points, mask=cs.mask,
             side=cs.side, joint=cs.joint, mm_per_px=cs.mm_per_px)
    tmp.replace(cache)
    return cs


def mirrored(points: npt.NDArray[np.float32], side: npt.NDArray[np.int8], size: int
             ) -> npt.NDArray[np.float32]:
    """Points as the network sees them: x mirrored (``size - 1 - x``) for left legs."""
    out = points.copy()
    left = side == 1
    out[left, :, 0] = (size - 1) - out[left, :, 0]
    return out
