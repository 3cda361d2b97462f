"""``full-leg``: a bilateral standing long-leg (hip-to-ankle) AP radiograph, both legs measured.

The model is ``inference.leg.predictor.FullLegPredictor``; one image gives one
``FullLegResult`` (the kind's one record per image), and each of its legs is one measured
item with HKA, mLDFA, mMPTA, aHKA, JLO, FVA, JLCA, MAD and the long-leg aTFA (degrees / mm,
varus negative for HKA and MAD). The CPAK class is in the item's verdict ("CPAK II",
"CPAK II borderline") and, as a coded value (``ResultValue.coded``), the class's code of the
private scheme of the SR (``dicom_node.reports.full_leg_codes.CPAK_VALUES``); "borderline"
stays in the verdict. A flagged leg keeps no values.

The node writes back the TID 1500 SR (``dicom_node.reports.full_leg_report``) and the SC
overlay (``dicom_node.reports.full_leg_overlay``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from dicom_node.kinds import Code, MeasuredItem, OutputWriter, ResultValue, StudyKind

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

    from dicom_node.settings import ModelSettings, Settings
    from inference.leg.predictor import FullLegPredictor, FullLegResult, LegResult
    from inference.measurement import ModelInfo

#: Verdict of a leg whose result is flagged.
NOT_DETERMINED = "not determined (flagged)"
#: Verdict of a leg that passed but has no CPAK class (aHKA or JLO missing).
NO_CPAK = "measured (no CPAK class)"
#: ``LegResult.measurements`` key -> (value name, UCUM unit, method), in reporting order.
VALUES: dict[str, tuple[str, str, str | None]] = {
    "HKA_deg": ("HKA", "deg", None),
    "mLDFA_deg": ("mLDFA", "deg", None),
    "mMPTA_deg": ("mMPTA", "deg", None),
    "aHKA_deg": ("aHKA", "deg", None),
    "JLO_deg": ("JLO", "deg", None),
    "FVA_deg": ("FVA", "deg", None),
    "JLCA_deg": ("JLCA", "deg", None),
    "MAD_mm": ("MAD", "mm", None),
    "aTFA_FTS_deg": ("aTFA", "deg", "long-leg FTS"),
}


class FullLegMeasurer:
    """The node's measurer of full-leg images: one ``FullLegResult`` per image.

    Parameters
    ----------
    predictor
        The loaded :class:`inference.leg.predictor.FullLegPredictor`.
    """

    def __init__(self, predictor: FullLegPredictor) -> None:
        self._predictor = predictor

    @property
    def model_info(self) -> ModelInfo:
        """Identity of the ROI and landmark weights."""
        return self._predictor.model_info

    def measure(self, ds: Dataset) -> list[FullLegResult]:
        """``[result]`` of both legs of ``ds``; InputImageError (NotAFullLegError) when
        ``ds`` is not a usable full-leg image."""
        return [self._predictor.measure(ds)]


def make_measurer(settings: ModelSettings) -> FullLegMeasurer:
    """The full-leg model with its shipped weights (hash-checked), on ``settings.device``."""
    from inference.leg.predictor import FullLegPredictor

    return FullLegMeasurer(FullLegPredictor.from_default_weights(
        device=settings.device, num_threads=settings.num_threads))


def verdict(lg: LegResult) -> str:
    """The leg's finding in words: its CPAK class ("CPAK II", "CPAK II borderline")."""
    if lg.quality != "pass":
        return NOT_DETERMINED
    if lg.cpak is None:
        return NO_CPAK
    return f"CPAK {lg.cpak.roman}" + (" borderline" if lg.cpak.borderline else "")


def leg_values(lg: LegResult) -> tuple[ResultValue, ...]:
    """The leg's named values (finite ones only); none for a flagged leg."""
    if lg.quality != "pass":
        return ()
    out = []
    for key, (name, unit, method) in VALUES.items():
        v = lg.measurements.get(key, math.nan)
        if v is not None and math.isfinite(float(v)):
            out.append(ResultValue(name, float(v), unit, method))
    if lg.cpak is not None:
        from dicom_node.reports.full_leg_codes import CPAK_VALUES

        c = CPAK_VALUES[lg.cpak.cls]
        out.append(ResultValue.coded("CPAK", Code(c.value, c.scheme_designator, c.meaning)))
    return tuple(out)


def _confidence(lg: LegResult) -> float:
    """Lowest ROI presence probability of the leg's joints (0 when none was found)."""
    probs = [float(p) for p in lg.joint_probability.values()]
    return min(probs) if probs else 0.0


def leg_items(results: Sequence[Any]) -> list[MeasuredItem]:
    """One :class:`MeasuredItem` per leg of every ``FullLegResult`` in ``results``."""
    items = []
    for res in results:
        for lg in res.legs:
            items.append(MeasuredItem(
                laterality=lg.side, quality=lg.quality, confidence=_confidence(lg),
                verdict=verdict(lg), values=leg_values(lg),
                flag_reasons=tuple(lg.flag_reasons)))
    return items


def _one(results: Sequence[Any]) -> FullLegResult:
    if len(results) != 1:
        raise ValueError(f"a full-leg image has one result, got {len(results)}")
    return results[0]


def make_sr(settings: Settings, source: Dataset, results: Sequence[Any]) -> Dataset:
    """The TID 1500 SR of both legs, with the ``reports`` settings (series number + 10)."""
    from dicom_node.reports.full_leg_report import build_full_leg_sr

    rs = settings.reports
    return build_full_leg_sr(
        source, _one(results), series_number=rs.sr_series_number + 10,
        institution_name=rs.institution_name,
        device_observer_uid=settings.device_observer_uid,
        device_observer_name=rs.device_observer_name)


def make_sc(settings: Settings, source: Dataset, results: Sequence[Any]) -> Dataset:
    """The secondary-capture overlay of both legs (series number + 10)."""
    from dicom_node.reports.full_leg_overlay import build_full_leg_sc

    rs = settings.reports
    return build_full_leg_sc(source, _one(results), series_number=rs.sc_series_number + 10,
                             encoding=rs.sc_transfer_syntax)


KIND = StudyKind(
    name="full-leg",
    description="bilateral standing long-leg AP radiograph: HKA, mLDFA, mMPTA, CPAK of each leg",
    measurer_factory="dicom_node.kinds.full_leg:make_measurer",
    items=leg_items,
    writers=(
        OutputWriter("SR", "sr.dcm", make_sr, sent_first=True),
        OutputWriter("SC", "sc.dcm", make_sc),
    ),
    nothing_found="no leg found in the image",
    headline=("HKA", "mLDFA", "CPAK"),
)
