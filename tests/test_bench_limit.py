"""The limit figure (issue 16, item 5) and the targets judged from the figures.

The limit's parts really run here (a write + fsync, C-STOREs to a real pynetdicom SCP,
the knee predictor in a fresh ``bench-model`` process); no timing is asserted, only that
each part was measured and that the figure is their sum.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from benchmarks import limit
from benchmarks.memory import large_instance
from benchmarks.targets import targets
from dicom_node.cli import app
from dicom_node.peers import StandInPacs

ROOT = Path(__file__).resolve().parents[1]


def _by_key(res: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {t["key"]: t for t in targets(res)}


def test_write_fsync_writes_the_bytes_and_removes_its_files(tmp_path: Path) -> None:
    data = bytes(range(256)) * 12_000  # 3 MB, more than one write call
    fig = limit.write_fsync_seconds(data, tmp_path / "disk", repeats=2)
    assert fig["bytes"] == len(data) and len(fig["runs_seconds"]) == 2
    assert fig["seconds"] > 0 and fig["mb_per_s"] > 0
    assert list((tmp_path / "disk").iterdir()) == []
    with pytest.raises(ValueError, match="repeats must be >= 1, got 0"):
        limit.write_fsync_seconds(data, tmp_path, repeats=0)
    with pytest.raises(ValueError, match="data"):
        limit.write_fsync_seconds(b"", tmp_path)


class CountingPacs(StandInPacs):
    """The stand-in PACS, remembering every instance it was handed (all runs)."""

    seen: list[str] = []

    def _on_store(self, event: Any) -> int:
        CountingPacs.seen.append(str(event.dataset.SOPInstanceUID))
        return super()._on_store(event)


@pytest.mark.network
def test_cstore_part_sends_every_object_once_per_association(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    paths = [large_instance(tmp_path / f"obj{i}.dcm", 64, seed=i) for i in range(2)]
    CountingPacs.seen = []
    monkeypatch.setattr(limit, "StandInPacs", CountingPacs)
    fig = limit.cstore_seconds(paths, repeats=2)
    # one untimed association, then two timed ones, each with both objects
    assert len(CountingPacs.seen) == 3 * len(paths)
    assert len(fig["runs_seconds"]) == 2 and fig["seconds"] > 0
    assert [o["bytes"] for o in fig["objects"]] == [p.stat().st_size for p in paths]
    assert [o["object"] for o in fig["objects"]] == ["obj0", "obj1"]
    with pytest.raises(ValueError, match="paths"):
        limit.cstore_seconds([])


def test_combine_sums_the_parts_and_names_a_bad_one() -> None:
    parts = {"store": {"seconds": 0.01}, "model": {"seconds": 0.2},
             "deliver": {"seconds": 0.05}}
    fig = limit.combine("knee", **parts)
    assert fig["seconds"] == pytest.approx(0.26)
    assert fig["parts_seconds"] == {"store": 0.01, "model": 0.2, "deliver": 0.05}
    assert limit.ratio_to_limit(0.39, fig) == 1.5
    assert limit.ratio_to_limit(None, fig) is None and limit.ratio_to_limit(0.4, None) is None
    with pytest.raises(ValueError, match="model: seconds must be a positive number, got 0"):
        limit.combine("knee", parts["store"], {"seconds": 0}, parts["deliver"])
    with pytest.raises(ValueError, match="kind must be one of"):
        limit.combine("hip", **parts)


@pytest.mark.slow
@pytest.mark.network
def test_knee_limit_is_the_sum_of_parts_that_really_ran(tmp_path: Path) -> None:
    """Store of a real instance file, the knee predictor in a bench-model process, and a
    C-STORE of an SR and an SC written by the node's own writers."""
    from benchmarks.data import render_distinct

    (instance,) = render_distinct(tmp_path / "src", 1, 256, seed=960_000_000)
    results = _node_results(instance, tmp_path / "results")
    fig = limit.measure_limit("knee", instance, results, tmp_path / "scratch", model_images=1)
    p = fig["parts"]
    assert p["store"]["bytes"] == instance.stat().st_size
    assert p["model"]["images"] == 1 and p["model"]["threads"] == limit.embedded_threads()
    assert [o["object"] for o in p["deliver"]["objects"]] == ["SR", "SC"]
    assert all(fig["parts_seconds"][k] > 0 for k in ("store", "model", "deliver"))
    assert fig["seconds"] == pytest.approx(sum(fig["parts_seconds"].values()), abs=1e-3)
    threads = p["model"]["threads"]
    model_json = json.loads((tmp_path / "scratch" / f"limit_knee_model_t{threads}.json")
                            .read_text())  # the bench-model process's own figures
    assert model_json["latency_ms"]["total"]["mean"] / 1000 == pytest.approx(
        p["model"]["seconds"], abs=1e-4)


