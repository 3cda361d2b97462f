"""Issue 15, item 3: the GSPS (Grayscale Softcopy Presentation State) of a knee result.

It passes ``dciodvfy``; read back from its file, every graphic lies on the SR's spatial
coordinates (within 0.01 px; each landmark outline is the SR's MULTIPOINT as a POLYLINE)
and every text states the SR's values; its layers can be switched off one by one; and it is
sent only to the destinations whose ``objects`` list GSPS (the others get the SR and SC as
before).
"""

from __future__ import annotations

import dataclasses
import re
import shutil
import subprocess
import time
from io import BytesIO
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from node_support import StoreSCP, TruthMeasurer, make_dx, write_case
from pydantic import ValidationError
from pydicom import Dataset, dcmread
from test_node_listener import Env

from dicom_node.db import Delivery, OutputObject
from dicom_node.reports.presentation_state import LAYERS, create_presentation_state
from dicom_node.results import make_results
from dicom_node.settings import Settings, format_errors
from inference.measurement import KneeMeasurement

GSPS_CLASS = "1.2.840.10008.5.1.4.1.1.11.1"
WITH_GSPS = {"delivery": {"destinations": [
    {"name": "pacs", "ae_title": "PACS", "host": "127.0.0.1", "port": 104,
     "objects": ["SR", "SC", "GSPS"]}]}}


def _case(tmp: Path, atfa: float = 4.5) -> tuple[Dataset, list[KneeMeasurement]]:
    ds, truth = make_dx(atfa_deg=atfa)
    path = write_case(tmp / "cases", ds, truth, "k")
    source = dcmread(path)
    return source, TruthMeasurer(tmp / "cases").measure(source)


def _two_knees(knees: list[KneeMeasurement]) -> list[KneeMeasurement]:
    """The knee and a flagged other knee beside it (its landmarks moved 10 px)."""
    other = dataclasses.replace(
        knees[0], landmarks=knees[0].landmarks + [10.0, 0.0],
        laterality="R" if knees[0].laterality == "L" else "L", quality="flag",
        flag_reasons=("landmark confidence too low",),
    )
    return [knees[0], other]


def _reread(ds: Dataset) -> Dataset:
    buf = BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return dcmread(BytesIO(buf.getvalue()))


def sr_scoords(sr: Dataset) -> dict[str, list[np.ndarray]]:
    """The SR's SCOORDs by graphic type, each an (N, 2) array of (column, row)."""
    found: dict[str, list[np.ndarray]] = {}

    def walk(items: Any) -> None:
        for item in items:
            if item.get("ValueType") == "SCOORD":
                pts = np.asarray(item.GraphicData, float).reshape(-1, 2)
                found.setdefault(str(item.GraphicType), []).append(pts)
            if "ContentSequence" in item:
                walk(item.ContentSequence)

    walk(sr.ContentSequence)
    return found


def sr_values(sr: Dataset) -> dict[tuple[str, str], float]:
    """The SR's aTFA values by (laterality, method), from the angle groups' finding sites."""
    out: dict[tuple[str, str], float] = {}
    for group in sr.ContentSequence:
        if "ContentSequence" not in group:
            continue
        for g in group.ContentSequence:
            items = list(g.get("ContentSequence", []))
            side = next((s.ContentSequence[0].ConceptCodeSequence[0].CodeMeaning
                         for s in items if "ContentSequence" in s and
                         s.ConceptNameCodeSequence[0].CodeMeaning == "Finding Site"), None)
            for item in items:
                code = item.ConceptNameCodeSequence[0].CodeValue
                if item.ValueType == "NUM" and code in ("ATFA-FTS", "ATFA-FNTS"):
                    out[(str(side), code.split("-")[1])] = float(
                        item.MeasuredValueSequence[0].NumericValue)
    return out


def gsps_graphics(pr: Dataset) -> dict[str, list[tuple[str, np.ndarray]]]:
    """Graphic objects of each layer: (type, (N, 2) array)."""
    out: dict[str, list[tuple[str, np.ndarray]]] = {}
    for ann in pr.GraphicAnnotationSequence:
        for g in ann.get("GraphicObjectSequence", []):
            assert g.GraphicAnnotationUnits == "PIXEL"
            pts = np.asarray(g.GraphicData, float).reshape(-1, 2)
            out.setdefault(str(ann.GraphicLayer), []).append((str(g.GraphicType), pts))
    return out


