"""The generated benchmark document's profile before and after (issue 16)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmarks.report import BASELINE, before_after_md, load_baseline


def _res(p95: float, reports: float, ratio: float) -> dict[str, Any]:
    stages = {"store_and_record": 0.03, "queue_wait": 0.01, "job": 0.3, "delivery": 0.04,
              "job_parts": {"model_local": 0.15, "reports": reports}}
    return {"started_utc": "2026-01-01T00:00:00Z",
            "ingest": {"ratio_node_to_storescp": ratio},
            "e2e": {"configs": [
                {"name": "Celery+Redis", "one_at_a_time": {"p50_s": 9, "p95_s": 9,
                                                           "stages_mean_s": stages}},
                {"name": "embedded defaults (serve)", "one_at_a_time": {
                    "p50_s": p95 / 2, "p95_s": p95, "stages_mean_s": stages}}]}}


def test_profile_before_and_after_puts_each_stage_side_by_side() -> None:
    text = "\n".join(before_after_md(_res(0.4, 0.08, 2.0), _res(1.3, 0.43, 0.9)))
    assert "| end to end p50 / p95 | 0.65 / 1.3 | 0.2 / 0.4 |" in text
    assert "| - job part reports | 0.43 | 0.08 |" in text  # the embedded row, not Celery's
    assert "| ingest node / storescp +B | 0.9x | 2.0x |" in text
    assert before_after_md(_res(0.4, 0.08, 2.0), None) == []


def test_the_baseline_is_the_run_issue_16_started_from(tmp_path: Path) -> None:
    base = load_baseline()
    assert base is not None and base["started_utc"].startswith("2026-12-01")
    assert BASELINE.name == "baseline_2026-12-01.json"
    assert load_baseline(tmp_path / "missing.json") is None
