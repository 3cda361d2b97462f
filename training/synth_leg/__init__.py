"""Synthetic bilateral standing AP full-leg radiographs with exact ground truth (research use only).

Public API::

    FULL_LEG_GENERATOR_VERSION
    plan_study(seed, *, post_op=None, full_size=False, stitching=True) -> FullLegStudy
    render_full(study) -> FullLegRadiograph          # the stitched long image
    render_joint_crop(study, side, joint, size=512)  # fast per-joint training crop
    synthesize_full_leg(seed, **options) -> FullLegRadiograph

The alignment of each leg is drawn first (:mod:`training.synth_leg.params`) and the bones
are built to have it exactly (:mod:`training.synth_leg.anatomy`); the X-ray physics and noise
are the knee generator's (:mod:`training.synth.render`). See ``docs/full_leg.md``.
"""

from __future__ import annotations

from training.synth_leg.render import (
    JOINTS,
    FullLegRadiograph,
    JointCrop,
    LegTruth,
    render_full,
    render_joint_crop,
)
from training.synth_leg.study import FullLegStudy, plan_study

#: Bumped whenever anatomy, planning or rendering changes (images of a seed change with it).
FULL_LEG_GENERATOR_VERSION = "0.1.0"


def synthesize_full_leg(seed: int, *, post_op: str | None = None, full_size: bool = False,
                        stitching: bool = True, max_rows: int | None = None
                        ) -> FullLegRadiograph:
    """Plan and render the full-leg image of ``seed`` (see :func:`plan_study`)."""
    return render_full(plan_study(seed, post_op=post_op, full_size=full_size,
                                  stitching=stitching, max_rows=max_rows))


__all__ = [
    "FULL_LEG_GENERATOR_VERSION",
    "JOINTS",
    "FullLegRadiograph",
    "FullLegStudy",
    "JointCrop",
    "LegTruth",
    "plan_study",
    "render_full",
    "render_joint_crop",
    "synthesize_full_leg",
]
