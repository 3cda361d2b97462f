"""Inference: per-image latency and peak memory of the predictor, via ``knee-node bench-model``.

Each configuration (weights x threads) runs in its own process so that its peak RSS and
its torch thread count are its own. ``bench-model`` (``inference.bench``, owned by the
model) renders full-size synthetic radiographs, makes one untimed warm-up call, then
times :meth:`KneePredictor.measure_array` (global search, local search with refinement,
quality control).

Paper widths: the networks at the widths of the paper (global 32, local 256), **randomly
initialised** (timing only; their landmarks mean nothing), same depths, input sizes and
phase classifier as the shipped weights.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

from benchmarks.procs import BenchmarkError, knee_node_command

PAPER_WIDTHS = {"global": 32, "local": 256}


def write_paper_width_weights(folder: Path, seed: int = 0) -> Path:
    """Random-init weights at the paper's widths, with a manifest, in ``folder``."""
    import torch

    from inference.networks import HourglassConfig, HourglassNet
    from inference.predictor import MANIFEST, WEIGHTS_DIR

    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    digests: dict[str, str] = {}
    for stage in ("global", "local"):
        shipped = torch.load(WEIGHTS_DIR / f"{stage}.pt", map_location="cpu", weights_only=True)
        cfg = dict(shipped["config"], width=PAPER_WIDTHS[stage])
        net = HourglassNet(HourglassConfig(**cfg))
        meta = {k: v for k, v in shipped.get("meta", {}).items()
                if k in ("input_size", "patch_size", "generator_version")}
        meta["note"] = "random initialisation at the paper's width, for timing only"
        path = folder / f"{stage}.pt"
        torch.save({"config": net.config.to_dict(), "state_dict": net.state_dict(),
                    "meta": meta}, path)
        digests[path.name] = hashlib.sha256(path.read_bytes()).hexdigest()
    if (WEIGHTS_DIR / "phase.pt").is_file():
        shutil.copyfile(WEIGHTS_DIR / "phase.pt", folder / "phase.pt")
        digests["phase.pt"] = hashlib.sha256((folder / "phase.pt").read_bytes()).hexdigest()
    (folder / MANIFEST).write_text(json.dumps({
        "name": "paper widths (random init)", "version": "paper-width-random", "sha256": digests,
    }, indent=1))
    return folder


def shipped_widths() -> dict[str, int]:
    """Widths of the shipped global and local networks."""
    import torch

    from inference.predictor import WEIGHTS_DIR

    return {stage: int(torch.load(WEIGHTS_DIR / f"{stage}.pt", map_location="cpu",
                                  weights_only=True)["config"]["width"])
            for stage in ("global", "local")}


def bench_model(count: int, threads: int, out: Path, weights: Path | None,
                timeout_s: float = 1800.0) -> dict[str, Any]:
    """Run ``knee-node bench-model`` in a fresh process; its figures."""
    argv = [*knee_node_command(), "bench-model", "--count", str(count), "--threads",
            str(threads), "--out", str(out)]
    if weights is not None:
        argv += ["--weights", str(weights)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s)
    if done.returncode != 0:
        raise BenchmarkError(f"bench-model failed ({done.returncode}): {done.stderr[-2000:]}")
    return dict(json.loads(out.read_text()))


def cuda_status() -> dict[str, Any]:
    """Whether a CUDA device is usable by this torch build."""
    import torch

    if not torch.cuda.is_available():
        why = ("torch is a CPU build" if torch.version.cuda is None else "no CUDA device")
        return {"available": False, "reason": why}
    return {"available": True, "device": torch.cuda.get_device_name(0),
            "note": "bench-model times the CPU only; CUDA latency not measured"}


def run_inference(folder: Path, count: int, paper_count: int,
                  threads: tuple[int, ...] = (1, 2)) -> dict[str, Any]:
    """Latency and peak RSS at shipped and paper widths, per thread count."""
    if count < 1 or paper_count < 0:
        raise ValueError(f"count must be >= 1 and paper_count >= 0, got {count}, {paper_count}")
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    widths = shipped_widths()
    for t in threads:
        fig = bench_model(count, t, folder / f"shipped_t{t}.json", None)
        rows.append({"weights": "shipped", "widths": widths, "threads": t, **fig})
    if paper_count:
        paper = write_paper_width_weights(folder / "paper_weights")
        for t in threads:
            fig = bench_model(paper_count, t, folder / f"paper_t{t}.json", paper)
            rows.append({"weights": "paper widths, random init", "widths": PAPER_WIDTHS,
                         "threads": t, **fig})
    return {
        "command_used": "knee-node bench-model (inference.bench.run_benchmark), one process "
                        "per row",
        "rows": rows,
        "cuda": cuda_status(),
    }
