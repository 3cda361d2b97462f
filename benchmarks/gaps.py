"""What would close each missed target: text for ``docs/benchmarks.md``, from the figures."""

from __future__ import annotations

from typing import Any


def ingest_gap(res: dict[str, Any]) -> str:
    """Why the listener is slower than storescp and what would close it."""
    ing = res["ingest"]
    prof = ing.get("profile") or {}
    top = ", ".join(f"`{r['function']}` {r['tottime_s']} s" for r in
                    prof.get("top_tottime", [])[:4])
    return (
        f"The node takes {ing['ratio_node_to_storescp']}x storescp's throughput. "
        + (f"The profile's largest own-time entries are {top}. " if top else "")
        + "The durable path costs per instance: one fsync of the file and one of the spool "
        "folder, a second parse of the header from disk, a database commit (SQLite, fsync "
        "again) plus an audit row, and a Redis round trip; storescp only hands the file to "
        "the page cache. What would close the gap, cheapest first: (1) parse the routing "
        "header from the received bytes instead of re-reading the spooled file; (2) write the "
        "audit row in the same transaction as the instance row (one commit instead of two); "
        "(3) let pynetdicom write P-DATA straight to the spool file "
        "(`pynetdicom._config.STORE_RECV_CHUNKED_DATASET`), which removes the in-memory copy "
        "of each dataset; (4) SQLite (already WAL) with `synchronous=NORMAL` instead of "
        "FULL (the spool file stays fsynced; rows lost in a power cut could be restored by a "
        "start-up scan of the spool); (5) fsync the spool folder once per batch "
        "of instances received within a few milliseconds (group commit) rather than once per "
        "instance. Dropping the fsyncs would close it but would break the promise that a "
        "success status means the instance survives a power cut."
    )


def _model_s(stages: dict[str, Any]) -> float:
    parts = stages.get("job_parts", {})
    return float(parts.get("model_global", 0.0)) + float(parts.get("model_local", 0.0))


def threads_note(res: dict[str, Any]) -> str:
    """A sentence when the embedded node's model is much slower than a 1-thread worker's."""
    configs = res.get("e2e", {}).get("configs", [])
    emb = next((c for c in configs if c["workers"] == 0 and "one_at_a_time" in c), None)
    cel = next((c for c in configs if c["workers"] and "one_at_a_time" in c), None)
    if emb is None or cel is None:
        return ""
    a = _model_s(emb["one_at_a_time"]["stages_mean_s"])
    b = _model_s(cel["one_at_a_time"]["stages_mean_s"])
    if b <= 0 or a < 1.5 * b:
        return ""
    return (
        f" The embedded node's model time ({a:.2f} s) is {a / b:.1f}x that of a Celery worker "
        f"with one torch thread ({b:.2f} s): the embedded node runs torch at its default "
        "thread count (all cores) beside the listener's threads, and on 2 shared cores the "
        "threads wait on each other. Setting `model.num_threads: 1` by default on machines "
        "with few cores (or leaving a core to the listener) would close most of this."
    )


def e2e_gap(res: dict[str, Any]) -> str:
    """Where the end-to-end time goes and what would close it."""
    cfg = res["e2e"]["configs"][0]
    st = cfg["one_at_a_time"]["stages_mean_s"]
    parts = st.get("job_parts", {})
    biggest = sorted(parts.items(), key=lambda kv: -kv[1])[:3]
    return (
        f"Mean stages one study at a time (embedded defaults): store+record "
        f"{st.get('store_and_record')} s, queue wait {st.get('queue_wait')} s, job "
        f"{st.get('job')} s (largest parts: "
        + ", ".join(f"{k} {v} s" for k, v in biggest)
        + f"), SR delivery {st.get('delivery')} s. What would close the gap: the model's two "
        "searches run at batch 1 on 2 cores; batching the two orientation scores of the local "
        "search into one forward pass, fewer refinement passes (`refine_passes`), and "
        "building the overlay secondary capture at reduced resolution (or sending the SR "
        "first, before the SC is rendered) each remove part of the job time; a GPU "
        "removes most of the model time." + threads_note(res)
    )


def memory_gap(res: dict[str, Any]) -> str:
    """Why a worker exceeds the memory target."""
    return (
        "Peak RSS is dominated by the full-size image held at several precisions (decoded "
        "pixels, float image, box-averaged levels of the patch cache) and by the overlay "
        "secondary capture; measuring on a downsampled copy of the image and freeing the "
        "pixel array before the reports are built would lower it."
    )


def gap_texts(res: dict[str, Any]) -> dict[str, str]:
    """Texts keyed by the first word of each missed target."""
    out: dict[str, str] = {}
    for t in res.get("targets", []):
        if t["met"] is not False:
            continue
        key = t["target"].split(" ")[0]
        if key == "ingest":
            out[key] = ingest_gap(res)
        elif key == "end":
            out[key] = e2e_gap(res)
        elif key == "worker":
            out[key] = memory_gap(res)
    return out
