"""Result types of the generator (re-exported by :mod:`training.synth`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

Photometric = Literal["MONOCHROME1", "MONOCHROME2"]


@dataclass(frozen=True)
class KneeTruth:
    """Ground truth of one knee in a synthetic radiograph.

    Attributes
    ----------
    landmarks
        ``(N, 2)`` float64, x = column, y = row, in pixels of ``SynthRadiograph.pixels``;
        N = 113 (pre) or 141 (post), order of :mod:`inference.landmarks`.
    laterality
        "L" or "R".
    phase
        "pre" or "post".
    atfa_deg
        ``inference.alignment.atfa_all(landmarks)``.
    built_in_atfa_deg
        The angle the anatomy was constructed with (FTS definition).
    """

    landmarks: npt.NDArray[np.float64]
    laterality: Literal["L", "R"]
    phase: Literal["pre", "post"]
    atfa_deg: dict[str, float]
    built_in_atfa_deg: float


@dataclass(frozen=True)
class SynthRadiograph:
    """A synthetic radiograph as a modality would store it, with its ground truth.

    Attributes
    ----------
    pixels
        ``(rows, cols)`` uint16 stored values, all ``< 2**bits_stored``.
    bits_stored
        10..16.
    photometric
        "MONOCHROME2": high value displays bright (bone bright);
        "MONOCHROME1": high value displays dark (bone has low stored values).
    pixel_spacing_mm
        (row, column) spacing of ``pixels`` in mm.
    knees
        One, or two when both knees are in the image (ordered left to right in the
        image: the right knee is on the image left, the patient facing the viewer);
        empty for negatives.
    phase
        "pre" or "post" ("post" when any knee has an implant).
    seed
        The seed the image was made from.
    marker
        Burned-in side marker text ("L"/"R") or "".
    """

    pixels: npt.NDArray[np.uint16]
    bits_stored: int
    photometric: Photometric
    pixel_spacing_mm: tuple[float, float]
    knees: tuple[KneeTruth, ...]
    phase: Literal["pre", "post"]
    seed: int
    marker: str


def to_unit_float(
    pixels: npt.ArrayLike, bits_stored: int, photometric: str
) -> npt.NDArray[np.float32]:
    """Stored values -> float32 in [0, 1] with bone bright (display orientation).

    Parameters
    ----------
    pixels
        Stored pixel values.
    bits_stored
        Bits stored (1..16).
    photometric
        "MONOCHROME1" or "MONOCHROME2".
    """
    if not 1 <= int(bits_stored) <= 16:
        raise ValueError(f"bits_stored must be in 1..16, got {bits_stored!r}")
    if photometric not in ("MONOCHROME1", "MONOCHROME2"):
        raise ValueError(f"photometric must be MONOCHROME1 or MONOCHROME2, got {photometric!r}")
    v = np.asarray(pixels, dtype=np.float32) / float(2 ** int(bits_stored) - 1)
    v = np.clip(v, 0.0, 1.0)
    if photometric == "MONOCHROME1":
        v = 1.0 - v
    return v.astype(np.float32)
