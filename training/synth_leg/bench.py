"""Speed of the full-leg generator: ``python -m training.synth_leg.bench``.

Prints and writes (``benchmarks/synth_leg.json``):

* per-joint training crop (:func:`training.synth_leg.render_joint_crop`; 512 x 512, the
  papers' ROI size, and 256 x 256): median and p95 milliseconds, wall clock and process
  CPU time, on one core (the generator is single-threaded numpy/scipy; BLAS/OpenMP threads
  are set to 1);
* full 2800 x 8100 DICOM (``plan_study(full_size=True)``, render, dataset, Explicit VR Little
  Endian file written): seconds per file, split into plan, render, dataset and write.

The machine's load average is recorded before and after, since other processes share it.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402


def _stats(values: list[float], scale: float) -> dict[str, float]:
    a = np.asarray(values) * scale
    return {"median": round(float(np.median(a)), 3), "p95": round(float(np.percentile(a, 95)), 3),
            "min": round(float(a.min()), 3), "n": int(a.size)}


def run(crops: int = 60, full: int = 2, seed: int = 900_000_000, size: int = 512,
        output: Path | None = Path("benchmarks/synth_leg.json")) -> dict[str, Any]:
    """Time ``crops`` joint crops and ``full`` full-size DICOM files; return the figures."""
    from training.synth_dicom.dataset import DicomChoice
    from training.synth_dicom.encode import write
    from training.synth_dicom.full_leg import to_full_leg_dataset
    from training.synth_leg import (
        FULL_LEG_GENERATOR_VERSION,
        JOINTS,
        plan_study,
        render_full,
        render_joint_crop,
    )

    load_before = [round(v, 2) for v in os.getloadavg()]
    crop_figures: dict[str, Any] = {}
    for sz in dict.fromkeys((size, 256)):
        wall, cpu = [], []
        render_joint_crop(plan_study(seed), "R", "knee", sz)  # warm-up (imports, caches)
        k = 0
        while k < crops:
            st = plan_study(seed + 1 + k // 6)
            for side in ("R", "L"):
                for joint in JOINTS:
                    if k >= crops:
                        break
                    t0, c0 = time.perf_counter(), time.process_time()
                    render_joint_crop(st, side, joint, sz)
                    wall.append(time.perf_counter() - t0)
                    cpu.append(time.process_time() - c0)
                    k += 1
        crop_figures[str(sz)] = {"size": [sz, sz], "wall": _stats(wall, 1000.0),
                                 "cpu": _stats(cpu, 1000.0)}
    parts: dict[str, list[float]] = {"plan": [], "render": [], "dataset": [], "write": [],
                                     "total": [], "total_cpu": []}
    shapes = []
    with tempfile.TemporaryDirectory(prefix="leg-bench-") as tmp:
        for i in range(full):
            c0 = time.process_time()
            t0 = time.perf_counter()
            st = plan_study(seed + 500 + i, full_size=True)
            t1 = time.perf_counter()
            r = render_full(st)
            t2 = time.perf_counter()
            ds = to_full_leg_dataset(r, DicomChoice("DX"), FULL_LEG_GENERATOR_VERSION)
            t3 = time.perf_counter()
            write(ds, Path(tmp) / f"full_{i}.dcm", "explicit")
            t4 = time.perf_counter()
            shapes.append(list(r.pixels.shape))
            for key, v in (("plan", t1 - t0), ("render", t2 - t1), ("dataset", t3 - t2),
                           ("write", t4 - t3), ("total", t4 - t0),
                           ("total_cpu", time.process_time() - c0)):
                parts[key].append(v)
    result: dict[str, Any] = {
        "command": f"python -m training.synth_leg.bench --crops {crops} --full {full} "
                   f"--seed {seed} --size {size}",
        "generator_version": FULL_LEG_GENERATOR_VERSION,
        "joint_crop_ms": crop_figures[str(size)],
        "joint_crop_ms_by_size": crop_figures,
        "full_dicom_s": {"shape": shapes, "syntax": "explicit",
                         **{k: _stats(v, 1.0) for k, v in parts.items()}},
        "threads": 1,
        "machine": {"platform": platform.platform(), "python": platform.python_version(),
                    "processor": platform.processor() or platform.machine(),
                    "cpus": os.cpu_count()},
        "load_average_before": load_before,
        "load_average_after": [round(v, 2) for v in os.getloadavg()],
        "when_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    fd = result["full_dicom_s"]
    for key, fig in crop_figures.items():
        print(f"joint crop {key}x{key}: median {fig['wall']['median']:.1f} ms wall, "
              f"{fig['cpu']['median']:.1f} ms CPU (p95 {fig['wall']['p95']:.1f} ms wall), "
              f"n={fig['wall']['n']}")
    print(f"full DICOM {shapes[0][1]}x{shapes[0][0]}: median {fd['total']['median']:.2f} s "
          f"(render {fd['render']['median']:.2f} s, write {fd['write']['median']:.2f} s), "
          f"CPU {fd['total_cpu']['median']:.2f} s")
    print(f"load average before {load_before}, after {result['load_average_after']}")
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {output}")
    return result


def main(argv: list[str] | None = None) -> None:
    """Command line of the benchmark."""
    ap = argparse.ArgumentParser(prog="python -m training.synth_leg.bench",
                                 description=__doc__.splitlines()[0])
    ap.add_argument("--crops", type=int, default=60, help="joint crops to time")
    ap.add_argument("--full", type=int, default=2, help="full-size DICOM files to time")
    ap.add_argument("--seed", type=int, default=900_000_000)
    ap.add_argument("--size", type=int, default=512, help="crop side in pixels")
    ap.add_argument("--output", type=Path, default=Path("benchmarks/synth_leg.json"))
    a = ap.parse_args(argv)
    if a.crops < 1 or a.full < 1:
        ap.error("--crops and --full must be >= 1")
    run(a.crops, a.full, a.seed, a.size, a.output)


if __name__ == "__main__":
    main()
