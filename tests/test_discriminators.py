"""Discriminators: shapes, closed-form parameter counts, receptive field, a reference forward pass, jit/grad."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgen.models.discriminators import DISCRIMINATORS, PatchGAN, VGGStyleDiscriminator, patchgan_output_size
from tests.param_utils import FAST_COMPILE, numpy_params


def _key(seed: int = 0) -> jax.Array:
    """A cheap-to-compile PRNG key (threefry init programs take seconds to compile on CPU)."""
    return jax.random.key(seed, impl="rbg")


def _init(module, x) -> dict:
    return jax.jit(module.init, compiler_options=FAST_COMPILE)(_key(), x)["params"]


def _random_params(module, shape, seed: int = 0) -> dict:
    """Params of the right structure drawn with numpy (skips compiling an init program); norm scales near 1."""
    return numpy_params(_abstract_params(module, shape), seed, scale=0.05, leaves={"scale": (1.0, 0.05)})


def _n_params(tree) -> int:
    return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(tree))


def _abstract_params(module, shape) -> dict:
    return jax.eval_shape(module.init, jax.random.key(0), jax.ShapeDtypeStruct(shape, jnp.float32))["params"]


def _patchgan_closed_form(c: int, ndf: int, n_layers: int) -> int:
    """Official NLayerDiscriminator with InstanceNorm (no affine): 4x4 convs, all with a bias."""
    chans = [c, ndf] + [ndf * min(2**n, 8) for n in range(1, n_layers + 1)] + [1]
    return sum(16 * a * b + b for a, b in zip(chans, chans[1:]))


def _vgg_official(c: int, nf: int, size: int) -> int:
    """BasicSR VGGStyleDiscriminator: bias-free convs + affine BatchNorm (2 params/channel) after all but conv0_0."""
    n = 9 * c * nf + nf  # conv0_0 (bias, no BN)
    layers, prev = [(nf, nf, 4)], nf
    for m in (2, 4, 8, 8) + ((8,) if size == 256 else ()):
        layers += [(prev, nf * m, 3), (nf * m, nf * m, 4)]
        prev = nf * m
    n += sum(k * k * a * b + 2 * b for a, b, k in layers)
    return n + (nf * 8 * 4 * 4 * 100 + 100) + (100 + 1)


def test_patchgan_official_param_count():
    assert _patchgan_closed_form(3, 64, 3) == 2_764_737
    assert _n_params(_abstract_params(PatchGAN(), (1, 256, 256, 3))) == 2_764_737
    assert _n_params(_abstract_params(PatchGAN(norm="none"), (1, 256, 256, 3))) == 2_764_737  # norm has no params


@pytest.mark.parametrize("c,ndf,n_layers", [(1, 8, 1), (3, 16, 2), (4, 8, 4), (3, 8, 5)])
def test_patchgan_param_count_closed_form(c, ndf, n_layers):
    module = PatchGAN(num_in_ch=c, ndf=ndf, n_layers=n_layers)
    assert _n_params(_abstract_params(module, (1, 128, 128, c))) == _patchgan_closed_form(c, ndf, n_layers)


@pytest.mark.parametrize("size,n_layers,expected", [(256, 3, 30), (70, 3, 6), (128, 3, 14), (16, 1, 6), (33, 2, 6)])
def test_patchgan_output_shapes(size, n_layers, expected):
    assert patchgan_output_size(size, n_layers) == expected
    module = PatchGAN(ndf=8, n_layers=n_layers)
    x = jax.ShapeDtypeStruct((2, size, size + 8, 3), jnp.float32)
    params = _abstract_params(module, x.shape)
    out = jax.eval_shape(module.apply, {"params": params}, x)
    assert out.shape == (2, expected, patchgan_output_size(size + 8, n_layers), 1) and out.dtype == jnp.float32


def test_patchgan_receptive_field_is_70x70():
    """Without the image-wide InstanceNorm, one logit depends on exactly a 70x70 input patch at 8i - 23."""
    module = PatchGAN(ndf=4, norm="none")
    x = jnp.asarray(np.random.default_rng(0).random((1, 80, 80, 3), np.float32))
    params = _random_params(module, x.shape)  # dense non-zero weights, as the receptive field needs
    i, j = 4, 3
    logit = lambda x: module.apply({"params": params}, x)[0, i, j, 0]  # noqa: E731
    g = jax.jit(jax.grad(logit), compiler_options=FAST_COMPILE)(x)
    support = np.argwhere(np.abs(np.asarray(g[0])).sum(-1) > 0)
    lo, hi = support.min(0), support.max(0) + 1
    np.testing.assert_array_equal(lo, [8 * i - 23, 8 * j - 23])
    np.testing.assert_array_equal(hi - lo, [70, 70])
    assert len(support) == 70 * 70


def _reference_patchgan(params: dict, x: np.ndarray, n_layers: int, instance: bool) -> jax.Array:
    """NLayerDiscriminator written out with lax convolutions and a hand-written InstanceNorm."""

    def conv(h, p, stride):
        y = jax.lax.conv_general_dilated(
            h, p["kernel"], (stride, stride), ((1, 1), (1, 1)), dimension_numbers=("NHWC", "HWIO", "NHWC"),
            precision=jax.lax.Precision.HIGHEST,
        )
        return y + p["bias"]

    lrelu = lambda h: jnp.where(h > 0, h, 0.2 * h)  # noqa: E731
    h = lrelu(conv(x, params["conv0"], 2))
    for n in range(1, n_layers + 1):
        h = conv(h, params[f"conv{n}"], 2 if n < n_layers else 1)
        if instance:
            mu = h.mean(axis=(1, 2), keepdims=True)
            var = ((h - mu) ** 2).mean(axis=(1, 2), keepdims=True)
            h = (h - mu) / jnp.sqrt(var + 1e-5)
        h = lrelu(h)
    return conv(h, params["conv_out"], 1)


@pytest.mark.parametrize("norm", ["instance", "none"])
def test_patchgan_matches_reference_forward(norm):
    module = PatchGAN(ndf=8, n_layers=3, norm=norm)
    x = np.random.default_rng(2).random((2, 48, 40, 3), np.float32)
    params = _random_params(module, x.shape, seed=3)  # non-zero biases, so the bias/norm wiring matters
    out = jax.jit(module.apply, compiler_options=FAST_COMPILE)({"params": params}, x)
    reference = jax.jit(_reference_patchgan, static_argnums=(2, 3), compiler_options=FAST_COMPILE)
    ref = reference(params, x, 3, norm == "instance")
    np.testing.assert_allclose(np.asarray(out), np.asarray(ref), rtol=1e-4, atol=1e-5)
    kernels = [np.asarray(params[f"conv{n}"]["kernel"]) for n in range(4)]
    assert all(k.shape[:2] == (4, 4) for k in kernels)


def test_patchgan_init_and_per_image_independence():
    module = PatchGAN(ndf=8, n_layers=2)
    x = np.random.default_rng(5).random((2, 32, 32, 3), np.float32)
    params = _init(module, x)
    apply = jax.jit(module.apply, compiler_options=FAST_COMPILE)
    # pix2pix init: N(0, 0.02) weights, zero biases.
    k = np.concatenate([np.asarray(params[f"conv{n}"]["kernel"]).ravel() for n in range(3)])
    assert abs(k.std() - 0.02) < 0.002 and abs(k.mean()) < 0.002
    assert all(not np.any(np.asarray(params[n]["bias"])) for n in params)
    # Instance norm: each image is normalised on its own statistics (no batch coupling).
    y = np.asarray(apply({"params": params}, x))
    x2 = x.copy()
    x2[1] = 1.0 - x2[1]
    y2 = np.asarray(apply({"params": params}, x2))
    np.testing.assert_allclose(y2[0], y[0], rtol=1e-6, atol=1e-7)
    assert not np.allclose(y2[1], y[1])
    # Deterministic: same key -> same params; same params and input -> same output.
    again = _init(module, x)
    for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(again)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    np.testing.assert_array_equal(np.asarray(apply({"params": params}, x)), y)


@pytest.mark.parametrize("name,kwargs,shape", [
    ("patchgan", dict(ndf=8, n_layers=2), (2, 32, 32, 3)),
    ("vgg_style", dict(num_feat=4, norm="instance"), (1, 128, 128, 3)),  # 'none' only drops the norm layers
])
def test_jit_grad_finite(name, kwargs, shape):
    module = DISCRIMINATORS[name](**kwargs)
    x = jnp.asarray(np.random.default_rng(6).random(shape, np.float32))
    params = _random_params(module, shape)

    def loss(p, x):
        return jnp.mean(module.apply({"params": p}, x) ** 2)

    value_and_grad = jax.jit(jax.value_and_grad(loss, argnums=(0, 1)), compiler_options=FAST_COMPILE)  # 1 program
    value, (gp, gx) = value_and_grad(params, x)
    assert np.isfinite(float(value))
    leaves = jax.tree.leaves((gp, gx))
    assert all(np.all(np.isfinite(np.asarray(g))) for g in leaves)
    assert all(np.abs(np.asarray(g)).max() > 0 for g in jax.tree.leaves(gp))
    value_again, grads_again = value_and_grad(params, x)
    np.testing.assert_array_equal(np.asarray(value_again), np.asarray(value))  # deterministic
    for a, b in zip(jax.tree.leaves(grads_again), leaves):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_bfloat16_compute_keeps_float32_params_and_logits():
    x = np.random.default_rng(7).random((1, 32, 32, 3), np.float32)
    f32, b16 = PatchGAN(ndf=8, n_layers=2), PatchGAN(ndf=8, n_layers=2, dtype=jnp.bfloat16)
    params = _random_params(f32, x.shape)
    assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(_abstract_params(b16, x.shape)))
    y32 = jax.jit(f32.apply, compiler_options=FAST_COMPILE)({"params": params}, x)
    y16 = jax.jit(b16.apply, compiler_options=FAST_COMPILE)({"params": params}, x)
    assert y16.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(y16), np.asarray(y32), atol=0.05 * float(jnp.abs(y32).max()) + 1e-3)


def test_vgg_style_param_counts_and_shapes():
    official = _vgg_official(3, 64, 128)
    inst = VGGStyleDiscriminator(norm="instance")
    assert _n_params(_abstract_params(inst, (1, 128, 128, 3))) == official
    bn_channels = 64 + 2 * (128 + 256 + 512 + 512)
    none = VGGStyleDiscriminator()
    assert _n_params(_abstract_params(none, (1, 128, 128, 3))) == official - bn_channels
    big = VGGStyleDiscriminator(input_size=256, norm="instance")
    assert _n_params(_abstract_params(big, (1, 256, 256, 3))) == _vgg_official(3, 64, 256)
    for module, size in ((none, 128), (big, 256)):
        x = jax.ShapeDtypeStruct((3, size, size, 3), jnp.float32)
        out = jax.eval_shape(module.apply, {"params": _abstract_params(module, x.shape)}, x)
        assert out.shape == (3, 1) and out.dtype == jnp.float32


def test_argument_errors():
    x = jnp.zeros((1, 32, 32, 3))
    with pytest.raises(ValueError, match=r"\[B,H,W,1\].*\(1, 32, 32, 3\)"):
        PatchGAN(num_in_ch=1).init(_key(), x)
    with pytest.raises(ValueError, match="at least 24 pixels"):
        PatchGAN().init(_key(), jnp.zeros((1, 23, 64, 3)))
    with pytest.raises(ValueError, match="'batch'"):
        PatchGAN(norm="batch").init(_key(), x)
    with pytest.raises(ValueError, match="n_layers=0"):
        PatchGAN(n_layers=0).init(_key(), x)
    with pytest.raises(ValueError, match="128x128 images; got 96x128"):
        VGGStyleDiscriminator().init(_key(), jnp.zeros((1, 96, 128, 3)))
    with pytest.raises(ValueError, match="input_size=64"):
        VGGStyleDiscriminator(input_size=64).init(_key(), jnp.zeros((1, 64, 64, 3)))


def test_registry():
    assert DISCRIMINATORS["patchgan"] is PatchGAN
    assert DISCRIMINATORS["vgg_style"] is VGGStyleDiscriminator


def test_multiscale_patchgan_scales_and_pooling():
    """pix2pixHD: scale i sees the input average-pooled i times (3x3, stride 2, pad 1, count_include_pad=False);
    each scale is a PatchGAN with its own weights."""
    from jaxgen.models.discriminators import MultiScalePatchGAN, _avg_pool_3x3_s2

    x = np.random.default_rng(9).random((2, 64, 48, 3), np.float32)
    # the pooling against a direct loop (edges average only the pixels inside the image)
    pooled = np.asarray(jax.jit(_avg_pool_3x3_s2)(jnp.asarray(x)))  # one program, not op by op
    ref = np.zeros((2, 32, 24, 3), np.float32)
    for i in range(32):
        for j in range(24):
            win = x[:, max(2 * i - 1, 0):2 * i + 2, max(2 * j - 1, 0):2 * j + 2]
            ref[:, i, j] = win.mean(axis=(1, 2))
    np.testing.assert_allclose(pooled, ref, rtol=1e-6, atol=1e-6)
    module = MultiScalePatchGAN(ndf=4, n_layers=2, num_d=3, norm="none")
    params = _random_params(module, x.shape)  # each scale's own draws; init's structure
    assert set(params) == {"scale0", "scale1", "scale2"}
    outs = jax.jit(module.apply, compiler_options=FAST_COMPILE)({"params": params}, x)
    assert [o.shape for o in outs] == [(2, patchgan_output_size(64, 2), patchgan_output_size(48, 2), 1),
                                       (2, patchgan_output_size(32, 2), patchgan_output_size(24, 2), 1),
                                       (2, patchgan_output_size(16, 2), patchgan_output_size(12, 2), 1)]
    single = PatchGAN(ndf=4, n_layers=2, norm="none")
    alone = jax.jit(single.apply, compiler_options=FAST_COMPILE)({"params": params["scale1"]}, pooled)
    np.testing.assert_allclose(np.asarray(outs[1]), np.asarray(alone),
                               rtol=1e-5, atol=1e-6)
