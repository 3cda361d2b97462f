"""Issue 5, item 3: ``knee-node serve`` killed (SIGKILL) with work unfinished, then restarted.

The in-process node is killed while it measures, with instances stored but not yet
measured and deliveries waiting for a PACS that is down. On start it measures what was
stored and sends what was pending: every instance measured once, every SR and SC
received once.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from node_support import PHI_BIRTH, PHI_ID, PHI_NAME, StoreSCP, free_port, wait_port
from reliability_support import knee_case
from sqlalchemy import create_engine, pool, text
from test_node_runtime import _push

pytestmark = pytest.mark.network

TESTS = Path(__file__).resolve().parent
KNEE_NODE = str(Path(sys.executable).with_name("knee-node"))


def _wait(predicate: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_serve_killed_mid_work_resumes_without_loss_or_duplicates(tmp_path: Path) -> None:
    node_port = free_port()
    pacs = StoreSCP()  # not started: the PACS is down at first
    markers = tmp_path / "markers"
    cfg = {
        "node": {"port": node_port},
        "storage": {"data_dir": str(tmp_path / "var")},
        "model": {"factory": "reliability_support:header_truth_measurer"},
        "metrics": {"enabled": False},
        "delivery": {
            "destinations": [
                {"name": "pacs", "ae_title": "TEST_PACS", "host": "127.0.0.1", "port": pacs.port}
            ],
            "backoff_initial_s": 0.3,
            "backoff_max_s": 1.0,
            "max_attempts": 50,
        },
    }
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(cfg))
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
        KNEE_NODE_CONFIG=str(config),
        KNEE_NODE_TEST_MEASURE_S="1.0",
        KNEE_NODE_TEST_MARKERS=str(markers),
    )
    cases = [knee_case(a) for a in (5.0, -3.0, 2.0, -7.0)]

    def serve(name: str) -> subprocess.Popen[bytes]:
        log = open(tmp_path / f"{name}.log", "w")  # noqa: SIM115
        proc = subprocess.Popen([KNEE_NODE, "serve"], env=env, stdout=log, stderr=log)
        log.close()
        wait_port(node_port, 60, proc)
        return proc

    first = serve("serve1")
    try:
        for ds in cases:
            assert _push(node_port, ds) == 0, "stored and recorded before success"
        ends = lambda: list(markers.glob("*.end"))  # noqa: E731
        starts = lambda: list(markers.glob("*.start"))  # noqa: E731
        _wait(lambda: len(ends()) >= 1 and len(starts()) > len(ends()), 30, "mid-measurement")
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    measured_before = len(ends())
    assert 1 <= measured_before < len(cases), "killed with measurements left to do"
    pacs.start()
    second = serve("serve2")
    try:
        _wait(lambda: len(pacs.received) >= 2 * len(cases), 60, "every SR and SC")
        time.sleep(2.0)  # anything sent twice would arrive now
    finally:
        second.send_signal(signal.SIGTERM)
        try:
            second.wait(20)
        except subprocess.TimeoutExpired:
            second.kill()
        pacs.stop()
    got = pacs.received
    assert sorted(str(d.Modality) for d in got) == ["OT"] * 4 + ["SR"] * 4
    assert sorted(str(d.StudyInstanceUID) for d in got if d.Modality == "SR") == sorted(
        str(c.StudyInstanceUID) for c in cases
    ), "one SR per source image"
    engine = create_engine(
        f"sqlite:///{tmp_path / 'var' / 'knee-node.sqlite'}", poolclass=pool.NullPool
    )
    with engine.connect() as c:
        states = [r[0] for r in c.execute(text("select state from received_instances"))]
        jobs = c.execute(text("select instance_id, state, error from jobs order by id")).all()
        deliveries = c.execute(text("select state, object_kinds from deliveries")).all()
        pending = c.execute(text("select count(*) from jobs where pending_objects is not null"))
        still_pending = pending.scalar_one()
    engine.dispose()
    assert states == ["measured"] * 4
    assert still_pending == 0, "every job wrote all its objects"
    done = sorted(j.instance_id for j in jobs if j.state == "done")
    assert done == [1, 2, 3, 4], "each instance measured exactly once to completion"
    interrupted = [j for j in jobs if j.state != "done"]
    assert len(interrupted) == 1 and "interrupted" in interrupted[0].error
    # per job: the SR first, then the SC, each its own delivery
    assert [d[0] for d in deliveries] == ["delivered"] * 8
    assert sorted(d[1] for d in deliveries) == ['["SC"]'] * 4 + ['["SR"]'] * 4
    log = (tmp_path / "serve2.log").read_text()
    assert "resumed" in log
    for name in ("serve1", "serve2"):
        text_ = (tmp_path / f"{name}.log").read_text()
        for phi in (PHI_NAME, PHI_ID, PHI_BIRTH):
            assert phi not in text_, f"{phi} in the {name} log (INFO)"
