"""What a measurement is: the record the predictor returns and everything downstream reads.

The node writes it to the database, the SR and the secondary capture from this record;
nothing downstream looks inside the networks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from inference.alignment import Axis, alignment_verdict, atfa_all, femoral_axis, tibial_axis
from inference.landmarks import Laterality, Phase

QualityVerdict = Literal["pass", "flag"]
#: Unit symbol of the angles in the result texts.
DEGREE_SIGN = "\N{DEGREE SIGN}"


def value_text(value: float, half_width: float | None = None, unit: str = DEGREE_SIGN,
               decimals: int = 1) -> str:
    """A signed value with its 95 % half-width, as every result text shows it.

    Parameters
    ----------
    value
        The value (an angle, valgus positive).
    half_width
        Half-width of its 95 % interval in the same unit; None or NaN when unknown (then
        only the value is shown).
    unit
        Unit symbol written after both numbers: ``"°"`` (default) or e.g. ``" mm"``.
    decimals
        Decimals of both numbers.

    Returns
    -------
    str
        ``"+6.2° ± 0.8°"``, or ``"+6.2°"`` without a half-width.
    """
    text = f"{value:+.{decimals}f}{unit}"
    if half_width is None or not np.isfinite(half_width):
        return text
    return f"{text} \N{PLUS-MINUS SIGN} {abs(half_width):.{decimals}f}{unit}"


@dataclass(frozen=True)
class ModelInfo:
    """Identity of the algorithm: feeds the SR's algorithm identification, the job row
    and the model card (MONAI Deploy's model-info record)."""

    name: str
    version: str
    sha256: dict[str, str]
    parameters: dict[str, Any] = field(default_factory=dict)
    manufacturer: str = "knee-node project"
    trained_on: str = (
        "synthetic radiographs only (training/synth); research use, not a medical device"
    )


@dataclass(frozen=True)
class KneeMeasurement:
    """Landmarks and aTFA of one knee in one image.

    ``landmarks`` are ``(N, 2)`` (x = column, y = row) in pixels of the *stored* source
    image, in the order of :mod:`inference.landmarks` for ``phase``.  When ``quality`` is
    ``"flag"`` the angle must not be presented as a confident result.
    """

    landmarks: npt.NDArray[np.float64]
    phase: Phase
    laterality: Laterality
    quality: QualityVerdict
    confidence: float
    flag_reasons: tuple[str, ...] = ()
    pixel_spacing_mm: tuple[float, float] | None = None
    model: ModelInfo | None = None
    timings_ms: dict[str, float] = field(default_factory=dict)
    #: Calibrated 95 % half-width of each aTFA in degrees (``inference.uncertainty``);
    #: empty when unknown.
    atfa_ci95_deg: dict[str, float] = field(default_factory=dict)
    #: The raw spreads behind it: ``{"frames": {...}, "spread": {...}}`` (degrees).
    atfa_sd_deg: dict[str, dict[str, float]] = field(default_factory=dict)
    #: aTFA with the shaft cortex points refined on the image's edges (inference.edges);
    #: equal to ``atfa_deg`` when the predictor uses the refinement, empty when not computed
    #: (the predictor's default, ``EdgeRefinement.OFF``).
    atfa_refined_deg: dict[str, float] = field(default_factory=dict)
    #: aTFA with the femoral notch pair refined on the notch walls (inference.notch);
    #: equal to ``atfa_deg`` when the predictor uses the refinement, empty when not computed
    #: (the predictor's default, ``NotchRefinement.OFF``).
    atfa_notch_deg: dict[str, float] = field(default_factory=dict)

    @property
    def atfa_interval_deg(self) -> dict[str, tuple[float, float]]:
        """95 % interval ``(low, high)`` of each aTFA (empty when no half-width is known)."""
        a = self.atfa_deg
        return {m: (a[m] - hw, a[m] + hw) for m, hw in self.atfa_ci95_deg.items()}

    @property
    def atfa_deg(self) -> dict[str, float]:
        """Signed aTFA by FTS and FNTS (valgus positive)."""
        return atfa_all(self.landmarks)

    @property
    def verdict(self) -> str:
        """"varus", "valgus" or "neutral" by FNTS (the paper's more reliable method)."""
        return alignment_verdict(self.atfa_deg["FNTS"])

    def axes(self, method: Literal["FTS", "FNTS"] = "FTS") -> dict[str, Axis]:
        """The femoral and tibial axes, for drawing and for SR spatial coordinates."""
        return {
            "femoral": femoral_axis(self.landmarks, method),
            "tibial": tibial_axis(self.landmarks),
        }

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready summary (what ``knee-node predict`` prints)."""
        from inference.landmarks import names_for

        return {
            "landmarks": np.round(self.landmarks, 2).tolist(),
            "landmark_names": list(names_for(self.phase)),
            "phase": self.phase,
            "laterality": self.laterality,
            # a flagged knee shows no angle (its raw values are for analysis, not for reading)
            "atfa_deg": (
                {k: round(v, 2) for k, v in self.atfa_deg.items()}
                if self.quality == "pass"
                else None
            ),
            # the calibrated 95 % half-widths and the angles as the reports write them
            "atfa_ci95_deg": (
                {k: round(v, 2) for k, v in self.atfa_ci95_deg.items()}
                if self.quality == "pass"
                else None
            ),
            "atfa_text": (
                {k: value_text(v, self.atfa_ci95_deg.get(k)) for k, v in self.atfa_deg.items()}
                if self.quality == "pass"
                else None
            ),
            "verdict": self.verdict if self.quality == "pass" else "not determined (flagged)",
            "quality": self.quality,
            "confidence": round(self.confidence, 4),
            "flag_reasons": list(self.flag_reasons),
            "pixel_spacing_mm": self.pixel_spacing_mm,
            "model": (
                None
                if self.model is None
                else {"name": self.model.name, "version": self.model.version}
            ),
            "timings_ms": self.timings_ms,
        }
