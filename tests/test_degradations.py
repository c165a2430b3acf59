"""Real-ESRGAN degradations against independent truths: PyTorch's F.interpolate and BasicSR's filter2D/USMSharp
(goldens from tools/make_degradation_goldens.py), BasicSR's kernel closed forms (numpy, written out here), scipy's
Bessel J1, sampling statistics of the configured distributions, noise variance, determinism and the pair pool."""

from __future__ import annotations

import math
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.special

from jaxgen import degradations as D
from jaxgen.degradations import filtering, kernels, noise, resize

GOLDEN = Path(__file__).parent / "goldens" / "degradations" / "torch_ops.npz"
MODES = {"area": 0, "bilinear": 1, "bicubic": 2}


@pytest.fixture(scope="module")
def golden():
    return dict(np.load(GOLDEN))


def _embed(img: np.ndarray, canvas: tuple[int, int]) -> jnp.ndarray:
    out = np.zeros((img.shape[0], *canvas, img.shape[-1]), np.float32)
    out[:, : img.shape[1], : img.shape[2]] = img
    return jnp.asarray(out)


@pytest.mark.parametrize("mode", list(MODES))
def test_resize_matches_torch_interpolate_on_a_canvas(golden, mode):
    """Valid region == F.interpolate (scale_factor and size calls), zeros elsewhere, from a padded canvas."""
    img = golden["img"]
    h, w = img.shape[1:3]
    canvas = _embed(img, (48, 40))  # the image sits in a larger canvas: sizes are traced values
    fn = jax.jit(lambda x, m, hw_in, hw_out, f: resize.resize_valid(x, m, hw_in, hw_out, (64, 48), scale_factor=f))
    fn_size = jax.jit(lambda x, m, hw_in, hw_out: resize.resize_valid(x, m, hw_in, hw_out, (64, 48)))
    for scale in (0.37, 0.8, 1.0, 1.43):
        want = golden[f"scale_{mode}_{scale}"]
        oh, ow = want.shape[1:3]
        assert (oh, ow) == (math.floor(h * scale), math.floor(w * scale))
        got = np.asarray(fn(canvas, MODES[mode], (h, w), (oh, ow), jnp.float32(scale)))
        np.testing.assert_allclose(got[:, :oh, :ow], want, atol=2e-6)
        assert not got[:, oh:].any() and not got[:, :, ow:].any()
    for key in (k for k in golden if k.startswith(f"size_{mode}_")):
        want = golden[key]
        got = np.asarray(fn_size(canvas, MODES[mode], (h, w), want.shape[1:3]))
        np.testing.assert_allclose(got[:, : want.shape[1], : want.shape[2]], want, atol=2e-6)


def test_filter2d_and_usm_match_basicsr(golden):
    filtered = jax.jit(D.filter2d)(golden["img"], golden["kernels"])  # jitted: one compile, not one per op
    np.testing.assert_allclose(np.asarray(filtered), golden["filter2d"], atol=2e-6)
    np.testing.assert_allclose(np.asarray(jax.jit(D.usm_sharp)(golden["usm_in"])), golden["usm"], atol=2e-5)
    # dynamic-size filtering of a canvas == filtering the crop
    canvas = _embed(golden["img"], (45, 40))
    got = np.asarray(jax.jit(filtering.filter2d_valid)(canvas, golden["kernels"], 37, 29))
    np.testing.assert_allclose(got[:, :37, :29], golden["filter2d"], atol=2e-6)
    assert not got[:, 37:].any() and not got[:, :, 29:].any()


# ------------------------------------------------------------------------------------------ kernels


