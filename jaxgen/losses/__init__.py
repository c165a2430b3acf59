"""Loss functions: plain pure functions of arrays, usable inside ``jax.jit``/``jax.grad``.

- Pixel losses (``pixel``): ``l1``, ``mse``, ``charbonnier``, ``ssim_loss`` --
  ``(pred, target, *, weight=None, reduction='mean')``.
- Adversarial losses (``adversarial``): ``gan_d_loss``, ``gan_g_loss`` on discriminator logits, kinds
  ``GAN_KINDS``.

- Feature losses (``perceptual``) on a frozen VGG whose params are an explicit argument:
  ``perceptual_loss(x, y, vgg_params, ...)`` / ``perceptual_terms`` (BasicSR ``PerceptualLoss``),
  ``gram_matrix``, ``style_loss``, ``feature_loss``; and ``tv_loss`` (BasicSR ``WeightedTVLoss``).

``PIXEL_LOSSES`` maps the names a config uses (``config.losses = {'l1': 1.0, ...}``) to functions
``(pred, target) -> scalar``; feature (perceptual) losses will join it from ``perceptual`` later.
"""

from __future__ import annotations

from typing import Callable

import jax

from jaxgen.losses.adversarial import GAN_KINDS, gan_d_loss, gan_g_loss, gradient_penalty, r1_penalty
from jaxgen.losses.perceptual import (
    feature_loss,
    gram_matrix,
    perceptual_loss,
    perceptual_terms,
    style_loss,
    tv_loss,
)
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
    "feature_loss",
    "gan_d_loss",
    "gan_g_loss",
    "gradient_penalty",
    "gram_matrix",
    "l1",
    "mse",
    "perceptual_loss",
    "perceptual_terms",
    "r1_penalty",
    "ssim_loss",
    "style_loss",
    "tv_loss",
]
