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
        f"The node takes {ing['ratio_node_to_storescp_bit_preserving']}x the throughput of "
        "storescp +B. "
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


def excess_over_limit(section: dict[str, Any]) -> dict[str, float]:
    """Seconds each stage of the embedded run (one at a time, means) takes beyond its part
    of the limit figure: store+record over the write + fsync, the queue wait, the job over
    the model's forward passes, the SR delivery over one C-STORE association."""
    from benchmarks.targets import embedded_config

    cfg = embedded_config(section) or {}
    st = (cfg.get("one_at_a_time") or {}).get("stages_mean_s", {})
    lim = (section.get("limit") or {}).get("parts_seconds")
    if not st or not lim:
        return {}
    out = {"store+record over one write + fsync": st.get("store_and_record", 0.0) - lim["store"],
           "queue wait": st.get("queue_wait", 0.0),
           "job over the model": st.get("job", 0.0) - lim["model"],
           "SR delivery over one association": st.get("delivery", 0.0) - lim["deliver"]}
    return {k: round(v, 3) for k, v in sorted(out.items(), key=lambda kv: -kv[1])}


def _excess_text(section: dict[str, Any]) -> str:
    excess = excess_over_limit(section)
    if not excess:
        return "No limit figure was measured, so the gap to it is not known. "
    lim = section["limit"]
    return (f"Against the limit figure ({lim['seconds']} s: "
            + ", ".join(f"{k} {v} s" for k, v in lim["parts_seconds"].items())
            + "), the mean stages take beyond their part: "
            + ", ".join(f"{k} {v} s" for k, v in excess.items()) + ". ")


def e2e_gap(res: dict[str, Any]) -> str:
    """Where the knee end-to-end time goes, the gap to the limit, and what would close it."""
    from benchmarks.targets import embedded_config

    cfg = embedded_config(res["e2e"]) or res["e2e"]["configs"][0]
    st = cfg["one_at_a_time"]["stages_mean_s"]
    parts = st.get("job_parts", {})
    biggest = sorted(parts.items(), key=lambda kv: -kv[1])[:3]
    return (
        f"Mean stages one study at a time (embedded defaults): store+record "
        f"{st.get('store_and_record')} s, queue wait {st.get('queue_wait')} s, job "
        f"{st.get('job')} s (largest parts: "
        + ", ".join(f"{k} {v} s" for k, v in biggest)
        + f"), SR delivery {st.get('delivery')} s. " + _excess_text(res["e2e"])
        + "The SC and GSPS are made after the SR is sent (since 2026-12-05; job part "
        "pending_reports, on the reports lane), so the job's reports part is the SR alone. "
        "What would close the gap: the model's two searches run at batch 1 on 2 cores; "
        "batching the two orientation scores of the local search into one forward pass and "
        "fewer refinement passes (`refine_passes`) shorten the model part itself; a delivery "
        "association kept open per destination for a short window takes its set-up out of "
        "each study's delivery." + threads_note(res)
    )


def full_leg_gap(res: dict[str, Any]) -> str:
    """Where the full-leg end-to-end time goes and the gap to its limit."""
    sec = res["e2e_full_leg"]
    st = sec["configs"][0]["one_at_a_time"]["stages_mean_s"]
    parts = sorted(st.get("job_parts", {}).items(), key=lambda kv: -kv[1])[:4]
    return (
        f"Mean stages one full-leg study at a time (embedded defaults): store+record "
        f"{st.get('store_and_record')} s, queue wait {st.get('queue_wait')} s, job "
        f"{st.get('job')} s (largest parts: " + ", ".join(f"{k} {v} s" for k, v in parts)
        + f"), SR delivery {st.get('delivery')} s. " + _excess_text(sec)
        + "A 45 MB instance makes every copy count: the job reads the spooled file again and "
        "the SC is rendered from the full image; the model runs on one torch thread in the "
        "embedded node on 2 cores."
    )


def burst_gap(res: dict[str, Any]) -> str:
    """Why the burst's last SR comes later than the serial job time allows."""
    from benchmarks.targets import embedded_config

    cfg = embedded_config(res["e2e"]) or {}
    b = cfg["burst"]["stages_mean_s"]
    return (
        f"In the burst the mean job takes {b.get('job')} s (one at a time: "
        f"{cfg['one_at_a_time']['stages_mean_s'].get('job')} s), with store+record "
        f"{b.get('store_and_record')} s and SR delivery {b.get('delivery')} s. The jobs "
        "share the 2 cores with the listener still receiving the burst, with the "
        "deliveries of the studies already measured (their own thread since 2026-12-04) "
        "and with the SC/GSPS of the previous study (the reports lane, since 2026-12-05), "
        "so each one runs slower than alone; the in-process worker measures one study at a "
        "time."
    )


def memory_gap(res: dict[str, Any]) -> str:
    """Why a worker exceeds the memory target."""
    return (
        "Peak RSS is dominated by the full-size image held at several precisions (decoded "
        "pixels, float image, box-averaged levels of the patch cache) and by the overlay "
        "secondary capture; measuring on a downsampled copy of the image and freeing the "
        "pixel array before the reports are built would lower it."
    )


#: Target key -> the function writing its gap text.
GAP_WRITERS = {"ingest": ingest_gap, "knee-e2e": e2e_gap, "knee-limit": e2e_gap,
               "full-leg-e2e": full_leg_gap, "burst": burst_gap, "knee-memory": memory_gap,
               "full-leg-memory": memory_gap}


def gap_texts(res: dict[str, Any]) -> dict[str, str]:
    """Texts keyed by the key of each missed target (:mod:`benchmarks.targets`)."""
    out: dict[str, str] = {}
    for t in res.get("targets", []):
        key = str(t.get("key") or t["target"].split(" ")[0])
        if t["met"] is False and key in GAP_WRITERS:
            out[key] = GAP_WRITERS[key](res)
    return out
