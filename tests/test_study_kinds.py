"""Study kinds: the registry, routing to a kind, per-kind measurers, and a second kind
served end to end by adding one registration module and nothing else."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from node_support import StoreSCP, TruthMeasurer, make_dx, write_case
from pydicom.dataset import Dataset
from pynetdicom import AE
from sqlalchemy import select
from typer.testing import CliRunner

from dicom_node import kinds
from dicom_node.cli import app
from dicom_node.db import Job, ReceivedInstance
from dicom_node.errors import ConfigError
from dicom_node.kinds import MeasuredItem, OutputWriter, ResultValue, StudyKind
from dicom_node.kinds.knee_ap import overlay_image
from dicom_node.measurer import LazyMeasurer
from dicom_node.node import KneeNode
from dicom_node.routing import route
from dicom_node.settings import ModelSettings, RoutingSettings, Settings, load_settings


def test_knee_ap_is_registered_and_is_the_default_kind() -> None:
    kind = kinds.get("knee-ap")
    assert kinds.DEFAULT_KIND == "knee-ap" and "knee-ap" in kinds.names()
    assert [w.object_kind for w in kind.writers] == ["SR", "SC", "GSPS"]
    assert [w.object_kind for w in kind.writers_for(None)] == ["SR", "SC"]  # GSPS if asked
    assert [w.object_kind for w in kind.writers_for(("GSPS", "SR"))] == ["SR", "GSPS"]
    assert kind.headline == ("aTFA FTS", "aTFA FNTS")
    # with full-leg installed its two rules come first; the knee rule keeps its name and kind
    assert [r.kind for r in Settings().routing.rules] == ["full-leg", "full-leg", "knee-ap"]
    assert Settings().routing.rules[-1].name == "ap-pa-knee"
    unknown = r"unknown study kind 'elbow'; known kinds: full-leg, knee-ap"
    with pytest.raises(ConfigError, match=unknown):
        kinds.get("elbow")


def test_the_record_checks_its_fields() -> None:
    def items(ms: Any) -> list[MeasuredItem]:
        return []

    writer = OutputWriter("SC", "sc.dcm", overlay_image)
    with pytest.raises(ValueError, match="name must be lower-case.*'Full Leg'"):
        StudyKind("Full Leg", "d", "m:f", items, (writer,), "none")
    with pytest.raises(ValueError, match="measurer_factory.*'nocolon'"):
        StudyKind("full-leg", "d", "nocolon", items, (writer,), "none")
    with pytest.raises(ValueError, match="writers of kind 'full-leg' must name"):
        StudyKind("full-leg", "d", "m:f", items, (), "none")
    with pytest.raises(ValueError, match="repeat an object kind"):
        StudyKind("full-leg", "d", "m:f", items, (writer, writer), "none")
    with pytest.raises(ValueError, match="object_kind must be.*'sr'"):
        OutputWriter("sr", "sr.dcm", overlay_image)
    with pytest.raises(ValueError, match="file_name must be.*'a/b.dcm'"):
        OutputWriter("SR", "a/b.dcm", overlay_image)
    with pytest.raises(ValueError, match="laterality must be 'L' or 'R', got 'B'"):
        MeasuredItem("B", "pass", 1.0, "normal", ())
    with pytest.raises(ValueError, match="unit must be"):
        ResultValue("HKA", 1.0, "")
    assert ResultValue("aTFA", 1.0, "deg", "FTS").label == "aTFA FTS"


def test_check_config_names_an_unknown_kind(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({
        "storage": {"data_dir": str(tmp_path)},
        "routing": {"rules": [{"name": "long-leg", "kind": "ful-leg"}]},
        "model": {"factories": {"kneeap": "x.y:z"}},
    }))
    result = CliRunner().invoke(app, ["check-config", str(cfg)])
    assert result.exit_code != 0
    assert "unknown study kind 'ful-leg'; known kinds: full-leg, knee-ap" in result.output
    assert "routing.rules.0.kind" in result.output
    assert "unknown study kind 'kneeap'" in result.output


def test_an_old_config_without_kind_still_loads_as_knee_ap(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("routing:\n  rules:\n    - name: ap-pa-knee\n      body_parts: [KNEE]\n"
                   "model:\n  factory: node_support:truth_measurer\n")
    s = load_settings(cfg, environ={})
    assert s.routing.rules[0].kind == "knee-ap"
    assert s.model.factory_for("knee-ap", "a:b") == "node_support:truth_measurer"
    assert s.model.factory_for("other", "a:b") == "a:b"


def test_routing_names_the_kind_or_the_reason() -> None:
    ds = Dataset()
    ds.Modality, ds.BodyPartExamined, ds.ViewPosition = "DX", "KNEE", "AP"
    decision = route(ds, RoutingSettings())
    assert (decision.measure, decision.rule, decision.kind) == (True, "ap-pa-knee", "knee-ap")
    ds.BodyPartExamined = "CHEST"
    ignored = route(ds, RoutingSettings())
    assert (ignored.measure, ignored.kind) == (False, None)
    assert "BodyPartExamined CHEST" in ignored.reason


def test_each_kind_loads_its_own_measurer_once() -> None:
    lazy = LazyMeasurer(ModelSettings(factories={"knee-ap": "node_support:truth_measurer"},
                                      options={"truth_dir": "/nonexistent"}))
    first = lazy.get("knee-ap")
    assert isinstance(first, TruthMeasurer) and lazy.get("knee-ap") is first
    with pytest.raises(ConfigError, match="unknown study kind 'nope'"):
        lazy.get("nope")


# -- a second kind, registered by one module ------------------------------------------------

SECOND_KIND = '''
"""A kind for the test: knee images whose result is named "HKA" and sent as an SC only."""

from dicom_node.kinds import MeasuredItem, OutputWriter, ResultValue, StudyKind
from dicom_node.kinds.knee_ap import overlay_image


def items(measurements):
    return [MeasuredItem(m.laterality, m.quality, float(m.confidence), "measured",
                         (ResultValue("HKA", float(m.atfa_deg["FTS"]), "deg"),))
            for m in measurements]


KIND = StudyKind(
    name="test-long-leg",
    description="for the test",
    measurer_factory="node_support:truth_measurer",
    items=items,
    writers=(OutputWriter("SC", "overlay.dcm", overlay_image),),
    nothing_found="no leg found in the image",
    headline=("HKA",),
)
'''


@pytest.fixture
def second_kind(tmp_path: Path) -> Iterator[str]:
    """``test-long-leg`` registered by one module in a folder added to the package."""
    folder = tmp_path / "more_kinds"
    folder.mkdir()
    (folder / "test_long_leg.py").write_text(textwrap.dedent(SECOND_KIND))
    kinds.__path__.append(str(folder))
    kinds._REGISTRY.clear()
    try:
        yield "test-long-leg"
    finally:
        kinds.__path__.remove(str(folder))
        kinds._REGISTRY.clear()
        sys.modules.pop("dicom_node.kinds.test_long_leg", None)


@pytest.mark.network
def test_a_registered_kind_is_routed_measured_recorded_and_sent(
    tmp_path: Path, second_kind: str
) -> None:
    assert second_kind in kinds.names() and "knee-ap" in kinds.names()
    cases = tmp_path / "cases"
    cases.mkdir()
    pacs = StoreSCP()
    cfg = {
        "storage": {"data_dir": str(tmp_path / "var")},
        "routing": {"rules": [
            {"name": "long-leg", "kind": second_kind, "body_parts": ["LEG"]},
            {"name": "ap-pa-knee"},
        ]},
        "delivery": {"destinations": [
            {"name": "pacs", "ae_title": "TEST_PACS", "host": "127.0.0.1", "port": pacs.port}
        ]},
    }
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(cfg))
    settings = load_settings(config, environ={})
    leg, leg_truth = make_dx(atfa_deg=2.5, body_part="LEG")
    knee, knee_truth = make_dx(atfa_deg=-3.5)
    write_case(cases, leg, leg_truth, "leg")
    write_case(cases, knee, knee_truth, "knee")
    pacs.start()
    try:
        with KneeNode(settings, measurer=TruthMeasurer(cases), port=0) as node:
            ae = AE(ae_title="MODALITY")
            for ds in (leg, knee):
                ae.add_requested_context(ds.file_meta.MediaStorageSOPClassUID,
                                         ds.file_meta.TransferSyntaxUID)
            assoc = ae.associate("127.0.0.1", node.port, ae_title="KNEE_NODE")
            assert [assoc.send_c_store(ds).Status for ds in (leg, knee)] == [0, 0]
            assoc.release()
            assert node.wait_idle(60)
            with node.ctx.db.session() as s:
                insts = list(s.scalars(select(ReceivedInstance).order_by(ReceivedInstance.id)))
                jobs = list(s.scalars(select(Job).order_by(Job.id)))
                delivered = [d.state for j in jobs for d in j.deliveries]
        assert [i.kind for i in insts] == [second_kind, "knee-ap"]
        assert [(j.kind, j.state) for j in jobs] == [(second_kind, "done"), ("knee-ap", "done")]
        leg_job, knee_job = jobs
        assert [v.label for v in leg_job.values] == ["HKA"]
        assert leg_job.value("HKA").value == pytest.approx(2.5)
        assert [o.object_kind for o in leg_job.outputs] == ["SC"]
        assert Path(leg_job.output_path("SC")).name == "overlay.dcm"
        assert knee_job.value("aTFA FTS").value == pytest.approx(-3.5)
        assert [o.object_kind for o in knee_job.outputs] == ["SR", "SC"]
        assert delivered == ["delivered"] * 3  # the leg's SC; the knee's SR, then its SC
        received = pacs.wait_for(3, 30)
        modalities = sorted(str(d.Modality) for d in received)
        assert modalities == ["OT", "OT", "SR"], "the leg's SC, the knee's SR and SC"
        shown = CliRunner().invoke(app, ["status", "--config", str(config)])
        assert "HKA +2.5°" in shown.output and "aTFA FTS -3.5°" in shown.output
        assert second_kind in shown.output
    finally:
        pacs.stop()

