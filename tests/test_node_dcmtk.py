"""The node against dcmtk: echoscu and storescu push, storescp is the PACS; dciodvfy checks
and dsr2html renders what comes back. Skips when dcmtk or dicom3tools are absent.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from node_support import TruthMeasurer, free_port, make_dx, wait_port, write_case
from pydicom import dcmread

from dicom_node.db import Job
from dicom_node.node import KneeNode
from dicom_node.settings import Settings

pytestmark = pytest.mark.network

DCMTK = ("storescu", "storescp", "echoscu", "dcmcjpeg")


def _need(*tools: str) -> None:
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        pytest.skip(f"needs {', '.join(missing)} (Debian packages dcmtk / dicom3tools)")


class Storescp:
    """dcmtk's storescp as the PACS, writing what it receives to a folder."""

    def __init__(self, folder: Path, ae_title: str = "DCMTK_PACS") -> None:
        self.folder, self.ae_title, self.port = folder, ae_title, free_port()
        folder.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            ["storescp", "-aet", ae_title, "-od", str(folder), "+B", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        wait_port(self.port)

    def wait_files(self, count: int, timeout: float) -> list[Path]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            files = sorted(p for p in self.folder.iterdir() if p.is_file())
            if len(files) >= count:
                time.sleep(0.2)  # let storescp finish writing
                return files
            time.sleep(0.1)
        return sorted(p for p in self.folder.iterdir() if p.is_file())

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


@pytest.fixture
def pacs(tmp_path: Path) -> Iterator[Storescp]:
    _need(*DCMTK)
    p = Storescp(tmp_path / "pacs")
    yield p
    p.stop()


def dciodvfy_errors(path: Path) -> list[str]:
    """Lines dciodvfy reports as errors for ``path``."""
    out = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, timeout=60)
    return [ln for ln in (out.stdout + out.stderr).splitlines() if ln.startswith("Error")]


def test_storescu_to_node_to_storescp(tmp_path: Path, pacs: Storescp) -> None:
    cases = tmp_path / "cases"
    sent = []
    for i, angle in enumerate((5.5, -3.0)):
        ds, truth = make_dx(angle)
        sent.append((write_case(cases, ds, truth, f"k{i}"), truth))
    # the second one JPEG Lossless (dcmtk's own encoder), the way a PACS may forward it
    jpeg = tmp_path / "k1_jpeg.dcm"
    subprocess.run(["dcmcjpeg", "+e1", str(sent[1][0]), str(jpeg)], check=True)
    settings = Settings.model_validate(
        {
            "storage": {"data_dir": str(tmp_path / "var")},
            "delivery": {
                "destinations": [
                    {
                        "name": "dcmtk",
                        "ae_title": pacs.ae_title,
                        "host": "127.0.0.1",
                        "port": pacs.port,
                    }
                ]
            },
        }
    )
    with KneeNode(settings, measurer=TruthMeasurer(cases), port=0) as node:
        port = str(node.port)
        echo = subprocess.run(
            ["echoscu", "-aet", "MODALITY", "-aec", "KNEE_NODE", "127.0.0.1", port],
            capture_output=True,
            timeout=30,
        )
        assert echo.returncode == 0, echo.stderr
        push = subprocess.run(
            [
                "storescu",
                "-xs",
                "-aet",
                "MODALITY",
                "-aec",
                "KNEE_NODE",
                "127.0.0.1",
                port,
                str(sent[0][0]),
                str(jpeg),
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert push.returncode == 0, push.stderr
        assert node.wait_idle(120)
        with node.ctx.db.session() as s:
            jobs = s.query(Job).order_by(Job.id).all()
            assert [j.state for j in jobs] == ["done", "done"]
            for job, (_, truth) in zip(jobs, sent, strict=True):
                fts = job.value("aTFA FTS").value
                assert fts == pytest.approx(truth["atfa_deg"]["FTS"], abs=1e-6)
    files = pacs.wait_files(4, 30)
    received = [dcmread(f) for f in files]
    assert sorted(d.Modality for d in received) == ["OT", "OT", "SR", "SR"]
    studies = {str(dcmread(p).StudyInstanceUID) for p, _ in sent}
    assert {str(d.StudyInstanceUID) for d in received} == studies
    if shutil.which("dciodvfy"):
        for f in files:
            assert dciodvfy_errors(f) == [], f"dciodvfy errors in {f.name}"
    if shutil.which("dsr2html"):
        for f, d in zip(files, received, strict=True):
            if d.Modality == "SR":
                html = subprocess.run(
                    ["dsr2html", str(f)], capture_output=True, text=True, timeout=60
                )
                assert html.returncode == 0, html.stderr
                assert "<html" in html.stdout.lower()


def test_unknown_ae_is_rejected_for_dcmtk_too(tmp_path: Path) -> None:
    _need("echoscu")
    settings = Settings.model_validate(
        {
            "storage": {"data_dir": str(tmp_path / "var")},
            "node": {"allowed_callers": [{"ae_title": "MODALITY"}]},
        }
    )
    with KneeNode(settings, measurer=TruthMeasurer(tmp_path), port=0) as node:
        bad = subprocess.run(
            ["echoscu", "-aet", "STRANGER", "-aec", "KNEE_NODE", "127.0.0.1", str(node.port)],
            capture_output=True,
            text=True,
            timeout=30,
        )
        good = subprocess.run(
            ["echoscu", "-aet", "MODALITY", "-aec", "KNEE_NODE", "127.0.0.1", str(node.port)],
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert bad.returncode != 0 and "Calling AE Title Not Recognized" in bad.stderr + bad.stdout
    assert good.returncode == 0, good.stderr
