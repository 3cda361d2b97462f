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


def calibrate(records: list[dict[str, Any]], coverage: float = 0.95,
              weights: tuple[float, ...] = (0.0, 0.1, 0.25, 0.5, 1.0, 2.0)) -> dict[str, Any]:
    """Scale and soft-argmax weight of the interval from validation knees.

    For each candidate weight the scale is the ``coverage`` quantile of
    ``|error| / sqrt(frame^2 + (weight * spread)^2)`` over both methods; the weight kept is
    the one whose half-width ranks the errors best (highest mean AUROC for
    ``|error| > 1.5 deg``), ties broken by the narrower mean interval.
    """
    if not records:
        raise ValueError("records is empty: no validation knees to calibrate on")
    if not 0.5 < coverage < 1.0:
        raise ValueError(f"coverage must be in (0.5, 1), got {coverage!r}")
    rows = []
    for w in weights:
        ratios, hws, errs = [], [], []
        for r in records:
            raw = combine(r["atfa_sd"]["frames"], r["atfa_sd"]["spread"], scale=1.0, weight=w)
            for m in METHODS:
                e = abs(r["atfa_pred"][m] - r["atfa_true"][m])
                ratios.append(e / max(raw[m], 1e-6))
                hws.append(raw[m])
                errs.append(e)
        k = float(np.quantile(ratios, coverage))
        a = auroc(hws, np.asarray(errs) > AUROC_ERROR_DEG)
        rows.append({"weight": w, "scale": round(k, 4), "auroc": _r(a),
                     "mean_half_width_deg": _r(k * float(np.mean(hws)))})
    finite = [r for r in rows if r["auroc"] is not None]
    pool = finite or rows
    best = max(pool, key=lambda r: ((r["auroc"] or 0.0), -(r["mean_half_width_deg"] or 0.0)))
    return {"n_knees": len(records), "coverage_target": coverage, "chosen": best,
            "candidates": rows}


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
    from training.evaluate import result_records

    out.mkdir(parents=True, exist_ok=True)
    summary: dict[str, Any] = {"model": model, "command": command, "renderers": {}}
    for name, res in groups.items():
        summary["renderers"][name] = {
            "all": agreement(res),
            "pre": agreement([r for r in res if r.phase == "pre"]),
            "post": agreement([r for r in res if r.phase == "post"]),
        }
        (out / f"knees_{name}.json").write_text(json.dumps(result_records(res), indent=0))
    (out / "renderers.json").write_text(json.dumps(summary, indent=2) + "\n")
    (out / "renderers.md").write_text(markdown(summary))
    return summary
