"""Loss functions: plain pure functions of arrays, usable inside ``jax.jit``/``jax.grad``.

- Pixel losses (``pixel``): ``l1``, ``mse``, ``charbonnier``, ``ssim_loss`` --
  ``(pred, target, *, weight=None, reduction='mean')``.
- Adversarial losses (``adversarial``): ``gan_d_loss``, ``gan_g_loss`` on discriminator logits, kinds
  ``GAN_KINDS``.

``PIXEL_LOSSES`` maps the names a config uses (``config.losses = {'l1': 1.0, ...}``) to functions
``(pred, target) -> scalar``; feature (perceptual) losses will join it from ``perceptual`` later.
"""

from __future__ import annotations

from typing import Callable

import jax

from jaxgen.losses.adversarial import GAN_KINDS, gan_d_loss, gan_g_loss
from jaxgen.losses.pixel import REDUCTIONS, charbonnier, l1, mse, ssim_loss

PixelLoss = Callable[[jax.Array, jax.Array], jax.Array]

PIXEL_LOSSES: dict[str, PixelLoss] = {
    "l1": l1,
    "mse": mse,
    "charbonnier": charbonnier,
    "ssim": ssim_loss,
}

__all__ = [
    "GAN_KINDS",
    "PIXEL_LOSSES",
    "REDUCTIONS",
    "PixelLoss",
    "charbonnier",
    "gan_d_loss",
    "gan_g_loss",
    "l1",
    "mse",
    "ssim_loss",
]
