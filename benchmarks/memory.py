"""Memory on receipt: peak RSS of ``knee-node serve`` while N instances arrive at once.

The security review (issue 18) saw 2.44 GB of receive RSS for twenty parallel 72 MB
instances, because pynetdicom held each whole dataset in memory. The node now receives
into a file in chunks (``STORE_RECV_CHUNKED_DATASET``) and copies it to the spool in 1 MiB
steps, so its RSS should not grow with the instances' size. This section starts ``serve``
on embedded defaults (``node.limits.max_decoded_bytes`` raised to accept the instances,
``max_associations`` to take them all at once), routes them to "ignored" (BodyPartExamined
CHEST) so that no model runs and only receipt is measured, sends ``count`` instances of
``side`` x ``side`` 16-bit pixels with ``count`` parallel ``storescu`` processes, and
reads the peak RSS (``VmHWM``) of serve before and after.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.nodes import NodeProcesses
from benchmarks.procs import BenchmarkError, tool_path

#: the target of issue 18
LIMIT_MB = 1024.0


def large_instance(path: Path, side: int, seed: int = 0) -> Path:
    """A DX instance of ``side`` x ``side`` 16-bit noise, BodyPartExamined CHEST."""
    from pydicom import Dataset
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    rng = np.random.default_rng(seed)
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.Modality, ds.BodyPartExamined, ds.ViewPosition = "DX", "CHEST", "AP"
    ds.PatientName, ds.PatientID = "Bench^Memory", "BENCH"
    ds.Rows = ds.Columns = side
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelData = rng.integers(0, 4096, (side, side), dtype=np.uint16).tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


def run_memory(work: Path, count: int = 20, side: int = 6000) -> dict[str, Any]:
    """Send ``count`` instances at once; serve's peak RSS (MiB) and whether it met 1 GB."""
    if count < 1 or side < 64:
        raise ValueError(f"count must be >= 1 and side >= 64, got {count}, {side}")
    work.mkdir(parents=True, exist_ok=True)
    size = side * side * 2
    files = [large_instance(work / f"large{i:02d}.dcm", side, i) for i in range(count)]
    with NodeProcesses(
        work / "node",
        node={"limits": {"max_decoded_bytes": max(size * 2, 64 << 20),
                         "max_associations": count + 2}},
    ) as node:
        before = node.peak_rss_mb()["serve"]
        t0 = time.perf_counter()
        procs = [
            subprocess.Popen(
                [tool_path("storescu"), "-aet", "BENCH_SCU", "-aec", "KNEE_NODE",
                 "127.0.0.1", str(node.port), str(f)],
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            )
            for f in files
        ]
        failed = [p.wait(600) for p in procs]
        seconds = time.perf_counter() - t0
        peak = node.peak_rss_mb()["serve"]
        if any(failed):
            errors = [p.stderr.read()[-300:] for p in procs if p.returncode and p.stderr]
            raise BenchmarkError(f"storescu failed: {errors}")
    mb = sum(f.stat().st_size for f in files) / 1e6
    return {
        "instances": count,
        "instance_mb": round(size / 1e6, 1),
        "received_mb": round(mb, 1),
        "seconds": round(seconds, 2),
        "serve_peak_rss_mb_before": before,
        "serve_peak_rss_mb": peak,
        "limit_mb": LIMIT_MB,
        "met": peak is not None and peak < LIMIT_MB,
    }
