"""``knee-node bench-model --kind full-leg``: seconds and peak memory per bilateral study.

1. A first Python process (``python -m inference.bench_full_leg render``) renders ``count``
   synthetic bilateral full-leg DICOM studies with the project's generator
   (:func:`training.synth_dicom.full_leg.make_full_leg_instance`, the instances
   ``knee-node synth --kind full-leg`` writes: Explicit VR Little Endian, presentation DX or CR
   drawn from the seed, seeds from 990,000,000 like the hold-out) into a temporary folder (not
   timed).
2. A second, fresh process (``python -m inference.bench_full_leg measure FILE...``) loads the
   shipped :class:`inference.leg.predictor.FullLegPredictor` with ``threads`` torch threads,
   measures the first study once untimed (warm-up), then times every study:
   ``pydicom.dcmread`` of the file plus :meth:`FullLegPredictor.measure` (pixel read, ROI,
   both legs' landmarks, shaft points, geometry), each from a freshly read dataset (no cached
   pixel array).
3. Peak RSS is the measuring process's ``getrusage(RUSAGE_SELF).ru_maxrss`` at the end: its
   whole high-water mark (interpreter, torch, the predictor, one study's arrays), not a
   difference. Linux carries a process's ``ru_maxrss`` over ``fork`` + ``exec`` from the
   parent's peak, which is why the render runs in a process of its own: the parent that
   spawns the measuring process stays small (its peak is recorded beside, as
   ``parent_peak_rss_mb``), and ``VmHWM`` of ``/proc/self/status`` (the process's own memory
   map, not inherited) is recorded as a cross-check.

Figures are written as JSON; the last line the command prints is the same JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from inference.bench_kinds import BenchError, BenchOptionError

if TYPE_CHECKING:
    from inference.bench_kinds import BenchRequest

#: Issue 13's targets: mean seconds per bilateral study at 2 threads, peak RSS (MiB, 1.5 GiB).
TARGET_SECONDS = 1.5
TARGET_RSS_MB = 1536.0
#: Default transfer syntax, as ``knee-node synth --kind full-leg``; "mixed" draws it per seed.
DEFAULT_SYNTAX = "explicit"
MIXED = "mixed"
#: The repository root, put first on the measuring process's ``PYTHONPATH``.
_ROOT = Path(__file__).resolve().parents[1]
#: Environment variables that change how the torch threads wait and share the CPU; recorded.
THREAD_ENV: tuple[str, ...] = ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT",
                               "MKL_NUM_THREADS")


def _stats(values: list[float], digits: int = 3) -> dict[str, float]:
    """Mean, median, p95, min and max of ``values``, rounded."""
    a = np.asarray(values, dtype=float)
    return {"mean": round(float(a.mean()), digits), "median": round(float(np.median(a)), digits),
            "p95": round(float(np.percentile(a, 95)), digits), "min": round(float(a.min()), digits),
            "max": round(float(a.max()), digits)}


def _rss_mb() -> float:
    """This process's peak resident set size so far (``ru_maxrss``), MiB (Linux gives KiB)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _vm_hwm_mb() -> float | None:
    """``VmHWM`` of ``/proc/self/status`` (peak RSS of this process's own memory map), MiB;
    None where there is no such file."""
    try:
        text = Path("/proc/self/status").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return None


