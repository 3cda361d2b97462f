"""Analytic solids of the independent full-leg renderer and their X-ray path lengths.

Never used for training or checkpoint choice (see :mod:`training.independent_leg`).

Bones are not outlines here but bodies whose chord length along the beam is known in closed
form at every pixel, so no polygon is ever filled:

* :class:`Tube` -- a swept body round a polyline centreline with a varying radius: at lateral
  distance ``d`` from the centreline the beam crosses ``2 k sqrt(R^2 - d^2)`` of bone (an
  elliptical cross-section, AP half-depth ``k R``), of which the inner ``2 k sqrt(Ri^2 - d^2)``
  (``Ri = R - cortex``) is medullary canal. The ends are rounded (the nearest point of the
  polyline is clamped to it).
* :class:`Blob` -- a *bi-superellipsoid*: in its own frame ``(u, v)`` (``v`` distal) the level
  ``f = (|u/a|^p + |v/b|^p)^(1/p)`` uses ``p_top`` above its centre and ``p_bottom`` below,
  so one body can have a flat plateau and a round base; the chord is ``2 D sqrt(1 - f^2)``
  and a shell of ``cortex`` px is the difference with the body shrunk by it.

Everything is in stored-image pixels (x = column, y = row); the caller converts mm.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
F32 = npt.NDArray[np.float32]


@dataclass(frozen=True)
class Window:
    """A rectangle of the image: rows ``[r0, r1)``, columns ``[c0, c1)``."""

    r0: int
    r1: int
    c0: int
    c1: int

    @property
    def empty(self) -> bool:
        """No pixel inside."""
        return self.r1 <= self.r0 or self.c1 <= self.c0

    def grid(self) -> tuple[F32, F32]:
        """Pixel-centre coordinates ``(x (1, W), y (H, 1))``."""
        x = np.arange(self.c0, self.c1, dtype=np.float32)[None, :]
        y = np.arange(self.r0, self.r1, dtype=np.float32)[:, None]
        return x, y


def window(lo: FloatArray, hi: FloatArray, shape: tuple[int, int]) -> Window:
    """The image window covering the box ``lo..hi`` (x, y), clipped to ``shape``."""
    rows, cols = shape
    return Window(max(int(np.floor(lo[1])) - 1, 0), min(int(np.ceil(hi[1])) + 2, rows),
                  max(int(np.floor(lo[0])) - 1, 0), min(int(np.ceil(hi[0])) + 2, cols))


@dataclass(frozen=True)
class Tube:
    """A swept body round ``centre`` (``(n, 2)`` px) with radius, cortex and depth ratio.

    Attributes
    ----------
    centre
        Polyline knots, px.
    radius, cortex
        ``(n,)`` outer radius and cortical thickness at each knot, px (linear between knots).
    depth
        AP half-depth over the radius (1 = round cross-section).
    """

    centre: FloatArray
    radius: FloatArray
    cortex: FloatArray
    depth: float = 1.0

    def window(self, shape: tuple[int, int]) -> Window:
        """The image window the body can touch."""
        r = float(np.max(self.radius))
        return window(self.centre.min(0) - r, self.centre.max(0) + r, shape)

    def paths(self, win: Window) -> tuple[F32, F32]:
        """Total and inner (canal) chord lengths, px, on ``win``."""
        x, y = win.grid()
        h, w = win.r1 - win.r0, win.c1 - win.c0
        best = np.full((h, w), np.inf, np.float32)
        rad = np.zeros((h, w), np.float32)
        cor = np.zeros((h, w), np.float32)
        c = self.centre.astype(np.float32)
        for i in range(len(c) - 1):
            p, q = c[i], c[i + 1]
            d = q - p
            ll = float(d @ d)
            t = ((x - p[0]) * d[0] + (y - p[1]) * d[1]) / max(ll, 1e-9)
            t = np.clip(t, 0.0, 1.0)
            dx = x - (p[0] + t * d[0])
            dy = y - (p[1] + t * d[1])
            dist2 = dx * dx + dy * dy
            closer = dist2 < best
            best = np.where(closer, dist2, best)
            r_t = self.radius[i] + t * (self.radius[i + 1] - self.radius[i])
            c_t = self.cortex[i] + t * (self.cortex[i + 1] - self.cortex[i])
            rad = np.where(closer, r_t, rad)
            cor = np.where(closer, c_t, cor)
        k = np.float32(2.0 * self.depth)
        outer = k * np.sqrt(np.maximum(rad * rad - best, 0.0))
        ri = np.maximum(rad - cor, 0.0)
        inner = k * np.sqrt(np.maximum(ri * ri - best, 0.0))
        return outer.astype(np.float32), inner.astype(np.float32)


@dataclass(frozen=True)
class Blob:
    """A bi-superellipsoid (see the module docstring).

    Attributes
    ----------
    centre
        ``(2,)`` px.
    u_axis
        ``(2,)`` unit vector of the body's ``u`` (its ``v`` is ``u`` turned +90 deg: for a
        ``u`` pointing to the image right, ``v`` points down).
    a, b
        Semi-axes along ``u`` and ``v``, px.
    p_top, p_bottom
        Exponents for ``v < 0`` and ``v >= 0`` (2 = ellipse, large = box).
    depth
        AP half-depth at the centre, px.
    cortex
        Shell thickness, px (0: no shell).
    """

    centre: FloatArray
    u_axis: FloatArray
    a: float
    b: float
    p_top: float
    p_bottom: float
    depth: float
    cortex: float = 0.0

    def window(self, shape: tuple[int, int]) -> Window:
        """The image window the body can touch."""
        r = max(self.a, self.b)
        return window(self.centre - r, self.centre + r, shape)

    def _level(self, u: F32, v: F32, shrink: float) -> F32:
        a, b = max(self.a - shrink, 1e-3), max(self.b - shrink, 1e-3)
        p = np.where(v < 0, np.float32(self.p_top), np.float32(self.p_bottom))
        return (np.abs(u / a) ** p + np.abs(v / b) ** p) ** (1.0 / p)

    def paths(self, win: Window) -> tuple[F32, F32]:
        """Total and inner (cancellous) chord lengths, px, on ``win``."""
        x, y = win.grid()
        ux, uy = float(self.u_axis[0]), float(self.u_axis[1])
        dx, dy = x - np.float32(self.centre[0]), y - np.float32(self.centre[1])
        u = dx * ux + dy * uy
        v = -dx * uy + dy * ux
        f = self._level(u, v, 0.0)
        outer = 2.0 * self.depth * np.sqrt(np.maximum(1.0 - f * f, 0.0))
        if self.cortex <= 0:
            return outer.astype(np.float32), outer.astype(np.float32)
        fi = self._level(u, v, self.cortex)
        inner = 2.0 * max(self.depth - self.cortex, 0.0) * np.sqrt(np.maximum(1.0 - fi * fi, 0.0))
        return outer.astype(np.float32), inner.astype(np.float32)


Solid = Tube | Blob


@dataclass
class BoneBody:
    """One bone (or soft-tissue body): its solids, united, and what it subtracts.

    Attributes
    ----------
    name
        Bone name.
    solids
        United by the largest chord at each pixel.
    holes
        Blobs whose chord is taken away (the intercondylar notch).
    mu_cortex, mu_inner
        Linear attenuation (1/mm) of the cortical shell and of the inside.
    textured
        The inside carries the trabecular texture.
    """

    name: str
    solids: list[Solid]
    holes: list[Blob]
    mu_cortex: float
    mu_inner: float
    textured: bool = True


def bone_attenuation(body: BoneBody, shape: tuple[int, int], mm_per_px: float,
                     texture: F32 | None, out: F32) -> None:
    """Add the line integral of ``body`` (mu times path, dimensionless) into ``out``."""
    wins = [s.window(shape) for s in body.solids]
    wins = [w for w in wins if not w.empty]
    if wins:
        wins += [h.window(shape) for h in body.holes if not h.window(shape).empty]
    if not wins:
        return
    win = Window(min(w.r0 for w in wins), max(w.r1 for w in wins),
                 min(w.c0 for w in wins), max(w.c1 for w in wins))
    h, w = win.r1 - win.r0, win.c1 - win.c0
    outer = np.zeros((h, w), np.float32)
    inner = np.zeros((h, w), np.float32)
    for s in body.solids:
        sw = s.window(shape)
        if sw.empty:
            continue
        o, i = s.paths(sw)
        sl = (slice(sw.r0 - win.r0, sw.r1 - win.r0), slice(sw.c0 - win.c0, sw.c1 - win.c0))
        np.maximum(outer[sl], o, out=outer[sl])
        np.maximum(inner[sl], i, out=inner[sl])
    for hole in body.holes:
        hw = hole.window(shape)
        if hw.empty:
            continue
        o, _ = hole.paths(hw)
        sl = (slice(hw.r0 - win.r0, hw.r1 - win.r0), slice(hw.c0 - win.c0, hw.c1 - win.c0))
        outer[sl] = np.maximum(outer[sl] - o, 0.0)
        inner[sl] = np.maximum(inner[sl] - 1.15 * o, 0.0)
    inner = np.minimum(inner, outer)
    cortical = outer - inner
    inside = inner * np.float32(body.mu_inner)
    if body.textured and texture is not None:
        inside = inside * texture[win.r0:win.r1, win.c0:win.c1]
    out[win.r0:win.r1, win.c0:win.c1] += np.float32(mm_per_px) * (
        np.float32(body.mu_cortex) * cortical + inside)
