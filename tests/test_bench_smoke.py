"""The benchmark machinery on two tiny synthetic images: runs, writes well-formed JSON and
the generated Markdown. No timing is asserted (speed is what ``knee-node bench`` reports)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from benchmarks.procs import redis_reachable
from benchmarks.runner import BenchOptions, targets
from dicom_node.cli import app


def _need_peers() -> None:
    for tool in ("storescu", "storescp"):
        if shutil.which(tool) is None:
            pytest.skip(f"needs {tool} (Debian package dcmtk)")
    if not redis_reachable():
        pytest.skip("Redis unreachable at 127.0.0.1:6379 (the ingest run's idle queue)")


@pytest.mark.network
@pytest.mark.services
def test_bench_ingest_on_two_tiny_images_writes_json_and_doc(tmp_path: Path) -> None:
    _need_peers()
    out, doc = tmp_path / "results.json", tmp_path / "benchmarks.md"
    result = CliRunner().invoke(app, [
        "bench", "--sections", "ingest", "--ingest-files", "2", "--distinct", "2",
        "--max-side", "256", "--repeats", "1", "--out", str(out), "--doc", str(doc),
        "--work-dir", str(tmp_path / "work"),
    ])
    assert result.exit_code == 0, result.output
    res = json.loads(out.read_text())
    ing = res["ingest"]
    assert ing["files"]["files"] == 2 and ing["files"]["distinct_images"] == 2
    assert max(ing["files"]["example_rows_columns"]) <= 256
    for peer in ("knee-node serve", "storescp", "storescp +B"):
        p = ing["peers"][peer]
        assert p["mb_per_s"] > 0 and p["images_per_s"] > 0 and len(p["runs_seconds"]) == 1
    fastest_peer = max(ing["peers"][p]["mb_per_s"] for p in ("storescp", "storescp +B"))
    ratio = ing["peers"]["knee-node serve"]["mb_per_s"] / fastest_peer
    assert ing["ratio_node_to_storescp"] == pytest.approx(ratio, abs=0.01)
    assert ing["met"] == (ing["ratio_node_to_storescp_bit_preserving"] >= 1.0)
    assert ing["target_ratio"] == 1.0 and ing["target_against"] == "storescp +B"
    if not ing["met"]:  # the profile of the listener saw the handler run for each file
        parts = {r["part"]: r for r in ing["profile"]["handler_parts"]}
        assert parts["C-STORE handler (all)"]["calls"] == 2
    verdicts = {t["key"]: t["met"] for t in res["targets"]}
    assert verdicts == {"ingest": ing["met"], "knee-e2e": None, "knee-limit": None,
                        "full-leg-e2e": None, "burst": None, "knee-memory": None,
                        "full-leg-memory": None, "serve-memory": None, "reliability": None,
                        "profiles": None}
    assert "e2e" not in res and len(res["load_average_before"]) == 3
    text = doc.read_text()
    assert "## 1. Ingest" in text and str(ing["ratio_node_to_storescp_bit_preserving"]) in text
    assert "## 3. End to end" not in text


@pytest.mark.slow
@pytest.mark.network
def test_bench_end_to_end_on_two_tiny_studies(tmp_path: Path) -> None:
    """Embedded defaults with the shipped model: one study one at a time, one in a burst."""
    from benchmarks.data import make_file_set
    from benchmarks.e2e import load_datasets, measure_config

    files = make_file_set(tmp_path / "files", 3, 2, max_side=256)
    res = measure_config("embedded", tmp_path / "run", load_datasets(list(files.paths)),
                         one_at_a_time=1, burst=1)
    json.dumps(res)  # JSON-ready
    for mode in ("one_at_a_time", "burst"):
        m = res[mode]
        assert m["studies"] == 1 and 0 < m["p50_s"] <= m["p95_s"] <= m["max_s"]
        st = m["stages_mean_s"]
        assert sum(st["job_states"].values()) == 1
        assert set(st["job_states"]) <= {"done", "flagged"}
        assert {"model_global", "model_local", "reports", "pending_reports"} <= set(
            st["job_parts"])
        assert st["job"] > 0 and st["delivery"] > 0
        # the whole work: the job to its SR, then the SC and GSPS made after it
        assert st["work"] == pytest.approx(st["job"] + st["job_parts"]["pending_reports"],
                                           abs=0.002)
    assert res["peak_rss_mb"]["serve"] > 0
    t = {x["key"]: x for x in targets({"e2e": {"configs": [res]}})}
    assert t["knee-e2e"]["measured"] == res["one_at_a_time"]["p95_s"]
    assert t["burst"]["measured"] == res["burst"]["makespan_s"]
    assert t["burst"]["limit"] == round(
        1.2 * 1 * res["one_at_a_time"]["stages_mean_s"]["work"], 3)


def test_bench_options_name_bad_values() -> None:
    with pytest.raises(ValueError, match="sections"):
        BenchOptions(sections=("ingest", "speed"))
    with pytest.raises(ValueError, match="repeats"):
        BenchOptions(repeats=0)
    with pytest.raises(ValueError, match="max_side"):
        BenchOptions(max_side=10)
    with pytest.raises(ValueError, match="full_leg_max_rows must be >= 256 or None, got 100"):
        BenchOptions(full_leg_max_rows=100)
    with pytest.raises(ValueError, match="full_leg_studies must be >= 1, got 0"):
        BenchOptions(full_leg_studies=0)
    assert BenchOptions(sections=("e2e-full-leg", "ingest-full-leg")).sections


def test_bench_destination_asks_for_every_knee_object() -> None:
    """The e2e job's ``reports`` part times every knee writer (SR, SC and the optional
    GSPS), the set ``knee-node bench reports`` times and issue 15's target counts."""
    from benchmarks.e2e import Destination
    from dicom_node.kinds import get
    from dicom_node.settings import Settings

    delivery = Destination().destination_config()
    settings = Settings.model_validate({"delivery": delivery})
    (dest,) = settings.delivery.destinations
    kind = get("knee-ap")
    assert {w.object_kind for w in kind.writers_for(dest.objects)} == {
        w.object_kind for w in kind.writers} == {"SR", "SC", "GSPS"}
