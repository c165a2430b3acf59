"""The transposed-roles conv gradient equals the plain one (independent truths: JAX's own autodiff of
``lax.conv_general_dilated`` and a float64 numpy loop), and the option in ``layers.conv`` changes nothing but it."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from jaxgen import models
from jaxgen.models import conv_vjp
from jaxgen.models.layers import conv
from jaxgen.models.vgg import VGGFeatures
from tests.param_utils import FAST_COMPILE, numpy_params

DN = ("NHWC", "HWIO", "NHWC")


def _data(b=2, h=7, w=5, c=3, o=4, k=3, seed=0):
    r = np.random.default_rng(seed)
    return (r.standard_normal((b, h, w, c)).astype(np.float32), r.standard_normal((k, k, c, o)).astype(np.float32))


def _random_params(module, x) -> dict:
    """Params of the module's structure drawn with numpy: the gradients compared here do not depend on the init."""
    return numpy_params(jax.eval_shape(module.init, jax.random.key(0), x)["params"], seed=4)


def _numpy_weight_grad(x, dy, k, pad):
    """dW[i,j,c,o] = sum_{b,h,w} x_pad[b,h+i,w+j,c] dy[b,h,w,o] in float64."""
    (pt, pb), (pl, pr) = pad
    xp = np.pad(x.astype(np.float64), ((0, 0), (pt, pb), (pl, pr), (0, 0)))
    _, ho, wo, _ = dy.shape
    out = np.zeros((k, k, x.shape[-1], dy.shape[-1]))
    for i in range(k):
        for j in range(k):
            out[i, j] = np.einsum("bhwc,bhwo->co", xp[:, i:i + ho, j:j + wo, :], dy.astype(np.float64))
    return out


@pytest.mark.parametrize("k,pad", [(3, ((1, 1), (1, 1))), (1, ((0, 0), (0, 0))), (5, ((2, 2), (2, 2))),
                                   (3, ((0, 0), (0, 0))), (3, ((2, 0), (1, 0))), (3, ((3, 1), (0, 3)))])
def test_gradients_equal_plain_autodiff_and_numpy(k, pad):
    x, w = _data(k=k)
    plain = lambda x, w: lax.conv_general_dilated(x, w, (1, 1), pad, dimension_numbers=DN)
    y = plain(x, w)
    dy = np.random.default_rng(1).standard_normal(y.shape).astype(np.float32)
    grads = lambda f: jax.jit(jax.grad(lambda x, w: jnp.sum(f(x, w) * dy), argnums=(0, 1)))  # noqa: E731
    ref_dx, ref_dw = grads(plain)(x, w)  # one program each, not op by op
    dx, dw = grads(lambda x, w: conv_vjp.conv2d_nhwc(x, w, pad))(x, w)
    np.testing.assert_allclose(conv_vjp.conv2d_nhwc(x, w, pad), y, rtol=0, atol=0)
    np.testing.assert_allclose(dx, ref_dx, rtol=0, atol=1e-5)
    np.testing.assert_allclose(dw, ref_dw, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(dw, _numpy_weight_grad(x, dy, k, pad), rtol=1e-5, atol=1e-5)


def test_non_simple_convolutions_fall_back_unchanged():
    x, w = _data(h=8, w=8)
    for kw in (dict(window_strides=(2, 2), padding=((1, 1), (1, 1))),
               dict(window_strides=(1, 1), padding="SAME"),
               dict(window_strides=(1, 1), padding=((1, 1), (1, 1)), rhs_dilation=(2, 2))):
        ref = lax.conv_general_dilated(x, w, dimension_numbers=DN, **kw)
        out = conv_vjp.conv_general_dilated(x, w, dimension_numbers=DN, **kw)
        np.testing.assert_array_equal(out, ref)
        grad = lambda f: jax.jit(jax.grad(lambda w: jnp.sum(f(x, w, dimension_numbers=DN, **kw) ** 2)))(w)  # noqa: E731
        g, g_ref = grad(conv_vjp.conv_general_dilated), grad(lax.conv_general_dilated)
        np.testing.assert_array_equal(g, g_ref)


def test_simple_case_uses_the_custom_gradient():
    x, w = _data()
    jaxpr = jax.make_jaxpr(lambda x, w: conv_vjp.conv_general_dilated(
        x, w, (1, 1), ((1, 1), (1, 1)), dimension_numbers=DN))(x, w)
    assert "custom_vjp_call" in str(jaxpr)


def test_stride1_nhwc_padding_recognises_exactly_the_routed_case():
    """The explicit padding of a stride-1 NHWC/HWIO call ('VALID' = zeros, asymmetric and negative pads kept as
    given); ``None`` for strides, dilations, groups, another layout, 'SAME' (unresolved) or a non-4-D call."""
    f = conv_vjp.stride1_nhwc_padding
    assert f(4, (1, 1), ((1, 2), (0, 3)), dimension_numbers=DN) == ((1, 2), (0, 3))
    assert f(4, [1, 1], [(-1, 0), (2, 2)], lhs_dilation=(1, 1), rhs_dilation=[1, 1], dimension_numbers=DN) == (
        (-1, 0), (2, 2))
    assert f(4, (1, 1), "VALID", dimension_numbers=lax.conv_dimension_numbers((1,) * 4, (1,) * 4, DN)) == (
        (0, 0), (0, 0))
    for kw in (dict(window_strides=(2, 2)), dict(rhs_dilation=(2, 2)), dict(lhs_dilation=(2, 1)),
               dict(feature_group_count=2), dict(batch_group_count=2), dict(padding="SAME"),
               dict(dimension_numbers=("NCHW", "OIHW", "NCHW")), dict(dimension_numbers=None)):
        args = {"window_strides": (1, 1), "padding": ((1, 1), (1, 1)), "dimension_numbers": DN, **kw}
        assert f(4, **args) is None, kw
    assert f(3, (1,), ((1, 1),), dimension_numbers=("NWC", "WIO", "NWC")) is None


def test_layers_conv_option_switches_the_gradient_only():
    """The switch is read when ``conv`` builds the layer (inside a model's compact ``__call__``, i.e. at trace time)."""
    x = jnp.asarray(np.random.default_rng(2).random((2, 9, 9, 4), np.float32))
    with conv_vjp.use(False):  # whatever an earlier in-process training run of this worker switched on
        plain = conv(6, 3, 4)
        params = jax.jit(plain.init)(jax.random.key(0), x)
        with conv_vjp.use(True):
            assert conv_vjp.enabled()
            custom = conv(6, 3, 4)
        assert not conv_vjp.enabled()
    assert "custom_vjp_call" not in str(jax.make_jaxpr(plain.apply)(params, x))
    assert "custom_vjp_call" in str(jax.make_jaxpr(custom.apply)(params, x))
    np.testing.assert_array_equal(jax.jit(custom.apply)(params, x), jax.jit(plain.apply)(params, x))
    grad = lambda layer: jax.jit(jax.grad(lambda p: jnp.sum(jnp.sin(layer.apply(p, x)))))(params)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5), grad(custom), grad(plain))


