"""Element-by-element comparison of two DICOM datasets (test helper)."""

from __future__ import annotations

from collections.abc import Collection

from pydicom.dataset import Dataset


def differences(a: Dataset, b: Dataset, ignore: Collection[str] = (), path: str = "") -> list[str]:
    """Where ``a`` and ``b`` differ, element by element at every depth.

    Parameters
    ----------
    a, b
        The datasets ("old" and "new").
    ignore
        Keywords whose values may differ (the clock, new UIDs); presence and VR still count.
    path
        Prefix of the reported names (the recursion's position).

    Returns
    -------
    list of str
        One line per difference, e.g. ``"/ContentSequence[2]/MeasurementUnitsCodeSequence
        [0]/CodeValue: 'deg' != 'mm'"``; empty when the two are the same.
    """
    out = []
    for tag in sorted(set(a.keys()) | set(b.keys())):
        keyword = a[tag].keyword if tag in a else b[tag].keyword
        name = f"{path}/{keyword}"
        if tag not in a or tag not in b:
            out.append(f"{name}: only in {'new' if tag in b else 'old'}")
        elif a[tag].VR != b[tag].VR:
            out.append(f"{name}: VR {a[tag].VR} != {b[tag].VR}")
        elif a[tag].VR == "SQ":
            x, y = a[tag].value, b[tag].value
            if len(x) != len(y):
                out.append(f"{name}: {len(x)} != {len(y)} items")
            for i, (p, q) in enumerate(zip(x, y, strict=False)):
                out += differences(p, q, ignore, f"{name}[{i}]")
        elif keyword not in ignore and a[tag].value != b[tag].value:
            out.append(f"{name}: {a[tag].value!r} != {b[tag].value!r}")
    return out
