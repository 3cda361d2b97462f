"""Evaluation against ground truth written by ``knee-node synth`` (``knee-node evaluate``).

For every ``*.dcm`` with its ``*.json`` in a folder the predictor measures the image as the
node would (DICOM in, hash-checked shipped weights), each true knee is matched to the
predicted knee whose plateau mid-point is nearest, and these figures are computed, pre-
and post-operative separately and together:

* **rP2P** -- mean point-to-point distance over the knee's landmarks, in percent of the
  *true* tibial plateau width (paper ``000`` Table 1); mean and 95th percentile over knees.
* **rP2C** -- mean distance from each predicted point to the true outline it belongs to
  (polyline of :data:`inference.landmarks.CURVES`), same unit.
* **outliers_10mm_pct** -- share of landmarks more than 10 mm from the truth on images that
  passed quality control (true pixel spacing); ``images_with_10mm_outlier`` counts images.
* **flagged_pct** -- share of knees flagged by quality control.
* **aTFA** by FTS and FNTS: mean absolute difference, ICC(2,1) (two-way random effects,
  absolute agreement, single measurement; McGraw & Wong 1996) with a 95 % percentile
  bootstrap confidence interval (2000 resamples, seed 0), and Bland-Altman bias and SD of
  the differences (predicted - true).  All knees count, flagged or not.

Points are compared on the landmarks both the truth and the prediction have (113 when a
post-operative knee is called pre-operative); ``phase_accuracy_pct`` reports how often
the phase was called right.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from inference import landmarks as lm
from inference.alignment import METHODS


@dataclass(frozen=True)
class KneeResult:
    """One true knee and what the predictor said about it."""

    name: str
    phase: str
    predicted_phase: str
    rp2p_pct: float
    rp2c_pct: float
    max_error_mm: float
    n_outliers_10mm: int
    n_points: int
    flagged: bool
    confidence: float
    atfa_true: dict[str, float]
    atfa_pred: dict[str, float]
    flag_reasons: tuple[str, ...] = ()
    #: calibrated 95 % half-width per method and the raw spreads behind it (degrees)
    atfa_ci95: dict[str, float] = field(default_factory=dict)
    atfa_sd: dict[str, dict[str, float]] = field(default_factory=dict)
    #: angles with the edge-refined shaft points (empty when not computed)
    atfa_refined: dict[str, float] = field(default_factory=dict)
    #: angles with the notch pair refined on the notch walls (empty when not computed)
    atfa_notch: dict[str, float] = field(default_factory=dict)


def point_to_curve(points: npt.ArrayLike, curve: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Distance of each point to the polyline ``curve`` (both ``(N, 2)``)."""
    p = np.asarray(points, dtype=np.float64)[:, None, :]
    c = np.asarray(curve, dtype=np.float64)
    a, b = c[:-1][None], c[1:][None]
    ab = b - a
    t = np.clip(((p - a) * ab).sum(-1) / np.maximum((ab * ab).sum(-1), 1e-12), 0.0, 1.0)
    proj = a + t[..., None] * ab
    return np.sqrt(((p - proj) ** 2).sum(-1)).min(axis=1)


def compare_landmarks(
    pred: npt.ArrayLike, true: npt.ArrayLike, spacing_mm: tuple[float, float]
) -> dict[str, float]:
    """rP2P and rP2C (percent of the true plateau width) and errors in mm."""
    p = np.asarray(pred, dtype=np.float64)
    t = np.asarray(true, dtype=np.float64)
    n = min(len(p), len(t))
    p, t = p[:n], t[:n]
    w = lm.plateau_width(t)
    if w <= 0:
        raise ValueError("true plateau corners coincide")
    d = np.linalg.norm(p - t, axis=1)
    p2c = np.zeros(n)
    for a, b in lm.CURVES.values():
        if b <= n:
            p2c[a:b] = point_to_curve(p[a:b], t[a:b])
    scale = np.array([spacing_mm[1], spacing_mm[0]])
    d_mm = np.linalg.norm((p - t) * scale, axis=1)
    return {"rp2p_pct": float(100 * d.mean() / w), "rp2c_pct": float(100 * p2c.mean() / w),
            "max_error_mm": float(d_mm.max()), "n_outliers_10mm": int((d_mm > 10).sum()),
            "n_points": n}


