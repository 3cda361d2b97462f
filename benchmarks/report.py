"""The benchmark's outputs: a rich table on the terminal and ``docs/benchmarks.md``.

The Markdown is generated from the results dict only (never edited by hand), so the
document always says what the JSON says.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from benchmarks.targets import INGEST_RATIO

#: End-to-end sections of the results: key, label.
E2E_SECTIONS = (("e2e", "end to end"), ("e2e_full_leg", "full-leg end to end"))
#: The hand-kept log of single-section runs, linked from the generated document.
RUNS_LOG = "benchmark_runs.md"
#: The run issue 16 started from (its table), kept to show the profile before and after.
BASELINE = Path(__file__).resolve().parent / "baseline_2026-12-01.json"


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
        rows.append(("ingest", "ratio node / storescp +B",
                     f"{ing['ratio_node_to_storescp_bit_preserving']}x",
                     f"target >= {INGEST_RATIO}x"))
    leg_ing = res.get("ingest_full_leg")
    if leg_ing:
        for name, p in leg_ing["peers"].items():
            rows.append(("full-leg ingest", name, f"{p['mb_per_s']} MB/s, "
                         f"{p['images_per_s']} images/s", f"{leg_ing['files']['files']} files "
                         f"of {leg_ing['files']['mean_file_mb']} MB"))
        rows.append(("full-leg ingest", "ratio node / storescp +B",
                     f"{leg_ing['ratio_node_to_storescp_bit_preserving']}x", "no target"))
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
    for key, label in E2E_SECTIONS:
        sec = res.get(key) or {}
        for c in sec.get("configs", []):
            for mode in ("one_at_a_time", "burst"):
                m = c.get(mode)
                if m:
                    extra = (f", {m['studies_per_min']} studies/min"
                             if "studies_per_min" in m else "")
                    rows.append((label, f"{c['name']}: {mode.replace('_', ' ')} "
                                 f"({m['studies']})", f"p50 {m['p50_s']} s, p95 {m['p95_s']} s"
                                 f"{extra}", "peak RSS " + ", ".join(
                                     f"{k} {v} MiB" for k, v in c["peak_rss_mb"].items())))
        lim = sec.get("limit")
        if lim:
            ps = lim["parts_seconds"]
            rows.append(("limit", f"{lim['kind']}: store + model + deliver",
                         f"{ps['store']} + {ps['model']} + {ps['deliver']} = "
                         f"{lim['seconds']} s", f"end to end p95 = {sec['p95_to_limit']}x "
                         "the limit"))
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
        rows.append(("target", t["target"], _fmt(t["measured"], " " + t["unit"])
                     + ("" if t.get("limit") is None else f" (limit {_fmt(t['limit'])})"),
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
    missed = {target_key(t): t for t in res.get("targets", []) if t["met"] is False}
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
    for key, sec_key, label in (("knee-e2e", "e2e", "knee"),
                                ("full-leg-e2e", "e2e_full_leg", "full-leg")):
        if key not in missed and not (key == "knee-e2e" and "knee-limit" in missed):
            continue
        for c in (res.get(sec_key) or {}).get("configs", []):
            m = c.get("one_at_a_time")
            if m:
                lines.append(f"{label} end to end, {c['name']}, one at a time, mean seconds "
                             "per stage: " + stage_text(m["stages_mean_s"]))
        lim = (res.get(sec_key) or {}).get("limit")
        if lim:
            lines.append(f"{label} limit: " + ", ".join(
                f"{k} {v} s" for k, v in lim["parts_seconds"].items())
                + f" = {lim['seconds']} s")
    if "knee-memory" in missed or "full-leg-memory" in missed:
        lines.append("worker memory: see the end-to-end rows (peak RSS per configuration)")
    return lines


def target_key(t: dict[str, Any]) -> str:
    """A target's key (results written before targets had keys: its first word)."""
    return str(t.get("key") or t["target"].split(" ")[0])


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


