"""The whole benchmark: ingest, inference, end to end, scaling; one results dict."""

from __future__ import annotations

import os
import platform
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.data import FileSet, make_file_set, replicate
from benchmarks.procs import (
    BROKER_URL,
    BenchmarkError,
    load_average,
    postgres_database,
    redis_reachable,
    unique_name,
)
from benchmarks.targets import targets

SECTIONS = ("ingest", "inference", "e2e", "scaling", "memory", "e2e-full-leg",
            "ingest-full-leg")
#: Sections that need the rendered knee files.
KNEE_SECTIONS = frozenset({"ingest", "e2e", "scaling"})
#: Sections that need the rendered full-leg files.
FULL_LEG_SECTIONS = frozenset({"e2e-full-leg", "ingest-full-leg"})
#: Assumed latency of the model (global + local search, batch 1) on one GPU: an
#: assumption, not a measurement (no GPU here).
ASSUMED_GPU_MODEL_S = 0.03
#: Files pushed to the profiled in-process listener when ingest misses its target.
PROFILE_FILES = 20


@dataclass(frozen=True)
class BenchOptions:
    """What to run and how big (defaults: the full run, about 8 minutes on a quiet 2-core
    machine, longer when the CPU is shared)."""

    sections: tuple[str, ...] = SECTIONS
    ingest_files: int = 100
    distinct: int = 6
    max_side: int | None = None
    repeats: int = 3
    one_at_a_time: int = 10
    burst: int = 20
    model_images: int = 5
    paper_images: int = 1
    limit_model_images: int = 3
    full_leg_studies: int = 6
    full_leg_distinct: int = 3
    full_leg_ingest_files: int = 6
    full_leg_max_rows: int | None = None
    profile: bool = True
    seed: int = 960_000_000
    command: str = "knee-node bench"
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        bad = [s for s in self.sections if s not in SECTIONS]
        if bad or not self.sections:
            raise ValueError(f"sections must be a non-empty subset of {SECTIONS}, got {bad}")
        for name in ("ingest_files", "distinct", "repeats", "model_images",
                     "limit_model_images", "full_leg_studies", "full_leg_distinct",
                     "full_leg_ingest_files"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("one_at_a_time", "burst", "paper_images"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.max_side is not None and self.max_side < 64:
            raise ValueError(f"max_side must be >= 64 or None, got {self.max_side}")
        if self.full_leg_max_rows is not None and self.full_leg_max_rows < 256:
            raise ValueError(f"full_leg_max_rows must be >= 256 or None, got "
                             f"{self.full_leg_max_rows}")


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    import torch

    return {"platform": platform.platform(), "processor": platform.processor()
            or platform.machine(), "cpus": os.cpu_count(), "python": platform.python_version(),
            "torch": torch.__version__}


def _celery(queue_prefix: str, pg_url: str | None, threads: int) -> dict[str, dict[str, Any]]:
    sections: dict[str, dict[str, Any]] = {
        "queue": {"backend": "celery", "broker_url": BROKER_URL,
                  "queue_name": unique_name(queue_prefix), "worker_pool": "solo",
                  "worker_concurrency": 1},
        "model": {"num_threads": threads},
    }
    if pg_url is not None:
        sections["database"] = {"url": pg_url}
    return sections


def _celery_run(name: str, folder: Path, files: list[Path], workers: int, threads: int,
                one: int, burst: int) -> dict[str, Any]:
    from benchmarks.e2e import load_datasets, measure_config
    from benchmarks.procs import purge_queue

    with postgres_database() as pg_url:
        sections = _celery("knee_node_bench", pg_url, threads)
        try:
            res = measure_config(name, folder, load_datasets(files), one_at_a_time=one,
                                 burst=burst, workers=workers, sections=sections)
        finally:
            purge_queue(BROKER_URL, sections["queue"]["queue_name"])
    return res


def knee_limit(opts: BenchOptions, embedded: dict[str, Any], instance: Path,
               work: Path) -> dict[str, Any] | None:
    """The knee limit figure, measured now, from the embedded run's result objects (None
    when no study went one at a time, so none was kept)."""
    from benchmarks.limit import measure_limit

    objects = embedded.get("result_objects")
    if not objects:
        return None
    return measure_limit("knee", instance, [Path(p) for p in objects.values()],
                         work / "limit_knee", model_images=opts.limit_model_images)


def run_e2e(opts: BenchOptions, sources: list[Path], work: Path) -> dict[str, Any]:
    """Embedded defaults (then the knee limit figure), then Celery+Redis with 2 workers
    (1 model thread each)."""
    from benchmarks.e2e import load_datasets, measure_config
    from benchmarks.limit import ratio_to_limit

    n = opts.one_at_a_time + opts.burst
    configs = []
    files = replicate(sources, work / "e2e_embedded", 1 + n, "study")
    configs.append(measure_config(
        "embedded defaults (serve, in-process queue, SQLite)", work / "run_embedded",
        load_datasets(files), one_at_a_time=opts.one_at_a_time, burst=opts.burst,
        keep_results=work / "knee_results"))
    limit = knee_limit(opts, configs[0], files[1], work)
    one = configs[0].get("one_at_a_time")
    if redis_reachable():
        files = replicate(sources, work / "e2e_celery2", 2 + n, "study")
        configs.append(_celery_run("Celery+Redis, 2 workers (1 model thread each)",
                                   work / "run_celery2", files, 2, 1, opts.one_at_a_time,
                                   opts.burst))
    return {"configs": configs, "limit": limit,
            "p95_to_limit": ratio_to_limit(None if one is None else one["p95_s"], limit),
            "notes": ["latency = start of the study's C-STORE (SCU in the benchmark process) "
                      "to the SR accepted by a pynetdicom storage SCP (same process, same "
                      "clock)",
                      "each study is one DX instance; the burst is pushed in one association, "
                      "back to back",
                      "one at a time: the next study is sent once every object of the last "
                      "one (SR, SC, GSPS) arrived, so no two studies' work overlaps",
                      "warm-up studies (model load) are sent and answered first, not counted",
                      "job = job started to its SR written and recorded; job part "
                      "pending_reports = the SC and GSPS, made after the SR is queued for "
                      "delivery (in-process: on the reports lane, beside the next job; "
                      "Celery: in the same task); the SC follows the SR at the destination"]}


def gpu_prediction(stages: dict[str, Any], model_cpu_s: float) -> dict[str, Any]:
    """Studies/min per GPU from the measured non-model stages and an assumed GPU model time."""
    parts = stages.get("job_parts", {})
    model_s = float(parts.get("model_global", 0.0)) + float(parts.get("model_local", 0.0))
    job_s = float(stages.get("job", 0.0))
    cpu_s = (max(job_s - model_s, 0.0) + float(stages.get("delivery", 0.0))
             + float(parts.get("pending_reports", 0.0)))
    per_worker = 60.0 / (cpu_s + ASSUMED_GPU_MODEL_S)
    return {
        "assumption": f"model (global + local search) takes {ASSUMED_GPU_MODEL_S * 1000:.0f} ms "
                      "per image on one GPU (assumed, not measured: no GPU here); every other "
                      "stage (read, decode, reports, database, delivery) stays on the CPU at "
                      "the time measured here for one worker (one study at a time, 2 Celery "
                      "workers); optimistic, since cutting patches from the full image is "
                      "counted in the model time but would stay on the CPU",
        "cpu_stages_s_per_study": round(cpu_s, 3),
        "model_s_per_study_on_cpu": round(model_s or model_cpu_s, 3),
        "one_worker_per_gpu_studies_per_min": round(per_worker, 1),
        "gpu_bound_studies_per_min": round(60.0 / ASSUMED_GPU_MODEL_S, 0),
        "cpu_workers_to_saturate_one_gpu": round((cpu_s + ASSUMED_GPU_MODEL_S)
                                                 / ASSUMED_GPU_MODEL_S, 1),
    }


def run_scaling(opts: BenchOptions, sources: list[Path], work: Path,
                e2e: dict[str, Any] | None, model_cpu_s: float) -> dict[str, Any]:
    """Studies/min with 1 and 2 Celery workers (bursts), and what it predicts per GPU."""
    if not redis_reachable():
        raise BenchmarkError(f"Redis is unreachable at {BROKER_URL}")
    burst = max(opts.burst, 2)
    rows = []
    files = replicate(sources, work / "scale1", 1 + burst, "study")
    one = _celery_run("Celery+Redis, 1 worker (1 model thread)", work / "run_scale1", files,
                      1, 1, 0, burst)
    rows.append({"workers": 1, "model_threads": 1, **one["burst"],
                 "peak_rss_mb": one["peak_rss_mb"]})
    two = None
    if e2e is not None:
        two = next((c for c in e2e["configs"] if c["workers"] == 2 and "burst" in c), None)
    if two is None:
        files = replicate(sources, work / "scale2", 2 + burst, "study")
        two = _celery_run("Celery+Redis, 2 workers (1 model thread each)", work / "run_scale2",
                          files, 2, 1, 0, burst)
    rows.append({"workers": 2, "model_threads": 1, **two["burst"],
                 "peak_rss_mb": two["peak_rss_mb"]})
    stages = (two.get("one_at_a_time") or two["burst"])["stages_mean_s"]
    speedup = rows[1]["studies_per_min"] / rows[0]["studies_per_min"]
    return {"rows": rows, "speedup_2_over_1": round(speedup, 2),
            "per_gpu": gpu_prediction(stages, model_cpu_s),
            "notes": [f"{burst} studies pushed at once per row; studies/min = studies / (first "
                      "C-STORE to last SR)",
                      "every worker runs torch with 1 thread (model.num_threads: 1), so the "
                      "rows differ only in the number of workers; the inference section shows "
                      "1 against 2 threads in one process"]}


def run_full_leg_sections(opts: BenchOptions, work: Path, results: dict[str, Any],
                          say: Callable[[str], None]) -> None:
    """Render the full-leg studies, then the full-leg end to end and ingest sections
    selected, into ``results`` (``e2e_full_leg``, ``ingest_full_leg``)."""
    from benchmarks.full_leg import render_sources, run_full_leg_e2e, run_full_leg_ingest

    size = ("2800 x 8100" if opts.full_leg_max_rows is None
            else f"at most {opts.full_leg_max_rows} rows")
    say(f"rendering {opts.full_leg_distinct} synthetic full-leg studies ({size})")
    sources = render_sources(work / "full_leg_sources", opts.full_leg_distinct,
                             opts.full_leg_max_rows)
    if "e2e-full-leg" in opts.sections:
        say(f"full-leg end to end: {opts.full_leg_studies} studies one at a time, embedded "
            "defaults, then the full-leg limit figure")
        load = load_average()
        results["e2e_full_leg"] = run_full_leg_e2e(sources, work, opts.full_leg_studies,
                                                   model_images=opts.limit_model_images)
        results["e2e_full_leg"]["load_average_at_start"] = load
    if "ingest-full-leg" in opts.sections:
        say(f"full-leg ingest: {opts.full_leg_ingest_files} files x {opts.repeats} to "
            "knee-node and storescp")
        load = load_average()
        results["ingest_full_leg"] = run_full_leg_ingest(
            sources, work, opts.full_leg_ingest_files, opts.repeats)
        results["ingest_full_leg"]["load_average_at_start"] = load


def run_all(opts: BenchOptions, work: Path | None = None,
            progress: Any = None) -> dict[str, Any]:
    """Run the selected sections; the results dict (see ``docs/benchmarks.md``)."""
    say = progress or (lambda msg: None)
    own = work is None
    work = Path(tempfile.mkdtemp(prefix="knee-bench-")) if work is None else Path(work)
    results: dict[str, Any] = {
        "command": opts.command,
        "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine(),
        "load_average_before": load_average(),
        "options": {k: v for k, v in asdict(opts).items() if k != "extra"},
    }
    t0 = time.perf_counter()
    try:
        base: FileSet | None = None
        sources: list[Path] = []
        if KNEE_SECTIONS & set(opts.sections):
            say(f"rendering {opts.distinct} synthetic radiographs")
            base = make_file_set(work / "ingest", opts.ingest_files, opts.distinct,
                                 opts.max_side, opts.seed)
            sources = sorted((work / "ingest" / "sources").glob("*.dcm"))
        if "ingest" in opts.sections:
            assert base is not None
            from benchmarks.ingest import run_ingest

            say(f"ingest: {opts.ingest_files} files x {opts.repeats} to knee-node and storescp")
            load = load_average()
            results["ingest"] = run_ingest(base, work / "ingest_runs", opts.repeats)
            results["ingest"]["load_average_at_start"] = load
            if opts.profile and not results["ingest"]["met"]:
                from benchmarks.profile import profile_listener

                say("ingest below target: profiling the listener")
                subset = FileSet(base.paths[:PROFILE_FILES], base.distinct, base.max_side)
                results["ingest"]["profile"] = profile_listener(subset, work / "profile")
        if "e2e" in opts.sections:
            say("end to end: embedded defaults, then Celery+Redis with 2 workers")
            load = load_average()
            results["e2e"] = run_e2e(opts, sources, work)
            results["e2e"]["load_average_at_start"] = load
        model_cpu_s = 0.0
        if "inference" in opts.sections:
            from benchmarks.inference import run_inference

            say("inference: bench-model at 1 and 2 threads, shipped and paper widths")
            load = load_average()
            results["inference"] = run_inference(work / "inference", opts.model_images,
                                                 opts.paper_images)
            results["inference"]["load_average_at_start"] = load
            t2 = [r for r in results["inference"]["rows"]
                  if r["weights"] == "shipped" and r["threads"] == 2]
            if t2:
                model_cpu_s = t2[0]["latency_ms"]["total"]["mean"] / 1000
        if "memory" in opts.sections:
            from benchmarks.memory import run_memory

            say("memory: serve's peak RSS while 20 instances of 72 MB arrive at once")
            results["memory"] = run_memory(work / "memory")
        if "scaling" in opts.sections:
            say("scaling: Celery+Redis with 1 worker (the 2-worker row is the end-to-end run)")
            load = load_average()
            results["scaling"] = run_scaling(opts, sources, work, results.get("e2e"),
                                             model_cpu_s)
            results["scaling"]["load_average_at_start"] = load
        if FULL_LEG_SECTIONS & set(opts.sections):
            run_full_leg_sections(opts, work, results, say)
    finally:
        if own:
            shutil.rmtree(work, ignore_errors=True)
    results["targets"] = targets(results)
    results["load_average_after"] = load_average()
    results["duration_s"] = round(time.perf_counter() - t0, 1)
    return results
