"""Issue 5, item 4: Redis (the broker) or Postgres (the database) goes away and comes back.

The node's choice (docs/reliability.md): while it cannot record or queue an instance the
listener answers **0xA700 (out of resources)**, never success, and keeps nothing in the
spool; the modality keeps the instance and retries, and once the service is back the
retry is stored, recorded and queued. The node process itself keeps running throughout.

Redis: a ``redis-server`` of the test's own on a free port (the machine's Redis stays up).
Postgres: the machine's server reached through a TCP proxy the test cuts and restores.
"""

from __future__ import annotations

import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from node_support import free_port, postgres_database, wait_port
from reliability_support import HeaderTruthMeasurer, TcpProxy, knee_case
from sqlalchemy import select
from test_node_runtime import _push

from dicom_node.db import Job, ReceivedInstance
from dicom_node.node import KneeNode
from dicom_node.settings import Settings

pytestmark = [pytest.mark.services, pytest.mark.network]


class OwnRedis:
    """A throw-away redis-server on ``port`` (no persistence)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> OwnRedis:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_port(self.port, 10, self.proc)
        return self

    def stop(self) -> None:
        subprocess.run(
            ["redis-cli", "-p", str(self.port), "shutdown", "nosave"], capture_output=True
        )
        if self.proc is not None:
            self.proc.wait(10)
            self.proc = None


@pytest.fixture
def own_redis() -> Iterator[OwnRedis]:
    if shutil.which("redis-server") is None or shutil.which("redis-cli") is None:
        pytest.skip("needs redis-server and redis-cli (Debian package redis-server)")
    r = OwnRedis(free_port()).start()
    yield r
    if r.proc is not None:
        r.stop()


def _rows(node: KneeNode) -> list[tuple[str, str | None, str | None]]:
    with node.ctx.db.session() as s:
        return [
            (r.state, r.reason, r.spool_path)
            for r in s.scalars(select(ReceivedInstance).order_by(ReceivedInstance.id))
        ]


def test_redis_away_answers_failure_and_the_retry_is_queued_when_back(
    tmp_path: Path, own_redis: OwnRedis
) -> None:
    queue = f"knee_rel_{uuid.uuid4().hex[:8]}"
    s = Settings.model_validate(
        {
            "storage": {"data_dir": str(tmp_path / "var")},
            "queue": {
                "backend": "celery",
                "broker_url": f"redis://127.0.0.1:{own_redis.port}/0",
                "queue_name": queue,
            },
        }
    )
    depth = lambda: redis.Redis(port=own_redis.port).llen(queue)  # noqa: E731
    a, b = knee_case(3.0), knee_case(-2.0)
    with KneeNode(s, port=0) as node:
        assert _push(node.port, a) == 0x0000
        assert depth() == 1
        own_redis.stop()  # Redis goes away
        t0 = time.monotonic()
        assert _push(node.port, b) == 0xA700, "never success for what cannot be queued"
        assert time.monotonic() - t0 < 30, "the answer comes within the modality's timeout"
        assert _rows(node)[1] == ("failed", "queue unavailable", None)
        assert len(list(s.storage.spool.glob("*.dcm"))) == 1, "only the queued one is kept"
        own_redis.start()  # back (empty: the test's Redis keeps no data)
        assert _push(node.port, b) == 0x0000, "the modality's retry succeeds"
        assert depth() == 1
        assert [r[0] for r in _rows(node)] == ["queued", "failed", "queued"]


def test_postgres_away_answers_failure_and_the_retry_is_measured_when_back(
    tmp_path: Path,
) -> None:
    with postgres_database() as url:
        if url is None:
            pytest.skip("Postgres unreachable at 127.0.0.1:5432")
        proxy = TcpProxy(5432).start()
        s = Settings.model_validate(
            {
                "storage": {"data_dir": str(tmp_path / "var")},
                "database": {"url": url.replace(":5432/", f":{proxy.port}/")},
            }
        )
        a, b = knee_case(3.0), knee_case(-2.0)
        try:
            with KneeNode(s, measurer=HeaderTruthMeasurer(), port=0) as node:
                assert _push(node.port, a) == 0x0000
                assert node.wait_idle(60)
                proxy.stop()  # Postgres goes away (connections cut, port closed)
                assert _push(node.port, b) == 0xA700, "never success for what is not recorded"
                assert not list(s.storage.spool.glob("*.dcm")), "nothing kept untracked"
                proxy.start()  # back on the same port
                assert _push(node.port, b) == 0x0000
                assert node.wait_idle(60)
                assert [r[0] for r in _rows(node)] == ["measured", "measured"]
                with node.ctx.db.session() as sess:
                    assert [j.state for j in sess.scalars(select(Job))] == ["done", "done"]
            node.ctx.db.dispose()
        finally:
            proxy.stop()
