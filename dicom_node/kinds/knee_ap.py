"""``knee-ap``: an AP or PA knee radiograph, one or both knees, measured for the aTFA.

The model is ``inference.predictor.KneePredictor``; each knee gives the aTFA by FTS and by
FNTS (degrees, valgus positive). The node writes back the TID 1500 SR
(``dicom_node.reports.measurement_report``) and the SC overlay
(``dicom_node.reports.secondary_capture``); and, to destinations that list it in their
``objects``, the GSPS (``dicom_node.reports.presentation_state``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from dicom_node.kinds import MeasuredItem, OutputWriter, ResultValue, StudyKind

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

    from dicom_node.settings import Settings
    from inference.measurement import KneeMeasurement

#: Verdict of a knee whose result is flagged (its angles are kept, but not a result).
NOT_DETERMINED = "not determined (flagged)"
METHODS = ("FTS", "FNTS")


def angles(m: KneeMeasurement) -> tuple[float | None, float | None, str]:
    """aTFA by FTS and FNTS and the verdict of one knee.

    Angles are None when the landmarks define none (a flagged result whose plateau corners
    coincide); a flagged result keeps its raw angles in the database for analysis, but its
    verdict is "not determined (flagged)".
    """
    try:
        atfa = m.atfa_deg
    except ValueError:
        return None, None, NOT_DETERMINED
    verdict = m.verdict if m.quality == "pass" else NOT_DETERMINED
    return atfa["FTS"], atfa["FNTS"], verdict


def knee_items(measurements: Sequence[Any]) -> list[MeasuredItem]:
    """One :class:`MeasuredItem` per knee: the aTFA by FTS and FNTS, in degrees."""
    items = []
    for m in measurements:
        fts, fnts, verdict = angles(m)
        ci95 = dict(getattr(m, "atfa_ci95_deg", {}) or {})
        values = tuple(
            ResultValue("aTFA", None if v is None else float(v), "deg", method,
                        None if method not in ci95 else float(ci95[method]))
            for method, v in zip(METHODS, (fts, fnts), strict=True)
        )
        items.append(
            MeasuredItem(
                laterality=m.laterality,
                quality=m.quality,
                confidence=float(m.confidence),
                verdict=verdict,
                values=values,
                flag_reasons=tuple(m.flag_reasons),
                phase=m.phase,
            )
        )
    return items


def measurement_report(settings: Settings, source: Dataset, knees: Sequence[Any]) -> Dataset:
    """The TID 1500 SR of the knees, with the ``reports`` settings."""
    from dicom_node.reports import create_measurement_report

    rs = settings.reports
    return create_measurement_report(
        source,
        knees,
        series_number=rs.sr_series_number,
        institution_name=rs.institution_name,
        device_observer_uid=settings.device_observer_uid,
        device_observer_name=rs.device_observer_name,
    )


def overlay_image(settings: Settings, source: Dataset, knees: Sequence[Any]) -> Dataset:
    """The secondary-capture overlay of the knees, with the ``reports`` settings."""
    from dicom_node.reports import create_overlay_image

    rs = settings.reports
    return create_overlay_image(
        source, knees, series_number=rs.sc_series_number, encoding=rs.sc_transfer_syntax
    )


def presentation_state(settings: Settings, source: Dataset, knees: Sequence[Any]) -> Dataset:
    """The GSPS of the knees (axes, landmarks, values), with the ``reports`` settings."""
    from dicom_node.reports.presentation_state import create_presentation_state

    rs = settings.reports
    return create_presentation_state(
        source, knees, series_number=rs.pr_series_number, institution_name=rs.institution_name
    )


KIND = StudyKind(
    name="knee-ap",
    description="AP/PA knee radiograph: aTFA by FTS and FNTS of each knee",
    measurer_factory="dicom_node.measurer:shipped_predictor",
    items=knee_items,
    writers=(
        OutputWriter("SR", "sr.dcm", measurement_report, sent_first=True),
        OutputWriter("SC", "sc.dcm", overlay_image),
        OutputWriter("GSPS", "pr.dcm", presentation_state, optional=True),
    ),
    nothing_found="no knee found in the image",
    headline=("aTFA FTS", "aTFA FNTS"),
)
