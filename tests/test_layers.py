"""jaxgen.models.layers against independent references: numpy re-implementations of the PyTorch semantics."""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgen.models import layers as blocks

RNG = np.random.default_rng(0)

from tests.param_utils import numpy_params, zero_params as _zero


def _x(*shape: int) -> np.ndarray:
    return RNG.standard_normal(shape).astype(np.float32)


# ------------------------------------------------------------------------------ numpy references


def np_pixel_shuffle(x: np.ndarray, r: int) -> np.ndarray:
    """PyTorch on NCHW: ``out[c, h*r+i, w*r+j] = in[c*r*r + i*r + j, h, w]``; NHWC in and out."""
    x = x.transpose(0, 3, 1, 2)
    b, crr, h, w = x.shape
    c = crr // (r * r)
    out = np.zeros((b, c, h * r, w * r), x.dtype)
    for ci in range(c):
        for i in range(r):
            for j in range(r):
                out[:, ci, i::r, j::r] = x[:, ci * r * r + i * r + j]
    return out.transpose(0, 2, 3, 1)


def np_pixel_unshuffle(x: np.ndarray, r: int) -> np.ndarray:
    """PyTorch on NCHW: ``out[c*r*r + i*r + j, h, w] = in[c, h*r+i, w*r+j]``; NHWC in and out."""
    x = x.transpose(0, 3, 1, 2)
    b, c, hh, ww = x.shape
    out = np.zeros((b, c * r * r, hh // r, ww // r), x.dtype)
    for ci in range(c):
        for i in range(r):
            for j in range(r):
                out[:, ci * r * r + i * r + j] = x[:, ci, i::r, j::r]
    return out.transpose(0, 2, 3, 1)


def np_conv(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray | None) -> np.ndarray:
    """PyTorch ``Conv2d(padding=k//2)`` (cross-correlation) with an HWIO kernel, NHWC, float64."""
    k = kernel.shape[0]
    p = k // 2
    xp = np.pad(x.astype(np.float64), ((0, 0), (p, p), (p, p), (0, 0)))
    h, w = x.shape[1:3]
    out = np.zeros(x.shape[:3] + (kernel.shape[-1],))
    for a in range(k):
        for b in range(k):
            out += xp[:, a : a + h, b : b + w, :] @ kernel[a, b].astype(np.float64)
    return out if bias is None else out + bias


def np_conv_transpose(x: np.ndarray, w: np.ndarray, bias: np.ndarray, s: int, p: int, op: int) -> np.ndarray:
    """PyTorch ``ConvTranspose2d``: every input pixel scatters ``x[i,j] @ w[:, :, a, b]`` to ``(i*s+a-p, j*s+b-p)``.

    ``w`` is PyTorch's ``[in, out, k, k]``; NHWC in and out.
    """
    b_, h, wd, _ = x.shape
    k = w.shape[-1]
    ho, wo = (h - 1) * s - 2 * p + k + op, (wd - 1) * s - 2 * p + k + op
    buf = np.zeros((b_, ho + 2 * p + k, wo + 2 * p + k, w.shape[1]))
    for i in range(h):
        for j in range(wd):
            for a in range(k):
                for c in range(k):
                    buf[:, i * s + a, j * s + c] += x[:, i, j].astype(np.float64) @ w[:, :, a, c]
    return buf[:, p : p + ho, p : p + wo] + bias


def np_interp_bilinear_axis(n_in: int, r: int) -> np.ndarray:
    """``[n_in*r, n_in]`` weights of PyTorch bilinear, ``align_corners=False``, scale ``r``."""
    m = np.zeros((n_in * r, n_in))
    for d in range(n_in * r):
        src = max((d + 0.5) / r - 0.5, 0.0)
        i0 = int(math.floor(src))
        i1 = min(i0 + 1, n_in - 1)
        lam = src - i0
        m[d, i0] += 1 - lam
        m[d, i1] += lam
    return m


def np_bilinear(x: np.ndarray, r: int) -> np.ndarray:
    mh, mw = np_interp_bilinear_axis(x.shape[1], r), np_interp_bilinear_axis(x.shape[2], r)
    return np.einsum("Hh,bhwc,Ww->bHWc", mh, x.astype(np.float64), mw)


def np_nearest(x: np.ndarray, r: int) -> np.ndarray:
    """PyTorch ``mode='nearest'``: ``src = floor(dst / r)``."""
    h, w = x.shape[1:3]
    rows = np.floor(np.arange(h * r) / r).astype(int)
    cols = np.floor(np.arange(w * r) / r).astype(int)
    return x[:, rows][:, :, cols]


# ------------------------------------------------------------------------------ helpers


def _init_apply(module, x, seed=0):
    """Params of the module's structure drawn with numpy (kernels ``N(0, 1/fan_in)``, biases ``0.1 * N(0, 1)``: the
    formulas checked with them do not depend on the init, which the initialiser tests below check) and the module's
    output, each one jitted program instead of one per parameter draw / eager op."""
    params = numpy_params(jax.eval_shape(module.init, jax.random.key(0), x), seed)
    return params, _apply(module, params, x)


def _apply(module, params, x):
    return jax.jit(module.apply)(params, x)


def _count(tree) -> int:
    return sum(int(np.prod(a.shape)) for a in jax.tree.leaves(tree))




# ------------------------------------------------------------------------------ pixel shuffle


@pytest.mark.parametrize("r,c", [(2, 1), (2, 3), (3, 2), (4, 3)])
def test_pixel_shuffle_matches_pytorch_formula(r, c):
    x = _x(2, 3, 5, c * r * r)
    np.testing.assert_array_equal(np.asarray(blocks.pixel_shuffle(jnp.asarray(x), r)), np_pixel_shuffle(x, r))


@pytest.mark.parametrize("r,c", [(2, 1), (2, 3), (3, 2), (4, 3)])
def test_pixel_unshuffle_matches_pytorch_formula(r, c):
    x = _x(2, 3 * r, 2 * r, c)
    np.testing.assert_array_equal(np.asarray(blocks.pixel_unshuffle(jnp.asarray(x), r)), np_pixel_unshuffle(x, r))


def test_pixel_shuffle_channel_order_on_a_hand_case():
    # One output pixel block [c=0]: in channels 0..3 go to (0,0), (0,1), (1,0), (1,1).
    x = jnp.arange(4.0).reshape(1, 1, 1, 4)
    np.testing.assert_array_equal(np.asarray(blocks.pixel_shuffle(x, 2))[0, :, :, 0], [[0.0, 1.0], [2.0, 3.0]])


@pytest.mark.parametrize("r", [2, 3])
def test_shuffle_unshuffle_are_inverse(r):
    x = jnp.asarray(_x(2, 4 * r, 3 * r, 3))
    np.testing.assert_array_equal(blocks.pixel_shuffle(blocks.pixel_unshuffle(x, r), r), x)
    y = jnp.asarray(_x(2, 4, 3, 3 * r * r))
    np.testing.assert_array_equal(blocks.pixel_unshuffle(blocks.pixel_shuffle(y, r), r), y)


def test_shuffle_rejects_bad_shapes():
    with pytest.raises(ValueError, match="divisible"):
        blocks.pixel_shuffle(jnp.zeros((1, 2, 2, 6)), 2)
    with pytest.raises(ValueError, match="divisible"):
        blocks.pixel_unshuffle(jnp.zeros((1, 5, 4, 3)), 2)


# ------------------------------------------------------------------------------ resampling


@pytest.mark.parametrize("r", [2, 3, 4])
def test_upsample_bilinear_matches_pytorch_align_corners_false(r):
    x = _x(2, 5, 4, 3)
    np.testing.assert_allclose(np.asarray(blocks.upsample_bilinear(jnp.asarray(x), r)), np_bilinear(x, r), atol=1e-5)


@pytest.mark.parametrize("r", [2, 3])
def test_upsample_nearest_matches_pytorch(r):
    x = _x(1, 3, 4, 2)
    np.testing.assert_array_equal(np.asarray(blocks.upsample_nearest(jnp.asarray(x), r)), np_nearest(x, r))


def test_bicubic_upsample_is_imresize():
    from jaxgen.image import imresize

    x = jnp.asarray(RNG.random((1, 6, 5, 3)).astype(np.float32))
    np.testing.assert_array_equal(jax.jit(blocks.bicubic_upsample, static_argnums=1)(x, 3),
                                  jax.jit(imresize, static_argnums=1)(x, 3))


# ------------------------------------------------------------------------------ convs


def test_conv_matches_pytorch_conv2d_and_keeps_size():
    x = _x(2, 6, 5, 3)
    layer = blocks.conv(4, 3, 3)
    params, y = _init_apply(layer, jnp.asarray(x))
    k, b = (np.asarray(params["params"][n]) for n in ("kernel", "bias"))
    assert k.shape == (3, 3, 3, 4) and y.shape == (2, 6, 5, 4)
    np.testing.assert_allclose(np.asarray(y), np_conv(x, k, b), atol=1e-5)


def test_conv_rejects_even_kernels():
    with pytest.raises(ValueError, match="odd"):
        blocks.conv(4, 2, 3)


@pytest.mark.parametrize("s", [2, 3])
def test_conv_transpose_matches_pytorch_scatter(s):
    """``ConvTranspose2d(3, 2, 9, stride=s, padding=4, output_padding=s-1)``: output ``h*s``, same values."""
    x = _x(1, 3, 4, 3)
    layer = blocks.conv_transpose(2, 9, s, 4, blocks.torch_init)
    params, y = _init_apply(layer, jnp.asarray(x))
    kernel, bias = np.asarray(params["params"]["kernel"]), np.asarray(params["params"]["bias"])
    assert kernel.shape == (9, 9, 2, 3) and y.shape == (1, 3 * s, 4 * s, 2)
    w_torch = kernel.transpose(3, 2, 0, 1).astype(np.float64)  # the documented mapping to [in, out, kh, kw]
    np.testing.assert_allclose(np.asarray(y), np_conv_transpose(x, w_torch, bias, s, 4, s - 1), atol=1e-5)


@pytest.mark.parametrize("use_bias", [True, False])
def test_conv_transpose_module_is_flaxs(use_bias):
    """``layers.ConvTranspose`` (the module behind ``conv_transpose`` and the translation generators, with a hook
    for the oneDNN backend) has flax's ``nn.ConvTranspose(transpose_kernel=True)`` parameters -- names, shapes and
    initial values from the same key -- and, with no override set, its output bit for bit (checkpoints, imported
    weights and the XLA programs unchanged)."""
    x = jnp.asarray(_x(2, 5, 6, 3))
    kw = dict(strides=(2, 2), padding=((1, 2), (0, 1)), use_bias=use_bias, bias_init=nn.initializers.normal(0.1))
    ours = blocks.ConvTranspose(4, (3, 3), **kw)
    flax_ = nn.ConvTranspose(4, (3, 3), transpose_kernel=True, **kw)
    p_ours, p_flax = ours.init(jax.random.key(3), x), flax_.init(jax.random.key(3), x)
    assert jax.tree.structure(p_ours) == jax.tree.structure(p_flax)
    for a, b in zip(jax.tree.leaves(p_ours), jax.tree.leaves(p_flax)):
        assert a.shape == b.shape and np.array_equal(np.asarray(a), np.asarray(b))
    assert np.array_equal(np.asarray(jax.jit(ours.apply)(p_ours, x)), np.asarray(jax.jit(flax_.apply)(p_flax, x)))


# ------------------------------------------------------------------------------ initialisers


def _kernel_and_bias(init, cin=64, cout=256, k=3):
    layer = blocks.conv(cout, k, cin, init)
    params = layer.init(jax.random.key(0), jnp.zeros((1, 4, 4, cin)))["params"]
    assert params["kernel"].shape == (k, k, cin, cout)
    return np.asarray(params["kernel"], np.float64), np.asarray(params["bias"], np.float64)


def test_torch_init_is_pytorch_conv2d_default():
    """kaiming_uniform(a=sqrt(5)) == U(+-1/sqrt(fan_in)) for the kernel, bias U(+-1/sqrt(fan_in))."""
    kernel, bias = _kernel_and_bias(blocks.torch_init)
    bound = 1 / math.sqrt(64 * 9)
    assert np.abs(kernel).max() <= bound and np.abs(bias).max() <= bound
    assert np.abs(kernel).max() > 0.99 * bound and np.abs(bias).max() > 0.8 * bound  # not a narrower law
    assert kernel.var() == pytest.approx(bound**2 / 3, rel=0.03)  # uniform, not normal
    assert bias.std() > 0.4 * bound  # random, not zero


def test_basicsr_init_is_scaled_kaiming_normal():
    """default_init_weights(scale=0.1): kaiming_normal(fan_in, gain sqrt 2) * 0.1, bias 0, untruncated."""
    kernel, bias = _kernel_and_bias(blocks.basicsr_init(0.1))
    std = 0.1 * math.sqrt(2 / (64 * 9))
    assert kernel.std() == pytest.approx(std, rel=0.02)
    assert abs(kernel.mean()) < 0.02 * std
    assert np.abs(kernel).max() > 3.5 * std  # 147456 normal draws: ~70 beyond 3.5 sigma; none if truncated at 2
    np.testing.assert_array_equal(bias, 0.0)


def test_he_and_gaussian_inits():
    kernel, bias = _kernel_and_bias(blocks.he_init(0.25))
    assert kernel.std() == pytest.approx(math.sqrt(2 / (1.0625 * 576)), rel=0.02)
    np.testing.assert_array_equal(bias, 0.0)
    kernel, bias = _kernel_and_bias(blocks.gaussian_init(1e-3))
    assert kernel.std() == pytest.approx(1e-3, rel=0.02)
    np.testing.assert_array_equal(bias, 0.0)


# ------------------------------------------------------------------------------ PReLU


def test_prelu_is_per_channel_pytorch_prelu():
    x = _x(2, 3, 3, 5)
    layer = blocks.PReLU()
    params = layer.init(jax.random.key(0), jnp.asarray(x))
    np.testing.assert_array_equal(params["params"]["weight"], np.full(5, 0.25, np.float32))
    w = np.linspace(-0.5, 0.5, 5).astype(np.float32)
    y = _apply(layer, {"params": {"weight": jnp.asarray(w)}}, jnp.asarray(x))
    np.testing.assert_allclose(np.asarray(y), np.maximum(x, 0) + w * np.minimum(x, 0), rtol=1e-6)
    assert blocks.PReLU(num_parameters=1).init(jax.random.key(0), jnp.asarray(x))["params"]["weight"].shape == (1,)


# ------------------------------------------------------------------------------ mean shift


def test_mean_shift_subtracts_the_mean_and_is_inverted_by_add():
    x = jnp.asarray(RNG.random((2, 4, 4, 3)).astype(np.float32))
    mean = np.asarray(blocks.DIV2K_RGB_MEAN, np.float32)
    np.testing.assert_array_equal(blocks.mean_shift(jnp.zeros((1, 1, 1, 3)), blocks.DIV2K_RGB_MEAN, -1)[0, 0, 0], -mean)
    sub = blocks.MeanShift(sign=-1)
    add = blocks.MeanShift(sign=1)
    assert sub.init(jax.random.key(0), x) == {}  # constants, no parameters
    np.testing.assert_allclose(np.asarray(add.apply({}, sub.apply({}, x))), np.asarray(x), rtol=0, atol=1e-7)
    np.testing.assert_allclose(np.asarray(sub.apply({}, x)), np.asarray(x) - mean, rtol=0, atol=1e-7)


def test_mean_shift_official_formula_with_range_and_std():
    """EDSR-PyTorch: weight eye/std, bias sign*rgb_range*mean/std."""
    # its own generator: the shared RNG's draws depend on which tests ran before in this worker, and some draws put
    # an output near 0 (x/std and 255 mean/std cancel), where the relative bound is tighter than float32 rounding
    x = np.random.default_rng(284).random((1, 2, 2, 3)).astype(np.float32) * 255
    std, mean = np.array([0.5, 2.0, 1.0]), np.asarray(blocks.DIV2K_RGB_MEAN)
    y = blocks.mean_shift(jnp.asarray(x), blocks.DIV2K_RGB_MEAN, -1, rgb_range=255.0, rgb_std=tuple(std))
    np.testing.assert_allclose(np.asarray(y), x / std - 255 * mean / std, rtol=1e-5)
    with pytest.raises(ValueError, match="mean values"):
        blocks.mean_shift(jnp.zeros((1, 2, 2, 1)), blocks.DIV2K_RGB_MEAN, -1)


def test_sub_and_add_mean_with_img_range_invert_each_other():
    x = jnp.asarray(RNG.random((1, 3, 3, 3)).astype(np.float32))
    y = blocks.sub_mean(x, blocks.DIV2K_RGB_MEAN, 255.0)
    expected = 255 * (np.asarray(x) - np.asarray(blocks.DIV2K_RGB_MEAN))
    np.testing.assert_allclose(np.asarray(y), expected, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(np.asarray(blocks.add_mean(y, blocks.DIV2K_RGB_MEAN, 255.0)), np.asarray(x), atol=1e-6)


# ------------------------------------------------------------------------------ blocks


def test_residual_block_formula_and_res_scale():
    x = _x(1, 5, 5, 4)
    params, y = _init_apply(blocks.ResidualBlockNoBN(), jnp.asarray(x))
    p = params["params"]
    h = np.maximum(np_conv(x, np.asarray(p["conv1"]["kernel"]), np.asarray(p["conv1"]["bias"])), 0)
    ref = x + np_conv(h, np.asarray(p["conv2"]["kernel"]), np.asarray(p["conv2"]["bias"]))
    np.testing.assert_allclose(np.asarray(y), ref, atol=1e-5)
    y_scaled = _apply(blocks.ResidualBlockNoBN(res_scale=0.1), params, jnp.asarray(x))
    np.testing.assert_allclose(np.asarray(y_scaled) - x, 0.1 * (ref - x), atol=1e-6)
    np.testing.assert_array_equal(_apply(blocks.ResidualBlockNoBN(), _zero(params, "conv2"), jnp.asarray(x)), x)


def test_residual_dense_block_matches_the_esrgan_formula():
    x = _x(1, 4, 4, 6)
    params, y = _init_apply(blocks.ResidualDenseBlock(num_grow_ch=3), jnp.asarray(x))
    p = {k: (np.asarray(v["kernel"]), np.asarray(v["bias"])) for k, v in params["params"].items()}
    assert [p[f"conv{k}"][0].shape[2:] for k in range(1, 6)] == [(6, 3), (9, 3), (12, 3), (15, 3), (18, 6)]
    feats = [x.astype(np.float64)]
    for k in range(1, 5):
        z = np_conv(np.concatenate(feats, -1), *p[f"conv{k}"])
        feats.append(np.where(z >= 0, z, 0.2 * z))
    ref = 0.2 * np_conv(np.concatenate(feats, -1), *p["conv5"]) + x
    np.testing.assert_allclose(np.asarray(y), ref, atol=1e-5)


def test_rrdb_residual_scaling():
    """RRDB(x) = 0.2 * rdb3(rdb2(rdb1(x))) + x; with every conv5 zeroed each RDB is the identity -> 1.2 x."""
    x = jnp.asarray(_x(1, 4, 4, 6))
    rrdb = blocks.RRDB(num_grow_ch=3)
    params, y = _init_apply(rrdb, x)
    rdb = blocks.ResidualDenseBlock(num_grow_ch=3)
    chain = x
    for k in (1, 2, 3):
        chain = _apply(rdb, {"params": params["params"][f"rdb{k}"]}, chain)
    np.testing.assert_allclose(np.asarray(y), np.asarray(0.2 * chain + x), atol=1e-6)
    zeroed = params
    for k in (1, 2, 3):
        zeroed = _zero(zeroed, f"rdb{k}", "conv5")
    np.testing.assert_allclose(np.asarray(_apply(rrdb, zeroed, x)), 1.2 * np.asarray(x), rtol=1e-6)


def test_channel_attention_matches_rcan_formula():
    x = RNG.random((2, 3, 3, 8)).astype(np.float32)
    params, y = _init_apply(blocks.ChannelAttention(reduction=4), jnp.asarray(x))
    p = params["params"]
    pooled = x.astype(np.float64).mean(axis=(1, 2))  # [B, C]
    hid = np.maximum(pooled @ np.asarray(p["conv_du_0"]["kernel"])[0, 0] + np.asarray(p["conv_du_0"]["bias"]), 0)
    att = 1 / (1 + np.exp(-(hid @ np.asarray(p["conv_du_2"]["kernel"])[0, 0] + np.asarray(p["conv_du_2"]["bias"]))))
    assert p["conv_du_0"]["kernel"].shape == (1, 1, 8, 2)
    np.testing.assert_allclose(np.asarray(y), x * att[:, None, None, :], rtol=1e-5)


def test_rcab_is_identity_when_its_last_conv_is_zero():
    x = jnp.asarray(_x(1, 4, 4, 8))
    rcab = blocks.RCAB(reduction=4)
    params, y = _init_apply(rcab, x)
    assert set(params["params"]) == {"body_0", "body_2", "body_3"}
    assert not np.allclose(np.asarray(y), np.asarray(x))
    np.testing.assert_array_equal(_apply(rcab, _zero(params, "body_2"), x), x)


@pytest.mark.parametrize("scale,stages", [(2, (2,)), (3, (3,)), (4, (2, 2)), (8, (2, 2, 2))])
def test_upsampler_structure_and_count(scale, stages):
    f = 4
    up = blocks.Upsampler(scale)
    assert blocks.upsampler_stages(scale) == stages
    p = jax.eval_shape(up.init, jax.random.key(0), jnp.zeros((1, 3, 3, f)))
    assert sorted(p["params"]) == [f"conv_{k}" for k in range(len(stages))]
    assert _count(p) == sum(f * r * r * f * 9 + r * r * f for r in stages)
    assert jax.eval_shape(up.apply, p, jnp.zeros((1, 3, 3, f))).shape == (1, 3 * scale, 3 * scale, f)


def test_upsampler_is_conv_then_pixel_shuffle():
    x = _x(1, 3, 3, 2)
    params, y = _init_apply(blocks.Upsampler(3), jnp.asarray(x))
    p = params["params"]["conv_0"]
    ref = np_pixel_shuffle(np_conv(x, np.asarray(p["kernel"]), np.asarray(p["bias"])), 3)
    np.testing.assert_allclose(np.asarray(y), ref, atol=1e-5)


@pytest.mark.parametrize("scale", [1, 5, 6, 12, 0, -2, 2.0, True])
def test_upsampler_rejects_other_scales(scale):
    with pytest.raises(ValueError, match="Upsampler"):
        blocks.upsampler_stages(scale)


@pytest.mark.parametrize("broadcast_dims", [(), (1, 2)])
def test_dropout_masks_are_flaxs_bit_for_bit(broadcast_dims):
    """blocks.Dropout (flat mask draw) in place of nn.Dropout: same outputs for the same 'dropout' rng, including
    the second of two dropouts in one module (its own rng fold-in) and broadcast dims; deterministic is identity."""

    def net(dropout_cls):
        class Net(nn.Module):
            @nn.compact
            def __call__(self, x, train):
                h = dropout_cls(0.3, broadcast_dims=broadcast_dims, deterministic=not train)(x)
                return dropout_cls(0.5, broadcast_dims=broadcast_dims, deterministic=not train)(h * 2.0)

        return Net()

    x = jax.random.normal(jax.random.key(0), (2, 6, 5, 8))
    rngs = {"dropout": jax.random.key(7)}
    want = net(nn.Dropout).apply({}, x, True, rngs=rngs)
    got = net(blocks.Dropout).apply({}, x, True, rngs=rngs)
    assert bool(jnp.array_equal(got, want))
    assert 0 < float(jnp.mean(got == 0)) < 1  # masks drawn
    assert bool(jnp.array_equal(net(blocks.Dropout).apply({}, x, False), x * 2.0))
