"""Issue 5, item 1: the destination PACS goes down while results are ready.

The node retries with exponential backoff; when the PACS is back it receives each SR and
SC exactly once. After ``delivery.max_attempts`` the delivery is marked failed
(undelivered) and ``knee-node resend --undelivered`` delivers it, once.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest
from node_support import StoreSCP
from test_node_listener import Env
from typer.testing import CliRunner

from dicom_node.cli import app
from dicom_node.db import Delivery

pytestmark = pytest.mark.network


def _attempt_times(records: list[logging.LogRecord], delivery_id: int) -> list[float]:
    return [
        r.created
        for r in records
        if r.name == "dicom_node.pipeline"
        and r.getMessage().startswith(f"delivery {delivery_id} to ")
        and "failed" in r.getMessage()
    ]


def test_pacs_down_then_back_receives_each_result_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="dicom_node.pipeline")
    e = Env(
        tmp_path,
        delivery={"backoff_initial_s": 0.4, "backoff_factor": 2.0, "max_attempts": 10},
    )
    e.pacs.start()
    port = e.pacs.port
    with e.node:
        first, _ = e.case("a", atfa_deg=3.0)
        assert e.push(first) == [0x0000]
        assert e.node.wait_idle(60)
        assert sorted(d.Modality for d in e.pacs.wait_for(2, 10)) == ["OT", "SR"]
        e.pacs.stop()  # the PACS goes down
        second, _ = e.case("b", atfa_deg=-5.0)
        third, _ = e.case("c", atfa_deg=1.0)
        assert e.push(second, third) == [0x0000, 0x0000]
        deadline = time.monotonic() + 30
        srs: list[int] = []  # the SR deliveries of jobs 2 and 3 (each job: its SR, then SC)
        while time.monotonic() < deadline:
            srs = [d.id for d in e.rows(Delivery) if d.job_id > 1 and d.object_kinds == ["SR"]]
            if len(srs) == 2 and all(len(_attempt_times(caplog.records, i)) >= 3 for i in srs):
                break
            time.sleep(0.1)
        assert len(srs) == 2
        for delivery_id in srs:
            t = _attempt_times(caplog.records, delivery_id)
            assert len(t) >= 3, f"delivery {delivery_id} retried: {t}"
            gaps = [b - a for a, b in zip(t, t[1:], strict=False)]
            # each retry waits at least its backoff (0.4 s, then 0.8 s) after the failed
            # attempt; a busy worker thread can only make a gap longer, never shorter
            assert gaps[0] >= 0.35, f"backoff waits before retrying: {gaps}"
            assert gaps[1] >= 0.75, f"backoff grows: {gaps}"
        states = {d.id: d.state for d in e.rows(Delivery)}
        assert states[1] == states[2] == "delivered" and states[srs[0]] in ("retrying", "sending")
        back = StoreSCP()
        back.port = port  # the PACS comes back at the same address
        back.start()
        try:
            assert e.node.wait_idle(60)
            back.wait_for(4, 10)
            time.sleep(1.5)  # anything sent twice would arrive now
            got = back.received
            assert sorted(d.Modality for d in got) == ["OT", "OT", "SR", "SR"]
            studies = sorted(str(d.StudyInstanceUID) for d in got)
            expected = sorted([str(second.StudyInstanceUID), str(third.StudyInstanceUID)] * 2)
            assert studies == expected, "each result once, none of the first job again"
            rows = e.rows(Delivery)
            assert [d.state for d in rows] == ["delivered"] * 6
            assert sorted((d.job_id, d.object_kinds[0]) for d in rows) == [
                (j, k) for j in (1, 2, 3) for k in ("SC", "SR")]
            assert all(d.attempts >= 4 for d in rows if d.id in srs)
            assert all(d.attempts >= 2 for d in rows if d.job_id > 1)
        finally:
            back.stop()
    assert len(e.pacs.received) == 2, "the first PACS run got only the first job"


def test_given_up_delivery_is_undelivered_and_resend_delivers_it_once(tmp_path: Path) -> None:
    e = Env(tmp_path, delivery={"backoff_initial_s": 0.1, "max_attempts": 2})
    with e.node:
        ds, _ = e.case("a")
        assert e.push(ds) == [0x0000]
        assert e.node.wait_idle(60)
    rows = e.rows(Delivery)  # the SR's, then the SC's
    assert [(d.state, d.attempts) for d in rows] == [("failed", 2)] * 2, "given up"
    status = CliRunner().invoke(app, ["status", "--config", str(e.config)])
    assert "0/1" in status.output, "status shows the job undelivered"
    e.pacs.start()
    try:
        runner = CliRunner()
        sent = runner.invoke(app, ["resend", "--undelivered", "--config", str(e.config)])
        assert sent.exit_code == 0 and "2 of 2 delivered" in sent.output, sent.output
        again = runner.invoke(app, ["resend", "--undelivered", "--config", str(e.config)])
        assert again.exit_code == 0 and "0 of 0 delivered" in again.output, again.output
        e.pacs.wait_for(2, 10)
        time.sleep(1.0)
        assert sorted(x.Modality for x in e.pacs.received) == ["OT", "SR"]
    finally:
        e.pacs.stop()
    assert [(d.state, d.attempts) for d in e.rows(Delivery)] == [("delivered", 1)] * 2


def test_resend_leaves_a_delivery_the_node_is_retrying_alone(tmp_path: Path) -> None:
    e = Env(tmp_path, delivery={"backoff_initial_s": 5.0, "max_attempts": 5})
    with e.node:
        ds, _ = e.case("a")
        assert e.push(ds) == [0x0000]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            rows = e.rows(Delivery)
            if rows and rows[0].state == "retrying":
                break
            time.sleep(0.1)
        while time.monotonic() < deadline:  # the SC's delivery follows the SR's
            rows = e.rows(Delivery)
            if len(rows) == 2 and rows[1].state == "retrying":
                break
            time.sleep(0.1)
        assert [(d.state, d.attempts) for d in e.rows(Delivery)] == [("retrying", 1)] * 2, (
            "first attempt failed: PACS down")
        e.pacs.start()  # the PACS is back before the node's next attempt
        try:
            runner = CliRunner()
            failed_only = runner.invoke(app, ["resend", "--undelivered", "--config", str(e.config)])
            assert failed_only.exit_code == 0 and "0 of 0 delivered" in failed_only.output
            by_job = runner.invoke(app, ["resend", "--job", "1", "--config", str(e.config)])
            assert by_job.exit_code == 0, by_job.output
            assert "left alone" in by_job.output and "0 of 0 delivered" in by_job.output
            assert e.node.wait_idle(60)
            e.pacs.wait_for(2, 10)
            time.sleep(1.5)  # a second send would arrive now
            assert sorted(x.Modality for x in e.pacs.received) == ["OT", "SR"], "sent once"
        finally:
            e.pacs.stop()
    assert [(d.state, d.attempts) for d in e.rows(Delivery)] == [("delivered", 2)] * 2, (
        "the node's own retry delivered it")
