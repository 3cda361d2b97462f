"""Agreement, bias and uncertainty figures per renderer (``knee-node evaluate-renderers``).

For each method (FTS, FNTS) over a group of :class:`training.evaluate.KneeResult`:

* MAD, **slope and intercept** of measured vs true by OLS and by Deming regression (error
  variance ratio 1: both readings carry error), Bland-Altman bias and 95 % limits of
  agreement (``bias +- 1.96 SD``);
* **flag rate**, the largest error of an unflagged knee and how many unflagged knees are
  more than 2.5 deg off;
* the **calibrated 95 % interval**: coverage (share of knees whose true angle lies inside),
  mean half-width, and the **AUROC** of the half-width for ``|error| > 1.5 deg`` (0.5 = the
  interval ranks errors no better than chance);
* the pull of strongly valgus knees (true > 15 deg): their mean signed error.

:func:`calibrate` fits the interval's scale (and the weight of the soft-argmax term) on
validation knees of ``training/synth`` -- never on the independent renderer.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from inference.alignment import METHODS
from inference.uncertainty import combine

#: An error above this (deg) counts as "wrong" for the AUROC of the uncertainty.
AUROC_ERROR_DEG = 1.5
#: An unflagged knee off by more than this (deg) is a failure of quality control.
MAX_UNFLAGGED_DEG = 2.5


def ols(x: npt.ArrayLike, y: npt.ArrayLike) -> tuple[float, float]:
    """Least-squares slope and intercept of ``y`` on ``x``."""
    xa, ya = np.asarray(x, float), np.asarray(y, float)
    if len(xa) < 2 or np.ptp(xa) == 0:
        return float("nan"), float("nan")
    slope, intercept = np.polyfit(xa, ya, 1)
    return float(slope), float(intercept)


def deming(x: npt.ArrayLike, y: npt.ArrayLike, ratio: float = 1.0) -> tuple[float, float]:
    """Deming regression slope and intercept (``ratio`` = var(y error) / var(x error))."""
    xa, ya = np.asarray(x, float), np.asarray(y, float)
    if len(xa) < 3:
        return float("nan"), float("nan")
    mx, my = xa.mean(), ya.mean()
    sxx = ((xa - mx) ** 2).mean()
    syy = ((ya - my) ** 2).mean()
    sxy = ((xa - mx) * (ya - my)).mean()
    if sxy == 0:
        return float("nan"), float("nan")
    d = syy - ratio * sxx
    slope = (d + np.sqrt(d * d + 4 * ratio * sxy * sxy)) / (2 * sxy)
    return float(slope), float(my - slope * mx)


def auroc(score: npt.ArrayLike, positive: npt.ArrayLike) -> float:
    """Area under the ROC curve of ``score`` for the boolean ``positive`` (ties count 1/2)."""
    s = np.asarray(score, float)
    p = np.asarray(positive, bool)
    n_pos, n_neg = int(p.sum()), int((~p).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    diff = s[p][:, None] - s[~p][None, :]
    return float(((diff > 0).sum() + 0.5 * (diff == 0).sum()) / (n_pos * n_neg))


def _r(v: float, nd: int = 3) -> float | None:
    return None if not np.isfinite(v) else round(float(v), nd)


def agreement(results: list[Any]) -> dict[str, Any]:
    """The figures of the module docstring, per method, for one group of knees."""
    if not results:
        return {"n": 0}
    flagged = np.array([r.flagged for r in results])
    out: dict[str, Any] = {"n": len(results), "flagged_pct": _r(100.0 * flagged.mean(), 2)}
    for m in METHODS:
        t = np.array([r.atfa_true[m] for r in results])
        p = np.array([r.atfa_pred[m] for r in results])
        e = p - t
        sd = float(e.std(ddof=1)) if len(e) > 1 else 0.0
        so, io = ols(t, p)
        sdm, idm = deming(t, p)
        unf = np.abs(e[~flagged])
        hw = np.array([r.atfa_ci95.get(m, np.nan) for r in results], float)
        has = np.isfinite(hw)
        valgus = t > 15.0
        out[m] = {
            "mad_deg": _r(np.abs(e).mean()),
            "ols_slope": _r(so), "ols_intercept_deg": _r(io),
            "deming_slope": _r(sdm), "deming_intercept_deg": _r(idm),
            "ba_bias_deg": _r(e.mean()), "ba_sd_deg": _r(sd),
            "ba_limits_deg": [_r(e.mean() - 1.96 * sd), _r(e.mean() + 1.96 * sd)],
            "max_abs_error_deg": _r(np.abs(e).max()),
            "max_unflagged_error_deg": _r(unf.max()) if len(unf) else None,
            "unflagged_over_2_5_deg": int((unf > MAX_UNFLAGGED_DEG).sum()),
            "errors_over_1_5_deg_pct": _r(100.0 * (np.abs(e) > AUROC_ERROR_DEG).mean(), 2),
            "interval_coverage_pct": _r(100.0 * (np.abs(e[has]) <= hw[has]).mean(), 2)
            if has.any() else None,
            "interval_mean_half_width_deg": _r(hw[has].mean()) if has.any() else None,
            "interval_auroc_error_1_5": _r(auroc(hw[has], np.abs(e[has]) > AUROC_ERROR_DEG))
            if has.any() else None,
            "valgus_over_15": {"n": int(valgus.sum()),
                               "mean_error_deg": _r(e[valgus].mean()) if valgus.any() else None},
        }
    return out


def _coverage(raw: npt.NDArray[np.float64], err: npt.NDArray[np.float64], floor: float,
              scale: float) -> float:
    return float((err <= np.hypot(floor, scale * raw)).mean())


def _scale_for(raw: npt.NDArray[np.float64], err: npt.NDArray[np.float64], floor: float,
               coverage: float) -> float | None:
    """Smallest scale whose interval ``hypot(floor, scale * raw)`` covers ``coverage``."""
    if _coverage(raw, err, floor, 0.0) >= coverage:
        return 0.0
    hi = 1.0
    while _coverage(raw, err, floor, hi) < coverage:
        hi *= 2.0
        if hi > 1e6:
            return None
    lo = 0.0
    for _ in range(50):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if _coverage(raw, err, floor, mid) < coverage else (lo, mid)
    return hi


def calibrate(records: list[dict[str, Any]], coverage: float = 0.95,
              weights: tuple[float, ...] = (0.0, 0.1, 0.25, 0.5, 1.0, 2.0),
              floors: tuple[float, ...] = tuple(np.round(np.arange(0.0, 2.01, 0.05), 2))
              ) -> dict[str, Any]:
    """Floor, scale and soft-argmax weight of the interval from validation knees.

    The half-width is ``sqrt(floor^2 + (scale * sqrt(frame^2 + (weight * spread)^2))^2)``.
    For each candidate weight and floor the scale is the smallest that covers
    ``coverage`` of the validation errors (both methods pooled; ``None`` when the floor
    alone already covers more, scale then 0).  Kept: the candidate with the narrowest mean
    half-width at that coverage (the sharpest calibrated interval).  The AUROC of each
    candidate's half-width for ``|error| > 1.5 deg`` says whether the spread ranks errors
    at all (0.5 = chance); a floor-dominated interval has an AUROC near 0.5 by design.

    Parameters
    ----------
    records
        Per-knee records (:func:`training.evaluate.result_records`) of validation renders.
    coverage
        Target share of knees whose true angle lies inside the interval.
    weights, floors
        Candidate soft-argmax weights and floors (degrees).
    """
    if not records:
        raise ValueError("records is empty: no validation knees to calibrate on")
    if not 0.5 < coverage < 1.0:
        raise ValueError(f"coverage must be in (0.5, 1), got {coverage!r}")
    if any(f < 0 for f in floors) or any(w < 0 for w in weights):
        raise ValueError(f"floors and weights must be >= 0, got {floors!r}, {weights!r}")
    rows = []
    for w in weights:
        raws, errs = [], []
        for r in records:
            raw = combine(r["atfa_sd"]["frames"], r["atfa_sd"]["spread"], scale=1.0,
                          weight=w, floor=0.0)
            for m in METHODS:
                errs.append(abs(r["atfa_pred"][m] - r["atfa_true"][m]))
                raws.append(raw[m])
        ra, ea = np.asarray(raws), np.asarray(errs)
        spread_auroc = _r(auroc(ra, ea > AUROC_ERROR_DEG))
        for f in floors:
            k = _scale_for(ra, ea, float(f), coverage)
            if k is None or (k == 0.0 and f == 0.0):
                continue
            hw = np.hypot(f, k * ra)
            rows.append({"weight": w, "floor_deg": float(f), "scale": round(k, 4),
                         "coverage_pct": _r(100.0 * float((ea <= hw).mean()), 2),
                         "auroc": _r(auroc(hw, ea > AUROC_ERROR_DEG)),
                         "spread_auroc": spread_auroc,
                         "mean_half_width_deg": _r(float(hw.mean()))})
    if not rows:
        raise ValueError("no candidate interval reaches the coverage target")
    best = min(rows, key=lambda r: (r["mean_half_width_deg"], -(r["auroc"] or 0.0)))
    errs_all = np.asarray([abs(r["atfa_pred"][m] - r["atfa_true"][m])
                           for r in records for m in METHODS])
    return {"n_knees": len(records), "coverage_target": coverage, "chosen": best,
            "error_quantile_deg": _r(float(np.quantile(errs_all, coverage))),
            "scale_only": [r for r in rows if r["floor_deg"] == 0.0],
            "candidates": rows}


def with_interval(rec: dict[str, Any], scale: float, weight: float,
                  limit: float, flag_on: bool = True, floor: float = 0.0) -> dict[str, Any]:
    """A per-knee record re-scored with interval constants ``scale``, ``weight``, ``floor``.

    The half-widths are recomputed from the stored raw spreads and the interval part of
    the flag verdict is redone exactly as :func:`inference.uncertainty.AngleUncertainty.reasons`
    does (other flag reasons are kept), so records measured before the calibration was
    fixed give the same figures as a fresh run with the final constants.  With
    ``flag_on`` False (the predictor's :data:`inference.uncertainty.FLAG_ON_INTERVAL`
    off) the interval adds no flag, as in the node.
    """
    from inference.uncertainty import AngleUncertainty

    r = dict(rec)
    hw = combine(r["atfa_sd"]["frames"], r["atfa_sd"]["spread"], scale=scale, weight=weight,
                 floor=floor)
    unc = AngleUncertainty(frame_sd=r["atfa_sd"]["frames"], spread_sd=r["atfa_sd"]["spread"],
                           half_width=hw)
    kept = [x for x in r["flag_reasons"] if not str(x).startswith("aTFA ")]
    r["flag_reasons"] = tuple(kept + (unc.reasons(limit) if flag_on else []))
    r["flagged"] = bool(r["flag_reasons"])
    r["atfa_ci95"] = hw
    return r


def markdown(summary: dict[str, Any]) -> str:
    """A markdown table per renderer and method from :func:`write_results`' summary."""
    lines = [f"# aTFA by renderer: {summary['model']}", "",
             f"Command: `{summary['command']}`", "",
             "Research use only; synthetic radiographs only. The independent renderer "
             "(`training/independent`) is never used for training or checkpoint choice.", ""]
    keys = [("n", None), ("flagged %", "flagged_pct"), ("MAD (deg)", "mad_deg"),
            ("OLS slope", "ols_slope"), ("OLS intercept (deg)", "ols_intercept_deg"),
            ("Deming slope", "deming_slope"), ("Deming intercept (deg)", "deming_intercept_deg"),
            ("BA bias (deg)", "ba_bias_deg"), ("BA limits (deg)", "ba_limits_deg"),
            ("max error (deg)", "max_abs_error_deg"),
            ("max unflagged error (deg)", "max_unflagged_error_deg"),
            ("unflagged > 2.5 deg", "unflagged_over_2_5_deg"),
            ("errors > 1.5 deg %", "errors_over_1_5_deg_pct"),
            ("95% interval coverage %", "interval_coverage_pct"),
            ("mean half-width (deg)", "interval_mean_half_width_deg"),
            ("AUROC half-width, err > 1.5", "interval_auroc_error_1_5"),
            ("valgus > 15: n / mean error", "valgus_over_15")]
    for group in ("all", "pre", "post"):
        cols = [(name, m) for name in summary["renderers"] for m in METHODS]
        lines += [f"## {group} knees", "",
                  "| figure | " + " | ".join(f"{n} {m}" for n, m in cols) + " |",
                  "|---" * (len(cols) + 1) + "|"]
        for label, key in keys:
            cells = []
            for name, m in cols:
                g = summary["renderers"][name][group]
                if key is None:
                    v: Any = g.get("n")
                elif key == "flagged_pct":
                    v = g.get(key)
                else:
                    v = g.get(m, {}).get(key)
                if isinstance(v, dict):
                    v = f"{v['n']} / {v['mean_error_deg']}"
                cells.append("-" if v is None else str(v))
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines) + "\n"