def gsps_texts(pr: Dataset) -> list[Dataset]:
    return [t for ann in pr.GraphicAnnotationSequence for t in ann.get("TextObjectSequence", [])]


def _dciodvfy_errors(path: Path) -> list[str]:
    out = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, timeout=60)
    return [ln for ln in (out.stdout + out.stderr).splitlines() if ln.startswith("Error")]


@pytest.mark.parametrize("both", [False, True], ids=["one-knee", "two-knees-one-flagged"])
def test_gsps_passes_dciodvfy(tmp_path: Path, both: bool) -> None:
    if shutil.which("dciodvfy") is None:
        pytest.skip("needs dciodvfy (Debian dicom3tools)")
    source, knees = _case(tmp_path)
    pr = create_presentation_state(source, _two_knees(knees) if both else knees)
    pr.save_as(tmp_path / "pr.dcm", enforce_file_format=True)
    assert _dciodvfy_errors(tmp_path / "pr.dcm") == []
    back = dcmread(tmp_path / "pr.dcm")
    assert back.SOPClassUID == GSPS_CLASS and back.Modality == "PR"
    assert back.StudyInstanceUID == source.StudyInstanceUID
    ref = back.ReferencedSeriesSequence[0]
    assert ref.SeriesInstanceUID == source.SeriesInstanceUID
    assert ref.ReferencedImageSequence[0].ReferencedSOPInstanceUID == source.SOPInstanceUID
    for ann in back.GraphicAnnotationSequence:
        img = ann.ReferencedImageSequence[0]
        assert img.ReferencedSOPInstanceUID == source.SOPInstanceUID


@pytest.mark.parametrize("both", [False, True], ids=["one-knee", "two-knees-one-flagged"])
def test_every_graphic_lies_on_the_srs_coordinates_and_texts_state_its_values(
    tmp_path: Path, both: bool
) -> None:
    source, knees = _case(tmp_path, atfa=-6.3)
    knees = _two_knees(knees) if both else knees
    results = make_results(Settings.model_validate(WITH_GSPS), source, knees)
    assert [w.object_kind for w, _ in results.objects] == ["SR", "SC", "GSPS"]
    sr, pr = _reread(results.sr), _reread(results["GSPS"])
    scoords = sr_scoords(sr)
    graphics = gsps_graphics(pr)

    # the axes: the SR's 2-point POLYLINEs (each distinct one once), nothing else
    sr_axes = _distinct([p for p in scoords["POLYLINE"] if len(p) == 2])
    axes = graphics["KNEE_AXES"]
    assert {t for t, _ in axes} == {"POLYLINE"}
    assert len(axes) == len(sr_axes) == 3  # femoral FTS, femoral FNTS, tibial; passed knee
    for _, pts in axes:
        assert min(np.abs(pts - a).max() for a in sr_axes) < 0.01
    for a in sr_axes:
        assert min(np.abs(pts - a).max() for _, pts in axes) < 0.01

    # the landmarks: one POLYLINE per SR MULTIPOINT (an outline of a knee, flagged ones
    # too), through the very same points in the same order; together every landmark once
    sr_outlines = scoords["MULTIPOINT"]
    outlines = graphics["KNEE_LANDMARKS"]
    assert {t for t, _ in outlines} == {"POLYLINE"}
    assert len(outlines) == len(sr_outlines)
    unmatched = list(sr_outlines)
    for _, pts in outlines:
        [i] = [i for i, mp in enumerate(unmatched)
               if mp.shape == pts.shape and np.abs(mp - pts).max() < 0.01]
        unmatched.pop(i)
    assert unmatched == []
    gp = np.concatenate([p for _, p in outlines])
    sr_points = np.concatenate(sr_outlines)
    assert len(gp) == len(sr_points) == sum(len(k.landmarks) for k in knees)
    for k in knees:  # every landmark of every knee is a vertex
        for p in k.landmarks + 0.5:
            assert np.abs(gp - p).max(axis=1).min() < 0.01

    # the values: each aTFA of the SR, as it states it
    texts = [str(t.UnformattedTextValue) for t in gsps_texts(pr)]
    values = sr_values(sr)
    assert len(values) == 2
    for (side, method), value in values.items():
        [line] = [t for t in texts if t.startswith(f"{side} aTFA {method} ")]
        stated = float(re.search(r"([+-]\d+\.\d+) deg", line).group(1))  # type: ignore[union-attr]
        assert abs(stated - value) < 1e-9
    assert any("valgus" in t or "varus" in t or "neutral" in t for t in texts)
    assert any("NOT FOR DIAGNOSTIC USE" in t for t in texts)
    if both:
        assert any(t.endswith("knee FLAGGED: no reliable measurement") for t in texts)
    rows, cols = int(source.Rows), int(source.Columns)
    for t in gsps_texts(pr):
        if "AnchorPoint" in t:
            x, y = (float(v) for v in t.AnchorPoint)
            assert 0 <= x <= cols and 0 <= y <= rows


