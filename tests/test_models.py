"""jaxgen.models: shapes, parameter counts (published and closed form), structure, dtypes, registry.

Big configurations are only built with ``jax.eval_shape`` (no forward pass); real computations use tiny
configurations on 8x8 inputs.
"""

from __future__ import annotations

import functools
import math

import flax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgen import models
from jaxgen.models import layers as blocks
from jaxgen.image import imresize
from tests.test_layers import np_bilinear, np_nearest

SCALES = {
    "srcnn": (2, 3, 4),
    "espcn": (2, 3, 4),
    "fsrcnn": (2, 3, 4),
    "vdsr": (2, 3, 4),
    "edsr": (2, 3, 4, 8),
    "srresnet": (2, 3, 4, 8),
    "rrdbnet": (1, 2, 4),
    "rcan": (2, 3, 4, 8),
    "srvgg_compact": (2, 3, 4),
    "waifu2x_upconv7": (2,),
    "waifu2x_cunet": (1, 2),
    "realcugan": (2, 3, 4),
}
TINY = {
    "srcnn": dict(filters=(8, 4)),
    "espcn": dict(filters=(8, 4)),
    "fsrcnn": dict(d=8, s=4, m=1),
    "vdsr": dict(num_feat=8, num_layers=3),
    "edsr": dict(num_feat=8, num_blocks=1),
    "srresnet": dict(num_feat=8, num_blocks=1),
    "rrdbnet": dict(num_feat=8, num_blocks=1, num_grow_ch=4),
    "rcan": dict(num_feat=8, num_groups=1, num_blocks=1, reduction=4),
    "srvgg_compact": dict(num_feat=8, num_conv=1),
    "waifu2x_upconv7": {},  # fixed official widths (jaxgen.models.waifu2x / realcugan; tests/test_zoo_sr_vulkan.py)
    "waifu2x_cunet": {},
    "realcugan": {},
}
EDSR_FULL = dict(num_blocks=32, num_feat=256, res_scale=0.1)
KEY = jax.random.key(0)
X = jnp.asarray(np.random.default_rng(1).random((2, 8, 8, 3), np.float32))  # numpy: no threefry program to compile

from tests.param_utils import FAST_COMPILE, numpy_params, zero_params as _zero


def _shapes(model, x_shape=(1, 16, 16, 3)):
    return jax.eval_shape(model.init, KEY, jax.ShapeDtypeStruct(x_shape, jnp.float32))


def _count(tree, leaf_name: str | None = None) -> int:
    leaves = jax.tree_util.tree_leaves_with_path(tree)
    return sum(
        int(np.prod(a.shape)) for path, a in leaves if leaf_name is None or path[-1].key == leaf_name
    )


def _count_model(name: str, scale: int, in_ch: int = 3, **kw) -> int:
    return _cached_count(name, scale, in_ch, tuple(sorted(kw.items())))


def _cached_count(name: str, scale: int, in_ch: int, kw: tuple) -> int:
    return _count(_built_shapes(name, scale, in_ch, kw))


@functools.lru_cache(maxsize=None)
def _built_shapes(name: str, scale: int, in_ch: int, kw: tuple) -> dict:
    """Abstract variables of ``models.build(name, ...)`` on a 16x16 input, traced once (full-size models trace for
    seconds) for the parameter-count and the parameter-name tests."""
    model = models.build(name, scale=scale, num_in_ch=in_ch, num_out_ch=in_ch, **dict(kw))
    return _shapes(model, (1, 16, 16, in_ch))


def _full_shapes(name: str, scale: int, **kw) -> dict:
    return _built_shapes(name, scale, 3, tuple(sorted(kw.items())))


def test_every_generator_is_covered():
    assert set(models.GENERATORS) == set(SCALES) == set(TINY)


# ------------------------------------------------------------------------------ shapes


@pytest.mark.parametrize("name,scale", [(n, s) for n, ss in SCALES.items() for s in ss])
def test_output_shape(name, scale):
    model = models.build(name, scale=scale, **TINY[name])
    params = _shapes(model, X.shape)
    out = jax.eval_shape(model.apply, params, X)
    assert out.shape == (2, 8 * scale, 8 * scale, 3) and out.dtype == jnp.float32


