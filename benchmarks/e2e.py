"""End to end: first byte of the C-STORE to the SR accepted by the destination.

A pynetdicom storage SCP in this process stands in for the PACS and timestamps every SR
and secondary capture it accepts; a pynetdicom SCU in this process sends the studies to
a ``knee-node serve`` process (and its ``knee-node worker`` processes with Celery). Each
study is one synthetic DX instance; its latency runs from the start of its C-STORE to the
SR of the same study accepted by the destination.

Where the time goes comes from the node's own rows: received (spooled and recorded),
job started and finished (with the job's stage timings), SR arrival.
"""

from __future__ import annotations

import statistics
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from pydicom import dcmread
from pydicom.dataset import Dataset
from pynetdicom import AE

from benchmarks.nodes import NodeProcesses
from benchmarks.procs import BenchmarkError
from dicom_node.peers import PACS_TRANSFER_SYNTAXES, StandInPacs

#: Job timing keys (``jobs.timings_ms``) reported as stages, in pipeline order.
JOB_STAGES = ("read_ms", "model_preprocess", "model_global", "model_local", "reports_ms",
              "pending_reports_ms")
#: Job timing keys that sum others (left out when every key is reported).
TOTAL_KEYS = frozenset({"total_ms", "model_total"})
#: Object kinds the benchmark's destination asks for: all of a knee study's.
OBJECTS = ("SR", "SC", "GSPS")
#: Their modalities, as they arrive at the destination.
KNEE_MODALITIES = ("SR", "OT", "PR")
#: A full-leg study's objects: its SR and SC.
FULL_LEG_MODALITIES = ("SR", "OT")
#: The result objects the limit figure sends again (``benchmarks.limit``).
RESULT_OBJECTS = ("SR", "SC")
#: SOP Class UID prefix of the secondary captures (single- and multi-frame).
SC_CLASS_PREFIX = "1.2.840.10008.5.1.4.1.1.7"


class Destination(StandInPacs):
    """The stand-in PACS (``dicom_node.peers``); arrival times per study.

    It accepts the compressed syntaxes a PACS such as Orthanc takes out of the box, so the
    lossless-compressed SC goes as it is written; a stand-in that took uncompressed objects
    only made every delivery decode the SC again (part of the 0.23 s delivery of 2026-12-01).
    """

    def __init__(self, ae_title: str = "BENCH_PACS") -> None:
        super().__init__(ae_title, transfer_syntaxes=PACS_TRANSFER_SYNTAXES)

    def destination_config(self) -> dict[str, Any]:
        """The node's ``delivery`` section pointing here, asking for every object a knee
        study has (SR, SC and the optional GSPS): the job's ``reports`` part then times the
        same writers as ``knee-node bench reports`` and issue 15's SR + SC + GSPS target."""
        return {"destinations": [{**self.destination("bench"), "objects": list(OBJECTS)}]}


class Sender:
    """SCU sending in-memory datasets to the node; start time of each C-STORE."""

    def __init__(self, port: int, called_ae: str) -> None:
        self.port, self.called_ae = port, called_ae
        self.sent_at: dict[str, float] = {}

    def send(self, datasets: list[Dataset]) -> None:
        """Send ``datasets`` in one association, one after the other."""
        ae = AE(ae_title="BENCH_MODALITY")
        for sop, ts in {(str(d.SOPClassUID), str(d.file_meta.TransferSyntaxUID))
                        for d in datasets}:
            ae.add_requested_context(sop, ts)
        assoc = ae.associate("127.0.0.1", self.port, ae_title=self.called_ae)
        if not assoc.is_established:
            raise BenchmarkError("the node refused the benchmark association")
        try:
            for ds in datasets:
                self.sent_at[str(ds.StudyInstanceUID)] = time.time()
                status = assoc.send_c_store(ds)
                if getattr(status, "Status", None) != 0x0000:
                    raise BenchmarkError(f"C-STORE answered {status!r}")
        finally:
            assoc.release()


def _ts(value: datetime | None) -> float | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.timestamp()


def _pct(values: list[float], q: float) -> float:
    return round(float(np.percentile(values, q)), 3)


def _job_keys(timings: list[dict[str, float]], job_stages: tuple[str, ...] | None
              ) -> tuple[str, ...]:
    """``job_stages``, or (None) every timing key the jobs recorded but their totals, in
    the order first seen."""
    if job_stages is not None:
        return job_stages
    keys: dict[str, None] = {}
    for t in timings:
        keys.update((k, None) for k in t if k not in TOTAL_KEYS)
    return tuple(keys)


