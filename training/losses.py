"""Wing loss (Feng et al. 2018), as used by KNEEL (paper ``002``, eq. 4)."""

from __future__ import annotations

import math

import torch


def wing_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    mask: torch.Tensor | None = None,
    w: float = 10.0,
    epsilon: float = 2.0,
) -> torch.Tensor:
    """Mean wing loss over coordinates.

    ``w * log(1 + |d| / epsilon)`` for ``|d| < w``, else ``|d| - C`` with
    ``C = w - w * log(1 + w / epsilon)`` so both parts meet.

    Parameters
    ----------
    pred, target
        ``(B, M, 2)`` coordinates (same unit, e.g. input pixels).
    mask
        Optional ``(B, M)`` weights (0 = landmark absent, e.g. implant points of a
        pre-operative knee).  The loss is averaged over the unmasked points.
    w, epsilon
        Width of the logarithmic part and its curvature.

    Returns
    -------
    torch.Tensor
        Scalar loss.
    """
    if pred.shape != target.shape:
        raise ValueError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} differ")
    if w <= 0 or epsilon <= 0:
        raise ValueError(f"w and epsilon must be positive, got w={w}, epsilon={epsilon}")
    d = (pred - target).abs()
    c = w - w * math.log(1.0 + w / epsilon)
    loss = torch.where(d < w, w * torch.log1p(d / epsilon), d - c).sum(dim=-1)  # (B, M)
    if mask is None:
        return loss.mean()
    if mask.shape != loss.shape:
        raise ValueError(f"mask must have shape {tuple(loss.shape)}, got {tuple(mask.shape)}")
    m = mask.to(loss.dtype)
    return (loss * m).sum() / m.sum().clamp_min(1.0)


def heatmap_cross_entropy(
    heatmaps: torch.Tensor,
    target: torch.Tensor,
    stride: int,
    sigma: float = 1.0,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Cross-entropy between the spatial softmax and a Gaussian around the true point.

    A distribution regulariser in the manner of DSNT (Nibali et al. 2018): it supervises
    every heatmap pixel, which makes soft-argmax training converge far faster from scratch.

    Parameters
    ----------
    heatmaps
        ``(B, M, H, W)`` unnormalised scores.
    target
        ``(B, M, 2)`` true ``(x, y)`` in input pixels.
    stride
        Input pixels per heatmap pixel (see :func:`inference.networks.soft_argmax`).
    sigma
        Standard deviation of the target Gaussian, in heatmap pixels.
    mask
        Optional ``(B, M)`` weights.
    """
    if heatmaps.ndim != 4 or target.shape != (*heatmaps.shape[:2], 2):
        raise ValueError(f"heatmaps {tuple(heatmaps.shape)} and target {tuple(target.shape)} "
                         "do not match")
    if sigma <= 0:
        raise ValueError(f"sigma must be positive, got {sigma}")
    b, m, h, w = heatmaps.shape
    logp = torch.log_softmax(heatmaps.reshape(b, m, h * w).float(), dim=-1).reshape(b, m, h, w)
    # heatmap coordinates of the target (pixel j centred at input (j + 0.5) * stride - 0.5)
    tx = (target[..., 0] + 0.5) / stride - 0.5
    ty = (target[..., 1] + 0.5) / stride - 0.5
    xs = torch.arange(w, dtype=logp.dtype, device=logp.device)
    ys = torch.arange(h, dtype=logp.dtype, device=logp.device)
    gx = torch.exp(-0.5 * ((xs - tx[..., None]) / sigma) ** 2)
    gy = torch.exp(-0.5 * ((ys - ty[..., None]) / sigma) ** 2)
    gx = gx / gx.sum(-1, keepdim=True).clamp_min(1e-12)
    gy = gy / gy.sum(-1, keepdim=True).clamp_min(1e-12)
    ce = -torch.einsum("bmh,bmw,bmhw->bm", gy, gx, logp)
    if mask is None:
        return ce.mean()
    m_ = mask.to(ce.dtype)
    return (ce * m_).sum() / m_.sum().clamp_min(1.0)
