"""Training plumbing: config checks, datasets, a few optimisation steps on tiny widths."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from dicom_node.errors import ConfigError
from inference import landmarks as lm
from training.train import TrainConfig

CONFIGS = Path(__file__).parents[1] / "training" / "configs"


@pytest.mark.parametrize(
    "name", ["cpu.yaml", "cpu_finetune.yaml", "cpu_finetune_axis.yaml", "paper_gpu.yaml"]
)
def test_shipped_configs_load(name: str) -> None:
    cfg = TrainConfig.from_yaml(CONFIGS / name)
    assert cfg.local_model.n_landmarks == lm.N_POST_OP
    assert cfg.global_model.n_landmarks == 3  # two plateau corners and the fibular head
    # the local model is initialised from the global one: same width
    assert cfg.local_model.width == cfg.global_model.width or name == "paper_gpu.yaml"


def test_config_names_the_bad_key(tmp_path: Path) -> None:
    p = tmp_path / "bad.yaml"
    p.write_text(yaml.safe_dump({"global": {"stage": {"batchsize": 3}}}))
    with pytest.raises(ConfigError, match="batchsize"):
        TrainConfig.from_yaml(p)
    with pytest.raises(ConfigError, match="does not exist"):
        TrainConfig.from_yaml(tmp_path / "missing.yaml")


def test_local_patches_hold_the_landmarks() -> None:
    from training import synth
    from training.dataset import LocalDataset, LocalSampling

    ds = LocalDataset(LocalSampling(patch_size=(96, 160), plateau_px=(50, 60), invalid_p=0.0),
                      synth)
    it = iter(ds)
    for _ in range(4):
        s = next(it)
        assert s["image"].shape == (1, 160, 96)
        n = int(s["mask"].sum())
        assert n in (lm.N_PRE_OP, lm.N_POST_OP)
        pts = s["points"][:n].numpy()
        w = np.linalg.norm(pts[lm.PLATEAU_LATERAL_CORNER] - pts[lm.PLATEAU_MEDIAL_CORNER])
        assert 0.6 * 96 / 2.2 < w < 1.5 * 96 / 2.2
        # mirrored into a left knee: lateral corner on the patch right, fibula lateral
        assert pts[lm.PLATEAU_LATERAL_CORNER, 0] > pts[lm.PLATEAU_MEDIAL_CORNER, 0]
        fib = pts[slice(*lm.CURVES["fibula_head"])].mean(axis=0)
        assert fib[0] > pts[lm.PLATEAU_MEDIAL_CORNER, 0]


def test_tiny_training_steps_reduce_the_loss(tmp_path: Path) -> None:
    from training.train import run

    cfg = {
        "name": "tiny", "seed": 1, "threads": 1, "num_workers": 0,
        "global": {"model": {"width": 8, "depth": 2},
                   "sampling": {"size": 64, "render_max_side": [96, 128], "views_per_render": 4},
                   "stage": {"batch_size": 4, "steps": 3, "val_samples": 4, "log_every": 1,
                             "checkpoint_every": 2}},
        "local": {"model": {"width": 8, "depth": 2},
                  "sampling": {"patch_size": [32, 64], "plateau_px": [20, 30],
                               "views_per_render": 4},
                  "stage": {"batch_size": 4, "steps": 3, "val_samples": 4, "log_every": 1,
                            "checkpoint_every": 2}},
        "phase": {"steps": 2, "batch_size": 4, "width": 4},
    }
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(cfg))
    record = run(path, tmp_path / "run", tmp_path / "weights", resume=False)
    assert record["global"]["steps"] == 3 and record["local"]["steps"] == 3
    for name in ("global.pt", "local.pt", "phase.pt", "manifest.json"):
        assert (tmp_path / "weights" / name).exists()
    # resume: a finished stage is not trained again
    again = run(path, tmp_path / "run", None, resume=True)
    assert again["local"]["steps"] == 3
    from inference.predictor import KneePredictor

    p = KneePredictor.from_weights_dir(tmp_path / "weights")
    out = p.measure_array(np.random.default_rng(0).uniform(0, 1, (200, 150)), (0.2, 0.2))
    assert len(out) == 1 and out[0].quality == "flag"  # untrained: never a confident angle
    assert torch.get_num_threads() >= 1

    # fine-tune: start the local stage from the exported weights, keep global and phase
    import json

    before = torch.load(tmp_path / "weights" / "local.pt", weights_only=True)["state_dict"]
    tuned = run(path, tmp_path / "ft", tmp_path / "ft_weights", resume=False,
                stages=("local",), init_from=tmp_path / "weights")
    assert tuned["local"]["steps"] == 3
    manifest = json.loads((tmp_path / "ft_weights" / "manifest.json").read_text())
    old = json.loads((tmp_path / "weights" / "manifest.json").read_text())
    assert manifest["sha256"]["phase.pt"] == old["sha256"]["phase.pt"], "phase carried over"
    after = torch.load(tmp_path / "ft_weights" / "local.pt", weights_only=True)["state_dict"]
    moved = [k for k in before if not torch.equal(before[k], after[k])]
    assert moved, "the local model was trained further"
    KneePredictor.from_weights_dir(tmp_path / "ft_weights")  # hashes check out

    # fine-tune the global stage alone: it exports, with local and phase carried over
    gbefore = torch.load(tmp_path / "weights" / "global.pt", weights_only=True)["state_dict"]
    run(path, tmp_path / "gft", tmp_path / "gft_weights", resume=False, stages=("global",),
        init_from=tmp_path / "weights")
    gafter = torch.load(tmp_path / "gft_weights" / "global.pt", weights_only=True)["state_dict"]
    assert [k for k in gbefore if not torch.equal(gbefore[k], gafter[k])], "global trained"
    lafter = torch.load(tmp_path / "gft_weights" / "local.pt", weights_only=True)["state_dict"]
    lbefore = torch.load(tmp_path / "weights" / "local.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(lbefore[k], lafter[k]) for k in lbefore), "local carried over"
    gman = json.loads((tmp_path / "gft_weights" / "manifest.json").read_text())
    assert gman["sha256"]["phase.pt"] == old["sha256"]["phase.pt"]
    KneePredictor.from_weights_dir(tmp_path / "gft_weights")


def test_global_views_order_corners_left_to_right() -> None:
    from training import synth
    from training.dataset import GlobalDataset, GlobalSampling

    ds = GlobalDataset(GlobalSampling(size=96, render_max_side=(120, 140), negative_p=0.0,
                                      half_view_p=0.0), synth)
    it = iter(ds)
    seen = 0
    for _ in range(6):
        s = next(it)
        assert s["image"].shape == (1, 96, 96)
        if float(s["present"]):
            seen += 1
            left, right, fib = s["points"].numpy()
            assert left[0] < right[0]
            assert np.all(s["points"].numpy() > 0) and np.all(s["points"].numpy() < 96)
    assert seen >= 3


def test_axis_point_weight_weighs_only_the_atfa_points() -> None:
    from training.train import StageConfig, _local_loss, axis_point_weights

    w = axis_point_weights(lm.N_POST_OP, 3.0)
    axis = [i for p in (lm.FEMUR_SHAFT_PROXIMAL, lm.FEMUR_SHAFT_DISTAL, lm.TIBIA_SHAFT_PROXIMAL,
                        lm.TIBIA_SHAFT_DISTAL, lm.FEMUR_NOTCH) for i in (p.medial, p.lateral)]
    assert sorted(np.flatnonzero(w.numpy() == 3.0).tolist()) == sorted(axis)
    assert int((w == 1.0).sum()) == lm.N_POST_OP - 10
    with pytest.raises(ValueError, match="axis_point_weight"):
        axis_point_weights(lm.N_POST_OP, 0.0)

    class _Net(torch.nn.Module):  # fixed outputs: only the target differs between the calls
        def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
            b = x.shape[0]
            return {"coords": torch.zeros(b, lm.N_POST_OP, 2), "logits": torch.zeros(b, 2),
                    "heatmaps": torch.zeros(b, lm.N_POST_OP, 8, 8)}

    net = _Net()
    net.config = type("C", (), {"stride": 4})()  # type: ignore[assignment]
    points = torch.full((1, lm.N_POST_OP, 2), 1.0)
    points[0, axis] = 5.0  # the axis points are off by more than the others
    batch = {"image": torch.zeros(1, 1, 32, 32), "points": points,
             "mask": torch.ones(1, lm.N_POST_OP), "valid": torch.ones(1), "post": torch.ones(1),
             "plateau": torch.full((1,), 10.0)}
    plain, parts_plain = _local_loss(net, batch, StageConfig())  # type: ignore[arg-type]
    heavy_stage = StageConfig(axis_point_weight=3.0)
    heavy, parts_heavy = _local_loss(net, batch, heavy_stage)  # type: ignore[arg-type]
    assert heavy.item() > plain.item()
    # the reported figure is not weighted
    assert parts_heavy["rp2p_pct"] == pytest.approx(parts_plain["rp2p_pct"])
    assert parts_plain["axis_rp2p_pct"] > parts_plain["rp2p_pct"]


def test_global_views_get_vendor_processing_only_when_asked() -> None:
    from training import synth
    from training.dataset import GlobalDataset, GlobalSampling

    base = dict(size=96, render_max_side=(120, 140), negative_p=0.0, half_view_p=0.0,
                cutout_p=0.0)
    plain = next(iter(GlobalDataset(GlobalSampling(**base), synth)))
    again = next(iter(GlobalDataset(GlobalSampling(**base), synth)))
    dr = next(iter(GlobalDataset(GlobalSampling(**base, appearance_p=1.0), synth)))
    torch.testing.assert_close(plain["image"], again["image"])
    torch.testing.assert_close(plain["points"], dr["points"])  # the targets do not move
    assert float(plain["present"]) == float(dr["present"])
    assert float((plain["image"] - dr["image"]).abs().mean()) > 0.05


def test_global_dr_config_fine_tunes_with_appearance() -> None:
    cfg = TrainConfig.from_yaml(CONFIGS / "cpu_finetune_global_dr.yaml")
    assert cfg.global_sampling.appearance_p == 0.7
    assert cfg.global_model.n_landmarks == 3
