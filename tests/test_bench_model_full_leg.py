"""``knee-node bench-model --kind full-leg`` on one small rendered study, and the kind registry.

No timing is asserted: only that something was measured (figures present, positive and
finite, both legs of the study measured) and that each kind refuses the other's options.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dicom_node.cli import app
from inference.bench_kinds import (
    BenchKind,
    BenchOptionError,
    BenchRequest,
    registry,
    run,
)


def _positive(value: object) -> bool:
    return isinstance(value, int | float) and math.isfinite(value) and value > 0


def test_full_leg_bench_measures_both_legs_of_one_small_study(tmp_path: Path) -> None:
    out = tmp_path / "model_full_leg.json"
    result = CliRunner().invoke(app, [
        "model", "bench-model", "--kind", "full-leg", "--count", "1", "--max-rows", "1024",
        "--threads", "1", "--out", str(out),
    ])
    assert result.exit_code == 0, result.output
    figures = json.loads(out.read_text())
    assert json.loads(result.output.strip().splitlines()[-1]) == figures  # JSON last line
    assert figures["kind"] == "full-leg" and figures["studies"] == 1
    assert figures["threads"] == 1 and figures["torch_threads"] == 1
    assert figures["seeds"] == [990_000_000, 990_000_000]
    (rows, cols), = figures["image_shapes"]
    assert rows <= 1024 and rows > cols
    for block in ("seconds_per_study", "measure_seconds"):
        assert set(figures[block]) == {"mean", "median", "p95", "min", "max"}
        assert all(_positive(v) for v in figures[block].values()), figures[block]
    assert figures["measure_seconds"]["mean"] <= figures["seconds_per_study"]["mean"]
    for key in ("peak_rss_mb", "rss_mb_after_imports", "rss_mb_after_load", "warm_up_seconds",
                "vm_hwm_mb", "parent_peak_rss_mb"):
        assert _positive(figures[key]), key
    assert figures["peak_rss_mb"] >= figures["rss_mb_after_load"] >= figures["rss_mb_after_imports"]
    # ru_maxrss also holds inherited peaks (0.1 MiB: rounding)
    assert figures["vm_hwm_mb"] <= figures["peak_rss_mb"] + 0.1
    for part in ("dcmread", "read", "roi", "landmarks", "shafts"):
        assert part in figures["parts_ms_mean"], part
    assert _positive(figures["parts_ms_mean"]["landmarks"])
    assert figures["legs_expected"] == 2
    assert figures["legs_measured"] == 2
    study, = figures["per_study"]
    assert study["legs_measured"] == 2 and _positive(study["seconds"])
    assert figures["model"].startswith("roi-")
    assert "OMP_WAIT_POLICY" in figures["thread_env"]
    assert set(figures["targets"]) >= {"latency_met", "rss_met"}


def test_each_kind_is_registered_with_its_own_defaults() -> None:
    kinds = registry()
    assert set(kinds) == set(BenchKind)
    full = kinds[BenchKind.FULL_LEG]
    assert (full.count, full.seed, full.out.name) == (5, 990_000_000, "model_full_leg.json")
    assert kinds[BenchKind.KNEE].out.name == "model.json"
    for spec in kinds.values():
        assert callable(spec.load())


@pytest.mark.parametrize(("kind", "request_kwargs", "flag"), [
    (BenchKind.KNEE, {"max_rows": 512}, "--max-rows"),
    (BenchKind.KNEE, {"full_size": True}, "--full-size"),
    (BenchKind.FULL_LEG, {"edge_refinement": "use"}, "--edge-refinement"),
    (BenchKind.FULL_LEG, {"max_rows": 512, "full_size": True}, "--full-size"),
    (BenchKind.FULL_LEG, {"transfer_syntax": "gif"}, "--transfer-syntax"),
])
def test_a_kind_refuses_options_it_does_not_take(kind: BenchKind, request_kwargs: dict,
                                                 flag: str) -> None:
    with pytest.raises(BenchOptionError, match=flag):
        run(kind, BenchRequest(count=1, threads=1, seed=990_000_000, **request_kwargs))


def test_the_command_refuses_a_knee_option_for_full_leg_and_an_unknown_kind() -> None:
    bad = CliRunner().invoke(app, ["model", "bench-model", "--kind", "full-leg",
                                   "--edge-refinement", "use"])
    assert bad.exit_code != 0 and "edge-refinement" in bad.output
    unknown = CliRunner().invoke(app, ["model", "bench-model", "--kind", "hand"])
    assert unknown.exit_code != 0 and "full-leg" in unknown.output


def test_knee_kind_still_writes_the_knee_figures(tmp_path: Path) -> None:
    out = tmp_path / "model.json"
    result = CliRunner().invoke(app, ["model", "bench-model", "--count", "1", "--threads", "1",
                                      "--out", str(out)])
    assert result.exit_code == 0, result.output
    figures = json.loads(out.read_text())
    assert figures["images"] == 1 and figures["edge_refinement"] == "off"
    assert _positive(figures["latency_ms"]["total"]["mean"]) and _positive(figures["peak_rss_mb"])
