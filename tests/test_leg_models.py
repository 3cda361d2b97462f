"""Full-leg per-joint landmark methods: interface, point extraction, training smoke, tables."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from dicom_node.errors import ConfigError, KneeNodeError
from inference.leg_models import CHANNELS, JOINT_LANDMARKS, LegModelError, build_method, load_method
from inference.leg_models import extraction as ex
from inference.leg_models.mask import disc_targets, gaussian_targets
from training import leg_metrics as lm


def _blob(x: float, y: float, sigma: float = 2.0, shape: tuple[int, int] = (96, 96),
          peak: float = 1.0) -> np.ndarray:
    yy, xx = np.indices(shape)
    return peak * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sigma**2))


# ---- interface -------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["hourglass", "seg", "heatmap"])
def test_every_method_answers_through_one_interface(name: str) -> None:
    torch.manual_seed(0)
    m = build_method(name, 64, width=8, levels=2) if name != "hourglass" else \
        build_method(name, 64, width=8, depth=1)
    crop = np.random.default_rng(0).random((64, 64))
    for joint in ("hip", "knee", "ankle"):
        p = m.locate(crop, joint, "L")
        assert p.names == JOINT_LANDMARKS[joint]
        assert p.points.shape == (len(JOINT_LANDMARKS[joint]), 2)
        assert p.found.shape == p.candidates.shape == (len(JOINT_LANDMARKS[joint]),)
        assert np.all(np.isnan(p.points[~p.found]))


def test_left_leg_points_are_mirrored_back() -> None:
    m = build_method("hourglass", 64, width=8, depth=1)
    coords = torch.zeros(1, len(CHANNELS), 2)
    coords[0, :, 0] = torch.arange(len(CHANNELS), dtype=torch.float32) + 3.0
    coords[0, :, 1] = 20.0
    raw = {"coords": coords, "spread": torch.ones(1, len(CHANNELS))}
    right = m.postprocess(raw, "knee", "R")
    left = m.postprocess(raw, "knee", "L")
    np.testing.assert_allclose(left.points[:, 0], 63 - right.points[:, 0])
    np.testing.assert_allclose(left.points[:, 1], right.points[:, 1])
    # the knee's channels are 1..5 of CHANNELS
    np.testing.assert_allclose(right.points[:, 0], np.arange(1, 6) + 3.0)
    x = m.preprocess(np.tile(np.arange(64.0), (64, 1)), "L")
    assert float(x[0, 0, 0, 0]) == 1.0 and float(x[0, 0, 0, -1]) == 0.0


def test_bad_inputs_name_the_argument_and_value() -> None:
    m = build_method("hourglass", 64, width=8, depth=1)
    with pytest.raises(LegModelError, match="side must be 'R' or 'L', got 'X'"):
        m.preprocess(np.zeros((64, 64)), "X")
    with pytest.raises(LegModelError, match=r"must be 64 x 64, got \(32, 32\)"):
        m.preprocess(np.zeros((32, 32)), "R")
    with pytest.raises(LegModelError, match="joint must be one of"):
        m.postprocess({"coords": torch.zeros(1, 9, 2), "spread": torch.zeros(1, 9)}, "elbow", "R")
    with pytest.raises(LegModelError, match="method must be one of .* got 'vote'"):
        build_method("vote")
    with pytest.raises(LegModelError, match="multiple of 32, got 100"):
        build_method("seg", 100)
    assert issubclass(LegModelError, KneeNodeError)


def test_save_load_round_trip_and_checksum(tmp_path: Path) -> None:
    torch.manual_seed(1)
    m = build_method("seg", 64, width=4, levels=2)
    sha = m.save(tmp_path / "m.pt")
    back = load_method(tmp_path / "m.pt", sha256=sha)
    x = torch.rand(1, 1, 64, 64)
    torch.testing.assert_close(m.predict(x)["logits"], back.predict(x)["logits"])
    with pytest.raises(LegModelError, match="does not match its SHA-256"):
        load_method(tmp_path / "m.pt", sha256="0" * 64)
    with pytest.raises(LegModelError, match="does not exist"):
        load_method(tmp_path / "none.pt")


# ---- point extraction (001 §II-D) ------------------------------------------------------------
def test_m1_m3_find_a_subpixel_centre() -> None:
    p = _blob(40.3, 70.7)
    for fn in (ex.m1_weighted_centroid, ex.m2_largest_component, ex.m3_midrange_component):
        e = fn(p)
        assert e.point is not None
        np.testing.assert_allclose(e.point, [40.3, 70.7], atol=0.05)
    assert ex.m5_argmax(p).point.tolist() == [40.0, 71.0]


def test_largest_component_ignores_a_smaller_distant_blob() -> None:
    p = _blob(20, 20, sigma=3.0) + _blob(70, 60, sigma=1.5, peak=0.9)
    m1 = ex.m1_weighted_centroid(p).point
    assert m1 is not None and m1[0] > 25  # M1 is pulled toward the second blob
    for fn in (ex.m2_largest_component, ex.m3_midrange_component):
        e = fn(p)
        assert e.candidates == 2
        np.testing.assert_allclose(e.point, [20, 20], atol=0.1)


def test_m3_uses_the_midrange_threshold_on_low_maps() -> None:
    p = 0.1 + 0.3 * _blob(50.5, 30.25)  # max 0.4 < 0.5: M2 and M4 find nothing, M3 does
    assert ex.m2_largest_component(p).point is None
    assert ex.m4_open_centroid(p).point is None
    np.testing.assert_allclose(ex.m3_midrange_component(p).point, [50.5, 30.25], atol=0.1)


def test_m4_opening_removes_specks_and_counts_extra_regions() -> None:
    p = np.zeros((64, 64))
    p[30:37, 10:17] = 1.0  # a 7 x 7 square, centre (13, 33)
    p[5, 50] = 1.0  # a one-pixel speck, removed by the opening
    e = ex.m4_open_centroid(p)
    assert e.candidates == 1
    np.testing.assert_allclose(e.point, [13, 33])
    p[50:57, 50:57] = 1.0  # a second region: a false positive
    assert ex.m4_open_centroid(p).candidates == 2


def test_empty_and_invalid_maps() -> None:
    z = np.zeros((16, 16))
    for name in ex.METHODS:
        assert ex.extract(z, name).point is None
    with pytest.raises(LegModelError, match="method must be one of .* got 'M6'"):
        ex.extract(z, "M6")
    with pytest.raises(LegModelError, match="2-D map"):
        ex.m1_weighted_centroid(np.zeros(5))


def test_targets_radius_and_sigma() -> None:
    pts = torch.tensor([[[30.0, 20.0]]])
    assert int(disc_targets(pts, 64, 0.0).sum()) == 1
    n = float(disc_targets(pts, 64, 6.0).sum())
    assert abs(n - np.pi * 36) < 8
    g = gaussian_targets(pts, 64, 2.0)[0, 0]
    assert float(g[20, 30]) == pytest.approx(1.0)
    assert float(g[20, 32]) == pytest.approx(np.exp(-0.5))


# ---- training smoke ------------------------------------------------------------------------
def test_tiny_training_run_lowers_the_loss(tmp_path: Path) -> None:
    from training.leg_data import make_crops
    from training.leg_train import LegTrainConfig, train

    crops = make_crops(range(6_000_000, 6_000_001), 64, 5.0)
    assert crops.images.shape == (6, 64, 64)
    assert crops.mask.sum(1).tolist() == [1, 5, 3, 1, 5, 3]
    cfg = LegTrainConfig.from_dict({
        "name": "smoke", "method": "hourglass", "input_size": 64, "seed": 3,
        "options": {"width": 8, "depth": 2, "dropout": 0.0},
        "data": {"val_studies": 0},
        "stage": {"batch_size": 6, "steps": 40, "max_minutes": 2, "lr": 3e-3, "log_every": 5}})
    rec = train(cfg, tmp_path, crops=crops, val=None)
    losses = [v for _, v in rec["loss"]]
    assert rec["steps"] == 40
    assert np.mean(losses[-2:]) < 0.8 * np.mean(losses[:2])
    assert load_method(tmp_path / "model.pt", sha256=rec["sha256"]).name == "hourglass"


def test_leg_config_checks_keys(tmp_path: Path) -> None:
    from training.leg_train import LegTrainConfig, is_leg_config

    with pytest.raises(ConfigError, match=r"unknown keys \['epochs'\]"):
        LegTrainConfig.from_dict({"name": "a", "method": "seg", "epochs": 3})
    with pytest.raises(ConfigError, match=r"stage: unknown keys \['lrr'\]"):
        LegTrainConfig.from_dict({"name": "a", "method": "seg", "stage": {"lrr": 1}})
    with pytest.raises(ConfigError, match="missing key 'method'"):
        LegTrainConfig.from_dict({"name": "a"})
    with pytest.raises(ConfigError, match="900,000,000"):
        from training.leg_data import make_crops

        make_crops(range(899_999_999, 900_000_001), 64, 0.0)
    for name in ("hourglass_leg", "hourglass_leg_long", "seg_leg", "heatmap_leg", "coord_leg",
                 "sgr_leg", "sgr_leg_alpha0.1", "sgr_leg_alpha0.5", "sgr_leg_alpha1.0"):
        path = Path(__file__).parents[1] / "training" / "configs" / f"{name}.yaml"
        assert is_leg_config(path)
        cfg = LegTrainConfig.from_yaml(path)
        d = cfg.data
        # training and validation seeds stay below the hold-out (990,000,000 ...) and the
        # ROI stage's 7,000,000 ...
        assert d.seed_base + d.n_studies + d.val_studies <= 7_000_000
        build_method(cfg.method, cfg.input_size, **cfg.options)
    assert not is_leg_config(Path(__file__).parents[1] / "training" / "configs" / "cpu.yaml")


# ---- evaluation figures and formats ---------------------------------------------------------
def test_landmark_summary_known_values() -> None:
    s = lm.landmark_summary([0.5, 1.5, 2.5, 3.5, 12.0, np.nan])
    assert s["median"] == pytest.approx(2.5)
    assert s["missed"] == 1 and s["outliers_10mm"] == 1 and s["n"] == 6
    assert s["sdr"]["1"] == pytest.approx(100 / 6)
    assert s["sdr"]["6"] == pytest.approx(400 / 6)  # the miss counts as a failure


def test_measurement_summary_slope_and_errors() -> None:
    true = np.array([-4.0, -2.0, 0.0, 2.0, 4.0])
    s = lm.measurement_summary(2 * true + 1, true)
    assert s["slope"] == pytest.approx(2.0) and s["intercept"] == pytest.approx(1.0)
    # errors true + 1 = -3, -1, 1, 3, 5
    assert s["medae"] == pytest.approx(3.0) and s["mae"] == pytest.approx(2.6)
    assert s["bias"] == pytest.approx(1.0)
    s = lm.measurement_summary([1.0, np.nan], [0.0, 0.0])
    assert s["n"] == 1 and s["n_total"] == 2 and s["rmse"] == pytest.approx(1.0)


def test_cpak_scores() -> None:
    perfect = lm.cpak_scores([1, 5, 5, 9], [1, 5, 5, 9])
    assert perfect["macro"]["f1"] == 1.0 and perfect["accuracy"] == 1.0
    assert perfect["confusion"][4][4] == 2
    s = lm.cpak_scores([5, 5, 0, 4], [5, 4, 4, 4])
    assert s["accuracy"] == 0.5
    assert s["per_class"]["4"]["recall"] == pytest.approx(1 / 3)
    assert s["per_class"]["5"]["precision"] == pytest.approx(0.5)
    with pytest.raises(lm.MetricsError, match="1-9"):
        lm.cpak_scores([1], [10])


def test_tables_have_the_papers_rows() -> None:
    summ = lm.landmark_summary([1.0, 2.0])
    per = {"hourglass": {
        "landmarks": dict.fromkeys(lm.TABLE_A_ROWS, summ), "all": summ,
        "false_positives": 0, "complete_pct": 100.0,
        "measurements": {r: lm.measurement_summary([1.0, 2.0], [1.1, 2.2])
                         for r in lm.TABLE_B_ROWS},
        "hka_over_1_5_pct": 0.0, "cpak": lm.cpak_scores([1], [1])}}
    a = lm.table_a(per).splitlines()
    assert a[0] == "| landmark | hourglass | 001 seg (real images) |"
    assert a[2] == "| HF | 1.50 (0.50) | 1.07 (0.97) |"
    assert any(line.startswith("| All | 1.50 (0.50) | 1.16 (1.50) |") for line in a)
    b = lm.table_b(per)
    assert "| HKA | hourglass |" in b and "| MAD | hourglass |" in b
    assert "| hourglass | 1.000 | 1.000 | 1.000 | 1.000 |" in lm.table_c(per)
    with pytest.raises(lm.MetricsError, match="has 1 cells, header has 2"):
        lm.markdown_table(["a", "b"], [["x"]])


def test_cut_region_matches_the_crop_convention() -> None:
    from training.leg_evaluate import cut_region

    img = _blob(301.0, 455.0, sigma=20.0, shape=(1000, 800)).astype(np.float32)
    c = cut_region(img, 100.0, 200.0, 512.0, 128)
    ys, xs = np.indices(c.shape)
    w = c / c.sum()
    assert float((w * xs).sum()) == pytest.approx((301 - 100) / 4, abs=0.05)
    assert float((w * ys).sum()) == pytest.approx((455 - 200) / 4, abs=0.05)
    edge = cut_region(img, -900.0, -900.0, 512.0, 64)  # wholly outside: the fill value
    assert float(edge.max()) == pytest.approx(float(img.min()))


def test_shipped_full_leg_weights_match_their_card() -> None:
    import re

    wdir = Path(__file__).parents[1] / "inference" / "weights"
    path = wdir / "full_leg_hourglass.pt"
    assert path.stat().st_size < 5 * 2**20
    card = (wdir / "FULL_LEG_MODEL_CARD.md").read_text()
    sha = re.search(r"SHA-256 `([0-9a-f]{64})`", card)
    assert sha is not None
    m = load_method(path, sha256=sha.group(1))
    assert m.name == "hourglass" and m.input_size == 128
    assert f"{path.stat().st_size:,} bytes" in card