@pytest.mark.parametrize("name", ["srcnn", "espcn", "fsrcnn", "vdsr"])
def test_y_channel_models(name):
    model = models.build(name, scale=3, num_in_ch=1, num_out_ch=1, **TINY[name])
    x = jnp.zeros((1, 5, 6, 1))
    assert jax.eval_shape(model.apply, _shapes(model, x.shape), x).shape == (1, 15, 18, 1)


# ------------------------------------------------------------------------------ tiny forward / grad / bf16


def _random_params(model) -> dict:
    """``{'params': ...}`` of the model's structure drawn with numpy: kernels ``N(0, 1/fan_in)``, other leaves
    ``0.1 * N(0, 1)`` (PReLU slopes ``0.25 + ...``); the init itself is checked in
    ``test_determinism_and_jit_equals_eager`` and tests/test_layers.py."""
    return numpy_params(_shapes(model, X.shape), seed=3, leaves={"weight": (0.25, 0.1)})


@functools.lru_cache(maxsize=None)
def _run(name: str) -> dict:
    """One jitted computation per family at scale 2: f32 output, bf16-compute output, gradients."""
    m32 = models.build(name, scale=2, **TINY[name])
    m16 = models.build(name, scale=2, dtype=jnp.bfloat16, **TINY[name])
    target = jnp.asarray(np.random.default_rng(2).random((2, 16, 16, 3), np.float32))

    @functools.partial(jax.jit, compiler_options=FAST_COMPILE)
    def run(p, x):
        loss = lambda q: jnp.mean((m32.apply(q, x) - target) ** 2)  # noqa: E731
        return m32.apply(p, x), m16.apply(p, x), jax.grad(loss)(p)

    params = _random_params(m32)
    out32, out16, grads = run(params, X)
    return dict(model=m32, model16=m16, params=params, out32=np.asarray(out32), out16=np.asarray(out16),
                grads=grads, apply=jax.jit(m32.apply, compiler_options=FAST_COMPILE))


@pytest.mark.parametrize("name", list(SCALES))
def test_forward_grads_and_bf16_compute(name):
    """Finite output and gradients, every parameter reached by the gradient; bf16 compute keeps float32 params and
    output, really computes in bf16 and stays within 2% of float32. (One test per family, so that pytest-xdist
    does not compile the same program in two workers.)"""
    r = _run(name)
    assert r["out32"].shape == (2, 16, 16, 3) and np.isfinite(r["out32"]).all()
    leaves = jax.tree_util.tree_leaves_with_path(r["grads"])
    assert all(np.isfinite(np.asarray(g)).all() for _, g in leaves)
    dead = [jax.tree_util.keystr(path) for path, g in leaves if not np.any(np.asarray(g))]
    assert not dead, f"parameters without gradient: {dead}"

    assert all(a.dtype == jnp.float32 for a in jax.tree.leaves(_shapes(r["model16"], X.shape)))
    assert r["out16"].dtype == np.float32
    assert not np.array_equal(r["out16"], r["out32"])  # bf16 was really used
    err = np.abs(r["out16"] - r["out32"]).max() / np.abs(r["out32"]).max()
    assert err <= 2e-2, err


def test_determinism_and_jit_equals_eager():
    """Same key -> bitwise-equal params (eager or inside jit) and outputs; another key -> other params."""
    model = models.build("srvgg_compact", scale=2, **TINY["srvgg_compact"])
    p1, p2 = model.init(KEY, X), model.init(KEY, X)
    jitted = jax.jit(lambda k, x: (lambda p: (p, model.apply(p, x)))(model.init(k, x)))
    p_jit, out_jit = jitted(KEY, X)  # params and output computed under jax.jit
    for p in (p2, p_jit):
        assert jax.tree.all(jax.tree.map(lambda a, b: bool(jnp.array_equal(a, b)), p1, p))
    p3 = model.init(jax.random.key(7), X)
    assert not np.array_equal(p1["params"]["body_0"]["kernel"], p3["params"]["body_0"]["kernel"])
    eager = np.asarray(model.apply(p1, X))
    np.testing.assert_array_equal(eager, np.asarray(model.apply(p1, X)))
    np.testing.assert_allclose(np.asarray(out_jit), eager, rtol=0, atol=1e-6)