def icc_2_1(a: npt.ArrayLike, b: npt.ArrayLike) -> float:
    """ICC(2,1): two-way random effects, absolute agreement, single rater (2 raters)."""
    x = np.stack([np.asarray(a, float), np.asarray(b, float)], axis=1)
    n, k = x.shape
    if n < 3:
        return float("nan")
    grand = x.mean()
    ms_r = k * ((x.mean(axis=1) - grand) ** 2).sum() / (n - 1)
    ms_c = n * ((x.mean(axis=0) - grand) ** 2).sum() / (k - 1)
    resid = x - x.mean(axis=1, keepdims=True) - x.mean(axis=0, keepdims=True) + grand
    ms_e = (resid**2).sum() / ((n - 1) * (k - 1))
    denom = ms_r + (k - 1) * ms_e + k * (ms_c - ms_e) / n
    return float((ms_r - ms_e) / denom) if denom > 0 else float("nan")


def icc_with_ci(a: npt.ArrayLike, b: npt.ArrayLike, resamples: int = 2000,
                seed: int = 0) -> dict[str, float]:
    """ICC(2,1) with a 95 % percentile-bootstrap interval."""
    x, y = np.asarray(a, float), np.asarray(b, float)
    value = icc_2_1(x, y)
    if len(x) < 3:
        return {"value": value, "ci95": [float("nan"), float("nan")]}  # type: ignore[dict-item]
    rng = np.random.default_rng(seed)
    boots = []
    for _ in range(resamples):
        i = rng.integers(0, len(x), len(x))
        boots.append(icc_2_1(x[i], y[i]))
    lo, hi = np.nanpercentile(boots, [2.5, 97.5])
    return {"value": round(value, 4), "ci95": [round(float(lo), 4), round(float(hi), 4)]}  # type: ignore[dict-item]


def summarise(results: list[KneeResult]) -> dict[str, Any]:
    """The figures of one group of knees (see the module docstring)."""
    if not results:
        return {"n": 0}
    rp2p = np.array([r.rp2p_pct for r in results])
    rp2c = np.array([r.rp2c_pct for r in results])
    passed = [r for r in results if not r.flagged]
    out_pts = sum(r.n_outliers_10mm for r in passed)
    all_pts = max(sum(r.n_points for r in passed), 1)
    s: dict[str, Any] = {
        "n": len(results),
        "rp2p_mean_pct": round(float(rp2p.mean()), 3),
        "rp2p_median_pct": round(float(np.median(rp2p)), 3),
        "rp2p_p95_pct": round(float(np.percentile(rp2p, 95)), 3),
        "rp2c_mean_pct": round(float(rp2c.mean()), 3),
        "outliers_10mm_pct": round(100.0 * out_pts / all_pts, 4),
        "images_with_10mm_outlier": sum(1 for r in passed if r.n_outliers_10mm),
        "flagged_pct": round(100.0 * (len(results) - len(passed)) / len(results), 2),
        "phase_accuracy_pct": round(100.0 * np.mean([r.phase == r.predicted_phase
                                                     for r in results]), 2),
        "atfa_mad_deg": {}, "atfa_icc": {}, "bland_altman": {},
    }
    for m in METHODS:
        t = np.array([r.atfa_true[m] for r in results])
        p = np.array([r.atfa_pred[m] for r in results])
        d = p - t
        s["atfa_mad_deg"][m] = round(float(np.abs(d).mean()), 3)
        s["atfa_icc"][m] = icc_with_ci(p, t)
        s["bland_altman"][m] = {"bias": round(float(d.mean()), 3),
                                "sd": round(float(d.std(ddof=1)) if len(d) > 1 else 0.0, 3)}
    from training.robustness import agreement

    s["agreement"] = agreement(results)
    return s


def result_records(results: list[KneeResult]) -> list[dict[str, Any]]:
    """Per-knee records (JSON-ready), so figures can be recomputed without re-running."""
    return [asdict(r) for r in results]


def evaluate_folder(predictor: Any, data: Path, limit: int | None = None,
                    progress: Any = None) -> list[KneeResult]:
    """Run ``predictor.measure`` on every ``*.dcm`` of ``data`` that has a ``.json`` beside it."""
    import pydicom

    files = sorted(p for p in data.glob("*.dcm") if p.with_suffix(".json").exists())
    if limit is not None:
        files = files[:limit]
    if not files:
        raise FileNotFoundError(f"no *.dcm with a .json beside it in {data}")
    results: list[KneeResult] = []
    for path in files:
        truth = json.loads(path.with_suffix(".json").read_text())
        knees = truth.get("knees") or [truth]
        measurements = predictor.measure(pydicom.dcmread(path))
        for k in knees:
            t = np.asarray(k["landmarks"], dtype=np.float64)
            spacing = tuple(k.get("pixel_spacing_mm") or truth["pixel_spacing_mm"])
            mid = t[list(lm.REFERENCE_POINTS)].mean(axis=0)
            best = min(measurements, key=lambda m: float(np.linalg.norm(
                m.landmarks[list(lm.REFERENCE_POINTS)].mean(axis=0) - mid)))
            c = compare_landmarks(best.landmarks, t, spacing)
            results.append(KneeResult(
                name=path.name, phase=k.get("phase", truth["phase"]),
                predicted_phase=best.phase, rp2p_pct=c["rp2p_pct"], rp2c_pct=c["rp2c_pct"],
                max_error_mm=c["max_error_mm"], n_outliers_10mm=int(c["n_outliers_10mm"]),
                n_points=int(c["n_points"]), flagged=best.quality != "pass",
                confidence=best.confidence,
                atfa_true={m: float(k["atfa_deg"][m]) for m in METHODS},
                atfa_pred=best.atfa_deg, flag_reasons=best.flag_reasons,
                atfa_ci95=dict(best.atfa_ci95_deg), atfa_sd=dict(best.atfa_sd_deg),
                atfa_refined=dict(getattr(best, "atfa_refined_deg", {}) or {}),
                atfa_notch=dict(getattr(best, "atfa_notch_deg", {}) or {})))
        if progress is not None:
            progress()
    return results