def test_edsr_train_gradients_equal_plain_formulation():
    """The whole EDSR-baseline (small) gradient with the option on vs off: max abs difference stays at float
    rounding (the README states the measured value for the full network)."""
    model = models.build("edsr", scale=2, num_blocks=2, num_feat=16)
    r = np.random.default_rng(3)
    lr, hr = r.random((2, 12, 12, 3), np.float32), r.random((2, 24, 24, 3), np.float32)
    params = _random_params(model, lr)
    loss = lambda p: jnp.mean(jnp.abs(model.apply({"params": p}, lr) - hr))
    ref = jax.jit(jax.grad(loss), compiler_options=FAST_COMPILE)(params)
    with conv_vjp.use(True):
        got = jax.jit(jax.grad(loss), compiler_options=FAST_COMPILE)(params)
    got, ref = jax.tree.map(np.asarray, got), jax.tree.map(np.asarray, ref)  # numpy: no eager op programs
    diffs = jax.tree.leaves(jax.tree.map(lambda a, b: float(np.max(np.abs(a - b))), got, ref))
    scale = max(float(np.max(np.abs(g))) for g in jax.tree.leaves(ref))
    assert max(diffs) <= 1e-5 * scale, (max(diffs), scale)


def test_vgg_input_gradient_inside_a_while_loop_equals_plain_autodiff():
    """What Gatys uses (VGG convolutions built under ``conv_vjp.use``, differentiated w.r.t. the image inside a
    ``lax.fori_loop`` as in optax's line search): the same image updates as plain autodiff outside any loop."""

    vgg = VGGFeatures(vgg_type="vgg19", taps=("relu1_2", "relu2_1"))
    r = np.random.default_rng(5)
    z0 = r.random((1, 24, 20, 3), np.float32)
    params = _random_params(vgg, z0)

    def loss(z):
        feats = vgg.apply({"params": params}, z)
        return sum(jnp.mean(f ** 2) for f in feats.values())

    def steps(z, n=2):
        for _ in range(n):
            g = jax.grad(loss)(z)
            z = z - 0.1 * g / (1e-12 + jnp.max(jnp.abs(g)))
        return z

    ref = np.asarray(jax.jit(steps, compiler_options=FAST_COMPILE)(z0))
    with conv_vjp.use(True):
        def body(i, z):
            g = jax.grad(loss)(z)
            return z - 0.1 * g / (1e-12 + jnp.max(jnp.abs(g)))

        got = jax.jit(lambda z: lax.fori_loop(0, 2, body, z), compiler_options=FAST_COMPILE)(z0)
    assert float(np.max(np.abs(ref - z0))) > 0.05  # the steps moved the image
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-5)