def write_results(groups: dict[str, list[Any]], out: Path, model: str,
                  command: str) -> dict[str, Any]:
    """Summaries per renderer (all, pre, post) as JSON + markdown, and per-knee records."""
    import dataclasses

    out.mkdir(parents=True, exist_ok=True)
    summary: dict[str, Any] = {"model": model, "command": command, "renderers": {}}
    variants = dict(groups)
    for name, res in groups.items():  # the same knees with the edge-refined shaft points
        if res and all(r.atfa_refined for r in res):
            variants[f"{name}+edges"] = [dataclasses.replace(r, atfa_pred=r.atfa_refined)
                                         for r in res]
    for name, res in groups.items():  # the same knees with the notch pair refined
        if res and all(getattr(r, "atfa_notch", None) for r in res):
            variants[f"{name}+notch"] = [dataclasses.replace(r, atfa_pred=r.atfa_notch)
                                         for r in res]
    for name, res in variants.items():
        summary["renderers"][name] = {
            "all": agreement(res),
            "pre": agreement([r for r in res if r.phase == "pre"]),
            "post": agreement([r for r in res if r.phase == "post"]),
        }
    (out / "renderers.json").write_text(json.dumps(summary, indent=2) + "\n")
    (out / "renderers.md").write_text(markdown(summary))
    return summary
