"""Read an SR as OHIF does (dcmjs + @cornerstonejs/adapters under node) and compare the tools
it yields with the SR's own content.

Works on any TID 1500 SR file (the knee SR, and later the full-leg SR)::

    python tests/viewer/sr_tools.py SR.dcm [--spacing 0.15,0.15]

prints the adapters' tools and the comparison, and exits 1 when they disagree.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom import Dataset

VIEWER_DIR = Path(__file__).resolve().parent
SCRIPT = VIEWER_DIR / "sr_to_tools.mjs"
#: Tracking Identifier prefix of Cornerstone3D tools, and the angle tools it may name.
TOOL_PREFIX = "Cornerstone3DTools@^0.1.0:"
ANGLE_TOOLS = ("CobbAngle", "Angle")
#: How close the adapters' points must be to the SR's SCOORD (pixels).
POINT_TOLERANCE_PX = 0.01


def missing_reason() -> str | None:
    """Why the adapters cannot run here (``None`` when they can)."""
    if shutil.which("node") is None:
        return "needs node (Debian nodejs; scripts/bootstrap installs it)"
    if not (VIEWER_DIR / "node_modules" / "@cornerstonejs" / "adapters").is_dir():
        return "needs tests/viewer/node_modules: run scripts/bootstrap (npm ci in tests/viewer)"
    return None


def run_adapters(sr_path: Path, spacing: tuple[float, float] = (1.0, 1.0)) -> dict[str, Any]:
    """Tool state that dcmjs + ``MeasurementReport.generateToolState`` make of ``sr_path``.

    Parameters
    ----------
    sr_path
        A DICOM SR file.
    spacing
        Row and column pixel spacing (mm) of the image plane given to Cornerstone, so the
        adapters' image -> world -> image conversion is exercised with the real scale.

    Returns
    -------
    dict
        ``{"tools": [...], "warnings": [...], "groups": int, "versions": {...}}`` as printed
        by ``sr_to_tools.mjs``; each tool has ``toolType``, ``trackingIdentifier``,
        ``trackingUniqueIdentifier``, ``value``, ``points`` (image coordinates), ``finding``.
    """
    out = subprocess.run(
        ["node", str(SCRIPT), str(sr_path), "--spacing", f"{spacing[0]},{spacing[1]}"],
        capture_output=True, text=True, timeout=120, cwd=VIEWER_DIR, check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"sr_to_tools.mjs failed ({out.returncode}): {out.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(out.stdout)
    return result


@dataclass(frozen=True)
class SrAngle:
    """An angle group of the SR as written: what a viewer should turn into a tool."""

    tool: str
    tracking_uid: str
    concept: tuple[str, str]
    value: float
    points: np.ndarray  # (n, 2) SCOORD GraphicData of the NUM's first SCOORD
    image_uid: str


def _code(item: Dataset, seq: str = "ConceptNameCodeSequence") -> tuple[str, str]:
    c = item[seq][0] if seq in item else None
    return (str(c.CodeValue), str(c.CodingSchemeDesignator)) if c is not None else ("", "")


def sr_angles(sr: Dataset) -> tuple[list[SrAngle], int]:
    """Viewer-tool groups of an SR read with pydicom, independently of the adapters.

    Parameters
    ----------
    sr
        A TID 1500 SR.

    Returns
    -------
    list of SrAngle, int
        The groups whose Tracking Identifier names a Cornerstone3D angle tool, and the number
        of measurement groups in all.
    """
    report = next(i for i in sr.ContentSequence if _code(i) == ("126010", "DCM"))
    groups = [g for g in report.ContentSequence if _code(g) == ("125007", "DCM")]
    angles = []
    for g in groups:
        items = list(g.ContentSequence)
        tracking = next(str(i.TextValue) for i in items if _code(i) == ("112039", "DCM"))
        tool = tracking.removeprefix(TOOL_PREFIX)
        if not tracking.startswith(TOOL_PREFIX) or tool not in ANGLE_TOOLS:
            continue
        uid = next(str(i.UID) for i in items if _code(i) == ("112040", "DCM"))
        num = next(i for i in items if i.ValueType == "NUM")
        scoord = next(i for i in num.ContentSequence if i.ValueType == "SCOORD")
        ref = scoord.ContentSequence[0].ReferencedSOPSequence[0]
        angles.append(SrAngle(
            tool=tool,
            tracking_uid=uid,
            concept=_code(num),
            value=float(num.MeasuredValueSequence[0].NumericValue),
            points=np.asarray(scoord.GraphicData, dtype=float).reshape(-1, 2),
            image_uid=str(ref.ReferencedSOPInstanceUID),
        ))
    return angles, len(groups)


def compare(
    sr_path: Path,
    spacing: tuple[float, float] = (1.0, 1.0),
    result: dict[str, Any] | None = None,
) -> list[str]:
    """Differences between the SR's angle groups and the adapters' tools (empty: none).

    ``result`` is the output of :func:`run_adapters` for ``sr_path`` (run when ``None``).

    Checks that every angle group comes back as one tool of its type (matched by Tracking
    UID), with a 4-point (CobbAngle) or 3-point (Angle) handle set within
    ``POINT_TOLERANCE_PX`` of the SCOORD, its value, its finding, and its image; and that no
    tool comes back that the SR does not have.
    """
    angles, _ = sr_angles(pydicom.dcmread(sr_path))
    result = result if result is not None else run_adapters(sr_path, spacing)
    tools = {t["trackingUniqueIdentifier"]: t for t in result["tools"]}
    problems = []
    if not angles:
        problems.append("the SR has no angle group with a Cornerstone3D tracking identifier")
    for a in angles:
        tool = tools.pop(a.tracking_uid, None)
        if tool is None:
            problems.append(f"{a.concept}: no tool from the adapters")
            continue
        want_n = 4 if a.tool == "CobbAngle" else 3
        got = np.asarray(tool["points"], dtype=float).reshape(-1, 2)
        if tool["toolType"] != a.tool:
            problems.append(f"{a.concept}: tool {tool['toolType']}, SR says {a.tool}")
        if a.points.shape != (want_n, 2) or got.shape != (want_n, 2):
            problems.append(f"{a.concept}: {a.tool} needs {want_n} points, SR has "
                            f"{len(a.points)}, adapters gave {len(got)}")
        elif (err := float(np.abs(got - a.points).max())) > POINT_TOLERANCE_PX:
            problems.append(f"{a.concept}: points off by {err:.4f} px")
        if tool["value"] is None or abs(tool["value"] - a.value) > 1e-9:
            problems.append(f"{a.concept}: value {tool['value']}, SR has {a.value}")
        finding = tool.get("finding") or {}
        if (finding.get("value"), finding.get("scheme")) != a.concept:
            problems.append(f"{a.concept}: finding {finding}, expected the NUM's concept")
        if tool["referencedSOPInstanceUID"] != a.image_uid:
            problems.append(f"{a.concept}: image {tool['referencedSOPInstanceUID']}")
    problems.extend(f"unexpected tool {t['toolType']} {uid}" for uid, t in tools.items())
    return problems


def main(argv: list[str] | None = None) -> int:
    """Command line: print the adapters' tools of an SR and the comparison."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sr", type=Path)
    parser.add_argument("--spacing", default="1,1", help="row,column pixel spacing (mm)")
    args = parser.parse_args(argv)
    if (reason := missing_reason()) is not None:
        print(reason, file=sys.stderr)
        return 2
    spacing = tuple(float(v) for v in args.spacing.split(","))
    result = run_adapters(args.sr, spacing)  # type: ignore[arg-type]
    for t in result["tools"]:
        print(f"{t['toolType']:10s} {t['value']!s:>8s}  {t['description']}  "
              f"{np.round(np.asarray(t['points']), 3).tolist()}")
    problems = compare(args.sr, spacing, result)  # type: ignore[arg-type]
    print("\n".join(problems) or "the adapters' tools match the SR")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
