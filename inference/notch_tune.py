"""How the notch gate (:class:`inference.notch.NotchParams`) was chosen, re-runnable.

``python -m inference.notch_tune --data DIR`` measures every knee of a folder written by
``knee-node synth`` (our own generator; a folder of independent renders is refused) once
with the shipped predictor, keeps the network's landmarks and a crop of the normalised
image around the notch, and prints the FNTS MAD per phase without and with the notch
refinement for a range of ``min_contrast`` and ``max_shift`` (the other parameters at their
defaults), the paired difference at the defaults, and how far the network's notch outline
may be off (moved across the shaft by 0-8 % of the plateau width) before the search no
longer brings it back.  The defaults were read off this on
the validation seeds 813,000,000+ (``docs/robustness.md``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import numpy as np
import numpy.typing as npt

from inference import landmarks as lm
from inference import notch
from inference.alignment import atfa


@dataclasses.dataclass(frozen=True)
class TuneKnee:
    """One validation knee: network landmarks and truth in the coordinates of ``crop``."""

    phase: str
    pred: npt.NDArray[np.float64]
    crop: npt.NDArray[np.float32]
    fnts_true: float


def collect(data: Path, threads: int = 1) -> list[TuneKnee]:
    """Measure ``data`` once (network points, no refinement) and keep what tuning needs.

    Raises
    ------
    ValueError
        ``data`` is not a folder, or holds independent renders (``indep_*.dcm``).
    """
    import pydicom

    from inference.predictor import WEIGHTS_DIR, KneePredictor

    if not data.is_dir():
        raise ValueError(f"data must be a folder, got {str(data)!r}")
    if any(p.name.startswith("indep_") for p in data.glob("*.dcm")):
        raise ValueError(f"data {str(data)!r} holds independent renders: they are for "
                         "measuring only, never for choosing the gate")
    pred = KneePredictor.from_weights_dir(WEIGHTS_DIR, num_threads=threads,
                                          notch_refinement="off")
    out: list[TuneKnee] = []
    for path in sorted(data.glob("*.dcm")):
        if not path.with_suffix(".json").exists():
            continue
        truth = json.loads(path.with_suffix(".json").read_text())
        px = pred.preprocess(pydicom.dcmread(path))
        cands, tim = pred.predict(px.image)
        ms = pred.postprocess(cands, px.image.shape, px.pixel_spacing_mm,
                              px.image_laterality, tim)
        for k in truth.get("knees") or [truth]:
            t = np.asarray(k["landmarks"], float)
            mid = t[list(lm.REFERENCE_POINTS)].mean(axis=0)
            best = min(ms, key=lambda m: float(np.linalg.norm(
                m.landmarks[list(lm.REFERENCE_POINTS)].mean(axis=0) - mid)))
            p = best.landmarks
            w = lm.plateau_width(p)
            if np.linalg.norm(p[list(lm.REFERENCE_POINTS)].mean(axis=0) - mid) > w:
                continue  # the other knee of a two-knee image was not found
            c = p[notch.NOTCH_ROOF]
            r = int(0.8 * w)
            x0, y0 = max(int(c[0]) - r, 0), max(int(c[1]) - r, 0)
            crop = np.ascontiguousarray(px.image[y0:int(c[1]) + r, x0:int(c[0]) + r],
                                        dtype=np.float32)
            out.append(TuneKnee(best.phase, p - [x0, y0], crop, float(k["atfa_deg"]["FNTS"])))
    return out


def fnts_mad(knees: list[TuneKnee], params: notch.NotchParams, phase: str
             ) -> tuple[float, float, int, npt.NDArray[np.float64]]:
    """FNTS MAD without and with the refinement, knees moved, paired |error| differences."""
    e0, e1, moved = [], [], 0
    for k in knees:
        if k.phase != phase:
            continue
        q = notch.refine_notch_pair(k.crop, k.pred, params, phase=phase)
        moved += not np.array_equal(q, k.pred)
        e0.append(abs(atfa(k.pred, "FNTS") - k.fnts_true))
        e1.append(abs(atfa(q, "FNTS") - k.fnts_true))
    a, b = np.asarray(e0), np.asarray(e1)
    return float(a.mean()), float(b.mean()), moved, b - a


def displaced(knees: list[TuneKnee], frac: float, params: notch.NotchParams = notch.DEFAULT_PARAMS
              ) -> tuple[float, float, int, int]:
    """Pre-operative FNTS MAD with the network's whole notch outline moved ``frac`` plateau
    widths across the shaft, before and after the refinement; knees refined, knees."""
    outline = [lm.idx(f"femur_notch_{i}") for i in range(9)]
    e0, e1, moved, n = [], [], 0, 0
    for k in knees:
        if k.phase != "pre":
            continue
        frame = notch._frame(k.pred)
        if frame is None:
            continue
        q0 = k.pred.copy()
        q0[outline] += frac * lm.plateau_width(q0) * frame[1]
        q1 = notch.refine_notch_pair(k.crop, q0, params, phase="pre")
        moved += not np.array_equal(q1, q0)
        n += 1
        e0.append(abs(atfa(q0, "FNTS") - k.fnts_true))
        e1.append(abs(atfa(q1, "FNTS") - k.fnts_true))
    return float(np.mean(e0)), float(np.mean(e1)), moved, n


def main(argv: list[str] | None = None) -> None:
    """Print the table the defaults were read from."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    knees = collect(args.data, args.threads)
    every = ("pre", "post")
    for mc in (0.0, 2.0, 4.0, 6.0, 8.0, 12.0, 16.0):
        for ms in (0.01, 0.02, 0.03):
            p = notch.NotchParams(min_contrast=mc, max_shift=ms, phases=every)
            cells = []
            for ph in every:
                m0, m1, moved, _ = fnts_mad(knees, p, ph)
                cells.append(f"{ph} {m0:.3f} -> {m1:.3f} ({moved} moved)")
            print(f"min_contrast {mc:4.1f} max_shift {ms:.2f}: " + ", ".join(cells))
    for ph in every:
        _, _, _, d = fnts_mad(knees, dataclasses.replace(notch.DEFAULT_PARAMS, phases=every),
                             ph)
        rng = np.random.default_rng(0)
        boot = [rng.choice(d, len(d)).mean() for _ in range(2000)]
        lo, hi = np.percentile(boot, [2.5, 97.5])
        print(f"defaults, {ph}: better {(d < 0).sum()}, worse {(d > 0).sum()}, "
              f"mean change of |error| {d.mean():+.3f} deg [95 % bootstrap {lo:+.3f}, {hi:+.3f}]")
    for pct in (0, 1, 2, 3, 4, 6, 8):
        m0, m1, moved, n = displaced(knees, pct / 100.0)
        print(f"outline moved {pct} % of w across: pre FNTS MAD {m0:.3f} -> {m1:.3f} "
              f"({moved} of {n} refined)")


if __name__ == "__main__":
    main()
