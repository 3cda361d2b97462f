"""Pictures and timings of the generator: contact sheet, landmark scheme figure, benchmark."""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from inference import landmarks as lm
from inference.alignment import femoral_axis, tibial_axis
from training.synth import GENERATOR_VERSION, synthesize, to_unit_float

TILE = (330, 410)  # width, height of one contact-sheet tile


def _tile(seed: int, phase: str, laterality: str | None, both: bool) -> Image.Image:
    r = synthesize(seed, phase=phase, laterality=laterality, both_knees=both, max_side=900)
    u = _display(to_unit_float(r.pixels, r.bits_stored, r.photometric))
    img = Image.fromarray((u * 255.0 + 0.5).astype(np.uint8), mode="L")
    img.thumbnail(TILE, Image.Resampling.LANCZOS)
    tile = Image.new("L", TILE, 0)
    tile.paste(img, ((TILE[0] - img.width) // 2, (TILE[1] - img.height) // 2))
    d = ImageDraw.Draw(tile)
    font = ImageFont.load_default(size=13)
    knees = " ".join(f"{k.laterality} {k.phase} {k.atfa_deg['FTS']:+.1f}°" for k in r.knees)
    label = f"seed {seed}  {knees}  {r.pixels.shape[1]}x{r.pixels.shape[0]}"
    label2 = f"{r.pixel_spacing_mm[0]:.3f} mm  {r.bits_stored} bit  {r.photometric}"
    for i, text in enumerate((label, label2)):
        y = TILE[1] - 34 + 16 * i
        d.rectangle((0, y - 1, TILE[0], y + 15), fill=0)
        d.text((4, y), text, fill=255, font=font)
    return tile


def _display(u: np.ndarray) -> np.ndarray:
    """Window like a viewer's auto-window: stretch the 0.2..99.8 percentiles."""
    lo, hi = np.percentile(u[::4, ::4], [0.2, 99.8])
    return np.clip((u - lo) / max(hi - lo, 1e-6), 0.0, 1.0)


def contact_sheet(out: Path, seed: int = 0) -> None:
    """16 synthetic radiographs, 4 x 4: pre L, pre R, post L, post R (one both-knee image)."""
    out = Path(out)
    cases: list[tuple[str, str | None, bool]] = []
    for phase in ("pre", "post"):
        for side in ("L", "R"):
            cases += [(phase, side, False)] * 4
    cases[7] = ("pre", None, True)
    cases[15] = ("post", None, True)
    sheet = Image.new("L", (TILE[0] * 4 + 3 * 4, TILE[1] * 4 + 3 * 4), 40)
    for i, (phase, lat, both) in enumerate(cases):
        t = _tile(seed + i, phase, lat, both)
        sheet.paste(t, ((i % 4) * (TILE[0] + 4), (i // 4) * (TILE[1] + 4)))
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out, optimize=True)


SUBSETS: dict[str, tuple[str, list[int]]] = {
    "femoral shaft pairs": ("#ff3030", [
        lm.FEMUR_SHAFT_PROXIMAL.medial, lm.FEMUR_SHAFT_PROXIMAL.lateral,
        lm.FEMUR_SHAFT_DISTAL.medial, lm.FEMUR_SHAFT_DISTAL.lateral]),
    "tibial shaft pairs": ("#3080ff", [
        lm.TIBIA_SHAFT_PROXIMAL.medial, lm.TIBIA_SHAFT_PROXIMAL.lateral,
        lm.TIBIA_SHAFT_DISTAL.medial, lm.TIBIA_SHAFT_DISTAL.lateral]),
    "femoral notch pair": ("#c040ff", [lm.FEMUR_NOTCH.medial, lm.FEMUR_NOTCH.lateral]),
    "plateau corners = reference points": ("#ffd000", list(lm.REFERENCE_POINTS)),
}


def landmark_figure(out: Path, seed: int = 7) -> None:
    """Labelled picture of the scheme on a pre-op and a post-op left knee."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(15, 10.5), dpi=100)
    for ax, phase in zip(axes, ("pre", "post"), strict=True):
        r = synthesize(seed, phase=phase, laterality="L", both_knees=False, max_side=1400)
        knee = r.knees[0]
        pts = knee.landmarks
        u = _display(to_unit_float(r.pixels, r.bits_stored, r.photometric))
        u = np.asarray(Image.fromarray((u * 255).astype(np.uint8)).filter(
            ImageFilter.GaussianBlur(1.2)), dtype=np.float32) / 255.0  # smaller PNG
        ax.imshow(u, cmap="gray", vmin=0, vmax=1)
        for name, (a, b) in lm.CURVES.items():
            if b > len(pts):
                continue
            seg = pts[a:b]
            ax.plot(seg[:, 0], seg[:, 1], "-", color="#00e0a0", lw=0.8, alpha=0.8)
            ax.plot(seg[:, 0], seg[:, 1], "o", color="#00e0a0", ms=2.5)
            del name
        for label, (color, idx) in SUBSETS.items():
            ax.plot(pts[idx, 0], pts[idx, 1], "o", color=color, ms=7, mec="k", label=label)
        for method, color in (("FTS", "#ff3030"), ("FNTS", "#c040ff")):
            fa = femoral_axis(pts, method)  # type: ignore[arg-type]
            _draw_axis(ax, fa.proximal, fa.distal, color, f"femoral axis {method}")
        ta = tibial_axis(pts)
        _draw_axis(ax, ta.proximal, ta.distal, "#ff8000", "tibial axis")
        _label_runs(ax, pts, phase)
        q = _frame(ax, pts)
        ax.set_title(f"{phase}-operative left knee: {len(pts)} points  "
                     f"(aTFA FTS {knee.atfa_deg['FTS']:+.1f}°, FNTS {knee.atfa_deg['FNTS']:+.1f}°)")
        x0, y0 = np.minimum(pts.min(axis=0), q.min(axis=0)) - 20
        x1, y1 = np.maximum(pts.max(axis=0), q.max(axis=0)) + 20
        ax.set_xlim(max(x0, 0), min(x1, u.shape[1]))
        ax.set_ylim(min(y1, u.shape[0]), max(y0, 0))
        ax.set_xticks([])
        ax.set_yticks([])
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=4, fontsize=9, frameon=False)
    fig.suptitle("Landmark scheme (inference/landmarks.py); image right = patient's left "
                 "= lateral side of a left knee", fontsize=11)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    img = Image.open(out).convert("RGB")
    img.save(out, optimize=True)


def _draw_axis(ax: Any, p: tuple[float, float], q: tuple[float, float], color: str,
               label: str) -> None:
    a, b = np.asarray(p), np.asarray(q)
    d = b - a
    ext = np.vstack([a - 0.3 * d, b + 1.2 * d])
    ax.plot(ext[:, 0], ext[:, 1], "--", color=color, lw=1.2, label=label)


def _label_runs(ax: Any, pts: np.ndarray, phase: str) -> None:
    """Write the name of each run of points once, beside its middle point."""
    names = lm.names_for(phase)  # type: ignore[arg-type]
    runs: dict[str, list[int]] = {}
    for i, n in enumerate(names):
        base = n.rsplit("_", 1)[0] if n[-1].isdigit() else n
        runs.setdefault(base, []).append(i)
    centre = pts[: lm.N_PRE_OP].mean(axis=0)
    for base, idx in runs.items():
        m = pts[idx[len(idx) // 2]]
        out = m - centre
        out = out / (np.linalg.norm(out) + 1e-9)
        t = m + out * 45
        ax.annotate(f"{base} ({idx[0]}–{idx[-1]})" if len(idx) > 1 else f"{base} ({idx[0]})",
                    xy=m, xytext=t, fontsize=6.5, color="w",
                    ha="left" if out[0] > 0 else "right",
                    arrowprops={"arrowstyle": "-", "color": "w", "lw": 0.5},
                    bbox={"boxstyle": "round,pad=0.15", "fc": "k", "alpha": 0.55, "lw": 0})


def _frame(ax: Any, pts: np.ndarray) -> np.ndarray:
    """Draw the local reference frame of inference.landmarks.REFERENCE_FRAME."""
    spec = lm.REFERENCE_FRAME
    med, lat = pts[lm.PLATEAU_MEDIAL_CORNER], pts[lm.PLATEAU_LATERAL_CORNER]
    w = float(np.linalg.norm(lat - med))
    ex = (lat - med) / w
    ey = np.array([-ex[1], ex[0]])  # perpendicular; make it point distally (down the tibia)
    if ey[1] < 0:
        ey = -ey
    c = 0.5 * (med + lat) - spec.centre_offset * w * ey
    hx, hy = 0.5 * spec.width * w, 0.5 * spec.height * w
    signs = ((-1, -1), (1, -1), (1, 1), (-1, 1), (-1, -1))
    q = np.array([c + sx * hx * ex + sy * hy * ey for sx, sy in signs])
    ax.plot(q[:, 0], q[:, 1], ":", color="#ffd000", lw=1.5, label="local reference frame")
    return q


def bench(out: Path, n_small: int = 200, n_full: int = 10) -> dict[str, Any]:
    """Time ``synthesize`` at max_side=512 and at full size; write a JSON summary."""
    if n_small < 1 or n_full < 1:
        raise ValueError(f"n_small and n_full must be >= 1, got {n_small}, {n_full}")
    synthesize(0, max_side=512)  # warm up imports and caches
    small = []
    for s in range(n_small):
        t = time.perf_counter()
        synthesize(10_000 + s, max_side=512)
        small.append((time.perf_counter() - t) * 1000.0)
    full, sizes = [], []
    for s in range(n_full):
        t = time.perf_counter()
        r = synthesize(20_000 + s)
        full.append((time.perf_counter() - t) * 1000.0)
        sizes.append(max(r.pixels.shape))
    res: dict[str, Any] = {
        "generator_version": GENERATOR_VERSION,
        "training_size_max_side": 512,
        "training_ms_median": round(statistics.median(small), 1),
        "training_ms_mean": round(statistics.fmean(small), 1),
        "training_ms_p95": round(float(np.percentile(small, 95)), 1),
        "full_size_ms_median": round(statistics.median(full), 1),
        "full_size_ms_max": round(max(full), 1),
        "full_size_longest_side_px_median": int(statistics.median(sizes)),
        "n_training": n_small,
        "n_full": n_full,
        "threads": os.environ.get("OMP_NUM_THREADS", "1 (the numpy/scipy ops are serial)"),
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
    }
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2) + "\n")
    return res