# ------------------------------------------------------------------------------ structure


@pytest.mark.parametrize("name", ["srcnn", "vdsr"])
def test_pre_upsampling_is_matlab_bicubic(name):
    r = _run(name)
    no_up = models.build(name, scale=2, upsample_input=False, **TINY[name])
    direct = np.asarray(jax.jit(no_up.apply, compiler_options=FAST_COMPILE)(r["params"], imresize(X, 2)))
    np.testing.assert_allclose(r["out32"], direct, rtol=1e-5, atol=1e-6 * np.abs(direct).max())


def test_vdsr_global_residual_on_the_bicubic_input():
    r = _run("vdsr")
    out = r["apply"](_zero(r["params"], "output"), X)
    np.testing.assert_allclose(np.asarray(out), np.asarray(imresize(X, 2)), rtol=0, atol=1e-6)


def test_msrresnet_skip_is_pytorch_bilinear():
    r = _run("srresnet")
    out = r["apply"](_zero(r["params"], "conv_last"), X)
    np.testing.assert_allclose(np.asarray(out), np_bilinear(np.asarray(X), 2), atol=1e-5)


def test_srvgg_skip_is_nearest():
    r = _run("srvgg_compact")
    out = r["apply"](_zero(r["params"], "body_4"), X)  # num_conv=1: last conv is body_{2*1+2}
    np.testing.assert_array_equal(np.asarray(out), np_nearest(np.asarray(X), 2))


@pytest.mark.parametrize("name", ["edsr", "rcan"])
def test_mean_shift_adds_back_the_div2k_mean(name):
    r = _run(name)
    out = np.asarray(r["apply"](_zero(r["params"], "tail_1"), X))
    np.testing.assert_array_equal(out, np.broadcast_to(np.float32(blocks.DIV2K_RGB_MEAN), out.shape))


def test_edsr_img_range_runs_rescaled_weights_identically():
    """img_range=R with head kernel / R and last conv * R equals img_range=1 (how rgb_range=255 weights port)."""
    r = _run("edsr")
    p = flax.core.unfreeze(r["params"])
    R = 255.0
    p["params"]["head_0"]["kernel"] = p["params"]["head_0"]["kernel"] / R
    p["params"]["tail_1"] = jax.tree.map(lambda a: a * R, p["params"]["tail_1"])
    rescaled = models.build("edsr", scale=2, img_range=R, **TINY["edsr"])
    out = jax.jit(rescaled.apply, compiler_options=FAST_COMPILE)(p, X)
    np.testing.assert_allclose(np.asarray(out), r["out32"], atol=2e-5)


def test_rrdbnet_pixel_unshuffle_inputs():
    for scale, cin in [(4, 3), (2, 12), (1, 48)]:
        p = _shapes(models.build("rrdbnet", scale=scale, **TINY["rrdbnet"]), (1, 8, 8, 3))
        assert p["params"]["conv_first"]["kernel"].shape == (3, 3, cin, 8)
    with pytest.raises(ValueError, match="divisible by 4"):
        _shapes(models.build("rrdbnet", scale=1, **TINY["rrdbnet"]), (1, 6, 8, 3))


def test_fsrcnn_deconv_layout():
    p = _full_shapes("fsrcnn", 3)
    assert p["params"]["last_part"]["kernel"].shape == (9, 9, 3, 56)  # [k, k, out, in]
    assert p["params"]["first_part_1"]["weight"].shape == (56,)  # per-channel PReLU


# ------------------------------------------------------------------------------ official names


def _names(n: int, prefix: str = "body_") -> set[str]:
    return {f"{prefix}{i}" for i in range(n)}


