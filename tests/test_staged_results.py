"""Results in two stages (issue 16): the SR is written, recorded and queued for delivery
before the SC and GSPS are made; a node stopped in between makes them at its restart;
a failure of the later objects leaves the SR standing and says so on the job."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from node_support import StoreSCP, store
from pydicom import dcmread
from reliability_support import HeaderTruthMeasurer, knee_case
from sqlalchemy import select

from dicom_node import kinds, pipeline
from dicom_node.context import NodeContext
from dicom_node.db import Delivery, Job, ReceivedInstance
from dicom_node.db.migrate import upgrade
from dicom_node.db.states import DeliveryState, InstanceState, JobState
from dicom_node.queue import InProcessQueue
from dicom_node.settings import Settings


class Recording:
    """A queue that records what it is given and runs nothing (the reports too)."""

    def __init__(self) -> None:
        self.deliveries: list[int] = []
        self.reports: list[tuple[int, Callable[[], object]]] = []

    def submit_measurement(self, instance_id: int) -> None:
        raise AssertionError("the pipeline does not queue measurements")

    def submit_delivery(self, delivery_id: int, countdown_s: float = 0.0) -> None:
        self.deliveries.append(delivery_id)

    def submit_reports(self, job_id: int, make: Callable[[], object]) -> None:
        self.reports.append((job_id, make))


def _context(tmp_path: Path, queue: Any, port: int = 9, gsps: bool = True) -> NodeContext:
    dests: list[dict[str, Any]] = [
        {"name": "pacs", "ae_title": "PACS", "host": "127.0.0.1", "port": port}]
    if gsps:
        dests.append({"name": "viewer", "ae_title": "VIEWER", "host": "127.0.0.1",
                      "port": port, "objects": ["GSPS"]})
    s = Settings.model_validate({
        "storage": {"data_dir": str(tmp_path / "var")},
        "delivery": {"destinations": dests, "max_attempts": 1},
    })
    s.storage.spool.mkdir(parents=True, exist_ok=True)
    upgrade(s.database_url)
    return NodeContext.create(s, queue, HeaderTruthMeasurer())


def _received(ctx: NodeContext, atfa_deg: float = 4.0) -> tuple[int, Path]:
    ds = knee_case(atfa_deg)
    path = ctx.settings.storage.spool / f"{ds.SOPInstanceUID}.dcm"
    ds.save_as(path, enforce_file_format=True)
    with ctx.db.session() as s:
        inst = ReceivedInstance(
            calling_ae_title="MODALITY", peer_address="127.0.0.1",
            sop_class_uid=str(ds.SOPClassUID), sop_instance_uid=str(ds.SOPInstanceUID),
            transfer_syntax_uid=str(ds.file_meta.TransferSyntaxUID), kind="knee-ap",
            state=InstanceState.QUEUED, spool_path=str(path),
        )
        s.add(inst)
        s.flush()
        return inst.id, path


def _measured(tmp_path: Path, **kw: Any) -> tuple[Recording, NodeContext, int, Path, int]:
    """A context on a recording queue, one received knee measured (its first stage)."""
    q = Recording()
    ctx = _context(tmp_path, q, **kw)
    instance_id, spool = _received(ctx)
    return q, ctx, instance_id, spool, pipeline.measure_instance(ctx, instance_id)


def _job(ctx: NodeContext, job_id: int) -> tuple[Job, list[Delivery]]:
    with ctx.db.session() as s:
        job = s.get_one(Job, job_id)
        rows = list(s.scalars(select(Delivery).where(Delivery.job_id == job_id)
                              .order_by(Delivery.id)))
        return job, rows


def test_the_sr_is_recorded_and_queued_before_the_other_objects_are_made(
    tmp_path: Path,
) -> None:
    q, ctx, instance_id, spool, job_id = _measured(tmp_path)

    job, rows = _job(ctx, job_id)
    assert job.state == JobState.DONE
    assert [o.object_kind for o in job.outputs] == ["SR"]
    assert job.pending_objects == ["SC", "GSPS"]
    assert [(d.destination, d.object_kinds) for d in rows] == [("pacs", ["SR"])]
    assert q.deliveries == [rows[0].id]
    assert spool.is_file(), "the source stays until every object is written"
    assert [j for j, _ in q.reports] == [job_id]

    q.reports[0][1]()  # the reports lane's turn
    job, rows = _job(ctx, job_id)
    assert [o.object_kind for o in job.outputs] == ["SR", "SC", "GSPS"]
    assert [o.position for o in job.outputs] == [0, 1, 2]
    assert job.pending_objects is None
    assert [(d.destination, d.object_kinds) for d in rows] == [
        ("pacs", ["SR"]), ("pacs", ["SC"]), ("viewer", ["GSPS"])]
    assert q.deliveries == [d.id for d in rows]
    assert not spool.exists()
    assert job.timings_ms is not None and job.timings_ms["pending_reports_ms"] > 0
    for o in job.outputs:
        assert dcmread(o.path).SOPInstanceUID == o.sop_instance_uid


def test_each_delivery_sends_only_its_own_objects(tmp_path: Path) -> None:
    pacs = StoreSCP()
    pacs.start()
    try:
        q = Recording()
        ctx = _context(tmp_path, q, port=pacs.port, gsps=False)
        instance_id, _ = _received(ctx)
        job_id = pipeline.measure_instance(ctx, instance_id)
        assert pipeline.deliver(ctx, q.deliveries[0]).state == DeliveryState.DELIVERED
        assert [str(d.Modality) for d in pacs.received] == ["SR"]
        q.reports[0][1]()
        assert pipeline.deliver(ctx, q.deliveries[1]).state == DeliveryState.DELIVERED
        assert [str(d.Modality) for d in pacs.received] == ["SR", "OT"]
        _, rows = _job(ctx, job_id)
        assert [d.state for d in rows] == [DeliveryState.DELIVERED] * 2
    finally:
        pacs.stop()


def test_a_node_stopped_between_the_stages_makes_the_rest_once_at_restart(
    tmp_path: Path,
) -> None:
    q, ctx, instance_id, spool, job_id = _measured(tmp_path)
    q.reports.clear()  # the node stopped: the reports lane's work is lost with it

    instances, deliveries = pipeline.pending_work(ctx)
    assert instances == [instance_id]
    assert deliveries == [], "its SR's delivery (never tried) is queued by the measurement"
    again = Recording()
    ctx2 = NodeContext.create(ctx.settings, again, HeaderTruthMeasurer())
    assert pipeline.measure_instance(ctx2, instance_id) == job_id  # not measured as new

    with ctx.db.session() as s:
        assert len(s.scalars(select(Job).where(Job.instance_id == instance_id)).all()) == 1
    job, rows = _job(ctx, job_id)
    assert [o.object_kind for o in job.outputs] == ["SR", "SC", "GSPS"]
    assert job.pending_objects is None and not spool.exists()
    assert [d.object_kinds for d in rows] == [["SR"], ["SC"], ["GSPS"]]
    # the SR was not made again; its delivery (never tried) is queued again, the rest once
    assert again.deliveries == [rows[0].id, rows[1].id, rows[2].id]
    assert pipeline.pending_work(ctx)[0] == []


def test_later_objects_that_fail_leave_the_sr_and_say_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kind = kinds.get("knee-ap")

    def broken(*_: object) -> object:
        raise RuntimeError("the overlay font is missing")

    writers = tuple(
        kinds.OutputWriter(w.object_kind, w.file_name, broken, w.optional, w.sent_first)
        if w.object_kind == "SC" else w
        for w in kind.writers
    )
    monkeypatch.setitem(kinds._REGISTRY, kind.name,
                        kinds.StudyKind(**{**kind.__dict__, "writers": writers}))
    q, ctx, instance_id, spool, job_id = _measured(tmp_path, gsps=False)
    q.reports[0][1]()
    job, rows = _job(ctx, job_id)
    assert job.state == JobState.DONE
    assert [o.object_kind for o in job.outputs] == ["SR"]
    assert job.pending_objects is None, "not tried again"
    assert job.warnings == ["SC not made: RuntimeError: the overlay font is missing"]
    assert [d.object_kinds for d in rows] == [["SR"]]
    assert not spool.exists()


def test_the_reports_lane_runs_beside_the_measurements(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    measuring = threading.Event()
    seen: list[str] = []

    def measure(ctx: NodeContext, instance_id: int) -> int:
        measuring.set()
        seen.append(f"measure {instance_id}")
        return instance_id

    monkeypatch.setattr(pipeline, "measure_instance", measure)
    q = InProcessQueue()
    q.bind(_context(tmp_path, q))
    q.start()
    try:
        def reports() -> None:  # holds its lane until a measurement has run
            assert measuring.wait(10), "the measurement waited behind the reports"
            seen.append("reports 1")

        q.submit_reports(1, reports)
        q.submit_measurement(2)
        assert q.wait_idle(20)
        assert seen == ["measure 2", "reports 1"]
        threads = {t.name for t in threading.enumerate()}
        assert "knee-node-reports" in threads
    finally:
        q.stop()


def _pid_and_nice() -> tuple[int, int]:
    import os

    return os.getpid(), os.nice(0)


def test_the_report_process_is_another_process_of_lower_priority() -> None:
    import os

    from dicom_node.report_process import NICE, ReportProcess

    apart = ReportProcess(warm=False)
    try:
        pid, nice = apart.submit(_pid_and_nice).result(timeout=60)
    finally:
        apart.shutdown()
    assert pid != os.getpid()
    assert nice == min(os.nice(0) + NICE, 19)


@pytest.mark.network
def test_a_node_makes_the_sc_in_its_report_process(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    from dicom_node.node import KneeNode

    caplog.set_level(logging.INFO)
    pacs = StoreSCP()
    pacs.start()
    try:
        ctx = _context(tmp_path, Recording(), port=pacs.port, gsps=False)
        ds = knee_case(-3.0)
        with KneeNode(ctx.settings, measurer=HeaderTruthMeasurer(), port=0) as node:
            assert store(node.port, ds) == 0x0000
            assert node.wait_idle(60)
            got = pacs.wait_for(2, 20)
            # the only maker of the SC on this queue (no fallback in the node's process)
            assert node.ctx.queue.report_process is not None
        assert [str(d.Modality) for d in got] == ["SR", "OT"], "the SR first"
        assert "not made" not in caplog.text
        with ctx.db.session() as s:
            job = s.scalars(select(Job)).one()
            assert [o.object_kind for o in job.outputs] == ["SR", "SC"]
            assert job.pending_objects is None
    finally:
        pacs.stop()


def test_the_report_process_does_not_outlive_a_node_killed_with_9(tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    script = (
        "import os, sys, time\n"
        "from dicom_node.report_process import ReportProcess\n"
        "p = ReportProcess(warm=False)\n"
        "print(p.submit(os.getpid).result(timeout=60), flush=True)\n"
        "time.sleep(120)\n"
    )
    node = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert node.stdout is not None
        child = int(node.stdout.readline())
        os.kill(node.pid, signal.SIGKILL)
        node.wait(10)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.kill(child, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)
        else:
            os.kill(child, signal.SIGKILL)
            raise AssertionError("the report process outlived the node")
        assert node.stdout.read() == "", "the pipe ends: nothing holds it"
    finally:
        if node.poll() is None:
            node.kill()


def test_objects_no_destination_wants_any_more_are_dropped_not_the_rest(
    tmp_path: Path,
) -> None:
    q = Recording()
    ctx = _context(tmp_path, q)  # pacs (SR, SC) and a viewer taking the GSPS
    instance_id, _ = _received(ctx)
    job_id = pipeline.measure_instance(ctx, instance_id)
    ctx.settings = ctx.settings.model_copy(update={"delivery": ctx.settings.delivery.model_copy(
        update={"destinations": ctx.settings.delivery.destinations[:1]})})  # viewer removed
    q.reports[0][1]()
    job, rows = _job(ctx, job_id)
    assert [o.object_kind for o in job.outputs] == ["SR", "SC"]
    assert job.pending_objects is None and not job.warnings
    assert [(d.destination, d.object_kinds) for d in rows] == [("pacs", ["SR"]), ("pacs", ["SC"])]


def test_a_restart_with_another_model_does_not_draw_its_values_under_the_old_sr(
    tmp_path: Path,
) -> None:
    q, ctx, instance_id, spool, job_id = _measured(tmp_path, gsps=False)
    newer = HeaderTruthMeasurer()
    newer.model_info = newer.model_info.__class__(name="header-truth-double", version="v2",
                                                  sha256={})
    again = Recording()
    assert pipeline.pending_work(ctx)[1] == [], "its SR delivery is queued by the measurement"
    pipeline.measure_instance(NodeContext.create(ctx.settings, again, newer), instance_id)
    job, rows = _job(ctx, job_id)
    assert [o.object_kind for o in job.outputs] == ["SR"]
    assert job.pending_objects is None and not spool.exists()
    assert job.warnings and "the model changed since the SR was made (test -> v2)" in (
        job.warnings[0])
    assert again.deliveries == [rows[0].id], "the SR's delivery, queued once"


def _sleep(seconds: float) -> float:
    import time

    time.sleep(seconds)
    return seconds


def test_a_report_process_that_hangs_is_killed_and_replaced() -> None:
    from dicom_node.report_process import ReportProcess, ReportProcessError

    apart = ReportProcess(warm=False, timeout_s=1.0)
    try:
        with pytest.raises(ReportProcessError, match="longer than 1 s: killed"):
            apart.make(_sleep, 30.0)
        apart.timeout_s = 60.0  # a new child starts (on a loaded machine, in seconds)
        assert apart.make(_sleep, 0.01) == 0.01, "a new child answers"
    finally:
        apart.shutdown()
    with pytest.raises(ValueError, match="timeout_s must be > 0, got 0"):
        ReportProcess(warm=False, timeout_s=0)
