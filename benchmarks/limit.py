"""The limit figure of a study kind (issue 16, item 5): the unavoidable stages, measured.

For each kind the end-to-end time cannot be shorter than the sum of three parts, each
measured in the same run as the end-to-end figures it is compared with:

* **store**: one write + ``fsync`` of a file of that kind's instance size (the bytes of a
  real source file of the run) into the run's folder, the disk the node's spool is on;
* **model**: the predictor alone on representative images, as ``knee-node bench-model``
  measures it (knee: :func:`inference.bench.run_benchmark`, mean of
  :meth:`KneePredictor.measure_array`; full-leg: :func:`inference.bench_full_leg.
  measure_in_subprocess` on the run's own full-leg files, mean of
  :meth:`FullLegPredictor.measure`, which includes the pixel read), in a fresh process, at
  the torch thread count the embedded node's in-process worker uses;
* **deliver**: one association carrying one C-STORE of each result object (SR + SC of
  that kind, the objects the node just sent in the end-to-end run, so of their real sizes
  and transfer syntaxes) to a pynetdicom storage SCP on loopback, sent as the node sends
  (:func:`dicom_node.destinations.dimse.prepare_c_store`), association request to
  the last C-STORE response (the release is not counted: the end-to-end clock stops at
  the SR's arrival).

The end-to-end p95 is then given as a ratio to the sum.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pydicom import dcmread
from pydicom.dataset import Dataset
from pynetdicom import AE

from benchmarks.procs import BenchmarkError
from dicom_node.destinations.dimse import prepare_c_store
from dicom_node.peers import PACS_TRANSFER_SYNTAXES, StandInPacs

#: Kinds a limit figure is made for (the study kinds the benchmark measures end to end).
KINDS = ("knee", "full-leg")
#: Write + fsync repeats and C-STORE repeats (medians).
FSYNC_REPEATS = 3
CSTORE_REPEATS = 5
#: Bytes per ``write`` call of the store part (as a spool copy would write).
CHUNK = 1 << 20


def write_fsync_seconds(data: bytes, folder: Path, repeats: int = FSYNC_REPEATS
                        ) -> dict[str, Any]:
    """Median seconds to write ``data`` to a new file in ``folder`` and ``fsync`` it.

    Parameters
    ----------
    data
        The bytes of one instance file of the kind.
    folder
        A folder on the disk the node spools to (created); each file is removed after.
    repeats
        Timed writes, each to a fresh file.

    Returns
    -------
    dict
        ``seconds`` (median), ``runs_seconds``, ``bytes`` and ``mb_per_s``.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    if not data:
        raise ValueError("data must not be empty")
    folder.mkdir(parents=True, exist_ok=True)
    runs = []
    for i in range(repeats):
        path = folder / f"limit_write_{i}.dcm"
        t0 = time.perf_counter()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            view = memoryview(data)
            for start in range(0, len(view), CHUNK):
                os.write(fd, view[start:start + CHUNK])
            os.fsync(fd)
        finally:
            os.close(fd)
        runs.append(time.perf_counter() - t0)
        path.unlink()
    sec = statistics.median(runs)
    return {"seconds": round(sec, 4), "runs_seconds": [round(r, 4) for r in runs],
            "bytes": len(data), "mb_per_s": round(len(data) / 1e6 / sec, 1)}


def _associate_and_store(datasets: Sequence[Dataset], port: int, ae_title: str) -> float:
    """One association, one C-STORE per dataset; seconds up to the last response."""
    ae = AE(ae_title="BENCH_LIMIT")
    for sop, ts in {(str(d.SOPClassUID), str(d.file_meta.TransferSyntaxUID))
                    for d in datasets}:
        ae.add_requested_context(sop, ts)
    t0 = time.perf_counter()
    assoc = ae.associate("127.0.0.1", port, ae_title=ae_title)
    if not assoc.is_established:
        raise BenchmarkError(f"the limit's stand-in PACS on port {port} refused the association")
    try:
        for ds in datasets:
            prepare_c_store(assoc)  # the node's transport (TCP_NODELAY with the reactor parked)
            status = assoc.send_c_store(ds)
            if getattr(status, "Status", None) != 0x0000:
                raise BenchmarkError(f"limit C-STORE of {ds.Modality} answered {status!r}")
        seconds = time.perf_counter() - t0
    finally:
        assoc.release()
    return seconds


