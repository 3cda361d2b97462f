"""Issue 15, item 4: the DICOMweb STOW-RS destination (``type: dicomweb``).

Against Orthanc's DICOMweb plugin on loopback: the node's SR and SC reach Orthanc exactly
once (checked in Orthanc's own ``/instances``), with basic auth from the environment; a
server that is down at first gets them once it is up. Against a tiny local HTTP server:
a 503 is retried and then delivered, a 400 is a readable error in the delivery row and in
``status``, and after ``max_attempts`` the delivery is failed, as for DIMSE.
"""

from __future__ import annotations

import base64
import json
import logging
import shutil
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from node_support import free_port, wait_port
from pydantic import ValidationError
from pydicom import dcmread
from test_node_listener import Env

from dicom_node.db import Delivery, OutputObject
from dicom_node.destinations import transports
from dicom_node.destinations.dicomweb import DicomwebDestination
from dicom_node.settings import Settings, format_errors
from dicom_node.startup import destinations_text

DICOMWEB_PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")
ORTHANC = shutil.which("Orthanc") or (
    "/usr/sbin/Orthanc" if Path("/usr/sbin/Orthanc").exists() else None
)
USER, PASSWORD = "node", "stow-secret-for-test"


def _dest(**kw: Any) -> dict[str, Any]:
    return {"type": "dicomweb", "name": "web", **kw}


# --- settings --------------------------------------------------------------------------


def test_the_transport_is_registered_and_describes_itself_without_secrets() -> None:
    assert transports()["dicomweb"].model is DicomwebDestination
    s = Settings.model_validate({"delivery": {"destinations": [_dest(
        url="https://pacs.example:8443/dicom-web/", auth="basic", auth_env="PACS_AUTH")]}})
    d = s.delivery.destinations[0]
    assert isinstance(d, DicomwebDestination)
    assert d.url == "https://pacs.example:8443/dicom-web"
    assert d.address == ("", "pacs.example", 8443)
    assert d.describe() == "STOW-RS https://pacs.example:8443/dicom-web, basic auth from $PACS_AUTH"
    assert DicomwebDestination(name="x", url="http://h/dw").address == ("", "h", 80)


@pytest.mark.parametrize(
    ("entry", "key", "words"),
    [
        (_dest(url="ftp://h/x"), "url", "http:// or https://"),
        (_dest(url="http://u:pw@h/x"), "url", "user name or password"),
        (_dest(url="http://h:99999/x"), "url", "port"),
        (_dest(url="http://h/x", timeout_s=0), "timeout_s", "greater than 0"),
        (_dest(url="http://h/x", auth="digest"), "auth", "'basic'"),
        (_dest(url="http://h/x", auth="basic", auth_env="no-such name"), "auth_env",
         "environment variable name"),
        (_dest(url="http://h/x", auth="bearer"), "", "auth_env must name"),
        (_dest(url="http://h/x", password="x"), "password", "unknown key"),
    ],
)
def test_bad_values_are_refused_naming_the_key(entry: dict[str, Any], key: str,
                                               words: str) -> None:
    with pytest.raises(ValidationError) as info:
        Settings.model_validate({"delivery": {"destinations": [entry]}})
    lines = format_errors(info.value)
    want = "delivery.destinations.0" + (f".{key}" if key else "")
    assert any(line.startswith(f"{want}:") and words in line for line in lines), lines


# --- a tiny HTTP server ------------------------------------------------------------------


class _Answers(BaseHTTPRequestHandler):
    """Answers each POST with the next status of ``server.statuses`` (the last repeats)."""

    def do_POST(self) -> None:  # noqa: N802
        srv: Any = self.server
        body = self.rfile.read(int(self.headers.get("Content-Length", "0") or 0))
        srv.requests.append((self.path, dict(self.headers), body))
        status = srv.statuses[min(len(srv.requests) - 1, len(srv.statuses) - 1)]
        payload: dict[str, Any] = {}
        if status in (400, 202):
            payload = {"00081198": {"vr": "SQ", "Value": [{
                "00081155": {"vr": "UI", "Value": ["1.2.3.4"]},
                "00081197": {"vr": "US", "Value": [0xC000 if status == 400 else 0xA700]}}]}}
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/dicom+json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@contextmanager
def answering(*statuses: int) -> Iterator[Any]:
    srv: Any = ThreadingHTTPServer(("127.0.0.1", 0), _Answers)
    srv.statuses, srv.requests = statuses, []
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()