def _basicsr_kernel(kind: str, k: int, sx: float, sy: float, theta: float, beta: float) -> np.ndarray:
    """BasicSR's bivariate_* kernels, written out with numpy (mesh_grid, sigma_matrix2, pdf)."""
    ax = np.arange(-k // 2 + 1.0, k // 2 + 1.0)
    xx, yy = np.meshgrid(ax, ax)
    grid = np.stack([xx, yy], -1)
    if kind.endswith("iso") and not kind.endswith("aniso"):
        sigma = np.array([[sx**2, 0], [0, sx**2]])
    else:
        d = np.array([[sx**2, 0], [0, sy**2]])
        u = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
        sigma = u @ d @ u.T
    q = np.sum(np.dot(grid, np.linalg.inv(sigma)) * grid, 2)
    if kind in ("iso", "aniso"):
        kern = np.exp(-0.5 * q)
    elif kind.startswith("generalized"):
        kern = np.exp(-0.5 * np.power(q, beta))
    else:
        kern = 1 / (np.power(q, beta) + 1)
    return kern / kern.sum()


_kernel_from_params = jax.jit(kernels.kernel_from_params, static_argnums=7)  # one program for every kind


@pytest.mark.parametrize("kind", kernels.KERNEL_TYPES)
def test_kernels_match_basicsr_closed_forms(kind):
    k, sx, sy, theta, beta = 11, 2.3, 0.9, 0.7, 1.7
    got = np.asarray(_kernel_from_params(kernels.KERNEL_TYPES.index(kind), k, sx, sy, theta, beta, 0.0, 21))
    want = np.pad(_basicsr_kernel(kind, k, sx, sy, theta, beta), 5)
    np.testing.assert_allclose(got, want, atol=1e-6)


def test_sinc_kernel_and_bessel_j1_against_scipy():
    z = np.linspace(0, 45, 301)
    np.testing.assert_allclose(np.asarray(jax.jit(kernels.bessel_j1)(z)), scipy.special.j1(z), atol=2e-6)
    omega, k = 1.3, 13
    r = np.hypot(*np.meshgrid(np.arange(k) - 6.0, np.arange(k) - 6.0))
    with np.errstate(invalid="ignore", divide="ignore"):
        ref = omega * scipy.special.j1(omega * r) / (2 * np.pi * r)
    ref[6, 6] = omega**2 / (4 * np.pi)
    ref = np.pad(ref / ref.sum(), 4)
    sinc = jax.jit(kernels.circular_lowpass_kernel, static_argnums=2)  # one program, not one per eager op
    np.testing.assert_allclose(np.asarray(sinc(omega, k, 21)), ref, atol=1e-6)


def test_sampled_kernel_parameters_follow_the_configured_distributions():
    spec = kernels.KernelSpec(blur_sigma=(0.2, 3.0), sinc_prob=0.1)
    n = 20000
    p = jax.jit(jax.vmap(lambda k: kernels.sample_kernel_params(k, spec)))(jax.random.split(jax.random.key(1), n))
    p = {k: np.asarray(v) for k, v in p.items()}
    se = lambda q: 4 * math.sqrt(q * (1 - q) / n)  # noqa: E731
    assert abs(np.mean(p["kind"] == kernels.SINC) - 0.1) < se(0.1)
    blur = p["kind"] != kernels.SINC
    for i, prob in enumerate(spec.kernel_prob):
        assert abs(np.mean(p["kind"][blur] == i) - prob) < se(prob) * 1.1, kernels.KERNEL_TYPES[i]
    assert set(np.unique(p["size"])) == set(range(7, 22, 2))
    assert p["sx"].min() >= 0.2 and p["sx"].max() <= 3.0 and abs(p["sx"].mean() - 1.6) < 0.03
    gen = (p["kind"] == 2) | (p["kind"] == 3)
    beta = p["beta"][gen]
    assert abs(np.mean(beta < 1) - 0.5) < 0.05 and beta.min() >= 0.5 and beta.max() <= 4.0
    plat = p["beta"][(p["kind"] == 4) | (p["kind"] == 5)]
    assert plat.min() >= 1.0 and plat.max() <= 2.0  # betap_range [1, 2]: the "below 1" branch is the point 1
    sinc = p["omega_c"][~blur]
    small = p["size"][~blur] < 13
    assert sinc[small].min() >= math.pi / 3 - 1e-6 and sinc[~small].min() >= math.pi / 5 - 1e-6


# ------------------------------------------------------------------------------------------ noise


def test_gaussian_noise_variance_and_gray_channels():
    img = jnp.full((32, 64, 64, 3), 0.5)  # gray images: 4096 samples -> std within ~1.1% (1 sigma)
    out, prm = jax.jit(lambda k: noise.add_gaussian_noise(k, img, (10.0, 20.0), 0.5, return_params=True))(
        jax.random.key(3))
    out, prm = np.asarray(out), {k: np.asarray(v) for k, v in prm.items()}
    d = out - 0.5
    std = d.reshape(32, -1).std(axis=1) * 255
    np.testing.assert_allclose(std, prm["sigma"], rtol=0.05)
    gray = prm["gray"] > 0
    assert 0 < gray.sum() < 32
    assert np.all(np.ptp(d[gray], axis=-1) == 0) and np.all(np.ptp(d[~gray], axis=-1) > 0)


def test_poisson_noise_variance_matches_v_levels():
    """Var of Poisson(v x)/v is x / v; v = 2^ceil(log2(#distinct 8-bit values))."""
    rng = np.random.default_rng(0)
    img = (rng.integers(0, 200, (2, 48, 48, 3)) / 255.0).astype(np.float32)  # ~200 distinct values -> v = 256
    img[:, :24] = 100 / 255
    n, out = jax.jit(lambda k, x: (noise.count_distinct_u8(jnp.round(x * 255)),
                                   noise.add_poisson_noise(k, x, (1.0, 1.0), 0.0)))(jax.random.key(4), jnp.asarray(img))
    assert int(n[0]) == len(np.unique(np.round(img[0] * 255)))
    out = np.asarray(out)
    d = (out - img)[:, :24]  # region at x = 100/255: var = x / 256
    assert abs(d.var() / ((100 / 255) / 256) - 1) < 0.08


# ------------------------------------------------------------------------------------------ pipeline


@pytest.fixture(scope="module")
def per_image_runs():
    """One compiled pipeline serves the determinism and the per-image tests: the default settings with
    ``groups = B = 8`` (per-image draws) on one HR image repeated 8 times; ``(lq, info)`` for keys 0, 0, 1."""
    c = D.default_degradation_config()
    c.groups = 8
    cfg = D.DegradationConfig.from_config(c, 4)
    gt = jnp.asarray(np.repeat(np.random.default_rng(7).random((1, 16, 16, 3), np.float32), 8, axis=0))
    fn = jax.jit(lambda k, x: D.degrade(k, x, cfg, return_info=True))
    runs = [jax.tree.map(np.asarray, fn(jax.random.key(s), gt)) for s in (0, 0, 1)]
    return cfg, gt, runs


def test_degrade_is_deterministic_per_key_and_8_bit(per_image_runs):
    cfg, _, runs = per_image_runs
    (a, info), (b, _), (c, _) = runs
    assert a.shape == (8, 4, 4, 3) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    np.testing.assert_allclose(a * 255, np.round(a * 255), atol=1e-4)  # 8-bit values
    assert a.min() >= 0 and a.max() <= 1
    assert all(v.shape[0] == cfg.groups for v in jax.tree.leaves(info))


def test_default_groups_are_the_official_four_gpu_batches():
    """train_realesrgan_x4plus.yml: 4 GPUs x 12 images, each GPU's feed_data drawing its own resize/noise-type/
    blur2/order choices (realesrgan_model.py@a4abfb2) -> 4 groups; each group draws its own."""
    cfg = D.DegradationConfig.from_config(D.default_degradation_config(), 4)
    assert cfg.groups == 4
    gt = jnp.asarray(np.random.default_rng(6).random((8, 16, 16, 3), np.float32))
    draw = jax.jit(lambda k: D.degrade(k, gt, cfg, return_info=True)[1])  # one program for the 3 keys
    draws = [draw(jax.random.key(s)) for s in range(3)]
    assert all(v.shape[0] == 4 for d in draws for v in jax.tree.leaves(d))
    factors = np.concatenate([np.asarray(d["factor1"]) for d in draws])
    assert len(np.unique(factors)) > 6  # 12 group draws, mostly distinct (10% of them 'keep' = 1.0)
    assert np.asarray(draws[0]["mode1"]).shape == (4,)  # per call: one per group
    q = np.asarray(draws[0]["quality1"])  # per image: jpeg_p = out.new_zeros(out.size(0)).uniform_(...)
    assert q.shape == (4, 2) and np.all(q[:, 0] != q[:, 1])


def test_per_image_groups_draw_every_image_independently(per_image_runs):
    _, gt, runs = per_image_runs
    lq, info = runs[0]
    assert all(v.shape[0] == 8 for v in jax.tree.leaves(info))
    assert len({lq[i].tobytes() for i in range(8)}) == 8  # the same HR image, 8 different degradations
    c = D.default_degradation_config()
    c.groups = 3
    with pytest.raises(ValueError, match="groups=3"):
        D.degrade(jax.random.key(0), gt, D.DegradationConfig.from_config(c, 4))


def test_degrade_config_errors():
    c = D.default_degradation_config()
    c.resize_range = (0.5, 0.9)
    with pytest.raises(ValueError, match="resize_range"):
        D.DegradationConfig.from_config(c, 4)
    c = D.default_degradation_config()
    c.kernel_list = ("iso", "bogus", "aniso", "a", "b", "c")
    with pytest.raises(ValueError, match="kernel_list"):
        D.DegradationConfig.from_config(c, 4)


def test_pair_pool_fills_then_swaps():
    pool = D.pool_init(4, (2, 2, 2, 3), (2, 4, 4, 3))
    batches = [(jnp.full((2, 2, 2, 3), i / 255), jnp.full((2, 4, 4, 3), i / 255)) for i in range(1, 5)]
    update = jax.jit(D.pool_update)
    seen = []
    for i, (lq, gt) in enumerate(batches):
        pool, out_lq, out_gt = update(pool, lq, gt, jax.random.key(i))
        seen.append(np.round(np.asarray(out_gt)[:, 0, 0, 0] * 255).astype(int).tolist())
    assert seen[0] == [1, 1] and seen[1] == [2, 2]  # filling: train on the batch itself
    assert int(pool["ptr"]) == 4
    stored = sorted(np.asarray(pool["gt"])[:, 0, 0, 0].tolist())
    # after the two swaps the pool holds 4 of {1,1,2,2,3,3,4,4} minus what was handed out
    handed = seen[2] + seen[3]
    assert sorted(stored + handed) == [1, 1, 2, 2, 3, 3, 4, 4]
