"""Full-reference SR metrics in pure JAX: PSNR and SSIM, batched ``[B,H,W,C] -> [B]``, jittable, differentiable.

Protocol of the SR papers (SRCNN/VDSR/EDSR tables) and BasicSR's ``calculate_psnr``/``calculate_ssim``:
optionally evaluate on the BT.601 Y channel (``16 + 65.481 R + 128.553 G + 24.966 B`` of RGB in ``[0,1]``,
float, not rounded; here rescaled to ``max_val`` units, i.e. Y in ``[16,235] / 255 * max_val``), crop
``crop_border`` pixels from every side, then compute per image. One-channel inputs are gray values already and
are used as they are (also with ``y_channel=True``).

Precision: computed in ``promote_types(dtype, float32)`` -- float32 by default, float64 for float64 inputs
when ``jax_enable_x64`` is on; the SSIM filter is plain multiply-adds (no TF32/bf16 convolution on
accelerators). ``crop_border``, ``y_channel`` and ``max_val`` are static (Python numbers).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from jaxgen.image import rgb_to_y

__all__ = ["PAD_MULTIPLE", "SSIM_K1", "SSIM_K2", "SSIM_SIGMA", "SSIM_WINDOW", "psnr", "psnr_ssim_any_size", "ssim"]

SSIM_WINDOW = 11  # Wang et al. 2004: 11x11 circular-symmetric Gaussian, sigma 1.5
SSIM_SIGMA = 1.5
SSIM_K1, SSIM_K2 = 0.01, 0.03


def _check(pred_shape: tuple[int, ...], target_shape: tuple[int, ...], crop_border: int, max_val: float, name: str,
           min_side: int) -> tuple[int, int]:
    """The cropped size ``(h, w)``; a ``ValueError`` naming ``name`` for shapes, crop or ``max_val`` it cannot use."""
    if pred_shape != target_shape:
        raise ValueError(f"{name}: pred and target shapes differ: {pred_shape} vs {target_shape}")
    if len(pred_shape) != 4 or pred_shape[-1] not in (1, 3):
        raise ValueError(f"{name}: expected [B,H,W,C] with C in {{1,3}}; got {pred_shape} (one image: x[None])")
    if not isinstance(crop_border, (int, np.integer)) or crop_border < 0:
        raise ValueError(f"{name}: crop_border must be an int >= 0; got {crop_border!r}")
    if not max_val > 0:
        raise ValueError(f"{name}: max_val must be > 0; got {max_val!r}")
    h, w = pred_shape[1] - 2 * crop_border, pred_shape[2] - 2 * crop_border
    if min(h, w) < min_side:
        raise ValueError(f"{name}: images {pred_shape} cropped by {crop_border} per side leave {h}x{w}; "
                         f"need at least {min_side}x{min_side}")
    return h, w


def _float_or_y(pred: jax.Array, target: jax.Array, y_channel: bool, max_val: float) -> tuple[jax.Array, jax.Array]:
    """Both cast to ``promote_types(dtypes, float32)``; RGB to its BT.601 Y in ``max_val`` units with ``y_channel``."""
    dtype = jnp.promote_types(jnp.promote_types(pred.dtype, target.dtype), jnp.float32)
    pred, target = pred.astype(dtype), target.astype(dtype)
    if y_channel and pred.shape[-1] == 3:
        pred, target = (rgb_to_y(t / max_val) * (max_val / 255.0) for t in (pred, target))
    return pred, target


def _prepare(pred: jax.Array, target: jax.Array, crop_border: int, y_channel: bool, max_val: float, name: str,
             min_side: int) -> tuple[jax.Array, jax.Array]:
    """Validate shapes, cast to float (>= float32), optional Y channel, border crop -> ``[B,h,w,C']``."""
    pred, target = jnp.asarray(pred), jnp.asarray(target)
    h, w = _check(pred.shape, target.shape, crop_border, max_val, name, min_side)
    pred, target = _float_or_y(pred, target, y_channel, max_val)
    c = crop_border
    return pred[:, c:c + h, c:c + w, :], target[:, c:c + h, c:c + w, :]


@functools.partial(jax.jit, static_argnames=("crop_border", "y_channel", "max_val"))
def psnr(pred: jax.Array, target: jax.Array, *, crop_border: int = 0, y_channel: bool = False,
         max_val: float = 1.0) -> jax.Array:
    """Peak signal-to-noise ratio ``10 log10(max_val^2 / MSE)`` in dB, per image.

    ``pred``, ``target``: ``[B,H,W,C]`` float in ``[0,max_val]``, C in {1,3} -> ``[B]``. MSE is averaged over
    the cropped pixels and all channels (or the Y channel). Identical images give ``+inf``.
    """
    p, t = _prepare(pred, target, crop_border, y_channel, max_val, "psnr", 1)
    mse = jnp.mean(jnp.square(p - t), axis=(1, 2, 3))
    return 10.0 * jnp.log10(max_val**2 / mse)


def _gaussian_window(dtype: jnp.dtype) -> jax.Array:
    """Normalised 1-D Gaussian, ``[11]``, sigma 1.5 (outer product = the 2-D SSIM window)."""
    r = np.arange(SSIM_WINDOW, dtype=np.float64) - (SSIM_WINDOW - 1) / 2
    g = np.exp(-(r**2) / (2 * SSIM_SIGMA**2))
    return jnp.asarray(g / g.sum(), dtype)


def _filter_valid(x: jax.Array) -> jax.Array:
    """Separable Gaussian filtering of every channel, 'valid' region: ``[B,H,W,C] -> [B,H-10,W-10,C]``.

    11 shifted multiply-adds per axis, unrolled: full float precision on every backend (no TF32/bf16
    convolution), taps summed in order, much faster on CPU than XLA's depthwise convolution. Unrolled rather than
    a ``fori_loop`` (the same sums, within 1.2e-7 on [0, 1] inputs: XLA may fuse a multiply-add): one fusion per
    axis, 1.4x faster at XLA's defaults and 5x at LLVM -O0 (a 500x480 Y image: 9.2 vs 12.9 ms, 30 vs 152 ms;
    Intel Xeon, 2026-12-07), and no slower to compile.
    """
    g = _gaussian_window(x.dtype)
    for axis in (1, 2):
        size = x.shape[axis] - (SSIM_WINDOW - 1)
        acc = g[0] * jax.lax.slice_in_dim(x, 0, size, axis=axis)
        for k in range(1, SSIM_WINDOW):
            acc = acc + g[k] * jax.lax.slice_in_dim(x, k, k + size, axis=axis)
        x = acc
    return x


def _ssim_map(x: jax.Array, y: jax.Array, shift_x: jax.Array, shift_y: jax.Array, max_val: float) -> jax.Array:
    """The 'valid' SSIM map ``[B,H-10,W-10,C]`` of ``x``, ``y``, its moments taken of the images less the
    per-channel ``shift_x``/``shift_y`` (sigma and cov are shift-invariant: far less float32 cancellation in
    ``E[x^2] - mu^2`` on flat regions; the shift is a constant, so it carries no gradient)."""
    xc, yc = x - shift_x, y - shift_y
    c = x.shape[-1]
    stats = _filter_valid(jnp.concatenate([xc, yc, xc * xc, yc * yc, xc * yc], axis=-1))
    mu_xc, mu_yc, e_xx, e_yy, e_xy = (stats[..., i * c:(i + 1) * c] for i in range(5))
    var_x, var_y, cov = e_xx - mu_xc**2, e_yy - mu_yc**2, e_xy - mu_xc * mu_yc
    mu_x, mu_y = mu_xc + shift_x, mu_yc + shift_y
    c1, c2 = (SSIM_K1 * max_val) ** 2, (SSIM_K2 * max_val) ** 2
    num = (2 * mu_x * mu_y + c1) * (2 * cov + c2)
    den = (mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2)
    return num / den


@functools.partial(jax.jit, static_argnames=("crop_border", "y_channel", "max_val"))
def ssim(pred: jax.Array, target: jax.Array, *, crop_border: int = 0, y_channel: bool = False,
         max_val: float = 1.0) -> jax.Array:
    """Structural similarity (Wang et al. 2004) per image, mean over the valid SSIM map and over channels.

    ``pred``, ``target``: ``[B,H,W,C]`` float in ``[0,max_val]``, C in {1,3} -> ``[B]``. 11x11 Gaussian window
    (sigma 1.5), ``K1 = 0.01``, ``K2 = 0.03``, ``L = max_val``, population (biased) local statistics, 'valid'
    filtering (no padding): the same as MATLAB ``ssim_index`` / BasicSR / ``skimage.metrics.structural_similarity
    (gaussian_weights=True, sigma=1.5, use_sample_covariance=False)``. Needs at least 11x11 after cropping.
    """
    x, y = _prepare(pred, target, crop_border, y_channel, max_val, "ssim", SSIM_WINDOW)
    shift_x, shift_y = (jax.lax.stop_gradient(jnp.mean(t, axis=(1, 2), keepdims=True)) for t in (x, y))
    return jnp.mean(_ssim_map(x, y, shift_x, shift_y, max_val), axis=(1, 2, 3))


PAD_MULTIPLE = 128  # psnr_ssim_any_size pads each side up to a multiple of this: one program per bucket


@functools.partial(jax.jit, static_argnames=("y_channel", "max_val"))
def _psnr_ssim_masked(pred: jax.Array, target: jax.Array, hw: jax.Array, crop_border: jax.Array, *,
                      y_channel: bool, max_val: float) -> tuple[jax.Array, jax.Array]:
    """:func:`psnr` and :func:`ssim` of the ``hw[0] x hw[1]`` top-left image in zero-padded ``[B,Hp,Wp,C]``
    arrays, the crop traced too: the border and the padding are masked out of every mean instead of sliced off,
    and the 'valid' SSIM map positions that read a masked pixel are dropped."""
    x, y = _float_or_y(pred, target, y_channel, max_val)
    c, dtype = x.shape[-1], x.dtype
    rows, cols = jnp.arange(x.shape[1])[:, None], jnp.arange(x.shape[2])[None, :]

    def region(margin: int) -> jax.Array:  # [Hp-margin, Wp-margin] mask of pixels (or map positions) kept
        r, q = rows[:x.shape[1] - margin], cols[:, :x.shape[2] - margin]
        keep = (r >= crop_border) & (r < hw[0] - crop_border - margin)
        keep = keep & (q >= crop_border) & (q < hw[1] - crop_border - margin)
        return keep[None, :, :, None].astype(dtype)

    def masked_mean(v: jax.Array, mask: jax.Array, keepdims: bool = False) -> jax.Array:
        axes = (1, 2) if keepdims else (1, 2, 3)
        return jnp.sum(v * mask, axis=axes, keepdims=keepdims) / (jnp.sum(mask) * (1 if keepdims else c))

    pixels = region(0)
    mse = masked_mean(jnp.square(x - y), pixels)
    shift_x, shift_y = (jax.lax.stop_gradient(masked_mean(t, pixels, keepdims=True)) for t in (x, y))
    ssim_map = _ssim_map(x, y, shift_x, shift_y, max_val)
    return 10.0 * jnp.log10(max_val**2 / mse), masked_mean(ssim_map, region(SSIM_WINDOW - 1))


def psnr_ssim_any_size(pred: jax.Array, target: jax.Array, *, crop_border: int = 0, y_channel: bool = False,
                       max_val: float = 1.0) -> tuple[jax.Array, jax.Array]:
    """``(psnr(...), ssim(...))`` with one compiled program for every image size up to the next multiple of
    :data:`PAD_MULTIPLE` per side and every crop: what benchmark evaluation wants (Set14 has 13 sizes, DIV2K's
    validation set 100; :func:`psnr` and :func:`ssim` compile once per shape and crop).

    Same arguments and definitions as :func:`psnr` / :func:`ssim`; the images are zero-padded and the means are
    masked, so the values differ from theirs only by float32 summation order (~1e-7 relative). Returns two
    ``[B]`` arrays (dB, SSIM). Not for gradients (use :func:`psnr` / :func:`ssim`).
    """
    p, t = np.asarray(pred), np.asarray(target)  # padded on the host: no device program per input shape
    for name, min_side in (("psnr", 1), ("ssim", SSIM_WINDOW)):  # their checks and messages
        _check(p.shape, t.shape, crop_border, max_val, name, min_side)
    h, w = p.shape[1:3]
    pads = ((0, 0), (0, -h % PAD_MULTIPLE), (0, -w % PAD_MULTIPLE), (0, 0))
    return _psnr_ssim_masked(np.pad(p, pads), np.pad(t, pads), np.array([h, w], np.int32), np.int32(crop_border),
                             y_channel=y_channel, max_val=float(max_val))