@pytest.mark.parametrize("h,w,k,pad", [(2, 2, 3, ((1, 1), (1, 1))), (1, 4, 3, ((1, 1), (1, 1))),
                                       (2, 4, 3, ((2, 0), (1, 0))), (3, 5, 3, ((0, 0), (0, 0))),
                                       (4, 4, 3, ((-1, 1), (1, 2))), (2, 3, 1, ((0, 0), (0, 0)))])
def test_as_dot_equals_the_convolution_and_its_gradients(h, w, k, pad):
    """The windows in the kernel's HWIO order (a swapped ``i``/``j`` or a wrong pad fails on these non-square,
    asymmetric cases): values and both gradients against XLA's convolution and the float64 numpy weight grad."""
    x, kern = _data(b=2, h=h, w=w, c=5, o=4, k=k, seed=h * 10 + w)
    plain = lambda x, w: lax.conv_general_dilated(x, w, (1, 1), pad, dimension_numbers=DN)  # noqa: E731
    y = plain(x, kern)
    dy = np.random.default_rng(2).standard_normal(y.shape).astype(np.float32)
    grads = lambda f: jax.jit(jax.grad(lambda x, w: jnp.sum(f(x, w) * dy), argnums=(0, 1)))  # noqa: E731
    np.testing.assert_allclose(conv_vjp.as_dot(x, kern, pad), y, rtol=1e-5, atol=1e-5)
    (dx, dw), (ref_dx, ref_dw) = grads(lambda x, w: conv_vjp.as_dot(x, w, pad))(x, kern), grads(plain)(x, kern)
    np.testing.assert_allclose(dx, ref_dx, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(dw, ref_dw, rtol=1e-5, atol=1e-5)
    if min(min(p) for p in pad) >= 0:  # the numpy loop pads with np.pad (no crops)
        np.testing.assert_allclose(dw, _numpy_weight_grad(x, dy, k, pad), rtol=1e-5, atol=1e-5)


def test_small_maps_become_one_dot_on_cpu_and_larger_ones_stay_convolutions():
    """At most SMALL_MAP_PIXELS (8) pixels: one dot_general and no convolution, through the default function
    every layer gets (flax_conv_fn), the custom-gradient one and a 'SAME' call; 3x3 (9 pixels) stays a conv."""
    assert conv_vjp.SMALL_MAP_PIXELS == 8 and conv_vjp.flax_conv_fn() is conv_vjp.default_conv
    kern = np.ones((3, 3, 4, 4), np.float32)

    def prims(fn, hw, padding=((1, 1), (1, 1))):
        x = jnp.ones((1, *hw, 4))
        return str(jax.make_jaxpr(lambda x: fn(x, kern, (1, 1), padding, dimension_numbers=DN))(x))

    for fn in (conv_vjp.default_conv, conv_vjp.conv_general_dilated):
        for hw in ((2, 2), (1, 8), (2, 4), (1, 1)):
            text = prims(fn, hw)
            assert "dot_general" in text and "conv_general_dilated" not in text, (fn.__name__, hw)
        for hw in ((3, 3), (2, 5), (1, 9)):
            assert "conv_general_dilated" in prims(fn, hw), (fn.__name__, hw)
    same = prims(conv_vjp.default_conv, (2, 2), "SAME")
    assert "dot_general" in same and "conv_general_dilated" not in same
    strided = lambda x, w, s, p, dimension_numbers: conv_vjp.default_conv(x, w, (2, 2), p,  # noqa: E731
                                                                          dimension_numbers=dimension_numbers)
    assert "conv_general_dilated" in prims(strided, (2, 2))


def test_vgg_on_a_32px_input_is_its_convolutions_with_conv5_as_dots():
    """VGG19's conv5 block on a 32 px input runs on 2x2 maps: the features through the default function equal
    lax's convolutions within float32 summation order (forward and the input gradient a perceptual loss takes)."""
    vgg = VGGFeatures(vgg_type="vgg19", taps=("conv4_4", "conv5_4"))
    x = jnp.asarray(np.random.default_rng(3).random((2, 32, 32, 3), np.float32))
    params = {"params": numpy_params(jax.eval_shape(vgg.init, jax.random.key(0), x)["params"], seed=5,
                                     kernel_gain=2.0)}

    def loss(p, x):
        return sum(jnp.mean(jnp.abs(f)) for f in vgg.apply(p, x).values())

    def run():
        return jax.jit(jax.value_and_grad(loss, argnums=1))(params, x)

    text = str(jax.make_jaxpr(lambda x: vgg.apply(params, x))(x))
    assert text.count("dot_general") == 4 and text.count("conv_general_dilated") == 12  # conv5_1..4; the rest
    (v, g) = run()
    with conv_vjp.overridden(lax.conv_general_dilated):
        (v_ref, g_ref) = run()
    np.testing.assert_allclose(v, v_ref, rtol=1e-5)
    np.testing.assert_allclose(g, g_ref, rtol=1e-4, atol=1e-6 * float(jnp.abs(g_ref).max()))
