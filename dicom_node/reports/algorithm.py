"""Who made the result: the algorithm identity written into the SR and both objects' equipment."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import highdicom as hd

from dicom_node.reports import codes
from inference.measurement import KneeMeasurement, ModelInfo

#: The statement every SR carries and the overlay shows in short.
NOTICE_TEXT = (
    "Algorithm result for research use only; NOT FOR DIAGNOSTIC USE. Landmarks and angles were "
    "found by a neural network trained only on synthetic radiographs (no patient images); it is "
    "not a medical device. Every value must be reviewed by a clinician against the image."
)
SERIES_DESCRIPTION_SR = "aTFA research result - NOT FOR DIAGNOSTIC USE"
SERIES_DESCRIPTION_SC = "aTFA overlay research - NOT FOR DIAGNOSTIC USE"


@dataclass(frozen=True)
class AlgorithmIdentity:
    """Name, version and parameters of the landmark model that made a measurement.

    Parameters
    ----------
    name, version
        Model name and version (SR: Algorithm Name/Version; equipment: model name/software).
    parameters
        ``key=value`` strings (SR: Algorithm Parameters), including the weights' SHA-256.
    manufacturer
        Who made the algorithm (SR: Algorithm Manufacturer; Contributing Equipment).
    """

    name: str
    version: str
    parameters: tuple[str, ...] = ()
    manufacturer: str = "knee-node project"

    def __post_init__(self) -> None:
        for field_name in ("name", "version", "manufacturer"):
            value = getattr(self, field_name)
            if not isinstance(value, str) or not value.strip():
                raise ValueError(
                    f"AlgorithmIdentity.{field_name} must be a non-empty string, got {value!r}"
                )

    @classmethod
    def from_model(cls, model: ModelInfo) -> AlgorithmIdentity:
        """Identity of a :class:`~inference.measurement.ModelInfo` (parameters sorted by key)."""
        params = [f"{k}={_short(v)}" for k, v in sorted(model.parameters.items())]
        params += [f"sha256:{k}={v}" for k, v in sorted(model.sha256.items())]
        return cls(model.name, model.version, tuple(params), model.manufacturer)

    def to_sr(self, *, with_parameters: bool = True) -> hd.sr.AlgorithmIdentification:
        """TID 4019 Algorithm Identification; without parameters, name and version only
        (the two rows TID 4019 requires)."""
        return hd.sr.AlgorithmIdentification(
            name=self.name,
            version=self.version,
            parameters=(list(self.parameters) or None) if with_parameters else None,
            manufacturer=self.manufacturer if with_parameters else None,
        )

    def description(self) -> str:
        """Contribution Description (ST, 1024 characters): what it did and every parameter."""
        text = "Knee landmarks and aTFA computed by algorithm " + (
            f"{self.name} {self.version}; parameters: " + "; ".join(self.parameters)
            if self.parameters
            else f"{self.name} {self.version}"
        )
        if len(text) > 1024:
            text = text[:1024 - 34] + " ... (full list in the model card)"
        return text

    def contributing_equipment(self) -> hd.ContributingEquipment:
        """Contributing Equipment item with purpose "Processing Equipment" (IHE AI Results)."""
        return hd.ContributingEquipment(
            manufacturer=self.manufacturer[:64],
            purpose_of_reference=codes.PROCESSING_EQUIPMENT,
            manufacturer_model_name=self.name[:64],
            software_versions=self.version[:64],
            contribution_description=self.description(),
        )


def _short(value: object) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    return text[:200]


def identities(measurements: Sequence[KneeMeasurement]) -> list[AlgorithmIdentity]:
    """Distinct algorithm identities of ``measurements``, in order (no model: skipped)."""
    seen: list[AlgorithmIdentity] = []
    for m in measurements:
        if m.model is not None:
            ident = AlgorithmIdentity.from_model(m.model)
            if ident not in seen:
                seen.append(ident)
    return seen
