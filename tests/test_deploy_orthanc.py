"""The compose demo's Orthanc configuration (docker/orthanc.json and its Lua routing script)
with Debian's Orthanc and an in-process node: a radiograph uploaded to Orthanc is forwarded
to the node by the script, and the node's SR and SC come back into the same study.

Only host names, ports and folders are changed from the files in docker/; the AE titles,
the password handling (``${ORTHANC_DEMO_PASSWORD}``), the modality entry and the script are
those of the compose set-up.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml
from node_support import TruthMeasurer, free_port, make_dx, wait_port, write_case

from dicom_node.node import KneeNode
from dicom_node.settings import load_settings

pytestmark = pytest.mark.network

DOCKER = Path(__file__).resolve().parents[1] / "docker"
ORTHANC = shutil.which("Orthanc") or (
    "/usr/sbin/Orthanc" if Path("/usr/sbin/Orthanc").exists() else None
)
PASSWORD = "demo-password-for-test"


def rest(port: int, method: str, path: str, body: bytes | None = None) -> Any:
    auth = base64.b64encode(f"demo:{PASSWORD}".encode()).decode()
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=body,
        method=method,
        headers={"Authorization": f"Basic {auth}"},
    )
    with urllib.request.urlopen(req, timeout=60) as rsp:
        return json.loads(rsp.read() or b"null")


def _through_orthanc(
    tmp_path: Path, src: Path, measurer: Any, want: int, timeout_s: float = 60,
    routing: dict[str, Any] | None = None,
) -> tuple[list[str], str]:
    """Upload ``src`` to Orthanc (the compose configuration) in front of a node; the
    modalities of the study's series once there are ``want`` of them, and Orthanc's log."""
    dicom_port, http_port = free_port(), free_port()
    node_cfg = yaml.safe_load((DOCKER / "config.yaml").read_text())
    node_cfg["node"].update(host="127.0.0.1", port=free_port())
    node_cfg["node"]["allowed_callers"][0]["addresses"] = ["127.0.0.1/32"]
    node_cfg["storage"]["data_dir"] = str(tmp_path / "var")
    node_cfg["delivery"]["destinations"][0].update(host="127.0.0.1", port=dicom_port)
    node_cfg["delivery"]["backoff_initial_s"] = 0.2
    for key in ("database", "queue"):  # embedded SQLite and in-process queue for the test
        node_cfg.pop(key)
    node_cfg["metrics"]["enabled"] = False
    if routing is not None:
        node_cfg["routing"] = routing
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(node_cfg))
    settings = load_settings(tmp_path / "config.yaml", environ={})

    orthanc_cfg = json.loads((DOCKER / "orthanc.json").read_text())
    orthanc_cfg.update(
        StorageDirectory=str(tmp_path / "orthanc"),
        IndexDirectory=str(tmp_path / "orthanc"),
        DicomPort=dicom_port,
        HttpPort=http_port,
        RemoteAccessAllowed=False,
        Plugins=[],
        LuaScripts=[str(DOCKER / Path(p).name) for p in orthanc_cfg["LuaScripts"]],
    )
    orthanc_cfg["DicomModalities"]["knee"].update(Host="127.0.0.1", Port=settings.node.port)
    (tmp_path / "orthanc.json").write_text(json.dumps(orthanc_cfg))

    with (
        (tmp_path / "orthanc.log").open("w") as log,
        KneeNode(settings, measurer=measurer) as node,
    ):
        proc = subprocess.Popen(
            [str(ORTHANC), str(tmp_path / "orthanc.json")],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={"ORTHANC_DEMO_PASSWORD": PASSWORD, "PATH": "/usr/bin:/bin"},
        )
        try:
            wait_port(http_port, 30, proc)
            wait_port(dicom_port, 30, proc)
            uploaded = rest(http_port, "POST", "/instances", src.read_bytes())
            study = uploaded["ParentStudy"]
            deadline = time.monotonic() + timeout_s
            modalities: list[str] = []
            while time.monotonic() < deadline:
                series = rest(http_port, "GET", f"/studies/{study}/series")
                modalities = sorted(s["MainDicomTags"].get("Modality", "") for s in series)
                if len(modalities) >= want:
                    break
                time.sleep(0.3)
            assert node.wait_idle(30)
        finally:
            proc.terminate()
            proc.wait(20)
    return modalities, (tmp_path / "orthanc.log").read_text()[-2000:]


def test_demo_orthanc_forwards_to_the_node_and_receives_results(tmp_path: Path) -> None:
    if ORTHANC is None:
        pytest.skip("needs Orthanc (Debian package orthanc)")
    cases = tmp_path / "cases"
    ds, truth = make_dx(atfa_deg=3.0)
    src = write_case(cases, ds, truth, "knee")
    modalities, log = _through_orthanc(tmp_path, src, TruthMeasurer(cases), 3)
    assert modalities == ["DX", "OT", "SR"], log


def test_a_full_leg_study_through_orthanc_gets_its_sr_and_sc(tmp_path: Path) -> None:
    """A 2800 x 8100 full-leg study uploaded to Orthanc is measured as ``full-leg`` (the
    real model) and its SR and SC end up in the study."""
    if ORTHANC is None:
        pytest.skip("needs Orthanc (Debian package orthanc)")
    from full_leg_support import BOTH_KINDS_ROUTING

    from training.synth_dicom.full_leg import make_full_leg_instance, write_full_leg_instance

    leg = make_full_leg_instance(990_000_062, full_size=True, syntax="explicit")
    src, _ = write_full_leg_instance(leg, tmp_path / "source")
    modalities, log = _through_orthanc(
        tmp_path, src, {"knee-ap": TruthMeasurer(tmp_path)}, 3, timeout_s=120,
        routing=BOTH_KINDS_ROUTING)
    assert modalities == [str(leg.dataset.Modality), "OT", "SR"], log
