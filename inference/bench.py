"""Predictor benchmark: CPU latency per image (global, local, total) and peak memory."""

from __future__ import annotations

import platform
import resource
import time
import tracemalloc
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from inference.bench_kinds import BenchRequest


def run_benchmark(
    count: int = 10, threads: int = 2, seed: int = 950_000_000, weights_dir: str | None = None,
    edge_refinement: str = "off",
) -> dict[str, Any]:
    """Time :meth:`KneePredictor.measure_array` on ``count`` full-size synthetic radiographs.

    Images are rendered first (not timed); one warm-up call precedes the timed calls.
    Peak memory is the process's maximum resident set size (``getrusage``) after the run,
    and the peak of Python-level allocations (``tracemalloc``) in a second, untimed pass
    over the same images (tracing every allocation roughly doubled the measured latency).
    ``edge_refinement`` is the predictor's (:class:`inference.edges.EdgeRefinement`: off,
    report, use).
    """
    import torch

    from inference.pixels import stored_to_image
    from inference.predictor import KneePredictor
    from training import synth

    if count < 1:
        raise ValueError(f"count must be >= 1, got {count}")
    if weights_dir is None:
        predictor = KneePredictor.from_shipped_weights(device="cpu", num_threads=threads,
                                                       edge_refinement=edge_refinement)
    else:
        predictor = KneePredictor.from_weights_dir(weights_dir, device="cpu", num_threads=threads,
                                                   edge_refinement=edge_refinement)
    images = []
    for i in range(count):
        r = synth.synthesize(seed + i)
        images.append((stored_to_image(r.pixels, r.photometric), r.pixel_spacing_mm))
    predictor.measure_array(*images[0])
    timings: dict[str, list[float]] = {"global": [], "local": [], "total": []}
    for img, spacing in images:  # timed without tracemalloc: tracing slows every allocation
        t0 = time.perf_counter()
        knees = predictor.measure_array(img, spacing)
        total = 1000 * (time.perf_counter() - t0)
        timings["global"].append(knees[0].timings_ms["global"])
        timings["local"].append(knees[0].timings_ms["local"])
        timings["total"].append(total)
    tracemalloc.start()  # a second, untimed pass for the Python-level allocation peak
    for img, spacing in images:
        predictor.measure_array(img, spacing)
    _, py_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "images": count,
        "image_shapes": sorted({tuple(int(v) for v in im.shape) for im, _ in images}),
        "threads": threads,
        "torch": torch.__version__,
        "cpu": platform.processor() or platform.machine(),
        "latency_ms": {
            k: {"mean": round(float(np.mean(v)), 1), "p95": round(float(np.percentile(v, 95)), 1)}
            for k, v in timings.items()
        },
        "peak_rss_mb": round(rss_kb / 1024, 1),
        "peak_python_alloc_mb": round(py_peak / 2**20, 1),
        "model": predictor.model_info.version,
        "edge_refinement": predictor.edge_refinement.value,
    }


def run_knee(request: BenchRequest) -> dict[str, Any]:
    """``bench-model --kind knee`` (the default): :func:`run_benchmark` with ``request``.

    Parameters
    ----------
    request
        Count, threads, first seed, weights folder and edge refinement (None: "off").
    """
    return run_benchmark(count=request.count, threads=request.threads, seed=request.seed,
                         weights_dir=None if request.weights is None else str(request.weights),
                         edge_refinement=request.edge_refinement or "off")