def _web_env(tmp: Path, url: str, max_attempts: int = 4, **dest: Any) -> Env:
    return Env(tmp, delivery={
        "destinations": [_dest(url=url, timeout_s=5, **dest)],
        "backoff_initial_s": 0.2, "backoff_factor": 1.5, "max_attempts": max_attempts,
    })


def _wait_delivery(e: Env, states: set[str], timeout: float = 40) -> Delivery:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = e.rows(Delivery)
        if rows and rows[0].state in states:
            return rows[0]
        time.sleep(0.1)
    raise AssertionError(f"delivery not in {states}: {[(d.state, d.last_error) for d in rows]}")


def test_a_503_is_retried_then_delivered_once_with_a_readable_error(tmp_path: Path) -> None:
    with answering(503, 200) as srv:
        e = _web_env(tmp_path, f"http://127.0.0.1:{srv.server_address[1]}/dicom-web")
        with e.node:
            ds, _ = e.case("a", atfa_deg=2.0)
            assert e.push(ds) == [0x0000]
            d = _wait_delivery(e, {"delivered"})
            assert e.node.wait_idle(30)
        assert d.object_kinds == ["SR"] and d.attempts == 2 and d.last_error is None
        # the SR first (503, then 200 after its backoff), then the SC in its own request
        rows = e.rows(Delivery)
        assert [(r.object_kinds, r.attempts, r.state, r.last_error) for r in rows] == [
            (["SR"], 2, "delivered", None), (["SC"], 1, "delivered", None)]
        assert len(srv.requests) == 3
        for path, headers, _ in srv.requests:
            assert path == "/dicom-web/studies"
            assert headers["Content-Type"].startswith("multipart/related")
            assert 'type="application/dicom"' in headers["Content-Type"]
            assert "Authorization" not in headers
        uids = {o.object_kind: o.sop_instance_uid.encode() for o in e.rows(OutputObject)}
        assert [sum(u in body for _, _, body in srv.requests) for u in (uids["SR"], uids["SC"])
                ] == [2, 1], "the SR twice (503, then 200), the SC once"


def test_a_400_is_a_readable_error_and_gives_up_as_for_dimse(tmp_path: Path) -> None:
    with answering(400) as srv:
        e = _web_env(tmp_path, f"http://127.0.0.1:{srv.server_address[1]}/dicom-web",
                     max_attempts=2)
        with e.node:
            ds, _ = e.case("a", atfa_deg=2.0)
            assert e.push(ds) == [0x0000]
            d = _wait_delivery(e, {"failed"})
            assert e.node.wait_idle(30)
        rows = e.rows(Delivery)  # the SR's delivery and the SC's: each gives up after 2
        assert [(r.object_kinds, r.attempts, r.state) for r in rows] == [
            (["SR"], 2, "failed"), (["SC"], 2, "failed")]
        assert d.attempts == 2 and len(srv.requests) == 4
        assert d.last_error is not None
        assert "DeliveryError: web (http://127.0.0.1:" in d.last_error
        assert "answered HTTP 400 Bad Request" in d.last_error
        assert "1.2.3.4: 0xC000 (cannot understand)" in d.last_error
        from typer.testing import CliRunner

        from dicom_node.cli import app

        out = CliRunner().invoke(app, ["status", "--config", str(e.config)]).output
        assert "destination web: 0 delivered, 1 failed" in out
        assert "answered HTTP 400 Bad Request" in out


