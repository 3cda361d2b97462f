"""Hold-out evaluation of the full-leg ROI stage (:mod:`inference.leg.roi`).

``python -m training.leg_roi_evaluate --n 120 --seed 990000000 --max-rows 2048 --out docs/results``

Renders hold-out images of :mod:`training.synth_leg` (seeds ``seed ..`` never trained on; at
most ``--max-rows`` rows, i.e. coarser pixels than the full 8100-row image, which the ROI
stage reduces to 384 rows anyway), and a second copy of every ``--cut-every``-th image cut by
a seeded field edge (:func:`training.leg_roi_data._cut`: top, bottom, one side, knee only,
lower leg, thigh). Then reports:

* ``all_six_within_tol_pct``: images (uncut) whose six joints are all found within
  ``--tol-mm`` of the true centre (the tolerance is the +-15 mm centre jitter the landmark
  model was trained with: within it the joint stays well inside its 170 / 150 mm crop);
* ``joint_error_mm``: median and P95 of the found joints' errors (patient mm);
* ``missing_reported_pct``: of the joints whose centre is outside the image (cut), the share
  reported missing; ``false_missing_pct``: of the joints well inside, the share reported
  missing; ``ankles_swapped``: images whose right and left ankle came out crossed.

Writes ``OUT/full_leg_roi_eval.json`` and ``.md`` and prints the JSON last.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from inference.leg.roi import DEFAULT_ROI_WEIGHTS, RoiDetector
from training.leg_roi_data import PRESENT_MARGIN_MM, RoiSample, _cut, presence, render_sample


def _score(det: RoiDetector, img: np.ndarray, centres: np.ndarray, mmpp: float
           ) -> dict[str, Any]:
    res = det.detect(img, mmpp)
    label, weight, coord = presence(centres, img.shape, mmpp)
    err, found, inside, outside = [], [], [], []
    for k, hit in enumerate(res.joints):
        inside.append(bool(label[k] == 1))
        outside.append(bool(coord[k] == 0))
        found.append(hit.present)
        err.append(float(np.hypot(*(hit.centre - centres[k]))) * mmpp if hit.present
                   else float("nan"))
    swapped = False
    r, left = res.get("R", "ankle"), res.get("L", "ankle")
    if r.present and left.present and r.centre[0] > left.centre[0]:
        swapped = True
    return {"err": err, "found": found, "inside": inside, "outside": outside,
            "swapped": swapped, "problems": list(res.problems)}


def evaluate(det: RoiDetector, seeds: range, max_rows: int, cut_every: int, tol_mm: float
             ) -> dict[str, Any]:
    """Run the detector on the hold-out; return the figures (see the module docstring)."""
    uncut, cut = [], []
    t_det = []
    for i, s in enumerate(seeds):
        smp = render_sample(s, max_rows)
        t0 = time.perf_counter()
        uncut.append(_score(det, smp.image, smp.centres, smp.mm_per_px))
        t_det.append(time.perf_counter() - t0)
        if cut_every and i % cut_every == 0:
            rng = np.random.default_rng([s, 0x501])
            img, c = _cut(RoiSample(smp.image, smp.centres, smp.mm_per_px, s), rng)
            cut.append(_score(det, img, c, smp.mm_per_px))

    def agg(rs: list[dict[str, Any]]) -> dict[str, Any]:
        errs = np.array([e for r in rs for e, ins in zip(r["err"], r["inside"], strict=True)
                         if ins and np.isfinite(e)])
        n_in = sum(ins for r in rs for ins in r["inside"])
        n_out = sum(o for r in rs for o in r["outside"])
        miss_in = sum((not f) for r in rs for f, ins in zip(r["found"], r["inside"], strict=True)
                      if ins)
        rep_out = sum((not f) for r in rs for f, o in zip(r["found"], r["outside"], strict=True)
                      if o)
        all6 = [all(ins for ins in r["inside"]) for r in rs]
        ok6 = [a and all(f and e <= tol_mm for f, e in zip(r["found"], r["err"], strict=True))
               for a, r in zip(all6, rs, strict=True)]
        return {
            "n_images": len(rs), "n_images_all_six_inside": int(sum(all6)),
            "all_six_within_tol_pct": round(100.0 * sum(ok6) / max(sum(all6), 1), 2),
            "joint_error_mm": {"median": round(float(np.median(errs)), 2) if errs.size else None,
                               "p95": round(float(np.percentile(errs, 95)), 2) if errs.size
                               else None,
                               "max": round(float(errs.max()), 2) if errs.size else None,
                               "n": int(errs.size)},
            "joints_inside": int(n_in),
            "false_missing_pct": round(100.0 * miss_in / max(n_in, 1), 2),
            "joints_cut_off": int(n_out),
            "missing_reported_pct": round(100.0 * rep_out / n_out, 2) if n_out else None,
            "ankles_swapped": int(sum(r["swapped"] for r in rs)),
            "images_with_layout_problems": int(sum(bool(r["problems"]) for r in rs)),
        }

    return {"uncut": agg(uncut), "cut": agg(cut), "all": agg(uncut + cut),
            "detect_ms_median": round(1000 * float(np.median(t_det)), 1),
            "tol_mm": tol_mm, "present_margin_mm": PRESENT_MARGIN_MM,
            "seeds": [seeds.start, seeds.stop], "max_rows": max_rows}


def to_markdown(r: dict[str, Any], command: str, sha: str) -> str:
    """The result as the page ``docs/results/full_leg_roi_eval.md``."""
    u, c = r["uncut"], r["cut"]
    lines = [
        "# Full-leg ROI stage: hold-out evaluation",
        "",
        "> Research use only, not a medical device. Synthetic images only "
        "(`training.synth_leg`), never trained on.",
        "",
        f"Command: `{command}` (ROI weights SHA-256 `{sha}`).",
        "",
        f"Hold-out seeds {r['seeds'][0]:,}-{r['seeds'][1] - 1:,}, rendered at most "
        f"{r['max_rows']} rows. Tolerance {r['tol_mm']} mm: the landmark model was trained on "
        "crops whose centre was jittered by up to +-15 mm, so within it the joint is where the "
        "model expects it (and the second landmark pass re-centres the crop).",
        "",
        "| | uncut images | images cut by a field edge |",
        "|---|---|---|",
        f"| images | {u['n_images']} | {c['n_images']} |",
        f"| images with all six joints inside | {u['n_images_all_six_inside']} | "
        f"{c['n_images_all_six_inside']} |",
        f"| of those, all six found within {r['tol_mm']} mm | {u['all_six_within_tol_pct']} % | "
        f"{c['all_six_within_tol_pct']} % |",
        f"| joint error median / P95 / max (mm) | {u['joint_error_mm']['median']} / "
        f"{u['joint_error_mm']['p95']} / {u['joint_error_mm']['max']} | "
        f"{c['joint_error_mm']['median']} / {c['joint_error_mm']['p95']} / "
        f"{c['joint_error_mm']['max']} |",
        f"| joints inside reported missing | {u['false_missing_pct']} % of {u['joints_inside']} | "
        f"{c['false_missing_pct']} % of {c['joints_inside']} |",
        f"| joints cut off reported missing | {u['missing_reported_pct']} % of "
        f"{u['joints_cut_off']} | {c['missing_reported_pct']} % of {c['joints_cut_off']} |",
        f"| ankles crossed (R right of L) | {u['ankles_swapped']} | {c['ankles_swapped']} |",
        "",
        f"Detector time per image (letterbox + network, {r.get('threads')} thread(s), shared "
        f"CPU): median {r['detect_ms_median']} ms. A joint is found when its presence "
        f"probability is >= 0.5 and its point lies >= {r.get('edge_margin_mm')} mm inside the "
        "image.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    import hashlib

    import torch

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", type=Path, default=DEFAULT_ROI_WEIGHTS)
    ap.add_argument("--n", type=int, default=120)
    ap.add_argument("--seed", type=int, default=990_000_000)
    ap.add_argument("--max-rows", type=int, default=2048)
    ap.add_argument("--cut-every", type=int, default=2)
    ap.add_argument("--tol-mm", type=float, default=15.0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=None)
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    det = RoiDetector.from_weights(a.weights)
    r = evaluate(det, range(a.seed, a.seed + a.n), a.max_rows, a.cut_every, a.tol_mm)
    sha = hashlib.sha256(a.weights.read_bytes()).hexdigest()
    r["weights_sha256"] = sha
    r["threads"] = a.threads
    r["edge_margin_mm"] = det.edge_margin_mm
    if a.out is not None:
        a.out.mkdir(parents=True, exist_ok=True)
        cmd = (f"python -m training.leg_roi_evaluate --n {a.n} --seed {a.seed} --max-rows "
               f"{a.max_rows} --cut-every {a.cut_every} --tol-mm {a.tol_mm} --out {a.out}")
        (a.out / "full_leg_roi_eval.json").write_text(json.dumps(r, indent=1) + "\n")
        (a.out / "full_leg_roi_eval.md").write_text(to_markdown(r, cmd, sha))
        print(to_markdown(r, cmd, sha))
    print(json.dumps(r))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
