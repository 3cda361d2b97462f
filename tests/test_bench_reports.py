"""``knee-node bench reports`` on small synthetic studies: every writer of both study kinds
is timed, the JSON and the printed lines carry the figures. No timing is asserted (speed is
what the command reports, see ``benchmarks/reports.json``)."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from dicom_node.cli import app
from dicom_node.reports.secondary_capture import SC_ENCODINGS


def test_bench_reports_times_every_writer_of_both_kinds(tmp_path: Path) -> None:
    out = tmp_path / "reports.json"
    result = CliRunner().invoke(app, [
        "bench", "reports", "--repeats", "1", "--knee-max-side", "640",
        "--leg-max-rows", "3000", "--profile", "6", "--out", str(out),
    ])
    assert result.exit_code == 0, result.output
    res = json.loads(out.read_text())
    knee, leg = res["knee"], res["full_leg"]
    assert set(knee["objects"]) == {"SR", "SC", "GSPS"}
    assert set(leg["objects"]) == {"SR", "SC"}
    for study in (knee, leg):
        for row in study["objects"].values():
            assert row["build_ms"] > 0 and row["write_ms"] > 0 and row["bytes"] > 1000
            assert row["build_cpu_ms"] > 0
        total = study["total"]
        assert total["build_ms"] == round(sum(o["build_ms"] for o in study["objects"].values()), 2)
        assert total["build_and_write_ms"] >= total["build_ms"]
    assert max(knee["rows_columns"]) <= 640 and leg["rows_columns"][0] <= 3000
    assert knee["met"] == (knee["total"]["build_ms"] <= 1000 * knee["target_s"])
    assert knee["met_cpu"] == (knee["total"]["build_cpu_ms"] <= 1000 * knee["target_s"])
    assert knee["met_with_writes"] == (
        knee["total"]["build_and_write_ms"] <= 1000 * knee["target_s"])
    profile = knee["profile"]
    assert set(profile) == {"SR", "SC", "GSPS"}
    for rows in profile.values():
        assert len(rows) == 6 and rows[0]["cum_ms_per_run"] >= rows[-1]["cum_ms_per_run"] > 0
        assert all(r["calls_per_run"] > 0 and r["own_ms_per_run"] >= 0 for r in rows)
    sc_functions = [r["function"] for r in profile["SC"]]
    assert any("create_overlay_image" in f for f in sc_functions), sc_functions
    assert "knee SC profile" in result.output
    encodings = knee["sc_encodings"]
    assert set(encodings) == set(SC_ENCODINGS)
    assert encodings["explicit"]["size_ratio"] == 1.0
    assert encodings["jpeg2000-lossless"]["bytes"] < encodings["explicit"]["bytes"]
    assert len(res["load_average_before"]) == 3 and res["command"].startswith("knee-node")
    text = result.output
    assert "knee " in text and "full_leg " in text and "SC by encoding" in text
    assert f"{knee['objects']['SR']['build_ms']:.1f} ms" in text
