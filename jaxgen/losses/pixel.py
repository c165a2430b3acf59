"""Pixel (distortion) losses between a prediction and its target.

Every loss is a pure function ``(pred, target, *, weight=None, reduction='mean') -> array``, safe under
``jax.jit`` / ``jax.grad``, on arrays of any shape (images are ``[B,H,W,C]``). It is computed in float32
(float64 if an input is float64) whatever the input dtype.

Conventions (shared by ``l1``, ``mse``, ``charbonnier``):

- ``reduction``: ``'mean'`` (scalar), ``'sum'`` (scalar) or ``'none'`` (per-element loss, shape of ``pred``).
- ``weight``: optional per-element weight (e.g. a ``[B,H,W,1]`` pixel mask, a ``[B,1,1,1]`` per-image
  weight), broadcastable to ``pred.shape``. The per-element loss is multiplied by it. ``'sum'`` sums the
  weighted loss; ``'mean'`` is the weighted mean ``sum(w * l) / sum(broadcast(w, pred.shape))``: the
  weight is broadcast first, so a one-channel mask counts ``C`` times -- the same normalisation as
  BasicSR's ``weight_reduce_loss`` (which multiplies ``weight.sum()`` by the channel count when the
  weight has one channel). A weight summing to 0 gives a 'mean' of 0, not NaN.
- Mismatched ``pred``/``target`` shapes are a ``ValueError`` (no silent broadcasting).
"""

from __future__ import annotations

from typing import Literal

import jax
import jax.numpy as jnp

from jaxgen.metrics import ssim

Reduction = Literal["mean", "sum", "none"]
REDUCTIONS: tuple[str, ...] = ("mean", "sum", "none")

__all__ = ["REDUCTIONS", "Reduction", "charbonnier", "l1", "mse", "ssim_loss"]


def _check_reduction(reduction: str) -> None:
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction={reduction!r}; expected one of {REDUCTIONS}")


def _difference(pred: jax.Array, target: jax.Array) -> jax.Array:
    """``pred - target`` in (at least) float32, after checking the shapes agree."""
    pred, target = jnp.asarray(pred), jnp.asarray(target)
    if pred.shape != target.shape:
        raise ValueError(f"pred and target shapes differ: pred {pred.shape} vs target {target.shape}")
    dtype = jnp.promote_types(jnp.result_type(pred, target), jnp.float32)
    return pred.astype(dtype) - target.astype(dtype)


def _reduce(loss: jax.Array, weight: jax.Array | None, reduction: str) -> jax.Array:
    """Weights then reduces a per-element loss (see the module docstring for the weighted mean)."""
    _check_reduction(reduction)
    if weight is not None:
        weight = jnp.asarray(weight)
        try:
            shape = jnp.broadcast_shapes(weight.shape, loss.shape)
        except ValueError:
            shape = None
        if shape != loss.shape:
            raise ValueError(f"weight shape {weight.shape} does not broadcast to the loss shape {loss.shape}")
        weight = jnp.broadcast_to(weight.astype(loss.dtype), loss.shape)
        loss = loss * weight
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    if weight is None:
        return loss.mean()
    total = weight.sum()
    safe = jnp.where(total == 0, jnp.ones_like(total), total)
    return jnp.where(total == 0, jnp.zeros_like(total), loss.sum() / safe)


def l1(
    pred: jax.Array, target: jax.Array, *, weight: jax.Array | None = None, reduction: Reduction = "mean"
) -> jax.Array:
    """Mean absolute error ``|pred - target|`` (EDSR, Lim et al. 2017).

    The gradient is ``sign(pred - target)`` (times weight / normaliser): 0 where they are equal, as
    PyTorch's ``L1Loss`` (``jnp.abs`` alone would give 1 there).
    """
    d = _difference(pred, target)
    return _reduce(d * jnp.sign(d), weight, reduction)


def mse(
    pred: jax.Array, target: jax.Array, *, weight: jax.Array | None = None, reduction: Reduction = "mean"
) -> jax.Array:
    """Mean squared error ``(pred - target)^2`` (SRCNN, Dong et al. 2014); ``d mean / d pred = 2(p - t)/N``."""
    return _reduce(jnp.square(_difference(pred, target)), weight, reduction)


def charbonnier(
    pred: jax.Array,
    target: jax.Array,
    *,
    eps: float = 1e-3,
    weight: jax.Array | None = None,
    reduction: Reduction = "mean",
) -> jax.Array:
    """Charbonnier loss ``sqrt((pred - target)^2 + eps^2)``, a smooth L1 (LapSRN, Lai et al. 2017).

    ``eps`` is squared inside the root (LapSRN's convention, eps=1e-3): the loss is ``eps`` with zero
    gradient where ``pred == target`` and tends to ``|d|`` for ``|d| >> eps``. No ``- eps`` offset is
    subtracted. BasicSR's ``CharbonnierLoss`` uses ``sqrt(d^2 + eps)`` with ``eps=1e-12`` instead, i.e.
    ours with ``eps=1e-6``.
    """
    d = _difference(pred, target)
    return _reduce(jnp.sqrt(jnp.square(d) + jnp.asarray(eps, d.dtype) ** 2), weight, reduction)


def ssim_loss(
    pred: jax.Array,
    target: jax.Array,
    *,
    weight: jax.Array | None = None,
    reduction: Reduction = "mean",
    crop_border: int = 0,
    y_channel: bool = False,
    max_val: float = 1.0,
) -> jax.Array:
    """``1 - SSIM`` per image (Wang et al. 2004; loss use as in Zhao et al. 2017), via ``jaxgen.metrics.ssim``.

    ``pred``/``target``: ``[B,H,W,C]`` in ``[0, max_val]``. SSIM is per image, so ``'none'`` gives ``[B]``
    and ``weight`` is a per-image weight broadcastable to ``[B]`` (not a pixel mask); ``'mean'`` with a
    weight divides by ``sum(broadcast(weight, [B]))``. ``crop_border``/``y_channel``/``max_val`` go to ``ssim``.
    """
    pred, target = jnp.asarray(pred), jnp.asarray(target)
    if pred.shape != target.shape:
        raise ValueError(f"pred and target shapes differ: pred {pred.shape} vs target {target.shape}")
    if pred.ndim != 4:
        raise ValueError(f"ssim_loss expects [B,H,W,C] images; got shape {pred.shape}")
    _check_reduction(reduction)
    dtype = jnp.promote_types(pred.dtype, jnp.float32)
    s = ssim(pred.astype(dtype), target.astype(dtype), crop_border=crop_border, y_channel=y_channel, max_val=max_val)
    return _reduce(1.0 - jnp.asarray(s, dtype), weight, reduction)