def _header(res: dict[str, Any]) -> list[str]:
    m = res["machine"]
    return [
        "# Benchmarks",
        "",
        "> Generated by `knee-node bench` from `benchmarks/results.json`; do not edit by hand.",
        f"> Hand-written notes and single-section runs are in [{RUNS_LOG}]({RUNS_LOG}).",
        "> Research use only; the model is trained on synthetic radiographs only.",
        "",
        f"* command: `{res['command']}`",
        f"* run: {res['started_utc']}, {res['duration_s']} s",
        f"* machine: {m['platform']}, {m['cpus']} CPUs ({m['processor']}), Python "
        f"{m['python']}, torch {m['torch']}, no GPU",
        f"* load average (1, 5, 15 min) before: {res['load_average_before']}, after: "
        f"{res['load_average_after']} (the benchmark's own processes count from the start)",
    ]


def _targets_md(res: dict[str, Any]) -> list[str]:
    L = ["", "## Targets (issue 16, \"Done when\")", ""]
    L += _md_table(["target", "limit", "measured", "verdict", "note"],
                   [[t["target"], _fmt(t.get("limit"), " " + t["unit"]),
                     _fmt(t["measured"], " " + t["unit"]), _met(t["met"]), t.get("note", "")]
                    for t in res["targets"]])
    return L


def _ingest_md(ing: dict[str, Any], title: str, judged: bool = True) -> list[str]:
    """An ingest section; ``judged``: issue 16's ingest target applies to these files."""
    f = ing["files"]
    L = ["", title, "", _load_line(ing), "",
         f"{f['files']} {f['sop_class']} files ({f['distinct_images']} distinct synthetic "
         f"images copied as new studies), {f['mean_file_mb']} MB each ({f['total_mb']} MB), "
         f"{f['transfer_syntax']}, sent by {ing['sender']}, {ing['repeats']} alternating "
         "runs per receiver, medians.", ""]
    L += _md_table(["receiver", "MB/s", "images/s", "median s", "runs s", "durability"],
                   [[k, p["mb_per_s"], p["images_per_s"], p["median_seconds"],
                     p["runs_seconds"], p["durability"]] for k, p in ing["peers"].items()])
    L += ["", f"Ratio knee-node / storescp `+B` (bit-preserving): "
          f"**{ing['ratio_node_to_storescp_bit_preserving']}x** ("
          + (f"issue 16's target {INGEST_RATIO}x" if judged else "no target for these files")
          + f"); default mode {ing['ratio_node_to_storescp_default']}x. "
          "storescp does **not** fsync; the node fsyncs each file and its folder and commits "
          "a database row before answering."]
    L += [""] + [f"* {n}" for n in ing["notes"]]
    speeds = [p["mb_per_s"] for p in ing["peers"].values()]
    if max(speeds) <= 1.1 * min(speeds):
        L += ["* every receiver is within 10 % of the others: the common sender "
              "(`storescu`, one association, one file after the other) probably bounds "
              "these figures, so the ratio says the node keeps up with a dcmtk sender, "
              "not how fast it could receive from several senders at once"]
    return L + _profile_md(ing.get("profile"))


def _profile_md(prof: dict[str, Any] | None) -> list[str]:
    if not prof or not prof.get("top_tottime"):
        return []
    L = ["", f"Profile of the listener (cProfile in every thread, {prof['files']} "
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
    return L


def _inference_md(inf: dict[str, Any]) -> list[str]:
    L = ["", "## 2. Inference: predictor latency per image (CPU)", "", _load_line(inf), "",
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
                          else f"{cu['device']}: {cu['note']}."),
          "", f"The full-leg predictor (`knee-node bench-model --kind full-leg`) and the OpenMP "
          f"wait policy measured both ways: [{RUNS_LOG}]({RUNS_LOG})."]
    return L


def _e2e_rows(e2e: dict[str, Any]) -> tuple[list[list[Any]], list[list[Any]]]:
    """The latency rows and the stage rows of an end-to-end section."""
    rows, srows = [], []
    for c in e2e["configs"]:
        for mode in ("one_at_a_time", "burst"):
            x = c.get(mode)
            if not x:
                continue
            rows.append([c["name"], f"{mode.replace('_', ' ')} ({x['studies']})",
                         x["p50_s"], x["p95_s"], x["max_s"], x.get("studies_per_min", ""),
                         ", ".join(f"{k} {v}" for k, v in c["peak_rss_mb"].items())])
            st = x["stages_mean_s"]
            srows.append([c["name"], mode.replace("_", " "), st.get("store_and_record"),
                          st.get("queue_wait"), st.get("job"),
                          ", ".join(f"{k} {v}" for k, v in st["job_parts"].items()),
                          st.get("delivery")])
    return rows, srows


