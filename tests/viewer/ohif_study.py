"""A synthetic knee study through the node into Orthanc (with DICOMweb), opened in OHIF.

The set-up is the compose demo's, as in ``tests/test_deploy_orthanc.py``: Orthanc (docker/
orthanc.json and its Lua routing script, plus the DICOMweb plugin) forwards an uploaded
radiograph to an in-process node, whose SR and SC come back into the study.  The node measures
with the ground-truth double (``TruthMeasurer``): this tests what the viewer shows of our SR,
not the model.
"""

from __future__ import annotations

import base64
import json
import math
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from PIL import Image
from pydicom import Dataset, dcmread

TESTS = Path(__file__).resolve().parents[1]
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))
from node_support import TruthMeasurer, free_port, sr_atfa, synthetic_knee_cases, wait_port  # noqa: E402
from viewer.ohif_server import DIST, OhifServer  # noqa: E402

DOCKER = TESTS.parent / "docker"
PAGE = Path(__file__).resolve().parent / "ohif_page.mjs"
DICOMWEB_PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")
ORTHANC = shutil.which("Orthanc") or ("/usr/sbin/Orthanc" if Path("/usr/sbin/Orthanc").exists()
                                      else None)
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
PASSWORD = "demo-password-for-viewer-test"
#: Cornerstone's annotation colour (yellow) and what counts as it in the screenshot.
TOOL_RGB = (255, 255, 0)


def missing_reason() -> str | None:
    """Why the OHIF test cannot run here (``None`` when it can)."""
    needs = {
        "node": shutil.which("node"),
        "chromium (Debian chromium)": CHROMIUM,
        "Orthanc (Debian orthanc)": ORTHANC,
        "Orthanc's DICOMweb plugin (Debian orthanc-dicomweb)": DICOMWEB_PLUGIN.exists() or None,
        "OHIF's dist/ (scripts/bootstrap)": (DIST / "index.html").exists() or None,
        "playwright-core (scripts/bootstrap: npm ci in tests/viewer)":
            (PAGE.parent / "node_modules" / "playwright-core").is_dir() or None,
    }
    missing = [name for name, found in needs.items() if not found]
    return f"needs {', '.join(missing)}" if missing else None


@dataclass(frozen=True)
class Study:
    """The study in Orthanc after the node answered."""

    orthanc_url: str
    study_uid: str
    sr_series_uid: str
    sr: Dataset
    modalities: list[str]


def _rest(url: str, method: str = "GET", body: bytes | None = None) -> Any:
    auth = base64.b64encode(f"demo:{PASSWORD}".encode()).decode()
    req = urllib.request.Request(url, data=body, method=method,
                                 headers={"Authorization": f"Basic {auth}"})
    with urllib.request.urlopen(req, timeout=60) as rsp:
        return json.loads(rsp.read() or b"null")


def _node_settings(tmp: Path, dicom_port: int) -> Any:
    from dicom_node.settings import load_settings

    cfg = yaml.safe_load((DOCKER / "config.yaml").read_text())
    cfg["node"].update(host="127.0.0.1", port=free_port())
    cfg["node"]["allowed_callers"][0]["addresses"] = ["127.0.0.1/32"]
    cfg["storage"]["data_dir"] = str(tmp / "var")
    cfg["delivery"]["destinations"][0].update(host="127.0.0.1", port=dicom_port)
    cfg["delivery"]["backoff_initial_s"] = 0.2
    for key in ("database", "queue"):  # embedded SQLite and in-process queue
        cfg.pop(key)
    cfg["metrics"]["enabled"] = False
    (tmp / "config.yaml").write_text(yaml.safe_dump(cfg))
    return load_settings(tmp / "config.yaml", environ={})


def _orthanc_config(tmp: Path, dicom_port: int, http_port: int, node_port: int) -> Path:
    cfg = json.loads((DOCKER / "orthanc.json").read_text())
    cfg.update(
        StorageDirectory=str(tmp / "orthanc"),
        IndexDirectory=str(tmp / "orthanc"),
        DicomPort=dicom_port,
        HttpPort=http_port,
        RemoteAccessAllowed=False,
        Plugins=[str(DICOMWEB_PLUGIN)],
        DicomWeb={"Enable": True, "Root": "/dicom-web/", "EnableWado": False},
        LuaScripts=[str(DOCKER / Path(p).name) for p in cfg["LuaScripts"]],
    )
    cfg["DicomModalities"]["knee"].update(Host="127.0.0.1", Port=node_port)
    path = tmp / "orthanc.json"
    path.write_text(json.dumps(cfg))
    return path


