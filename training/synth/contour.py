"""Smooth outlines through control points, and points placed along them.

Outlines are centripetal Catmull-Rom splines through "knots" (control points).
The spline passes through every knot, and a span between collinear knots is a
straight line, so a straight bone shaft stays straight.  Landmarks are either
knots or points at given arc-length fractions between two knots; both lie
exactly on the dense polyline that is rasterised, so the true landmarks sit on
the rendered contour.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


def _catmull_rom_spans(p0: FloatArray, p1: FloatArray, p2: FloatArray, p3: FloatArray,
                       samples: int) -> FloatArray:
    """Centripetal Catmull-Rom between p1 and p2 for every span at once.

    Each input is ``(S, 2)``; returns ``(S, samples, 2)`` (p1 included, p2 excluded).
    """
    def knot(a: FloatArray, b: FloatArray) -> FloatArray:
        return np.maximum(np.linalg.norm(b - a, axis=1), 1e-9) ** 0.5

    t0 = np.zeros(len(p1))
    t1 = t0 + knot(p0, p1)
    t2 = t1 + knot(p1, p2)
    t3 = t2 + knot(p2, p3)
    u = np.linspace(0.0, 1.0, samples, endpoint=False)
    t = t1[:, None] + (t2 - t1)[:, None] * u[None, :]  # (S, samples)

    def lerp(pa: FloatArray, pb: FloatArray, ta: FloatArray, tb: FloatArray) -> FloatArray:
        wa = ((tb[:, None] - t) / (tb - ta)[:, None])[..., None]
        wb = ((t - ta[:, None]) / (tb - ta)[:, None])[..., None]
        return wa * pa[:, None, :] + wb * pb[:, None, :]

    a1 = lerp(p0, p1, t0, t1)
    a2 = lerp(p1, p2, t1, t2)
    a3 = lerp(p2, p3, t2, t3)
    b1 = _lerp2(a1, a2, t, t0, t2)
    b2 = _lerp2(a2, a3, t, t1, t3)
    return _lerp2(b1, b2, t, t1, t2)


def _lerp2(pa: FloatArray, pb: FloatArray, t: FloatArray, ta: FloatArray,
           tb: FloatArray) -> FloatArray:
    wa = ((tb[:, None] - t) / (tb - ta)[:, None])[..., None]
    wb = ((t - ta[:, None]) / (tb - ta)[:, None])[..., None]
    return wa * pa + wb * pb


@dataclass(frozen=True)
class Curve:
    """A dense polyline through knots.

    Attributes
    ----------
    points
        ``(M, 2)`` dense vertices.
    knot_index
        ``(K,)`` index of each knot in ``points``.
    arc
        ``(M,)`` cumulative arc length at each vertex.
    closed
        Whether the last vertex joins the first.
    """

    points: FloatArray
    knot_index: npt.NDArray[np.int64]
    arc: FloatArray
    closed: bool

    def knot(self, k: int) -> FloatArray:
        """Position of knot ``k``."""
        return self.points[self.knot_index[k]]

    def at_arc(self, s: npt.ArrayLike) -> FloatArray:
        """Points at arc lengths ``s`` (linear along the dense polyline)."""
        s = np.asarray(s, dtype=np.float64)
        x = np.interp(s, self.arc, self.points[:, 0])
        y = np.interp(s, self.arc, self.points[:, 1])
        return np.stack([x, y], axis=-1)

    def between(self, ka: int, kb: int, n: int, *, start: bool, end: bool) -> FloatArray:
        """``n`` points evenly spaced in arc length from knot ``ka`` to knot ``kb``.

        ``start``/``end`` say whether the knots themselves are among the points.
        """
        sa, sb = self.arc[self.knot_index[ka]], self.arc[self.knot_index[kb]]
        f: FloatArray
        if start and end:
            f = np.linspace(0.0, 1.0, n)
        elif start:
            f = np.arange(n) / n
        elif end:
            f = (np.arange(n) + 1.0) / n
        else:
            f = np.asarray((np.arange(n) + 1.0) / (n + 1.0), dtype=np.float64)
        return self.at_arc(sa + f * (sb - sa))

    def level_crossing(self, ka: int, kb: int, y: float) -> FloatArray:
        """First point between knots ``ka`` and ``kb`` whose y equals ``y``."""
        i0, i1 = int(self.knot_index[ka]), int(self.knot_index[kb])
        seg = self.points[i0:i1 + 1]
        d = seg[:, 1] - y
        hit = np.nonzero(np.sign(d[:-1]) != np.sign(d[1:]))[0]
        if len(hit) == 0:
            raise ValueError(f"level y={y:.4g} not crossed between knots {ka} and {kb}")
        j = int(hit[0])
        f = d[j] / (d[j] - d[j + 1])
        return seg[j] + f * (seg[j + 1] - seg[j])


def spline(knots: npt.ArrayLike, *, closed: bool = False, samples: int = 10) -> Curve:
    """Dense centripetal Catmull-Rom curve through ``knots`` (``(K, 2)``)."""
    k = np.asarray(knots, dtype=np.float64)
    if k.ndim != 2 or k.shape[1] != 2 or len(k) < 2:
        raise ValueError(f"knots must have shape (K>=2, 2), got {k.shape}")
    if samples < 1:
        raise ValueError(f"samples must be >= 1, got {samples}")
    if closed:
        p1 = k
        p2 = np.roll(k, -1, axis=0)
        p0 = np.roll(k, 1, axis=0)
        p3 = np.roll(k, -2, axis=0)
    else:
        ext = np.vstack([2 * k[0] - k[1], k, 2 * k[-1] - k[-2]])
        p0, p1, p2, p3 = ext[:-3], ext[1:-2], ext[2:-1], ext[3:]
    dense = _catmull_rom_spans(p0, p1, p2, p3, samples).reshape(-1, 2)
    if not closed:
        dense = np.vstack([dense, k[-1:]])
    knot_index = np.arange(len(k), dtype=np.int64) * samples
    seg = np.linalg.norm(np.diff(dense, axis=0), axis=1)
    arc = np.concatenate([[0.0], np.cumsum(seg)])
    return Curve(points=dense, knot_index=knot_index, arc=arc, closed=closed)
