"""``python -m training.independent_leg.report``: the independent renderer beside the hold-out.

Reads the JSON written by the two evaluators on both folders and writes
``OUT/full_leg_independent.json`` and ``.md``:

* the whole chain (``python -m training.leg_node_evaluate --data DIR``: ROI + landmarks +
  shafts + geometry, shipped weights) on the independent folder and on the generator's
  hold-out;
* the landmark method alone (``python -m training.leg_evaluate``: crops round the true
  joint centres +-10 mm, shipped hourglass) on both folders;
* the targets of issue 13's "independent full-leg renderer" line, each met or not.

Nothing is measured here; every figure is the evaluators'.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

#: Issue 13's targets on the independent renderer: (what, limit, direction).
TARGETS: dict[str, tuple[float, str]] = {
    "landmark_median_mm": (1.5, "<="),
    "HKA_medae_deg": (0.5, "<="),
    "mLDFA_medae_deg": (1.0, "<="),
    "mMPTA_medae_deg": (1.0, "<="),
    "cpak_accuracy": (0.8, ">="),
}
_VALUES = ("HKA", "mLDFA", "mMPTA", "aHKA", "JLO", "JLCA")


def _method_figures(m: dict[str, Any]) -> dict[str, Any]:
    h = m["headline"]
    best = m["methods"][h["best_method"]]
    return {"n_legs": h["n_legs"], "landmark_median_mm": h["landmark_median_mm"],
            "landmark_p95_mm": round(best["all"].get("p95", float("nan")), 3),
            "medae_deg": h["medae_deg"], "hka_mae_deg": h["hka_mae_deg"],
            "mad_mae_mm": h["mad_mae_mm"], "hka_over_1_5_pct": h["hka_over_1_5_pct"],
            "cpak_accuracy": h["cpak_accuracy"], "cpak_macro_f1": h["cpak_macro_f1"],
            "complete_pct": h["complete_pct"], "per_landmark_median_mm": {
                row: round(v["median"], 3) for row, v in best["landmarks"].items()},
            "command": m.get("command")}


def _node_figures(n: dict[str, Any]) -> dict[str, Any]:
    am = n["all_measured"]
    return {"n_legs": n["n_legs"], "n_measured": n["n_measured"], "n_pass": n["n_pass"],
            "refused": len(n["refused"]), "medae_deg": {k: am[k].get("medae") for k in _VALUES},
            "mae_deg": {k: am[k].get("mae") for k in _VALUES},
            "slope": {k: am[k].get("slope") for k in (*_VALUES, "MAD")},
            "mad_mae_mm": am["MAD"].get("mae"), "cpak_accuracy": n["cpak_accuracy"],
            "cpak_borderline_pct": n["cpak_borderline_pct"]}


def _check(value: float | None, limit: float, how: str) -> bool:
    if value is None:
        return False
    return value <= limit if how == "<=" else value >= limit


def summarise(node_ind: dict[str, Any], method_ind: dict[str, Any],
              node_hold: dict[str, Any], method_hold: dict[str, Any]) -> dict[str, Any]:
    """The figures of both renderers and the targets' verdicts."""
    out: dict[str, Any] = {
        "independent": {"whole_chain": _node_figures(node_ind),
                        "landmark_method": _method_figures(method_ind)},
        "holdout": {"whole_chain": _node_figures(node_hold),
                    "landmark_method": _method_figures(method_hold)},
    }
    targets = {}
    for stage in ("whole_chain", "landmark_method"):
        f = out["independent"][stage]
        got = {"HKA_medae_deg": f["medae_deg"]["HKA"], "mLDFA_medae_deg": f["medae_deg"]["mLDFA"],
               "mMPTA_medae_deg": f["medae_deg"]["mMPTA"], "cpak_accuracy": f["cpak_accuracy"],
               "landmark_median_mm": f.get("landmark_median_mm")}
        targets[stage] = {k: {"value": got[k], "target": f"{how} {lim}",
                              "met": _check(got[k], lim, how)}
                          for k, (lim, how) in TARGETS.items() if got[k] is not None}
    out["targets"] = targets
    return out


