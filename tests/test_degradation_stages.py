"""Real-ESRGAN's second degradation stage and JPEG qualities against independent truths
(``RealESRGANModel.feed_data``, xinntao/Real-ESRGAN@a4abfb2979a7bbff3f69f58f58ae324608821e27
``realesrgan/models/realesrgan_model.py``): with the random choices forced (probabilities 0/1, point ranges), the
pipeline equals the by-hand composition of its stages built from the separately tested parts (closed-form Gaussian
kernels, ``filter2d``/``resize_valid`` checked against PyTorch goldens, ``jpeg_compress``); the second noise has the
configured strength; the JPEG qualities are drawn per image from their configured ranges."""

from __future__ import annotations


import jax
import jax.numpy as jnp
import numpy as np

from jaxgen import degradations as D


def _forced(**over) -> D.DegradationConfig:
    """Every choice forced: iso Gaussian kernels of size 7 (sigma 0.2 first: ~identity), keep the size in both
    resizes, Gaussian noise of sigma 0, no final sinc; the rest from ``over``."""
    c = D.default_degradation_config()
    one_iso = (1.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    for suffix, sigma in (("", (0.2, 0.2)), ("2", (2.0, 2.0))):
        c["blur_kernel_size" + suffix], c["kernel_prob" + suffix], c["sinc_prob" + suffix] = 7, one_iso, 0.0
        c["blur_sigma" + suffix] = sigma
    c.resize_prob = c.resize_prob2 = (0.0, 0.0, 1.0)
    c.gaussian_noise_prob = c.gaussian_noise_prob2 = 1.0
    c.noise_range = c.noise_range2 = (0.0, 0.0)
    c.final_sinc_prob, c.second_blur_prob, c.groups = 0.0, 1.0, 1
    for k, v in over.items():
        c[k] = v
    return D.DegradationConfig.from_config(c, 4)


def _gauss(sigma: float, k: int = 7) -> np.ndarray:
    """BasicSR ``bivariate_Gaussian`` with sigma_x = sigma_y (``basicsr/data/degradations.py``), normalised."""
    ax = np.arange(k) - (k - 1) / 2
    g = np.exp(-0.5 * (ax[:, None] ** 2 + ax[None, :] ** 2) / sigma**2)
    return (g / g.sum()).astype(np.float32)


# One forced configuration and one batch shape serve both tests, so the pipeline (a ~13 s compile) is compiled
# once: the second noise is a gray Gaussian of sigma 20, the JPEG qualities per-image draws from their ranges.
CFG = _forced(noise_range2=(20.0, 20.0), gray_noise_prob2=1.0, jpeg_range=(30.0, 95.0), jpeg_range2=(90.0, 95.0))
B, H = 64, 32
CANVAS2 = 16  # the pipeline's second-stage canvas: H/4 * max(resize_range2) = 9.6 px, rounded up to 16


_degrade = jax.jit(lambda k, x: D.degrade(k, x, CFG, return_info=True))  # compiled on first call


def test_second_stage_equals_the_by_hand_composition():
    """blur(k1) -> keep -> JPEG(q1) | blur(k2) -> resize to H/4 (mode2) -> gray noise | resize (same size) + pulse
    -> JPEG(q3) -> 8 bit, with the qualities the pipeline drew per image and its second-noise key. Removing the
    second blur, or using another quality at either JPEG, or dropping the noise, breaks the equality."""
    b, h = B, H
    rng = np.random.default_rng(0)
    gt = jnp.asarray(np.clip(rng.random((b, h, h, 3)) * 0.6 + np.linspace(0, 0.4, h)[None, None, :, None], 0, 1),
                     jnp.float32)
    key = jax.random.key(3)
    lq, info = _degrade(key, gt)
    lq = np.asarray(lq)
    assert bool(info["blur2"][0]) and int(info["resize2"][0]) == 2 and int(info["size2"][0]) == h // 4
    assert bool(info["gaussian2"][0])
    q1, q3 = np.asarray(info["quality1"][0]), np.asarray(info["quality3"][0])
    mode2 = int(info["mode2"][0])
    k_noise2 = jax.random.split(key, 7)[5]  # _degrade_batch's key for the second noise (groups = 1)

    @jax.jit  # one program for the composition and its mutations (switches and qualities are traced)
    def by_hand_jit(blur2: jax.Array, noise2: jax.Array, quality1: jax.Array, quality3: jax.Array) -> jax.Array:
        k1 = jnp.asarray(np.stack([_gauss(0.2)] * b))
        x = D.jpeg_compress(jnp.clip(D.filter2d(gt, k1), 0, 1), quality1, flavour="diffjpeg")
        x = jnp.where(blur2, D.filter2d(x, jnp.asarray(np.stack([_gauss(2.0)] * b))), x)
        x = D.resize_valid(x, mode2, (h, h), (h // 4, h // 4), (h // 4, h // 4))
        # BasicSR's gray Gaussian noise (tested on its own), drawn on the pipeline's zero-padded canvas
        canvas = jnp.zeros((b, CANVAS2, CANVAS2, 3)).at[:, : h // 4, : h // 4].set(x)
        x = jnp.where(noise2, D.add_gaussian_noise(k_noise2, canvas, (20.0, 20.0), 1.0)[:, : h // 4, : h // 4], x)
        x = D.jpeg_compress(jnp.clip(x, 0, 1), quality3, flavour="diffjpeg")
        return jnp.clip(jnp.round(x * 255), 0, 255) / 255

    def by_hand(blur2: bool, noise2: bool, quality1: np.ndarray, quality3: np.ndarray) -> np.ndarray:
        return np.asarray(by_hand_jit(jnp.asarray(blur2), jnp.asarray(noise2), jnp.asarray(quality1), jnp.asarray(quality3)))

    want = by_hand(True, True, q1, q3)
    diff = np.abs(lq - want) * 255
    assert diff.max() <= 1.0 + 1e-3 and np.mean(diff > 0.5) < 0.02, (diff.max(), np.mean(diff > 0.5))
    other_q1 = np.where(q1 < 62.5, 95.0, 30.0).astype(np.float32)  # >= 32.5 away from the drawn quality
    for wrong in (by_hand(False, True, q1, q3), by_hand(True, False, q1, q3), by_hand(True, True, other_q1, q3),
                  by_hand(True, True, q1, np.full_like(q3, 60.0))):
        assert np.mean(np.abs(lq - wrong) * 255 > 0.5) > 0.2  # each mutation moves most pixels


def test_second_noise_has_the_configured_strength_and_quality_draws_follow_their_ranges():
    """A flat gray batch: only the second noise (gray, sigma 20) gives the LR any spread, so its std is
    ~20/255 (the high-quality final JPEG and 8-bit rounding move it a few %); the first/final JPEG qualities are
    per-image draws of U[jpeg_range] / U[jpeg_range2]."""
    b = B
    gt = jnp.full((b, H, H, 3), 0.5, jnp.float32)
    q1, q3, stds = [], [], []
    for seed in range(2):
        lq, info = _degrade(jax.random.key(seed), gt)
        lq = np.asarray(lq)
        stds.append(lq.reshape(b, -1).std(axis=1) * 255)
        q1.append(np.asarray(info["quality1"]).ravel())
        q3.append(np.asarray(info["quality3"]).ravel())
    std = np.concatenate(stds)
    assert 17.0 < np.median(std) < 21.5, np.median(std)  # noise removed: ~0.5; sigma from noise_range: ~0-30
    q1, q3 = np.concatenate(q1), np.concatenate(q3)
    assert q1.shape == (2 * b,) and len(np.unique(q1)) == 2 * b  # per image, never fixed
    assert q1.min() >= 30 and q1.max() <= 95 and abs(q1.mean() - 62.5) < 4 * 18.76 / np.sqrt(2 * b)
    assert abs(q1.std() - 18.76) < 3.5 and np.mean(q1 < 46.25) > 0.12 and np.mean(q1 > 78.75) > 0.12  # spread
    assert q3.min() >= 90 and q3.max() <= 95 and abs(q3.mean() - 92.5) < 4 * 1.443 / np.sqrt(2 * b)
    assert len(np.unique(q3)) == 2 * b
