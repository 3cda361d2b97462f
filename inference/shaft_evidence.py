"""Is the shaft the axis is drawn on actually in the image?

The FTS axes run through two levels of cortex points on each shaft
(:data:`inference.landmarks.FEMUR_SHAFT_PROXIMAL` / ``_DISTAL`` and the tibial pairs).  When
the collimation (or the image edge) cuts a shaft off, the network still places those
points -- from what it learned a knee looks like, not from the image -- and the angle can be
several degrees off while every other check passes.  This module measures how much
cortex the image shows where the points were put, so that quality control can lower the
confidence instead of trusting the prior.

For each of the four shaft cortex lines (femoral medial and lateral, tibial medial and
lateral) and each of its two axis points, the image is sampled along 9 short profiles
normal to the cortex (:func:`inference.edges.sample_profiles`, the same sampling as the
edge refinement).  The **step** of one profile is the mean of its inner part (bone side,
``t <= -INNER_GAP * half``) minus the mean of its outer part (soft-tissue side,
``t >= INNER_GAP * half``), in the predictor's normalised intensity (0.5th-99.5th
percentile -> 0-1, bone bright); the point's contrast is the **median** step of its 9
profiles, and a line's contrast is the **smaller** of its two points' (the axis needs
both).  A point whose profiles leave the image has contrast 0.  A blanked (collimated)
stretch of shaft is flat, so its contrast is near 0; a visible cortex steps down from
bone to soft tissue by a few hundredths or more.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import numpy.typing as npt

from inference import landmarks as lm
from inference.edges import sample_profiles, shaft_normals

#: The profile's parts nearer than this share of its half-length to the point are left out
#: of both means (they hold the cortex edge itself, wherever the point is off by a little).
INNER_GAP = 0.3

#: The four cortex lines, each with its two axis points (proximal level first).
SHAFT_LINES: dict[str, tuple[int, int]] = {
    "femoral medial": (lm.FEMUR_SHAFT_PROXIMAL.medial, lm.FEMUR_SHAFT_DISTAL.medial),
    "femoral lateral": (lm.FEMUR_SHAFT_PROXIMAL.lateral, lm.FEMUR_SHAFT_DISTAL.lateral),
    "tibial medial": (lm.TIBIA_SHAFT_PROXIMAL.medial, lm.TIBIA_SHAFT_DISTAL.medial),
    "tibial lateral": (lm.TIBIA_SHAFT_PROXIMAL.lateral, lm.TIBIA_SHAFT_DISTAL.lateral),
}
#: Which bone each line belongs to.
BONE_OF_LINE: dict[str, str] = {name: name.split()[0] for name in SHAFT_LINES}


def point_contrast(image: npt.NDArray[np.floating], p: npt.NDArray[np.float64],
                   normal: npt.NDArray[np.float64], along: npt.NDArray[np.float64],
                   w: float) -> float:
    """Median inner-minus-outer step of the 9 profiles across the cortex at ``p``.

    0 when the profiles leave the image.
    """
    sampled = sample_profiles(image, p, normal, along, w)
    if sampled is None:
        return 0.0
    t, vals = sampled
    half = float(t[-1])
    inner = vals[:, t <= -INNER_GAP * half].mean(axis=1)
    outer = vals[:, t >= INNER_GAP * half].mean(axis=1)
    return float(np.median(inner - outer))


def shaft_contrast(image: npt.ArrayLike, landmarks: npt.ArrayLike) -> dict[str, float]:
    """Contrast of each of the four shaft cortex lines (see the module docstring).

    Parameters
    ----------
    image
        ``(rows, cols)`` normalised image (0-1, bone bright), the landmarks' pixel grid.
    landmarks
        ``(N, 2)`` landmarks (N >= 113), x = column, y = row.

    Returns
    -------
    dict
        Line name (:data:`SHAFT_LINES`) -> contrast; a line whose bone has no usable axis
        (coinciding pair mid-points, or a degenerate plateau) gets 0.
    """
    img = np.asarray(image, dtype=np.float32)
    pts = np.asarray(landmarks, dtype=np.float64)
    if img.ndim != 2:
        raise ValueError(f"image must be 2-D, got shape {img.shape}")
    if pts.ndim != 2 or pts.shape[0] < lm.N_PRE_OP or pts.shape[1] != 2:
        raise ValueError(f"landmarks must have shape (N>={lm.N_PRE_OP}, 2), got {pts.shape}")
    w = lm.plateau_width(pts)
    out = dict.fromkeys(SHAFT_LINES, 0.0)
    if not np.all(np.isfinite(pts)) or not np.isfinite(w) or w < 8:
        return out
    normals = shaft_normals(pts)
    for name, idx in SHAFT_LINES.items():
        if all(i in normals for i in idx):
            out[name] = min(point_contrast(img, pts[i], *normals[i], w) for i in idx)
    return out


def hidden_bones(contrast: Mapping[str, float], threshold: float) -> dict[str, float]:
    """Bones with a cortex line below ``threshold``: bone -> its lowest line contrast."""
    out: dict[str, float] = {}
    for name, c in contrast.items():
        if c < threshold:
            bone = BONE_OF_LINE.get(name, name)
            out[bone] = min(c, out.get(bone, np.inf))
    return out