def _distinct(arrays: list[np.ndarray]) -> list[np.ndarray]:
    out: list[np.ndarray] = []
    for a in arrays:
        if all(np.abs(a - b).max() >= 0.01 for b in out):
            out.append(a)
    return out


def test_each_layer_can_be_switched_off(tmp_path: Path) -> None:
    source, knees = _case(tmp_path)
    pr = _reread(create_presentation_state(source, knees))
    layers = {str(x.GraphicLayer): x for x in pr.GraphicLayerSequence}
    assert list(layers) == [name for name, _, _ in LAYERS]
    assert [int(x.GraphicLayerOrder) for x in layers.values()] == [1, 2, 3]
    used = [str(a.GraphicLayer) for a in pr.GraphicAnnotationSequence]
    assert sorted(used) == sorted(layers)  # one annotation per layer, each its own
    assert all("GraphicLayerRecommendedDisplayCIELabValue" in x for x in layers.values())


def test_gsps_is_made_only_for_destinations_that_ask() -> None:
    from dicom_node import kinds

    assert [w.object_kind for w in kinds.get("knee-ap").writers_for(None)] == ["SR", "SC"]
    with pytest.raises(ValidationError) as info:
        Settings.model_validate({"delivery": {"destinations": [
            {"name": "p", "ae_title": "P", "host": "h", "port": 104, "objects": ["SR", "XX"]}]}})
    assert any(line.startswith("delivery.destinations:") and "['XX'] are written by no study"
               in line for line in format_errors(info.value))
    for bad, words in ((["sr"], "not an object kind"), ([], "at least one"),
                       (["SR", "SR"], "twice")):
        with pytest.raises(ValidationError) as info:
            Settings.model_validate({"delivery": {"destinations": [
                {"name": "p", "ae_title": "P", "host": "h", "port": 104, "objects": bad}]}})
        assert any(line.startswith("delivery.destinations.0.objects:") and words in line
                   for line in format_errors(info.value)), format_errors(info.value)


@pytest.mark.network
def test_the_node_sends_the_gsps_only_where_it_is_listed(tmp_path: Path) -> None:
    plain, viewer = StoreSCP(), StoreSCP()
    e = Env(tmp_path, delivery={"destinations": [
        plain.destination("pacs"),
        viewer.destination("viewer") | {"objects": ["GSPS"]},
    ], "backoff_initial_s": 0.1, "max_attempts": 3})
    plain.start()
    viewer.start()
    try:
        with e.node:
            ds, _ = e.case("a", atfa_deg=3.5)
            assert e.push(ds) == [0x0000]
            assert e.node.wait_idle(60)
            got_plain = plain.wait_for(2, 20)
            got_viewer = viewer.wait_for(1, 20)
            time.sleep(0.5)  # nothing more arrives
        assert sorted(d.Modality for d in plain.received) == ["OT", "SR"]
        assert [d.Modality for d in viewer.received] == ["PR"]
        outputs = {o.object_kind: o for o in e.rows(OutputObject)}
        assert list(outputs) == ["SR", "SC", "GSPS"]
        assert Path(outputs["GSPS"].path).name == "pr.dcm"
        assert got_viewer[0].SOPInstanceUID == outputs["GSPS"].sop_instance_uid
        assert {d.SOPInstanceUID for d in got_plain} == {
            outputs["SR"].sop_instance_uid, outputs["SC"].sop_instance_uid}
        assert [(d.destination, d.object_kinds, d.state) for d in e.rows(Delivery)] == [
            ("pacs", ["SR"], "delivered"), ("pacs", ["SC"], "delivered"),
            ("viewer", ["GSPS"], "delivered")]  # the SR first, then what is made after it
        sr = dcmread(outputs["SR"].path)
        pr = dcmread(outputs["GSPS"].path)
        assert pr.StudyInstanceUID == sr.StudyInstanceUID
        assert pr.SeriesNumber == 9903
    finally:
        plain.stop()
        viewer.stop()



