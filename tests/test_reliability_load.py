"""Issue 5, item 9: load. 500 instances over 8 concurrent dcmtk ``storescu``
associations into ``knee-node serve`` (Celery, real Redis, Postgres), two
``knee-node worker`` processes; a pynetdicom PACS counts every C-STORE it receives.
Every instance is received, measured and delivered exactly once; the test prints the
throughput (it does not assert on speed).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest
import yaml
from node_support import StoreSCP, free_port, postgres_database, redis_reachable, wait_port
from reliability_support import knee_case
from sqlalchemy import create_engine, pool, text

pytestmark = [pytest.mark.slow, pytest.mark.services, pytest.mark.network]

TESTS = Path(__file__).resolve().parent
KNEE_NODE = str(Path(sys.executable).with_name("knee-node"))
BROKER = "redis://127.0.0.1:6379/12"
N_INSTANCES = 500
N_ASSOCIATIONS = 8


def test_500_instances_over_8_associations_two_workers_each_once(tmp_path: Path) -> None:
    if shutil.which("storescu") is None:
        pytest.skip("needs storescu (Debian package dcmtk)")
    if not redis_reachable(BROKER):
        pytest.skip("Redis unreachable at 127.0.0.1:6379")
    with postgres_database() as pg_url:
        if pg_url is None:
            pytest.skip("Postgres unreachable at 127.0.0.1:5432")
        cases = tmp_path / "cases"
        cases.mkdir()
        studies = []
        for i in range(N_INSTANCES):
            ds = knee_case(-8.0 + 16.0 * i / N_INSTANCES, rows=96, cols=96)
            ds.save_as(cases / f"k{i:04d}.dcm", enforce_file_format=True)
            studies.append(str(ds.StudyInstanceUID))
        pacs = StoreSCP().start()
        node_port = free_port()
        queue = f"knee_load_{uuid.uuid4().hex[:8]}"
        cfg = {
            "node": {"port": node_port, "limits": {"max_associations": 16}},
            "storage": {"data_dir": str(tmp_path / "var")},
            "database": {"url": pg_url},
            "queue": {"backend": "celery", "broker_url": BROKER, "queue_name": queue},
            "model": {"factory": "reliability_support:header_truth_measurer"},
            "metrics": {"enabled": False},
            "logging": {"level": "WARNING"},
            "delivery": {
                "destinations": [
                    {
                        "name": "pacs",
                        "ae_title": "TEST_PACS",
                        "host": "127.0.0.1",
                        "port": pacs.port,
                    }
                ],
                "backoff_initial_s": 1.0,
            },
        }
        config = tmp_path / "config.yaml"
        config.write_text(yaml.safe_dump(cfg))
        env = dict(
            os.environ,
            PYTHONPATH=os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
            KNEE_NODE_CONFIG=str(config),
        )
        procs: list[subprocess.Popen[bytes]] = []

        def start(name: str, *args: str, **extra: str) -> subprocess.Popen[bytes]:
            log = open(tmp_path / f"{name}.log", "w")  # noqa: SIM115
            proc = subprocess.Popen(
                [KNEE_NODE, *args], env=dict(env, **extra), stdout=log, stderr=log
            )
            log.close()
            procs.append(proc)
            return proc

        try:
            serve = start("serve", "serve")
            wait_port(node_port, 60, serve)
            for w in range(2):
                start(f"worker{w}", "worker", KNEE_NODE_QUEUE__WORKER_NAME=f"load{w}@%h")
            files = sorted(cases.iterdir())
            t0 = time.monotonic()
            pushes = [
                subprocess.Popen(
                    [
                        "storescu",
                        "-aet",
                        f"MOD{k}",
                        "-aec",
                        "KNEE_NODE",
                        "127.0.0.1",
                        str(node_port),
                        *map(str, files[k::N_ASSOCIATIONS]),
                    ],
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                )
                for k in range(N_ASSOCIATIONS)
            ]
            for p in pushes:
                out = p.communicate(timeout=300)[0].decode(errors="replace")
                assert p.returncode == 0, out[-2000:]
            t_received = time.monotonic() - t0
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline and len(pacs.received) < 2 * N_INSTANCES:
                assert all(p.poll() is None for p in procs), "a node process died"
                time.sleep(0.5)
            t_delivered = time.monotonic() - t0
            time.sleep(3.0)  # anything sent twice would arrive now
            got = list(pacs.received)
        finally:
            for p in procs:
                p.terminate()
            for p in procs:
                try:
                    p.wait(20)
                except subprocess.TimeoutExpired:
                    p.kill()
            pacs.stop()
        per_study = Counter((str(d.StudyInstanceUID), str(d.Modality)) for d in got)
        assert len(got) == 2 * N_INSTANCES, (
            f"{len(got)} objects at the PACS; worker log: "
            + (tmp_path / "worker0.log").read_text()[-2000:]
        )
        assert set(per_study) == {(s, m) for s in studies for m in ("SR", "OT")}
        assert set(per_study.values()) == {1}, "each SR and SC exactly once"
        engine = create_engine(pg_url, poolclass=pool.NullPool)
        with engine.connect() as c:
            instances = dict(
                c.execute(
                    text("select state, count(*) from received_instances group by state")
                ).all()
            )
            jobs = dict(c.execute(text("select state, count(*) from jobs group by state")).all())
            deliveries = c.execute(
                text("select state, attempts, count(*) from deliveries group by state, attempts")
            ).all()
            per_instance = c.execute(
                text("select max(n) from (select count(*) n from jobs group by instance_id) t")
            ).scalar()
        engine.dispose()
        assert instances == {"measured": N_INSTANCES}
        assert jobs == {"done": N_INSTANCES} and per_instance == 1
        # each instance's SR, then its SC: two deliveries
        assert [tuple(d) for d in deliveries] == [("delivered", 1, 2 * N_INSTANCES)]
        print(
            f"\nload: {N_INSTANCES} instances over {N_ASSOCIATIONS} associations: "
            f"all received in {t_received:.1f} s ({N_INSTANCES / t_received:.1f} instances/s); "
            f"measured and delivered (SR+SC) in {t_delivered:.1f} s "
            f"({N_INSTANCES / t_delivered:.1f} instances/s) with 2 workers"
        )