def _drop_linear_voi_lut_function(path: Path) -> None:
    """Remove VOI LUT Function LINEAR (the default, so the display does not change).

    With it, OHIF 3.13 now and then fails the image load: Cornerstone's ``toLowHighRange``
    throws "Invalid VOI LUT function" although Orthanc's DICOMweb metadata says
    ``{"00281056": {"vr": "CS", "Value": ["LINEAR"]}}`` (docs/viewer.md).
    """
    ds = dcmread(path)
    if str(ds.get("VOILUTFunction", "")) == "LINEAR":
        del ds.VOILUTFunction
        ds.save_as(path, enforce_file_format=True)


@contextmanager
def knee_study_in_orthanc(tmp: Path, seed: int = 6, timeout: float = 90.0) -> Iterator[Study]:
    """Orthanc with DICOMweb and the node; one synthetic knee uploaded and answered.

    Parameters
    ----------
    tmp
        Working folder (Orthanc's storage, the node's data, logs).
    seed
        Generator seed of the knee radiograph.
    timeout
        Seconds to wait for the node's SR and SC in Orthanc.

    Yields
    ------
    Study
        Orthanc stays up until the context exits.
    """
    from dicom_node.node import KneeNode

    dicom_port, http_port = free_port(), free_port()
    settings = _node_settings(tmp, dicom_port)
    config = _orthanc_config(tmp, dicom_port, http_port, settings.node.port)
    cases = tmp / "cases"
    cases.mkdir(parents=True, exist_ok=True)
    ((src, _truth),) = synthetic_knee_cases(cases, (seed,), syntaxes=("explicit",))
    _drop_linear_voi_lut_function(src)
    url = f"http://127.0.0.1:{http_port}"
    with (tmp / "orthanc.log").open("w") as log, \
            KneeNode(settings, measurer=TruthMeasurer(cases)) as node:
        assert ORTHANC is not None
        proc = subprocess.Popen([ORTHANC, str(config)], stdout=log, stderr=subprocess.STDOUT,
                                env={"ORTHANC_DEMO_PASSWORD": PASSWORD, "PATH": "/usr/bin:/bin"})
        try:
            wait_port(http_port, 30, proc)
            wait_port(dicom_port, 30, proc)
            study = _rest(f"{url}/instances", "POST", src.read_bytes())["ParentStudy"]
            deadline = time.monotonic() + timeout
            series: list[dict[str, Any]] = []
            while time.monotonic() < deadline:
                series = _rest(f"{url}/studies/{study}/series")
                if len(series) >= 3:
                    break
                time.sleep(0.3)
            node.wait_idle(30)
            modalities = sorted(s["MainDicomTags"].get("Modality", "") for s in series)
            sr_series = next((s for s in series if s["MainDicomTags"].get("Modality") == "SR"),
                             None)
            if sr_series is None:
                raise RuntimeError(f"no SR in Orthanc ({modalities}): "
                                   f"{(tmp / 'orthanc.log').read_text()[-2000:]}")
            req = urllib.request.Request(
                f"{url}/instances/{sr_series['Instances'][0]}/file",
                headers={"Authorization": "Basic " + base64.b64encode(
                    f"demo:{PASSWORD}".encode()).decode()})
            with urllib.request.urlopen(req, timeout=60) as rsp:
                (tmp / "sr.dcm").write_bytes(rsp.read())
            sr = dcmread(tmp / "sr.dcm")
            yield Study(url, str(sr.StudyInstanceUID), str(sr.SeriesInstanceUID), sr, modalities)
        finally:
            proc.terminate()
            proc.wait(20)


def open_in_ohif(study: Study, png: Path, timeout: float = 150.0,
                 cpu_rendering: bool = False) -> dict[str, Any]:
    """Serve OHIF for ``study``'s Orthanc, open its SR in headless Chromium, screenshot to
    ``png``; return the page driver's JSON (see ``ohif_page.mjs``)."""
    with OhifServer(study.orthanc_url, "demo", PASSWORD, cpu_rendering=cpu_rendering) as web:
        page = (f"{web.url}/viewer?StudyInstanceUIDs={study.study_uid}"
                f"&initialSeriesInstanceUID={study.sr_series_uid}")
        out = subprocess.run(
            ["node", str(PAGE), "--url", page, "--out", str(png), "--timeout", str(int(timeout)),
             "--chromium", str(CHROMIUM)],
            capture_output=True, text=True, timeout=timeout + 60, cwd=PAGE.parent, check=False)
        if out.returncode != 0:
            raise RuntimeError(f"ohif_page.mjs failed: {out.stderr[-3000:]}")
        result: dict[str, Any] = json.loads(out.stdout)
        result["proxy_errors"] = list(web.errors)
        return result