def stage_breakdown(node: NodeProcesses, sent_at: dict[str, float],
                    sr_at: dict[str, float], job_stages: tuple[str, ...] | None = JOB_STAGES
                    ) -> dict[str, Any]:
    """Mean seconds per stage of the given studies, from the node's rows.

    Parameters
    ----------
    node
        The node the studies went to (its database).
    sent_at, sr_at
        Study Instance UID -> start of its C-STORE, arrival of its SR (``time.time()``).
    job_stages
        Job timing keys reported as the job's parts (None: every key but the totals).
    """
    from sqlalchemy import create_engine, pool, select
    from sqlalchemy.orm import Session

    from dicom_node.db.models import Job, ReceivedInstance

    engine = create_engine(node.settings.database_url, poolclass=pool.NullPool)
    stages: dict[str, list[float]] = {"store_and_record": [], "queue_wait": [], "job": [],
                                      "delivery": [], "work": []}
    timings: list[dict[str, float]] = []
    states: dict[str, int] = {}
    kinds: dict[str, int] = {}
    try:
        with Session(engine) as s:
            rows = s.execute(
                select(ReceivedInstance, Job).join(Job, Job.instance_id == ReceivedInstance.id)
                .where(ReceivedInstance.study_instance_uid.in_(list(sent_at)))
            ).all()
            for inst, job in rows:
                states[job.state] = states.get(job.state, 0) + 1
                kinds[str(job.kind)] = kinds.get(str(job.kind), 0) + 1
                uid = str(inst.study_instance_uid)
                rec, start, end = (_ts(inst.received_at), _ts(job.started_at),
                                   _ts(job.finished_at))
                if None in (rec, start, end) or uid not in sr_at:
                    continue
                assert rec is not None and start is not None and end is not None
                stages["store_and_record"].append(rec - sent_at[uid])
                stages["queue_wait"].append(start - rec)
                stages["job"].append(end - start)
                stages["delivery"].append(sr_at[uid] - end)
                # the node's whole work for the study: the job to its SR, then the objects
                # made after it (the SC, the GSPS; beside the next job on the in-process
                # queue's reports lane)
                later = float((job.timings_ms or {}).get("pending_reports_ms", 0.0)) / 1000
                stages["work"].append(end - start + later)
                timings.append(dict(job.timings_ms or {}))
    finally:
        engine.dispose()
    job_parts: dict[str, list[float]] = {k: [] for k in _job_keys(timings, job_stages)}
    for t in timings:
        for k, v in job_parts.items():
            if k in t:
                v.append(float(t[k]) / 1000)
    out: dict[str, Any] = {k: round(statistics.fmean(v), 3) for k, v in stages.items() if v}
    out["job_parts"] = {k.removesuffix("_ms"): round(statistics.fmean(v), 3)
                        for k, v in job_parts.items() if v}
    out["job_states"] = states
    out["job_kinds"] = kinds
    return out


def _latencies(dest: Destination, sender: Sender, uids: list[str]) -> list[float]:
    return [dest.arrivals[u]["SR"] - sender.sent_at[u] for u in uids]


