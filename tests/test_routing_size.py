"""Routing by image size and aspect, and the default long-leg rules (header fields only)."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError
from pydicom.dataset import Dataset
from typer.testing import CliRunner

from dicom_node import kinds
from dicom_node.cli import app
from dicom_node.routing import route, row_spacing_mm
from dicom_node.settings import FULL_LEG_KIND, RoutingSettings, default_rules, load_settings

STAND_IN_FULL_LEG = '''
"""Stand-in ``full-leg`` kind for the routing tests (the real one: kinds/full_leg.py)."""

from dicom_node.kinds import StudyKind, OutputWriter
from dicom_node.kinds.knee_ap import overlay_image

KIND = StudyKind(
    name="full-leg",
    description="stand-in for the routing test",
    measurer_factory="node_support:truth_measurer",
    items=lambda measurements: [],
    writers=(OutputWriter("SC", "sc.dcm", overlay_image),),
    nothing_found="no leg found in the image",
)
'''


@pytest.fixture
def full_leg_kind(tmp_path: Path) -> Iterator[str]:
    """``full-leg`` registered: the real module if installed, else a stand-in module."""
    kinds._REGISTRY.clear()
    if FULL_LEG_KIND in kinds.names():
        yield FULL_LEG_KIND
        return
    folder = tmp_path / "stand_in_kinds"
    folder.mkdir()
    (folder / "stand_in_full_leg.py").write_text(textwrap.dedent(STAND_IN_FULL_LEG))
    kinds.__path__.append(str(folder))
    kinds._REGISTRY.clear()
    try:
        yield FULL_LEG_KIND
    finally:
        kinds.__path__.remove(str(folder))
        kinds._REGISTRY.clear()
        sys.modules.pop("dicom_node.kinds.stand_in_full_leg", None)


def header(rows: int, columns: int, spacing: float | None = 0.14, spacing_keyword: str =
           "ImagerPixelSpacing", **attrs: str) -> Dataset:
    """A header-only dataset (no PixelData) of a ``rows`` x ``columns`` image."""
    ds = Dataset()
    ds.Modality, ds.ViewPosition = "DX", "AP"
    ds.Rows, ds.Columns = rows, columns
    if spacing is not None:
        setattr(ds, spacing_keyword, [spacing, spacing])
    for keyword, value in attrs.items():
        setattr(ds, keyword, value)
    return ds


def knee() -> Dataset:
    return header(2500, 2048, BodyPartExamined="KNEE", SeriesDescription="Knee left AP")


def full_leg_8100x2800(**attrs: str) -> Dataset:
    return header(8100, 2800, 0.15, **{"BodyPartExamined": "LOWER LIMB", **attrs})


def chest() -> Dataset:
    return header(3000, 2500, BodyPartExamined="CHEST", SeriesDescription="Chest PA")


def test_without_the_full_leg_kind_the_default_is_ap_pa_knee_alone() -> None:
    kinds._REGISTRY.clear()
    if FULL_LEG_KIND in kinds.names():
        pytest.skip("the full-leg kind is installed")
    assert [r.name for r in RoutingSettings().rules] == ["ap-pa-knee"]
    d = route(full_leg_8100x2800(), RoutingSettings())
    assert (d.measure, d.kind) == (True, "knee-ap"), "LOWER LIMB went to the knee before"


def test_default_rules_route_knee_full_leg_and_ignore_chest(full_leg_kind: str) -> None:
    rules = RoutingSettings()
    assert [r.name for r in rules.rules] == [
        "full-leg-description", "full-leg-tall-image", "ap-pa-knee"]
    d = route(knee(), rules)
    assert (d.measure, d.rule, d.kind) == (True, "ap-pa-knee", "knee-ap")
    # tall and long, no description saying so
    d = route(full_leg_8100x2800(), rules)
    assert (d.measure, d.rule, d.kind) == (True, "full-leg-tall-image", full_leg_kind)
    # a description saying so, on an image of any size, body part absent
    small = header(3000, 2500, StudyDescription="XR hip to ankle bilateral")
    d = route(small, rules)
    assert (d.measure, d.rule, d.kind) == (True, "full-leg-description", full_leg_kind)
    d = route(chest(), rules)
    assert not d.measure and d.kind is None
    assert "BodyPartExamined CHEST" in d.reason and "ap-pa-knee" in d.reason


def test_a_knee_sent_as_leg_stays_a_knee(full_leg_kind: str) -> None:
    """ap-pa-knee keeps its meaning: BodyPartExamined LEG on a knee-sized image."""
    d = route(header(2500, 2048, BodyPartExamined="LEG", SeriesDescription="Knee AP"),
              RoutingSettings())
    assert (d.measure, d.rule, d.kind) == (True, "ap-pa-knee", "knee-ap")
    tall_only = RoutingSettings(rules=[RoutingSettings().rules[1]])
    assert route(header(2500, 2048, BodyPartExamined="LEG"), tall_only).reason == (
        "full-leg-tall-image: aspect Rows/Columns 1.22 < min_aspect 2")


@pytest.mark.parametrize("description", ["Full leg AP", "LONG-LEG standing", "Hip-to-ankle",
                                         "lower limbs AP standing"])
def test_long_leg_descriptions(full_leg_kind: str, description: str) -> None:
    ds = header(3000, 2500, BodyPartExamined="LEG", SeriesDescription=description)
    assert route(ds, RoutingSettings()).kind == full_leg_kind


def test_the_synthetic_full_leg_study_routes_to_full_leg(full_leg_kind: str) -> None:
    """The generator's bilateral full-leg instance (reduced to 800 rows): by its
    description, and by its size alone once the descriptions are removed."""
    from training.synth_dicom.full_leg import make_full_leg_instance

    ds = make_full_leg_instance(3, max_rows=800).dataset
    assert ds.Rows / ds.Columns >= 2 and "PixelSpacing" not in ds  # ImagerPixelSpacing only
    d = route(ds, RoutingSettings())
    assert (d.measure, d.rule, d.kind) == (True, "full-leg-description", full_leg_kind)
    for keyword in ("SeriesDescription", "StudyDescription", "ProtocolName"):
        if keyword in ds:
            delattr(ds, keyword)
    d = route(ds, RoutingSettings())
    assert (d.measure, d.rule, d.kind) == (True, "full-leg-tall-image", full_leg_kind)


@pytest.mark.parametrize(
    ("fields", "ds", "why"),
    [
        ({"min_rows": 4000}, header(3000, 1000), "Rows 3000 < min_rows 4000"),
        ({"min_aspect": 2.0}, header(3000, 2000), "aspect Rows/Columns 1.50 < min_aspect 2"),
        ({"max_aspect": 1.2}, header(3000, 2000), "aspect Rows/Columns 1.50 > max_aspect 1.2"),
        ({"min_height_mm": 600}, header(3000, 1000, 0.1), "height 300 mm < min_height_mm 600"),
        ({"min_height_mm": 600}, header(3000, 1000, None),
         "PixelSpacing and ImagerPixelSpacing absent"),
        ({"min_aspect": 2.0}, Dataset(), "Rows absent"),
    ],
)
def test_size_fields_give_a_reason(fields: dict[str, float], ds: Dataset, why: str) -> None:
    ds.Modality, ds.ViewPosition, ds.BodyPartExamined = "DX", "AP", "LEG"
    rules = RoutingSettings.model_validate({"rules": [{"name": "r", **fields}]})
    d = route(ds, rules)
    assert not d.measure
    assert d.reason == f"r: {why}"


def test_pixel_spacing_wins_over_imager_pixel_spacing() -> None:
    ds = header(1000, 500, 0.2, "ImagerPixelSpacing")
    assert row_spacing_mm(ds) == pytest.approx(0.2)
    ds.PixelSpacing = [0.7, 0.7]
    assert row_spacing_mm(ds) == pytest.approx(0.7)
    rules = RoutingSettings.model_validate({"rules": [{"name": "r", "min_height_mm": 600,
                                                       "body_parts": ["LEG"]}]})
    ds.BodyPartExamined = "LEG"
    assert route(ds, rules).measure  # 1000 x 0.7 = 700 mm


def test_size_fields_are_checked() -> None:
    with pytest.raises(ValidationError, match="min_aspect"):
        RoutingSettings.model_validate({"rules": [{"name": "r", "min_aspect": 3,
                                                   "max_aspect": 2}]})
    with pytest.raises(ValidationError, match="min_rows"):
        RoutingSettings.model_validate({"rules": [{"name": "r", "min_rows": 0}]})
    with pytest.raises(ValidationError, match="description"):
        RoutingSettings.model_validate({"rules": [{"name": "r", "description": "(x"}]})


def test_check_config_still_names_full_leg_when_it_is_not_installed(tmp_path: Path) -> None:
    kinds._REGISTRY.clear()
    if FULL_LEG_KIND in kinds.names():
        pytest.skip("the full-leg kind is installed")
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({
        "storage": {"data_dir": str(tmp_path)},
        "routing": {"rules": [{"name": "legs", "kind": "full-leg", "min_aspect": 2}]},
    }))
    result = CliRunner().invoke(app, ["check-config", str(cfg)])
    assert result.exit_code != 0
    assert "unknown study kind 'full-leg'" in result.output
    # the default configuration (no routing section) loads all the same
    ok = tmp_path / "ok.yaml"
    ok.write_text(yaml.safe_dump({"storage": {"data_dir": str(tmp_path)}}))
    assert [r.name for r in load_settings(ok, environ={}).routing.rules] == ["ap-pa-knee"]
    assert [r.name for r in default_rules()] == ["ap-pa-knee"]