def render_studies(out_dir: Path, count: int, seed: int, *, max_rows: int | None = None,
                   full_size: bool = False, syntax: str | None = DEFAULT_SYNTAX,
                   modality: str | None = None) -> list[dict[str, Any]]:
    """Write ``count`` full-leg instances (seeds ``seed ..``) to ``out_dir``.

    Parameters
    ----------
    out_dir
        Folder for ``full_leg_<seed>.dcm`` (and its truth ``.json``).
    count, seed
        Number of studies and the first seed.
    max_rows, full_size
        Passed to the generator (:func:`training.synth_leg.study.plan_study`).
    syntax
        Transfer syntax name; None draws it from the seed.
    modality
        ``DX`` or ``CR``; None draws it from the seed.

    Returns
    -------
    list of dict
        Per study: ``seed``, ``file``, ``shape`` (rows, columns), ``syntax``, ``legs`` (2).
    """
    from training.synth_dicom.full_leg import make_full_leg_instance, write_full_leg_instance

    if modality not in (None, "DX", "CR"):
        raise BenchOptionError(f"modality must be DX, CR or None, got {modality!r}")
    studies = []
    for i in range(count):
        inst = make_full_leg_instance(seed + i, full_size=full_size, max_rows=max_rows,
                                      for_processing=False, syntax=syntax,
                                      modality=modality)  # type: ignore[arg-type]
        dcm, _ = write_full_leg_instance(inst, out_dir)
        studies.append({"seed": seed + i, "file": str(dcm),
                        "shape": [int(inst.truth["rows"]), int(inst.truth["columns"])],
                        "syntax": inst.syntax, "legs": len(inst.truth["legs"])})
    return studies


def measure_files(files: list[str], threads: int, weights: str | None = None
                  ) -> dict[str, Any]:
    """Load the predictor, warm up on ``files[0]``, time every file (the measuring process).

    Parameters
    ----------
    files
        Full-leg DICOM files.
    threads
        torch CPU threads.
    weights
        Folder with ``full_leg_roi.pt`` and ``full_leg_hourglass.pt``; None: the shipped,
        hash-checked weights.

    Returns
    -------
    dict
        ``per_study`` (seconds, parts, legs measured), ``warm_up_seconds``, the RSS after
        the imports, after loading and at the end (``peak_rss_mb``), torch and model version.
    """
    import pydicom
    import torch

    from inference.leg.predictor import FullLegPredictor

    if not files:
        raise BenchError("no files to measure")
    rss_imports = _rss_mb()
    if weights is None:
        predictor = FullLegPredictor.from_default_weights(device="cpu", num_threads=threads)
    else:
        w = Path(weights)
        predictor = FullLegPredictor.from_weights(w / "full_leg_roi.pt",
                                                  w / "full_leg_hourglass.pt", device="cpu",
                                                  num_threads=threads)
    rss_load = _rss_mb()
    t0 = time.perf_counter()
    predictor.measure(pydicom.dcmread(files[0]))
    warm = time.perf_counter() - t0
    rows = []
    for f in files:
        t0 = time.perf_counter()
        ds = pydicom.dcmread(f)
        t1 = time.perf_counter()
        res = predictor.measure(ds)
        t2 = time.perf_counter()
        rows.append({
            "file": Path(f).name, "seconds": t2 - t0, "measure_seconds": t2 - t1,
            "parts_ms": {"dcmread": round(1000 * (t1 - t0), 1), **res.timings_ms},
            "legs_measured": sum(lg.measured for lg in res.legs),
            "legs_passed": sum(lg.quality == "pass" for lg in res.legs),
            "sides": [lg.side for lg in res.legs],
        })
    hwm = _vm_hwm_mb()  # before ru_maxrss, which also counts it
    peak = _rss_mb()
    return {"per_study": rows, "warm_up_seconds": round(warm, 3), "threads": threads,
            "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
            "thread_env": {k: os.environ.get(k) for k in THREAD_ENV},
            "rss_mb_after_imports": rss_imports, "rss_mb_after_load": rss_load,
            "peak_rss_mb": peak, "vm_hwm_mb": hwm,
            "model": predictor.model_info.version}


def _run_module(args: list[str], what: str) -> Any:
    """``python -m inference.bench_full_leg ARGS`` in a fresh process; its last line as JSON.

    Raises
    ------
    BenchError
        The process failed or printed nothing.
    """
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(_ROOT), *filter(None, [env.get("PYTHONPATH")])])
    proc = subprocess.run([sys.executable, "-m", "inference.bench_full_leg", *args],
                          capture_output=True, text=True, env=env, check=False)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        raise BenchError(f"the {what} process failed (exit {proc.returncode}): "
                         f"{proc.stderr.strip()[-2000:]}")
    return json.loads(lines[-1])


