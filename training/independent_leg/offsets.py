"""``python -m training.independent_leg.offsets --data DIR``: systematic landmark offsets.

A diagnostic beside :mod:`training.leg_evaluate`: the shipped hourglass is run on crops
centred on the *true* joint centres (no jitter, no ROI stage) and each landmark's error is
split into its mean component along the leg (``distal``: hip -> ankle) and across it
(``lateral``), in patient mm. A large mean means the method puts the point at a fixed
offset from where this renderer defines it (a different landmark convention, or a learned
prior), which an angle may or may not feel (an ankle point moved along the tibial axis changes
no angle). Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from inference.leg import landmarks as leg

NAMES = ("femoral_head_centre", "condyle_medial_distal", "condyle_lateral_distal",
         "plateau_medial", "plateau_lateral", "knee_centre", "malleolus_medial",
         "malleolus_lateral")


def offsets(data: Path, weights: Path, limit: int | None = None) -> dict[str, Any]:
    """Mean lateral / distal offset (mm) and median error of each core landmark."""
    from inference.leg_models import load_method
    from training.leg_evaluate import ROI_CENTRE, ROI_MM, cut_region, load_instance

    method = load_method(weights)
    found: dict[str, list[tuple[float, float]]] = {n: [] for n in NAMES}
    files = sorted(data.glob("full_leg_*.dcm"))[:limit]
    for f in files:
        inst = load_instance(f)
        mpp = inst.spacing_mm / float(inst.truth["magnification"])
        for lt in inst.truth["legs"]:
            side, pts = str(lt["side"]), np.asarray(lt["landmarks"], dtype=np.float64)
            dist = pts[leg.ANKLE_CENTRE] - pts[leg.FEMORAL_HEAD_CENTRE]
            dist /= np.linalg.norm(dist)
            lat = np.array([dist[1], -dist[0]])
            if np.dot(lat, pts[leg.CONDYLE_LATERAL] - pts[leg.CONDYLE_MEDIAL]) < 0:
                lat = -lat
            for joint in ("hip", "knee", "ankle"):
                c = pts[leg.idx(ROI_CENTRE[joint])]
                side_px = ROI_MM[joint] / mpp
                x0, y0 = c[0] - 0.5 * side_px, c[1] - 0.5 * side_px
                crop = cut_region(inst.pixels, x0, y0, side_px, method.input_size)
                p = method.postprocess(method.predict(method.preprocess(crop, side)), joint, side)
                for n, q in zip(p.names, p.points, strict=True):
                    if n in found:
                        d = (np.array([x0, y0]) + q * side_px / method.input_size
                             - pts[leg.idx(n)]) * mpp
                        found[n].append((float(d @ lat), float(d @ dist)))
    out: dict[str, Any] = {"data": str(data), "n_files": len(files), "landmarks": {}}
    for n, v in found.items():
        a = np.asarray(v)
        out["landmarks"][n] = {"n": len(a), "mean_lateral_mm": round(float(a[:, 0].mean()), 2),
                               "mean_distal_mm": round(float(a[:, 1].mean()), 2),
                               "median_error_mm": round(float(np.median(np.hypot(*a.T))), 2)}
    return out


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    import torch

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--weights", type=Path, default=Path("inference/weights/full_leg_hourglass.pt"))
    ap.add_argument("--limit", type=int, default=None)
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    print(json.dumps(offsets(a.data, a.weights, a.limit)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
