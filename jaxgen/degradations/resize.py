"""PyTorch's ``F.interpolate`` (``area``, ``bilinear``, ``bicubic``; ``align_corners=False``, no antialiasing)
as separable resampling matrices, for images whose size is only known at run time.

Real-ESRGAN resizes with a random factor each step, so the image size changes under ``jax.jit``. Here an image
of valid size ``h x w`` lives in the top-left corner of a fixed canvas; :func:`resize_matrix` builds the
``[out_max, in_max]`` matrix ``M`` of one axis from traced sizes, with ``M[o, i] = 0`` for ``o >= out_size``
or ``i >= in_size``, and ``resize_valid`` applies ``M_h . img . M_w^T``: the valid result is PyTorch's, the
rest of the canvas is 0.

Coordinate conventions (PyTorch ``UpSample.h`` / ``AdaptiveAveragePooling.cpp``):

* ``bilinear``: source ``s = max(r (o + 0.5) - 0.5, 0)``, ``i0 = floor(s)``, ``i1 = min(i0 + 1, in - 1)``, weights
  ``1 - (s - i0)``, ``s - i0``;
* ``bicubic``: ``s = r (o + 0.5) - 0.5`` (not clamped), taps ``floor(s) - 1 .. floor(s) + 2`` clamped to
  ``[0, in - 1]``, Keys' cubic convolution with ``A = -0.75``;
* ``area``: ``adaptive_avg_pool``: the mean of ``in[floor(o in/out) : ceil((o+1) in/out)]``.

``r`` is ``1 / scale_factor`` when the call gives ``scale_factor`` (output size ``floor(in * scale)``; the first
Real-ESRGAN resize) and ``in / out`` when it gives ``size`` (the second and final resizes); ``area`` always
uses the sizes.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = ["MODES", "resize_matrix", "resize_valid"]

MODES: tuple[str, ...] = ("area", "bilinear", "bicubic")
_A = -0.75


def _cubic1(x: jax.Array) -> jax.Array:  # |x| <= 1
    return ((_A + 2) * x - (_A + 3)) * x * x + 1


def _cubic2(x: jax.Array) -> jax.Array:  # 1 < |x| < 2
    return ((_A * x - 5 * _A) * x + 8 * _A) * x - 4 * _A


def _scatter(rows: jax.Array, cols: jax.Array, weights: jax.Array, out_max: int, in_max: int) -> jax.Array:
    m = jnp.zeros((out_max, in_max), jnp.float32)
    return m.at[rows, cols].add(weights)


def _bilinear(ratio: jax.Array, in_size: jax.Array, out_max: int, in_max: int) -> jax.Array:
    o = jnp.arange(out_max, dtype=jnp.float32)
    s = jnp.maximum(ratio * (o + 0.5) - 0.5, 0.0)
    i0 = jnp.minimum(jnp.floor(s).astype(jnp.int32), in_size - 1)
    lam = s - i0
    i1 = jnp.minimum(i0 + 1, in_size - 1)
    rows = jnp.arange(out_max)
    return _scatter(rows, i0, 1.0 - lam, out_max, in_max) + _scatter(rows, i1, lam, out_max, in_max)


def _bicubic(ratio: jax.Array, in_size: jax.Array, out_max: int, in_max: int) -> jax.Array:
    o = jnp.arange(out_max, dtype=jnp.float32)
    s = ratio * (o + 0.5) - 0.5
    f = jnp.floor(s)
    t = s - f
    coeffs = (_cubic2(t + 1.0), _cubic1(t), _cubic1(1.0 - t), _cubic2(2.0 - t))
    rows = jnp.arange(out_max)
    m = jnp.zeros((out_max, in_max), jnp.float32)
    for k, c in zip(range(-1, 3), coeffs):
        idx = jnp.clip(f.astype(jnp.int32) + k, 0, in_size - 1)
        m = m + _scatter(rows, idx, c, out_max, in_max)
    return m


def _area(in_size: jax.Array, out_size: jax.Array, out_max: int, in_max: int) -> jax.Array:
    o = jnp.arange(out_max)[:, None]
    i = jnp.arange(in_max)[None, :]
    start = (o * in_size) // out_size
    end = ((o + 1) * in_size + out_size - 1) // out_size
    inside = (i >= start) & (i < end)
    return jnp.where(inside, 1.0 / jnp.maximum(end - start, 1), 0.0).astype(jnp.float32)


def resize_matrix(mode: jax.Array | int, in_size: jax.Array, out_size: jax.Array, out_max: int, in_max: int,
                  scale_factor: jax.Array | None = None) -> jax.Array:
    """``[out_max, in_max]`` resampling matrix of one axis (module docstring). ``mode``: index into ``MODES``
    (traced or static). ``scale_factor`` (traced) when the size came from ``floor(in * scale_factor)``."""
    in_size = jnp.asarray(in_size, jnp.int32)
    out_size = jnp.asarray(out_size, jnp.int32)
    if scale_factor is None:
        ratio = in_size.astype(jnp.float32) / out_size.astype(jnp.float32)
    else:
        ratio = 1.0 / jnp.asarray(scale_factor, jnp.float32)
    branches = (
        lambda: _area(in_size, out_size, out_max, in_max),
        lambda: _bilinear(ratio, in_size, out_max, in_max),
        lambda: _bicubic(ratio, in_size, out_max, in_max),
    )
    if isinstance(mode, int):
        m = branches[mode]()
    else:
        m = jax.lax.switch(jnp.asarray(mode, jnp.int32), branches)
    rows = jnp.arange(out_max)[:, None] < out_size
    cols = jnp.arange(in_max)[None, :] < in_size
    return jnp.where(rows & cols, m, 0.0)


def resize_valid(canvas: jax.Array, mode: jax.Array | int, in_hw: tuple[jax.Array, jax.Array],
                 out_hw: tuple[jax.Array, jax.Array], out_canvas: tuple[int, int],
                 scale_factor: jax.Array | None = None) -> jax.Array:
    """Resize the valid ``in_hw`` region of ``canvas`` ``[B,Hc,Wc,C]`` to ``out_hw`` in a new canvas of static
    shape ``out_canvas`` (zero outside ``out_hw``), as ``F.interpolate(mode=MODES[mode], align_corners=False)``."""
    _, hc, wc, _ = canvas.shape
    mh = resize_matrix(mode, in_hw[0], out_hw[0], out_canvas[0], hc, scale_factor)
    mw = resize_matrix(mode, in_hw[1], out_hw[1], out_canvas[1], wc, scale_factor)
    return jnp.einsum("oh,bhwc,pw->bopc", mh, canvas.astype(jnp.float32), mw, precision=jax.lax.Precision.HIGHEST)