def _angle(line1: list[float], line2: list[float]) -> float:
    """Cornerstone's Cobb angle of two drawn lines: between (p2 - p1) and (p3 - p4)."""
    v1 = np.array(line1[2:]) - np.array(line1[:2])
    v2 = np.array(line2[:2]) - np.array(line2[2:])
    cos = float(v1 @ v2 / (np.linalg.norm(v1) * np.linalg.norm(v2)))
    return math.degrees(math.acos(max(-1.0, min(1.0, cos))))


def _on_line(img: np.ndarray, line: list[float], samples: int = 40) -> float:
    """Share of points along ``line`` with annotation yellow within 2 px."""
    x1, y1, x2, y2 = line
    hits = 0
    for t in np.linspace(0.1, 0.9, samples):
        x, y = round(x1 + t * (x2 - x1)), round(y1 + t * (y2 - y1))
        patch = img[max(y - 2, 0):y + 3, max(x - 2, 0):x + 3].astype(int)
        yellow = (patch[..., 0] > 180) & (patch[..., 1] > 180) & (patch[..., 2] < 110)
        hits += bool(yellow.any())
    return hits / samples


def check_page(result: dict[str, Any], sr: Dataset, png: Path) -> list[str]:
    """What is wrong with the rendered page for ``sr`` (empty: nothing).

    Checks: OHIF offered to load the SR's measurements as tools and did; its SR display
    showed each aTFA as "<concept>: <value> deg"; the loaded Cobb angles, which Cornerstone
    computes again from the points as the angle at the knee between the two shafts, show
    180 - |aTFA| to 0.01 deg; the drawn arms make |aTFA| (0.1 deg); the arms are drawn in the
    screenshot (yellow pixels along them); and the radiograph is rendered under them (no
    image load error or page error in the browser's console, and not a blank viewport).
    """
    problems = [f"browser: {line[:200]}" for line in result["console"]
                if "IMAGE_LOAD_ERROR" in line or line.startswith("pageerror")]
    angles = sr_atfa(sr)
    values = [v for method in ("FTS", "FNTS") for v in angles[method]]
    if not values:
        return ["the SR has no aTFA"]
    if not result["prompted"] or not result["hydrated"]:
        problems.append("OHIF did not offer to load the SR's measurements as tools "
                        f"(prompted={result['prompted']}, hydrated={result['hydrated']})")
    for method in ("FTS", "FNTS"):
        for v in angles[method]:
            label = f"Anatomical tibiofemoral angle by {method}: {v:.2f} deg"
            if label not in result["srText"]:
                problems.append(f"SR display does not show {label!r}")
    shown = sorted(float(v) for v in re.findall(r"(\d+\.\d+) °", result["svgText"]))
    want = sorted(abs(v) for v in values)
    supplement = sorted(180.0 - w for w in want)
    if len(shown) != len(want) or any(
        abs(a - b) > 0.011 for a, b in zip(shown, supplement, strict=True)
    ):
        problems.append(f"the tools show {shown} deg, expected 180 - |aTFA| = {supplement}")
    lines = result["lines"]
    if len(lines) != 2 * len(values):
        problems.append(f"{len(lines)} arms drawn, expected {2 * len(values)}")
    drawn = sorted(_angle(lines[i], lines[i + 1]) for i in range(0, len(lines) - 1, 2))
    for w, got in zip(want, drawn, strict=False):
        if abs(w - got) > 0.1:
            problems.append(f"drawn arms make {got:.2f} deg, the SR has {w:.2f}")
    img = np.asarray(Image.open(png).convert("RGB"))
    for line in lines:
        if (share := _on_line(img, line)) < 0.8:
            problems.append(f"arm {np.round(line).tolist()} not drawn ({share:.0%} yellow)")
    vp = result["viewport"]
    if vp:
        y0, x0 = int(vp["y"]), int(vp["x"])
        area = img[y0:y0 + int(vp["height"]), x0:x0 + int(vp["width"])]
        if float(area.mean(axis=2).std()) < 10:
            problems.append("the viewport is blank: the radiograph was not rendered")
    else:
        problems.append("no viewport on the page")
    return problems
