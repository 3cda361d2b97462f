"""The benchmark's outputs: a rich table on the terminal and ``docs/benchmarks.md``.

The Markdown is generated from the results dict only (never edited by hand), so the
document always says what the JSON says.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table


def _fmt(v: Any, unit: str = "") -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return f"{v:.3g}{unit}" if abs(v) < 100 else f"{v:.0f}{unit}"
    return f"{v}{unit}"


def _met(v: bool | None) -> str:
    return "not measured" if v is None else ("met" if v else "**missed**")


def summary_rows(res: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """(section, what, figure, note) rows shared by the table and the document."""
    rows: list[tuple[str, str, str, str]] = []
    ing = res.get("ingest")
    if ing:
        for name, p in ing["peers"].items():
            rows.append(("ingest", name, f"{p['mb_per_s']} MB/s, {p['images_per_s']} images/s",
                         p["durability"]))
        rows.append(("ingest", "ratio node / faster storescp",
                     f"{ing['ratio_node_to_storescp']}x", "target >= 0.9x"))
    inf = res.get("inference")
    if inf:
        for r in inf["rows"]:
            lat = r["latency_ms"]
            rows.append(("inference", f"{r['weights']} {r['widths']} {r['threads']} thr",
                         f"global {lat['global']['mean']} + local {lat['local']['mean']} = "
                         f"{lat['total']['mean']} ms", f"peak RSS {r['peak_rss_mb']} MiB, "
                         f"{r['images']} images"))
        if not inf["cuda"]["available"]:
            rows.append(("inference", "CUDA", "not measured", inf["cuda"]["reason"]))
    for c in (res.get("e2e") or {}).get("configs", []):
        for mode in ("one_at_a_time", "burst"):
            m = c.get(mode)
            if m:
                extra = f", {m['studies_per_min']} studies/min" if "studies_per_min" in m else ""
                rows.append(("end to end", f"{c['name']}: {mode.replace('_', ' ')} "
                             f"({m['studies']})", f"p50 {m['p50_s']} s, p95 {m['p95_s']} s"
                             f"{extra}", "peak RSS " + ", ".join(
                                 f"{k} {v} MiB" for k, v in c["peak_rss_mb"].items())))
    sc = res.get("scaling")
    if sc:
        for r in sc["rows"]:
            rows.append(("scaling", f"{r['workers']} worker(s), {r['model_threads']} thr",
                         f"{r['studies_per_min']} studies/min", f"{r['studies']} at once"))
        g = sc["per_gpu"]
        rows.append(("scaling", "per GPU (predicted)",
                     f"{g['one_worker_per_gpu_studies_per_min']} studies/min per worker",
                     f"GPU-bound {g['gpu_bound_studies_per_min']:.0f}/min; assumption in doc"))
    for t in res.get("targets", []):
        rows.append(("target", t["target"], _fmt(t["measured"], " " + t["unit"]),
                     _met(t["met"]).replace("*", "")))
    return rows


def print_table(res: dict[str, Any], console: Console | None = None) -> None:
    """Print the summary table (and where the time goes for missed targets)."""
    console = console or Console()
    table = Table(title=f"knee-node bench ({res['started_utc']}, load before "
                        f"{res['load_average_before'][0]})")
    for col in ("section", "what", "figure", "note"):
        table.add_column(col)
    for row in summary_rows(res):
        table.add_row(*row)
    console.print(table)
    for line in where_time_goes(res):
        console.print(line)


def where_time_goes(res: dict[str, Any]) -> list[str]:
    """Lines explaining each missed target from the measured breakdowns."""
    lines: list[str] = []
    missed = {t["target"].split(" ")[0]: t for t in res.get("targets", []) if t["met"] is False}
    ing = res.get("ingest") or {}
    if "ingest" in missed and ing.get("profile"):
        prof = ing["profile"]
        lines.append(f"ingest profile ({prof['files']} files, {prof['seconds_under_profiler']} s "
                     "under cProfile, all listener threads), top functions by own time:")
        for r in prof["top_tottime"][:10]:
            lines.append(f"  {r['tottime_s']:>7.3f} s own, {r['cumtime_s']:>7.3f} s cum, "
                         f"{r['calls']:>7} calls  {r['function']}")
        lines.append("C-STORE handler parts (cumulative): " + ", ".join(
            f"{r['part']} {r['cumtime_s']} s" for r in prof.get("handler_parts", [])))
    if "end" in missed:
        for c in (res.get("e2e") or {}).get("configs", []):
            m = c.get("one_at_a_time")
            if m:
                lines.append(f"end to end, {c['name']}, one at a time, mean seconds per stage: "
                             + stage_text(m["stages_mean_s"]))
    if "worker" in missed:
        lines.append("worker memory: see the inference rows (peak RSS per configuration)")
    return lines


def stage_text(st: dict[str, Any]) -> str:
    """One line: store, queue wait, job (its parts), delivery."""
    parts = ", ".join(f"{k} {v}" for k, v in st.get("job_parts", {}).items())
    return (f"store+record {st.get('store_and_record')}, queue wait {st.get('queue_wait')}, "
            f"job {st.get('job')} ({parts}), SR delivery {st.get('delivery')}")


def _load_line(section: dict[str, Any]) -> str:
    load = section.get("load_average_at_start")
    return "" if load is None else f"Load average (1, 5, 15 min) when the section started: {load}."


def _md_table(header: list[str], rows: list[list[Any]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return out


def markdown(res: dict[str, Any], gaps: dict[str, str]) -> str:
    """``docs/benchmarks.md`` from the results; ``gaps`` maps a missed target to the text
    saying what would close it."""
    m = res["machine"]
    L: list[str] = [
        "# Benchmarks",
        "",
        "> Generated by `knee-node bench` from `benchmarks/results.json`; do not edit by hand.",
        "> Research use only; the model is trained on synthetic radiographs only.",
        "",
        f"* command: `{res['command']}`",
        f"* run: {res['started_utc']}, {res['duration_s']} s",
        f"* machine: {m['platform']}, {m['cpus']} CPUs ({m['processor']}), Python "
        f"{m['python']}, torch {m['torch']}, no GPU" ,
        f"* load average (1, 5, 15 min) before: {res['load_average_before']}, after: "
        f"{res['load_average_after']} (the benchmark's own processes count from the start)",
        "",
        "## Targets",
        "",
    ]
    L += _md_table(["target", "measured", "verdict"],
                   [[t["target"], _fmt(t["measured"], " " + t["unit"]), _met(t["met"])]
                    for t in res["targets"]])
    ing = res.get("ingest")
    if ing:
        f = ing["files"]
        L += ["", "## 1. Ingest: C-STORE throughput", "", _load_line(ing), "",
              f"{f['files']} DX files ({f['distinct_images']} distinct synthetic images copied "
              f"as new studies), {f['mean_file_mb']} MB each ({f['total_mb']} MB), "
              f"{f['transfer_syntax']}, sent by {ing['sender']}, {ing['repeats']} alternating "
              "runs per receiver, medians.", ""]
        L += _md_table(["receiver", "MB/s", "images/s", "median s", "runs s", "durability"],
                       [[k, p["mb_per_s"], p["images_per_s"], p["median_seconds"],
                         p["runs_seconds"], p["durability"]] for k, p in ing["peers"].items()])
        L += ["", f"Ratio knee-node / storescp: **{ing['ratio_node_to_storescp']}x** against "
              f"the faster storescp mode (default mode {ing['ratio_node_to_storescp_default']}x,"
              f" bit-preserving `+B` {ing['ratio_node_to_storescp_bit_preserving']}x; target "
              f"{ing['target_ratio']}x). storescp does **not** fsync; the node fsyncs each file "
              "and its folder and commits a database row before answering."]
        L += [""] + [f"* {n}" for n in ing["notes"]]
        speeds = [p["mb_per_s"] for p in ing["peers"].values()]
        if max(speeds) <= 1.1 * min(speeds):
            L += ["* every receiver is within 10 % of the others: the common sender "
                  "(`storescu`, one association, one file after the other) probably bounds "
                  "these figures, so the ratio says the node keeps up with a dcmtk sender, "
                  "not how fast it could receive from several senders at once"]
        prof = ing.get("profile")
        if prof and prof.get("top_tottime"):
            L += ["", f"Profile of the listener (cProfile in every thread, {prof['files']} "
                  f"files, {prof['seconds_under_profiler']} s under the profiler), top by own "
                  "time:", ""]
            L += _md_table(["function", "calls", "own s", "cumulative s"],
                           [[f"`{r['function']}`", r["calls"], r["tottime_s"], r["cumtime_s"]]
                            for r in prof["top_tottime"][:12]])
            L += ["", "Waiting in pynetdicom's polling loops (" + ", ".join(
                prof.get("idle_excluded", [])) + ") is left out. Parts of the C-STORE "
                "handler (cumulative seconds under the profiler):", ""]
            L += _md_table(["part", "calls", "cumulative s"],
                           [[r["part"], r["calls"], r["cumtime_s"]]
                            for r in prof.get("handler_parts", [])])
    inf = res.get("inference")
    if inf:
        L += ["", "## 2. Inference: predictor latency per image (CPU)", "", _load_line(inf), "",
              f"{inf['command_used']}. Full-size synthetic radiographs, one untimed warm-up "
              "call. Paper widths are **randomly initialised** (timing only).", ""]
        L += _md_table(["weights", "widths (global, local)", "threads", "images", "global ms",
                        "local ms", "total ms (mean)", "total ms p95", "peak RSS MiB"],
                       [[r["weights"], f"{r['widths']['global']}, {r['widths']['local']}",
                         r["threads"], r["images"], r["latency_ms"]["global"]["mean"],
                         r["latency_ms"]["local"]["mean"], r["latency_ms"]["total"]["mean"],
                         r["latency_ms"]["total"]["p95"], r["peak_rss_mb"]]
                        for r in inf["rows"]])
        for w in sorted({r["weights"] for r in inf["rows"]}):
            by_t = {r["threads"]: r["latency_ms"]["total"]["mean"] for r in inf["rows"]
                    if r["weights"] == w}
            if 1 in by_t and 2 in by_t and by_t[2] > 1.2 * by_t[1]:
                L += ["", f"{w}: 2 threads take {by_t[2] / by_t[1]:.1f}x the time of 1 thread. "
                      "torch's intra-op threads wait for each other at every layer; with 2 "
                      "cores shared with other processes (load average above) one of them is "
                      "often descheduled. One thread per process, more processes, is the "
                      "better use of a small machine."]
        cu = inf["cuda"]
        L += ["", "CUDA: " + (f"not measured ({cu['reason']})." if not cu["available"]
                              else f"{cu['device']}: {cu['note']}.")]
    e2e = res.get("e2e")
    if e2e:
        L += ["", "## 3. End to end: C-STORE to SR at the destination", "", _load_line(e2e), ""]
        rows = []
        for c in e2e["configs"]:
            for mode in ("one_at_a_time", "burst"):
                x = c.get(mode)
                if x:
                    rows.append([c["name"], f"{mode.replace('_', ' ')} ({x['studies']})",
                                 x["p50_s"], x["p95_s"], x["max_s"],
                                 x.get("studies_per_min", ""),
                                 ", ".join(f"{k} {v}" for k, v in c["peak_rss_mb"].items())])
        L += _md_table(["configuration", "studies", "p50 s", "p95 s", "max s", "studies/min",
                        "peak RSS MiB"], rows)
        L += ["", "Mean seconds per stage (from the node's rows: received, job started/"
              "finished, job timings; SR arrival at the destination):", ""]
        srows = []
        for c in e2e["configs"]:
            for mode in ("one_at_a_time", "burst"):
                x = c.get(mode)
                if x:
                    st = x["stages_mean_s"]
                    srows.append([c["name"], mode.replace("_", " "), st.get("store_and_record"),
                                  st.get("queue_wait"), st.get("job"),
                                  ", ".join(f"{k} {v}" for k, v in st["job_parts"].items()),
                                  st.get("delivery")])
        L += _md_table(["configuration", "mode", "store+record", "queue wait", "job",
                        "job parts", "SR delivery"], srows)
        L += ["", "Warm-up (first study, model load): " + ", ".join(
            f"{c['name']} {c['warmup_seconds']} s" for c in e2e["configs"])]
        L += [""] + [f"* {n}" for n in e2e["notes"]]
        for c in e2e["configs"]:
            one, burst = c.get("one_at_a_time"), c.get("burst")
            if not (one and burst):
                continue
            d1, db = one["stages_mean_s"].get("delivery"), burst["stages_mean_s"].get("delivery")
            if d1 and db and db > 3 * d1:
                L += [f"* {c['name']}, burst: the SR delivery takes {db} s against {d1} s one "
                      "at a time. Delivery tasks join the same first-in first-out queue as the "
                      "measurements, behind every study still waiting, so results come back "
                      "only when the burst is nearly done; a delivery queue of its own (or a "
                      "higher priority) would return each SR right after its measurement."]
    sc = res.get("scaling")
    if sc:
        L += ["", "## 4. Scaling: studies per minute against workers", "", _load_line(sc), ""]
        L += _md_table(["workers", "torch threads each", "studies at once", "studies/min",
                        "p95 s", "peak RSS MiB"],
                       [[r["workers"], r["model_threads"], r["studies"], r["studies_per_min"],
                         r["p95_s"], ", ".join(f"{k} {v}" for k, v in r["peak_rss_mb"].items())]
                        for r in sc["rows"]])
        g = sc["per_gpu"]
        L += ["", f"2 workers / 1 worker: {sc['speedup_2_over_1']}x on 2 cores.", "",
              f"**Per GPU (prediction)**: {g['assumption']}. Measured CPU stages "
              f"{g['cpu_stages_s_per_study']} s per study (model on this CPU "
              f"{g['model_s_per_study_on_cpu']} s). One worker process per GPU: about "
              f"**{g['one_worker_per_gpu_studies_per_min']} studies/min**; the GPU itself would "
              f"saturate at about {g['gpu_bound_studies_per_min']:.0f} studies/min, which needs "
              f"about {g['cpu_workers_to_saturate_one_gpu']} CPU worker processes feeding it "
              "(prefork `worker_concurrency`).", ""]
        L += [f"* {n}" for n in sc["notes"]]
    missed = [t for t in res["targets"] if t["met"] is False]
    L += ["", "## Where targets are missed, and what would close the gap", ""]
    if not missed:
        L += ["Every measured target is met."]
    for t in missed:
        key = t["target"].split(" ")[0]
        L += [f"### {t['target']} (measured {_fmt(t['measured'], ' ' + t['unit'])})", "",
              gaps.get(key, "No analysis written for this target yet."), ""]
    L += ["", "## Reproduce", "", "```sh", res["command"], "```", "",
          "Run it on a quiet machine (the load average is recorded above): figures taken "
          "while another job loads the CPU are not comparable.", ""]
    return "\n".join(L)
