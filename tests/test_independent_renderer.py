"""The independent evaluation renderer: apart from training, deterministic, exact truth."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pydicom
import pytest

from inference import landmarks as lm
from inference.alignment import atfa_all
from inference.pixels import read_radiograph
from training.independent.truth import draw, write
from training.independent.xray import fill_polygon

ROOT = Path(__file__).resolve().parents[1]


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("path", sorted(
    p for p in (ROOT / "training").rglob("*.py")
    if "independent" not in p.parts and "independent_leg" not in p.parts
))
def test_training_code_never_imports_the_independent_renderer(path: Path) -> None:
    # both evaluation renderers (the knee's and training.independent_leg) are off limits
    assert not any(n.startswith("training.independent") for n in _imports(path)), path


def test_train_and_dataset_exist_and_are_checked() -> None:
    for name in ("train.py", "dataset.py"):
        assert not any(n.startswith("training.independent")
                       for n in _imports(ROOT / "training" / name))


@pytest.mark.parametrize("path", sorted((ROOT / "training" / "independent").glob("*.py")))
def test_independent_renderer_never_imports_the_training_generator(path: Path) -> None:
    bad = [n for n in _imports(path) if n.startswith(("training.synth", "training.dataset",
                                                      "training.augment"))]
    assert not bad, (path, bad)


def test_fill_polygon_is_exact_on_pixel_centres() -> None:
    mask = fill_polygon(np.array([[1.5, 1.5], [5.2, 1.5], [5.2, 3.9], [1.5, 3.9]]), (8, 8))
    rows, cols = np.nonzero(mask)
    assert set(rows) == {2, 3} and set(cols) == {2, 3, 4, 5}


@pytest.mark.parametrize("phase", ["pre", "post"])
def test_draw_is_deterministic_and_its_truth_is_measured_from_its_landmarks(phase: str) -> None:
    a = draw(7, phase=phase, max_side=320)
    b = draw(7, phase=phase, max_side=320)
    assert np.array_equal(a.pixels, b.pixels)
    n = lm.N_PRE_OP if phase == "pre" else lm.N_POST_OP
    assert a.landmarks.shape == (n, 2)
    rows, cols = a.pixels.shape
    assert max(rows, cols) <= 320
    assert a.landmarks[:, 0].min() > 0 and a.landmarks[:, 0].max() < cols - 1
    assert a.landmarks[:, 1].min() > 0 and a.landmarks[:, 1].max() < rows - 1
    assert int(a.pixels.max()) < (1 << a.bits_stored)
    # different seeds give different knees
    c = draw(8, phase=phase, max_side=320)
    assert not np.allclose(atfa_all(c.landmarks)["FTS"], atfa_all(a.landmarks)["FTS"])


def test_bone_is_brighter_than_soft_tissue_at_the_shaft() -> None:
    r = draw(3, phase="pre", laterality="L", max_side=600)
    img = r.pixels.astype(float)
    if r.photometric == "MONOCHROME1":
        img = img.max() - img
    p = r.landmarks
    med, lat = p[lm.TIBIA_SHAFT_DISTAL.medial], p[lm.TIBIA_SHAFT_DISTAL.lateral]
    inside = 0.5 * (med + lat)
    outside = med + 0.6 * (med - lat)
    assert img[int(inside[1]), int(inside[0])] > img[int(outside[1]), int(outside[0])]


def test_write_gives_dicom_and_truth_the_evaluator_reads(tmp_path: Path) -> None:
    import json

    dcm, js = write(11, tmp_path, phase="post", max_side=400)
    truth = json.loads(js.read_text())
    assert truth["renderer"] == "independent" and truth["phase"] == "post"
    assert truth["atfa_deg"] == pytest.approx(atfa_all(truth["landmarks"]))
    px = read_radiograph(pydicom.dcmread(dcm))
    assert px.image.shape == (truth["rows"], truth["columns"])
    assert px.pixel_spacing_mm == pytest.approx(tuple(truth["pixel_spacing_mm"]), rel=1e-5)
    assert px.image_laterality == truth["laterality"]


def test_draw_names_bad_arguments() -> None:
    with pytest.raises(ValueError, match="phase"):
        draw(1, phase="mid")
    with pytest.raises(ValueError, match="seed"):
        draw(-1)
