"""Figures and tables of the full-leg evaluation in the layouts of papers 001 and 003.

Pure functions on arrays of errors: no images, no models (:mod:`training.leg_evaluate` runs
those). Table A follows 001 Table 4 (per-landmark median (IQR) mm), Table B 001 Table 5 and
003 Table 4 (per-measurement MedAE (IQR), MAE (SD), RMSE, and the slope of measured vs true),
Table C the CPAK classification (001 eqs. 7-12).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from inference.errors import KneeNodeError

FloatArray = npt.NDArray[np.float64]

#: 001 Table 4 row names.
TABLE_A_ROWS: tuple[str, ...] = ("HF", "R-FC", "L-FC", "R-TP", "L-TP", "CK", "R-A", "L-A")
#: Measurements of Table B (FVA needs the diaphysis point, which no method here predicts).
TABLE_B_ROWS: tuple[str, ...] = ("mLDFA", "mMPTA", "aHKA", "JLO", "HKA", "JLCA", "MAD")
SDR_MM: tuple[int, ...] = (1, 2, 3, 4, 5, 6)

#: The papers' figures (real images; ours are synthetic), for the tables' last columns.
PAPER_TABLE_A: dict[str, str] = {
    "HF": "1.07 (0.97)", "R-FC": "1.36 (1.85)", "L-FC": "1.18 (1.47)", "R-TP": "1.10 (1.49)",
    "L-TP": "1.07 (1.40)", "CK": "0.61 (0.66)", "R-A": "1.80 (1.96)", "L-A": "1.69 (1.84)",
    "All": "1.16 (1.50)",
}
PAPER_TABLE_B: dict[str, str] = {
    "mLDFA": "001 seg MedAE 0.26; 003 SGR MAE 0.65 (0.63)",
    "mMPTA": "001 seg MedAE 0.41; 003 SGR MAE 1.00 (0.98)",
    "aHKA": "001 seg MedAE 0.58", "JLO": "001 seg MedAE 0.47",
    "HKA": "003 SGR MAE 0.19 (0.16), RMSE 0.25", "JLCA": "-",
    "MAD": "003 SGR MAE 1.10 (1.30) mm, RMSE 1.71",
}


class MetricsError(KneeNodeError):
    """The evaluation figures cannot be computed from the given values."""


def _finite(values: npt.ArrayLike, name: str) -> FloatArray:
    a = np.asarray(values, dtype=np.float64).ravel()
    if a.size == 0:
        raise MetricsError(f"{name} is empty")
    return a


def median_iqr(values: npt.ArrayLike) -> tuple[float, float]:
    """Median and interquartile range of the finite ``values`` (NaN, NaN when none)."""
    a = _finite(values, "values")
    a = a[np.isfinite(a)]
    if a.size == 0:
        return float("nan"), float("nan")
    q1, med, q3 = np.percentile(a, (25, 50, 75))
    return float(med), float(q3 - q1)


def landmark_summary(errors_mm: npt.ArrayLike) -> dict[str, Any]:
    """001 Table 4/3 figures of point errors (NaN = missed point).

    Returns
    -------
    dict
        ``median``, ``iqr``, ``mean``, ``sd``, ``p95``, ``sdr`` (percent within 1..6 mm, misses
        count as failures), ``outliers_10mm`` (count), ``missed`` (count), ``n``.
    """
    a = _finite(errors_mm, "errors_mm")
    ok = a[np.isfinite(a)]
    med, iqr = median_iqr(a)
    out: dict[str, Any] = {"n": int(a.size), "missed": int((~np.isfinite(a)).sum()),
                           "median": med, "iqr": iqr}
    if ok.size:
        out.update(mean=float(ok.mean()), sd=float(ok.std(ddof=0)),
                   p95=float(np.percentile(ok, 95)), outliers_10mm=int((ok > 10).sum()))
    else:
        out.update(mean=float("nan"), sd=float("nan"), p95=float("nan"), outliers_10mm=0)
    out["sdr"] = {str(r): float(100.0 * np.sum(ok <= r) / a.size) for r in SDR_MM}
    return out


def measurement_summary(pred: npt.ArrayLike, true: npt.ArrayLike) -> dict[str, float]:
    """Errors of one measurement over legs (NaN predictions = no measurement).

    Returns
    -------
    dict
        ``medae``, ``iqr`` (of the absolute error), ``mae``, ``sd`` (of the absolute error),
        ``rmse``, ``bias`` (mean signed error), ``slope`` and ``intercept`` of the least-squares
        line of measured on true, ``n`` (legs measured), ``n_total``.
    """
    p, t = _finite(pred, "pred"), _finite(true, "true")
    if p.shape != t.shape:
        raise MetricsError(f"pred has {p.size} values and true {t.size}")
    ok = np.isfinite(p) & np.isfinite(t)
    err = p[ok] - t[ok]
    ae = np.abs(err)
    if ae.size == 0:
        nan = float("nan")
        return {"medae": nan, "iqr": nan, "mae": nan, "sd": nan, "rmse": nan, "bias": nan,
                "slope": nan, "intercept": nan, "n": 0, "n_total": int(p.size)}
    med, iqr = median_iqr(ae)
    if ae.size >= 2 and np.ptp(t[ok]) > 0:
        slope, intercept = (float(v) for v in np.polyfit(t[ok], p[ok], 1))
    else:
        slope, intercept = float("nan"), float("nan")
    return {"medae": med, "iqr": iqr, "mae": float(ae.mean()), "sd": float(ae.std(ddof=0)),
            "rmse": float(np.sqrt(np.mean(err ** 2))), "bias": float(err.mean()),
            "slope": slope, "intercept": intercept, "n": int(ae.size), "n_total": int(p.size)}


def cpak_scores(pred: npt.ArrayLike, true: npt.ArrayLike) -> dict[str, Any]:
    """CPAK per-class and macro precision, recall, F1 (001 eqs. 7-12), accuracy, confusion.

    ``pred``/``true`` are classes 1-9; a 0 prediction means "no class" (counted wrong). Macro
    averages run over the classes present in ``true`` or ``pred``.
    """
    p = np.asarray(pred, dtype=np.int64).ravel()
    t = np.asarray(true, dtype=np.int64).ravel()
    if p.shape != t.shape or p.size == 0:
        raise MetricsError(f"pred ({p.size}) and true ({t.size}) must be equal and non-empty")
    if np.any((t < 1) | (t > 9)) or np.any((p < 0) | (p > 9)):
        raise MetricsError("CPAK classes must be 1-9 (0 allowed in pred for no class)")
    conf = np.zeros((9, 9), np.int64)  # rows true, columns predicted
    for a, b in zip(t, p, strict=True):
        if b > 0:
            conf[a - 1, b - 1] += 1
    per: dict[str, dict[str, float]] = {}
    present = sorted(set(t.tolist()) | set(p[p > 0].tolist()))
    for c in present:
        tp = float(np.sum((p == c) & (t == c)))
        fp = float(np.sum((p == c) & (t != c)))
        fn = float(np.sum((p != c) & (t == c)))
        prec = tp / (tp + fp) if tp + fp else 0.0
        rec = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
        per[str(c)] = {"precision": prec, "recall": rec, "f1": f1, "support": float(tp + fn)}
    macro = {k: float(np.mean([v[k] for v in per.values()])) for k in ("precision", "recall",
                                                                        "f1")}
    return {"per_class": per, "macro": macro, "accuracy": float(np.mean(p == t)),
            "confusion": conf.tolist()}


def fmt_median_iqr(med: float, iqr: float) -> str:
    """``"1.23 (0.45)"``, or ``"-"`` for NaN."""
    if not np.isfinite(med):
        return "-"
    return f"{med:.2f} ({iqr:.2f})"


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    """A GitHub markdown table.

    Raises
    ------
    MetricsError
        A row's length differs from the header's.
    """
    for r in rows:
        if len(r) != len(header):
            raise MetricsError(f"row {r!r} has {len(r)} cells, header has {len(header)}")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def table_a(per_method: dict[str, dict[str, Any]]) -> str:
    """001 Table 4 layout: landmark rows + All + P95/SDR/outliers/missed/false positives.

    ``per_method[m]`` has ``landmarks`` (row name -> :func:`landmark_summary`), ``all``
    (:func:`landmark_summary` of every point), ``false_positives`` and ``complete_pct``.
    """
    methods = list(per_method)
    header = ["landmark", *methods, "001 seg (real images)"]
    rows = []
    for r in (*TABLE_A_ROWS, "All"):
        cells = []
        for m in methods:
            s = per_method[m]["all"] if r == "All" else per_method[m]["landmarks"][r]
            cells.append(fmt_median_iqr(s["median"], s["iqr"]))
        rows.append([r, *cells, PAPER_TABLE_A[r]])
    rows.append(["P95 mm", *[f"{per_method[m]['all']['p95']:.2f}" for m in methods], "4.91"])
    paper_sdr = {"1": "44.0", "3": "86.7"}
    for r in SDR_MM:
        rows.append([f"SDR {r} mm %", *[f"{per_method[m]['all']['sdr'][str(r)]:.1f}"
                                        for m in methods], paper_sdr.get(str(r), "-")])
    rows.append(["outliers > 10 mm", *[str(per_method[m]["all"]["outliers_10mm"])
                                       for m in methods], "-"])
    rows.append(["missed", *[str(per_method[m]["all"]["missed"]) for m in methods],
                 "11.6 per fold (M4)"])
    rows.append(["false positives", *[str(per_method[m]["false_positives"]) for m in methods],
                 "19.4 per fold (M4)"])
    rows.append(["complete set % of legs", *[f"{per_method[m]['complete_pct']:.1f}"
                                             for m in methods], "86.4 (003, seg)"])
    return markdown_table(header, rows)


def table_b(per_method: dict[str, dict[str, Any]]) -> str:
    """001 Table 5 + 003 Table 4 layout, one row per (measurement, method).

    ``per_method[m]["measurements"][row]`` is a :func:`measurement_summary`; MAD is in mm,
    the rest in degrees. ``per_method[m]["hka_over_1_5_pct"]`` is the share of legs whose HKA
    error exceeds 1.5 deg.
    """
    header = ["measurement", "method", "MedAE (IQR)", "MAE (SD)", "RMSE", "slope", "n",
              "papers (real images)"]
    rows = []
    for r in TABLE_B_ROWS:
        for m, v in per_method.items():
            s = v["measurements"][r]
            rows.append([r, m, fmt_median_iqr(s["medae"], s["iqr"]),
                         fmt_median_iqr(s["mae"], s["sd"]), f"{s['rmse']:.2f}",
                         f"{s['slope']:.3f}", f"{s['n']}/{s['n_total']}", PAPER_TABLE_B[r]])
    for m, v in per_method.items():
        rows.append(["HKA error > 1.5 deg, % of legs", m, f"{v['hka_over_1_5_pct']:.1f}", "",
                     "", "", "", "003 SGR: 0.82"])
    return markdown_table(header, rows)


def table_c(per_method: dict[str, dict[str, Any]]) -> str:
    """CPAK: macro precision/recall/F1 and accuracy per method."""
    header = ["method", "macro precision", "macro recall", "macro F1", "accuracy",
              "001 macro F1 (real)"]
    rows = [[m, f"{v['cpak']['macro']['precision']:.3f}", f"{v['cpak']['macro']['recall']:.3f}",
             f"{v['cpak']['macro']['f1']:.3f}", f"{v['cpak']['accuracy']:.3f}",
             "seg 0.79, SGR 0.77, heatmap 0.72, coord 0.47"] for m, v in per_method.items()]
    return markdown_table(header, rows)
