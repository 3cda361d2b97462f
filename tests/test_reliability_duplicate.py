"""Issue 5, item 6: the same SOP Instance UID sent twice gives one job and one SR.

A second C-STORE of an instance already queued or measured is answered success (it is
stored) and recorded as ``duplicate``; no job, no SR. An instance whose first
measurement failed is measured again when the modality sends it again.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_node_listener import Env

from dicom_node.db import Job, ReceivedInstance

pytestmark = pytest.mark.network


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    e = Env(tmp_path)
    e.pacs.start()
    e.node.start()
    yield e
    e.node.stop()
    e.pacs.stop()


def _settle(env: Env, count: int) -> list[str]:
    """Modalities the PACS holds once nothing more arrives for a second."""
    assert env.node.wait_idle(60)
    env.pacs.wait_for(count, 10)
    time.sleep(1.0)  # anything sent twice would arrive now
    return sorted(str(d.Modality) for d in env.pacs.received)


def test_same_instance_twice_gives_one_job_and_one_sr(env: Env) -> None:
    ds, _ = env.case("a", atfa_deg=5.0)
    assert env.push(ds) == [0x0000]
    assert _settle(env, 2) == ["OT", "SR"]
    assert env.push(ds) == [0x0000], "stored already: success, so the modality stops sending"
    assert env.push(ds, ds) == [0x0000, 0x0000]
    assert _settle(env, 2) == ["OT", "SR"], "never a second SR for one source image"
    rows = env.rows(ReceivedInstance)
    assert [r.state for r in rows] == ["measured", "duplicate", "duplicate", "duplicate"]
    assert all("instance 1" in (r.reason or "") for r in rows[1:])
    assert all(r.spool_path is None for r in rows[1:])
    assert len(env.rows(Job)) == 1
    assert not list(env.settings.storage.spool.glob("*.dcm")), "duplicates are not kept"


def test_same_instance_on_two_associations_at_once_gives_one_job(env: Env) -> None:
    ds, _ = env.case("b", atfa_deg=-3.0)
    statuses: list[list[int | None]] = []
    threads = [
        threading.Thread(target=lambda n=i: statuses.append(env.push(ds, calling=f"MOD{n}")))
        for i in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert statuses == [[0x0000]] * 4
    assert _settle(env, 2) == ["OT", "SR"]
    states = sorted(r.state for r in env.rows(ReceivedInstance))
    assert states == ["duplicate", "duplicate", "duplicate", "measured"]
    assert len(env.rows(Job)) == 1


def test_an_instance_whose_measurement_failed_is_measured_when_sent_again(env: Env) -> None:
    from node_support import make_dx, write_case

    ds, truth = make_dx(2.5)  # no ground truth yet: the test double fails to measure it
    assert env.push(ds) == [0x0000]
    assert env.node.wait_idle(60)
    write_case(env.cases, ds, truth, "late")
    assert env.push(ds) == [0x0000]
    assert _settle(env, 2) == ["OT", "SR"]
    assert [r.state for r in env.rows(ReceivedInstance)] == ["failed", "measured"]
    assert [j.state for j in env.rows(Job)] == ["failed", "done"]
