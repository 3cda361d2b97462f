"""Full-leg (hip-to-ankle) AP radiographs: the landmark scheme and the alignment geometry.

* :mod:`inference.leg.landmarks` -- the ordered, named points of one leg (papers 001, 003).
* :mod:`inference.leg.geometry` -- mLDFA, mMPTA, aHKA, JLO, CPAK, HKA, FVA, MAD, JLCA and the
  long-leg aTFA as pure functions of a leg's landmarks.

See ``docs/full_leg.md``.
"""

from __future__ import annotations