def test_basic_and_bearer_credentials_come_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dicom_node.destinations.dicomweb import store

    f = tmp_path / "x.dcm"
    from node_support import make_dx

    make_dx(atfa_deg=1.0)[0].save_as(f, enforce_file_format=True)
    with answering(200) as srv:
        url = f"http://127.0.0.1:{srv.server_address[1]}/dw"
        monkeypatch.setenv("WEB_AUTH", f"{USER}:{PASSWORD}")
        store([f], DicomwebDestination(name="w", url=url, auth="basic", auth_env="WEB_AUTH"))
        monkeypatch.setenv("WEB_TOKEN", "tok-123")
        store([f], DicomwebDestination(name="w", url=url, auth="bearer", auth_env="WEB_TOKEN"))
        want = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        assert srv.requests[0][1]["Authorization"] == want
        assert srv.requests[1][1]["Authorization"] == "Bearer tok-123"
        monkeypatch.delenv("WEB_TOKEN")
        from dicom_node.errors import DeliveryError

        with pytest.raises(DeliveryError, match="environment variable WEB_TOKEN"):
            store([f], DicomwebDestination(name="w", url=url, auth="bearer", auth_env="WEB_TOKEN"))
    assert len(srv.requests) == 2


def test_an_accepted_answer_listing_failed_instances_is_a_failed_attempt(
    tmp_path: Path,
) -> None:
    from node_support import make_dx

    from dicom_node.destinations.dicomweb import store
    from dicom_node.errors import DeliveryError

    f = tmp_path / "x.dcm"
    make_dx(atfa_deg=1.0)[0].save_as(f, enforce_file_format=True)
    with answering(202, 503) as srv:
        dest = DicomwebDestination(name="w", url=f"http://127.0.0.1:{srv.server_address[1]}/dw")
        with pytest.raises(DeliveryError, match=r"refused 1 of 1 object\(s\): 1\.2\.3\.4: "
                           r"0xA700 \(out of resources\)"):
            store([f], dest)
        with pytest.raises(DeliveryError, match="answered HTTP 503 Service Unavailable"):
            store([f], dest)
    assert len(srv.requests) == 2  # the client itself did not retry the 503
    port = free_port()  # nobody listens
    with pytest.raises(DeliveryError, match="is unreachable: .*Connection refused"):
        store([f], DicomwebDestination(name="w", url=f"http://127.0.0.1:{port}/dw"))
    import socket

    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts, never answers
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/dw"
        with pytest.raises(DeliveryError, match=r"did not answer in 0\.5 s"):
            store([f], DicomwebDestination(name="w", url=url, timeout_s=0.5))


# --- Orthanc's DICOMweb plugin -----------------------------------------------------------


def _orthanc_rest(port: int, path: str) -> Any:
    auth = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}",
                                 headers={"Authorization": f"Basic {auth}"})
    with urllib.request.urlopen(req, timeout=30) as rsp:
        return json.loads(rsp.read() or b"null")


@contextmanager
def orthanc(tmp: Path, http_port: int) -> Iterator[None]:
    cfg = {
        "Name": "stow-test",
        "StorageDirectory": str(tmp / "orthanc"),
        "IndexDirectory": str(tmp / "orthanc"),
        "HttpPort": http_port,
        "DicomPort": free_port(),
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": True,
        "RegisteredUsers": {USER: PASSWORD},
        "Plugins": [str(DICOMWEB_PLUGIN)],
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/", "EnableWado": False},
    }
    (tmp / "orthanc.json").write_text(json.dumps(cfg))
    with (tmp / "orthanc.log").open("a") as log:
        assert ORTHANC is not None
        proc = subprocess.Popen([ORTHANC, str(tmp / "orthanc.json")], stdout=log,
                                stderr=subprocess.STDOUT, env={"PATH": "/usr/bin:/bin"})
        try:
            wait_port(http_port, 30, proc)
            yield
        finally:
            proc.terminate()
            proc.wait(20)


def _needs_orthanc() -> None:
    if ORTHANC is None or not DICOMWEB_PLUGIN.exists():
        pytest.skip("needs Orthanc and its DICOMweb plugin (Debian orthanc, orthanc-dicomweb)")


