"""Closed-form checks of the style-transfer building blocks: Gram matrices, AdaIN statistics (plain, masked,
interpolated), colour preservation (luminance transfer, CORAL), the TV term's gradient, Gatys targets."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgen.losses import gram_matrix
from jaxgen.style import adain, adain_interpolate, calc_mean_std, coral, masked_adain, mix_alpha, original_colors
from jaxgen.style import rgb_to_yuv, tv_squared, yuv_to_rgb


def test_gram_matrix_of_constant_channels_is_outer_product_over_channels():
    a = np.array([1.0, -2.0, 3.0, 0.5], np.float32)
    feat = np.broadcast_to(a, (2, 5, 7, 4)).copy()
    g = np.asarray(gram_matrix(jnp.asarray(feat)))
    np.testing.assert_allclose(g, np.broadcast_to(np.outer(a, a) / 4, (2, 4, 4)), rtol=1e-6)


def test_gram_matrix_matches_explicit_sum():
    rng = np.random.default_rng(0)
    f = rng.standard_normal((1, 3, 4, 5)).astype(np.float32)
    expected = np.einsum("hwc,hwd->cd", f[0].astype(np.float64), f[0].astype(np.float64)) / (5 * 3 * 4)
    np.testing.assert_allclose(np.asarray(gram_matrix(jnp.asarray(f)))[0], expected, rtol=1e-5, atol=1e-6)


def _np_stats(x: np.ndarray, eps: float = 1e-5) -> tuple[np.ndarray, np.ndarray]:
    f = x.reshape(x.shape[0], -1, x.shape[-1]).astype(np.float64)
    return f.mean(1), np.sqrt(f.var(1, ddof=1) + eps)


def test_adain_output_has_the_style_channel_mean_and_std():
    rng = np.random.default_rng(1)
    c = (rng.standard_normal((2, 6, 5, 4)) * 3 + 1).astype(np.float32)
    s = (rng.standard_normal((2, 9, 7, 4)) * rng.uniform(0.5, 4, 4) + rng.uniform(-2, 2, 4)).astype(np.float32)
    out = np.asarray(adain(jnp.asarray(c), jnp.asarray(s)))
    out_mean = out.reshape(2, -1, 4).mean(1)
    out_std = out.reshape(2, -1, 4).std(1, ddof=1)
    s_mean, s_std = _np_stats(s)
    _, c_std_eps = _np_stats(c)
    c_std = c.reshape(2, -1, 4).std(1, ddof=1)
    np.testing.assert_allclose(out_mean, s_mean, atol=1e-5)
    # unbiased std of the output = s_std * c_std / sqrt(c_var + eps) (the eps of calc_mean_std)
    np.testing.assert_allclose(out_std, s_std * c_std / c_std_eps, rtol=1e-5)
    m, sd = calc_mean_std(jnp.asarray(s))
    np.testing.assert_allclose(np.asarray(m)[:, 0, 0], s_mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(sd)[:, 0, 0], s_std, rtol=1e-5)


def test_masked_adain_gives_each_region_its_style_statistics():
    rng = np.random.default_rng(2)
    c = rng.standard_normal((1, 6, 8, 3)).astype(np.float32)
    fg = (rng.standard_normal((1, 5, 5, 3)) * 2 + 5).astype(np.float32)
    bg = (rng.standard_normal((1, 5, 5, 3)) * 0.5 - 3).astype(np.float32)
    mask = np.zeros((6, 8), np.float32)
    mask[:, :3] = 1
    out = np.asarray(masked_adain(jnp.asarray(c), jnp.asarray(fg), jnp.asarray(bg), jnp.asarray(mask)))
    for region, style in ((mask > 0.5, fg), (mask <= 0.5, bg)):
        vals = out[0][region]
        np.testing.assert_allclose(vals.mean(0), _np_stats(style)[0][0], atol=1e-4)
        np.testing.assert_allclose(vals.std(0, ddof=1), _np_stats(style)[1][0], rtol=1e-3)


def test_interpolation_and_alpha_limits():
    rng = np.random.default_rng(3)
    c, s1, s2 = (jnp.asarray(rng.standard_normal((1, 4, 4, 3)), jnp.float32) for _ in range(3))
    np.testing.assert_allclose(adain_interpolate(c, [s1, s2], [2.0, 0.0]), adain(c, s1), atol=1e-6)
    both = adain_interpolate(c, [s1, s2], [1.0, 3.0])
    np.testing.assert_allclose(both, 0.25 * adain(c, s1) + 0.75 * adain(c, s2), atol=1e-5)
    np.testing.assert_allclose(mix_alpha(adain(c, s1), c, 0.0), c)
    with pytest.raises(ValueError, match="alpha"):
        mix_alpha(c, c, 1.5)


def test_original_colors_keeps_content_chroma_and_stylized_luminance():
    rng = np.random.default_rng(4)
    content = rng.uniform(0.2, 0.8, (8, 9, 3)).astype(np.float64)
    stylized = rng.uniform(0.2, 0.8, (8, 9, 3)).astype(np.float64)
    out = original_colors(stylized, content)
    yuv_out, yuv_c, yuv_s = rgb_to_yuv(out), rgb_to_yuv(content), rgb_to_yuv(stylized)
    np.testing.assert_allclose(yuv_out[..., 1:], yuv_c[..., 1:], atol=2e-4)  # Torch7's 5-digit coefficients
    np.testing.assert_allclose(yuv_out[..., 0], yuv_s[..., 0], atol=2e-4)
    np.testing.assert_allclose(yuv_to_rgb(rgb_to_yuv(content)), content, atol=2e-4)
    gray = np.repeat(content[..., :1], 3, -1)  # a gray content has no chroma: the output is gray too
    out_gray = original_colors(stylized, gray)
    np.testing.assert_allclose(out_gray[..., 0], out_gray[..., 2], atol=5e-4)


def test_coral_matches_target_mean_and_normalised_covariance():
    rng = np.random.default_rng(5)
    src = rng.uniform(0, 1, (20, 30, 3)) * [1.0, 0.3, 0.6]
    tgt = rng.uniform(0, 1, (25, 20, 3)) @ np.array([[0.8, 0.1, 0.1], [0.2, 0.5, 0.3], [0.0, 0.3, 0.7]])
    out = coral(src, tgt).reshape(-1, 3).astype(np.float64)
    t = tgt.reshape(-1, 3)
    np.testing.assert_allclose(out.mean(0), t.mean(0), atol=1e-5)
    corr = lambda x: np.corrcoef(x.T)  # noqa: E731
    np.testing.assert_allclose(corr(out), corr(t), atol=0.02)  # the official "+ I" makes it approximate
    # the official un-normalised covariances scale the std by sqrt((N_t - 1) / (N_s - 1)) (500 vs 600 pixels)
    np.testing.assert_allclose(out.std(0, ddof=1), t.std(0, ddof=1) * np.sqrt(499 / 599), rtol=0.01)
    same = coral(src[:, :25], tgt).reshape(-1, 3)  # equal pixel counts: the target's std
    np.testing.assert_allclose(same.std(0, ddof=1), t.std(0, ddof=1), rtol=0.01)


def _jcjohnson_tv_grad(x: np.ndarray, strength: float) -> np.ndarray:
    """neural_style.lua ``TVLoss:updateGradInput`` on one [C,H,W] image, transcribed (0-based indices)."""
    grad = np.zeros_like(x)
    x_diff = x[:, :-1, :-1] - x[:, :-1, 1:]
    y_diff = x[:, :-1, :-1] - x[:, 1:, :-1]
    grad[:, :-1, :-1] += x_diff + y_diff
    grad[:, :-1, 1:] -= x_diff
    grad[:, 1:, :-1] -= y_diff
    return grad * strength


def test_tv_gradient_is_neural_styles():
    rng = np.random.default_rng(6)
    x = rng.standard_normal((1, 5, 7, 3))
    g = np.asarray(jax.grad(lambda z: 1e-3 * tv_squared(z))(jnp.asarray(x, jnp.float32)))
    expected = _jcjohnson_tv_grad(x[0].transpose(2, 0, 1), 1e-3).transpose(1, 2, 0)
    np.testing.assert_allclose(g[0], expected, rtol=1e-5, atol=1e-8)
    const = np.ones((1, 4, 4, 3), np.float32)
    assert float(tv_squared(jnp.asarray(const))) == 0.0


def test_bad_inputs_are_value_errors():
    with pytest.raises(ValueError, match="mask"):
        masked_adain(jnp.zeros((1, 4, 4, 3)), jnp.zeros((1, 4, 4, 3)), jnp.zeros((1, 4, 4, 3)), jnp.zeros((3, 3)))
    with pytest.raises(ValueError, match="weights"):
        adain_interpolate(jnp.zeros((1, 4, 4, 3)), [jnp.zeros((1, 4, 4, 3))], [1.0, 2.0])
    with pytest.raises(ValueError, match="channels"):
        adain(jnp.zeros((1, 4, 4, 3)), jnp.zeros((1, 4, 4, 2)))
