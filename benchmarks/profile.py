"""Where the listener's time goes: cProfile of every thread of an in-process node.

The node runs in this process with the ingest settings (Celery queue nobody consumes);
``storescu`` pushes the files from its own process. pynetdicom serves each association in
a thread of its own, so a profiler is started in every thread created while profiling and
their statistics are merged.
"""

from __future__ import annotations

import cProfile
import io
import pstats
import sys
import threading
import time
from pathlib import Path
from typing import Any

from benchmarks.data import FileSet
from benchmarks.ingest import push
from benchmarks.nodes import node_config
from benchmarks.procs import BROKER_URL, purge_queue, unique_name

#: Functions where a thread waits rather than works (pynetdicom's polling loops).
IDLE = ("time.sleep", "acquire", "select", "poll", "wait")
#: Parts of the C-STORE handler: (label, file name, function name) looked up in the stats.
HANDLER_PARTS = (
    ("C-STORE handler (all)", "listener.py", "on_store"),
    ("spool write (store_received)", "spool.py", "store_received"),
    ("fsync (file and folder)", "~", "<built-in method posix.fsync>"),
    ("header re-read (dcmread)", "filereader.py", "dcmread"),
    ("intake (route, record, dedupe, queue)", "intake.py", "take_in"),
    ("routing", "routing.py", "route"),
    ("audit row", "session.py", "audit"),
    ("SQLite commits", "~", "<method 'commit' of 'sqlite3.Connection' objects>"),
    ("queue submit (Redis)", "queue.py", "submit_measurement"),
)


def _idle(func: tuple[str, int, str]) -> bool:
    return func[0] == "~" and any(word in func[2] for word in IDLE)


def handler_parts(stats: pstats.Stats) -> list[dict[str, Any]]:
    """Cumulative seconds and calls of each part of the C-STORE handler."""
    rows = []
    for label, file, name in HANDLER_PARTS:
        calls, cum = 0, 0.0
        for func, (_cc, nc, _tt, ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
            if func[2] == name and (func[0] == file or Path(func[0]).name == file):
                calls, cum = calls + int(nc), cum + float(ct)
        rows.append({"part": label, "calls": calls, "cumtime_s": round(cum, 3)})
    return rows


def _top(stats: pstats.Stats, key: str, n: int) -> list[dict[str, Any]]:
    stats.sort_stats(key)
    rows = []
    funcs = [f for f in stats.fcn_list if not _idle(f)]  # type: ignore[attr-defined]
    for func in funcs[:n]:
        _cc, ncalls, tottime, cumtime, _callers = stats.stats[func]  # type: ignore[attr-defined]
        filename, line, name = func
        where = Path(filename).name if filename != "~" else "builtin"
        rows.append({"function": f"{where}:{line}({name})", "calls": int(ncalls),
                     "tottime_s": round(tottime, 3), "cumtime_s": round(cumtime, 3)})
    return rows


def profile_listener(files: FileSet, folder: Path, top: int = 15) -> dict[str, Any]:
    """Push ``files`` to an in-process node under cProfile; top functions by own time."""
    from dicom_node.node import KneeNode
    from dicom_node.settings import Settings

    queue = unique_name("knee_node_bench_profile")
    settings = Settings.model_validate(node_config(
        folder / "var", 0, queue={"backend": "celery", "broker_url": BROKER_URL,
                                  "queue_name": queue}))
    profiles: list[cProfile.Profile] = []
    lock = threading.Lock()

    def start_in_thread(frame: Any, event: str, arg: Any) -> None:
        sys.setprofile(None)
        p = cProfile.Profile()
        with lock:
            profiles.append(p)
        p.enable()

    node = KneeNode(settings, port=0).start()
    try:
        threading.setprofile(start_in_thread)
        try:
            t0 = time.perf_counter()
            push(files, node.port, settings.node.ae_title)
            seconds = time.perf_counter() - t0
        finally:
            threading.setprofile(None)
        time.sleep(0.2)  # let the association thread finish
    finally:
        node.stop()
        purge_queue(BROKER_URL, queue)
    stream = io.StringIO()
    merged: pstats.Stats | None = None
    for p in profiles:
        try:
            p.create_stats()
        except ValueError:
            continue
        if not p.stats:
            continue
        if merged is None:
            merged = pstats.Stats(p, stream=stream)
        else:
            merged.add(p)
    if merged is None:
        return {"seconds": round(seconds, 3), "top_tottime": [], "top_cumtime": []}
    return {
        "files": len(files.paths),
        "seconds_under_profiler": round(seconds, 3),
        "threads_profiled": len(profiles),
        "idle_excluded": list(IDLE),
        "handler_parts": handler_parts(merged),
        "top_tottime": _top(merged, "tottime", top),
        "top_cumtime": _top(merged, "cumulative", top),
    }