def to_markdown(r: dict[str, Any], commands: list[str]) -> str:
    """The page ``docs/results/full_leg_independent.md``."""
    ind, hold = r["independent"], r["holdout"]
    lines = [
        "# Full-leg measurer on the independent renderer, beside the generator's hold-out",
        "",
        "> Research use only, not a medical device. Both folders are synthetic. The independent "
        "renderer (`training/independent_leg/`) is written apart from the training generator "
        "and is never trained or selected on.",
        "",
        "Commands:", "",
        *[f"    {c}" for c in commands],
        "",
        "## Targets (issue 13, independent full-leg renderer)",
        "",
        "| target | whole chain | landmark method (true joint centre +-10 mm) |",
        "|---|---|---|",
    ]
    for k, (lim, how) in TARGETS.items():
        cells = []
        for stage in ("whole_chain", "landmark_method"):
            t = r["targets"][stage].get(k)
            cells.append("-" if t is None else
                         f"{t['value']} ({'met' if t['met'] else 'not met'})")
        lines.append(f"| {k} {how} {lim} | {cells[0]} | {cells[1]} |")
    lines += ["", "## Whole chain (ROI + landmarks + shafts + geometry)", "",
              "| value | independent MedAE | hold-out MedAE | independent MAE | hold-out MAE "
              "| independent slope | hold-out slope |", "|---|---|---|---|---|---|---|"]
    a, b = ind["whole_chain"], hold["whole_chain"]
    for k in _VALUES:
        lines.append(f"| {k} (deg) | {a['medae_deg'][k]} | {b['medae_deg'][k]} | "
                     f"{a['mae_deg'][k]} | {b['mae_deg'][k]} | {a['slope'][k]} | "
                     f"{b['slope'][k]} |")
    lines.append(f"| MAD (mm) | | | {a['mad_mae_mm']} | {b['mad_mae_mm']} | "
                 f"{a['slope']['MAD']} | {b['slope']['MAD']} |")
    lines += ["", f"Legs: independent {a['n_legs']} ({a['n_measured']} measured, "
              f"{a['n_pass']} passed quality, {a['refused']} images refused); hold-out "
              f"{b['n_legs']} ({b['n_measured']} measured, {b['n_pass']} passed, {b['refused']} "
              f"refused). CPAK accuracy: independent {a['cpak_accuracy']}, hold-out "
              f"{b['cpak_accuracy']} (borderline {a['cpak_borderline_pct']} % / "
              f"{b['cpak_borderline_pct']} %).", "",
              "## Landmark method alone (shipped hourglass; crops round the true joint centre)",
              "", "| figure | independent | hold-out |", "|---|---|---|"]
    a, b = ind["landmark_method"], hold["landmark_method"]
    for k in ("n_legs", "landmark_median_mm", "landmark_p95_mm", "hka_mae_deg", "mad_mae_mm",
              "hka_over_1_5_pct", "cpak_accuracy", "cpak_macro_f1", "complete_pct"):
        lines.append(f"| {k} | {a[k]} | {b[k]} |")
    for k in _VALUES:
        lines.append(f"| MedAE {k} (deg) | {a['medae_deg'][k]} | {b['medae_deg'][k]} |")
    lines += ["", "Per landmark (paper 001 Table 4 rows), median mm:", "",
              "| landmark | independent | hold-out |", "|---|---|---|"]
    for row, v in a["per_landmark_median_mm"].items():
        lines.append(f"| {row} | {v} | {b['per_landmark_median_mm'].get(row)} |")
    if "offsets" in r:
        oi, oh = r["offsets"]["independent"]["landmarks"], r["offsets"]["holdout"]["landmarks"]
        lines += ["", "## Systematic offsets (crop on the true joint centre, no jitter)", "",
                  "Mean signed error across the leg (+ lateral) and along it (+ distal), mm, and "
                  "the median error (`python -m training.independent_leg.offsets`).", "",
                  "| landmark | independent lateral | independent distal | independent median "
                  "| hold-out lateral | hold-out distal | hold-out median |",
                  "|---|---|---|---|---|---|---|"]
        for n, v in oi.items():
            h = oh[n]
            lines.append(f"| {n} | {v['mean_lateral_mm']} | {v['mean_distal_mm']} | "
                         f"{v['median_error_mm']} | {h['mean_lateral_mm']} | "
                         f"{h['mean_distal_mm']} | {h['median_error_mm']} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--node-independent", type=Path, required=True)
    ap.add_argument("--method-independent", type=Path, required=True)
    ap.add_argument("--node-holdout", type=Path, required=True)
    ap.add_argument("--method-holdout", type=Path, required=True)
    ap.add_argument("--offsets-independent", type=Path, default=None,
                    help="JSON printed by python -m training.independent_leg.offsets")
    ap.add_argument("--offsets-holdout", type=Path, default=None)
    ap.add_argument("--command", action="append", default=[],
                    help="a command behind the figures (repeat; quoted on the page)")
    ap.add_argument("--out", type=Path, default=Path("docs/results"))
    a = ap.parse_args(argv)
    blobs = [json.loads(p.read_text()) for p in (a.node_independent, a.method_independent,
                                                 a.node_holdout, a.method_holdout)]
    r = summarise(*blobs)
    commands = list(a.command) or [blobs[0].get("command", ""), blobs[1].get("command", ""),
                                   blobs[3].get("command", "")]
    r["commands"] = [c for c in commands if c]
    if a.offsets_independent and a.offsets_holdout:
        r["offsets"] = {"independent": json.loads(a.offsets_independent.read_text()),
                        "holdout": json.loads(a.offsets_holdout.read_text())}
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "full_leg_independent.json").write_text(json.dumps(r, indent=1) + "\n")
    md = to_markdown(r, r["commands"])
    (a.out / "full_leg_independent.md").write_text(md)
    print(md)
    print(json.dumps(r["targets"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