def _limit_md(sec: dict[str, Any]) -> list[str]:
    lim = sec.get("limit")
    if not lim:
        return ["", "Limit figure: not measured (no study went one at a time)."]
    p = lim["parts"]
    objects = ", ".join(f"{o.get('object', o['modality'])} {o['bytes'] / 1e3:.0f} kB"
                        for o in p["deliver"]["objects"])
    L = ["", f"**Limit figure ({lim['kind']})**, measured in this run right after the "
         "studies above: the stages no design can skip (`benchmarks/limit.py`).", ""]
    L += _md_table(["part", "what was measured", "s"], [
        ["store", f"one write + fsync of {p['store']['bytes'] / 1e6:.1f} MB (an instance of "
         f"this kind) on the spool's disk, median of {len(p['store']['runs_seconds'])} "
         f"({p['store']['mb_per_s']} MB/s)", p["store"]["seconds"]],
        ["model", f"{p['model']['what']}, mean of {p['model']['images']}, "
         f"{p['model']['threads']} torch thread(s) as the embedded node uses "
         f"(`{p['model']['command']}`{p['model'].get('how', '')})", p["model"]["seconds"]],
        ["deliver", f"one association, one C-STORE each of the node's result objects "
         f"({objects}) to a pynetdicom SCP on loopback, to the last response, median of "
         f"{len(p['deliver']['runs_seconds'])}", p["deliver"]["seconds"]],
        ["**limit**", "sum", f"**{lim['seconds']}**"],
    ])
    one = (sec["configs"][0].get("one_at_a_time") or {}) if sec.get("configs") else {}
    L += ["", f"End-to-end p95 (embedded defaults, one at a time) {one.get('p95_s')} s = "
          f"**{sec.get('p95_to_limit')}x the limit**."]
    return L


def _e2e_md(e2e: dict[str, Any], title: str) -> list[str]:
    rows, srows = _e2e_rows(e2e)
    L = ["", title, "", _load_line(e2e), ""]
    if e2e.get("files"):
        f = e2e["files"]
        L += [f"{f['files']} {f['sop_class']} studies ({f['distinct_images']} distinct, "
              f"{f['example_rows_columns'][0]} x {f['example_rows_columns'][1]} rows x "
              f"columns), {f['mean_file_mb']} MB each, {f['transfer_syntax']}.", ""]
    L += _md_table(["configuration", "studies", "p50 s", "p95 s", "max s", "studies/min",
                    "peak RSS MiB"], rows)
    L += ["", "Mean seconds per stage (from the node's rows: received, job started/"
          "finished, job timings; SR arrival at the destination):", ""]
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
    if "limit" in e2e:
        L += _limit_md(e2e)
    return L


def _scaling_md(sc: dict[str, Any]) -> list[str]:
    L = ["", "## 4. Scaling: studies per minute against workers", "", _load_line(sc), ""]
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
    return L + [f"* {n}" for n in sc["notes"]]


def _memory_md(mem: dict[str, Any]) -> list[str]:
    return ["", "## 5. Memory on receipt", "",
            f"{mem['instances']} instances of {mem['instance_mb']} MB sent at once by "
            f"{mem['instances']} `storescu` processes to serve (routed to \"ignored\", no "
            f"model): {mem['seconds']} s; serve's peak RSS {mem['serve_peak_rss_mb_before']} "
            f"MiB before, **{mem['serve_peak_rss_mb']} MiB** after (limit {mem['limit_mb']:.0f}"
            " MiB)."]


def _gaps_md(res: dict[str, Any], gaps: dict[str, str]) -> list[str]:
    missed = [t for t in res["targets"] if t["met"] is False]
    L = ["", "## Where targets are missed, and what would close the gap", ""]
    if not missed:
        L += ["Every measured target is met."]
    for t in missed:
        L += [f"### {t['target']} (measured {_fmt(t['measured'], ' ' + t['unit'])})", "",
              gaps.get(target_key(t), "No analysis written for this target yet."), ""]
    return L


