"""Routing: which study kind is a received instance, if any, to be measured as?

Rules come from ``routing.rules`` in the settings; the first rule every field of which
matches wins, and its ``kind`` (default ``knee-ap``) is the kind measured. Rules read only
header fields: Modality, BodyPartExamined, ViewPosition, the descriptions, and for the size
fields (``min_rows``, ``min_aspect``/``max_aspect`` as Rows/Columns, ``min_height_mm`` as
Rows x PixelSpacing, or ImagerPixelSpacing when PixelSpacing is absent) Rows, Columns and
the spacing; the pixel data is never decoded. Anything else is
recorded as ignored (with a reason naming the attribute, never a patient attribute) and
its file deleted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pydicom.dataset import Dataset

from dicom_node.settings import RoutingRule, RoutingSettings


@dataclass(frozen=True)
class RoutingDecision:
    """Whether to measure, as which study kind, which rule decided, and why not."""

    measure: bool
    rule: str | None
    reason: str
    kind: str | None = None


def _norm(value: object) -> str:
    return str(value or "").strip().upper()


def _check_rule(rule: RoutingRule, ds: Dataset) -> str | None:
    """None if ``ds`` matches ``rule``, else the reason it does not."""
    modality = _norm(ds.get("Modality"))
    if modality not in {m.upper() for m in rule.modalities}:
        return f"Modality {modality or '(absent)'} not in {rule.modalities}"
    body = _norm(ds.get("BodyPartExamined"))
    if body:
        if body not in {b.upper() for b in rule.body_parts}:
            return f"BodyPartExamined {body} not in {rule.body_parts}"
    elif not rule.allow_missing_body_part:
        return "BodyPartExamined absent"
    view = _norm(ds.get("ViewPosition"))
    if view:
        if view not in {v.upper() for v in rule.view_positions}:
            return f"ViewPosition {view} not in {rule.view_positions}"
    elif not rule.allow_missing_view_position:
        return "ViewPosition absent"
    for keyword, pattern in (
        ("SeriesDescription", rule.series_description),
        ("StudyDescription", rule.study_description),
    ):
        if pattern is not None and not re.search(pattern, str(ds.get(keyword, "")), re.IGNORECASE):
            return f"{keyword} does not match /{pattern}/"
    if rule.description is not None and not any(
        re.search(rule.description, str(ds.get(k, "")), re.IGNORECASE) for k in _DESCRIPTIONS
    ):
        return f"none of {', '.join(_DESCRIPTIONS)} matches /{rule.description}/"
    return _check_size(rule, ds)


#: The header fields a rule's ``description`` is searched in.
_DESCRIPTIONS = ("SeriesDescription", "StudyDescription", "ProtocolName")


def _number(value: object) -> float | None:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def row_spacing_mm(ds: Dataset) -> float | None:
    """The spacing between rows in mm: PixelSpacing[0], else ImagerPixelSpacing[0]."""
    for keyword in ("PixelSpacing", "ImagerPixelSpacing"):
        value = ds.get(keyword)
        if value is not None:
            try:
                spacing = _number(value[0])
            except (TypeError, IndexError):
                spacing = None
            if spacing is not None and spacing > 0:
                return spacing
    return None


def _check_size(rule: RoutingRule, ds: Dataset) -> str | None:
    """None if the image's size fits ``rule`` (header fields only; no pixel decode)."""
    if rule.min_rows is None and rule.min_aspect is None and rule.max_aspect is None and (
        rule.min_height_mm is None
    ):
        return None
    rows = _number(ds.get("Rows"))
    if rows is None or rows <= 0:
        return "Rows absent"
    if rule.min_rows is not None and rows < rule.min_rows:
        return f"Rows {rows:.0f} < min_rows {rule.min_rows}"
    if rule.min_aspect is not None or rule.max_aspect is not None:
        columns = _number(ds.get("Columns"))
        if columns is None or columns <= 0:
            return "Columns absent"
        aspect = rows / columns
        if rule.min_aspect is not None and aspect < rule.min_aspect:
            return f"aspect Rows/Columns {aspect:.2f} < min_aspect {rule.min_aspect:g}"
        if rule.max_aspect is not None and aspect > rule.max_aspect:
            return f"aspect Rows/Columns {aspect:.2f} > max_aspect {rule.max_aspect:g}"
    if rule.min_height_mm is not None:
        spacing = row_spacing_mm(ds)
        if spacing is None:
            return "PixelSpacing and ImagerPixelSpacing absent"
        height = rows * spacing
        if height < rule.min_height_mm:
            return f"height {height:.0f} mm < min_height_mm {rule.min_height_mm:g}"
    return None


def route(ds: Dataset, settings: RoutingSettings) -> RoutingDecision:
    """Decide what to do with the instance whose header is ``ds``.

    Parameters
    ----------
    ds
        The instance's dataset (pixel data not needed).
    settings
        The routing rules.
    """
    if not isinstance(ds, Dataset):
        raise TypeError(f"ds must be a pydicom Dataset, got {type(ds).__name__}")
    reasons = []
    for rule in settings.rules:
        why = _check_rule(rule, ds)
        if why is None:
            return RoutingDecision(True, rule.name, "matched", rule.kind)
        reasons.append(f"{rule.name}: {why}")
    return RoutingDecision(False, None, "; ".join(reasons) or "no routing rules configured")
