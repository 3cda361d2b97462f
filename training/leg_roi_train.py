"""Training of the full-leg ROI stage (:mod:`inference.leg.roi`).

``flock /tmp/train.lock python -m training.leg_roi_train --config training/configs/roi_leg.yaml
--out runs/leg_roi`` renders the training images (seeds ``seed_base ..``, never the hold-out
seeds >= 900,000,000), trains for at most ``max_minutes`` and writes ``OUT/model.pt`` (the
weights of the best validation step), ``OUT/history.json`` and prints a JSON last line.

Loss: wing loss on the soft-argmax points of present joints (input px), the heatmap
cross-entropy regulariser of :func:`training.losses.heatmap_cross_entropy`, and binary
cross-entropy of the presence logits (joints cut off by the augmentation's field edges are
"missing").
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import pickle
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812
import yaml

from inference.errors import ConfigError
from inference.leg.roi import RoiDetector, build_roi_network
from training.leg_roi_data import RoiBatchItem, RoiSample, augment, render_samples
from training.losses import heatmap_cross_entropy, wing_loss


def _batch(items: list[RoiBatchItem]) -> dict[str, torch.Tensor]:
    return {
        "image": torch.from_numpy(np.stack([i.image for i in items]))[:, None],
        "target": torch.from_numpy(np.stack([i.target for i in items]).astype(np.float32)),
        "label": torch.from_numpy(np.stack([i.label for i in items]).astype(np.float32)),
        "label_w": torch.from_numpy(np.stack([i.label_weight for i in items]).astype(np.float32)),
        "coord_w": torch.from_numpy(np.stack([i.coord_weight for i in items]).astype(np.float32)),
    }


def roi_loss(raw: dict[str, torch.Tensor], b: dict[str, torch.Tensor], stage: dict[str, Any]
             ) -> torch.Tensor:
    """Wing + heatmap CE on present joints, BCE on presence."""
    loss = wing_loss(raw["coords"], b["target"], b["coord_w"], w=10.0, epsilon=2.0)
    hw = float(stage.get("heatmap_weight", 1.0))
    if hw > 0:
        loss = loss + hw * heatmap_cross_entropy(raw["heatmaps"], b["target"], stride=4,
                                                 sigma=float(stage.get("heatmap_sigma", 1.0)),
                                                 mask=b["coord_w"])
    bce = F.binary_cross_entropy_with_logits(raw["logits"], b["label"], reduction="none")
    pres = (bce * b["label_w"]).sum() / b["label_w"].sum().clamp_min(1.0)
    return loss + float(stage.get("presence_weight", 1.0)) * pres


def _samples(d: dict[str, Any], base: int, n: int, nv: int, mr: tuple[int, ...]
             ) -> tuple[list[RoiSample], list[RoiSample]]:
    """Training and validation images, from ``d["cache"]`` when it holds the same seeds."""
    key = f"{base}-{n}-{nv}-{mr}"
    cache = Path(d["cache"]) if d.get("cache") else None
    if cache is not None and cache.is_file():
        with cache.open("rb") as f:
            stored = pickle.load(f)  # noqa: S301 -- our own cache file
        if stored.get("key") == key:
            conv = [RoiSample(s.image.astype(np.float32), s.centres, s.mm_per_px, s.seed)
                    for s in stored["samples"]]
            return conv[:n], conv[n:]
    train = render_samples(range(base, base + n), mr)
    val = render_samples(range(base + n, base + n + nv), mr)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        small = [RoiSample(s.image.astype(np.float16), s.centres, s.mm_per_px, s.seed)
                 for s in train + val]
        with cache.open("wb") as f:
            pickle.dump({"key": key, "samples": small}, f)
    return train, val


def _warm_start(net: torch.nn.Module, path: Path) -> str:
    """Load the network weights of a saved :class:`RoiDetector` (same shape); return SHA-256."""
    if not path.is_file():
        raise ConfigError(f"init: {str(path)!r} does not exist")
    raw = path.read_bytes()
    state = torch.load(path, map_location="cpu", weights_only=True)
    sd = state.get("state_dict", state.get("network", state)) if isinstance(state, dict) else None
    if not isinstance(sd, dict):
        raise ConfigError(f"init: {str(path)!r} holds no state dict")
    net.load_state_dict(sd)
    return hashlib.sha256(raw).hexdigest()


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; returns the exit status."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", required=True, type=Path)
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--render-only", action="store_true",
                    help="only render the images into data.cache (no training)")
    a = ap.parse_args(argv)
    cfg = yaml.safe_load(a.config.read_text())
    if not isinstance(cfg, dict) or cfg.get("kind") != "full-leg-roi":
        raise ConfigError(f"{a.config}: kind must be 'full-leg-roi', got {cfg!r:.80}")
    torch.set_num_threads(int(cfg.get("threads", 2)))
    torch.manual_seed(int(cfg["seed"]))
    rng = np.random.default_rng(int(cfg["seed"]))
    d, st = cfg["data"], cfg["stage"]
    t0 = time.time()
    base, n, nv = int(d["seed_base"]), int(d["n_studies"]), int(d["val_studies"])
    mr = tuple(int(v) for v in d["max_rows"])
    train, val = _samples(d, base, n, nv, mr)
    if a.render_only:
        print(f"rendered {len(train)} + {len(val)} images in {time.time() - t0:.0f} s")
        return 0
    vrng = np.random.default_rng(7)
    ap, mp = float(d.get("appearance_p", 0.0)), float(d.get("margin_p", 0.0))
    tp, pp = float(d.get("top_trim_p", 0.0)), float(d.get("pelvis_p", 0.0))
    val_items = [augment(s, vrng, float(d["p_cut"]), float(d["p_non_leg"]), appearance_p=ap,
                         margin_p=mp, top_trim_p=tp, pelvis_p=pp) for s in val for _ in range(2)]
    vb = _batch(val_items)
    render_s = time.time() - t0
    print(f"rendered {len(train)} + {len(val)} images in {render_s:.0f} s", flush=True)
    net = build_roi_network(**cfg["network"])
    init_sha = None
    if cfg.get("init"):
        init_sha = _warm_start(net, Path(cfg["init"]))
        print(f"warm start from {cfg['init']} (SHA-256 {init_sha[:12]})", flush=True)
    hw = (int(cfg["input_hw"][0]), int(cfg["input_hw"][1]))
    opt = torch.optim.Adam(net.parameters(), lr=float(st["lr"]))
    steps, bs = int(st["steps"]), int(st["batch_size"])
    max_s = float(st["max_minutes"]) * 60.0
    history: list[dict[str, float]] = []
    best: tuple[float, dict[str, torch.Tensor]] | None = None
    t1 = time.time()
    step = 0
    for step in range(1, steps + 1):
        elapsed = time.time() - t1
        if elapsed > max_s:
            break
        frac = min(1.0, max(step / steps, elapsed / max_s))
        lr = float(st["lr_min"]) + 0.5 * (float(st["lr"]) - float(st["lr_min"])) * (
            1 + math.cos(math.pi * frac))
        for g in opt.param_groups:
            g["lr"] = lr
        idx = rng.integers(0, len(train), bs)
        b = _batch([augment(train[int(i)], rng, float(d["p_cut"]), float(d["p_non_leg"]), hw,
                            appearance_p=ap, margin_p=mp, top_trim_p=tp,
                            pelvis_p=pp) for i in idx])
        net.train()
        loss = roi_loss(net(b["image"]), b, st)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % int(st["log_every"]) == 0:
            print(f"step {step} loss {loss.item():.3f} lr {lr:.2e} {elapsed:.0f}s", flush=True)
        if step % int(st["val_every"]) == 0:
            net.eval()
            with torch.no_grad():
                raw = net(vb["image"])
                vloss = float(roi_loss(raw, vb, st))
                err = (raw["coords"] - vb["target"]).norm(dim=-1)
                m = vb["coord_w"] > 0
                med = float(err[m].median())
                acc = float(((torch.sigmoid(raw["logits"]) > 0.5).float() == vb["label"])
                            .float()[vb["label_w"] > 0].mean())
            history.append({"step": step, "seconds": time.time() - t1, "train_loss": loss.item(),
                            "val_loss": vloss, "val_median_input_px": med,
                            "val_presence_acc": acc})
            print(f"  val loss {vloss:.3f} median {med:.2f} input px presence acc {acc:.3f}",
                  flush=True)
            if best is None or vloss < best[0]:
                best = (vloss, {k: v.clone() for k, v in net.state_dict().items()})
    if best is not None:
        net.load_state_dict(best[1])
    a.out.mkdir(parents=True, exist_ok=True)
    det = RoiDetector(net.eval(), hw, float(st.get("presence_threshold", 0.5)))
    torch.save(det.state({"training": {"config": str(a.config), "steps": step,
                                       "minutes": (time.time() - t1) / 60.0,
                                       "render_seconds": render_s,
                                       "init_sha256": init_sha,
                                       "seeds": [base, base + n + nv]}}), a.out / "model.pt")
    sha = hashlib.sha256((a.out / "model.pt").read_bytes()).hexdigest()
    (a.out / "history.json").write_text(json.dumps(history, indent=1))
    print(json.dumps({"model": str(a.out / "model.pt"), "sha256": sha, "steps": step,
                      "train_minutes": round((time.time() - t1) / 60.0, 2),
                      "best_val_loss": best[0] if best else None,
                      "val": history[-1] if history else None}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
