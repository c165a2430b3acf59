"""Additive Gaussian and Poisson (shot) noise of Real-ESRGAN, per image: BasicSR ``random_add_gaussian_noise_pt`` /
``random_add_poisson_noise_pt`` (``basicsr/data/degradations.py``).

Images ``[B,H,W,3]`` float32 in ``[0,1]``; every image draws its own strength and its own colour/gray choice.

* Gaussian: ``sigma ~ U[noise_range]`` (on the 0-255 scale); colour noise ``N(0, (sigma/255)^2)`` per pixel and
  channel, or gray noise (one value per pixel, shared by the channels) with probability ``gray_prob``.
  Deviation: the official batch code draws *one* gray noise field for the whole batch (``randn(h, w)`` scaled
  per image); here each gray image has its own field.
* Poisson: the image is rounded to 8 bits, ``v = 2^ceil(log2(#distinct values))`` (over the image's pixels and
  channels, or of its rounded gray image ``0.2989 R + 0.587 G + 0.114 B`` for gray noise), and the noise is
  ``(Poisson(v x) / v - x) * scale`` with ``scale ~ U[poisson_scale_range]`` (skimage's ``random_noise('poisson')``).

Both add the noise to the input and clip to ``[0,1]`` (``clip=True, rounds=False`` as Real-ESRGAN). ``valid``
(optional ``[1,H,W,1]`` mask) restricts the distinct-value count to the valid region of a canvas.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

__all__ = ["GRAY_WEIGHTS", "add_gaussian_noise", "add_poisson_noise", "count_distinct_u8"]

GRAY_WEIGHTS = (0.2989, 0.587, 0.114)  # torchvision rgb_to_grayscale


def _per_image(key: jax.Array, b: int, lo: float, hi: float, gray_prob: float) -> tuple[jax.Array, jax.Array]:
    """Per image: strength ``U[lo, hi]`` and the gray flag (1.0 w.p. ``gray_prob``), ``[B,1,1,1]`` each."""
    u = jax.random.uniform(key, (2, b), jnp.float32)
    strength = (lo + u[0] * (hi - lo))[:, None, None, None]
    gray = (u[1] < gray_prob).astype(jnp.float32)[:, None, None, None]
    return strength, gray


def add_gaussian_noise(key: jax.Array, img: jax.Array, sigma_range: tuple[float, float], gray_prob: float,
                       *, return_params: bool = False):
    """``clip(img + noise, 0, 1)`` with per-image ``sigma`` and gray choice (module docstring)."""
    kp, kn = jax.random.split(key)
    sigma, gray = _per_image(kp, img.shape[0], *sigma_range, gray_prob)
    shape = img.shape[:3] + (img.shape[3] + 1,)  # colour channels + one gray channel
    z = jax.random.normal(kn, (math.prod(shape),), jnp.float32).reshape(shape)  # 1-D draw: much faster to compile
    noise = (z[..., :-1] * (1.0 - gray) + z[..., -1:] * gray) * (sigma / 255.0)
    out = jnp.clip(img + noise, 0.0, 1.0)
    return (out, {"sigma": sigma[:, 0, 0, 0], "gray": gray[:, 0, 0, 0]}) if return_params else out


def count_distinct_u8(x_u8: jax.Array, valid: jax.Array | None = None) -> jax.Array:
    """Number of distinct values of each image of integer-valued ``x_u8`` ``[B,...]`` in 0..255 (where ``valid``)."""
    b = x_u8.shape[0]
    idx = x_u8.astype(jnp.int32)
    if valid is not None:
        idx = jnp.where(jnp.broadcast_to(valid, x_u8.shape) > 0, idx, 256)
    idx = idx.reshape(b, -1)
    hist = jax.vmap(lambda i: jnp.bincount(i, length=257))(idx)
    return jnp.sum(hist[:, :256] > 0, axis=1)


def _rounded_and_levels(x: jax.Array, valid: jax.Array | None) -> tuple[jax.Array, jax.Array]:
    """8-bit-rounded ``x`` and ``v = 2^ceil(log2(#distinct values))`` per image ``[B,1,1,1]``."""
    x = jnp.clip(jnp.round(x * 255.0), 0, 255) / 255.0
    n = count_distinct_u8(jnp.round(x * 255.0), valid)
    v = jnp.exp2(jnp.ceil(jnp.log2(jnp.maximum(n, 1).astype(jnp.float32))))[:, None, None, None]
    return x, v


def add_poisson_noise(key: jax.Array, img: jax.Array, scale_range: tuple[float, float], gray_prob: float,
                      valid: jax.Array | None = None, *, return_params: bool = False):
    """``clip(img + noise, 0, 1)`` with Poisson noise, per-image ``scale`` and gray choice (module docstring)."""
    kp, kn = jax.random.split(key)
    scale, gray = _per_image(kp, img.shape[0], *scale_range, gray_prob)
    colour, v_colour = _rounded_and_levels(img, valid)
    luma = jnp.sum(img * jnp.asarray(GRAY_WEIGHTS, jnp.float32), axis=-1, keepdims=True)
    mono, v_mono = _rounded_and_levels(luma, valid)
    lam = jnp.concatenate([colour * v_colour, mono * v_mono], axis=-1)  # one sampler call for both
    flat = lam.reshape(-1)  # 1-D draw: much faster to compile
    counts = jax.random.poisson(kn, flat, flat.shape).astype(jnp.float32).reshape(lam.shape)
    shot_colour = counts[..., :-1] / v_colour - colour
    shot_mono = counts[..., -1:] / v_mono - mono
    noise = (shot_colour * (1.0 - gray) + shot_mono * gray) * scale
    out = jnp.clip(img + noise, 0.0, 1.0)
    return (out, {"scale": scale[:, 0, 0, 0], "gray": gray[:, 0, 0, 0]}) if return_params else out