def report(results: list[KneeResult]) -> dict[str, Any]:
    """Figures for all knees, and for pre- and post-operative knees separately."""
    out = summarise(results)
    out["pre"] = summarise([r for r in results if r.phase == "pre"])
    out["post"] = summarise([r for r in results if r.phase == "post"])
    return out


def plot(results: list[KneeResult], out_dir: Path) -> list[Path]:
    """Bland-Altman and predicted-vs-true scatter plots (PNG), one panel per phase and method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for kind in ("bland_altman", "scatter"):
        fig, axes = plt.subplots(2, 2, figsize=(9, 8), squeeze=False)
        for i, phase in enumerate(("pre", "post")):
            group = [r for r in results if r.phase == phase]
            for j, m in enumerate(METHODS):
                ax = axes[i][j]
                ax.set_title(f"{phase}-op, {m} (n={len(group)})")
                if not group:
                    continue
                t = np.array([r.atfa_true[m] for r in group])
                p = np.array([r.atfa_pred[m] for r in group])
                flag = np.array([r.flagged for r in group])
                if kind == "bland_altman":
                    mean, d = (p + t) / 2, p - t
                    ax.scatter(mean[~flag], d[~flag], s=8, label="passed")
                    ax.scatter(mean[flag], d[flag], s=12, marker="x", c="red", label="flagged")
                    bias, sd = d.mean(), d.std(ddof=1) if len(d) > 1 else 0.0
                    lines = ((bias, "-"), (bias + 1.96 * sd, "--"), (bias - 1.96 * sd, "--"))
                    for y, style in lines:
                        ax.axhline(y, color="k", linestyle=style, linewidth=0.8)
                    ax.set_xlabel("mean of predicted and true aTFA (deg)")
                    ax.set_ylabel("predicted - true (deg)")
                else:
                    ax.scatter(t[~flag], p[~flag], s=8, label="passed")
                    ax.scatter(t[flag], p[flag], s=12, marker="x", c="red", label="flagged")
                    lo, hi = float(min(t.min(), p.min())), float(max(t.max(), p.max()))
                    ax.plot([lo, hi], [lo, hi], "k-", linewidth=0.8)
                    ax.set_xlabel("true aTFA (deg)")
                    ax.set_ylabel("predicted aTFA (deg)")
                ax.legend(fontsize=7)
        fig.suptitle("knee-node on synthetic hold-out radiographs (valgus positive)")
        fig.tight_layout()
        path = out_dir / f"{kind}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths


def table_rows(rep: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """Rows (figure, all, pre, post) for the printed table."""
    def fmt(group: dict[str, Any], key: str, sub: str | None = None) -> str:
        if group.get("n", 0) == 0:
            return "-"
        v = group[key] if sub is None else group[key][sub]
        if isinstance(v, dict):
            if "value" in v:
                return f"{v['value']:.3f} ({v['ci95'][0]:.3f}, {v['ci95'][1]:.3f})"
            return f"{v['bias']:+.2f} ± {v['sd']:.2f}"
        return f"{v}" if isinstance(v, int) else (f"{v:.3f}" if not math.isnan(v) else "nan")

    rows = []
    keys: list[tuple[str, str | None]] = [
        ("n", None), ("rp2p_mean_pct", None), ("rp2p_p95_pct", None), ("rp2c_mean_pct", None),
        ("outliers_10mm_pct", None), ("flagged_pct", None), ("phase_accuracy_pct", None)]
    keys += [(k, m) for k in ("atfa_mad_deg", "atfa_icc", "bland_altman") for m in METHODS]
    for key, sub in keys:
        label = key if sub is None else f"{key} {sub}"
        rows.append((label, fmt(rep, key, sub), fmt(rep["pre"], key, sub),
                     fmt(rep["post"], key, sub)))
    return rows
