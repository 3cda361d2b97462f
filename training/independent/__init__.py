"""An independent evaluation renderer of AP knee radiographs (``knee-node synth-independent``).

**Never used for training or for choosing a checkpoint: only for measuring.** It is
written from scratch, apart from :mod:`training.synth` (it imports nothing from it),
so a model that only learned the training generator's look and shapes shows it here:

* **anatomy** (:mod:`training.independent.bones`): superellipse condyles with a
  low-order Fourier perturbation of their radius, a superellipse arch for the notch, an
  exponential metaphyseal flare, bowed and tapered shafts with their own width and
  length proportions, superellipse fibular head and patella, osteophyte bumps, and
  post-operative resurfacing (femoral component, tibial tray with keel);
* **physics** (:mod:`training.independent.xray`): chord lengths through elliptical
  cross-sections with a cortical shell (its own edge profile), anisotropic filtered-noise
  trabeculae, soft tissue, scatter, grid lines, a Lorentzian MTF, signal-dependent and
  correlated noise;
* **vendor processing** (:mod:`training.independent.xray`): multi-scale edge enhancement,
  unsharp masking and a non-linear (filmic) LUT, collimation and a burned-in marker;
* **truth** (:mod:`training.independent.truth`): the landmarks of
  :mod:`inference.landmarks` placed on its own outlines, the aTFA measured from them with
  :mod:`inference.alignment`, written as DICOM (DX or CR) with a JSON beside it in the
  layout ``knee-node evaluate`` reads.

The landmark scheme (which point is which, and the shaft levels of the cortex pairs in
plateau widths: femur 1.56/1.35/1.14/0.92/0.80/0.70/0.60/0.50, tibia
1.38/1.18/0.80/0.68/0.58/0.50) is the product's definition in ``docs/landmarks.md``;
everything else is this package's own.
"""

from __future__ import annotations

from training.independent.bones import IndependentKnee, draw_knee
from training.independent.xray import IndependentRadiograph, render

RENDERER_VERSION = "independent-1"

__all__ = ["RENDERER_VERSION", "IndependentKnee", "IndependentRadiograph", "draw_knee",
           "render"]