def test_official_parameter_names():
    p = _full_shapes("edsr", 4)["params"]
    assert set(p) == {"head_0", "tail_0", "tail_1"} | _names(17)
    assert set(p["body_3"]) == {"conv1", "conv2"} and set(p["tail_0"]) == {"conv_0", "conv_1"}

    p = _full_shapes("rrdbnet", 4)["params"]
    assert set(p) == {"conv_first", "conv_body", "conv_up1", "conv_up2", "conv_hr", "conv_last"} | _names(23)
    assert set(p["body_0"]) == {"rdb1", "rdb2", "rdb3"}
    assert set(p["body_0"]["rdb2"]) == {f"conv{k}" for k in range(1, 6)}

    p = _full_shapes("srresnet", 4)["params"]
    assert set(p) == {"conv_first", "upconv1", "upconv2", "conv_hr", "conv_last"} | _names(16)

    p = _full_shapes("rcan", 2, num_groups=2, num_blocks=3)["params"]
    assert set(p) == {"head_0", "tail_0", "tail_1"} | _names(3)
    assert set(p["body_1"]) == _names(4) and set(p["body_1"]["body_2"]) == {"body_0", "body_2", "body_3"}
    assert set(p["body_1"]["body_2"]["body_3"]) == {"conv_du_0", "conv_du_2"}

    p = _full_shapes("srvgg_compact", 4)["params"]
    assert set(p) == _names(2 * 16 + 3)
    assert p["body_1"]["weight"].shape == (64,) and p["body_34"]["kernel"].shape == (3, 3, 64, 48)

    fsrcnn = set(_full_shapes("fsrcnn", 3)["params"])  # m=4: 6 convs + 6 PReLUs in mid_part
    assert fsrcnn == {"first_part_0", "first_part_1", "last_part"} | _names(12, "mid_part_")
    assert set(_full_shapes("vdsr", 3)["params"]) == {"input", "output"} | _names(18, "residual_layer_")
    assert set(_full_shapes("srcnn", 3)["params"]) == {"conv1", "conv2", "conv3"}


# ------------------------------------------------------------------------------ parameter counts

# Closed forms written from the official architectures (independent of the model code).


def conv_p(cin: int, cout: int, k: int, bias: bool = True) -> int:
    return cin * cout * k * k + (cout if bias else 0)


def upsampler_p(f: int, scale: int) -> int:
    stages = (3,) if scale == 3 else (2,) * int(math.log2(scale))
    return sum(conv_p(f, r * r * f, 3) for r in stages)


def edsr_p(scale: int, f: int = 64, b: int = 16, c: int = 3) -> int:
    return conv_p(c, f, 3) + b * 2 * conv_p(f, f, 3) + conv_p(f, f, 3) + upsampler_p(f, scale) + conv_p(f, c, 3)


def msrresnet_p(scale: int, f: int = 64, b: int = 16, prelu: bool = False) -> int:
    n_up = 1 if scale in (2, 3) else int(math.log2(scale))
    n_act = (1 + n_up + 1 + b) if prelu else 0
    trunk = conv_p(3, f, 3) + b * 2 * conv_p(f, f, 3) + upsampler_p(f, scale) + conv_p(f, f, 3) + conv_p(f, 3, 3)
    return trunk + f * n_act


def rrdbnet_p(scale: int, f: int = 64, b: int = 23, g: int = 32) -> int:
    rdb = sum(conv_p(f + i * g, g, 3) for i in range(4)) + conv_p(f + 4 * g, f, 3)
    cin = 3 * {4: 1, 2: 4, 1: 16}[scale]
    return conv_p(cin, f, 3) + b * 3 * rdb + 4 * conv_p(f, f, 3) + conv_p(f, 3, 3)