def _node_results(instance: Path, folder: Path) -> list[Path]:
    """SR and SC of ``instance`` as ``knee-node model predict --out`` writes them."""
    out = folder / "predict"
    result = CliRunner().invoke(app, ["model", "predict", str(instance), "--out", str(out)])
    assert result.exit_code == 0, result.output
    return [shutil.copyfile(out / "sr.dcm", folder / "SR.dcm"),
            shutil.copyfile(out / "sc.dcm", folder / "SC.dcm")]


def _e2e(p95: float, job: float, makespan: float | None = None, burst: int = 20,
         serve_mb: float = 700.0, limit_s: float | None = 0.3) -> dict[str, Any]:
    cfg: dict[str, Any] = {"name": "embedded", "workers": 0, "peak_rss_mb": {"serve": serve_mb},
                           "one_at_a_time": {"studies": 10, "p95_s": p95,
                                             "stages_mean_s": {"job": job}}}
    if makespan is not None:
        cfg["burst"] = {"studies": burst, "makespan_s": makespan, "p95_s": makespan}
    sec: dict[str, Any] = {"configs": [cfg]}
    if limit_s is not None:
        sec["limit"] = {"seconds": limit_s, "parts_seconds": {}}
    return sec


def test_targets_are_judged_from_the_figures() -> None:
    res = {"ingest": {"repeats": 3, "ratio_node_to_storescp_bit_preserving": 1.0},
           "e2e": _e2e(0.45, 0.3, makespan=7.2), "e2e_full_leg": _e2e(2.4, 1.0, serve_mb=1500)}
    t = _by_key(res)
    assert t["ingest"]["met"] is True and t["ingest"]["measured"] == 1.0
    assert t["knee-e2e"]["met"] is True and t["knee-e2e"]["measured"] == 0.45
    assert t["knee-limit"]["measured"] == 1.5 and t["knee-limit"]["met"] is True
    assert t["burst"]["limit"] == pytest.approx(1.2 * 20 * 0.3) and t["burst"]["met"] is True
    assert t["full-leg-e2e"]["met"] is True and t["full-leg-memory"]["met"] is True
    assert t["knee-memory"]["measured"] == 700.0 and t["knee-memory"]["met"] is True
    assert "0.3 s" in t["full-leg-e2e"]["note"]

    res = {"ingest": {"repeats": 1, "ratio_node_to_storescp_bit_preserving": 0.99},
           "e2e": _e2e(0.51, 0.3, makespan=7.3, serve_mb=1100, limit_s=0.33),
           "e2e_full_leg": _e2e(2.6, 1.0, serve_mb=1600)}
    t = _by_key(res)
    assert [t[k]["met"] for k in ("ingest", "knee-e2e", "knee-limit", "burst", "knee-memory",
                                  "full-leg-e2e", "full-leg-memory")] == [False] * 7
    assert "the issue asks for 3" in t["ingest"]["note"]


def test_targets_left_unmeasured_are_none_not_met() -> None:
    t = _by_key({"e2e": _e2e(0.4, 0.3, limit_s=None)})
    assert t["knee-e2e"]["met"] is True
    for key in ("ingest", "knee-limit", "burst", "full-leg-e2e", "full-leg-memory",
                "serve-memory", "reliability", "profiles"):
        assert t[key]["met"] is None, key
    t = _by_key({"e2e": _e2e(0.4, 0.3, makespan=5.0, burst=5)})
    assert t["burst"]["target"].startswith("burst of 5")
    assert "the issue says 20" in t["burst"]["note"]
    assert t["burst"]["limit"] == pytest.approx(1.2 * 5 * 0.3)


def test_rewrite_doc_judges_the_stored_run_by_issue_16s_lines(tmp_path: Path) -> None:
    """``--rewrite-doc`` runs nothing: the document from the JSON, targets judged again,
    the JSON left as it was, and a link to the hand-kept log of runs."""
    src = ROOT / "benchmarks" / "results.json"
    out, doc = tmp_path / "results.json", tmp_path / "benchmarks.md"
    shutil.copyfile(src, out)
    result = CliRunner().invoke(app, ["bench", "--rewrite-doc", "--out", str(out),
                                      "--doc", str(doc)])
    assert result.exit_code == 0, result.output
    assert out.read_bytes() == src.read_bytes()
    text = doc.read_text()
    res = json.loads(src.read_text())
    for t in targets(res):
        assert t["target"] in text
    assert "(benchmark_runs.md)" in text and "## Reproduce" in text
    knee = _by_key(res)["knee-e2e"]
    assert knee["measured"] == res["e2e"]["configs"][0]["one_at_a_time"]["p95_s"]
