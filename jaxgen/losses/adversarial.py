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

``real_logits`` given to ``gan_g_loss`` for a kind other than ``ragan`` is ignored, so callers may always
pass it. New kinds are added as a ``(d_loss, g_loss)`` pair in ``_KINDS`` (``GAN_KINDS`` lists them).
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

__all__ = ["GAN_KINDS", "gan_d_loss", "gan_g_loss"]

DLoss = Callable[[jax.Array, jax.Array], jax.Array]  # (real_logits, fake_logits) -> scalar
GLoss = Callable[[jax.Array, "jax.Array | None"], jax.Array]  # (fake_logits, real_logits or None) -> scalar


def _logits(x: jax.Array, name: str) -> jax.Array:
    x = jnp.asarray(x)
    if x.size == 0:
        raise ValueError(f"{name} is empty (shape {x.shape})")
    return x.astype(jnp.promote_types(x.dtype, jnp.float32))


def _bce_real(x: jax.Array) -> jax.Array:
    """``mean(BCE(sigmoid(x), 1)) = mean(-log sigmoid(x)) = mean(softplus(-x))``."""
    return jnp.mean(jax.nn.softplus(-x))


def _bce_fake(x: jax.Array) -> jax.Array:
    """``mean(BCE(sigmoid(x), 0)) = mean(-log(1 - sigmoid(x))) = mean(softplus(x))``."""
    return jnp.mean(jax.nn.softplus(x))


def _ns_d(r: jax.Array, f: jax.Array) -> jax.Array:
    return _bce_real(r) + _bce_fake(f)


def _ns_g(f: jax.Array, r: jax.Array | None) -> jax.Array:
    return _bce_real(f)


def _lsgan_d(r: jax.Array, f: jax.Array) -> jax.Array:
    return jnp.mean(jnp.square(r - 1.0)) + jnp.mean(jnp.square(f))


def _lsgan_g(f: jax.Array, r: jax.Array | None) -> jax.Array:
    return jnp.mean(jnp.square(f - 1.0))


def _hinge_d(r: jax.Array, f: jax.Array) -> jax.Array:
    return jnp.mean(jax.nn.relu(1.0 - r)) + jnp.mean(jax.nn.relu(1.0 + f))


def _wgan_d(r: jax.Array, f: jax.Array) -> jax.Array:
    return jnp.mean(f) - jnp.mean(r)


def _neg_mean_g(f: jax.Array, r: jax.Array | None) -> jax.Array:
    return -jnp.mean(f)


def _ragan_d(r: jax.Array, f: jax.Array) -> jax.Array:
    return 0.5 * (_bce_real(r - jnp.mean(f)) + _bce_fake(f - jnp.mean(r)))


def _ragan_g(f: jax.Array, r: jax.Array | None) -> jax.Array:
    if r is None:
        raise ValueError("gan_g_loss(kind='ragan') needs real_logits (the discriminator's logits of real images)")
    return 0.5 * (_bce_fake(r - jnp.mean(f)) + _bce_real(f - jnp.mean(r)))


_KINDS: dict[str, tuple[DLoss, GLoss]] = {
    "nonsaturating": (_ns_d, _ns_g),
    "vanilla": (_ns_d, _ns_g),
    "lsgan": (_lsgan_d, _lsgan_g),
    "hinge": (_hinge_d, _neg_mean_g),
    "wgan": (_wgan_d, _neg_mean_g),
    "ragan": (_ragan_d, _ragan_g),
}
GAN_KINDS: tuple[str, ...] = tuple(_KINDS)


def _kind(kind: str) -> tuple[DLoss, GLoss]:
    if kind not in _KINDS:
        raise ValueError(f"unknown GAN loss kind {kind!r}; expected one of {GAN_KINDS}")
    return _KINDS[kind]


def gan_d_loss(real_logits: jax.Array, fake_logits: jax.Array, *, kind: str = "nonsaturating") -> jax.Array:
    """Discriminator loss (scalar float32) on D's logits of real and generated images; see the module table."""
    d_loss, _ = _kind(kind)
    return d_loss(_logits(real_logits, "real_logits"), _logits(fake_logits, "fake_logits"))


def gan_g_loss(
    fake_logits: jax.Array, *, kind: str = "nonsaturating", real_logits: jax.Array | None = None
) -> jax.Array:
    """Generator loss (scalar float32) on D's logits of generated images; ``real_logits`` only for ``ragan``."""
    _, g_loss = _kind(kind)
    real = None if real_logits is None else _logits(real_logits, "real_logits")
    return g_loss(_logits(fake_logits, "fake_logits"), real)
