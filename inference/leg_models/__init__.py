"""Per-joint landmark methods of the full-leg measurer (papers 001 and 003, and ours).

Every method is a plain class behind one interface, :class:`LegLandmarkMethod`
(``preprocess`` / ``predict`` / ``postprocess``). One network per method serves the three
joints: it has one output channel per landmark of :data:`CHANNELS` and a crop reads only the
channels of its joint. Methods:

* ``hourglass`` -- ours: HMP blocks, attention gates, soft-argmax, wing loss
  (:mod:`inference.leg_models.hourglass`);
* ``seg`` -- paper 001's landmark segmentation: U-Net with a VGG-style encoder, disc masks,
  Dice + cross-entropy, point extraction Methods 1-5 (:mod:`inference.leg_models.mask`);
* ``heatmap`` -- paper 001's heatmap regression: the same U-Net, Gaussian targets, MSE, argmax;
* ``coord`` -- paper 001's coordinate regression: VGG-style encoder + FC to 2K outputs, MSE
  (:mod:`inference.leg_models.coord`);
* ``sgr`` -- paper 003's segmentation-guided coordinate regression: U-Net probabilities
  concatenated with the image, then a VGG-style regressor; alpha (Dice + BCE) + MSE
  (:mod:`inference.leg_models.sgr`).
"""

from __future__ import annotations

from inference.leg_models.base import (
    CHANNELS,
    JOINT_LANDMARKS,
    JointPrediction,
    LegLandmarkMethod,
    LegModelError,
    build_method,
    load_method,
)

__all__ = [
    "CHANNELS",
    "JOINT_LANDMARKS",
    "JointPrediction",
    "LegLandmarkMethod",
    "LegModelError",
    "build_method",
    "load_method",
]
