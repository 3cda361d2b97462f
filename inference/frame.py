"""Reference frames and aligned patches: from two reference points to a local-search patch.

The global search finds the medial and lateral tibial plateau corners.  They fix a
similarity frame (paper ``000``, Sec. 2.2): its origin lies ``centre_offset`` plateau
widths proximal to the mid-point of the corners, its x axis points from the medial to the
lateral corner, its y axis points distally, and one plateau width is a fixed number of
patch pixels.  Because the x axis always points laterally, a right knee comes out of
:func:`cut_patch` mirrored into a left one, and :meth:`PatchFrame.to_image` mirrors the
landmarks back -- the reflection is part of the transform.

Every transform is a 2x3 matrix ``A`` mapping homogeneous *output* pixel coordinates
``(x, y, 1)`` (pixel centres at integers, x = column) to *source image* coordinates.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F  # noqa: N812 (the torch idiom)

from inference.landmarks import REFERENCE_FRAME, ReferenceFrameSpec

#: Which image side the lateral plateau corner lies on for a *left* knee in an AP view
#: (radiological convention: the patient's left is on the viewer's right).  +1 = image right.
LEFT_KNEE_LATERAL_SIDE: int = 1


def _as_point(value: npt.ArrayLike, name: str) -> npt.NDArray[np.float64]:
    p = np.asarray(value, dtype=np.float64)
    if p.shape != (2,) or not np.all(np.isfinite(p)):
        raise ValueError(f"{name} must be a finite (x, y) pair, got {value!r}")
    return p


def apply_affine(A: npt.ArrayLike, points: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Map ``(N, 2)`` points through the 2x3 matrix ``A``."""
    a = np.asarray(A, dtype=np.float64)
    pts = np.asarray(points, dtype=np.float64)
    if a.shape != (2, 3):
        raise ValueError(f"A must be 2x3, got shape {a.shape}")
    if pts.ndim != 2 or pts.shape[1] != 2:
        raise ValueError(f"points must have shape (N, 2), got {pts.shape}")
    return pts @ a[:, :2].T + a[:, 2]


