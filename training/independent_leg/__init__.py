"""An independent evaluation renderer of bilateral standing AP full-leg radiographs.

**Never used for training or for choosing a checkpoint: only for measuring.** Written from
scratch apart from the training generator: it imports nothing from ``training.synth_leg``,
``training.synth`` or ``training.independent`` (``tests/test_import_boundaries.py``), only the
landmark scheme (:mod:`inference.leg.landmarks`) and the measurement code
(:mod:`inference.leg.geometry`, which computes the truth from its own landmarks).

* **limb** (:mod:`training.independent_leg.limb`): its own alignment distributions (aHKA,
  JLO, JLCA drawn as a population, every CPAK class occurs), proportions, parabolic femoral
  bowing; landmarks placed exactly, bones built on them as analytic solids;
* **solids** (:mod:`training.independent_leg.solids`): swept tubes and bi-superellipsoids with
  closed-form chord lengths and cortical shells (no outline is ever filled);
* **standing** (:mod:`training.independent_leg.standing`): stance, pelvis, steel ball, field
  of view, 0.28-0.42 mm detector pixels, magnification 1.02-1.16;
* **radiograph** (:mod:`training.independent_leg.radiograph`): physics (texture, soft tissue,
  heel effect, stitched plates, scatter, grid lines, two-component MTF, noise) and vendor
  processing (multi-scale enhancement, unsharp masking, range compression, non-linear LUT,
  shutters, seams);
* **storage** (:mod:`training.independent_leg.storage`): DX/CR DICOM and the JSON truth in
  the layout of ``knee-node synth --kind full-leg`` (``full_leg_<seed>.dcm`` / ``.json``).

``python -m training.independent_leg --out DIR --count N --seed S`` or
``knee-node synth independent-leg --out DIR --count N --seed S``.
"""

from __future__ import annotations

from training.independent_leg.radiograph import LegRadiograph, LegTruth, render
from training.independent_leg.storage import make, write

#: Bumped whenever anything changes the images or the truth of a seed.
RENDERER_VERSION = "independent-leg-1"

__all__ = ["RENDERER_VERSION", "LegRadiograph", "LegTruth", "make", "render", "write"]