def _check_in_orthanc(e: Env, http_port: int, count: int = 2) -> None:
    """Orthanc holds exactly the job's objects (SR, SC[, GSPS]), with their SOP Instance UIDs."""
    want = sorted(o.sop_instance_uid for o in e.rows(OutputObject))
    ids = _orthanc_rest(http_port, "/instances")
    got = sorted(_orthanc_rest(http_port, f"/instances/{i}")["MainDicomTags"]["SOPInstanceUID"]
                 for i in ids)
    assert len(want) == count and got == want
    for o in e.rows(OutputObject):  # and the same content
        tags = _orthanc_rest(http_port, f"/instances/{_find(http_port, o.sop_instance_uid)}"
                             "/simplified-tags")
        assert tags["SOPClassUID"] == str(dcmread(o.path, stop_before_pixels=True).SOPClassUID)


def _find(http_port: int, sop_uid: str) -> str:
    for i in _orthanc_rest(http_port, "/instances"):
        tags = _orthanc_rest(http_port, f"/instances/{i}")["MainDicomTags"]
        if tags["SOPInstanceUID"] == sop_uid:
            return str(i)
    raise AssertionError(f"{sop_uid} not in Orthanc")


@pytest.mark.network
def test_sr_sc_and_gsps_reach_orthanc_by_stow_rs_exactly_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    _needs_orthanc()
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("ORTHANC_STOW_AUTH", f"{USER}:{PASSWORD}")
    http_port = free_port()
    e = _web_env(tmp_path, f"http://127.0.0.1:{http_port}/dicom-web", auth="basic",
                 auth_env="ORTHANC_STOW_AUTH", objects=["SR", "SC", "GSPS"])
    with orthanc(tmp_path, http_port), e.node:
        ds, _ = e.case("a", atfa_deg=-4.0)
        assert e.push(ds) == [0x0000]
        d = _wait_delivery(e, {"delivered", "failed"})
        assert e.node.wait_idle(30)
        assert d.state == "delivered" and d.attempts == 1, d.last_error
        assert (d.ae_title, d.host, d.port) == ("", "127.0.0.1", http_port)
        _check_in_orthanc(e, http_port, count=3)
        modalities = sorted(
            _orthanc_rest(http_port, f"/series/{s}")["MainDicomTags"]["Modality"]
            for s in _orthanc_rest(http_port, "/series"))
        assert modalities == ["OT", "PR", "SR"]
    assert "STOW-RS http://127.0.0.1:" in destinations_text(e.settings)
    assert "basic auth from $ORTHANC_STOW_AUTH; SR SC GSPS" in destinations_text(e.settings)
    assert any("by STOW-RS" in r.getMessage() for r in caplog.records)
    encoded = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    assert not [r for r in caplog.records if PASSWORD in r.getMessage()
                or encoded in r.getMessage()]  # not even at DEBUG


@pytest.mark.network
def test_orthanc_down_then_up_receives_each_object_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _needs_orthanc()
    monkeypatch.setenv("ORTHANC_STOW_AUTH", f"{USER}:{PASSWORD}")
    http_port = free_port()
    e = _web_env(tmp_path, f"http://127.0.0.1:{http_port}/dicom-web", max_attempts=30,
                 auth="basic", auth_env="ORTHANC_STOW_AUTH")
    with e.node:
        ds, _ = e.case("a", atfa_deg=5.0)
        assert e.push(ds) == [0x0000]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            rows = e.rows(Delivery)
            if rows and rows[0].attempts >= 2 and rows[0].state == "retrying":
                break
            time.sleep(0.1)
        d = e.rows(Delivery)[0]
        assert d.state == "retrying" and d.last_error is not None
        assert "is unreachable" in d.last_error and "Connection refused" in d.last_error
        assert PASSWORD not in d.last_error
        with orthanc(tmp_path, http_port):  # the server comes up
            d = _wait_delivery(e, {"delivered", "failed"}, timeout=60)
            assert d.state == "delivered" and d.last_error is None
            assert e.node.wait_idle(30)
            _check_in_orthanc(e, http_port)
