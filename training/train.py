"""Training of the global- and the local-search hourglass (``knee-node train``).

Two stages, global first; the local model starts from the global weights (KNEEL's
transfer learning: every tensor of matching shape is copied, the output layers start
fresh).  Wing loss on soft-argmax coordinates, binary cross-entropy on the image-level
logits, Adam without weight decay, MixUp, cutout, geometric and intensity augmentation.

Each stage stops at ``steps`` or ``max_minutes`` of training time, whichever comes first;
the learning rate follows a cosine from ``lr`` to ``lr_min`` over that budget (progress
is the larger of the step and the time fraction, so a slow machine still ends its
schedule).  Checkpoints (model, optimiser, step, training time) are written atomically
every ``checkpoint_every`` steps; ``--resume`` continues from them.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import sys
import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812 (the torch idiom)
import yaml
from torch.utils.data import DataLoader

from inference import landmarks as lm
from inference.errors import ConfigError
from inference.networks import HourglassConfig, HourglassNet, PhaseConfig, PhaseNet
from training.augment import mixup_batch
from training.dataset import GlobalDataset, GlobalSampling, LocalDataset, LocalSampling
from training.losses import heatmap_cross_entropy, wing_loss

log = logging.getLogger("knee_node.train")

CONFIG_DIR = Path(__file__).parent / "configs"


@dataclass(frozen=True)
class StageConfig:
    """Optimisation settings of one stage."""

    batch_size: int = 16
    steps: int = 1000
    max_minutes: float = 15.0
    lr: float = 1e-3
    lr_min: float = 1e-5
    weight_decay: float = 0.0
    mixup_p: float = 0.2
    mixup_alpha: float = 0.2
    wing_w: float = 10.0
    wing_epsilon: float = 2.0
    logit_weight: float = 1.0
    #: Weight of the heatmap cross-entropy regulariser and its Gaussian sigma (heatmap px).
    heatmap_weight: float = 1.0
    heatmap_sigma: float = 1.0
    #: Local stage: weight of the points that define the aTFA axes (femoral and tibial shaft
    #: cortex pairs, femoral notch pair) in the coordinate loss, relative to the others (1).
    axis_point_weight: float = 1.0
    checkpoint_every: int = 100
    log_every: int = 20
    val_every: int = 200
    val_samples: int = 48


def _build(cls: type, data: dict[str, Any] | None, where: str) -> Any:
    data = dict(data or {})
    names = {f.name for f in fields(cls)}
    unknown = set(data) - names
    if unknown:
        raise ConfigError(f"{where}: unknown keys {sorted(unknown)}")
    for key, value in list(data.items()):
        if isinstance(value, list):
            data[key] = tuple(value)
    try:
        return cls(**data)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: {exc}") from exc


@dataclass(frozen=True)
class TrainConfig:
    """A whole training run, read from YAML (see ``training/configs``)."""

    name: str
    seed: int
    threads: int
    num_workers: int
    global_model: HourglassConfig
    global_sampling: GlobalSampling
    global_stage: StageConfig
    local_model: HourglassConfig
    local_sampling: LocalSampling
    local_stage: StageConfig
    raw: dict[str, Any]

    @classmethod
    def from_yaml(cls, path: str | Path) -> TrainConfig:
        """Read and check a config file; :class:`ConfigError` names the bad key."""
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file {p} does not exist")
        raw = yaml.safe_load(p.read_text()) or {}
        if not isinstance(raw, dict):
            raise ConfigError(f"{p}: top level must be a mapping")
        allowed = {"name", "seed", "threads", "num_workers", "global", "local", "phase"}
        unknown = set(raw) - allowed
        if unknown:
            raise ConfigError(f"{p}: unknown keys {sorted(unknown)}")
        g = raw.get("global") or {}
        loc = raw.get("local") or {}
        for section, d in (("global", g), ("local", loc)):
            extra = set(d) - {"model", "sampling", "stage"}
            if extra:
                raise ConfigError(f"{p}: {section}: unknown keys {sorted(extra)}")
        return cls(
            name=str(raw.get("name", p.stem)),
            seed=int(raw.get("seed", 0)),
            threads=int(raw.get("threads", 2)),
            num_workers=int(raw.get("num_workers", 1)),
            global_model=_build(HourglassConfig, {"n_landmarks": 3, "n_logits": 1,
                                                  **(g.get("model") or {})}, "global.model"),
            global_sampling=_build(GlobalSampling, g.get("sampling"), "global.sampling"),
            global_stage=_build(StageConfig, g.get("stage"), "global.stage"),
            local_model=_build(HourglassConfig, {"n_landmarks": lm.N_POST_OP, "n_logits": 2,
                                                 **(loc.get("model") or {})}, "local.model"),
            local_sampling=_build(LocalSampling, loc.get("sampling"), "local.sampling"),
            local_stage=_build(StageConfig, loc.get("stage"), "local.stage"),
            raw=raw,
        )


#: Index of each image-level logit.
GLOBAL_LOGITS = ("knee_present",)
#: The global model's points.
GLOBAL_POINTS = ("plateau_corner_image_left", "plateau_corner_image_right", "fibular_head_centre")
LOCAL_LOGITS = ("post_op", "frame_valid")


def _lr(stage: StageConfig, progress: float) -> float:
    p = min(max(progress, 0.0), 1.0)
    return stage.lr_min + 0.5 * (stage.lr - stage.lr_min) * (1.0 + math.cos(math.pi * p))


def _sha256_file(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def _save_atomic(obj: dict[str, Any], path: Path) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _global_loss(
    net: HourglassNet, batch: dict[str, torch.Tensor], stage: StageConfig
) -> tuple[torch.Tensor, dict[str, float]]:
    out = net(batch["image"])
    present = batch["present"]
    mask = present[:, None].expand(-1, batch["points"].shape[1])
    coord = wing_loss(out["coords"], batch["points"], mask, stage.wing_w, stage.wing_epsilon)
    bce = F.binary_cross_entropy_with_logits(out["logits"][:, 0], present)
    heat = heatmap_cross_entropy(out["heatmaps"], batch["points"], net.config.stride,
                                 stage.heatmap_sigma, mask)
    err = ((out["coords"] - batch["points"]).norm(dim=-1) * mask).sum() / mask.sum().clamp_min(1)
    loss = coord + stage.logit_weight * bce + stage.heatmap_weight * heat
    return loss, {"wing": coord.item(), "heat": heat.item(), "bce": bce.item(),
                  "err_px": err.item()}


def axis_point_weights(n_points: int, weight: float) -> torch.Tensor:
    """``(n_points,)`` loss weights: ``weight`` on the aTFA points (``lm.ATFA_POINTS``), 1
    elsewhere."""
    if weight <= 0:
        raise ValueError(f"axis_point_weight must be positive, got {weight}")
    w = torch.ones(n_points)
    w[list(lm.ATFA_POINTS)] = weight
    return w


def _local_loss(
    net: HourglassNet, batch: dict[str, torch.Tensor], stage: StageConfig
) -> tuple[torch.Tensor, dict[str, float]]:
    out = net(batch["image"])
    mask = batch["mask"]
    weights = mask
    if stage.axis_point_weight != 1.0:
        weights = mask * axis_point_weights(mask.shape[1], stage.axis_point_weight)[None]
    coord = wing_loss(out["coords"], batch["points"], weights, stage.wing_w, stage.wing_epsilon)
    valid = batch["valid"]
    bce_valid = F.binary_cross_entropy_with_logits(out["logits"][:, 1], valid)
    bce_post = (F.binary_cross_entropy_with_logits(out["logits"][:, 0], batch["post"],
                                                   reduction="none") * valid).sum() / valid.sum(
    ).clamp_min(1)
    dist = (out["coords"] - batch["points"]).norm(dim=-1) / batch["plateau"][:, None].clamp_min(1)
    rel = 100.0 * (dist * mask).sum() / mask.sum().clamp_min(1)
    heat = heatmap_cross_entropy(out["heatmaps"], batch["points"], net.config.stride,
                                 stage.heatmap_sigma, mask)
    loss = coord + stage.logit_weight * (bce_valid + bce_post) + stage.heatmap_weight * heat
    axis = mask[:, list(lm.ATFA_POINTS)]
    rel_axis = 100.0 * (dist[:, list(lm.ATFA_POINTS)] * axis).sum() / axis.sum().clamp_min(1)
    return loss, {"wing": coord.item(), "heat": heat.item(), "bce_valid": bce_valid.item(),
                  "bce_post": bce_post.item(), "rp2p_pct": rel.item(),
                  "axis_rp2p_pct": rel_axis.item()}


def _mix(batch: dict[str, torch.Tensor], stage: StageConfig,
         rng: np.random.Generator) -> dict[str, torch.Tensor]:
    """MixUp on the input only; targets stay those of the dominant image (weight l >= 0.5)."""
    if stage.mixup_p <= 0 or rng.random() >= stage.mixup_p:
        return batch
    mixed, _lam, _perm = mixup_batch(batch["image"], stage.mixup_alpha, rng)
    return {**batch, "image": mixed}


def _validation_batches(dataset: Any, n: int, batch_size: int) -> list[dict[str, torch.Tensor]]:
    it = iter(dataset)
    items = [next(it) for _ in range(n)]
    return [
        {k: torch.stack([d[k] for d in items[i : i + batch_size]]) for k in items[0]}
        for i in range(0, n, batch_size)
    ]


def train_stage(
    stage_name: str,
    net: HourglassNet,
    dataset: Any,
    val_dataset: Any,
    stage: StageConfig,
    cfg: TrainConfig,
    out_dir: Path,
    resume: bool,
    extra_meta: dict[str, Any],
) -> dict[str, Any]:
    """Train one stage; returns a summary (steps, minutes, last validation figures)."""
    loss_fn = _global_loss if stage_name == "global" else _local_loss
    ckpt_path = out_dir / f"{stage_name}_checkpoint.pt"
    opt = torch.optim.Adam(net.parameters(), lr=stage.lr, weight_decay=stage.weight_decay)
    step, elapsed = 0, 0.0
    if resume and ckpt_path.exists():
        state = torch.load(ckpt_path, map_location="cpu", weights_only=False)
        net.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        step, elapsed = int(state["step"]), float(state["elapsed_s"])
        log.info("%s: resumed at step %d (%.1f min)", stage_name, step, elapsed / 60)
        if state.get("done"):
            return state["summary"]
    views = getattr(dataset.s, "views_per_render", 1)
    dataset.start_index = step * stage.batch_size // max(views, 1) // max(cfg.num_workers, 1) + 1
    loader = DataLoader(
        dataset, batch_size=stage.batch_size, num_workers=cfg.num_workers,
        persistent_workers=cfg.num_workers > 0, prefetch_factor=4 if cfg.num_workers else None,
    )
    val = _validation_batches(val_dataset, stage.val_samples, stage.batch_size)
    rng = np.random.default_rng([cfg.seed, 7, step])
    budget = stage.max_minutes * 60.0
    summary: dict[str, Any] = {"stage": stage_name}
    running: dict[str, float] = {}
    t_last = time.monotonic()
    net.train()

    def checkpoint(done: bool) -> None:
        summary.update({"steps": step, "minutes": round(elapsed / 60, 2)})
        _save_atomic({"model": net.state_dict(), "optimizer": opt.state_dict(), "step": step,
                      "elapsed_s": elapsed, "done": done, "summary": summary,
                      "config": net.config.to_dict(), "meta": extra_meta}, ckpt_path)

    wait = 0.0
    t_wait = time.monotonic()
    for batch in loader:
        wait += time.monotonic() - t_wait
        progress = max(step / stage.steps, elapsed / budget)
        if progress >= 1.0:
            break
        for g in opt.param_groups:
            g["lr"] = _lr(stage, progress)
        batch = _mix(batch, stage, rng)
        loss, parts = loss_fn(net, batch, stage)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 5.0)
        opt.step()
        now = time.monotonic()
        elapsed += now - t_last
        t_last = now
        step += 1
        for k, v in parts.items():
            running[k] = 0.9 * running.get(k, v) + 0.1 * v
        if step % stage.log_every == 0:
            figures = " ".join(f"{k}={v:.3f}" for k, v in running.items())
            log.info("%s step %d/%d %.1f min (data wait %.0f%%) lr=%.2e %s", stage_name, step,
                     stage.steps, elapsed / 60, 100 * wait / max(elapsed, 1e-9),
                     opt.param_groups[0]["lr"], figures)
        if step % stage.val_every == 0:
            summary["validation"] = _validate(net, val, loss_fn, stage)
            log.info("%s step %d validation %s", stage_name, step,
                     json.dumps(summary["validation"]))
            net.train()
            t_last = time.monotonic()
        if step % stage.checkpoint_every == 0:
            checkpoint(False)
            t_last = time.monotonic()
        t_wait = time.monotonic()
    summary["validation"] = _validate(net, val, loss_fn, stage)
    log.info("%s done: step %d, %.1f min, validation %s", stage_name, step, elapsed / 60,
             json.dumps(summary["validation"]))
    checkpoint(True)
    return summary


@torch.no_grad()
def _validate(net: HourglassNet, val: list[dict[str, torch.Tensor]], loss_fn: Any,
              stage: StageConfig) -> dict[str, float]:
    net.eval()
    sums: dict[str, float] = {}
    for b in val:
        _, parts = loss_fn(net, b, stage)
        for k, v in parts.items():
            sums[k] = sums.get(k, 0.0) + v / len(val)
    return {k: round(v, 4) for k, v in sums.items()}


def export_weights(net: HourglassNet | PhaseNet, path: Path, meta: dict[str, Any]) -> str:
    """Write ``{"config", "state_dict", "meta"}`` (float32) and return its SHA-256."""
    import hashlib

    state = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
    meta = json.loads(json.dumps(meta, default=str))  # plain types: loads with weights_only
    path.parent.mkdir(parents=True, exist_ok=True)
    _save_atomic({"config": net.config.to_dict(), "state_dict": state, "meta": meta}, path)
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _load_exported(path: Path) -> HourglassNet:
    """An :class:`HourglassNet` from exported weights (``global.pt`` / ``local.pt``)."""
    if not path.is_file():
        raise ConfigError(f"init_from: {path} does not exist")
    blob = torch.load(path, map_location="cpu", weights_only=True)
    net = HourglassNet(HourglassConfig(**blob["config"]))
    net.load_state_dict(blob["state_dict"])
    return net


def run(config_path: str | Path, out_dir: str | Path, export_dir: str | Path | None,
        resume: bool, stages: tuple[str, ...] = ("global", "local", "phase"),
        init_from: str | Path | None = None) -> dict[str, Any]:
    """Train the stages of ``config_path`` into ``out_dir``; export weights to ``export_dir``.

    With ``init_from`` (a folder of exported weights, e.g. ``inference/weights``) the
    models start from those weights instead of from scratch (fine-tuning); a stage not
    run keeps them, and ``phase.pt`` is carried over when the phase stage is not run.
    """
    import importlib

    # A frozen copy of the generator can stand in (developer aid, e.g. while it is edited).
    synth = importlib.import_module(os.environ.get("KNEE_NODE_SYNTH_MODULE", "training.synth"))
    cfg = TrainConfig.from_yaml(config_path)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, stream=sys.stdout,
                            format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    meta = {"generator_version": synth.GENERATOR_VERSION, "config_name": cfg.name,
            "config": cfg.raw, "torch": str(torch.__version__)}
    record: dict[str, Any] = {"meta": meta}
    init = Path(init_from) if init_from is not None else None
    if init is not None:
        meta["init_from"] = {name: _sha256_file(init / name) for name in ("global.pt", "local.pt")}
    gnet = _load_exported(init / "global.pt") if init else HourglassNet(cfg.global_model)
    if "global" in stages:
        gs = cfg.global_sampling
        val_s = GlobalSampling(**{**gs.__dict__, "seed_base": 5_000_000,
                                  "negative_seed_base": 5_100_000})
        record["global"] = train_stage(
            "global", gnet, GlobalDataset(gs, synth), GlobalDataset(val_s, synth),
            cfg.global_stage, cfg, out, resume,
            {**meta, "input_size": gs.size, "seeds": [gs.seed_base, gs.negative_seed_base]})
    elif init is None:
        state = torch.load(out / "global_checkpoint.pt", map_location="cpu", weights_only=False)
        gnet.load_state_dict(state["model"])
    lnet = _load_exported(init / "local.pt") if init else HourglassNet(cfg.local_model)
    if "local" in stages:
        ckpt = out / "local_checkpoint.pt"
        if init is None and not (resume and ckpt.exists()):
            copied = lnet.load_backbone_from(gnet)
            log.info("local: %d tensors initialised from the global model", copied)
        ls = cfg.local_sampling
        val_l = LocalSampling(**{**ls.__dict__, "seed_base": 5_200_000,
                                 "negative_seed_base": 5_300_000})
        record["local"] = train_stage(
            "local", lnet, LocalDataset(ls, synth), LocalDataset(val_l, synth),
            cfg.local_stage, cfg, out, resume,
            {**meta, "patch_size": list(ls.patch_size),
             "seeds": [ls.seed_base, ls.negative_seed_base]})
    if "phase" in stages:
        opts = dict(cfg.raw.get("phase") or {})
        unknown = set(opts) - {"steps", "max_minutes", "batch_size", "lr", "width", "seed_base"}
        if unknown:
            raise ConfigError(f"phase: unknown keys {sorted(unknown)}")
        record["phase"] = train_phase(out, None, threads=cfg.threads,
                                      num_workers=cfg.num_workers, **opts)
    # A run of the global stage alone exports too when it fine-tunes shipped weights: the
    # local model and the phase classifier are carried over from ``init_from``.
    if export_dir is not None and ("local" in stages or (init is not None and "global" in stages)):
        exp = Path(export_dir)
        record["sha256"] = {
            "global.pt": export_weights(gnet, exp / "global.pt",
                                        {**meta, "input_size": cfg.global_sampling.size,
                                         "logits": list(GLOBAL_LOGITS),
                                         "points": list(GLOBAL_POINTS),
                                         "summary": record.get("global")}),
            "local.pt": export_weights(lnet, exp / "local.pt",
                                       {**meta, "patch_size": list(cfg.local_sampling.patch_size),
                                        "logits": list(LOCAL_LOGITS),
                                        "summary": record.get("local")}),
        }
        manifest = {
            "name": "knee-node two-stage hourglass",
            "version": f"{cfg.name}-{record['sha256']['local.pt'][:8]}",
            "generator_version": synth.GENERATOR_VERSION,
            "config": cfg.name,
            "sha256": record["sha256"],
        }
        phase_ckpt = out / "phase_checkpoint.pt"
        if phase_ckpt.exists():
            manifest["sha256"]["phase.pt"] = _export_phase(phase_ckpt, exp / "phase.pt", meta)
        elif init is not None and (init / "phase.pt").is_file():
            if (init / "phase.pt").resolve() != (exp / "phase.pt").resolve():
                shutil.copyfile(init / "phase.pt", exp / "phase.pt")
            manifest["sha256"]["phase.pt"] = _sha256_file(exp / "phase.pt")
        (exp / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        (out / "training_record.json").write_text(json.dumps(record, indent=2, default=str))
    return record


def export_from_checkpoints(run_dir: str | Path, export_dir: str | Path) -> dict[str, Any]:
    """Export the latest checkpoints of a run (finished or not) as shippable weights.

    Writes ``global.pt``, ``local.pt`` and ``manifest.json`` to ``export_dir`` and returns
    the manifest.
    """
    run = Path(run_dir)
    exp = Path(export_dir)
    blobs = {}
    for stage in ("global", "local"):
        path = run / f"{stage}_checkpoint.pt"
        if not path.is_file():
            raise FileNotFoundError(f"no checkpoint {path}")
        blobs[stage] = torch.load(path, map_location="cpu", weights_only=False)
    sha: dict[str, str] = {}
    names = {"global": GLOBAL_LOGITS, "local": LOCAL_LOGITS}
    for stage, blob in blobs.items():
        net = HourglassNet(HourglassConfig(**blob["config"]))
        net.load_state_dict(blob["model"])
        meta = {**blob["meta"], "logits": list(names[stage]), "summary": blob.get("summary"),
                "finished": bool(blob.get("done")), "steps": blob["step"],
                "training_minutes": round(blob["elapsed_s"] / 60, 2)}
        if stage == "global":
            meta["points"] = list(GLOBAL_POINTS)
        sha[f"{stage}.pt"] = export_weights(net, exp / f"{stage}.pt", meta)
    meta = blobs["local"]["meta"]
    if (run / "phase_checkpoint.pt").exists():
        sha["phase.pt"] = _export_phase(run / "phase_checkpoint.pt", exp / "phase.pt", meta)
    manifest = {
        "name": "knee-node two-stage hourglass",
        "version": f"{meta.get('config_name', 'run')}-{sha['local.pt'][:8]}",
        "generator_version": meta.get("generator_version"),
        "config": meta.get("config_name"),
        "sha256": sha,
    }
    (exp / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def train_phase(
    out_dir: str | Path,
    export_dir: str | Path | None,
    steps: int = 400,
    max_minutes: float = 6.0,
    batch_size: int = 32,
    lr: float = 2e-3,
    width: int = 8,
    threads: int = 1,
    seed_base: int = 6_000_000,
    num_workers: int = 1,
) -> dict[str, Any]:
    """Train the phase classifier (:class:`PhaseNet`) on aligned, jittered local patches.

    Renders come from the generator with seeds ``seed_base + i`` (pre- and post-operative
    alternately, so the classes are balanced); patches are cut exactly as for the local
    model.  Writes ``phase_checkpoint.pt`` to ``out_dir`` and, with ``export_dir``,
    ``phase.pt`` plus its SHA-256 in ``manifest.json``.
    """
    import importlib

    synth = importlib.import_module(os.environ.get("KNEE_NODE_SYNTH_MODULE", "training.synth"))
    torch.set_num_threads(threads)
    torch.manual_seed(seed_base)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, stream=sys.stdout,
                            format="%(asctime)s %(message)s", datefmt="%H:%M:%S")

    class _Balanced:
        def __init__(self, inner: Any) -> None:
            self.inner = inner

        def synthesize(self, seed: int, **kw: Any) -> Any:
            return self.inner.synthesize(seed, phase="post" if seed % 2 else "pre", **kw)

        def synthesize_negative(self, *a: Any, **kw: Any) -> Any:
            return self.inner.synthesize_negative(*a, **kw)

    sampling = LocalSampling(invalid_p=0.0, seed_base=seed_base, views_per_render=4)
    # num_workers=0 renders in this process: no fork after torch has started its threads
    loader = DataLoader(LocalDataset(sampling, _Balanced(synth)), batch_size=batch_size,
                        num_workers=num_workers, persistent_workers=num_workers > 0,
                        prefetch_factor=4 if num_workers else None)
    net = PhaseNet(PhaseConfig(width=width))
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    stage = StageConfig(lr=lr, lr_min=lr / 100, steps=steps, max_minutes=max_minutes)
    t0 = time.monotonic()
    step, running_acc = 0, 0.5
    for batch in loader:
        progress = max(step / steps, (time.monotonic() - t0) / (60 * max_minutes))
        if progress >= 1:
            break
        for g in opt.param_groups:
            g["lr"] = _lr(stage, progress)
        logits = net(batch["image"])
        loss = F.binary_cross_entropy_with_logits(logits, batch["post"])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        acc = float(((logits > 0) == (batch["post"] > 0.5)).float().mean())
        running_acc = 0.9 * running_acc + 0.1 * acc
        if step % 20 == 0:
            log.info("phase step %d %.1f min loss=%.4f acc=%.3f", step,
                     (time.monotonic() - t0) / 60, loss.item(), running_acc)
    summary: dict[str, Any] = {"steps": step, "minutes": round((time.monotonic() - t0) / 60, 2),
               "running_accuracy": round(running_acc, 4), "seed_base": seed_base}
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _save_atomic({"model": net.state_dict(), "config": net.config.to_dict(),
                  "summary": summary}, out / "phase_checkpoint.pt")
    if export_dir is not None:
        exp = Path(export_dir)
        meta = {"generator_version": synth.GENERATOR_VERSION, "kind": "phase",
                "patch_size": list(sampling.patch_size), "summary": summary}
        sha = export_weights(net, exp / "phase.pt", meta)
        manifest_path = exp / "manifest.json"
        if manifest_path.exists():
            manifest = json.loads(manifest_path.read_text())
            manifest["sha256"]["phase.pt"] = sha
            manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
        summary["sha256"] = sha
    log.info("phase done: %s", json.dumps(summary))
    return summary


def _export_phase(checkpoint: Path, path: Path, meta: dict[str, Any]) -> str:
    blob = torch.load(checkpoint, map_location="cpu", weights_only=False)
    net = PhaseNet(PhaseConfig(**blob["config"]))
    net.load_state_dict(blob["model"])
    return export_weights(net, path, {"generator_version": meta.get("generator_version"),
                                      "kind": "phase", "summary": blob.get("summary")})
