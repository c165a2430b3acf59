"""Pixel and adversarial losses against closed forms, numpy, optax and finite differences."""

from __future__ import annotations

import functools
import importlib.util

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxgen import losses
from jaxgen.losses import charbonnier, gan_d_loss, gan_g_loss, l1, mse, ssim_loss

PIXEL = {"l1": l1, "mse": mse, "charbonnier": charbonnier}
KINDS = ("nonsaturating", "vanilla", "lsgan", "hinge", "wgan", "ragan")


def _np_elementwise(name: str, p: np.ndarray, t: np.ndarray, eps: float = 1e-3) -> np.ndarray:
    d = p.astype(np.float64) - t.astype(np.float64)
    return {"l1": np.abs(d), "mse": d**2, "charbonnier": np.sqrt(d**2 + eps**2)}[name]


def _pair(shape=(2, 5, 4, 3), seed=0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.random(shape, dtype=np.float32), rng.random(shape, dtype=np.float32)


def _fd_grad(f, x: np.ndarray, h: float = 1e-6) -> np.ndarray:
    """Central finite differences of scalar ``f`` at float64 ``x``."""
    g = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        e = np.zeros_like(x)
        e[i] = h
        g[i] = (float(f(x + e)) - float(f(x - e))) / (2 * h)
    return g


# ----------------------------------------------------------------------------------------------- pixel


@pytest.mark.parametrize("name", sorted(PIXEL))
def test_pixel_values_and_reductions_match_numpy(name):
    p, t = _pair()
    ref = _np_elementwise(name, p, t)
    fn = PIXEL[name]
    np.testing.assert_allclose(float(fn(p, t)), ref.mean(), rtol=1e-5)
    np.testing.assert_allclose(float(fn(p, t, reduction="sum")), ref.sum(), rtol=1e-5)
    none = fn(p, t, reduction="none")
    assert none.shape == p.shape
    np.testing.assert_allclose(np.asarray(none), ref, rtol=1e-5, atol=1e-7)
    assert fn(p, t).shape == () and fn(p, t).dtype == jnp.float32


def test_pixel_closed_form_values():
    p = np.array([0.0, 1.0, 3.0], np.float32)
    t = np.array([0.0, 0.0, 1.0], np.float32)
    assert float(l1(p, t)) == pytest.approx(1.0)
    assert float(mse(p, t)) == pytest.approx(5.0 / 3.0)
    eps = 0.5
    assert float(charbonnier(p, t, eps=eps)) == pytest.approx((0.5 + np.sqrt(1.25) + np.sqrt(4.25)) / 3, rel=1e-6)
    # At d = 0 the value is eps; far from 0 it approaches |d|.
    assert float(charbonnier(t, t, eps=1e-3)) == pytest.approx(1e-3, rel=1e-6)
    assert float(charbonnier(np.float32([1000.0]), np.float32([0.0]))) == pytest.approx(1000.0, rel=1e-9)


def test_mse_gradient_closed_form():
    p, t = _pair()
    g = jax.grad(mse)(p, t)
    np.testing.assert_allclose(np.asarray(g), 2 * (p - t) / p.size, rtol=1e-5, atol=1e-9)
    g_sum = jax.grad(functools.partial(mse, reduction="sum"))(p, t)
    np.testing.assert_allclose(np.asarray(g_sum), 2 * (p - t), rtol=1e-5, atol=1e-7)


def test_l1_subgradient_is_sign_and_zero_at_equality():
    p = np.array([[-1.0, 0.5, 2.0, 0.25]], np.float32)
    t = np.array([[0.0, 0.5, 1.0, 1.0]], np.float32)
    g = np.asarray(jax.grad(l1)(p, t))
    np.testing.assert_array_equal(g, np.array([[-1.0, 0.0, 1.0, -1.0]]) / 4)


def test_charbonnier_gradient_closed_form_and_zero_at_equality():
    p, t = _pair(seed=1)
    t[0, 0, 0] = p[0, 0, 0]  # d = 0 somewhere
    eps = 1e-2
    g = np.asarray(jax.grad(functools.partial(charbonnier, eps=eps))(p, t))
    d = p.astype(np.float64) - t
    np.testing.assert_allclose(g, d / np.sqrt(d**2 + eps**2) / p.size, rtol=1e-5, atol=1e-9)
    np.testing.assert_array_equal(g[0, 0, 0], 0.0)
    v, g0 = jax.value_and_grad(charbonnier)(t, t)
    assert float(v) == pytest.approx(1e-3, rel=1e-6)
    np.testing.assert_array_equal(np.asarray(g0), 0.0)


@pytest.mark.parametrize("name", ["mse", "charbonnier"])
def test_pixel_gradients_match_finite_differences(name):
    rng = np.random.default_rng(2)
    p, t = rng.random((1, 3, 2, 2)), rng.random((1, 3, 2, 2))
    w = rng.random((1, 3, 2, 1))
    fn = functools.partial(PIXEL[name], weight=w)
    with jax.enable_x64(True):
        auto = np.asarray(jax.grad(fn)(jnp.asarray(p), jnp.asarray(t)))
        fd = _fd_grad(lambda x: fn(jnp.asarray(x), jnp.asarray(t)), p)
    np.testing.assert_allclose(auto, fd, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("name", sorted(PIXEL))
def test_weighted_reductions(name):
    p, t = _pair(seed=3)
    ref = _np_elementwise(name, p, t)
    rng = np.random.default_rng(4)
    fn = PIXEL[name]
    # One-channel mask: weighted mean divides by sum(mask) * C (BasicSR's weight_reduce_loss).
    w1 = rng.random(p.shape[:3] + (1,), dtype=np.float32)
    np.testing.assert_allclose(float(fn(p, t, weight=w1)), (ref * w1).sum() / (w1.sum() * 3), rtol=1e-5)
    # Full mask divides by its sum.
    wc = rng.random(p.shape, dtype=np.float32)
    np.testing.assert_allclose(float(fn(p, t, weight=wc)), (ref * wc).sum() / wc.sum(), rtol=1e-5)
    np.testing.assert_allclose(float(fn(p, t, weight=wc, reduction="sum")), (ref * wc).sum(), rtol=1e-5)
    np.testing.assert_allclose(np.asarray(fn(p, t, weight=w1, reduction="none")), ref * w1, rtol=1e-5, atol=1e-8)
    # A 0/1 mask is the mean over the selected pixels.
    mask = (rng.random(p.shape[:3] + (1,)) < 0.5).astype(np.float32)
    sel = np.broadcast_to(mask, p.shape).astype(bool)
    np.testing.assert_allclose(float(fn(p, t, weight=mask)), ref[sel].mean(), rtol=1e-5)
    # Per-image weights [B,1,1,1].
    wb = np.array([1.0, 3.0], np.float32).reshape(2, 1, 1, 1)
    expected = (ref[0].mean() * 1 + ref[1].mean() * 3) / 4
    np.testing.assert_allclose(float(fn(p, t, weight=wb)), expected, rtol=1e-5)


def test_zero_weight_mean_is_zero_with_finite_gradient():
    p, t = _pair()
    w = np.zeros(p.shape[:3] + (1,), np.float32)
    v, g = jax.value_and_grad(lambda x: l1(x, t, weight=w))(p)
    assert float(v) == 0.0
    np.testing.assert_array_equal(np.asarray(g), 0.0)


def test_weight_only_changes_gradient_where_nonzero():
    p, t = _pair()
    w = np.ones(p.shape[:3] + (1,), np.float32)
    w[:, :2] = 0.0
    g = np.asarray(jax.grad(lambda x: mse(x, t, weight=w))(p))
    np.testing.assert_array_equal(g[:, :2], 0.0)
    n = w.sum() * 3
    np.testing.assert_allclose(g[:, 2:], 2 * (p - t)[:, 2:] / n, rtol=1e-5, atol=1e-9)


@pytest.mark.parametrize("name", sorted(PIXEL))
def test_pixel_argument_errors(name):
    fn = PIXEL[name]
    p, t = _pair()
    with pytest.raises(ValueError, match=r"\(2, 5, 4, 3\).*\(2, 5, 4, 2\)"):
        fn(p, t[..., :2])
    with pytest.raises(ValueError, match="'avg'"):
        fn(p, t, reduction="avg")
    with pytest.raises(ValueError, match="weight shape"):
        fn(p, t, weight=np.ones((3, 1, 1, 1), np.float32))
    with pytest.raises(ValueError, match="weight shape"):  # a weight may not enlarge the loss
        fn(p[..., :1], t[..., :1], weight=np.ones(p.shape, np.float32))


def test_pixel_losses_jit_and_low_precision_inputs():
    p, t = _pair()
    for name, fn in PIXEL.items():
        jitted = jax.jit(functools.partial(fn, reduction="sum"))
        np.testing.assert_allclose(float(jitted(p, t)), float(fn(p, t, reduction="sum")), rtol=1e-6)
        w = np.linspace(0, 1, p.shape[2], dtype=np.float32)[None, None, :, None]
        weighted = jax.jit(lambda a, b, w: fn(a, b, weight=w))(p, t, w)  # traced weight
        np.testing.assert_allclose(float(weighted), float(fn(p, t, weight=w)), rtol=1e-6)
        out = fn(jnp.asarray(p, jnp.bfloat16), jnp.asarray(t, jnp.bfloat16))
        assert out.dtype == jnp.float32, name
        ref = _np_elementwise(name, np.asarray(jnp.asarray(p, jnp.bfloat16), np.float32),
                              np.asarray(jnp.asarray(t, jnp.bfloat16), np.float32)).mean()
        np.testing.assert_allclose(float(out), ref, rtol=1e-5)


def test_pixel_loss_registry():
    assert losses.PIXEL_LOSSES == {"l1": l1, "mse": mse, "charbonnier": charbonnier, "ssim": ssim_loss}
    p, t = _pair()
    for name in ("l1", "mse", "charbonnier"):
        assert float(losses.PIXEL_LOSSES[name](p, t)) == pytest.approx(_np_elementwise(name, p, t).mean(), rel=1e-5)


# ------------------------------------------------------------------------------------------------ ssim

_HAS_METRICS = importlib.util.find_spec("jaxgen.metrics") is not None
needs_metrics = pytest.mark.skipif(not _HAS_METRICS, reason="jaxgen.metrics (ssim) not available yet")


@needs_metrics
def test_ssim_loss_is_one_minus_ssim():
    from jaxgen.metrics import ssim

    rng = np.random.default_rng(5)
    t = rng.random((2, 24, 24, 3), dtype=np.float32)
    p = np.clip(t + 0.1 * rng.standard_normal(t.shape).astype(np.float32), 0, 1)
    per_image = 1.0 - np.asarray(ssim(p, t))
    none = np.asarray(ssim_loss(p, t, reduction="none"))
    assert none.shape == (2,)
    np.testing.assert_allclose(none, per_image, rtol=1e-6, atol=1e-7)
    assert 0.0 < per_image.min()
    np.testing.assert_allclose(float(ssim_loss(p, t)), per_image.mean(), rtol=1e-6)
    np.testing.assert_allclose(float(ssim_loss(p, t, reduction="sum")), per_image.sum(), rtol=1e-6)
    w = np.array([1.0, 3.0], np.float32)
    np.testing.assert_allclose(float(ssim_loss(p, t, weight=w)), (per_image * w).sum() / 4, rtol=1e-6)
    assert float(ssim_loss(t, t)) == pytest.approx(0.0, abs=1e-6)
    y = 1.0 - np.asarray(ssim(p, t, y_channel=True, crop_border=2))
    np.testing.assert_allclose(np.asarray(ssim_loss(p, t, reduction="none", y_channel=True, crop_border=2)), y,
                               rtol=1e-6, atol=1e-7)


@needs_metrics
def test_ssim_loss_gradient_descends():
    rng = np.random.default_rng(6)
    t = rng.random((1, 16, 16, 1), dtype=np.float32)
    p = np.clip(t + 0.2 * rng.standard_normal(t.shape).astype(np.float32), 0, 1)
    v, g = jax.jit(jax.value_and_grad(ssim_loss))(p, t)
    assert np.all(np.isfinite(np.asarray(g))) and np.abs(np.asarray(g)).max() > 0
    assert float(ssim_loss(p - 1e-2 * np.asarray(g) / np.abs(np.asarray(g)).max(), t)) < float(v)


def test_ssim_loss_argument_errors():
    p, t = _pair()
    with pytest.raises(ValueError, match=r"\(2, 5, 4, 3\).*\(2, 5, 4, 1\)"):
        ssim_loss(p, t[..., :1])
    with pytest.raises(ValueError, match=r"\[B,H,W,C\]"):
        ssim_loss(p[0], t[0])


# ----------------------------------------------------------------------------------------- adversarial


def _np_softplus(x):
    return np.logaddexp(0.0, np.asarray(x, np.float64))


def _np_d_loss(kind: str, r: np.ndarray, f: np.ndarray) -> float:
    r, f = np.asarray(r, np.float64), np.asarray(f, np.float64)
    if kind in ("nonsaturating", "vanilla"):
        return -np.log(1 / (1 + np.exp(-r))).mean() - np.log(1 - 1 / (1 + np.exp(-f))).mean()
    if kind == "lsgan":
        return ((r - 1) ** 2).mean() + (f**2).mean()
    if kind == "hinge":
        return np.maximum(0, 1 - r).mean() + np.maximum(0, 1 + f).mean()
    if kind == "wgan":
        return f.mean() - r.mean()
    sig = lambda x: 1 / (1 + np.exp(-x))  # noqa: E731
    return 0.5 * (-np.log(sig(r - f.mean())).mean() - np.log(1 - sig(f - r.mean())).mean())


def _np_g_loss(kind: str, f: np.ndarray, r: np.ndarray) -> float:
    r, f = np.asarray(r, np.float64), np.asarray(f, np.float64)
    sig = lambda x: 1 / (1 + np.exp(-x))  # noqa: E731
    if kind in ("nonsaturating", "vanilla"):
        return -np.log(sig(f)).mean()
    if kind == "lsgan":
        return ((f - 1) ** 2).mean()
    if kind in ("hinge", "wgan"):
        return -f.mean()
    return 0.5 * (-np.log(1 - sig(r - f.mean())).mean() - np.log(sig(f - r.mean())).mean())


def _logits(seed: int, shape=(4, 3, 3, 1), scale: float = 2.0) -> np.ndarray:
    return (scale * np.random.default_rng(seed).standard_normal(shape)).astype(np.float32)


@pytest.mark.parametrize("kind", KINDS)
def test_gan_losses_match_numpy(kind):
    r, f = _logits(0), _logits(1, shape=(2, 5, 1))  # real and fake may differ in shape
    assert float(gan_d_loss(r, f, kind=kind)) == pytest.approx(_np_d_loss(kind, r, f), rel=1e-5, abs=1e-6)
    assert float(gan_g_loss(f, kind=kind, real_logits=r)) == pytest.approx(_np_g_loss(kind, f, r), rel=1e-5, abs=1e-6)
    assert gan_d_loss(r, f, kind=kind).shape == () and gan_d_loss(r, f, kind=kind).dtype == jnp.float32


def test_bce_kinds_match_optax():
    r, f = _logits(2), _logits(3)
    bce = optax.sigmoid_binary_cross_entropy
    d = bce(r, jnp.ones_like(r)).mean() + bce(f, jnp.zeros_like(f)).mean()
    g = bce(f, jnp.ones_like(f)).mean()
    for kind in ("nonsaturating", "vanilla"):
        np.testing.assert_allclose(float(gan_d_loss(r, f, kind=kind)), float(d), rtol=1e-6)
        np.testing.assert_allclose(float(gan_g_loss(f, kind=kind)), float(g), rtol=1e-6)
    d_ra = 0.5 * (bce(r - f.mean(), jnp.ones_like(r)).mean() + bce(f - r.mean(), jnp.zeros_like(f)).mean())
    g_ra = 0.5 * (bce(r - f.mean(), jnp.zeros_like(r)).mean() + bce(f - r.mean(), jnp.ones_like(f)).mean())
    np.testing.assert_allclose(float(gan_d_loss(r, f, kind="ragan")), float(d_ra), rtol=1e-6)
    np.testing.assert_allclose(float(gan_g_loss(f, kind="ragan", real_logits=r)), float(g_ra), rtol=1e-6)


def _old_bce(x, y):
    """The hand-written BCE that ``losses.adversarial`` used before optax's (kept as the reference)."""
    if y == 1.0:
        return jnp.mean(jax.nn.softplus(-x))
    if y == 0.0:
        return jnp.mean(jax.nn.softplus(x))
    return jnp.mean(y * jax.nn.softplus(-x) + (1.0 - y) * jax.nn.softplus(x))


@pytest.mark.parametrize("labels", [(1.0, 0.0), (0.9, 0.1)])
def test_optax_bce_equals_the_old_hand_written_one(labels):
    rl, fl = labels
    r, f = _logits(4, scale=8.0), _logits(5, scale=8.0)
    r[0, 0, 0, 0], f[0, 0, 0, 0] = 90.0, -90.0  # saturated logits: no overflow, no NaN
    old_d = lambda r, f: _old_bce(r, rl) + _old_bce(f, fl)  # noqa: E731
    old_g = lambda f: _old_bce(f, rl)  # noqa: E731
    new_d = lambda r, f: gan_d_loss(r, f, real_label=rl, fake_label=fl)  # noqa: E731
    new_g = lambda f: gan_g_loss(f, real_label=rl, fake_label=fl)  # noqa: E731
    np.testing.assert_allclose(float(new_d(r, f)), float(old_d(r, f)), rtol=1e-6)
    np.testing.assert_allclose(float(new_g(f)), float(old_g(f)), rtol=1e-6)
    for got, want in zip(jax.grad(new_d, argnums=(0, 1))(r, f), jax.grad(old_d, argnums=(0, 1))(r, f)):
        assert np.all(np.isfinite(got))
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(jax.grad(new_g)(f), jax.grad(old_g)(f), rtol=1e-5, atol=1e-9)


def test_gan_closed_forms_at_simple_logits():
    z = np.zeros((2, 4), np.float32)
    log2 = np.log(2.0)
    assert float(gan_d_loss(z, z)) == pytest.approx(2 * log2, rel=1e-6)
    assert float(gan_g_loss(z)) == pytest.approx(log2, rel=1e-6)
    assert float(gan_d_loss(z, z, kind="ragan")) == pytest.approx(log2, rel=1e-6)
    assert float(gan_g_loss(z, kind="ragan", real_logits=z)) == pytest.approx(log2, rel=1e-6)
    assert float(gan_d_loss(z + 1, z, kind="lsgan")) == 0.0
    assert float(gan_d_loss(z, z, kind="lsgan")) == 1.0
    assert float(gan_d_loss(z + 1, z - 1, kind="hinge")) == 0.0
    assert float(gan_d_loss(z, z, kind="hinge")) == 2.0
    assert float(gan_d_loss(z + 3, z - 2, kind="wgan")) == -5.0
    assert float(gan_g_loss(z - 2, kind="hinge")) == 2.0
    assert float(gan_g_loss(z - 2, kind="wgan")) == 2.0


def test_ragan_hand_computation():
    r = np.array([2.0, 0.0], np.float32)  # mean 1
    f = np.array([-1.0, 0.0, 1.0, -4.0], np.float32)  # mean -1
    sp = _np_softplus
    # D: b(r - m_f, 1) on r - m_f = [3, 1]; b(f - m_r, 0) on f - m_r = [-2, -1, 0, -5].
    d = 0.5 * (np.mean(sp(-np.array([3.0, 1.0]))) + np.mean(sp(np.array([-2.0, -1.0, 0.0, -5.0]))))
    g = 0.5 * (np.mean(sp(np.array([3.0, 1.0]))) + np.mean(sp(-np.array([-2.0, -1.0, 0.0, -5.0]))))
    assert float(gan_d_loss(r, f, kind="ragan")) == pytest.approx(d, rel=1e-6)
    assert float(gan_g_loss(f, kind="ragan", real_logits=r)) == pytest.approx(g, rel=1e-6)


@pytest.mark.parametrize("kind", KINDS)
def test_gan_gradients_match_finite_differences(kind):
    # Logits in (0.1, 0.9): hinge margins active and away from kinks, lsgan targets 1/0 on the far side.
    r = np.random.default_rng(7).uniform(0.1, 0.9, 5)
    f = np.random.default_rng(8).uniform(0.1, 0.9, 3)
    with jax.enable_x64(True):  # jitted: a few programs per kind instead of every eager op in float64
        d = jax.jit(functools.partial(gan_d_loss, kind=kind))
        g = jax.jit(functools.partial(gan_g_loss, kind=kind))
        dr, df = jax.jit(jax.grad(d, argnums=(0, 1)))(jnp.asarray(r), jnp.asarray(f))
        gf = jax.jit(jax.grad(lambda x: g(x, real_logits=jnp.asarray(r))))(jnp.asarray(f))
        np.testing.assert_allclose(np.asarray(dr), _fd_grad(lambda x: d(jnp.asarray(x), jnp.asarray(f)), r), atol=1e-8)
        np.testing.assert_allclose(np.asarray(df), _fd_grad(lambda x: d(jnp.asarray(r), jnp.asarray(x)), f), atol=1e-8)
        np.testing.assert_allclose(np.asarray(gf), _fd_grad(lambda x: g(jnp.asarray(x), real_logits=jnp.asarray(r)), f),
                                   atol=1e-8)
    # D pushes real logits up and fake logits down; G pushes fake logits up.
    assert np.all(np.asarray(dr) < 0) and np.all(np.asarray(df) > 0) and np.all(np.asarray(gf) < 0)


def test_ragan_d_gradient_includes_the_relativistic_cross_terms():
    """The full derivative (ESRGAN paper/code), not BasicSR's detached means: d/dr gets a fake-term part."""
    r, f = np.array([0.5, -0.5], np.float32), np.array([0.0], np.float32)
    dr = np.asarray(jax.grad(functools.partial(gan_d_loss, kind="ragan"))(r, f))
    sig = lambda x: 1 / (1 + np.exp(-x))  # noqa: E731
    own = -0.5 * (1 - sig(r - f.mean())) / 2  # from b(r - m_f, 1)
    cross = -0.5 * sig(f - r.mean()).mean() / 2  # from b(f - m_r, 0) through m_r
    np.testing.assert_allclose(dr, own + cross, rtol=1e-6)


def test_gan_losses_stable_at_extreme_logits():
    big = np.full((3, 2), 100.0, np.float32)
    assert float(gan_d_loss(big, -big)) == pytest.approx(0.0, abs=1e-30)
    assert float(gan_d_loss(-big, big)) == pytest.approx(200.0, rel=1e-6)
    assert float(gan_g_loss(-big)) == pytest.approx(100.0, rel=1e-6)
    assert float(gan_g_loss(big)) == pytest.approx(0.0, abs=1e-30)
    assert float(gan_d_loss(big, -big, kind="ragan")) == pytest.approx(0.0, abs=1e-30)
    assert float(gan_d_loss(-big, big, kind="ragan")) == pytest.approx(200.0, rel=1e-6)  # (200 + 200) / 2
    assert float(gan_g_loss(-big, kind="ragan", real_logits=big)) == pytest.approx(200.0, rel=1e-6)
    # Saturated gradients: -1/N where G is losing badly (non-saturating), ~0 where it wins.
    g_lose = np.asarray(jax.grad(lambda f: gan_g_loss(f))(-big))
    np.testing.assert_allclose(g_lose, -1.0 / big.size, rtol=1e-6)
    assert np.abs(np.asarray(jax.grad(lambda f: gan_g_loss(f))(big))).max() < 1e-40
    for kind in KINDS:
        for r, f in ((big, -big), (-big, big), (big, big)):
            vals = jax.value_and_grad(lambda a, b: gan_d_loss(a, b, kind=kind), argnums=(0, 1))(r, f)
            vals_g = jax.value_and_grad(lambda b, a: gan_g_loss(b, kind=kind, real_logits=a), argnums=(0, 1))(f, r)
            for leaf in jax.tree.leaves((vals, vals_g)):
                assert np.all(np.isfinite(np.asarray(leaf))), kind


def test_gan_errors_and_jit():
    z = np.zeros((2, 1), np.float32)
    with pytest.raises(ValueError, match="'lsgan2'.*nonsaturating"):
        gan_d_loss(z, z, kind="lsgan2")
    with pytest.raises(ValueError, match="'bogus'"):
        gan_g_loss(z, kind="bogus")
    with pytest.raises(ValueError, match="real_logits"):
        gan_g_loss(z, kind="ragan")
    with pytest.raises(ValueError, match="empty"):
        gan_d_loss(np.zeros((0, 1), np.float32), z)
    assert losses.GAN_KINDS == KINDS + ("ragan_basicsr",)  # detached-mean D gradient: tests/test_gan_losses.py
    r, f = _logits(9), _logits(10)
    for kind in KINDS:
        jd = jax.jit(functools.partial(gan_d_loss, kind=kind))
        jg = jax.jit(functools.partial(gan_g_loss, kind=kind))
        assert float(jd(r, f)) == pytest.approx(float(gan_d_loss(r, f, kind=kind)), rel=1e-6)
        assert float(jg(f, real_logits=r)) == pytest.approx(float(gan_g_loss(f, kind=kind, real_logits=r)), rel=1e-6)
    # real_logits is ignored by the kinds that do not use it; vanilla is the non-saturating G loss.
    assert float(gan_g_loss(f, kind="vanilla", real_logits=r)) == float(gan_g_loss(f, kind="nonsaturating"))
    assert float(gan_g_loss(f, kind="vanilla")) != pytest.approx(-float(_np_softplus(f).mean()))
    assert gan_d_loss(jnp.asarray(r, jnp.bfloat16), jnp.asarray(f, jnp.bfloat16)).dtype == jnp.float32
