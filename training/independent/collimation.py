"""``python -m training.independent.collimation``: the collimation measure on this renderer.

Report only (never for choosing the threshold): registers the independent knee renderer with
:mod:`training.collimation` and runs its command line with ``--renderer independent``.
"""

from __future__ import annotations

import sys

import numpy as np

from training import collimation
from training.independent.truth import draw


def render_independent(seed: int, max_side: int) -> collimation.Render:
    """The independent renderer's knee of ``seed`` as a :class:`training.collimation.Render`."""
    from inference.alignment import atfa_all
    from inference.pixels import stored_to_image

    ri = draw(seed, max_side=max_side)
    pts = np.asarray(ri.landmarks, float)
    return collimation.Render(stored_to_image(ri.pixels, ri.photometric), ri.pixel_spacing_mm,
                              pts, dict(atfa_all(pts)))


collimation.RENDERERS["independent"] = render_independent

if __name__ == "__main__":
    raise SystemExit(collimation.main(["--renderer", "independent", *sys.argv[1:]]))
