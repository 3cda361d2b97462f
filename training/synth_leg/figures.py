"""Pictures of the full-leg generator for ``docs/``: ``python -m training.synth_leg.figures``.

* ``docs/full_leg_contact_sheet.png`` -- 8 full-leg images (previews of seeds 0-7);
* ``docs/full_leg_landmarks.png`` -- the landmark scheme on one image, with zooms of the hip,
  knee and ankle of the right leg and paper 001's image-side names.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from inference.leg import landmarks as leg
from training.synth.types import to_unit_float
from training.synth_leg import FullLegRadiograph, plan_study, render_full

PREVIEW_ROWS = 1800


def _display(r: FullLegRadiograph) -> np.ndarray:
    u = to_unit_float(r.pixels, r.bits_stored, r.photometric)
    lo, hi = np.percentile(u[::4, ::4], [1.0, 99.7])
    return np.clip((u - lo) / max(hi - lo, 1e-6), 0.0, 1.0)


def contact_sheet(out: Path, seeds: tuple[int, ...] = tuple(range(8))) -> None:
    """8 full-leg previews side by side, captioned with seed, CPAK classes and hard cases."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(seeds), figsize=(2.1 * len(seeds), 6.4), dpi=110)
    for ax, seed in zip(axes, seeds, strict=True):
        r = render_full(plan_study(seed, max_rows=PREVIEW_ROWS))
        ax.imshow(_display(r), cmap="gray", vmin=0, vmax=1)
        cp = "/".join(str(lt.cpak_class) for lt in r.legs)
        hka = "/".join(f"{lt.measurements['HKA_deg']:+.0f}" for lt in r.legs)
        hard = ", ".join(r.study.hard_cases[:2]) or "-"
        ax.set_title(f"seed {seed}\nCPAK {cp}, HKA {hka}\n{hard}", fontsize=6.5)
        ax.axis("off")
    fig.suptitle("Synthetic bilateral standing AP full-leg radiographs (training.synth_leg); "
                 "right leg on the image left; CPAK and HKA per leg (R/L)", fontsize=8)
    fig.tight_layout(rect=(0.0, 0.0, 1.0, 0.95))
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)


def _draw_leg(ax: Any, pts: np.ndarray, labels: bool, side: str, fs: float) -> None:
    p = pts
    ax.plot(*p[[leg.FEMORAL_HEAD_CENTRE, leg.KNEE_CENTRE]].T, "-", color="tab:red", lw=0.8)
    ax.plot(*p[[leg.KNEE_CENTRE, leg.ANKLE_CENTRE]].T, "-", color="tab:orange", lw=0.8)
    ax.plot(*p[[leg.DIAPHYSIS_CENTRE, leg.KNEE_CENTRE]].T, "--", color="tab:pink", lw=0.8)
    ax.plot(*p[[leg.CONDYLE_MEDIAL, leg.CONDYLE_LATERAL]].T, "-", color="tab:cyan", lw=0.8)
    ax.plot(*p[[leg.PLATEAU_MEDIAL, leg.PLATEAU_LATERAL]].T, "-", color="tab:green", lw=0.8)
    ax.plot(*p[[leg.MALLEOLUS_MEDIAL, leg.MALLEOLUS_LATERAL]].T, "-", color="tab:olive", lw=0.8)
    h0, h1 = leg.CURVES["femoral_head"]
    ax.plot(*np.vstack([p[h0:h1], p[h0:h0 + 1]]).T, ".-", color="yellow", lw=0.5, ms=2)
    d0, d1 = leg.CURVES["femoral_diaphysis"]
    ax.plot(*np.vstack([p[d0:d1], p[d0:d0 + 1]]).T, ".-", color="violet", lw=0.5, ms=2)
    for pair in (leg.FEMUR_SHAFT_PROXIMAL, leg.FEMUR_SHAFT_DISTAL, leg.TIBIA_SHAFT_PROXIMAL,
                 leg.TIBIA_SHAFT_DISTAL):
        ax.plot(*p[[pair.medial, pair.lateral]].T, "s-", color="deepskyblue", lw=0.6, ms=2)
    ax.plot(*p[: leg.N_CORE].T, "o", color="red", ms=2.5, mec="white", mew=0.3)
    if not labels:
        return
    paper = {v: k for k, v in leg.image_side_names(side).items()}  # type: ignore[arg-type]
    for i, name in enumerate(leg.CORE_NAMES):
        tag = f"{i} {name}" + (f" ({paper[name]})" if name in paper else "")
        lateral = "lateral" in name
        ax.annotate(tag, p[i], xytext=(-6 if lateral else 6, -4 if i % 2 else 5),
                    textcoords="offset points", fontsize=fs, color="white",
                    ha="right" if lateral else "left",
                    bbox={"boxstyle": "round,pad=0.15", "fc": "black", "alpha": 0.6, "lw": 0})


def landmark_figure(out: Path, seed: int = 10) -> None:
    """The scheme on one image: the whole study and zooms of the right leg's joints."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    st = plan_study(seed, max_rows=2400, post_op="none", stitching=False)
    r = render_full(st)
    img = _display(r)
    fig = plt.figure(figsize=(11.5, 8.2), dpi=120)
    gs = fig.add_gridspec(3, 3, width_ratios=[1.0, 1.6, 1.6])
    ax0 = fig.add_subplot(gs[:, 0])
    ax0.imshow(img, cmap="gray", vmin=0, vmax=1)
    for lt in r.legs:
        _draw_leg(ax0, lt.landmarks, False, lt.side, 5)
    ax0.set_title(f"seed {seed}: right leg on the image left", fontsize=8)
    ax0.axis("off")
    right = r.legs[0]
    spans = {"hip": leg.FEMORAL_HEAD_CENTRE, "knee": leg.KNEE_CENTRE, "ankle": leg.ANKLE_CENTRE}
    half = {"hip": 95.0, "knee": 85.0, "ankle": 60.0}
    for row, (joint, i) in enumerate(spans.items()):
        ax = fig.add_subplot(gs[row, 1:])
        c = right.landmarks[i]
        h = half[joint] / st.mm_per_px
        ax.imshow(img, cmap="gray", vmin=0, vmax=1)
        _draw_leg(ax, right.landmarks, True, "R", 6.5)
        ax.set_xlim(c[0] - 1.9 * h, c[0] + 1.9 * h)
        ax.set_ylim(c[1] + h, c[1] - h)
        ax.set_title(f"right leg, {joint} (names anatomical; paper 001's image-side names "
                     "in brackets)", fontsize=7.5)
        ax.axis("off")
    fig.suptitle("Full-leg landmark scheme (inference.leg.landmarks): red = femoral mechanical "
                 "axis, orange = tibial mechanical axis, pink dashed = femoral anatomical axis "
                 "(FVA), cyan/green = condylar/plateau lines, blue = shaft cortex pairs (aTFA), "
                 "yellow = head outline, violet = diaphysis outline", fontsize=7, wrap=True)
    fig.tight_layout(rect=(0.0, 0.0, 1.0, 0.95))
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    """Write both pictures (default into ``docs/``)."""
    ap = argparse.ArgumentParser(prog="python -m training.synth_leg.figures")
    ap.add_argument("--out-dir", type=Path, default=Path("docs"))
    a = ap.parse_args(argv)
    contact_sheet(a.out_dir / "full_leg_contact_sheet.png")
    landmark_figure(a.out_dir / "full_leg_landmarks.png")
    print(f"wrote {a.out_dir / 'full_leg_contact_sheet.png'} and "
          f"{a.out_dir / 'full_leg_landmarks.png'}")


if __name__ == "__main__":
    main()
