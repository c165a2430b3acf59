"""JPEG compression round trip (encode + decode) in JAX, per image quality, batched and jittable.

A baseline JPEG codec model: RGB -> YCbCr (JFIF / BT.601 full range), 4:2:0 chroma subsampling, 8x8 block
DCT-II, quantisation by the Annex K tables scaled by quality, then dequantisation, inverse DCT, chroma
upsampling and YCbCr -> RGB. Entropy coding is lossless and omitted. Two flavours:

* ``'libjpeg'`` -- what libjpeg / libjpeg-turbo (Pillow, OpenCV) do, up to their integer DCT arithmetic:
  integer quality ``q`` -> table ``clip(floor((T * s + 50) / 100), 1, 255)`` with ``s = floor(5000 / q)``
  (``q < 50``) or ``200 - 2 q`` (libjpeg ``jpeg_quality_scaling`` with ``force_baseline``); samples rounded to
  8 bits after colour conversion; chroma averaged over 2x2 with libjpeg's alternating rounding bias (1, 2);
  edges padded to a multiple of 16 by replicating the last row/column; coefficients rounded half away from zero;
  decoded samples rounded and clamped to 0..255 per component; chroma upsampled by libjpeg's "fancy"
  triangle filter (``h2v2_fancy_upsample``); output rounded to 8 bits. Agreement with Pillow: ``tests/test_jpeg.py``.
* ``'diffjpeg'`` -- BasicSR's ``DiffJPEG(differentiable=False)`` (``basicsr/utils/diffjpeg.py``), which
  Real-ESRGAN trains with: continuous quality, factor ``50 / q`` (``q < 50``) or ``2 - q / 50`` times the
  *transposed* Annex K luminance table (its quirk, kept) and the chroma table, unrounded; no rounding of samples;
  zero padding to a multiple of 16; 2x2 average chroma subsampling; nearest-neighbour chroma upsampling; output
  clamped to ``[0,1]`` but not rounded.

Input ``[B,H,W,3]`` RGB float in ``[0,1]`` (clamp first, as Real-ESRGAN does), ``quality`` ``[B]`` (or a scalar)
in ``[1,100]``; output the decoded image, same shape, float32 in ``[0,1]``. Any ``H, W``. With ``valid=(h, w)``
(traced sizes) only the top-left ``h x w`` region is the image (the degradation canvas): padding is computed
from the valid size and the result is zero outside it.
"""

from __future__ import annotations

import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["CHROMA_TABLE", "FLAVOURS", "LUMA_TABLE", "dct_matrix", "jpeg_compress", "quant_tables"]

FLAVOURS: tuple[str, ...] = ("libjpeg", "diffjpeg")

# ITU-T T.81 Annex K, Tables K.1 and K.2, in natural order: row = vertical frequency.
LUMA_TABLE = np.array(
    [[16, 11, 10, 16, 24, 40, 51, 61], [12, 12, 14, 19, 26, 58, 60, 55], [14, 13, 16, 24, 40, 57, 69, 56],
     [14, 17, 22, 29, 51, 87, 80, 62], [18, 22, 37, 56, 68, 109, 103, 77], [24, 35, 55, 64, 81, 104, 113, 92],
     [49, 64, 78, 87, 103, 121, 120, 101], [72, 92, 95, 98, 112, 100, 103, 99]], np.float32)
CHROMA_TABLE = np.array(
    [[17, 18, 24, 47, 99, 99, 99, 99], [18, 21, 26, 66, 99, 99, 99, 99], [24, 26, 56, 99, 99, 99, 99, 99],
     [47, 66, 99, 99, 99, 99, 99, 99]] + [[99] * 8] * 4, np.float32)

_RGB_TO_YCC = np.array([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]],
                       np.float32)
_YCC_TO_RGB = np.array([[1.0, 0.0, 1.402], [1.0, -0.344136, -0.714136], [1.0, 1.772, 0.0]], np.float32)


def dct_matrix() -> np.ndarray:
    """Orthonormal 8-point DCT-II matrix ``D[u, x] = a(u) cos((2x + 1) u pi / 16)``, ``a(0) = sqrt(1/8)``, else
    ``1/2``: the block DCT of JPEG is ``D B D^T``."""
    d = np.zeros((8, 8), np.float64)
    for u, x in itertools.product(range(8), repeat=2):
        d[u, x] = (math.sqrt(1 / 8) if u == 0 else 0.5) * math.cos((2 * x + 1) * u * math.pi / 16)
    return d.astype(np.float32)


