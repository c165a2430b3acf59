"""Per-image 2-D filtering with reflect padding: BasicSR's ``filter2D`` (``basicsr/utils/img_process_util.py``).

``filter2d(img, kernels)``: ``img`` ``[B,H,W,C]``, ``kernels`` ``[B,k,k]`` (one per image) or ``[k,k]`` (shared),
``k`` odd; the image is padded by ``k // 2`` with PyTorch's ``'reflect'`` mode (mirror without repeating the
edge, numpy ``'reflect'``) and cross-correlated ('valid'), channel by channel: ``[B,H,W,C]`` out. Images not
larger than ``k // 2`` (which PyTorch refuses) are mirrored repeatedly.

Images of a dynamic size: the degradation pipeline keeps an image of valid size ``h x w`` (traced int scalars)
in the top-left corner of a fixed canvas. :func:`filter2d_valid` reflects at the *valid* border (index
arithmetic, so it jits with the canvas shape fixed) and zeroes the output outside the valid region, exactly
``filter2d`` of the valid crop, placed in the canvas.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = ["filter2d", "filter2d_valid", "reflect_indices", "valid_mask"]


def _check(img: jax.Array, kernels: jax.Array) -> jax.Array:
    if img.ndim != 4:
        raise ValueError(f"filter2d expects [B,H,W,C] images; got shape {img.shape}")
    kernels = jnp.asarray(kernels, jnp.float32)
    if kernels.ndim == 2:
        kernels = kernels[None]
    if kernels.ndim != 3 or kernels.shape[1] != kernels.shape[2] or kernels.shape[1] % 2 == 0:
        raise ValueError(f"filter2d expects odd square kernels [B,k,k] or [k,k]; got shape {kernels.shape}")
    if kernels.shape[0] not in (1, img.shape[0]):
        raise ValueError(f"filter2d: {kernels.shape[0]} kernels for a batch of {img.shape[0]}")
    return kernels


def _grouped_conv(padded: jax.Array, kernels: jax.Array, b: int, c: int) -> jax.Array:
    """Depthwise 'valid' cross-correlation of image ``i`` with ``kernels[i]`` (or the shared kernel)."""
    if kernels.shape[0] == 1:  # one kernel for everything: batch of B*C single-channel images
        x = jnp.moveaxis(padded, -1, 1).reshape(b * c, padded.shape[1], padded.shape[2], 1)
        w = kernels[0][:, :, None, None]
        y = jax.lax.conv_general_dilated(x, w, (1, 1), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                         precision=jax.lax.Precision.HIGHEST)
        return jnp.moveaxis(y.reshape(b, c, y.shape[1], y.shape[2]), 1, -1)
    x = jnp.moveaxis(padded, 0, -2).reshape(1, padded.shape[1], padded.shape[2], b * c)  # [1,H,W,B*C]
    w = jnp.repeat(jnp.moveaxis(kernels, 0, -1), c, axis=-1)[:, :, None, :]  # [k,k,1,B*C] (image-major)
    y = jax.lax.conv_general_dilated(x, w, (1, 1), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                     feature_group_count=b * c, precision=jax.lax.Precision.HIGHEST)
    return jnp.moveaxis(y.reshape(y.shape[1], y.shape[2], b, c), 2, 0)


def filter2d(img: jax.Array, kernels: jax.Array) -> jax.Array:
    """BasicSR ``filter2D``: reflect padding by ``k // 2``, then per-image cross-correlation (module docstring)."""
    kernels = _check(img, kernels)
    r = kernels.shape[-1] // 2
    _, h, w, _ = img.shape
    if min(h, w) > r:
        padded = jnp.pad(img.astype(jnp.float32), ((0, 0), (r, r), (r, r), (0, 0)), mode="reflect")
    else:  # PyTorch refuses; mirror repeatedly (tiny test images)
        rows, cols = reflect_indices(h + 2 * r, r, h), reflect_indices(w + 2 * r, r, w)
        padded = jnp.take(jnp.take(img.astype(jnp.float32), rows, axis=1), cols, axis=2)
    return _grouped_conv(padded, kernels, img.shape[0], img.shape[-1])


def reflect_indices(n_out: int, pad: int, valid: jax.Array) -> jax.Array:
    """Source index of each of ``n_out`` padded positions ``p`` (position ``p - pad`` of a signal of traced length
    ``valid``), mirrored at both ends without repeating the edge (repeatedly when the padding exceeds it)."""
    i = jnp.arange(n_out) - pad
    valid = jnp.asarray(valid, jnp.int32)
    period = jnp.maximum(2 * (valid - 1), 1)
    m = jnp.mod(i, period)
    return jnp.where(valid > 1, jnp.where(m < valid, m, period - m), 0)


def filter2d_valid(canvas: jax.Array, kernels: jax.Array, h: jax.Array, w: jax.Array) -> jax.Array:
    """``filter2d`` of the valid ``h x w`` top-left region of ``canvas`` ``[B,Hc,Wc,C]`` (traced ``h``, ``w``),
    returned in a canvas of the same shape, zero outside the valid region."""
    kernels = _check(canvas, kernels)
    r = kernels.shape[-1] // 2
    b, hc, wc, c = canvas.shape
    rows = reflect_indices(hc + 2 * r, r, h)
    cols = reflect_indices(wc + 2 * r, r, w)
    padded = jnp.take(jnp.take(canvas.astype(jnp.float32), rows, axis=1), cols, axis=2)
    out = _grouped_conv(padded, kernels, b, c)
    return out * valid_mask(hc, wc, h, w)


def valid_mask(hc: int, wc: int, h: jax.Array, w: jax.Array) -> jax.Array:
    """``[1,Hc,Wc,1]`` float mask of the top-left ``h x w`` region."""
    return ((jnp.arange(hc)[:, None] < h) & (jnp.arange(wc)[None, :] < w)).astype(jnp.float32)[None, :, :, None]