@pytest.mark.network
def test_resend_adds_a_new_gsps_destination_only_to_jobs_that_have_a_gsps(
    tmp_path: Path,
) -> None:
    import yaml
    from typer.testing import CliRunner

    from dicom_node.cli import app

    plain, viewer = StoreSCP(), StoreSCP()
    e = Env(tmp_path, delivery={"destinations": [plain.destination("pacs")],
                                "backoff_initial_s": 0.1, "max_attempts": 2})
    plain.start()
    viewer.start()
    try:
        with e.node:
            ds, _ = e.case("a", atfa_deg=2.5)
            assert e.push(ds) == [0x0000]
            assert e.node.wait_idle(60)
            plain.wait_for(2, 20)
        assert [o.object_kind for o in e.rows(OutputObject)] == ["SR", "SC"]  # nobody asked
        cfg = yaml.safe_load(e.config.read_text())
        cfg["delivery"]["destinations"].append(
            viewer.destination("viewer") | {"objects": ["GSPS"]})
        e.config.write_text(yaml.safe_dump(cfg))
        out = CliRunner().invoke(app, ["resend", "--job", "1", "--config", str(e.config)])
        assert out.exit_code == 0, out.output
        assert [d.destination for d in e.rows(Delivery)] == ["pacs", "pacs"]  # no GSPS
        assert viewer.received == []
        assert len(plain.wait_for(4, 10)) == 4
    finally:
        plain.stop()
        viewer.stop()


#: Elements that differ between two builds of one state: the clock and the new UIDs.
_PER_BUILD = ("ContentDate", "ContentTime", "InstanceCreationDate", "InstanceCreationTime",
              "ContributionDateTime", "PresentationCreationDate", "PresentationCreationTime",
              "SeriesInstanceUID", "SOPInstanceUID")


def _differences(a: Dataset, b: Dataset) -> list[str]:
    """Where ``a`` and ``b`` differ, element by element at every depth (not ``_PER_BUILD``)."""
    from dataset_diff import differences

    return differences(a, b, _PER_BUILD)


@pytest.mark.parametrize("both", [False, True], ids=["one-knee", "two-knees-one-flagged"])
def test_gsps_annotations_are_highdicoms(tmp_path: Path, both: bool,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """The Graphic Annotation Sequence made here is the one ``hd.pr.GraphicAnnotation``
    makes of the same layers and objects: the whole state compared element by element
    (all but the clock and the new UIDs), read back from the files."""
    import highdicom as hd

    from dicom_node.reports import presentation_state as ps

    source, knees = _case(tmp_path)
    knees = _two_knees(knees) if both else knees
    new = _reread(create_presentation_state(source, knees))
    layers = {name: hd.pr.GraphicLayer(name, order=i + 1)
              for i, (name, _, _) in enumerate(LAYERS)}

    def highdicoms(source: Dataset, layer: str, objects: list[Any], rows: int, columns: int
                   ) -> Dataset:
        texts = isinstance(objects[0], hd.pr.TextObject)
        return hd.pr.GraphicAnnotation([source], layers[layer],
                                       text_objects=objects if texts else None,
                                       graphic_objects=None if texts else objects)

    monkeypatch.setattr(ps, "graphic_annotation", highdicoms)
    old = _reread(create_presentation_state(source, knees))
    assert len(old.GraphicAnnotationSequence) == (3 if knees[0].quality == "pass" else 2)
    assert len(list(old.iterall())) > 100
    assert _differences(old, new) == []
    old.GraphicAnnotationSequence[0].GraphicObjectSequence[0].GraphicData[0] += 1.0
    assert any("GraphicData" in d for d in _differences(old, new))  # the comparison can fail


def test_a_graphic_off_the_image_is_refused(tmp_path: Path) -> None:
    """As ``hd.pr.GraphicAnnotation`` refuses it (a negative point highdicom's graphic
    object refuses already)."""
    from dicom_node.reports._checks import ReportInputError

    source, knees = _case(tmp_path)
    shift = int(source.Columns) - knees[0].landmarks[:, 0].min() + 4.5  # leftmost at +5 px
    moved = dataclasses.replace(knees[0], landmarks=knees[0].landmarks + [shift, 0.0])
    expected = (rf"PIXEL units must lie within 0\.\.{source.Columns} x 0\.\.{source.Rows}, "
                rf"got x {int(source.Columns) + 5}\.\.\S+, y ")
    with pytest.raises(ReportInputError, match=expected):
        create_presentation_state(source, [moved])
