"""Training of one full-leg per-joint landmark method (``knee-node train --config *_leg.yaml``).

The config (``training/configs/<method>_leg.yaml``) has ``kind: full-leg`` and::

    name, method, seed, threads, input_size
    init: path/to/model.pt                # optional warm start (same method, size, options)
    options: {...}                        # the method's options
    data: {seed_base, n_studies, val_studies, jitter_mm, cache}
    stage: {batch_size, steps, max_minutes, lr, lr_min, log_every, val_every}

Crops come from :mod:`training.leg_data` (six per study seed); augmentation is a random
gamma and contrast change and, with probability ``data.appearance_p`` per crop, vendor-style
processing (:class:`training.augment.AppearanceAugment`: detector blur, scatter veil, grid
lines, shaped noise, multi-scale edge enhancement, random LUTs, markers); with probability
``data.overlap_p``, first, structures our generator does not draw laid over the crop
(:class:`training.augment.OverlapAugment`: bars, arcs, ellipses, a soft-tissue edge). Adam, cosine
learning rate over the step or time budget (whichever ends first). Writes ``OUT/model.pt``
(:meth:`LegLandmarkMethod.save`) and ``OUT/record.json`` (loss curve, validation error in mm,
timings, SHA-256).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from inference.errors import ConfigError
from inference.leg_models import build_method, load_method
from inference.leg_models.base import LegLandmarkMethod, joint_channels
from training.augment import AppearanceAugment, OverlapAugment
from training.leg_data import JOINTS, CropSet, cached_crops, mirrored

log = logging.getLogger("knee_node.leg_train")


@dataclass(frozen=True)
class LegData:
    """Which crops: study seeds ``seed_base ..`` (``n_studies`` train, then ``val_studies``)."""

    seed_base: int = 6_000_000
    n_studies: int = 200
    val_studies: int = 10
    jitter_mm: float = 15.0
    cache: str = "runs/leg_cache.npz"
    appearance_p: float = 0.0
    #: Probability per crop of overlapping structures (:class:`training.augment.OverlapAugment`).
    overlap_p: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.appearance_p <= 1.0:
            raise ConfigError(f"data.appearance_p must be in [0, 1], got {self.appearance_p!r}")
        if not 0.0 <= self.overlap_p <= 1.0:
            raise ConfigError(f"data.overlap_p must be in [0, 1], got {self.overlap_p!r}")


@dataclass(frozen=True)
class LegStage:
    """Optimisation settings."""

    batch_size: int = 8
    steps: int = 1000
    max_minutes: float = 12.0
    lr: float = 1e-3
    lr_min: float = 1e-5
    log_every: int = 25
    val_every: int = 200


@dataclass(frozen=True)
class LegTrainConfig:
    """A full-leg training config (see the module docstring)."""

    name: str
    method: str
    kind: str = "full-leg"
    seed: int = 13
    threads: int = 1
    input_size: int = 128
    init: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    data: LegData = LegData()
    stage: LegStage = LegStage()

    @classmethod
    def from_dict(cls, raw: dict[str, Any], where: str = "config") -> LegTrainConfig:
        """Build from a parsed YAML mapping; unknown keys raise :class:`ConfigError`."""
        if not isinstance(raw, dict):
            raise ConfigError(f"{where}: must be a mapping, got {type(raw).__name__}")
        top = {f.name for f in fields(cls)}
        unknown = set(raw) - top
        if unknown:
            raise ConfigError(f"{where}: unknown keys {sorted(unknown)}")
        for key in ("name", "method"):
            if key not in raw:
                raise ConfigError(f"{where}: missing key {key!r}")
        if raw.get("kind", "full-leg") != "full-leg":
            raise ConfigError(f"{where}: kind must be 'full-leg', got {raw.get('kind')!r}")
        sub: dict[str, Any] = {}
        for key, typ in (("data", LegData), ("stage", LegStage)):
            d = dict(raw.get(key) or {})
            names = {f.name for f in fields(typ)}
            bad = set(d) - names
            if bad:
                raise ConfigError(f"{where}: {key}: unknown keys {sorted(bad)}")
            sub[key] = typ(**d)
        rest = {k: v for k, v in raw.items() if k not in ("data", "stage")}
        return cls(**rest, **sub)

    @classmethod
    def from_yaml(cls, path: str | Path) -> LegTrainConfig:
        """Read a YAML config file."""
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file {str(p)!r} does not exist")
        return cls.from_dict(yaml.safe_load(p.read_text()) or {}, where=str(p))


def is_leg_config(path: str | Path) -> bool:
    """Whether the YAML at ``path`` is a full-leg config (``kind: full-leg``)."""
    try:
        raw = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError):
        return False
    return isinstance(raw, dict) and raw.get("kind") == "full-leg"


#: Domain randomisation of the crops (see the module docstring).
CROP_APPEARANCE = AppearanceAugment(p=1.0)
#: Overlapping structures the generator does not draw (see the module docstring).
CROP_OVERLAP = OverlapAugment(p=1.0)


def _augment(x: torch.Tensor, rng: np.random.Generator, appearance_p: float = 0.0,
             overlap_p: float = 0.0) -> torch.Tensor:
    b = x.shape[0]
    if overlap_p > 0:
        x = x.clone()
        for i in range(b):
            if rng.random() < overlap_p:
                x[i, 0] = CROP_OVERLAP(x[i, 0], rng)
    if appearance_p > 0:
        x = x.clone()
        for i in range(b):
            if rng.random() < appearance_p:
                x[i, 0] = CROP_APPEARANCE(x[i, 0], rng)
    gamma = torch.from_numpy(np.exp(rng.uniform(-0.4, 0.4, b)).astype(np.float32))
    gain = torch.from_numpy(rng.uniform(0.8, 1.2, b).astype(np.float32))
    out = x.clamp(0, 1) ** gamma.view(b, 1, 1, 1) * gain.view(b, 1, 1, 1)
    return out.clamp(0, 1)


def _batch(cs: CropSet, idx: np.ndarray, size: int) -> tuple[torch.Tensor, ...]:
    imgs = cs.images[idx].astype(np.float32)
    left = cs.side[idx] == 1
    imgs[left] = imgs[left][:, :, ::-1]
    pts = mirrored(cs.points[idx], cs.side[idx], size)
    return (torch.from_numpy(np.ascontiguousarray(imgs))[:, None], torch.from_numpy(pts),
            torch.from_numpy(cs.mask[idx]))


def validation_error_mm(method: LegLandmarkMethod, cs: CropSet) -> float:
    """Median landmark error (patient mm) of ``method`` on the crops of ``cs``."""
    errs: list[float] = []
    size = method.input_size
    for start in range(0, len(cs), 16):
        idx = np.arange(start, min(start + 16, len(cs)))
        x, _, _ = _batch(cs, idx, size)
        raw = method.predict(x)
        for k, i in enumerate(idx):
            side = "L" if cs.side[i] == 1 else "R"
            joint = JOINTS[int(cs.joint[i])]
            p = method.postprocess(raw, joint, "R", index=k)  # input already mirrored
            pts = p.points.copy()
            if side == "L":
                pts[:, 0] = (size - 1) - pts[:, 0]
            true = cs.points[i, joint_channels(joint)]
            d = np.hypot(*(pts - true).T) * float(cs.mm_per_px[i])
            errs.extend(np.where(np.isfinite(d), d, 1e3).tolist())
    return float(np.median(errs))


def warm_start(method: LegLandmarkMethod, init: str | Path) -> str:
    """Copy the weights of the method saved at ``init`` into ``method``; return their SHA-256.

    Raises
    ------
    ConfigError
        ``init`` is missing, or was saved by another method, input size or options.
    """
    p = Path(init)
    if not p.is_file():
        raise ConfigError(f"init: weights file {str(p)!r} does not exist")
    old = load_method(p)
    if (old.name, old.input_size, old.options) != (method.name, method.input_size,
                                                   method.options):
        raise ConfigError(
            f"init: {str(p)!r} is {old.name} {old.input_size} px {old.options}, the config asks "
            f"for {method.name} {method.input_size} px {method.options}")
    method.net.load_state_dict(old.net.state_dict())
    return hashlib.sha256(p.read_bytes()).hexdigest()


def train(cfg: LegTrainConfig, out_dir: str | Path, crops: CropSet | None = None,
          val: CropSet | None = None) -> dict[str, Any]:
    """Train ``cfg.method``; return the training record (also written to ``OUT/record.json``).

    Parameters
    ----------
    cfg
        The config.
    out_dir
        Run folder (created).
    crops, val
        Training and validation crops (default: :func:`cached_crops` of ``cfg.data``).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    rng = np.random.default_rng(cfg.seed)
    d = cfg.data
    t_data = time.monotonic()
    if crops is None:
        crops = cached_crops(Path(d.cache), range(d.seed_base, d.seed_base + d.n_studies),
                             cfg.input_size, d.jitter_mm)
    if val is None and d.val_studies > 0:
        vstart = d.seed_base + d.n_studies
        val = cached_crops(Path(d.cache).with_name(Path(d.cache).stem + "_val.npz"),
                           range(vstart, vstart + d.val_studies), cfg.input_size, d.jitter_mm)
    t_data = time.monotonic() - t_data
    method = build_method(cfg.method, cfg.input_size, **cfg.options)
    init_sha = warm_start(method, cfg.init) if cfg.init else None
    st = cfg.stage
    opt = torch.optim.Adam(method.net.parameters(), lr=st.lr)
    losses: list[tuple[int, float]] = []
    vals: list[tuple[int, float]] = []
    t0 = time.monotonic()
    step = 0
    running: list[float] = []
    while step < st.steps:
        elapsed = (time.monotonic() - t0) / 60.0
        if elapsed >= st.max_minutes:
            break
        progress = max(step / st.steps, elapsed / st.max_minutes)
        lr = st.lr_min + 0.5 * (st.lr - st.lr_min) * (1 + math.cos(math.pi * min(progress, 1.0)))
        for g in opt.param_groups:
            g["lr"] = lr
        idx = rng.integers(0, len(crops), st.batch_size)
        x, target, mask = _batch(crops, idx, cfg.input_size)
        method.net.train()
        loss = method.loss(method.forward(_augment(x, rng, d.appearance_p, d.overlap_p)),
                           target, mask)
        opt.zero_grad()
        loss.backward()
        opt.step()
        step += 1
        running.append(float(loss.detach()))
        if step % st.log_every == 0:
            losses.append((step, float(np.mean(running))))
            running = []
            log.info("step %d loss %.4f lr %.2e", step, losses[-1][1], lr)
        if val is not None and step % st.val_every == 0:
            vals.append((step, validation_error_mm(method, val)))
            log.info("step %d val median %.2f mm", step, vals[-1][1])
    if running:
        losses.append((step, float(np.mean(running))))
    train_min = (time.monotonic() - t0) / 60.0
    if val is not None:
        vals.append((step, validation_error_mm(method, val)))
    sha = method.save(out / "model.pt")
    record = {"name": cfg.name, "method": cfg.method, "steps": step,
              "train_minutes": round(train_min, 2), "data_seconds": round(t_data, 1),
              "n_train_crops": len(crops), "loss": losses, "val_median_mm": vals,
              "seed": cfg.seed, "input_size": cfg.input_size, "options": cfg.options,
              "init": cfg.init, "init_sha256": init_sha, "appearance_p": d.appearance_p,
              "overlap_p": d.overlap_p,
              "sha256": sha, "weights": str(out / "model.pt"),
              "weights_bytes": (out / "model.pt").stat().st_size}
    (out / "record.json").write_text(json.dumps(record, indent=1))
    return record


def run(config_path: str | Path, out_dir: str | Path) -> dict[str, Any]:
    """``knee-node train --config <method>_leg.yaml --out OUT``."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    return train(LegTrainConfig.from_yaml(config_path), out_dir)
