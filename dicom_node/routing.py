"""Routing: which study kind is a received instance, if any, to be measured as?

Rules come from ``routing.rules`` in the settings; the first rule every field of which
matches wins, and its ``kind`` (default ``knee-ap``) is the kind measured. Anything else is
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
