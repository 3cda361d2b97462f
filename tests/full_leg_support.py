"""Shared by the full-leg node tests: read the per-leg values back from a full-leg SR."""

from __future__ import annotations

from typing import Any

from pydicom.dataset import Dataset

from dicom_node.demo import FULL_LEG_RULES

#: SCT laterality codes -> patient side.
_SIDES = {"7771000": "L", "24028007": "R"}
_GROUP = ("125007", "DCM")  # Measurement Group
_FINDING_SITE = ("363698007", "SCT")


def _name(item: Dataset) -> tuple[str, str]:
    c = item.ConceptNameCodeSequence[0]
    return str(c.CodeValue), str(c.CodingSchemeDesignator)


def _walk(items: Any) -> list[Dataset]:
    out: list[Dataset] = []
    for item in items:
        out.append(item)
        out.extend(_walk(item.get("ContentSequence", [])))
    return out


def sr_leg_values(sr: Dataset) -> dict[str, dict[str, float]]:
    """``{side: {code meaning or value: number}}`` of every leg group of a full-leg SR.

    The keys of the inner dict are the NUM items' code values ("LEG-HKA", ...).
    """
    legs: dict[str, dict[str, float]] = {}
    for group in (i for i in _walk(sr.get("ContentSequence", [])) if _name(i) == _GROUP):
        items = _walk(group.get("ContentSequence", []))
        side = None
        for site in (i for i in items if _name(i) == _FINDING_SITE):
            for mod in site.get("ContentSequence", []):
                code = str(mod.ConceptCodeSequence[0].CodeValue)
                side = _SIDES.get(code, side)
        assert side is not None, "a leg group without laterality"
        # the leg's group and its viewer angle groups (same values): merged per side
        legs.setdefault(side, {}).update({
            str(i.ConceptNameCodeSequence[0].CodeValue): float(
                i.MeasuredValueSequence[0].NumericValue)
            for i in items if i.get("ValueType") == "NUM" and i.get("MeasuredValueSequence")
        })
    return legs



#: Routing of a node serving both kinds (the demo's, as in config.example.yaml): long-leg
#: studies by body part and study description first, then the knee rule (whose body parts
#: include LOWER LIMB too).
BOTH_KINDS_ROUTING: dict[str, Any] = {"rules": FULL_LEG_RULES}