def invert_affine(A: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Inverse of a 2x3 affine matrix."""
    a = np.asarray(A, dtype=np.float64)
    if a.shape != (2, 3):
        raise ValueError(f"A must be 2x3, got shape {a.shape}")
    lin = np.linalg.inv(a[:, :2])
    return np.concatenate([lin, -(lin @ a[:, 2])[:, None]], axis=1)


def laterality_from_corners(medial: npt.ArrayLike, lateral: npt.ArrayLike) -> str:
    """"L" or "R": which knee an upright AP view shows, from where its lateral corner lies."""
    m = _as_point(medial, "medial")
    lat = _as_point(lateral, "lateral")
    side = 1 if lat[0] > m[0] else -1
    return "L" if side == LEFT_KNEE_LATERAL_SIDE else "R"


@dataclass(frozen=True)
class PatchFrame:
    """The similarity frame of one local-search patch.

    Parameters
    ----------
    medial, lateral
        Tibial plateau corners ``(x, y)`` in source image pixels.
    patch_size
        ``(width, height)`` of the patch in pixels.
    spec
        Where the patch lies relative to the corners (plateau-width units); the scale is
        ``patch width / spec.width`` patch pixels per plateau width.
    """

    medial: tuple[float, float]
    lateral: tuple[float, float]
    patch_size: tuple[int, int]
    spec: ReferenceFrameSpec = REFERENCE_FRAME

    def __post_init__(self) -> None:
        m = _as_point(self.medial, "medial")
        lat = _as_point(self.lateral, "lateral")
        if np.linalg.norm(lat - m) < 1e-6:
            raise ValueError("medial and lateral reference points coincide")
        w, h = self.patch_size
        if not (isinstance(w, int) and isinstance(h, int) and w > 1 and h > 1):
            raise ValueError(f"patch_size must be two ints > 1, got {self.patch_size!r}")

    @property
    def plateau_width(self) -> float:
        """Distance between the reference points, in source pixels."""
        return float(np.linalg.norm(np.subtract(self.lateral, self.medial)))

    @property
    def scale(self) -> float:
        """Patch pixels per plateau width."""
        return self.patch_size[0] / self.spec.width

    @property
    def source_pixels_per_patch_pixel(self) -> float:
        """How many source pixels one patch pixel spans."""
        return self.plateau_width / self.scale

    @property
    def laterality(self) -> str:
        """Knee laterality implied by the corners (upright AP view)."""
        return laterality_from_corners(self.medial, self.lateral)

    @property
    def matrix(self) -> npt.NDArray[np.float64]:
        """2x3 matrix mapping patch pixels to source image pixels."""
        m = np.asarray(self.medial, dtype=np.float64)
        lat = np.asarray(self.lateral, dtype=np.float64)
        w = float(np.linalg.norm(lat - m))
        u = (lat - m) / w
        v = np.array([-u[1], u[0]])
        if v[1] < 0:  # y axis must point distally (down an upright image): mirror
            v = -v
        mid = 0.5 * (m + lat)
        origin = mid - self.spec.centre_offset * w * v
        k = w / self.scale
        pw, ph = self.patch_size
        cx, cy = (pw - 1) / 2.0, (ph - 1) / 2.0
        lin = np.stack([k * u, k * v], axis=1)  # columns: patch x axis, patch y axis
        t = origin - lin @ np.array([cx, cy])
        return np.concatenate([lin, t[:, None]], axis=1)

    def to_image(self, points: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Patch pixel coordinates -> source image coordinates."""
        return apply_affine(self.matrix, points)

    def to_patch(self, points: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Source image coordinates -> patch pixel coordinates."""
        return apply_affine(invert_affine(self.matrix), points)


def letterbox_matrix(image_shape: tuple[int, int], size: int) -> npt.NDArray[np.float64]:
    """2x3 matrix mapping a ``size`` x ``size`` letterboxed square to the source image.

    The whole image is scaled so its longer side fills the square and centred.
    """
    rows, cols = image_shape
    if rows < 1 or cols < 1:
        raise ValueError(f"image_shape must be positive, got {image_shape!r}")
    if size < 2:
        raise ValueError(f"size must be >= 2, got {size}")
    k = max(rows, cols) / size  # source pixels per output pixel
    # Output centre maps to image centre.
    c_out = (size - 1) / 2.0
    tx = (cols - 1) / 2.0 - k * c_out
    ty = (rows - 1) / 2.0 - k * c_out
    return np.array([[k, 0.0, tx], [0.0, k, ty]])


def cut_patch(
    image: torch.Tensor | npt.NDArray[np.floating],
    A: npt.ArrayLike,
    out_size: tuple[int, int],
    fill: float = 0.0,
    cache: dict[int, torch.Tensor] | None = None,
) -> torch.Tensor:
    """Resample ``image`` through the 2x3 output->source matrix ``A``.

    The source is first box-averaged by the largest integer factor that keeps it at least
    as fine as the output (anti-aliasing), then sampled bilinearly.

    Parameters
    ----------
    image
        ``(rows, cols)`` float image.
    A
        Output pixel -> source pixel matrix (e.g. :attr:`PatchFrame.matrix`).
    out_size
        ``(width, height)`` of the output.
    fill
        Value outside the source image.
    cache
        Optional dict kept by the caller between calls on the same image: box-averaged
        levels by factor (saves re-averaging a large radiograph for every patch).

    Returns
    -------
    torch.Tensor
        ``(height, width)`` float32 patch.
    """
    img = torch.as_tensor(np.asarray(image) if not isinstance(image, torch.Tensor) else image)
    if img.ndim != 2:
        raise ValueError(f"image must be 2-D (rows, cols), got shape {tuple(img.shape)}")
    a = np.asarray(A, dtype=np.float64)
    if a.shape != (2, 3):
        raise ValueError(f"A must be 2x3, got shape {a.shape}")
    ow, oh = out_size
    img = img.float()
    step = float(np.sqrt(abs(np.linalg.det(a[:, :2]))))  # source px per output px
    f = int(np.floor(step))
    if f >= 2:
        rows, cols = img.shape
        r, c = rows // f * f, cols // f * f
        if r >= f and c >= f:
            if cache is not None and f in cache:
                img = cache[f]
            else:
                img = F.avg_pool2d(img[None, None, :r, :c], f)[0, 0]
                if cache is not None:
                    cache[f] = img
            # level coordinate = (source + 0.5) / f - 0.5
            a = np.concatenate([a[:, :2] / f, ((a[:, 2] + 0.5) / f - 0.5)[:, None]], axis=1)
    rows, cols = img.shape
    xs, ys = np.meshgrid(np.arange(ow, dtype=np.float64), np.arange(oh, dtype=np.float64))
    sx = a[0, 0] * xs + a[0, 1] * ys + a[0, 2]
    sy = a[1, 0] * xs + a[1, 1] * ys + a[1, 2]
    gx = 2.0 * sx / max(cols - 1, 1) - 1.0
    gy = 2.0 * sy / max(rows - 1, 1) - 1.0
    grid = torch.from_numpy(np.stack([gx, gy], axis=-1)).float()[None]
    src = img[None, None] - fill
    out = F.grid_sample(src, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
    return out[0, 0] + fill
