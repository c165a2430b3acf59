"""Adversarial (GAN) losses on discriminator logits.

``gan_d_loss(real_logits, fake_logits, kind=...)`` is minimised by the discriminator D and
``gan_g_loss(fake_logits, kind=..., real_logits=None)`` by the generator G. Logits are raw (pre-sigmoid)
D outputs of any shape (``[B,1]``, PatchGAN ``[B,H',W',1]``, ...; real and fake may differ in shape);
every term is a mean over all their elements, computed in float32, and the result is a scalar. Both are
pure functions, safe under ``jax.jit``/``jax.grad``. Gradients are taken through every logit passed in:
stop the gradient of what a player must not update (e.g. D's logits of a detached G output) at the call.

Kinds (``r``/``f``: real/fake logits; ``b(x, y)``: binary cross-entropy of logits ``x`` with label ``y``,
averaged over elements):

- ``nonsaturating``: D ``b(r, 1) + b(f, 0)``; G ``b(f, 1)``.
- ``vanilla``: the same as ``nonsaturating``.
- ``lsgan``: D ``mean((r - 1)^2) + mean(f^2)``; G ``mean((f - 1)^2)``.
- ``hinge``: D ``mean(relu(1 - r)) + mean(relu(1 + f))``; G ``-mean(f)``.
- ``wgan``: D ``mean(f) - mean(r)``; G ``-mean(f)``.
- ``ragan``: D ``(b(r - m_f, 1) + b(f - m_r, 0)) / 2``; G ``(b(r - m_f, 0) + b(f - m_r, 1)) / 2``.

References and conventions:

- ``nonsaturating`` / ``vanilla``: Goodfellow et al. 2014, as trained in SRGAN (Ledig et al. 2017) and
  BasicSR's ``GANLoss('vanilla')``: G minimises the non-saturating ``b(f, 1) = -log D(G(z))``, not the
  min-max ``-b(f, 0) = log(1 - D(G(z)))`` (which saturates when D wins). The D loss is the *sum* of the
  real and fake terms (SRGAN/BasicSR; pix2pix halves it). Computed with ``softplus`` (``b(x,1) =
  softplus(-x)``, ``b(x,0) = softplus(x)``), finite for any finite logit.
- ``lsgan``: least squares GAN (Mao et al. 2017), targets 1 (real) and 0 (fake), as pix2pix/CycleGAN.
- ``hinge``: geometric GAN / SN-GAN / SAGAN (Lim & Ye 2017; Miyato et al. 2018).
- ``wgan``: Wasserstein GAN critic loss (Arjovsky et al. 2017), without the weight clipping or
  gradient penalty (Gulrajani et al. 2017), which need the discriminator itself, not just its logits.
- ``ragan``: relativistic average GAN (Jolicoeur-Martineau 2019) as in ESRGAN (Wang et al. 2018), with
  ``m_r = mean(real_logits)``, ``m_f = mean(fake_logits)`` over all elements. Both losses average the two
  terms (ESRGAN's ``/2``). G needs ``real_logits`` (pass them through ``jax.lax.stop_gradient``; G's
  gradient flows through both terms via ``f``). D's gradient is the full derivative of the formula, as in
  the original ESRGAN code; BasicSR's ESRGANModel detaches ``m_f`` in the real term and ``m_r`` in the
  fake term (same value, different D gradient).

- ``ragan_basicsr``: BasicSR's ``ESRGANModel`` (the ESRGAN configs of BasicSR): G as ``ragan``; D
  ``0.5 b(r - sg(m_f), 1) + 0.5 b(f - sg(m_r), 0)`` -- the opposite mean is detached in each term (``sg``:
  stop-gradient), so D's gradient is not the full derivative of the ``ragan`` formula.

Label smoothing: ``real_label``/``fake_label`` (BasicSR ``GANLoss(real_label_val, fake_label_val)``) are the
targets of the BCE kinds (``b(x, y) = y softplus(-x) + (1 - y) softplus(x)``) and of ``lsgan``
(``mean((x - y)^2)``); they are ignored by ``hinge`` and ``wgan``, as in BasicSR.

Multi-scale discriminators (pix2pixHD) return a list/tuple of logit maps: each loss is then the sum of the
loss of every scale (pix2pixHD ``GANLoss``).

Regularisers (they need D itself, a function ``critic(x) -> logits``): :func:`gradient_penalty` (WGAN-GP,
Gulrajani et al. 2017; BasicSR ``gradient_penalty_loss``) and :func:`r1_penalty` (Mescheder et al. 2018;
StyleGAN2's ``d_r1_loss``).

``real_logits`` given to ``gan_g_loss`` for a kind other than ``ragan`` is ignored, so callers may always
pass it. New kinds are added as a ``(d_loss, g_loss)`` pair in ``_KINDS`` (``GAN_KINDS`` lists them).
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import optax

__all__ = ["GAN_KINDS", "gan_d_loss", "gan_g_loss", "gradient_penalty", "r1_penalty"]

Logits = Any  # an array, or a list/tuple of arrays (multi-scale discriminators)


def _logits(x: jax.Array, name: str) -> jax.Array:
    x = jnp.asarray(x)
    if x.size == 0:
        raise ValueError(f"{name} is empty (shape {x.shape})")
    return x.astype(jnp.promote_types(x.dtype, jnp.float32))


def _bce(x: jax.Array, y: float) -> jax.Array:
    """``mean(BCE(sigmoid(x), y))`` for a (possibly soft) label ``y``, with optax's logit form."""
    return jnp.mean(optax.sigmoid_binary_cross_entropy(x, y))