def measure_config(
    name: str, folder: Path, datasets: list[Dataset], *, one_at_a_time: int, burst: int,
    workers: int = 0, sections: dict[str, dict[str, Any]] | None = None,
    timeout_s: float = 900.0, keep_results: Path | None = None,
    job_stages: tuple[str, ...] | None = JOB_STAGES,
    modalities: tuple[str, ...] = KNEE_MODALITIES,
) -> dict[str, Any]:
    """Warm up, then ``one_at_a_time`` studies one by one, then ``burst`` pushed at once.

    Parameters
    ----------
    name, folder, datasets
        The configuration's name, its run folder, the studies (one instance each).
    one_at_a_time, burst
        Studies sent one by one, then pushed at once (after the warm-up).
    workers, sections
        Celery workers (0: in-process queue) and config sections over the defaults.
    timeout_s
        Longest wait for any SR.
    keep_results
        If given, the SR and SC of the last study sent one at a time (as the destination
        received them) are written there as ``SR.dcm`` and ``SC.dcm`` (the limit figure
        sends them again); their paths go to ``result_objects``.
    job_stages
        Job timing keys reported as the job's parts (None: every key but the totals).
    modalities
        The objects of a study ("SR", "OT" for the SC, "PR" for the GSPS): one at a time,
        the next study is sent once all of them arrived (the SR comes first, the others
        after it), so no study's work overlaps the next one's; latency is to the SR.
    """
    warm = max(1, workers)
    need = warm + one_at_a_time + burst
    if len(datasets) < need:
        raise ValueError(f"datasets: {need} needed, got {len(datasets)}")
    dest = Destination()
    dest.start()
    node = NodeProcesses(folder, workers=workers,
                         **{**(sections or {}), "delivery": dest.destination_config()})
    result: dict[str, Any] = {"name": name, "workers": workers,
                              "queue": node.settings.queue.backend,
                              "database": node.settings.database_url.split(":", 1)[0],
                              "model_threads": node.settings.model.num_threads}
    try:
        with node:
            sender = Sender(node.port, node.settings.node.ae_title)
            t0 = time.time()
            warmup = datasets[:warm]
            sender.send(warmup)
            uids = [str(d.StudyInstanceUID) for d in warmup]
            if not dest.wait_sr(uids, timeout_s):
                raise BenchmarkError(f"{name}: no SR for the warm-up study\n{node.log_tail()}")
            dest.wait_arrivals(uids, modalities, timeout_s)
            result["warmup_seconds"] = round(max(dest.arrivals[u]["SR"] for u in uids) - t0, 2)
            pos = warm
            if one_at_a_time:
                lat: list[float] = []
                uids = []
                for ds in datasets[pos:pos + one_at_a_time]:
                    sender.send([ds])
                    uid = str(ds.StudyInstanceUID)
                    if not dest.wait_sr([uid], timeout_s):
                        raise BenchmarkError(f"{name}: no SR in {timeout_s} s\n{node.log_tail()}")
                    if not dest.wait_arrivals([uid], modalities, timeout_s):
                        raise BenchmarkError(f"{name}: not every object of a study arrived "
                                             f"({', '.join(modalities)})\n{node.log_tail()}")
                    uids.append(uid)
                lat = _latencies(dest, sender, uids)
                pos += one_at_a_time
                result["one_at_a_time"] = {
                    "studies": len(lat), "p50_s": _pct(lat, 50), "p95_s": _pct(lat, 95),
                    "max_s": round(max(lat), 3),
                    "latencies_s": [round(x, 3) for x in lat],  # in sending order: the tail
                    "stages_mean_s": stage_breakdown(
                        node, {u: sender.sent_at[u] for u in uids},
                        {u: dest.arrivals[u]["SR"] for u in uids}, job_stages),
                }
                if keep_results is not None:
                    result["result_objects"] = save_results(dest, uids[-1], keep_results)
            if burst:
                batch = datasets[pos:pos + burst]
                uids = [str(d.StudyInstanceUID) for d in batch]
                t_first = time.time()
                sender.send(batch)
                t_sent = time.time()
                if not dest.wait_sr(uids, timeout_s):
                    raise BenchmarkError(f"{name}: burst not done in {timeout_s} s\n"
                                         f"{node.log_tail()}")
                lat = _latencies(dest, sender, uids)
                t_last = max(dest.arrivals[u]["SR"] for u in uids)
                dest.wait_arrivals(uids, modalities, timeout_s)  # the rows' later timings
                result["burst"] = {
                    "studies": len(lat), "p50_s": _pct(lat, 50), "p95_s": _pct(lat, 95),
                    "max_s": round(max(lat), 3),
                    "push_seconds": round(t_sent - t_first, 2),
                    "makespan_s": round(t_last - t_first, 2),
                    "studies_per_min": round(60 * len(lat) / (t_last - t_first), 1),
                    "stages_mean_s": stage_breakdown(
                        node, {u: sender.sent_at[u] for u in uids},
                        {u: dest.arrivals[u]["SR"] for u in uids}, job_stages),
                }
            if not node.alive():
                raise BenchmarkError(f"{name}: a node process died\n{node.log_tail()}")
            result["peak_rss_mb"] = node.peak_rss_mb()
    finally:
        dest.stop()
    return result


def object_kind(ds: Dataset) -> str | None:
    """The node's object kind of a received dataset: SR, SC, GSPS (None: another)."""
    if str(getattr(ds, "Modality", "")) == "SR":
        return "SR"
    if str(getattr(ds, "SOPClassUID", "")).startswith(SC_CLASS_PREFIX):
        return "SC"
    if str(getattr(ds, "Modality", "")) == "PR":
        return "GSPS"
    return None


def _study_objects(dest: Destination, study_uid: str) -> dict[str, Dataset]:
    return {k: d for d in dest.received
            if str(d.StudyInstanceUID) == study_uid and (k := object_kind(d)) is not None}


def save_results(dest: Destination, study_uid: str, folder: Path, timeout_s: float = 60.0,
                 objects: tuple[str, ...] = RESULT_OBJECTS) -> dict[str, str]:
    """Write the ``objects`` the destination received for ``study_uid`` to ``folder``.

    Parameters
    ----------
    dest
        The destination of the run.
    study_uid
        A study whose SR arrived.
    folder
        Where ``<object kind>.dcm`` goes.
    timeout_s
        Longest wait for the objects after the SR (the SC may come after it).
    objects
        Object kinds to write (:func:`object_kind`).

    Returns
    -------
    dict
        Object kind -> path written.
    """
    with dest.event:
        dest.event.wait_for(lambda: set(objects) <= set(_study_objects(dest, study_uid)),
                            timeout_s)
        found = _study_objects(dest, study_uid)
    missing = [k for k in objects if k not in found]
    if missing:
        raise BenchmarkError(f"study {study_uid}: {missing} not received in {timeout_s} s "
                             f"(got {sorted(found)})")
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for kind in objects:
        path = folder / f"{kind}.dcm"
        found[kind].save_as(path, enforce_file_format=True)
        out[kind] = str(path)
    return out


def load_datasets(paths: list[Path]) -> list[Dataset]:
    """Read the study files into memory (sending then costs no disk reads)."""
    return [dcmread(p) for p in paths]
