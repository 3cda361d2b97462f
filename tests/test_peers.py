"""The one stand-in PACS and the loopback helpers (dicom_node/peers.py)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest
from node_support import make_dx
from pynetdicom import AE

from dicom_node.peers import PortError, StandInPacs, free_port, wait_port

ROOT = Path(__file__).resolve().parents[1]


def test_wait_port_fails_fast_when_the_process_exits_and_names_the_port() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    proc.wait()
    with pytest.raises(PortError, match="process exited with 3 before listening"):
        wait_port(free_port(), 5, proc)
    port = free_port()
    with pytest.raises(PortError, match=f"nothing listens on port {port}"):
        wait_port(port, 0.2)
    with pytest.raises(ValueError, match="port must be 1-65535, got 0"):
        wait_port(0)


@pytest.mark.network
def test_the_stand_in_pacs_records_and_writes_what_it_receives(tmp_path: Path) -> None:
    pacs = StandInPacs("SHARED_PACS", folder=tmp_path / "got").start()
    try:
        wait_port(pacs.port, 5)
        ds, _ = make_dx()
        ae = AE(ae_title="SCU")
        ae.add_requested_context(ds.file_meta.MediaStorageSOPClassUID,
                                 ds.file_meta.TransferSyntaxUID)
        assoc = ae.associate("127.0.0.1", pacs.port, ae_title="SHARED_PACS")
        assert assoc.send_c_store(ds).Status == 0x0000
        assoc.release()
        [got] = pacs.wait_for(1, 10)
        assert got.SOPInstanceUID == ds.SOPInstanceUID
        assert pacs.paths == [tmp_path / "got" / f"DX_{ds.SOPInstanceUID}.dcm"]
        assert set(pacs.arrivals[str(ds.StudyInstanceUID)]) == {"DX"}
        assert pacs.destination()["port"] == pacs.port
    finally:
        pacs.stop()


def test_free_port_and_wait_port_are_written_once() -> None:
    defined = [
        f"{p.relative_to(ROOT)}:{n.name}"
        for top in ("dicom_node", "tests", "benchmarks", "scripts")
        for p in sorted((ROOT / top).rglob("*.py"))
        for n in ast.walk(ast.parse(p.read_text()))
        if isinstance(n, ast.FunctionDef) and n.name in ("free_port", "wait_port")
    ]
    assert sorted(defined) == [
        "benchmarks/procs.py:wait_port",  # the same, failing with BenchmarkError
        "dicom_node/peers.py:free_port",
        "dicom_node/peers.py:wait_port",
    ]