def cstore_seconds(paths: list[Path], repeats: int = CSTORE_REPEATS) -> dict[str, Any]:
    """Median seconds of one association sending every file of ``paths`` to a pynetdicom
    SCP on loopback (after one untimed association, as the node's is after its warm-up).

    Parameters
    ----------
    paths
        The result objects (SR, SC ...), as received from the node.
    repeats
        Timed associations.

    Returns
    -------
    dict
        ``seconds`` (median), ``runs_seconds``, ``objects`` (modality, bytes, transfer
        syntax of each).
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    if not paths:
        raise ValueError("paths must name at least one result object, got []")
    datasets = [dcmread(p) for p in paths]
    pacs = StandInPacs("LIMIT_PACS", transfer_syntaxes=PACS_TRANSFER_SYNTAXES).start()
    try:
        _associate_and_store(datasets, pacs.port, pacs.ae_title)
        runs = [_associate_and_store(datasets, pacs.port, pacs.ae_title)
                for _ in range(repeats)]
    finally:
        pacs.stop()
    return {"seconds": round(statistics.median(runs), 4),
            "runs_seconds": [round(r, 4) for r in runs],
            "objects": [{"modality": str(d.Modality), "object": p.stem, "bytes": p.stat().st_size,
                         "transfer_syntax": str(d.file_meta.TransferSyntaxUID)}
                        for d, p in zip(datasets, paths, strict=True)]}


def embedded_threads() -> int:
    """torch threads of the embedded node's in-process worker on this machine."""
    from dicom_node.measurer import worker_threads
    from dicom_node.settings import ModelSettings

    threads = worker_threads(ModelSettings(), in_process=True)
    return 1 if threads is None else int(threads)


def knee_model_seconds(folder: Path, threads: int, images: int) -> dict[str, Any]:
    """The knee predictor alone: ``knee-node bench-model --count images --threads threads``
    in a fresh process; mean seconds of ``measure_array`` per full-size image."""
    from benchmarks.inference import bench_model

    fig = bench_model(images, threads, folder / f"limit_knee_model_t{threads}.json", None)
    total = fig["latency_ms"]["total"]
    return {"seconds": round(total["mean"] / 1000, 4), "p95_seconds": round(total["p95"] / 1000, 4),
            "images": fig["images"], "image_shapes": fig["image_shapes"], "threads": threads,
            "command": f"knee-node bench-model --count {images} --threads {threads}",
            "what": "KneePredictor.measure_array (global + local search, quality control) "
                    "on an in-memory image"}


def full_leg_model_seconds(files: list[Path], threads: int) -> dict[str, Any]:
    """The full-leg predictor alone on ``files`` (as ``bench-model --kind full-leg``), in a
    fresh process; mean seconds of ``FullLegPredictor.measure`` per study."""
    from inference.bench_full_leg import measure_in_subprocess
    from inference.bench_kinds import BenchError

    if not files:
        raise ValueError("files must name at least one full-leg study, got []")
    try:
        fig = measure_in_subprocess([str(f) for f in files], threads)
    except BenchError as exc:
        raise BenchmarkError(f"full-leg limit model: {exc}") from None
    secs = [r["measure_seconds"] for r in fig["per_study"]]
    return {"seconds": round(statistics.fmean(secs), 4),
            "p95_seconds": round(float(np.percentile(secs, 95)), 4),
            "images": len(secs), "threads": threads,
            "command": f"knee-node bench-model --kind full-leg --threads {threads}",
            "how": ": its measuring step, on this run's files",
            "what": "FullLegPredictor.measure (pixel read, ROI, both legs' landmarks, shafts, "
                    "geometry) on a freshly read dataset"}


def combine(kind: str, store: dict[str, Any], model: dict[str, Any],
            deliver: dict[str, Any]) -> dict[str, Any]:
    """The limit figure of ``kind``: its three measured parts and their sum.

    Parameters
    ----------
    kind
        One of :data:`KINDS`.
    store, model, deliver
        The parts as measured (each with ``seconds``).

    Returns
    -------
    dict
        ``kind``, ``parts`` (the three), ``parts_seconds`` and ``seconds`` (their sum).
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    parts = {"store": store, "model": model, "deliver": deliver}
    for name, part in parts.items():
        sec = part.get("seconds")
        if not isinstance(sec, int | float) or sec <= 0:
            raise ValueError(f"{name}: seconds must be a positive number, got {sec!r}")
    secs = {k: float(v["seconds"]) for k, v in parts.items()}
    return {"kind": kind, "parts": parts, "parts_seconds": secs,
            "seconds": round(sum(secs.values()), 4)}


def ratio_to_limit(p95_s: float | None, limit: dict[str, Any] | None) -> float | None:
    """End-to-end p95 over the limit figure (None when either is missing)."""
    if p95_s is None or not limit or not limit.get("seconds"):
        return None
    return round(float(p95_s) / float(limit["seconds"]), 2)


def measure_limit(kind: str, instance: Path, results: list[Path], folder: Path, *,
                  model_files: list[Path] | None = None, model_images: int = 3
                  ) -> dict[str, Any]:
    """Measure the three parts of ``kind``'s limit now; :func:`combine` of them.

    Parameters
    ----------
    kind
        ``knee`` or ``full-leg``.
    instance
        One instance file of the kind as the run sends it (its size is the store part's).
    results
        The result objects the node delivered for one study (SR and SC files).
    folder
        Scratch folder on the disk the node spools to.
    model_files
        full-leg: the studies the predictor is timed on (default: ``instance``).
    model_images
        knee: images ``bench-model`` renders and times.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    store = write_fsync_seconds(instance.read_bytes(), folder / "store")
    threads = embedded_threads()
    if kind == "knee":
        model = knee_model_seconds(folder, threads, model_images)
    else:
        model = full_leg_model_seconds(model_files or [instance], threads)
    deliver = cstore_seconds(results)
    return combine(kind, store, model, deliver)
