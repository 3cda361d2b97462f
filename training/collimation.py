"""Shafts cut off by the collimation: make such images and measure the shaft check.

``python -m training.collimation --seed S --count N --out FILE.json`` renders ``N`` knees
(one per image) from seeds ``S .. S+N-1`` and measures each with the shipped predictor
three times: as rendered (**uncut**), with the distal tibial shaft blanked (**tibia cut**)
and with the proximal femoral shaft blanked (**femur cut**).  A cut is a collimator blade
parallel to the image rows (:func:`cut_shaft`): everything beyond it is set to the
unexposed level (white, or black as some processing shows it) with a little noise and a
penumbra; it lies between the bone's two axis levels of the *true* landmarks, so the far
level's true cortex points are inside the blanked part.

The report (printed, and written as JSON with the per-knee records) gives, for each
variant, how many knees the shaft check flags (the problem
:data:`inference.quality.SHAFT_NOT_VISIBLE`), how many are flagged at all, the largest
aTFA error of a knee that passes, and the range of the lowest shaft contrast
(:func:`inference.shaft_evidence.shaft_contrast`).
``python -m training.independent.collimation`` does the same on :mod:`training.independent`
renders (read only: for reporting, never for choosing the threshold).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from inference import landmarks as lm
from inference.alignment import METHODS

FloatArray = npt.NDArray[np.float64]


class CutBone(StrEnum):
    """Which shaft a cut blanks: the distal tibia or the proximal femur."""

    TIBIA = "tibia"
    FEMUR = "femur"


class Fill(StrEnum):
    """Level of the blanked part: unexposed (white, bone bright) or black."""

    WHITE = "white"
    BLACK = "black"


#: Variants measured per knee, in report order (None = uncut).
VARIANTS: tuple[CutBone | None, ...] = (None, CutBone.TIBIA, CutBone.FEMUR)


def cut_level(landmarks: npt.ArrayLike, bone: CutBone | str, depth: float) -> float:
    """Row of the blade: ``depth`` (0-1) of the way from the near to the far axis level.

    For the tibia the near level is :data:`inference.landmarks.TIBIA_SHAFT_PROXIMAL` and the
    far one ``TIBIA_SHAFT_DISTAL``; for the femur near = ``FEMUR_SHAFT_DISTAL``, far =
    ``FEMUR_SHAFT_PROXIMAL``.
    """
    if not 0.0 < depth < 1.0:
        raise ValueError(f"depth must be in (0, 1), got {depth}")
    pts = np.asarray(landmarks, dtype=np.float64)
    near, far = ((lm.TIBIA_SHAFT_PROXIMAL, lm.TIBIA_SHAFT_DISTAL) if CutBone(bone) is CutBone.TIBIA
                 else (lm.FEMUR_SHAFT_DISTAL, lm.FEMUR_SHAFT_PROXIMAL))
    y_near = 0.5 * (pts[near.medial, 1] + pts[near.lateral, 1])
    y_far = 0.5 * (pts[far.medial, 1] + pts[far.lateral, 1])
    return float(y_near + depth * (y_far - y_near))


def cut_shaft(image: npt.ArrayLike, landmarks: npt.ArrayLike, bone: CutBone | str,
              depth: float = 0.5, fill: Fill | str = Fill.WHITE,
              rng: np.random.Generator | None = None,
              penumbra_px: float = 2.0) -> npt.NDArray[np.float32]:
    """``image`` (bone bright, any range) with the shaft beyond a collimator blade blanked.

    Parameters
    ----------
    image
        ``(rows, cols)`` image, bone bright.
    landmarks
        True ``(N, 2)`` landmarks of the knee (x = column, y = row), which must be upright
        (femur above the tibia, as every generator image is).
    bone
        ``"tibia"`` blanks the rows below the blade, ``"femur"`` the rows above it.
    depth
        Where the blade lies between the bone's two axis levels (:func:`cut_level`).
    fill
        ``"white"``: the image's 99.9th percentile (unexposed); ``"black"``: its 0.1th.
    rng
        For the noise on the blanked part (0.5 % of the image's range); None = no noise.
    penumbra_px
        Gaussian sigma of the blade's edge.
    """
    img = np.asarray(image, dtype=np.float32)
    if img.ndim != 2:
        raise ValueError(f"image must be 2-D, got shape {img.shape}")
    pts = np.asarray(landmarks, dtype=np.float64)
    y = cut_level(pts, bone, depth)
    rows = np.arange(img.shape[0], dtype=np.float64)[:, None]
    blank = (rows > y) if CutBone(bone) is CutBone.TIBIA else (rows < y)
    mask = np.broadcast_to(blank, img.shape).astype(np.float32)
    if penumbra_px > 0:
        mask = ndimage.gaussian_filter1d(mask, penumbra_px, axis=0)
    lo, hi = np.percentile(img[::4, ::4], [0.1, 99.9])
    level = np.full(img.shape, hi if Fill(fill) is Fill.WHITE else lo, dtype=np.float32)
    if rng is not None:
        level += np.float32(0.005 * (hi - lo)) * rng.standard_normal(img.shape, dtype=np.float32)
    return (img * (1.0 - mask) + level * mask).astype(np.float32)


@dataclass(frozen=True)
class Render:
    """One knee image with its truth, from either renderer."""

    image: npt.NDArray[np.float32]
    spacing: tuple[float, float]
    landmarks: FloatArray
    atfa_true: dict[str, float]


#: Knee renderers other than ours, registered by their own packages (evaluation only).
RENDERERS: dict[str, Any] = {}


def render(renderer: str, seed: int, max_side: int) -> Render:
    """The knee of ``seed`` from ``"synth"`` (ours) or ``"independent"``."""
    from inference.pixels import stored_to_image

    if renderer == "synth":
        from training.synth import synthesize

        r = synthesize(seed, both_knees=False, max_side=max_side)
        k = r.knees[0]
        return Render(stored_to_image(r.pixels, r.photometric), r.pixel_spacing_mm,
                      np.asarray(k.landmarks, float), dict(k.atfa_deg))
    if renderer == "independent":
        # the independent renderer registers itself (training.independent.collimation):
        # training code never imports it
        fn = RENDERERS.get("independent")
        if fn is not None:
            return fn(seed, max_side)
        raise ValueError("renderer 'independent': run python -m training.independent.collimation")
    raise ValueError(f"renderer must be 'synth' or 'independent', got {renderer!r}")


def measure_knee(predictor: Any, rec: Render, seed: int) -> list[dict[str, Any]]:
    """One record per variant (:data:`VARIANTS`) of one knee."""
    from inference.quality import SHAFT_NOT_VISIBLE

    rng = np.random.default_rng([seed, 77])
    out = []
    for bone in VARIANTS:
        row: dict[str, Any] = {"seed": seed, "cut": "none" if bone is None else str(bone)}
        img = rec.image
        if bone is not None:
            depth = float(rng.uniform(0.2, 0.8))
            fill = Fill.WHITE if rng.uniform() < 0.7 else Fill.BLACK
            img = cut_shaft(img, rec.landmarks, bone, depth=depth, fill=fill, rng=rng)
            row.update(depth=round(depth, 3), fill=str(fill))
        ms = predictor.measure_array(img, rec.spacing)
        m = ms[0]
        reasons = [str(x) for x in m.flag_reasons]
        row.update(
            n_found=len(ms), quality=m.quality, confidence=round(float(m.confidence), 4),
            shaft_flag=any(x.startswith(SHAFT_NOT_VISIBLE) for x in reasons),
            reasons=reasons,
            error_deg={k: round(float(m.atfa_deg[k] - rec.atfa_true[k]), 3) for k in METHODS},
            shaft_contrast=_contrast_of(predictor, img, m.landmarks),
        )
        out.append(row)
    return out


def _contrast_of(predictor: Any, image: npt.NDArray[np.float32],
                 landmarks: FloatArray) -> dict[str, float]:
    from inference.pixels import normalize_intensity
    from inference.shaft_evidence import shaft_contrast

    c = shaft_contrast(normalize_intensity(image), landmarks)
    return {k: round(v, 5) for k, v in c.items()}


def suggested_threshold(records: list[dict[str, Any]]) -> float | None:
    """The rule the default ``min_shaft_contrast`` was chosen by (our generator only).

    The geometric mean of the smallest lowest-line contrast of an uncut knee and the 95th
    percentile of the absolute lowest-line contrast of the cut knees (tibia and femur
    pooled; the percentile leaves out the few cuts whose far axis points the network put
    on the cortex still visible), to 2 significant figures.  None without both kinds or
    when they overlap.
    """
    un = [min(r["shaft_contrast"].values()) for r in records if r["cut"] == "none"]
    cut = [abs(min(r["shaft_contrast"].values())) for r in records if r["cut"] != "none"]
    if not un or not cut:
        return None
    lo, hi = float(np.percentile(cut, 95)), float(min(un))
    if not 0 < lo < hi:
        return None
    return float(f"{np.sqrt(lo * hi):.2g}")


def summarise(records: list[dict[str, Any]], threshold: float) -> dict[str, Any]:
    """Per variant: counts flagged by the shaft check / at all, passing errors, contrasts."""
    out: dict[str, Any] = {"threshold": threshold,
                           "suggested_threshold": suggested_threshold(records)}
    for cut in ("none", "tibia", "femur"):
        rs = [r for r in records if r["cut"] == cut]
        if not rs:
            continue
        cmin = np.array([min(r["shaft_contrast"].values()) for r in rs])
        passed = [r for r in rs if r["quality"] == "pass"]
        err = [abs(r["error_deg"][m]) for r in rs for m in METHODS]
        perr = [abs(r["error_deg"][m]) for r in passed for m in METHODS]
        out[cut] = {
            "n": len(rs),
            "shaft_flagged": int(sum(r["shaft_flag"] for r in rs)),
            "below_threshold": int((cmin < threshold).sum()),
            "flagged": int(sum(r["quality"] == "flag" for r in rs)),
            "max_error_deg": round(max(err), 3),
            "max_passing_error_deg": round(max(perr), 3) if perr else None,
            "passing_over_2_5_deg": int(sum(e > 2.5 for e in perr)),
            "min_contrast_range": [round(float(cmin.min()), 5), round(float(cmin.max()), 5)],
            "min_contrast_median": round(float(np.median(cmin)), 5),
        }
    return out


def table(summary: dict[str, Any]) -> str:
    """The summary as a markdown table."""
    lines = ["| variant | n | shaft_not_visible | flagged (any reason) | lowest line contrast "
             "min / median / max | max error of a passing knee (deg) | passing > 2.5 deg |",
             "|---|---|---|---|---|---|---|"]
    for cut in ("none", "tibia", "femur"):
        g = summary.get(cut)
        if g is None:
            continue
        lo, hi = g["min_contrast_range"]
        lines.append(f"| {cut} | {g['n']} | {g['shaft_flagged']} | {g['flagged']} | "
                     f"{lo:.4f} / {g['min_contrast_median']:.4f} / {hi:.4f} | "
                     f"{g['max_passing_error_deg']} | {g['passing_over_2_5_deg']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m training.collimation", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--renderer", choices=("synth", "independent"), default="synth")
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--count", type=int, default=40)
    ap.add_argument("--max-side", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, required=True, help="JSON with summary and records")
    a = ap.parse_args(argv)
    if a.count < 1:
        ap.error("--count must be >= 1")
    from inference.predictor import KneePredictor

    predictor = KneePredictor.from_shipped_weights(num_threads=a.threads)
    records: list[dict[str, Any]] = []
    for i in range(a.count):
        seed = a.seed + i
        records += measure_knee(predictor, render(a.renderer, seed, a.max_side), seed)
        print(f"{seed}: " + ", ".join(
            f"{r['cut']} {min(r['shaft_contrast'].values()):.4f}"
            f"{' FLAG' if r['shaft_flag'] else ''}" for r in records[-3:]),
            file=sys.stderr, flush=True)
    summary = summarise(records, predictor.thresholds.min_shaft_contrast)
    command = "python -m training.collimation " + " ".join(sys.argv[1:] if argv is None else argv)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps({"command": command, "renderer": a.renderer,
                                 "summary": summary, "records": records}, indent=1) + "\n")
    print(f"`{command}`\n\nthreshold {summary['threshold']} (suggested by this run's "
          f"images: {summary['suggested_threshold']})\n\n{table(summary)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