def rcan_p(scale: int, f: int = 64, groups: int = 10, b: int = 20, red: int = 16) -> int:
    rcab = 2 * conv_p(f, f, 3) + conv_p(f, f // red, 1) + conv_p(f // red, f, 1)
    group = b * rcab + conv_p(f, f, 3)
    return conv_p(3, f, 3) + groups * group + conv_p(f, f, 3) + upsampler_p(f, scale) + conv_p(f, 3, 3)


def srvgg_p(scale: int, f: int = 64, n: int = 16, c: int = 3) -> int:
    return conv_p(c, f, 3) + f + n * (conv_p(f, f, 3) + f) + conv_p(f, c * scale * scale, 3)


def espcn_p(scale: int, c: int = 3) -> int:
    return conv_p(c, 64, 5) + conv_p(64, 32, 3) + conv_p(32, c * scale * scale, 3)


def srcnn_p(ks=(9, 1, 5), c: int = 3, bias: bool = True) -> int:
    return conv_p(c, 64, ks[0], bias) + conv_p(64, 32, ks[1], bias) + conv_p(32, c, ks[2], bias)


def fsrcnn_p(d: int = 56, s: int = 12, m: int = 4, c: int = 3, bias: bool = True) -> int:
    prelus = (d + s + m * s + d) if bias else 0
    return (conv_p(c, d, 5, bias) + conv_p(d, s, 1, bias) + m * conv_p(s, s, 3, bias) + conv_p(s, d, 1, bias)
            + d * c * 81 + (c if bias else 0) + prelus)


def vdsr_p(c: int = 3, f: int = 64, layers: int = 20, bias: bool = True) -> int:
    return conv_p(c, f, 3, bias) + (layers - 2) * conv_p(f, f, 3, bias) + conv_p(f, c, 3, bias)


CLOSED_FORM = [
    *[("edsr", s, {}, edsr_p(s)) for s in (2, 3, 4, 8)],
    *[("edsr", s, EDSR_FULL, edsr_p(s, 256, 32)) for s in (2, 3, 4)],
    *[("srresnet", s, {}, msrresnet_p(s)) for s in (2, 3, 4, 8)],
    ("srresnet", 4, dict(act="prelu"), msrresnet_p(4, prelu=True)),
    ("rrdbnet", 4, {}, rrdbnet_p(4)),
    # scales 1 and 2 differ from x4 in conv_first only (pixel-unshuffled input): 2 blocks, not 23 (the block count
    # does not depend on the scale; tracing the full 23 blocks costs ~1.5 CPU s per scale)
    *[("rrdbnet", s, dict(num_blocks=2), rrdbnet_p(s, b=2)) for s in (1, 2)],
    ("rcan", 4, {}, rcan_p(4)),
    *[("rcan", s, dict(num_groups=2, num_blocks=3), rcan_p(s, groups=2, b=3)) for s in (2, 3, 8)],
    *[("srvgg_compact", s, {}, srvgg_p(s)) for s in (2, 3, 4)],
    ("srvgg_compact", 4, dict(num_conv=32), srvgg_p(4, n=32)),
    ("srvgg_compact", 4, dict(act="relu"), srvgg_p(4) - 17 * 64),
    *[("espcn", s, {}, espcn_p(s)) for s in (2, 3, 4)],
    ("srcnn", 3, {}, srcnn_p()),
    ("srcnn", 3, dict(kernel_sizes=(9, 5, 5)), srcnn_p((9, 5, 5))),
    ("fsrcnn", 3, {}, fsrcnn_p()),
    ("fsrcnn", 3, dict(d=32, s=5, m=1), fsrcnn_p(32, 5, 1)),
    ("vdsr", 3, {}, vdsr_p()),
    ("vdsr", 3, dict(use_bias=False), vdsr_p(bias=False)),
]


@pytest.mark.parametrize("name,scale,kw,expected", CLOSED_FORM, ids=lambda v: str(v) if not isinstance(v, dict) else "")
def test_param_count_closed_form(name, scale, kw, expected):
    assert _count_model(name, scale, **kw) == expected


PUBLISHED = [
    # EDSR-PyTorch / EDSR paper (mean-shift constants excluded, as ``requires_grad=False`` there).
    ("edsr", 2, {}, 1_369_859),
    ("edsr", 3, {}, 1_554_499),
    ("edsr", 4, {}, 1_517_571),
    ("edsr", 2, EDSR_FULL, 40_729_603),
    ("edsr", 4, EDSR_FULL, 43_089_923),
    ("srresnet", 4, {}, 1_517_571),  # BasicSR MSRResNet x4
    ("rrdbnet", 4, {}, 16_697_987),  # ESRGAN RRDBNet x4, 23 blocks
]


@pytest.mark.parametrize("name,scale,kw,expected", PUBLISHED, ids=lambda v: str(v) if not isinstance(v, dict) else "")
def test_param_count_published(name, scale, kw, expected):
    assert _count_model(name, scale, **kw) == expected


def test_rcan_is_about_15_59m():
    n = _count_model("rcan", 4)
    assert round(n / 1e4) == 1559  # "15.59M" (RCAN paper Table / EDSR-PyTorch's RCAN)
    assert n == rcan_p(4) == 15_592_355


@pytest.mark.parametrize(
    "name,kw,published",
    [
        ("srcnn", {}, 8_032),  # SRCNN 9-1-5 (TPAMI 2016)
        ("srcnn", dict(kernel_sizes=(9, 3, 5)), 24_416),  # 9-3-5
        ("srcnn", dict(kernel_sizes=(9, 5, 5)), 57_184),  # 9-5-5
        ("fsrcnn", {}, 12_464),  # FSRCNN(56, 12, 4) (ECCV 2016)
        ("fsrcnn", dict(d=32, s=5, m=1), 3_937),  # FSRCNN-s
        ("vdsr", {}, 664_704),  # VDSR "665K"
    ],
)
def test_kernel_counts_of_y_models_match_papers(name, kw, published):
    """The papers count filter weights only (no biases, no PReLU slopes) of the single-channel (Y) models."""
    model = models.build(name, scale=3, num_in_ch=1, num_out_ch=1, **kw)
    n = _count(_shapes(model, (1, 16, 16, 1)), "kernel")
    assert n == published
    if name == "srcnn":
        assert n == srcnn_p(model.kernel_sizes, c=1, bias=False)
    elif name == "fsrcnn":
        assert n == fsrcnn_p(model.d, model.s, model.m, c=1, bias=False)
    else:
        assert n == vdsr_p(c=1, bias=False) and round(n / 1000) == 665


# ------------------------------------------------------------------------------ registry and validation


def test_registry_contains_generators_and_discriminators():
    from jaxgen.models.discriminators import DISCRIMINATORS

    assert set(models.MODELS) == (set(models.GENERATORS) | set(DISCRIMINATORS) | set(models.STYLE_NETS)
                                  | set(models.TRANSLATION_NETS))
    for name, cls in DISCRIMINATORS.items():
        assert isinstance(models.build(name), cls)
    assert isinstance(models.build("edsr", scale=2), models.EDSR)
    assert isinstance(models.build("srresnet", scale=4), models.MSRResNet)


def test_unknown_name_lists_available():
    with pytest.raises(ValueError, match="unknown model 'edsr2'") as e:
        models.build("edsr2", scale=2)
    assert all(n in str(e.value) for n in models.MODELS)


def test_unknown_kwarg_is_named():
    with pytest.raises(TypeError, match="num_resblocks"):
        models.build("edsr", scale=2, num_resblocks=32)
    with pytest.raises(TypeError, match="scale"):
        models.build("edsr")  # scale is required


@pytest.mark.parametrize(
    "name,scale",
    [("edsr", 5), ("edsr", 6), ("edsr", 1), ("edsr", True), ("edsr", 2.0), ("rcan", 5), ("srresnet", 6),
     ("srresnet", 16), ("rrdbnet", 3), ("rrdbnet", 8), ("srcnn", 0), ("espcn", -1), ("fsrcnn", 0), ("vdsr", 1.5),
     ("srvgg_compact", 0)],
)
def test_invalid_scale_raises(name, scale):
    with pytest.raises(ValueError, match="scale"):
        models.build(name, scale=scale)


def test_invalid_options_and_inputs_raise():
    with pytest.raises(ValueError, match="act"):
        models.build("srresnet", scale=4, act="gelu")
    with pytest.raises(ValueError, match="act"):
        models.build("srvgg_compact", scale=4, act="gelu")
    with pytest.raises(ValueError, match="num_in_ch == num_out_ch"):
        models.build("vdsr", scale=2, num_in_ch=1)
    with pytest.raises(ValueError, match=r"\[B,h,w,3\]"):
        _shapes(models.build("edsr", scale=2), (1, 8, 8, 1))
    with pytest.raises(ValueError, match=r"\[B,h,w,3\]"):
        _shapes(models.build("srcnn", scale=2), (8, 8, 3))
