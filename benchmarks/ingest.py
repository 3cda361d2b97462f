"""Ingest: C-STORE throughput of ``knee-node serve`` against dcmtk's ``storescp``.

The same files are sent by the same ``storescu`` (one association, every file) to each
receiver in turn, ``repeats`` times, alternating, each time to a fresh receiver:

* **knee-node serve**: embedded defaults (SQLite, local spool) except the queue, which is
  Celery on Redis with **no worker consuming** it, so the model never runs during the
  measurement. Each instance is written to the spool (temporary file, fsync, rename,
  fsync of the folder), its header read and routed, recorded in the database and its
  measurement task queued, all before the C-STORE response.
* **storescp**: writes each instance to a file in its output folder with no fsync, largest
  receive PDU it allows (131072 bytes), in its default mode (dataset parsed and written)
  and in bit-preserving mode (``+B``, written as received); issue 16's target is the
  ratio against ``+B`` (:data:`TARGET_RATIO`), the ratio against the faster of the two is
  given beside it.

Throughput is total file bytes over the wall time of ``storescu``.
"""

from __future__ import annotations

import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

from benchmarks.data import FileSet
from benchmarks.nodes import NodeProcesses
from benchmarks.procs import (
    BROKER_URL,
    BenchmarkError,
    free_port,
    purge_queue,
    redis_reachable,
    spawn,
    stop,
    tool_path,
    unique_name,
    wait_port,
)

STORESCP_MAX_PDU = 131072
#: Issue 16: the node at least as fast as ``storescp +B`` (median of 3 runs).
TARGET_RATIO = 1.0


def push(files: FileSet, port: int, called_ae: str, timeout_s: float = 600.0) -> float:
    """Send every file with ``storescu`` in one association; wall seconds."""
    argv = [tool_path("storescu"), "-aet", "BENCH_SCU", "-aec", called_ae, "127.0.0.1",
            str(port), *map(str, files.paths)]
    t0 = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s)
    seconds = time.perf_counter() - t0
    if done.returncode != 0:
        raise BenchmarkError(f"storescu failed ({done.returncode}): {done.stderr[-1500:]}")
    return seconds


def _count_states(node: NodeProcesses) -> dict[str, int]:
    from sqlalchemy import create_engine, func, pool, select

    from dicom_node.db.models import ReceivedInstance

    engine = create_engine(node.settings.database_url, poolclass=pool.NullPool)
    try:
        with engine.connect() as c:
            rows = c.execute(
                select(ReceivedInstance.state, func.count()).group_by(ReceivedInstance.state)
            ).all()
    finally:
        engine.dispose()
    return {str(state): int(n) for state, n in rows}


def run_node_once(files: FileSet, folder: Path) -> dict[str, Any]:
    """One push to a fresh ``knee-node serve`` whose queue nobody consumes."""
    queue = unique_name("knee_node_bench")
    node = NodeProcesses(folder, queue={"backend": "celery", "broker_url": BROKER_URL,
                                        "queue_name": queue})
    try:
        with node:
            seconds = push(files, node.port, node.settings.node.ae_title)
            states = _count_states(node)
            rss = node.peak_rss_mb()["serve"]
    finally:
        dropped = purge_queue(BROKER_URL, queue)
    if states.get("queued", 0) != len(files.paths) or dropped != len(files.paths):
        raise BenchmarkError(
            f"the node recorded {states} and queued {dropped} tasks for {len(files.paths)} "
            f"files\n{node.log_tail()}"
        )
    return {"seconds": seconds, "instances_queued": states["queued"], "peak_rss_mb": rss}


def run_storescp_once(files: FileSet, folder: Path, bit_preserving: bool = False
                      ) -> dict[str, Any]:
    """One push to a fresh ``storescp`` writing into ``folder/out`` (``+B``: bit-preserving,
    the dataset written as received instead of parsed and re-encoded)."""
    out = folder / "out"
    out.mkdir(parents=True, exist_ok=True)
    port = free_port()
    mode = ["+B"] if bit_preserving else []
    proc = spawn([tool_path("storescp"), "-aet", "STORESCP", "--max-pdu", str(STORESCP_MAX_PDU),
                  *mode, "-od", str(out), str(port)], folder / "storescp.log")
    try:
        wait_port(port, 15, proc)
        seconds = push(files, port, "STORESCP")
    finally:
        stop(proc)
    written = len(list(out.iterdir()))
    if written != len(files.paths):
        raise BenchmarkError(f"storescp wrote {written} of {len(files.paths)} files")
    return {"seconds": seconds, "files_written": written}


def run_ingest(files: FileSet, folder: Path, repeats: int = 3) -> dict[str, Any]:
    """Alternate node and storescp ``repeats`` times; medians and their ratio."""
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    if not redis_reachable(BROKER_URL):
        raise BenchmarkError(f"Redis is unreachable at {BROKER_URL} (holds the idle queue)")
    total = files.total_bytes
    n = len(files.paths)
    runs: dict[str, list[dict[str, Any]]] = {"knee-node serve": [], "storescp": [],
                                             "storescp +B": []}
    for r in range(repeats):
        runs["knee-node serve"].append(run_node_once(files, folder / f"node{r}"))
        runs["storescp"].append(run_storescp_once(files, folder / f"storescp{r}"))
        runs["storescp +B"].append(run_storescp_once(files, folder / f"storescpB{r}", True))
    peers: dict[str, Any] = {}
    for name, rows in runs.items():
        sec = statistics.median(row["seconds"] for row in rows)
        peers[name] = {
            "median_seconds": round(sec, 3),
            "runs_seconds": [round(row["seconds"], 3) for row in rows],
            "mb_per_s": round(total / 1e6 / sec, 1),
            "images_per_s": round(n / sec, 1),
        }
    peers["knee-node serve"]["peak_rss_mb"] = max(
        (row["peak_rss_mb"] or 0.0) for row in runs["knee-node serve"]
    )
    peers["knee-node serve"]["durability"] = (
        "fsync of file and folder, header read, routed, database row, Celery task, "
        "before each C-STORE response"
    )
    peers["storescp"]["durability"] = "dataset parsed and written, no fsync (page cache)"
    peers["storescp +B"]["durability"] = (
        "bit-preserving: written as received, no fsync (page cache)")
    ratio = peers["knee-node serve"]["mb_per_s"] / peers["storescp"]["mb_per_s"]
    ratio_b = peers["knee-node serve"]["mb_per_s"] / peers["storescp +B"]["mb_per_s"]
    return {
        "files": files.describe(),
        "repeats": repeats,
        "sender": "storescu (dcmtk), one association, all files",
        "peers": peers,
        "ratio_node_to_storescp_default": round(ratio, 3),
        "ratio_node_to_storescp_bit_preserving": round(ratio_b, 3),
        "ratio_node_to_storescp": round(min(ratio, ratio_b), 3),
        "target_ratio": TARGET_RATIO,
        "target_against": "storescp +B",
        "met": ratio_b >= TARGET_RATIO,
        "notes": [
            "queue: Celery on Redis with no worker consuming (the model does not run); "
            "otherwise embedded defaults (SQLite, local spool)",
            f"storescp --max-pdu {STORESCP_MAX_PDU} (its maximum); the node's max PDU is "
            "its default 262144",
        ],
    }