def render_in_subprocess(out_dir: Path, count: int, seed: int, *, max_rows: int | None,
                         full_size: bool, syntax: str | None, modality: str | None = None
                         ) -> list[dict[str, Any]]:
    """:func:`render_studies` in a fresh process (its memory stays out of this one)."""
    args = ["render", str(out_dir), "--count", str(count), "--seed", str(seed),
            "--syntax", syntax or MIXED]
    if modality is not None:
        args += ["--modality", modality]
    if max_rows is not None:
        args += ["--max-rows", str(max_rows)]
    if full_size:
        args.append("--full-size")
    studies: list[dict[str, Any]] = _run_module(args, "rendering")
    return studies


def measure_in_subprocess(files: list[str], threads: int, weights: Path | None = None
                          ) -> dict[str, Any]:
    """:func:`measure_files` in a fresh Python process; its JSON result."""
    args = ["measure", "--threads", str(threads)]
    if weights is not None:
        args += ["--weights", str(weights)]
    out: dict[str, Any] = _run_module([*args, *files], "measuring")
    return out


def run_full_leg(request: BenchRequest) -> dict[str, Any]:
    """``bench-model --kind full-leg``: render, measure in a fresh process, summarise.

    Parameters
    ----------
    request
        ``count`` studies from ``seed``, ``threads``, ``weights``; ``max_rows`` /
        ``full_size`` / ``transfer_syntax`` for the render (default: the generator's own size,
        Explicit VR Little Endian).

    Returns
    -------
    dict
        JSON-ready figures: ``seconds_per_study`` (dcmread + measure: mean, median, p95, min,
        max), ``measure_seconds``, mean parts (ms), ``peak_rss_mb`` of the measuring process,
        legs expected / measured / passed, the per-study rows and the targets.

    Raises
    ------
    BenchOptionError
        Conflicting render options or an unknown syntax.
    BenchError
        The measuring process failed.
    """
    from training.synth_dicom.encode import TRANSFER_SYNTAXES

    if request.max_rows is not None and request.full_size:
        raise BenchOptionError("--max-rows and --full-size exclude each other")
    if request.max_rows is not None and request.max_rows < 256:
        raise BenchOptionError(f"--max-rows must be >= 256, got {request.max_rows}")
    syntax = request.transfer_syntax or DEFAULT_SYNTAX
    if syntax != MIXED and syntax not in TRANSFER_SYNTAXES:
        raise BenchOptionError(f"--transfer-syntax must be one of "
                         f"{', '.join([*TRANSFER_SYNTAXES, MIXED])}, got {syntax!r}")
    load_before = [round(v, 2) for v in os.getloadavg()]
    with tempfile.TemporaryDirectory(prefix="bench_full_leg_") as tmp:
        t0 = time.perf_counter()
        studies = render_in_subprocess(Path(tmp), request.count, request.seed,
                                       max_rows=request.max_rows,
                                       full_size=bool(request.full_size),
                                       syntax=None if syntax == MIXED else syntax)
        render_s = time.perf_counter() - t0
        parent_peak = _rss_mb()
        child = measure_in_subprocess([s["file"] for s in studies], request.threads,
                                      request.weights)
    load_after = [round(v, 2) for v in os.getloadavg()]
    rows = child["per_study"]
    per_study = []
    for s, r in zip(studies, rows, strict=True):
        per_study.append({"seed": s["seed"], "shape": s["shape"], "syntax": s["syntax"],
                          "seconds": round(r["seconds"], 3),
                          "measure_seconds": round(r["measure_seconds"], 3),
                          "parts_ms": r["parts_ms"], "legs_measured": r["legs_measured"],
                          "legs_passed": r["legs_passed"]})
    parts = sorted({k for r in rows for k in r["parts_ms"]})
    seconds = _stats([r["seconds"] for r in rows])
    legs_measured = sum(r["legs_measured"] for r in rows)
    return {
        "kind": "full-leg",
        "studies": request.count,
        "seeds": [request.seed, request.seed + request.count - 1],
        "image_shapes": sorted({tuple(s["shape"]) for s in studies}),
        "transfer_syntaxes": sorted({s["syntax"] for s in studies}),
        "render": {"full_size": bool(request.full_size), "max_rows": request.max_rows,
                   "seconds": round(render_s, 1)},
        "threads": request.threads,
        "torch_threads": child["torch_threads"],
        "torch": child["torch"],
        "thread_env": child["thread_env"],
        "cpu": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "seconds_per_study": seconds,
        "measure_seconds": _stats([r["measure_seconds"] for r in rows]),
        "parts_ms_mean": {k: round(float(np.mean([r["parts_ms"].get(k, 0.0) for r in rows])), 1)
                          for k in parts},
        "warm_up_seconds": child["warm_up_seconds"],
        "peak_rss_mb": child["peak_rss_mb"],
        "rss_mb_after_imports": child["rss_mb_after_imports"],
        "rss_mb_after_load": child["rss_mb_after_load"],
        "vm_hwm_mb": child["vm_hwm_mb"],
        "parent_peak_rss_mb": parent_peak,
        "peak_rss_method": "ru_maxrss of a fresh process that only loads the predictor and "
                           "measures the studies (rendering ran in another process): its whole "
                           "high-water mark, not a difference; Linux carries the spawning "
                           "parent's peak (parent_peak_rss_mb) into it, so it is the "
                           "predictor's own when above that; vm_hwm_mb (VmHWM) is not "
                           "inherited",
        "legs_expected": sum(s["legs"] for s in studies),
        "legs_measured": legs_measured,
        "legs_passed": sum(r["legs_passed"] for r in rows),
        "targets": {"seconds_per_study_mean": TARGET_SECONDS, "peak_rss_mb": TARGET_RSS_MB,
                    "latency_met": bool(seconds["mean"] <= TARGET_SECONDS),
                    "rss_met": bool(child["peak_rss_mb"] <= TARGET_RSS_MB)},
        "load_average_before": load_before,
        "load_average_after": load_after,
        "model": child["model"],
        "per_study": per_study,
    }


