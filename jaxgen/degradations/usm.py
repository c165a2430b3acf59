"""Unsharp masking of the ground truth, BasicSR ``USMSharp`` (``basicsr/utils/img_process_util.py``), as
Real-ESRGAN sharpens the GT it degrades and trains the pixel and perceptual losses against.

``blur = G * img`` with OpenCV's ``getGaussianKernel(radius, 0)`` (``radius`` made odd; sigma
``0.3 ((radius - 1) / 2 - 1) + 0.8``, 8.0 for 51), reflect padding; ``residual = img - blur``;
``mask = |residual| * 255 > threshold``; ``soft = G * mask``; ``sharp = clip(img + weight * residual, 0, 1)``;
``out = soft * sharp + (1 - soft) * img``. Defaults ``radius=50`` (-> 51), ``weight=0.5``, ``threshold=10``.
The 2-D Gaussian is applied as its two separable 1-D passes (the same filter; float rounding differs).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["gaussian_kernel_1d", "usm_sharp"]


def gaussian_kernel_1d(size: int, sigma: float = 0.0) -> np.ndarray:
    """OpenCV ``getGaussianKernel(size, sigma)`` for ``sigma <= 0`` too (``0.3 ((size-1)/2 - 1) + 0.8``)."""
    if sigma <= 0:
        sigma = 0.3 * ((size - 1) * 0.5 - 1) + 0.8
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2
    g = np.exp(-(x**2) / (2 * sigma**2))
    return (g / g.sum()).astype(np.float32)


def _separable_blur(img: jax.Array, g: np.ndarray) -> jax.Array:
    r = len(g) // 2
    if min(img.shape[1], img.shape[2]) <= r:
        raise ValueError(f"usm_sharp: a {len(g)}-tap blur with reflect padding needs images larger than {r} px; "
                         f"got {img.shape[1]}x{img.shape[2]}")
    x = jnp.pad(img, ((0, 0), (r, r), (r, r), (0, 0)), mode="reflect")
    b, hp, wp, c = x.shape
    x = jnp.moveaxis(x, -1, 1).reshape(b * c, hp, wp, 1)
    hi = jax.lax.Precision.HIGHEST
    dn = ("NHWC", "HWIO", "NHWC")
    gj = jnp.asarray(g)
    x = jax.lax.conv_general_dilated(x, gj[:, None, None, None], (1, 1), "VALID", dimension_numbers=dn, precision=hi)
    x = jax.lax.conv_general_dilated(x, gj[None, :, None, None], (1, 1), "VALID", dimension_numbers=dn, precision=hi)
    return jnp.moveaxis(x.reshape(b, c, x.shape[1], x.shape[2]), 1, -1)


def usm_sharp(img: jax.Array, *, weight: float = 0.5, radius: int = 50, threshold: float = 10.0) -> jax.Array:
    """Unsharp-masked ``img`` ``[B,H,W,C]`` float in ``[0,1]`` -> same shape float32 (module docstring)."""
    if radius % 2 == 0:
        radius += 1
    g = gaussian_kernel_1d(radius)
    img = jnp.asarray(img, jnp.float32)
    blur = _separable_blur(img, g)
    residual = img - blur
    mask = (jnp.abs(residual) * 255.0 > threshold).astype(jnp.float32)
    soft = _separable_blur(mask, g)
    sharp = jnp.clip(img + weight * residual, 0.0, 1.0)
    return soft * sharp + (1.0 - soft) * img