def quant_tables(quality: jax.Array, flavour: str = "libjpeg") -> tuple[jax.Array, jax.Array]:
    """``(luma, chroma)`` quantisation tables ``[...,8,8]`` for ``quality`` (natural order, row = vertical
    frequency, as the codec applies them; ``'diffjpeg'``'s luma table is transposed, as BasicSR's)."""
    q = jnp.asarray(quality, jnp.float32)[..., None, None]
    if flavour == "libjpeg":
        q = jnp.clip(jnp.round(q), 1, 100)
        s = jnp.where(q < 50, jnp.floor(5000.0 / q), 200.0 - 2.0 * q)
        luma = jnp.clip(jnp.floor((LUMA_TABLE * s + 50.0) / 100.0), 1, 255)
        chroma = jnp.clip(jnp.floor((CHROMA_TABLE * s + 50.0) / 100.0), 1, 255)
        return luma, chroma
    if flavour == "diffjpeg":
        factor = jnp.where(q < 50, 50.0 / q, (200.0 - 2.0 * q) / 100.0)
        return LUMA_TABLE.T * factor, CHROMA_TABLE * factor
    raise ValueError(f"jpeg flavour={flavour!r}; expected one of {FLAVOURS}")


def _blocks(x: jax.Array) -> jax.Array:
    """``[B,H,W] -> [B,H/8,W/8,8,8]``."""
    b, h, w = x.shape
    return x.reshape(b, h // 8, 8, w // 8, 8).transpose(0, 1, 3, 2, 4)


def _unblocks(x: jax.Array) -> jax.Array:
    b, nh, nw, _, _ = x.shape
    return x.transpose(0, 1, 3, 2, 4).reshape(b, nh * 8, nw * 8)


def _round_half_away(x: jax.Array) -> jax.Array:
    return jnp.sign(x) * jnp.floor(jnp.abs(x) + 0.5)


def _code(plane: jax.Array, table: jax.Array, flavour: str) -> jax.Array:
    """Level shift, block DCT, quantise, dequantise, inverse DCT of one component ``[B,H,W]`` (0-255 scale)."""
    d = jnp.asarray(dct_matrix())
    hi = jax.lax.Precision.HIGHEST
    blocks = _blocks(plane - 128.0)
    coef = jnp.einsum("ux,bijxy,vy->bijuv", d, blocks, d, precision=hi)
    t = table[:, None, None]  # [B,1,1,8,8]
    levels = _round_half_away(coef / t) if flavour == "libjpeg" else jnp.round(coef / t)
    rec = jnp.einsum("ux,bijuv,vy->bijxy", d, levels * t, d, precision=hi) + 128.0
    out = _unblocks(rec)
    return jnp.clip(jnp.round(out), 0, 255) if flavour == "libjpeg" else out


def _downsample(c: jax.Array, flavour: str) -> jax.Array:
    """2x2 chroma subsampling ``[B,H,W] -> [B,H/2,W/2]``."""
    b, h, w = c.shape
    s = c.reshape(b, h // 2, 2, w // 2, 2).sum(axis=(2, 4))
    if flavour == "diffjpeg":
        return s / 4.0
    bias = jnp.where(jnp.arange(w // 2) % 2 == 0, 1.0, 2.0)  # libjpeg h2v2_downsample: 1, 2, 1, 2, ...
    return jnp.floor((s + bias) / 4.0)


def _fancy_upsample(c: jax.Array) -> jax.Array:
    """libjpeg ``h2v2_fancy_upsample``: ``[B,h,w] -> [B,2h,2w]`` with the 3/4-1/4 triangle filter in each
    direction and its integer rounding (+8 / +7, then >> 4); edge rows/columns replicate."""
    up = jnp.concatenate([c[:, :1], c[:, :-1]], axis=1)
    down = jnp.concatenate([c[:, 1:], c[:, -1:]], axis=1)
    rows = jnp.stack([3 * c + up, 3 * c + down], axis=2).reshape(c.shape[0], -1, c.shape[2])  # column sums
    left = jnp.concatenate([rows[:, :, :1], rows[:, :, :-1]], axis=2)
    right = jnp.concatenate([rows[:, :, 1:], rows[:, :, -1:]], axis=2)
    w = c.shape[2]
    first = jnp.arange(w) == 0
    last = jnp.arange(w) == w - 1
    even = jnp.where(first, rows * 4 + 8, rows * 3 + left + 8)
    odd = jnp.where(last, rows * 4 + 7, rows * 3 + right + 7)
    out = jnp.stack([even, odd], axis=3).reshape(c.shape[0], rows.shape[1], 2 * w)
    return jnp.floor(out / 16.0)


def _pad(x: jax.Array, valid: tuple[jax.Array, jax.Array] | None, flavour: str) -> jax.Array:
    """Pad ``[B,H,W,3]`` to multiples of 16: replicate edges (libjpeg) or zeros (diffjpeg), from the valid size."""
    b, h, w, _ = x.shape
    hp, wp = -(-h // 16) * 16, -(-w // 16) * 16
    x = jnp.pad(x, ((0, 0), (0, hp - h), (0, wp - w), (0, 0)))
    if valid is None:
        vh, vw = h, w
    else:
        vh, vw = valid
    if flavour == "libjpeg":
        rows = jnp.minimum(jnp.arange(hp), vh - 1)
        cols = jnp.minimum(jnp.arange(wp), vw - 1)
        return jnp.take(jnp.take(x, rows, axis=1), cols, axis=2)
    keep = (jnp.arange(hp)[:, None] < vh) & (jnp.arange(wp)[None, :] < vw)
    return jnp.where(keep[None, :, :, None], x, 0.0)


def jpeg_compress(img: jax.Array, quality: jax.Array, *, flavour: str = "libjpeg",
         valid: tuple[jax.Array, jax.Array] | None = None) -> jax.Array:
    """JPEG round trip of ``img`` ``[B,H,W,3]`` in ``[0,1]`` at ``quality`` ``[B]`` (module docstring)."""
    if flavour not in FLAVOURS:
        raise ValueError(f"jpeg flavour={flavour!r}; expected one of {FLAVOURS}")
    if img.ndim != 4 or img.shape[-1] != 3:
        raise ValueError(f"jpeg expects [B,H,W,3] RGB images; got shape {img.shape}")
    b, h, w, _ = img.shape
    quality = jnp.broadcast_to(jnp.asarray(quality, jnp.float32), (b,))
    luma_t, chroma_t = quant_tables(quality, flavour)
    x = _pad(img.astype(jnp.float32) * 255.0, valid, flavour)
    ycc = jnp.einsum("bhwc,dc->bhwd", x, jnp.asarray(_RGB_TO_YCC), precision=jax.lax.Precision.HIGHEST)
    ycc = ycc + jnp.asarray([0.0, 128.0, 128.0], jnp.float32)
    if flavour == "libjpeg":
        ycc = jnp.clip(jnp.round(ycc), 0, 255)
    y = _code(ycc[..., 0], luma_t, flavour)
    cb = _code(_downsample(ycc[..., 1], flavour), chroma_t, flavour)
    cr = _code(_downsample(ycc[..., 2], flavour), chroma_t, flavour)
    if flavour == "libjpeg":
        cb, cr = _fancy_upsample(cb), _fancy_upsample(cr)
    else:
        cb = jnp.repeat(jnp.repeat(cb, 2, axis=1), 2, axis=2)
        cr = jnp.repeat(jnp.repeat(cr, 2, axis=1), 2, axis=2)
    ycc = jnp.stack([y, cb - 128.0, cr - 128.0], axis=-1)
    rgb = jnp.einsum("bhwd,cd->bhwc", ycc, jnp.asarray(_YCC_TO_RGB), precision=jax.lax.Precision.HIGHEST)
    if flavour == "libjpeg":
        rgb = jnp.round(rgb)
    rgb = jnp.clip(rgb, 0.0, 255.0)[:, :h, :w] / 255.0
    if valid is not None:
        keep = (jnp.arange(h)[:, None] < valid[0]) & (jnp.arange(w)[None, :] < valid[1])
        rgb = jnp.where(keep[None, :, :, None], rgb, 0.0)
    return rgb