def main(argv: list[str] | None = None) -> None:
    """The worker processes: ``python -m inference.bench_full_leg render DIR ...`` and
    ``python -m inference.bench_full_leg measure [--threads N] FILE...``; each prints JSON."""
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    sub = ap.add_subparsers(dest="step", required=True)
    rp = sub.add_parser("render", help="render the studies into DIR")
    rp.add_argument("out_dir", type=Path)
    rp.add_argument("--count", type=int, required=True)
    rp.add_argument("--seed", type=int, required=True)
    rp.add_argument("--syntax", default=DEFAULT_SYNTAX)
    rp.add_argument("--max-rows", type=int, default=None)
    rp.add_argument("--full-size", action="store_true")
    rp.add_argument("--modality", choices=("DX", "CR"), default=None)
    mp = sub.add_parser("measure", help="load the predictor and time FILE...")
    mp.add_argument("files", nargs="+")
    mp.add_argument("--threads", type=int, default=2)
    mp.add_argument("--weights", default=None)
    args = ap.parse_args(argv)
    if args.step == "render":
        out: Any = render_studies(args.out_dir, args.count, args.seed, max_rows=args.max_rows,
                                  full_size=args.full_size,
                                  syntax=None if args.syntax == MIXED else args.syntax,
                                  modality=args.modality)
    else:
        out = measure_files(args.files, args.threads, args.weights)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
