"""Shipped weights: they load, their SHA-256 is checked, altered or missing files fail clearly."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from dicom_node.errors import ModelError
from inference.predictor import MANIFEST, WEIGHTS_DIR, KneePredictor


def test_shipped_weights_load_and_name_their_hashes() -> None:
    p = KneePredictor.from_shipped_weights(device="cpu", num_threads=1)
    manifest = json.loads((WEIGHTS_DIR / MANIFEST).read_text())
    assert p.model_info.sha256 == manifest["sha256"]
    assert {"global.pt", "local.pt"} <= set(p.model_info.sha256)
    assert p.model_info.version == manifest["version"]
    size = sum(f.stat().st_size for f in WEIGHTS_DIR.iterdir() if f.is_file())
    assert size < 30 * 2**20


def test_altered_weights_are_refused(tmp_path: Path) -> None:
    d = tmp_path / "w"
    shutil.copytree(WEIGHTS_DIR, d)
    data = bytearray((d / "local.pt").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (d / "local.pt").write_bytes(bytes(data))
    with pytest.raises(ModelError, match="altered"):
        KneePredictor.from_weights_dir(d)


def test_missing_weights_are_refused(tmp_path: Path) -> None:
    d = tmp_path / "w"
    shutil.copytree(WEIGHTS_DIR, d)
    (d / "global.pt").unlink()
    with pytest.raises(ModelError, match="missing"):
        KneePredictor.from_weights_dir(d)
    (d / MANIFEST).unlink()
    with pytest.raises(ModelError, match="manifest"):
        KneePredictor.from_weights_dir(d)
