"""``knee-node bench run --sections e2e-full-leg,ingest-full-leg`` on one small full-leg study.

The node runs on embedded defaults with the shipped full-leg model, the limit figure's parts
really run; no timing is asserted (speed is what ``knee-node bench`` reports).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from benchmarks.procs import redis_reachable
from dicom_node.cli import app


@pytest.mark.slow
@pytest.mark.network
@pytest.mark.services
def test_full_leg_sections_on_one_small_study(tmp_path: Path) -> None:
    for tool in ("storescu", "storescp"):
        if shutil.which(tool) is None:
            pytest.skip(f"needs {tool} (Debian package dcmtk)")
    if not redis_reachable():
        pytest.skip("Redis unreachable at 127.0.0.1:6379 (the ingest run's idle queue)")
    out, doc = tmp_path / "results.json", tmp_path / "benchmarks.md"
    result = CliRunner().invoke(app, [
        "bench", "run", "--sections", "e2e-full-leg,ingest-full-leg", "--full-leg-studies", "1",
        "--full-leg-distinct", "1", "--full-leg-ingest-files", "2", "--full-leg-max-rows",
        "1024", "--repeats", "1", "--limit-model-images", "1", "--out", str(out),
        "--doc", str(doc), "--work-dir", str(tmp_path / "work"),
    ])
    assert result.exit_code == 0, result.output
    res = json.loads(out.read_text())
    assert "e2e" not in res and "ingest" not in res  # no knee section ran
    sec = res["e2e_full_leg"]
    (cfg,) = sec["configs"]
    one = cfg["one_at_a_time"]
    assert one["studies"] == 1 and 0 < one["p50_s"] <= one["p95_s"] <= one["max_s"]
    st = one["stages_mean_s"]
    assert st["job_kinds"] == {"full-leg": 1}, st
    assert set(st["job_states"]) <= {"done", "flagged"}
    assert {"read", "measure", "reports"} <= set(st["job_parts"])
    assert cfg["peak_rss_mb"]["serve"] > 0
    assert sec["files"]["sop_class"].startswith("Digital X-Ray")
    # the limit: its parts ran on this run's files and objects
    lim = sec["limit"]
    assert lim["kind"] == "full-leg"
    study = next((tmp_path / "work" / "e2e_full_leg").glob("leg_0001.dcm"))
    assert lim["parts"]["store"]["bytes"] == study.stat().st_size
    assert lim["parts"]["model"]["images"] == 1
    assert [o["object"] for o in lim["parts"]["deliver"]["objects"]] == ["SR", "SC"]
    assert lim["seconds"] == pytest.approx(sum(lim["parts_seconds"].values()), abs=1e-3)
    assert sec["p95_to_limit"] == round(one["p95_s"] / lim["seconds"], 2)
    targets = {t["key"]: t for t in res["targets"]}
    assert targets["full-leg-e2e"]["measured"] == one["p95_s"]
    assert targets["full-leg-e2e"]["met"] == (one["p95_s"] <= 2.5)
    assert targets["full-leg-memory"]["measured"] == cfg["peak_rss_mb"]["serve"]
    assert targets["knee-e2e"]["met"] is None
    ing = res["ingest_full_leg"]
    assert ing["files"]["files"] == 2
    assert all(p["mb_per_s"] > 0 for p in ing["peers"].values())
    text = doc.read_text()
    assert "## 6. Full-leg end to end" in text and "## 7. Full-leg ingest" in text
    assert f"**{sec['p95_to_limit']}x the limit**" in text
