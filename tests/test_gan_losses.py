"""GAN objectives beyond the basic kinds: BasicSR's RaGAN with detached means, label smoothing, multi-scale sums,
WGAN-GP and R1 -- against hand-written two-sample examples and closed forms of linear critics."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgen.losses import gan_d_loss, gan_g_loss, gradient_penalty, r1_penalty


def _sp(x):
    return np.log1p(np.exp(x))


def _sig(x):
    return 1 / (1 + np.exp(-x))


def test_ragan_basicsr_values_and_detached_d_gradient():
    """Two real and two fake logits: BasicSR's D loss 0.5 b(r - sg(m_f), 1) + 0.5 b(f - sg(m_r), 0). Same value as
    'ragan'; its gradient w.r.t. r has only the own-term part (the full 'ragan' adds the cross term)."""
    r = np.array([1.0, 3.0], np.float32)  # m_r = 2
    f = np.array([-1.0, 0.0], np.float32)  # m_f = -0.5
    d_val = 0.5 * np.mean(_sp(-(r + 0.5))) + 0.5 * np.mean(_sp(f - 2.0))
    assert float(gan_d_loss(r, f, kind="ragan_basicsr")) == pytest.approx(d_val, rel=1e-6)
    assert float(gan_d_loss(r, f, kind="ragan")) == pytest.approx(d_val, rel=1e-6)
    dr, df = jax.grad(lambda a, b: gan_d_loss(a, b, kind="ragan_basicsr"), argnums=(0, 1))(r, f)
    np.testing.assert_allclose(np.asarray(dr), -0.5 * (1 - _sig(r + 0.5)) / 2, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(df), 0.5 * _sig(f - 2.0) / 2, rtol=1e-6)
    full = np.asarray(jax.grad(lambda a: gan_d_loss(a, f, kind="ragan"))(r))
    assert not np.allclose(full, np.asarray(dr))
    # G: BasicSR l_g = (b(sg(r) - m_f, 0) + b(f - m_r, 1)) / 2, gradient through f in both terms
    g_val = 0.5 * (np.mean(_sp(r + 0.5)) + np.mean(_sp(-(f - 2.0))))
    assert float(gan_g_loss(f, kind="ragan_basicsr", real_logits=r)) == pytest.approx(g_val, rel=1e-6)
    gf = np.asarray(jax.grad(lambda b: gan_g_loss(b, kind="ragan_basicsr", real_logits=r))(f))
    # d/df_j: 0.5 * mean_i sig(r_i - m_f) * (-1/2)  +  0.5 * (-(1 - sig(f_j - m_r)) / 2)
    want = -0.25 * np.mean(_sig(r + 0.5)) - 0.25 * (1 - _sig(f - 2.0))
    np.testing.assert_allclose(gf, want, rtol=1e-6)


def test_label_smoothing_targets():
    """BasicSR GANLoss(real_label_val=0.9, fake_label_val=0.1): BCE against soft targets; lsgan against them."""
    r, f = np.array([0.3, -1.2], np.float32), np.array([0.5], np.float32)
    bce = lambda x, y: np.mean(y * _sp(-x) + (1 - y) * _sp(x))  # noqa: E731
    got = float(gan_d_loss(r, f, kind="vanilla", real_label=0.9, fake_label=0.1))
    assert got == pytest.approx(bce(r, 0.9) + bce(f, 0.1), rel=1e-6)
    assert float(gan_g_loss(f, kind="vanilla", real_label=0.9)) == pytest.approx(bce(f, 0.9), rel=1e-6)
    got = float(gan_d_loss(r, f, kind="lsgan", real_label=0.9, fake_label=0.1))
    assert got == pytest.approx(np.mean((r - 0.9) ** 2) + np.mean((f - 0.1) ** 2), rel=1e-6)
    assert float(gan_d_loss(r, f, kind="hinge", real_label=0.9)) == float(gan_d_loss(r, f, kind="hinge"))


def test_multiscale_logits_sum_over_scales():
    r = (np.ones((2, 3, 3, 1), np.float32), -np.ones((2, 1, 1, 1), np.float32))
    f = (np.zeros((2, 3, 3, 1), np.float32), 2 * np.ones((2, 1, 1, 1), np.float32))
    want = sum(float(gan_d_loss(a, b)) for a, b in zip(r, f))
    assert float(gan_d_loss(r, f)) == pytest.approx(want, rel=1e-6)
    assert float(gan_g_loss(list(f))) == pytest.approx(float(gan_g_loss(f[0])) + float(gan_g_loss(f[1])), rel=1e-6)
    with pytest.raises(ValueError, match="scales"):
        gan_d_loss(r, f[:1])


def test_gradient_penalty_of_a_linear_critic_is_closed_form():
    """D(x) = <w, x_i> per image: grad = w everywhere, so GP = (||w|| - 1)^2 whatever the interpolation."""
    rng = np.random.default_rng(0)
    w = jnp.asarray(rng.standard_normal((4, 4, 3)).astype(np.float32) * 0.3)
    critic = lambda x: jnp.sum(x * w, axis=(1, 2, 3))  # noqa: E731
    real = jnp.asarray(rng.random((5, 4, 4, 3), np.float32))
    fake = jnp.asarray(rng.random((5, 4, 4, 3), np.float32))
    gp = float(gradient_penalty(critic, real, fake, jax.random.key(0)))
    assert gp == pytest.approx((float(jnp.linalg.norm(w)) - 1.0) ** 2, rel=1e-5)
    # a per-pixel (U-Net) critic D(x)_p = a * x_p: gradient of the sum = a -> ||a|| over all pixels
    gp2 = float(gradient_penalty(lambda x: 2.0 * x, real, fake, jax.random.key(1)))
    assert gp2 == pytest.approx((2.0 * np.sqrt(4 * 4 * 3) - 1.0) ** 2, rel=1e-5)


def test_gradient_penalty_interpolates_per_image():
    """A quadratic critic D(x) = sum x^2 / 2: grad = x = a real + (1 - a) fake, with one a ~ U[0,1] per image."""
    real, fake = jnp.ones((64, 2, 2, 1)), jnp.zeros((64, 2, 2, 1))
    critic = lambda x: 0.5 * jnp.sum(x**2, axis=(1, 2, 3))  # noqa: E731
    key = jax.random.key(3)
    alpha = np.asarray(jax.random.uniform(key, (64, 1, 1, 1)))[:, 0, 0, 0]
    want = np.mean((2.0 * alpha - 1.0) ** 2)  # ||grad|| = ||a * ones(4)|| = 2a
    assert float(gradient_penalty(critic, real, fake, key)) == pytest.approx(want, rel=1e-5)


def test_r1_penalty_closed_form_and_its_gradient_reaches_the_critic():
    rng = np.random.default_rng(1)
    real = jnp.asarray(rng.random((3, 4, 4, 2), np.float32))
    w = jnp.asarray(rng.standard_normal((4, 4, 2)).astype(np.float32))
    assert float(r1_penalty(lambda x: jnp.sum(x * w, axis=(1, 2, 3)), real)) == pytest.approx(
        float(jnp.sum(w**2)), rel=1e-5)
    # d/dw of ||w||^2 = 2w: the penalty is differentiable w.r.t. the critic's parameters
    g = jax.grad(lambda v: r1_penalty(lambda x: jnp.sum(x * v, axis=(1, 2, 3)), real))(w)
    np.testing.assert_allclose(np.asarray(g), 2 * np.asarray(w), rtol=1e-5)
