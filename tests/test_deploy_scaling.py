"""What scaling out relies on: no torch (hence no CUDA) before a worker forks, and paths in
the database that mean the same thing to every process that reads them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from node_support import TruthMeasurer, make_dx, write_case
from pynetdicom import AE
from sqlalchemy import select

from dicom_node.db import Job, ReceivedInstance
from dicom_node.node import KneeNode
from dicom_node.settings import load_settings

PROBE = """
import sys
import dicom_node.cli
from dicom_node.celery_app import make_celery, worker_argv
from dicom_node.settings import load_settings
settings = load_settings(None, environ={"KNEE_NODE_QUEUE__BACKEND": "celery"})
app = make_celery(settings)
worker_argv(settings)
assert "knee_node.measure_instance" in app.tasks
print("torch" in sys.modules)
"""


def test_worker_start_up_imports_no_torch() -> None:
    """What ``knee-node worker`` runs before Celery forks its children loads no torch, so
    no CUDA context can exist in the parent; the model is built in each child on its first
    task (dicom_node.measurer.LazyMeasurer, per process id in dicom_node.celery_app)."""
    out = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120, check=True
    )
    assert out.stdout.strip() == "False", out.stderr


@pytest.mark.network
def test_paths_recorded_are_absolute_with_a_relative_data_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker started from another directory (or machine, same mount) finds the files."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "config.yaml").write_text(
        yaml.safe_dump({"storage": {"data_dir": "var", "keep_source": True}})
    )
    settings = load_settings(tmp_path / "config.yaml", environ={})
    cases = tmp_path / "cases"
    ds, truth = make_dx(atfa_deg=2.0)
    write_case(cases, ds, truth, "knee")
    with KneeNode(settings, measurer=TruthMeasurer(cases), port=0) as node:
        ae = AE(ae_title="MODALITY")
        ae.add_requested_context(ds.SOPClassUID, ds.file_meta.TransferSyntaxUID)
        assoc = ae.associate("127.0.0.1", node.port, ae_title="KNEE_NODE")
        assert assoc.is_established
        assert assoc.send_c_store(ds).Status == 0x0000
        assoc.release()
        assert node.wait_idle(60)
        with node.ctx.db.session() as s:
            inst = s.scalars(select(ReceivedInstance)).one()
            job = s.scalars(select(Job)).one()
    assert job.state == "done"
    for recorded in (inst.spool_path, job.output_path("SR"), job.output_path("SC")):
        assert recorded is not None and Path(recorded).is_absolute(), recorded
        assert Path(recorded).is_file()
