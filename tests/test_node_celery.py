"""Postgres + Redis + a separate ``knee-node worker`` process + ``knee-node serve`` process.

dcmtk's storescu pushes synthetic AP knee studies, storescp receives. The worker loads the
**shipped landmark model** (the default ``model`` settings), as a hospital's would; the SR
angles are checked against the generator's ground truth.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import yaml
from node_support import (
    PHI_BIRTH,
    PHI_ID,
    PHI_NAME,
    free_port,
    postgres_database,
    redis_reachable,
    sr_atfa,
    synthetic_knee_cases,
    wait_port,
)
from pydicom import dcmread
from sqlalchemy import create_engine, pool, text

pytestmark = [pytest.mark.slow, pytest.mark.services, pytest.mark.network]

TESTS = Path(__file__).resolve().parent
KNEE_NODE = str(Path(sys.executable).with_name("knee-node"))
#: Hold-out seeds (never used in training) and the allowed |SR aTFA - truth| for results that
#: pass quality control, as in tests/test_node_e2e.py.
SEEDS = (900_000_103, 900_000_104)
ATFA_TOLERANCE_DEG = 1.5


def test_postgres_redis_and_a_separate_worker(tmp_path: Path) -> None:
    for tool in ("storescu", "storescp"):
        if shutil.which(tool) is None:
            pytest.skip(f"needs {tool} (Debian package dcmtk)")
    broker = "redis://127.0.0.1:6379/15"
    if not redis_reachable(broker):
        pytest.skip("Redis unreachable at 127.0.0.1:6379")
    with postgres_database() as pg_url:
        if pg_url is None:
            pytest.skip("Postgres unreachable at 127.0.0.1:5432")
        cases = synthetic_knee_cases(tmp_path / "cases", SEEDS, fake_patient=True)
        files, truths = [f for f, _ in cases], [t for _, t in cases]
        node_port, pacs_port, down_port = free_port(), free_port(), free_port()
        cfg = {
            "node": {"port": node_port},
            "storage": {"data_dir": str(tmp_path / "var")},
            "database": {"url": pg_url},
            "queue": {
                "backend": "celery",
                "broker_url": broker,
                "queue_name": f"knee_node_test_{uuid.uuid4().hex[:8]}",
                "worker_pool": "prefork",
                "worker_concurrency": 1,
            },
            "model": {"num_threads": 1},
            "delivery": {
                "destinations": [
                    {
                        "name": "pacs",
                        "ae_title": "DCMTK_PACS",
                        "host": "127.0.0.1",
                        "port": pacs_port,
                    },
                    {"name": "down", "ae_title": "NOBODY", "host": "127.0.0.1", "port": down_port},
                ],
                "max_attempts": 2,
                "backoff_initial_s": 0.5,
            },
        }
        config = tmp_path / "config.yaml"
        config.write_text(yaml.safe_dump(cfg))
        env = dict(
            os.environ,
            PYTHONPATH=os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
            KNEE_NODE_CONFIG=str(config),
        )
        pacs_dir = tmp_path / "pacs"
        pacs_dir.mkdir()
        logs = {n: open(tmp_path / f"{n}.log", "w") for n in ("serve", "worker", "pacs")}  # noqa: SIM115
        procs = [
            subprocess.Popen(
                ["storescp", "-aet", "DCMTK_PACS", "-od", str(pacs_dir), "+B", str(pacs_port)],
                stdout=logs["pacs"],
                stderr=subprocess.STDOUT,
            ),
            subprocess.Popen(
                [KNEE_NODE, "serve"], env=env, stdout=logs["serve"], stderr=subprocess.STDOUT
            ),
            subprocess.Popen(
                [KNEE_NODE, "worker"], env=env, stdout=logs["worker"], stderr=subprocess.STDOUT
            ),
        ]
        try:
            wait_port(pacs_port, 10, procs[0])
            wait_port(node_port, 60, procs[1])
            push = subprocess.run(
                [
                    "storescu",
                    "-xs",  # propose JPEG Lossless too: one of the cases is compressed
                    "-aet",
                    "MODALITY",
                    "-aec",
                    "KNEE_NODE",
                    "127.0.0.1",
                    str(node_port),
                    *map(str, files),
                ],
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert push.returncode == 0, push.stderr
            deadline = time.monotonic() + 180
            while time.monotonic() < deadline and len(list(pacs_dir.iterdir())) < 4:
                time.sleep(0.3)
            time.sleep(0.5)
            received = [dcmread(p) for p in pacs_dir.iterdir()]
            assert sorted(d.Modality for d in received) == ["OT", "OT", "SR", "SR"], (
                tmp_path / "worker.log"
            ).read_text()[-3000:]
            engine = create_engine(pg_url, poolclass=pool.NullPool)
            with engine.connect() as c:
                jobs = c.execute(
                    text(
                        "select j.state, v.value as atfa_fts_deg, r.sop_instance_uid from jobs j "
                        "join received_instances r on r.id = j.instance_id "
                        "join measurements m on m.job_id = j.id and m.item_index = 0 "
                        "left join result_values v on v.measurement_id = m.id "
                        "and v.name = 'aTFA' and v.method = 'FTS' order by j.id"
                    )
                ).all()
                delivered = c.execute(
                    text("select count(*) from deliveries where state = 'delivered'")
                ).scalar()
            engine.dispose()
            by_uid = {t["sop_instance_uid"]: t["atfa_deg"] for t in truths}
            by_study = {t["study_instance_uid"]: t["atfa_deg"] for t in truths}
            assert sorted(j.state for j in jobs) == ["done", "done"]
            assert {j.sop_instance_uid for j in jobs} == set(by_uid)
            passed = 0
            for sr in (d for d in received if d.Modality == "SR"):
                angles = sr_atfa(sr)
                truth = by_study[str(sr.StudyInstanceUID)]
                for method in ("FTS", "FNTS"):
                    for value in angles[method]:  # flagged results carry no confident angle
                        assert abs(value - truth[method]) <= ATFA_TOLERANCE_DEG, (method, value)
                        passed += 1
            assert passed > 0, "every result was flagged"
            for j in jobs:  # the job row holds the same angle as the SR (or none when flagged)
                if j.atfa_fts_deg is not None:
                    assert abs(j.atfa_fts_deg - by_uid[j.sop_instance_uid]["FTS"]) <= (
                        ATFA_TOLERANCE_DEG)
            assert delivered == 4  # each job's SR, then its SC
            # the destination that never answers: retried by Celery with backoff, then given up
            engine = create_engine(pg_url, poolclass=pool.NullPool)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                with engine.connect() as c:
                    down = c.execute(
                        text("select state, attempts from deliveries where destination = 'down'")
                    ).all()
                if [tuple(r) for r in down] == [("failed", 2)] * 4:
                    break
                time.sleep(0.5)
            engine.dispose()
            assert [tuple(r) for r in down] == [("failed", 2)] * 4  # 2 jobs x (SR, SC)
            for name in ("serve", "worker"):
                log = (tmp_path / f"{name}.log").read_text()
                assert "instance" in log or "Task" in log
                for phi in (PHI_NAME, PHI_ID, PHI_BIRTH):
                    assert phi not in log, f"{phi} in the {name} log"
        finally:
            for p in reversed(procs):
                p.terminate()
            for p in procs:
                try:
                    p.wait(20)
                except subprocess.TimeoutExpired:
                    p.kill()
            for f in logs.values():
                f.close()
