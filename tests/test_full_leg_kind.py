"""The ``full-leg`` study kind: registered, its items are the legs with their values, its
writers make the full-leg SR and SC with the node's settings."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch
from full_leg_support import sr_leg_values
from pydicom.dataset import Dataset

from dicom_node import kinds
from dicom_node.errors import InputImageError
from dicom_node.kinds import full_leg
from dicom_node.measurer import Measurer, build_measurer
from dicom_node.settings import Settings
from inference.leg.predictor import FullLegResult
from training.synth_dicom.full_leg import make_full_leg_instance

VALUE_NAMES = ["HKA", "mLDFA", "mMPTA", "aHKA", "JLO", "FVA", "JLCA", "MAD", "aTFA"]


@pytest.fixture(scope="module")
def measured(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, Dataset, list, dict]:
    torch.set_num_threads(2)
    settings = Settings.model_validate(
        {"storage": {"data_dir": str(tmp_path_factory.mktemp("var"))}})
    measurer = build_measurer(settings.model, kinds.get("full-leg").measurer_factory)
    inst = make_full_leg_instance(990_000_051, max_rows=3000, syntax="explicit")
    return settings, inst.dataset, list(measurer.measure(inst.dataset)), inst.truth


def test_full_leg_is_registered_next_to_knee_ap() -> None:
    assert {"knee-ap", "full-leg"} <= set(kinds.names())
    kind = kinds.get("full-leg")
    assert kind is full_leg.KIND
    assert [w.object_kind for w in kind.writers] == ["SR", "SC"]
    assert kind.headline == ("HKA", "mLDFA", "CPAK")


def test_the_measurer_returns_one_result_per_image(measured: tuple) -> None:
    settings, _, results, _ = measured
    measurer = full_leg.make_measurer(settings.model)
    assert isinstance(measurer, Measurer)
    assert measurer.model_info.name.startswith("knee-node full-leg")
    assert len(results) == 1 and isinstance(results[0], FullLegResult)
    assert "total" in results[0].timings_ms


def test_a_knee_image_is_refused_as_input_error(measured: tuple) -> None:
    from node_support import make_dx

    settings, _, _, _ = measured
    knee, _ = make_dx(atfa_deg=3.0)
    with pytest.raises(InputImageError):
        full_leg.make_measurer(settings.model).measure(knee)


def test_items_are_the_legs_with_named_values_and_cpak_verdict(measured: tuple) -> None:
    _, _, results, truth = measured
    items = kinds.get("full-leg").items(results)
    assert sorted(i.laterality for i in items) == ["L", "R"]
    want = {lg["side"]: lg["measurements"]["HKA_deg"] for lg in truth["legs"]}
    for item, lg in zip(items, results[0].legs, strict=True):
        assert item.laterality == lg.side and item.quality == lg.quality
        if item.quality == "pass":
            assert [v.name for v in item.values] == VALUE_NAMES + ["CPAK"]
            cpak = item.values[-1]
            assert cpak.value is None and cpak.code is not None
            assert cpak.code.value == f"CPAK-{lg.cpak.roman}" and cpak.code.scheme == "99KNEENODE"
            assert cpak.method is None and cpak.label == "CPAK"  # the headline shows it
            units = {v.name: v.unit for v in item.values}
            assert units["MAD"] == "mm" and units["HKA"] == "deg"
            hka = next(v for v in item.values if v.name == "HKA").value
            assert hka == pytest.approx(want[item.laterality], abs=2.0)
            assert item.verdict == f"CPAK {lg.cpak.roman}" + (
                " borderline" if lg.cpak.borderline else "")
            assert len(item.verdict) <= 32
    flagged = replace(results[0], legs=(replace(results[0].legs[0], quality="flag",
                                                flag_reasons=("test",)),))
    (item,) = full_leg.leg_items([flagged])
    assert item.values == () and item.verdict == full_leg.NOT_DETERMINED
    assert item.flag_reasons == ("test",)


def test_writers_make_the_sr_and_sc_with_the_node_settings(measured: tuple,
                                                           tmp_path: Path) -> None:
    settings, src, results, _ = measured
    sr_w, sc_w = kinds.get("full-leg").writers
    sr = sr_w.make(settings, src, results)
    sc = sc_w.make(settings, src, results)
    assert sr.Modality == "SR" and sc.Modality == "OT"
    assert sr.StudyInstanceUID == sc.StudyInstanceUID == src.StudyInstanceUID
    assert sr.SOPInstanceUID != sc.SOPInstanceUID
    assert int(sr.SeriesNumber) == settings.reports.sr_series_number + 10
    assert int(sc.SeriesNumber) == settings.reports.sc_series_number + 10
    legs = sr_leg_values(sr)
    for lg in results[0].legs:
        if lg.quality == "pass":
            assert legs[lg.side]["LEG-HKA"] == pytest.approx(lg.measurements["HKA_deg"],
                                                             abs=0.051)
    with pytest.raises(ValueError, match="one result"):
        sr_w.make(settings, src, results * 2)