def _one_at_a_time(res: dict[str, Any]) -> dict[str, Any] | None:
    """The embedded configuration's one-at-a-time knee figures of a results dict."""
    for c in (res.get("e2e") or {}).get("configs", []):
        if c["name"].startswith("embedded") and c.get("one_at_a_time"):
            return dict(c["one_at_a_time"])
    return None


def before_after_md(res: dict[str, Any], baseline: dict[str, Any] | None) -> list[str]:
    """The knee study's profile (embedded defaults, one at a time) in ``baseline`` and in
    ``res``, stage by stage; empty when either lacks it."""
    old, new = (_one_at_a_time(baseline or {}), _one_at_a_time(res))
    if old is None or new is None:
        return []
    so, sn = old["stages_mean_s"], new["stages_mean_s"]
    rows: list[list[Any]] = [["end to end p50 / p95", f"{old['p50_s']} / {old['p95_s']}",
                              f"{new['p50_s']} / {new['p95_s']}"]]
    for key, label in (("store_and_record", "store + record"), ("queue_wait", "queue wait"),
                       ("job", "job")):
        rows.append([label, so.get(key), sn.get(key)])
    for part in sorted(set(so.get("job_parts", {})) | set(sn.get("job_parts", {}))):
        rows.append([f"- job part {part}", so.get("job_parts", {}).get(part, "-"),
                     sn.get("job_parts", {}).get(part, "-")])
    rows.append(["SR delivery", so.get("delivery"), sn.get("delivery")])
    ing_o, ing_n = (baseline or {}).get("ingest"), res.get("ingest")
    if ing_o and ing_n:
        rows.append(["ingest node / storescp +B", f"{ing_o['ratio_node_to_storescp']}x",
                     f"{ing_n['ratio_node_to_storescp']}x"])
    L = ["", "## Profile before and after (issue 16)", "",
         f"Knee studies, embedded defaults, one at a time, mean seconds per stage: the run issue "
         f"16 started from (`benchmarks/{BASELINE.name}`, "
         f"{(baseline or {}).get('started_utc', '?')}) "
         f"and this run. The gap to the limit is in section 3; what would close it below.", ""]
    return L + _md_table(["stage", "before s", "now s"], rows)


def load_baseline(path: Path = BASELINE) -> dict[str, Any] | None:
    """The baseline results, or None when the file is absent or unreadable."""
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, ValueError):
        return None


def markdown(res: dict[str, Any], gaps: dict[str, str]) -> str:
    """``docs/benchmarks.md`` from the results; ``gaps`` maps a missed target's key to the
    text saying what would close it."""
    L = _header(res) + _targets_md(res)
    if res.get("ingest"):
        L += _ingest_md(res["ingest"], "## 1. Ingest: C-STORE throughput")
    if res.get("inference"):
        L += _inference_md(res["inference"])
    if res.get("e2e"):
        L += _e2e_md(res["e2e"], "## 3. End to end: C-STORE to SR at the destination")
    if res.get("scaling"):
        L += _scaling_md(res["scaling"])
    if res.get("memory"):
        L += _memory_md(res["memory"])
    if res.get("e2e_full_leg"):
        L += _e2e_md(res["e2e_full_leg"], "## 6. Full-leg end to end: C-STORE to SR")
    if res.get("ingest_full_leg"):
        L += _ingest_md(res["ingest_full_leg"], "## 7. Full-leg ingest: C-STORE throughput",
                        judged=False)
    L += before_after_md(res, load_baseline())
    L += _gaps_md(res, gaps)
    L += ["", "## Reproduce", "", "```sh", res["command"], "```", "",
          "Run it on a quiet machine (the load average is recorded above): figures taken "
          "while another job loads the CPU are not comparable.", "",
          "## Other runs", "",
          f"Single-section runs, A/B measurements and notes written by hand (with their "
          f"commands and JSON files under `benchmarks/`) are kept in [{RUNS_LOG}]({RUNS_LOG}), "
          "which this generator never writes.", ""]
    return "\n".join(L)
