"""Whole-chain evaluation of the full-leg predictor (ROI included) on hold-out DICOM images.

``python -m training.leg_node_evaluate --n 60 --seed 990000000 --max-rows 4050
--out docs/results``

``--data DIR`` measures the ``full_leg_*.dcm`` + ``.json`` pairs of a folder instead (e.g. one
written by the independent renderer, ``python -m training.independent_leg``); the results go to
``OUT/<--name>.json`` and ``.md``.

Each hold-out image (seeds ``seed ..``, never trained on) is made as a DICOM instance by
:func:`training.synth_dicom.full_leg.make_full_leg_instance` (at most ``--max-rows`` rows:
half the 8100-row full size by default, to keep the run to minutes; the joint crops are
area-averaged down to 1.2-1.3 mm per pixel either way) and measured by
:meth:`inference.leg.predictor.FullLegPredictor.measure` on the dataset. For every leg the
values are compared with the truth JSON: MAE, median absolute error and the slope of predicted
on true (least squares) of HKA, mLDFA, mMPTA, aHKA, JLO, JLCA, FVA, long-leg aTFA and MAD.
MAD is compared with the truth scaled to the detector (``truth * magnification``) because the
header gives no magnification (``docs/full_leg.md``). Legs a joint of which is cut off count as
"not measured" and must be flagged.

Latency: ``--latency`` also times ``measure`` on one full 2800 x 8100 image (``full_size``)
at the current thread count (median of 3).

Writes ``OUT/full_leg_node_eval.json`` and ``.md`` and prints the JSON last.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from inference.leg.predictor import FullLegPredictor
from training.synth_dicom.full_leg import make_full_leg_instance

#: Compared values: result key -> truth key.
KEYS = {"HKA": "HKA_deg", "mLDFA": "mLDFA_deg", "mMPTA": "mMPTA_deg", "aHKA": "aHKA_deg",
        "JLO": "JLO_deg", "JLCA": "JLCA_deg", "FVA": "FVA_deg", "aTFA": "aTFA_FTS_deg",
        "MAD": "MAD_mm"}


def _stats(pred: list[float], true: list[float]) -> dict[str, Any]:
    p, t = np.asarray(pred, float), np.asarray(true, float)
    ok = np.isfinite(p) & np.isfinite(t)
    p, t = p[ok], t[ok]
    if p.size < 3:
        return {"n": int(p.size)}
    e = np.abs(p - t)
    slope, intercept = np.polyfit(t, p, 1)
    return {"n": int(p.size), "mae": round(float(e.mean()), 3),
            "medae": round(float(np.median(e)), 3), "p95": round(float(np.percentile(e, 95)), 3),
            "slope": round(float(slope), 4), "intercept": round(float(intercept), 3),
            "r": round(float(np.corrcoef(t, p)[0, 1]), 4)}


def _oracle(pred: FullLegPredictor, truth: dict[str, Any]) -> None:
    """Replace the ROI stage by the true joint centres (to separate its errors from the rest)."""
    from inference.leg import landmarks as leg
    from inference.leg.roi import ROI_CENTRE, ROI_JOINTS, JointHit, RoiResult, check_layout

    legs = {lt["side"]: lt for lt in truth["legs"]}
    hits = []
    for side, joint in ROI_JOINTS:
        i = leg.idx(ROI_CENTRE[joint])
        inside = bool(legs[side]["in_image"][i])
        c = np.asarray(legs[side]["landmarks"][i], float)
        hits.append(JointHit(side, joint, c if inside else np.full(2, np.nan), float(inside),
                             inside, 0.0))
    res = RoiResult(tuple(hits), ())

    def detect(image: Any, mm_per_px: float) -> RoiResult:
        return RoiResult(res.joints, check_layout(res.joints, mm_per_px))

    pred.roi.detect = detect  # type: ignore[method-assign]


@dataclass(frozen=True)
class _Stored:
    """A DICOM instance read from a folder with its truth (the fields ``evaluate`` reads)."""

    dataset: Any
    truth: dict[str, Any]


def _folder_instances(data: Path) -> list[Path]:
    files = sorted(data.glob("full_leg_*.dcm"))
    if not files:
        raise FileNotFoundError(f"no full_leg_*.dcm in {str(data)!r}")
    return files


def _load(dcm: Path) -> _Stored:
    import pydicom

    return _Stored(pydicom.dcmread(dcm), json.loads(dcm.with_suffix(".json").read_text()))


def evaluate(pred: FullLegPredictor, seeds: range | list[Path], max_rows: int,
             oracle_roi: bool = False) -> dict[str, Any]:
    """Measure every hold-out image; return the per-value figures.

    ``seeds`` is a range of generator seeds, or a list of ``full_leg_*.dcm`` files (each with
    its ``.json``) to read instead. ``oracle_roi`` replaces the ROI stage by the true joint
    centres (a diagnostic only).
    """
    values: dict[str, tuple[list[float], list[float]]] = {k: ([], []) for k in KEYS}
    passed_vals: dict[str, tuple[list[float], list[float]]] = {k: ([], []) for k in KEYS}
    n_legs = n_measured = n_pass = n_cut = n_cut_flagged = 0
    cpak_ok = cpak_n = borderline = 0
    totals, refused = [], []
    per_leg: list[dict[str, Any]] = []
    for s in seeds:
        inst = _load(s) if isinstance(s, Path) else make_full_leg_instance(s, max_rows=max_rows)
        if oracle_roi:
            _oracle(pred, inst.truth)
        try:
            res = pred.measure(inst.dataset)
        except Exception as exc:  # noqa: BLE001 -- a refusal is a result here
            refused.append({"seed": str(s), "error": f"{type(exc).__name__}: {exc}"})
            n_legs += 2
            continue
        totals.append(res.timings_ms["total"])
        mag = float(inst.truth["magnification"])
        for lt in inst.truth["legs"]:
            n_legs += 1
            lg = res.leg(str(lt["side"]))
            cut = not all(bool(lt["in_image"][i]) for i in (0, 5, 6, 7))
            if cut:
                n_cut += 1
                n_cut_flagged += lg.quality == "flag"
            if not lg.measured:
                continue
            n_measured += 1
            n_pass += lg.quality == "pass"
            for k, tk in KEYS.items():
                t = float(lt["measurements"][tk]) * (mag if k == "MAD" else 1.0)
                p = lg.measurements[tk]
                values[k][0].append(p)
                values[k][1].append(t)
                if lg.quality == "pass":
                    passed_vals[k][0].append(p)
                    passed_vals[k][1].append(t)
            per_leg.append({
                "source": str(s), "side": lg.side, "quality": lg.quality,
                "reasons": list(lg.flag_reasons), "shift_mm": dict(lg.shift_mm),
                "error": {k: round(float(lg.measurements[tk]) - float(lt["measurements"][tk])
                                   * (mag if k == "MAD" else 1.0), 4)
                          for k, tk in KEYS.items()}})
            if lg.cpak is not None:
                cpak_n += 1
                cpak_ok += lg.cpak.cls == int(lt["cpak_class"])
                borderline += lg.cpak.borderline
    return {
        "n_images": len(seeds), "n_legs": n_legs, "n_measured": n_measured,
        "n_pass": n_pass, "refused": refused, "legs_cut_off": n_cut,
        "legs_cut_off_flagged": n_cut_flagged,
        "all_measured": {k: _stats(*v) for k, v in values.items()},
        "passed_only": {k: _stats(*v) for k, v in passed_vals.items()},
        "cpak_accuracy": round(cpak_ok / cpak_n, 4) if cpak_n else None,
        "cpak_borderline_pct": round(100.0 * borderline / cpak_n, 2) if cpak_n else None,
        "measure_ms_median": round(float(np.median(totals)), 1) if totals else None,
        "quality_control": quality_control(per_leg),
        "legs": per_leg,
        "seeds": [seeds.start, seeds.stop] if isinstance(seeds, range)
        else [int(json.loads(p.with_suffix(".json").read_text())["seed"]) for p in seeds[:1]]
        + [int(json.loads(p.with_suffix(".json").read_text())["seed"]) + 1 for p in seeds[-1:]],
        "max_rows": max_rows,
    }


def _auroc(score: list[float], positive: list[bool]) -> float | None:
    """Probability that a random positive scores above a random negative (ties half)."""
    pos = [a for a, b in zip(score, positive, strict=True) if b]
    neg = [a for a, b in zip(score, positive, strict=True) if not b]
    if not pos or not neg:
        return None
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return round(wins / (len(pos) * len(neg)), 4)


def quality_control(per_leg: list[dict[str, Any]], bad_deg: float = 1.5) -> dict[str, Any]:
    """Does the verdict mean something? Flag rate, bad legs passed, the shift test's AUROC.

    A leg is "bad" when its HKA error exceeds ``bad_deg``; the score of the crop-shift test is
    the largest joint shift of the leg.
    """
    if not per_leg:
        return {}
    bad = [abs(r["error"]["HKA"]) > bad_deg for r in per_leg]
    passed = [r["quality"] == "pass" for r in per_leg]
    shift = [max(r["shift_mm"].values()) if r["shift_mm"] else float("nan") for r in per_leg]
    ok = [np.isfinite(v) for v in shift]
    return {
        "n_measured": len(per_leg),
        "flagged_pct": round(100.0 * (len(per_leg) - sum(passed)) / len(per_leg), 2),
        "bad_legs": int(sum(bad)),
        "bad_legs_passed": int(sum(b and p for b, p in zip(bad, passed, strict=True))),
        "good_legs_flagged": int(sum((not b) and (not p) for b, p in zip(bad, passed,
                                                                           strict=True))),
        "shift_mm_median": round(float(np.nanmedian(shift)), 3) if any(ok) else None,
        "shift_mm_p99": round(float(np.nanpercentile(shift, 99)), 3) if any(ok) else None,
        "shift_auroc_hka_over_1_5": _auroc([v for v, o in zip(shift, ok, strict=True) if o],
                                           [b for b, o in zip(bad, ok, strict=True) if o]),
    }


def latency(pred: FullLegPredictor, seed: int, repeats: int = 3) -> dict[str, Any]:
    """``measure`` time of one full-size 2800 x 8100 instance (median of ``repeats``)."""
    inst = make_full_leg_instance(seed, full_size=True)
    times, parts = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        r = pred.measure(inst.dataset)
        times.append(time.perf_counter() - t0)
        parts.append(r.timings_ms)
    return {"shape": [int(inst.dataset.Rows), int(inst.dataset.Columns)],
            "seconds_median": round(float(np.median(times)), 3),
            "seconds_all": [round(t, 3) for t in times], "timings_ms_last": parts[-1],
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}


def _qc_line(q: dict[str, Any]) -> str:
    if not q:
        return "Quality control: no leg measured."
    return (f"Quality control (a leg is bad when its HKA error > 1.5 deg): {q['flagged_pct']} % of "
            f"{q['n_measured']} measured legs flagged; {q['bad_legs']} bad legs, "
            f"{q['bad_legs_passed']} of them passed; {q['good_legs_flagged']} good legs flagged. "
            f"Crop-shift test (largest joint shift per leg): median {q['shift_mm_median']} mm, "
            f"P99 {q['shift_mm_p99']} mm, AUROC for a bad leg {q['shift_auroc_hka_over_1_5']}.")


def to_markdown(r: dict[str, Any], command: str) -> str:
    """The page ``docs/results/full_leg_node_eval.md``."""
    if r["n_images"] == 0 and "latency" in r:
        la = r["latency"]
        return (f"# Full-leg predictor latency\n\n> Research use only, not a medical device.\n\n"
                f"Command: `{command}`\n\nOne full {la['shape'][1]} x {la['shape'][0]} synthetic "
                f"instance, `FullLegPredictor.measure`, {r['threads']} threads on a shared CPU: "
                f"median {la['seconds_median']} s (runs {la['seconds_all']}; parts of the last, "
                f"ms: {la['timings_ms_last']}); peak RSS {la['peak_rss_mb']} MB.\n")
    lines = [
        "# Full-leg predictor, whole chain (ROI + joint landmarks + shafts + geometry)",
        "",
        "> Research use only, not a medical device. Synthetic hold-out images only "
        + ("(`training.synth_leg`, seeds never trained on)." if "data" not in r else
           f"read from `{r['data']}` (for an independent-renderer folder: never trained or "
           "selected on)."),
        "",
        f"Command: `{command}`",
        "",
        f"{r['n_images']} images ({r['n_legs']} legs"
        + (f"; at most {r['max_rows']} rows), " if "data" not in r else "), ")
        + f"{r['n_measured']} legs measured, {r['n_pass']} passed quality, "
        f"{len(r['refused'])} images refused; legs with a joint cut off: {r['legs_cut_off']}, "
        f"flagged: {r['legs_cut_off_flagged']}.",
        "",
        "| value | n | MAE | MedAE | P95 | slope | r | MAE (passed legs) | slope (passed) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for k in KEYS:
        a, p = r["all_measured"][k], r["passed_only"][k]
        unit = "mm" if k == "MAD" else "deg"
        lines.append(f"| {k} ({unit}) | {a.get('n')} | {a.get('mae')} | {a.get('medae')} | "
                     f"{a.get('p95')} | {a.get('slope')} | {a.get('r')} | {p.get('mae')} | "
                     f"{p.get('slope')} |")
    lines += [
        "",
        f"CPAK accuracy {r['cpak_accuracy']}, borderline {r['cpak_borderline_pct']} % of legs. "
        f"Median `measure` time on these images {r['measure_ms_median']} ms.",
        "",
        "MAD is compared at the detector scale (truth x magnification): the header carries no "
        "magnification.",
        "",
        _qc_line(r.get("quality_control") or {}),
    ]
    if "latency" in r:
        la = r["latency"]
        lines += ["", f"Latency on a full {la['shape'][1]} x {la['shape'][0]} instance, "
                      f"{r['threads']} threads: median {la['seconds_median']} s "
                      f"(runs {la['seconds_all']}; parts of the last, ms: "
                      f"{la['timings_ms_last']}); peak RSS {la['peak_rss_mb']} MB."]
    if r["refused"]:
        lines += ["", "Refused: " + "; ".join(f"{x['seed']}: {x['error']}" for x in r["refused"])]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    import torch

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=60)
    ap.add_argument("--seed", type=int, default=990_000_000)
    ap.add_argument("--max-rows", type=int, default=4050)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--latency", action="store_true")
    ap.add_argument("--oracle-roi", action="store_true",
                    help="diagnostic: true joint centres instead of the ROI stage")
    ap.add_argument("--roi-weights", type=Path, default=None)
    ap.add_argument("--second-look", type=float, default=None,
                    help="QualityLimits.second_look_presence (default: the predictor's)")
    ap.add_argument("--landmark-weights", type=Path, default=None,
                    help="per-joint landmark weights (default: the shipped ones)")
    ap.add_argument("--crop-average", choices=("on", "off"), default=None,
                    help="FullLegPredictor.crop_average (default: the predictor's)")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--data", type=Path, default=None,
                    help="measure the full_leg_*.dcm + .json of this folder instead of seeds")
    ap.add_argument("--name", default=None, help="file stem of the results (with --data)")
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    if a.roi_weights is not None or a.landmark_weights is not None:
        from inference.leg.predictor import (
            DEFAULT_LANDMARK_WEIGHTS,
            DEFAULT_ROI_WEIGHTS,
            SHIPPED_SHA256,
        )

        pred = FullLegPredictor.from_weights(
            a.roi_weights or DEFAULT_ROI_WEIGHTS, a.landmark_weights or DEFAULT_LANDMARK_WEIGHTS,
            roi_sha256=None if a.roi_weights else SHIPPED_SHA256["full_leg_roi.pt"],
            landmark_sha256=None if a.landmark_weights
            else SHIPPED_SHA256["full_leg_hourglass.pt"])
    else:
        pred = FullLegPredictor.from_default_weights()
    if a.second_look is not None:
        from dataclasses import replace

        pred.limits = replace(pred.limits, second_look_presence=a.second_look)
    if a.crop_average is not None:
        pred.crop_average = a.crop_average == "on"
    source: range | list[Path] = (range(a.seed, a.seed + a.n) if a.data is None
                                  else _folder_instances(a.data))
    r = evaluate(pred, source, a.max_rows, a.oracle_roi)
    if a.data is not None:
        r["data"] = str(a.data)
    r["oracle_roi"] = a.oracle_roi
    r["threads"] = a.threads
    r["model_version"] = pred.model_info.version
    if a.latency:
        r["latency"] = latency(pred, a.seed + a.n + 1)
    weights = "".join(f" --{k}-weights {v}" for k, v in
                      (("roi", a.roi_weights), ("landmark", a.landmark_weights)) if v)
    if a.second_look is not None:
        weights += f" --second-look {a.second_look:g}"
    if a.crop_average is not None:
        weights += f" --crop-average {a.crop_average}"
    cmd = (f"python -m training.leg_node_evaluate --n {a.n} --seed {a.seed} --max-rows "
           f"{a.max_rows} --threads {a.threads}{' --latency' if a.latency else ''}"
           f"{' --oracle-roi' if a.oracle_roi else ''}{weights} --out {a.out}")
    name = "full_leg_node_eval_oracle_roi" if a.oracle_roi else "full_leg_node_eval"
    if a.n == 0:
        name = "full_leg_node_latency"
    if a.data is not None:
        cmd = (f"python -m training.leg_node_evaluate --data {a.data} --threads {a.threads}"
               f"{' --oracle-roi' if a.oracle_roi else ''}{weights} --out {a.out}"
               f"{' --name ' + a.name if a.name else ''}")
        name = a.name or name
    if a.out is not None:
        a.out.mkdir(parents=True, exist_ok=True)
        (a.out / f"{name}.json").write_text(json.dumps(r, indent=1) + "\n")
        (a.out / f"{name}.md").write_text(to_markdown(r, cmd))
        print(to_markdown(r, cmd))
    print(json.dumps({k: v for k, v in r.items() if k != "legs"}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
