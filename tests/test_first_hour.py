"""A new user's first hour (issue 17): every message says what happened and what to do.

Each test runs a command as a user does (typer's CliRunner or a subprocess), reads what it
prints, and checks that the message names the port, the path or the reason.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from node_support import TruthMeasurer, free_port
from typer.testing import CliRunner

from dicom_node.cli import app
from dicom_node.node import KneeNode
from dicom_node.settings import Settings

REPO = Path(__file__).resolve().parents[1]


def _config(folder: Path, cfg: dict[str, Any]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _cli(*args: str, cwd: Path | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """``knee-node ARGS`` in a subprocess, as a user types it."""
    return subprocess.run(
        [sys.executable, "-m", "dicom_node.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
    )


# -- 1. the demo works every time --------------------------------------------------------
@pytest.mark.network
def test_demo_run_three_times_in_one_folder_succeeds_each_time(tmp_path: Path) -> None:
    """Before: the second run's study had the first run's UIDs, was recorded as a
    duplicate, and the demo waited 300 s in silence. Now each run sends fresh UIDs."""
    pytest.importorskip("training.synth")
    from dicom_node.demo import run_demo

    uids = set()
    for run in range(3):
        lines: list[str] = []
        result = run_demo(
            tmp_path,
            seed=900_000_007,
            measurer=TruthMeasurer(tmp_path / "source"),
            timeout_s=120,
            progress=lines.append,
        )
        text = "\n".join(lines)
        for step in ("node up", "study sent", "measuring", "SR received"):
            assert step in text, f"run {run + 1}: no {step!r} progress line in:\n{text}"
        assert result.sr_path.is_file()
        uids.add(result.sr_path.parent.name)
    assert len(uids) == 3, "each run is a job of its own"


@pytest.mark.network
def test_demo_fails_fast_with_the_real_reason(tmp_path: Path) -> None:
    """A measurement that fails ends the demo at once with its reason, not after 300 s."""
    pytest.importorskip("training.synth")
    from dicom_node.demo import DemoError, run_demo

    empty = tmp_path / "no-truth"
    empty.mkdir()
    with pytest.raises(DemoError, match="no ground truth for this instance"):
        run_demo(tmp_path, seed=900_000_007, measurer=TruthMeasurer(empty), timeout_s=300)


@pytest.mark.slow
@pytest.mark.network
def test_demo_command_passes_three_times_with_the_shipped_model(tmp_path: Path) -> None:
    """``knee-node demo`` as documented, three times in a row in one folder."""
    for _ in range(3):
        out = _cli("demo", "--out", str(tmp_path / "demo"), cwd=tmp_path, timeout=300)
        assert out.returncode == 0, out.stdout + out.stderr
        assert "SR received by the demo PACS" in out.stdout
        assert "aTFA by FTS" in out.stdout
        assert "Traceback" not in out.stderr


# -- 4. serve on a port in use ---------------------------------------------------------------
@pytest.mark.network
def test_serve_on_a_port_in_use_prints_one_line_naming_the_port(tmp_path: Path) -> None:
    port = free_port()
    config = _config(
        tmp_path, {"node": {"port": port}, "storage": {"data_dir": "var"},
                   "metrics": {"enabled": False}}
    )
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        out = _cli("serve", "--config", str(config), cwd=tmp_path)
    assert out.returncode == 1
    assert "Traceback" not in out.stderr, out.stderr
    errors = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, out.stderr
    assert f"127.0.0.1:{port}" in errors[0] and "already in use" in errors[0]
    assert "--port" in errors[0], "says what to do"
    # the failed start released the data directory: a node can start on it now
    s = Settings.model_validate({"storage": {"data_dir": str(tmp_path / "var")}})
    with KneeNode(s, measurer=TruthMeasurer(tmp_path), port=0):
        pass


# -- 6. one node per data directory -----------------------------------------------------------
@pytest.mark.network
def test_second_node_on_the_same_data_dir_refuses_naming_the_holder(tmp_path: Path) -> None:
    config = _config(
        tmp_path, {"node": {"port": 0}, "storage": {"data_dir": "var"},
                   "metrics": {"enabled": False}}
    )
    first = Settings.model_validate({"storage": {"data_dir": str(tmp_path / "var")}})
    with KneeNode(first, measurer=TruthMeasurer(tmp_path), port=0):
        out = _cli("serve", "--config", str(config), cwd=REPO, timeout=60)  # not a hang
        assert out.returncode == 1, out.stdout + out.stderr
        assert "Traceback" not in out.stderr, out.stderr
        assert f"PID {os.getpid()}" in out.stderr
        assert str((tmp_path / "var").resolve()) in out.stderr
        assert "storage.data_dir" in out.stderr, "says what to do"
        other = Settings.model_validate({"storage": {"data_dir": str(tmp_path / "other")}})
        with KneeNode(other, measurer=TruthMeasurer(tmp_path), port=0):
            pass  # another data directory: no conflict
    with KneeNode(first, measurer=TruthMeasurer(tmp_path), port=0):
        pass  # released when the first node stopped
