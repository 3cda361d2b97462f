"""Endless training samples for the global and the local search, made on the fly.

Every sample is rendered by the synthetic generator (:mod:`training.synth`) from a seed,
so a run is reproducible from its seed range and nothing is cached on disk.  Each render is
reused for ``views_per_render`` differently augmented views (rendering is the costly part).

Seeds stay below 10,000,000 (the project's convention; hold-out sets start at
900,000,000).  Worker ``k`` of ``n`` takes render indices ``k, k + n, k + 2n, ...`` and the
generator seed of index ``i`` is ``seed_base + i`` (negatives: ``negative_seed_base + i``).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from inference import landmarks as lm
from inference.frame import PatchFrame, apply_affine, cut_patch, invert_affine, letterbox_matrix
from inference.pixels import stored_to_image
from training.augment import (
    AppearanceAugment,
    IntensityAugment,
    ShapeWarp,
    compose,
    cutout,
    jitter_corners,
    similarity,
)

NEGATIVE_KINDS: tuple[str, ...] = ("blank", "noise", "chest", "lateral_knee", "lower_leg")


@dataclass(frozen=True)
class GlobalSampling:
    """How global-search views are drawn."""

    size: int = 256
    render_max_side: tuple[int, int] = (320, 448)
    negative_p: float = 0.2
    half_view_p: float = 0.15
    rotation_deg: float = 15.0
    zoom: tuple[float, float] = (0.8, 1.3)
    shift_frac: float = 0.1
    mirror_p: float = 0.5
    cutout_p: float = 0.3
    views_per_render: int = 2
    seed_base: int = 1_000_000
    negative_seed_base: int = 3_000_000
    #: Domain randomisation (issue 11): probability of vendor-style processing of a view
    #: (:data:`GLOBAL_APPEARANCE`, scaled for a whole image at ``size`` pixels); 0 = off.
    appearance_p: float = 0.0


#: The global search's vendor-style processing (a whole knee image letterboxed to 160-256 px:
#: less detector blur in view pixels than the local patches get).
GLOBAL_APPEARANCE = AppearanceAugment(p=1.0, mtf_sigma=0.8, scatter=0.45, grid_amp=0.04,
                                      noise_amp=0.04, enhance_gain=1.8, lut_p=0.7, marker_p=0.3)


@dataclass(frozen=True)
class LocalSampling:
    """How local-search patches are drawn."""

    patch_size: tuple[int, int] = (192, 320)
    #: Render so that the plateau spans about this many pixels (then the patch cut is a
    #: mild down-sampling, as at inference where the full-resolution image is box-averaged).
    plateau_px: tuple[float, float] = (95.0, 140.0)
    #: Jitter levels (small, medium, large) of the reference frame and their probabilities:
    #: the refined second pass sees small errors, the first pass (global search) larger ones.
    shift_sd: tuple[float, float, float] = (0.015, 0.05, 0.12)
    angle_sd_deg: tuple[float, float, float] = (1.5, 4.0, 8.0)
    scale_sd: tuple[float, float, float] = (0.015, 0.05, 0.10)
    jitter_p: tuple[float, float, float] = (0.45, 0.4, 0.15)
    invalid_p: float = 0.15
    cutout_p: float = 0.3
    views_per_render: int = 3
    seed_base: int = 2_000_000
    negative_seed_base: int = 4_000_000
    #: Domain randomisation (issue 11): probability of vendor-style processing
    #: (:class:`training.augment.AppearanceAugment`) and of a shape warp
    #: (:class:`training.augment.ShapeWarp`, largest bend ``warp_bend_deg``); 0 = off.
    appearance_p: float = 0.0
    warp_p: float = 0.0
    warp_bend_deg: float = 5.0


@dataclass
class _Counter:
    worker: int = 0
    workers: int = 1
    index: int = field(default=0)

    def next_index(self) -> int:
        i = self.worker + self.workers * self.index
        self.index += 1
        return i


def _worker_counter(start: int) -> _Counter:
    info = get_worker_info()
    if info is None:
        return _Counter(0, 1, start)
    return _Counter(info.id, info.num_workers, start)


def _standardise(x: torch.Tensor) -> torch.Tensor:
    return (x - x.mean()) / (x.std() + 1e-4)


def model_input(patch: torch.Tensor) -> torch.Tensor:
    """What the networks see: a [0, 1] patch standardised to zero mean, unit variance."""
    return _standardise(patch.float())


class GlobalDataset(IterableDataset):
    """Letterboxed whole-image views with the two reference points and a knee-present label.

    Yields dicts: ``image`` (1, S, S), ``points`` (3, 2) in view pixels -- the plateau corner
    on the image left, the one on the image right (an unambiguous order for the heatmaps)
    and the centre of the fibular head, whose side says which corner is lateral --, and
    ``present`` (0/1).
    """

    def __init__(self, sampling: GlobalSampling, synth: Any, start_index: int = 0) -> None:
        super().__init__()
        self.s = sampling
        self.synth = synth
        self.start_index = start_index

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        counter = _worker_counter(self.start_index)
        aug = IntensityAugment()
        appearance = replace(GLOBAL_APPEARANCE, p=self.s.appearance_p)
        while True:
            i = counter.next_index()
            rng = np.random.default_rng([self.s.seed_base, i])
            yield from self._views(i, rng, aug, appearance)

    def _views(
        self, i: int, rng: np.random.Generator, aug: IntensityAugment,
        appearance: AppearanceAugment,
    ) -> Iterator[dict[str, torch.Tensor]]:
        s = self.s
        max_side = int(rng.integers(s.render_max_side[0], s.render_max_side[1] + 1))
        if rng.random() < s.negative_p:
            kind = NEGATIVE_KINDS[int(rng.integers(len(NEGATIVE_KINDS)))]
            r = self.synth.synthesize_negative(s.negative_seed_base + i, kind, max_side=max_side)
            knees: list[np.ndarray] = []
        else:
            r = self.synth.synthesize(s.seed_base + i, max_side=max_side)
            knees = [np.asarray(k.landmarks, dtype=np.float64) for k in r.knees]
        image = torch.from_numpy(stored_to_image(r.pixels, r.photometric))
        rows, cols = image.shape
        for _ in range(s.views_per_render):
            # Which part of the image the view shows: whole, or a half split by columns.
            x0, x1 = 0, cols
            if len(knees) == 2:
                centres = [k[list(lm.REFERENCE_POINTS)].mean(axis=0)[0] for k in knees]
                cut = int(round(0.5 * (centres[0] + centres[1])))
                if rng.random() < 0.5:
                    x0, x1 = 0, cut
                else:
                    x0, x1 = cut, cols
            elif rng.random() < s.half_view_p:
                half = cols // 2
                x0, x1 = (0, half) if rng.random() < 0.5 else (half, cols)
            A = letterbox_matrix((rows, x1 - x0), s.size)
            A[0, 2] += x0
            c = (s.size - 1) / 2.0
            B = similarity(
                rng.uniform(-s.rotation_deg, s.rotation_deg),
                1.0 / rng.uniform(*s.zoom),
                (c, c),
                tuple(rng.uniform(-s.shift_frac, s.shift_frac, 2) * s.size),
                mirror=bool(rng.random() < s.mirror_p),
            )
            A = compose(A, B)
            view = cut_patch(image, A, (s.size, s.size))
            points = np.zeros((3, 2))
            present = 0.0
            inverse = invert_affine(A)
            fib_idx = slice(*lm.CURVES["fibula_head"])
            for k in knees:
                ref = apply_affine(inverse, k[list(lm.REFERENCE_POINTS)])
                fib = apply_affine(inverse, k[fib_idx]).mean(axis=0)
                w = float(np.linalg.norm(ref[1] - ref[0]))
                margin = 0.4 * w
                src_ref = k[list(lm.REFERENCE_POINTS)]
                inside_view = bool(np.all(ref >= margin) and np.all(ref <= s.size - 1 - margin))
                inside_part = bool(np.all(src_ref[:, 0] >= x0) and np.all(src_ref[:, 0] < x1))
                if inside_view and inside_part:
                    # image-left corner first (an unambiguous order), then the fibular head,
                    # whose side tells which corner is lateral
                    pair = ref if ref[1, 0] > ref[0, 0] else ref[::-1]
                    points = np.vstack([pair, fib[None]])
                    present = 1.0
                    break
            if s.appearance_p > 0:
                view = appearance(view, rng)
            view = aug(view, rng)
            view = cutout(view, rng, s.cutout_p)
            yield {
                "image": model_input(view)[None],
                "points": torch.from_numpy(points).float(),
                "present": torch.tensor(present),
            }


class LocalDataset(IterableDataset):
    """Aligned local-search patches from jittered reference frames.

    Yields dicts: ``image`` (1, H, W), ``points`` (141, 2) in patch pixels, ``mask`` (141,)
    (implant points 0 for pre-operative knees), ``post`` (0/1), ``valid`` (0/1: the frame
    is roughly right and not mirrored), ``plateau`` (true plateau width in patch pixels).
    """

    def __init__(self, sampling: LocalSampling, synth: Any, start_index: int = 0) -> None:
        super().__init__()
        self.s = sampling
        self.synth = synth
        self.start_index = start_index
        # plateau width / max_side of the fast path, measured on the first renders
        self._plateau_ratio: float | None = None

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        counter = _worker_counter(self.start_index)
        aug = IntensityAugment()
        appearance = AppearanceAugment(p=self.s.appearance_p)
        while True:
            i = counter.next_index()
            rng = np.random.default_rng([self.s.seed_base, i])
            yield from self._views(i, rng, aug, appearance)

    def _render(self, i: int, rng: np.random.Generator) -> Any:
        target = rng.uniform(*self.s.plateau_px)
        ratio = self._plateau_ratio or 0.25
        max_side = int(np.clip(target / ratio, 256, 2048))
        r = self.synth.synthesize(self.s.seed_base + i, max_side=max_side)
        w = lm.plateau_width(r.knees[0].landmarks)
        measured = w / max(r.pixels.shape)
        self._plateau_ratio = (
            measured if self._plateau_ratio is None else 0.9 * self._plateau_ratio + 0.1 * measured
        )
        return r

    def _views(
        self, i: int, rng: np.random.Generator, aug: IntensityAugment,
        appearance: AppearanceAugment,
    ) -> Iterator[dict[str, torch.Tensor]]:
        s = self.s
        r = self._render(i, rng)
        image = torch.from_numpy(stored_to_image(r.pixels, r.photometric))
        n_all = lm.N_POST_OP
        for _ in range(s.views_per_render):
            knee = r.knees[int(rng.integers(len(r.knees)))]
            pts = np.asarray(knee.landmarks, dtype=np.float64)
            med, lat = pts[lm.PLATEAU_MEDIAL_CORNER], pts[lm.PLATEAU_LATERAL_CORNER]
            valid = 1.0
            k = int(rng.choice(3, p=np.asarray(s.jitter_p) / sum(s.jitter_p)))
            jm, jl = jitter_corners(
                med, lat, rng, s.shift_sd[k], s.angle_sd_deg[k], s.scale_sd[k]
            )
            image_used = image
            if rng.random() < s.invalid_p:
                valid = 0.0
                jm, jl, image_used = self._invalid_frame(i, rng, med, lat, image)
            frame = PatchFrame(tuple(jm), tuple(jl), s.patch_size)
            patch = cut_patch(image_used, frame.matrix, s.patch_size)
            target = np.zeros((n_all, 2))
            n = pts.shape[0]
            target[:n] = frame.to_patch(pts)
            mask = np.zeros(n_all)
            if valid:
                mask[:n] = 1.0
            true_w = float(np.linalg.norm(target[lm.PLATEAU_LATERAL_CORNER] -
                                          target[lm.PLATEAU_MEDIAL_CORNER]))
            if valid and s.warp_p > 0:
                joint = 0.5 * (target[lm.PLATEAU_MEDIAL_CORNER] + target[lm.PLATEAU_LATERAL_CORNER])
                patch, target = ShapeWarp(p=s.warp_p, bend_deg=s.warp_bend_deg)(
                    patch, target, (float(joint[0]), float(joint[1])), rng)
                target = target * mask[:, None]
            if s.appearance_p > 0:
                patch = appearance(patch, rng)
            patch = aug(patch, rng)
            patch = cutout(patch, rng, s.cutout_p)
            yield {
                "image": model_input(patch)[None],
                "points": torch.from_numpy(target).float(),
                "mask": torch.from_numpy(mask).float(),
                "post": torch.tensor(1.0 if knee.phase == "post" else 0.0),
                "valid": torch.tensor(valid),
                "plateau": torch.tensor(true_w),
            }

    def _invalid_frame(
        self,
        i: int,
        rng: np.random.Generator,
        med: np.ndarray,
        lat: np.ndarray,
        image: torch.Tensor,
    ) -> tuple[np.ndarray, np.ndarray, torch.Tensor]:
        """A frame that must be rejected: mirrored, far off, badly scaled, or not a knee."""
        kind = int(rng.integers(4))
        if kind == 0:  # medial and lateral swapped: the patch shows a mirrored knee
            jm, jl = jitter_corners(lat, med, rng, 0.03, 3.0, 0.03)
            return jm, jl, image
        if kind == 1:  # far off
            w = float(np.linalg.norm(lat - med))
            a = rng.uniform(0, 2 * math.pi)
            d = rng.uniform(1.2, 2.5) * w
            off = d * np.array([math.cos(a), math.sin(a)])
            jm, jl = jitter_corners(med + off, lat + off, rng, 0.05, 10.0, 0.1)
            return jm, jl, image
        if kind == 2:  # scale far off
            mid, half = 0.5 * (med + lat), 0.5 * (lat - med)
            f = rng.uniform(1.8, 2.5) if rng.random() < 0.5 else rng.uniform(0.35, 0.55)
            return mid - f * half, mid + f * half, image
        kind_name = NEGATIVE_KINDS[int(rng.integers(len(NEGATIVE_KINDS)))]
        neg = self.synth.synthesize_negative(
            self.s.negative_seed_base + i, kind_name, max_side=max(image.shape)
        )
        neg_img = torch.from_numpy(stored_to_image(neg.pixels, neg.photometric))
        rows, cols = neg_img.shape
        w = float(np.linalg.norm(lat - med))
        centre = np.array([rng.uniform(0.3, 0.7) * cols, rng.uniform(0.3, 0.7) * rows])
        jm, jl = jitter_corners(centre - [w / 2, 0], centre + [w / 2, 0], rng, 0.0, 10.0, 0.1)
        return jm, jl, neg_img