def _d_loss(kind: str, r: jax.Array, f: jax.Array, rl: float, fl: float) -> jax.Array:
    if kind in ("nonsaturating", "vanilla"):
        return _bce(r, rl) + _bce(f, fl)
    if kind == "lsgan":
        return jnp.mean(jnp.square(r - rl)) + jnp.mean(jnp.square(f - fl))
    if kind == "hinge":
        return jnp.mean(jax.nn.relu(1.0 - r)) + jnp.mean(jax.nn.relu(1.0 + f))
    if kind == "wgan":
        return jnp.mean(f) - jnp.mean(r)
    if kind == "ragan":
        return 0.5 * (_bce(r - jnp.mean(f), rl) + _bce(f - jnp.mean(r), fl))
    if kind == "ragan_basicsr":
        sg = jax.lax.stop_gradient
        return 0.5 * _bce(r - sg(jnp.mean(f)), rl) + 0.5 * _bce(f - sg(jnp.mean(r)), fl)
    raise ValueError(f"unknown GAN loss kind {kind!r}; expected one of {GAN_KINDS}")


def _g_loss(kind: str, f: jax.Array, r: jax.Array | None, rl: float, fl: float) -> jax.Array:
    if kind in ("nonsaturating", "vanilla"):
        return _bce(f, rl)
    if kind == "lsgan":
        return jnp.mean(jnp.square(f - rl))
    if kind in ("hinge", "wgan"):
        return -jnp.mean(f)
    if kind in ("ragan", "ragan_basicsr"):
        if r is None:
            raise ValueError(f"gan_g_loss(kind={kind!r}) needs real_logits (the discriminator's logits of real "
                             "images)")
        return 0.5 * (_bce(r - jnp.mean(f), fl) + _bce(f - jnp.mean(r), rl))
    raise ValueError(f"unknown GAN loss kind {kind!r}; expected one of {GAN_KINDS}")


GAN_KINDS: tuple[str, ...] = ("nonsaturating", "vanilla", "lsgan", "hinge", "wgan", "ragan", "ragan_basicsr")


def _check_kind(kind: str) -> None:
    if kind not in GAN_KINDS:
        raise ValueError(f"unknown GAN loss kind {kind!r}; expected one of {GAN_KINDS}")


def _scales(x: Logits, name: str) -> list[jax.Array]:
    xs = list(x) if isinstance(x, (list, tuple)) else [x]
    if not xs:
        raise ValueError(f"{name} is an empty list of logit maps")
    return [_logits(v, name) for v in xs]


def gan_d_loss(real_logits: Logits, fake_logits: Logits, *, kind: str = "nonsaturating", real_label: float = 1.0,
               fake_label: float = 0.0) -> jax.Array:
    """Discriminator loss (scalar float32) on D's logits of real and generated images; see the module table.
    Lists of logit maps (one per scale) give the sum over scales."""
    _check_kind(kind)
    rs, fs = _scales(real_logits, "real_logits"), _scales(fake_logits, "fake_logits")
    if len(rs) != len(fs):
        raise ValueError(f"real_logits has {len(rs)} scales, fake_logits {len(fs)}")
    return sum(_d_loss(kind, r, f, float(real_label), float(fake_label)) for r, f in zip(rs, fs))


def gan_g_loss(fake_logits: Logits, *, kind: str = "nonsaturating", real_logits: Logits | None = None,
               real_label: float = 1.0, fake_label: float = 0.0) -> jax.Array:
    """Generator loss (scalar float32) on D's logits of generated images; ``real_logits`` only for the ragan
    kinds. Lists of logit maps (one per scale) give the sum over scales."""
    _check_kind(kind)
    fs = _scales(fake_logits, "fake_logits")
    rs = [None] * len(fs) if real_logits is None else _scales(real_logits, "real_logits")
    if len(rs) != len(fs):
        raise ValueError(f"real_logits has {len(rs)} scales, fake_logits {len(fs)}")
    return sum(_g_loss(kind, f, r, float(real_label), float(fake_label)) for f, r in zip(fs, rs))


def _sum_logits(logits: Logits) -> jax.Array:
    return sum(jnp.sum(v.astype(jnp.float32)) for v in (logits if isinstance(logits, (list, tuple)) else [logits]))


def gradient_penalty(critic: Callable[[jax.Array], Logits], real: jax.Array, fake: jax.Array, key: jax.Array
                     ) -> jax.Array:
    """WGAN-GP (Gulrajani et al. 2017), BasicSR ``gradient_penalty_loss``: ``x = a real + (1 - a) fake`` with
    ``a ~ U[0,1]`` per image, ``mean_i (||grad_x sum D(x_i)||_2 - 1)^2`` (norm over all of image ``i``'s pixels).
    Scalar float32, differentiable w.r.t. the critic's parameters (closed over by ``critic``). Multiply by
    lambda (10 in the paper)."""
    b = real.shape[0]
    alpha = jax.random.uniform(key, (b,) + (1,) * (real.ndim - 1), jnp.float32)
    x = alpha * real.astype(jnp.float32) + (1.0 - alpha) * fake.astype(jnp.float32)
    grads = jax.grad(lambda v: _sum_logits(critic(v)))(x)
    norms = jnp.sqrt(jnp.sum(jnp.square(grads.reshape(b, -1)), axis=1))
    return jnp.mean(jnp.square(norms - 1.0))


def r1_penalty(critic: Callable[[jax.Array], Logits], real: jax.Array) -> jax.Array:
    """R1 (Mescheder et al. 2018; StyleGAN2 ``d_r1_loss``): ``mean_i ||grad_x sum D(x_i)||^2`` on real images.
    Scalar float32; the regulariser is ``gamma / 2`` times it."""
    b = real.shape[0]
    grads = jax.grad(lambda v: _sum_logits(critic(v)))(real.astype(jnp.float32))
    return jnp.mean(jnp.sum(jnp.square(grads.reshape(b, -1)), axis=1))
