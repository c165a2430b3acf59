"""jaxgen.metrics: PSNR/SSIM against closed forms and scikit-image."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.ndimage import gaussian_filter
from skimage.color import rgb2ycbcr
from skimage.metrics import structural_similarity

from jaxgen.metrics import psnr, psnr_ssim_any_size, ssim
from jaxgen.metrics import psnr_ssim as psnr_ssim_module


def _smooth_pair(seed: int, shape: tuple[int, ...], noise: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """float64 image with structure (smoothed noise) in [0,1] and a noisy version of it."""
    rng = np.random.default_rng(seed)
    sigma = (1.5, 1.5) + (0,) * (len(shape) - 2)
    a = gaussian_filter(rng.random(shape), sigma)
    a = (a - a.min()) / (a.max() - a.min())
    b = np.clip(a + noise * rng.standard_normal(shape), 0, 1)
    return a, b


def _skimage_ssim(a: np.ndarray, b: np.ndarray, data_range: float = 1.0) -> float:
    return structural_similarity(a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                 data_range=data_range, channel_axis=-1)


# ------------------------------------------------------------------------------------------------------ psnr


def test_psnr_constant_offset_closed_form():
    t = np.full((2, 8, 9, 3), 0.3, np.float32)
    p = t + np.array([0.1, 0.01], np.float32)[:, None, None, None]
    out = psnr(p, t)
    assert out.shape == (2,) and out.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(out), [20.0, 40.0], rtol=1e-5)  # 10 log10(1 / d^2)
    out255 = psnr(t * 255 + 5, t * 255, max_val=255.0)
    np.testing.assert_allclose(np.asarray(out255), 20 * np.log10(255 / 5), rtol=1e-5)


def test_psnr_identical_is_inf():
    x = np.random.default_rng(0).random((1, 5, 5, 1)).astype(np.float32)
    assert np.isposinf(np.asarray(psnr(x, x))).all()


def test_psnr_crop_border():
    t = np.zeros((1, 10, 12, 3), np.float32)
    p = t.copy()
    p[0, :2, :, :] = 0.5  # errors only in the 2-pixel top border
    p[0, :, -2:, 1] = 0.5  # and in the right border
    assert np.isposinf(float(psnr(p, t, crop_border=2)[0]))
    assert np.isfinite(float(psnr(p, t, crop_border=1)[0]))
    p[0, 4, 5, 2] = 0.2  # one interior error: MSE = 0.04 / (6 * 8 * 3)
    np.testing.assert_allclose(float(psnr(p, t, crop_border=2)[0]), 10 * np.log10(6 * 8 * 3 / 0.04), rtol=1e-5)


def test_psnr_y_channel_hand_computation():
    t = np.full((1, 6, 6, 3), 0.5, np.float32)
    p = t.copy()
    p[..., 1] += 0.1  # dG = 0.1 -> dY = 128.553 * 0.1 on [0,255]
    dy = 128.553 * 0.1 / 255
    np.testing.assert_allclose(float(psnr(p, t, y_channel=True)[0]), -20 * np.log10(dy), rtol=1e-5)
    np.testing.assert_allclose(float(psnr(p * 255, t * 255, y_channel=True, max_val=255.0)[0]),
                               -20 * np.log10(dy), rtol=1e-5)  # Y scaled with max_val
    rng = np.random.default_rng(1)  # random images against skimage's rgb2ycbcr
    a, b = rng.random((2, 1, 9, 7, 3))
    ya, yb = rgb2ycbcr(a[0])[..., 0], rgb2ycbcr(b[0])[..., 0]
    expected = 10 * np.log10(255**2 / np.mean((ya[1:-1, 1:-1] - yb[1:-1, 1:-1]) ** 2))
    np.testing.assert_allclose(float(psnr(a, b, y_channel=True, crop_border=1)[0]), expected, rtol=1e-5)


def test_y_channel_passes_gray_through():
    a, b = np.random.default_rng(2).random((2, 2, 12, 12, 1)).astype(np.float32)
    np.testing.assert_array_equal(np.asarray(psnr(a, b, y_channel=True)), np.asarray(psnr(a, b)))
    np.testing.assert_array_equal(np.asarray(ssim(a, b, y_channel=True)), np.asarray(ssim(a, b)))


# ------------------------------------------------------------------------------------------------------ ssim


def test_ssim_constant_images_closed_form():
    # sigma = cov = 0: SSIM = (2ab + C1) / (a^2 + b^2 + C1), C1 = (0.01 L)^2
    a, b = 0.2, 0.6
    x, y = np.full((1, 16, 16, 1), a, np.float32), np.full((1, 16, 16, 1), b, np.float32)
    c1 = 0.01**2
    np.testing.assert_allclose(float(ssim(x, y)[0]), (2 * a * b + c1) / (a * a + b * b + c1), rtol=2e-6)


@pytest.mark.parametrize("shape", [(23, 31, 1), (20, 17, 3)])
def test_ssim_matches_skimage(shape):
    a, b = _smooth_pair(3, shape)
    expected = _skimage_ssim(a, b)
    assert 0.2 < expected < 0.95  # a non-trivial comparison
    with jax.enable_x64(True):
        out64 = ssim(a[None], b[None])
        assert out64.dtype == jnp.float64
        np.testing.assert_allclose(float(out64[0]), expected, rtol=0, atol=1e-12)
    out32 = ssim(a[None].astype(np.float32), b[None].astype(np.float32))
    assert out32.dtype == jnp.float32
    np.testing.assert_allclose(float(out32[0]), expected, rtol=0, atol=1e-6)


def test_ssim_matches_skimage_y_channel_crop_and_max_val():
    a, b = _smooth_pair(4, (24, 26, 3))
    ya, yb = rgb2ycbcr(a)[..., 0][3:-3, 3:-3], rgb2ycbcr(b)[..., 0][3:-3, 3:-3]
    expected = structural_similarity(ya, yb, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                     data_range=255)
    with jax.enable_x64(True):
        np.testing.assert_allclose(float(ssim(a[None], b[None], y_channel=True, crop_border=3)[0]), expected,
                                   rtol=0, atol=1e-12)
        np.testing.assert_allclose(
            float(ssim(a[None] * 255, b[None] * 255, y_channel=True, crop_border=3, max_val=255.0)[0]), expected,
            rtol=0, atol=1e-12)


def test_ssim_identity_and_batch():
    a, b = _smooth_pair(5, (3, 16, 18, 3))
    a, b = a.astype(np.float32), b.astype(np.float32)
    np.testing.assert_allclose(np.asarray(ssim(a, a)), 1.0, atol=1e-6)
    batch = np.asarray(ssim(a, b))
    assert batch.shape == (3,)
    np.testing.assert_allclose(batch, [float(ssim(a[i:i + 1], b[i:i + 1])[0]) for i in range(3)], rtol=1e-6)
    assert len(set(batch.tolist())) == 3


def test_jit_and_grad():
    a, b = _smooth_pair(6, (2, 16, 16, 3))
    p, t = jnp.asarray(a, jnp.float32), jnp.asarray(b, jnp.float32)
    f = jax.jit(lambda x, y: (psnr(x, y, crop_border=1, y_channel=True), ssim(x, y, crop_border=1)))
    ps, ss = f(p, t)
    np.testing.assert_allclose(np.asarray(ps), np.asarray(psnr(p, t, crop_border=1, y_channel=True)), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(ss), np.asarray(ssim(p, t, crop_border=1)), rtol=1e-6)
    ssim_y = jax.jit(lambda x: ssim(x, t, y_channel=True).sum())  # jitted: one program, not one per eager op
    g = jax.jit(jax.grad(ssim_y))(p)
    assert g.shape == p.shape and np.isfinite(np.asarray(g)).all() and float(jnp.abs(g).max()) > 0
    # one gradient step toward the target increases SSIM
    assert float(ssim_y(p + 0.5 * g)) > float(ssim_y(p))
    gp = jax.jit(jax.grad(lambda x: psnr(x, t).sum()))(p)
    assert np.isfinite(np.asarray(gp)).all()


@pytest.mark.parametrize("shape, crop, y_channel", [((23, 31, 1), 0, False), ((24, 26, 3), 3, True),
                                                    ((40, 19, 3), 2, False)])
def test_any_size_metrics_are_psnr_and_ssim(shape, crop, y_channel):
    """The padded, masked form is the same definition: equal to the sliced one up to summation order (exactly
    so in float64), a row or column too many or too few in a mask would show at 1e-12."""
    a, b = _smooth_pair(7, shape)
    kw = dict(crop_border=crop, y_channel=y_channel)
    with jax.enable_x64(True):
        p64, s64 = psnr_ssim_any_size(a[None], b[None], **kw)
        np.testing.assert_allclose(float(p64[0]), float(psnr(a[None], b[None], **kw)[0]), rtol=1e-12)
        np.testing.assert_allclose(float(s64[0]), float(ssim(a[None], b[None], **kw)[0]), rtol=0, atol=1e-12)
    a32, b32 = a[None].astype(np.float32), b[None].astype(np.float32)
    p32, s32 = psnr_ssim_any_size(a32, b32, **kw)
    assert p32.dtype == s32.dtype == jnp.float32
    np.testing.assert_allclose(float(p32[0]), float(psnr(a32, b32, **kw)[0]), rtol=1e-6)
    np.testing.assert_allclose(float(s32[0]), float(ssim(a32, b32, **kw)[0]), rtol=0, atol=1e-6)


def test_any_size_metrics_compile_once_per_size_bucket():
    a, b = _smooth_pair(8, (70, 90, 3))
    a, b = a.astype(np.float32), b.astype(np.float32)
    psnr_ssim_any_size(a[None], b[None], crop_border=2, y_channel=True)
    before = psnr_ssim_module._psnr_ssim_masked._cache_size()
    for h, w, crop in [(64, 80, 4), (33, 90, 3), (70, 41, 2)]:  # other sizes and crops in the same 128 bucket
        psnr_ssim_any_size(a[None, :h, :w], b[None, :h, :w], crop_border=crop, y_channel=True)
    assert psnr_ssim_module._psnr_ssim_masked._cache_size() == before
    with pytest.raises(ValueError, match="at least 11x11"):
        psnr_ssim_any_size(a[None, :16], b[None, :16], crop_border=3)
    with pytest.raises(ValueError, match="shapes differ"):
        psnr_ssim_any_size(a[None], b[None, :, :89])


def test_metric_input_errors():
    x = np.zeros((1, 16, 16, 3), np.float32)
    for metric in (psnr, ssim):
        with pytest.raises(ValueError, match="shapes differ"):
            metric(x, x[:, :, :15])
        with pytest.raises(ValueError, match=r"\[B,H,W,C\]"):
            metric(x[0], x[0])
        with pytest.raises(ValueError, match=r"C in \{1,3\}"):
            metric(x[..., :2], x[..., :2])
    with pytest.raises(ValueError, match="at least 11x11"):
        ssim(x, x, crop_border=3)
    with pytest.raises(ValueError, match="crop_border"):
        psnr(x, x, crop_border=-1)
