"""Adaptive instance normalisation (Huang & Belongie, ICCV 2017) and its inference-time controls, after
naoto0804/pytorch-AdaIN ``function.py`` / ``test.py`` and the original Lua AdaIN-style ``test.lua`` (masks).

Features are NHWC ``[B,H,W,C]`` float32. Statistics follow ``calc_mean_std``: per image and channel, the mean
over ``H*W`` and ``std = sqrt(unbiased variance + eps)`` with ``eps = 1e-5``.
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp

__all__ = ["EPS", "adain", "adain_interpolate", "calc_mean_std", "masked_adain", "mix_alpha"]

EPS = 1e-5


def calc_mean_std(feat: jax.Array, eps: float = EPS) -> tuple[jax.Array, jax.Array]:
    """``[B,H,W,C] -> ([B,1,1,C] mean, [B,1,1,C] std)``; std from the unbiased variance plus ``eps``."""
    if feat.ndim != 4:
        raise ValueError(f"calc_mean_std expects [B,H,W,C] features; got shape {tuple(feat.shape)}")
    b, h, w, c = feat.shape
    if h * w < 2:
        raise ValueError(f"calc_mean_std needs at least 2 positions per channel; got {h}x{w}")
    f = feat.reshape(b, h * w, c)
    mean = f.mean(axis=1)
    var = f.var(axis=1, ddof=1) + eps
    return mean.reshape(b, 1, 1, c), jnp.sqrt(var).reshape(b, 1, 1, c)


def adain(content_feat: jax.Array, style_feat: jax.Array, eps: float = EPS) -> jax.Array:
    """``(c - mean(c)) / std(c) * std(s) + mean(s)`` per image and channel (``adaptive_instance_normalization``).

    ``content_feat`` ``[B,H,W,C]``; ``style_feat`` ``[B,h,w,C]`` (any spatial size; ``B`` equal or 1).
    """
    if content_feat.shape[-1] != style_feat.shape[-1]:
        raise ValueError(f"adain: content has {content_feat.shape[-1]} channels, style {style_feat.shape[-1]}")
    s_mean, s_std = calc_mean_std(style_feat, eps)
    c_mean, c_std = calc_mean_std(content_feat, eps)
    return (content_feat - c_mean) / c_std * s_std + s_mean


def mix_alpha(target: jax.Array, content_feat: jax.Array, alpha: float) -> jax.Array:
    """``alpha * t + (1 - alpha) * c``: the content-style trade-off (``alpha`` in ``[0,1]``)."""
    if not 0.0 <= float(alpha) <= 1.0:
        raise ValueError(f"alpha={alpha}: expected a value in [0, 1]")
    return alpha * target + (1.0 - alpha) * content_feat


def adain_interpolate(content_feat: jax.Array, style_feats: Sequence[jax.Array], weights: Sequence[float]) -> jax.Array:
    """``sum_i w_i * adain(c, s_i)`` (pytorch-AdaIN ``--style_interpolation_weights``; weights normalised to sum 1
    as its ``test.py`` does). ``content_feat`` ``[1,H,W,C]``; each style ``[1,h_i,w_i,C]``."""
    if len(style_feats) != len(weights) or not style_feats:
        raise ValueError(f"adain_interpolate: {len(style_feats)} styles but {len(weights)} weights")
    total = float(sum(weights))
    if total <= 0 or any(w < 0 for w in weights):
        raise ValueError(f"style interpolation weights must be >= 0 with a positive sum; got {list(weights)}")
    return sum((w / total) * adain(content_feat, s) for s, w in zip(style_feats, weights))


def _masked_stats(feat: jax.Array, mask: jax.Array, eps: float) -> tuple[jax.Array, jax.Array]:
    """Mean and std (unbiased + eps) of ``feat`` ``[1,H,W,C]`` over the positions where ``mask`` ``[H,W]`` is 1."""
    m = mask.reshape(1, *mask.shape, 1).astype(feat.dtype)
    n = m.sum()
    mean = (feat * m).sum(axis=(1, 2), keepdims=True) / n
    var = (jnp.square(feat - mean) * m).sum(axis=(1, 2), keepdims=True) / (n - 1) + eps
    return mean, jnp.sqrt(var)


def masked_adain(content_feat: jax.Array, fg_style: jax.Array, bg_style: jax.Array, mask: jax.Array,
                 eps: float = EPS) -> jax.Array:
    """Spatial control (Lua AdaIN-style ``test.lua -mask``): the content positions where ``mask`` is 1 are
    normalised with *their own* statistics and given ``fg_style``'s; the others likewise with ``bg_style``'s.

    ``content_feat`` ``[1,H,W,C]``; ``mask`` ``[H,W]`` of 0/1 at the feature resolution (resize the image mask
    with nearest neighbour first); both regions need at least 2 positions.
    """
    mask = jnp.asarray(mask)
    if mask.shape != content_feat.shape[1:3]:
        raise ValueError(f"masked_adain: mask {tuple(mask.shape)} must match the feature map {content_feat.shape[1:3]}")
    out = jnp.zeros_like(content_feat)
    for region, style in ((mask > 0.5, fg_style), (mask <= 0.5, bg_style)):
        c_mean, c_std = _masked_stats(content_feat, region, eps)
        s_mean, s_std = calc_mean_std(style, eps)
        out = jnp.where(region[None, :, :, None], (content_feat - c_mean) / c_std * s_std + s_mean, out)
    return out
