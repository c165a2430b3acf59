"""Shared Flax Linen building blocks of the super-resolution generators in ``jaxgen.models``.

Layout: NHWC activations, HWIO conv kernels (PyTorch ``OIHW`` weight ``w`` <-> flax kernel
``w.transpose(2, 3, 1, 0)``). Every conv pads ``k // 2`` zeros a side (PyTorch ``padding=k//2``), so a
stride-1 conv keeps the spatial size. ``dtype`` is the compute dtype, ``param_dtype`` the parameter dtype.

Initialisers (``ConvInit``: ``fan_in -> (kernel_init, bias_init)``), chosen per model as its official code does:

* ``torch_init`` -- PyTorch's ``nn.Conv2d`` default (kaiming-uniform with ``a=sqrt(5)``): kernel and bias
  ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``. EDSR-PyTorch (EDSR, RCAN), Real-ESRGAN's SRVGGNetCompact and the
  trunk convs of BasicSR's RRDBNet use it.
* ``basicsr_init(scale)`` -- BasicSR's ``default_init_weights(module, scale)``: kaiming-normal
  (``a=0``, fan-in: ``std = sqrt(2 / fan_in)``) times ``scale``, bias 0. MSRResNet (every conv) and the
  dense-block convs of RRDBNet use ``scale=0.1``.
* ``he_init(negative_slope)`` -- He et al. 2015 normal init for (P)ReLU, fan-in: ``std = sqrt(2 / ((1 + a^2)
  fan_in))``, bias 0 (VDSR, FSRCNN convs).
* ``gaussian_init(std)`` -- ``N(0, std^2)``, bias 0 (SRCNN and FSRCNN's deconv: ``std = 1e-3`` as the papers).
"""

from __future__ import annotations

import contextlib
import hashlib
import math
from typing import Any, Callable, Iterator, Sequence

import flax
import flax.core.scope as flax_scope
import flax.linen as nn
import jax
import jax.extend.core as jex
import jax.numpy as jnp
import numpy as np
from flax.core.scope import LazyRng
from jax import lax

from jaxgen.image import imresize
from jaxgen.models import conv_vjp, stacking

__all__ = [
    "DIV2K_RGB_MEAN",
    "ChannelAttention",
    "ConvInit",
    "Dropout",
    "MeanShift",
    "PReLU",
    "RCAB",
    "RRDB",
    "ResidualBlockNoBN",
    "ResidualDenseBlock",
    "Upsampler",
    "activation",
    "add_mean",
    "basicsr_init",
    "bicubic_upsample",
    "check_input",
    "check_scale",
    "conv",
    "conv_transpose",
    "gaussian_init",
    "he_init",
    "is_positive",
    "is_upsampler_scale",
    "mean_shift",
    "normal_init",
    "pixel_shuffle",
    "pixel_unshuffle",
    "scan_blocks_enabled",
    "set_scan_blocks",
    "sub_mean",
    "torch_init",
    "uniform_init",
    "upsample_bilinear",
    "upsample_nearest",
    "upsampler_stages",
]

Dtype = Any
Initializer = Callable[..., jax.Array]
ConvInit = Callable[[int], tuple[Initializer, Initializer]]

# DIV2K training-set RGB mean in [0,1] (EDSR-PyTorch ``common.MeanShift`` default, also RCAN's).
DIV2K_RGB_MEAN: tuple[float, float, float] = (0.4488, 0.4371, 0.4040)


# --------------------------------------------------------------------------------------------- init


def _flat(sample: Callable[[jax.Array, int, Dtype], jax.Array]) -> Initializer:
    """An initializer drawing ``prod(shape)`` numbers as one flat vector, then reshaping.

    Same distribution as drawing ``shape`` directly; used because XLA:CPU compiles the partitionable
    threefry for 4-D shapes very slowly (tens of seconds for a 3x3x8x9 kernel), and flat draws in
    milliseconds.
    """

    def init(key: jax.Array, shape: Sequence[int], dtype: Dtype = jnp.float32) -> jax.Array:
        return sample(key, math.prod(shape), dtype).reshape(shape)

    return init


def uniform_init(bound: float) -> Initializer:
    """``U(-bound, bound)``."""
    return _flat(lambda key, n, dtype: jax.random.uniform(key, (n,), dtype, -bound, bound))


def normal_init(std: float) -> Initializer:
    """``N(0, std^2)`` (not truncated, as ``torch.nn.init.normal_`` / ``kaiming_normal_``)."""
    return _flat(lambda key, n, dtype: std * jax.random.normal(key, (n,), dtype))


def torch_init(fan_in: int) -> tuple[Initializer, Initializer]:
    """PyTorch ``nn.Conv2d`` default: kernel and bias ``U(+-1/sqrt(fan_in))`` (kaiming-uniform, ``a=sqrt(5)``)."""
    bound = 1.0 / math.sqrt(fan_in)
    return uniform_init(bound), uniform_init(bound)


def basicsr_init(scale: float = 0.1) -> ConvInit:
    """BasicSR ``default_init_weights(m, scale)``: kernel ``N(0, 2/fan_in) * scale``, bias 0."""

    def init(fan_in: int) -> tuple[Initializer, Initializer]:
        return normal_init(scale * math.sqrt(2.0 / fan_in)), nn.initializers.zeros

    return init


def he_init(negative_slope: float = 0.0) -> ConvInit:
    """He et al. 2015 (PReLU paper) fan-in normal init: ``N(0, 2 / ((1 + a^2) fan_in))``, bias 0."""

    def init(fan_in: int) -> tuple[Initializer, Initializer]:
        return normal_init(math.sqrt(2.0 / ((1.0 + negative_slope**2) * fan_in))), nn.initializers.zeros

    return init


def gaussian_init(std: float) -> ConvInit:
    """``N(0, std^2)`` kernel, bias 0 (SRCNN/FSRCNN papers: ``std = 0.001``)."""

    def init(fan_in: int) -> tuple[Initializer, Initializer]:
        del fan_in
        return normal_init(std), nn.initializers.zeros

    return init


# --------------------------------------------------------------------------------------------- layers


def conv(
    features: int,
    kernel_size: int,
    in_features: int,
    conv_init: ConvInit = torch_init,
    *,
    use_bias: bool = True,
    dtype: Dtype = jnp.float32,
    param_dtype: Dtype = jnp.float32,
    name: str | None = None,
) -> nn.Conv:
    """``nn.Conv`` (stride 1, ``k//2`` zero padding: PyTorch ``Conv2d(in, features, k, 1, k//2)``).

    ``in_features`` only sets the fan-in of ``conv_init`` (PyTorch's bias bound needs it). Call inside a compact
    method: the layer becomes a child of the calling module. When ``jaxgen.models.conv_vjp.enabled()`` at trace
    time, its kernel gradient is the (numerically equal) transposed-roles convolution of ``conv_vjp``.
    """
    if kernel_size % 2 != 1:
        raise ValueError(f"conv kernel_size must be odd to keep the spatial size; got {kernel_size}")
    kernel_init, bias_init = conv_init(in_features * kernel_size * kernel_size)
    p = kernel_size // 2
    return nn.Conv(
        features,
        (kernel_size, kernel_size),
        padding=((p, p), (p, p)),
        use_bias=use_bias,
        kernel_init=kernel_init,
        bias_init=bias_init,
        dtype=dtype,
        param_dtype=param_dtype,
        conv_general_dilated=conv_vjp.flax_conv_fn(),
        name=name,
    )


class ConvTranspose(nn.Module):
    """``nn.ConvTranspose(features, kernel_size, strides, padding, transpose_kernel=True)`` on NHWC inputs with
    explicit padding: the same parameters (``kernel [kh, kw, features, in]``, ``bias [features]``: flax's names,
    shapes and initialisers, so checkpoints and imported weights are unchanged) and, unless a
    ``conv_vjp.transpose_override()`` is set (the oneDNN backend: ``onednn_conv.conv_transpose``), the same
    ``lax.conv_transpose`` call and bias add as flax's module (the same XLA program)."""

    features: int
    kernel_size: tuple[int, int]
    strides: tuple[int, int]
    padding: tuple[tuple[int, int], tuple[int, int]]
    use_bias: bool = True
    kernel_init: Callable = nn.initializers.lecun_normal()
    bias_init: Callable = nn.initializers.zeros
    dtype: Dtype | None = None
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        kernel = self.param("kernel", self.kernel_init, (*self.kernel_size, self.features, x.shape[-1]),
                            self.param_dtype)
        bias = self.param("bias", self.bias_init, (self.features,), self.param_dtype) if self.use_bias else None
        x, kernel, bias = nn.dtypes.promote_dtype(x, kernel, bias, dtype=self.dtype)
        override = conv_vjp.transpose_override()
        if override is not None:
            y = override(x, kernel, tuple(self.strides), self.padding)
        else:
            y = lax.conv_transpose(x, kernel, tuple(self.strides), self.padding, rhs_dilation=(1, 1),
                                   transpose_kernel=True)
        if bias is not None:
            y += jnp.reshape(bias, (1,) * (y.ndim - 1) + (-1,))
        return y


def conv_transpose(
    features: int,
    kernel_size: int,
    stride: int,
    padding: int,
    conv_init: ConvInit,
    *,
    output_padding: int | None = None,
    dtype: Dtype = jnp.float32,
    param_dtype: Dtype = jnp.float32,
    name: str | None = None,
) -> ConvTranspose:
    """PyTorch ``ConvTranspose2d(in, features, k, stride, padding, output_padding)`` as :class:`ConvTranspose`.

    Output side ``(h - 1) * stride - 2 * padding + k + output_padding`` (default ``output_padding = stride - 1``
    so that ``k = 2 * padding + 1`` gives ``h * stride``). The kernel is ``[k, k, features, in]``: the PyTorch
    weight ``w[in, out, kh, kw]`` is ``kernel.transpose(3, 2, 0, 1)`` (``transpose_kernel=True``: the gradient
    of a conv, exactly PyTorch's scatter semantics).
    """
    if output_padding is None:
        output_padding = stride - 1
    lo = kernel_size - 1 - padding
    kernel_init, bias_init = conv_init(features * kernel_size * kernel_size)  # PyTorch's fan-in of ConvTranspose2d
    return ConvTranspose(
        features,
        (kernel_size, kernel_size),
        strides=(stride, stride),
        padding=((lo, lo + output_padding), (lo, lo + output_padding)),
        kernel_init=kernel_init,
        bias_init=bias_init,
        dtype=dtype,
        param_dtype=param_dtype,
        name=name,
    )


class PReLU(nn.Module):
    """PyTorch ``nn.PReLU(num_parameters)``: ``max(0,x) + w * min(0,x)``, ``w`` per channel, init 0.25.

    ``num_parameters=None`` (default) makes one slope per channel (``x.shape[-1]``); ``1`` shares one slope.
    The parameter is named ``weight`` (PyTorch's name), shape ``[num_parameters]``.
    """

    num_parameters: int | None = None
    init_value: float = 0.25
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        n = x.shape[-1] if self.num_parameters is None else self.num_parameters
        w = self.param("weight", nn.initializers.constant(self.init_value), (n,), self.param_dtype)
        w = w.astype(self.dtype)
        x = x.astype(self.dtype)
        return jnp.where(x >= 0, x, w * x)


class Dropout(nn.Dropout):
    """``flax.linen.Dropout`` with its mask drawn as one flat vector, then reshaped: the same module name, rng
    stream and masks bit for bit (``bernoulli(key, p, shape)`` is ``uniform(key, shape) < p``, and the partitionable
    threefry numbers its draws by the flat index), compiled ~2x faster by XLA:CPU than the 4-D draw (see
    :func:`_flat`)."""

    @nn.compact
    def __call__(self, inputs: jax.Array, deterministic: bool | None = None,
                 rng: jax.Array | None = None) -> jax.Array:
        deterministic = nn.merge_param("deterministic", self.deterministic, deterministic)
        if self.rate == 0.0 or deterministic:
            return inputs
        if self.rate == 1.0:  # as Flax: no 0/0 in the gradient
            return jnp.zeros_like(inputs)
        keep_prob = 1.0 - self.rate
        if rng is None:
            rng = self.make_rng(self.rng_collection)
        shape = list(inputs.shape)
        for dim in self.broadcast_dims:
            shape[dim] = 1
        mask = jax.random.bernoulli(rng, p=keep_prob, shape=(math.prod(shape),)).reshape(shape)
        mask = jnp.broadcast_to(mask, inputs.shape)
        return jax.lax.select(mask, inputs / keep_prob, jnp.zeros_like(inputs))


def activation(
    kind: str, *, dtype: Dtype = jnp.float32, param_dtype: Dtype = jnp.float32, name: str | None = None
) -> Callable[[jax.Array], jax.Array]:
    """``'relu'``, ``'lrelu'`` (LeakyReLU, slope 0.1) or ``'prelu'`` (a per-channel ``PReLU`` child named ``name``)."""
    if kind == "relu":
        return nn.relu
    if kind == "lrelu":
        return lambda x: nn.leaky_relu(x, 0.1)
    if kind == "prelu":
        return PReLU(dtype=dtype, param_dtype=param_dtype, name=name)
    raise ValueError(f"activation {kind!r}; expected one of 'relu', 'lrelu', 'prelu'")


# --------------------------------------------------------------------------------------------- resampling


def pixel_shuffle(x: jax.Array, r: int) -> jax.Array:
    """PyTorch ``PixelShuffle(r)`` in NHWC: ``[B,H,W,C*r*r] -> [B,H*r,W*r,C]``.

    Exact PyTorch channel order (NCHW: ``out[c, h*r+i, w*r+j] = in[c*r*r + i*r + j, h, w]``), so ported
    weights of the preceding conv work unchanged.
    """
    b, h, w, c = x.shape
    if c % (r * r):
        raise ValueError(f"pixel_shuffle({r}) needs channels divisible by {r * r}; got shape {x.shape}")
    c_out = c // (r * r)
    x = x.reshape(b, h, w, c_out, r, r)
    x = x.transpose(0, 1, 4, 2, 5, 3)  # [B, H, i, W, j, C]
    return x.reshape(b, h * r, w * r, c_out)


def pixel_unshuffle(x: jax.Array, r: int) -> jax.Array:
    """PyTorch ``PixelUnshuffle(r)`` in NHWC: ``[B,H*r,W*r,C] -> [B,H,W,C*r*r]`` (inverse of ``pixel_shuffle``)."""
    b, hh, ww, c = x.shape
    if hh % r or ww % r:
        raise ValueError(f"pixel_unshuffle({r}) needs height and width divisible by {r}; got shape {x.shape}")
    x = x.reshape(b, hh // r, r, ww // r, r, c)
    x = x.transpose(0, 1, 3, 5, 2, 4)  # [B, H, W, C, i, j]
    return x.reshape(b, hh // r, ww // r, c * r * r)


def upsample_nearest(x: jax.Array, r: int) -> jax.Array:
    """PyTorch ``F.interpolate(x, scale_factor=r, mode='nearest')``, integer ``r``: ``[B,H,W,C] -> [B,rH,rW,C]``."""
    return jnp.repeat(jnp.repeat(x, r, axis=1), r, axis=2)


def upsample_bilinear(x: jax.Array, r: int) -> jax.Array:
    """PyTorch ``F.interpolate(x, scale_factor=r, mode='bilinear', align_corners=False)`` for integer ``r >= 1``.

    Half-pixel centres, edge-clamped: ``jax.image.resize`` renormalises the triangle kernel at the borders,
    which for upsampling equals PyTorch's clamping of the source coordinate.
    """
    b, h, w, c = x.shape
    return jax.image.resize(x, (b, h * r, w * r, c), "bilinear", antialias=False)


def bicubic_upsample(x: jax.Array, r: int) -> jax.Array:
    """MATLAB ``imresize(x, r, 'bicubic')`` (``jaxgen.image.imresize``), the pre-upsampling of SRCNN/VDSR."""
    return imresize(x, r)


# --------------------------------------------------------------------------------------------- checks


def check_scale(name: str, scale: Any, supported: str, ok: Callable[[int], bool]) -> None:
    """Raise ``ValueError`` unless ``scale`` is an int (not a bool) with ``ok(scale)``."""
    if isinstance(scale, bool) or not isinstance(scale, int) or not ok(scale):
        raise ValueError(f"{name} does not support scale={scale!r}; supported: {supported}")


def is_positive(scale: int) -> bool:
    return scale >= 1


def is_upsampler_scale(scale: int) -> bool:
    """3 or a power of 2 >= 2: the scales of the pixel-shuffle ``Upsampler``."""
    return scale == 3 or (scale >= 2 and scale & (scale - 1) == 0)


def check_input(x: jax.Array, num_in_ch: int, name: str) -> None:
    if x.ndim != 4 or x.shape[-1] != num_in_ch:
        raise ValueError(f"{name} expects [B,h,w,{num_in_ch}] images; got shape {tuple(x.shape)}")


def upsampler_stages(scale: int) -> tuple[int, ...]:
    """Pixel-shuffle factors of the EDSR ``Upsampler``: ``(2,) * log2(scale)`` for a power of 2, ``(3,)`` for 3."""
    if isinstance(scale, int) and not isinstance(scale, bool) and is_upsampler_scale(scale):
        return (3,) if scale == 3 else (2,) * (scale.bit_length() - 1)
    raise ValueError(f"the pixel-shuffle Upsampler supports scale 3 or a power of 2 (2, 4, 8, ...); got {scale!r}")


# --------------------------------------------------------------------------------------------- mean shift


def mean_shift(
    x: jax.Array,
    rgb_mean: Sequence[float],
    sign: int,
    *,
    rgb_range: float = 1.0,
    rgb_std: Sequence[float] | None = None,
) -> jax.Array:
    """EDSR-PyTorch ``MeanShift`` (a frozen 1x1 conv) as arithmetic: ``(x + sign * rgb_range * mean) / std``.

    ``sign=-1`` subtracts the mean (``sub_mean``), ``+1`` adds it back (``add_mean``). Constants, no parameters.
    """
    if sign not in (-1, 1):
        raise ValueError(f"mean_shift sign must be -1 or +1; got {sign!r}")
    if x.shape[-1] != len(rgb_mean):
        raise ValueError(f"mean_shift: {len(rgb_mean)} mean values for {x.shape[-1]} channels")
    mean = jnp.asarray(rgb_mean, x.dtype)
    y = x + (sign * rgb_range) * mean
    if rgb_std is not None:
        y = y / jnp.asarray(rgb_std, x.dtype)
    return y


def sub_mean(x: jax.Array, rgb_mean: Sequence[float] | None, img_range: float = 1.0) -> jax.Array:
    """``(x - mean) * img_range`` in float32: official ``sub_mean`` of ``x * rgb_range`` (``None``: no shift)."""
    x = x.astype(jnp.float32) * img_range
    return x if rgb_mean is None else mean_shift(x, rgb_mean, -1, rgb_range=img_range)


def add_mean(x: jax.Array, rgb_mean: Sequence[float] | None, img_range: float = 1.0) -> jax.Array:
    """``x / img_range + mean`` in float32: official ``add_mean``, then ``/ rgb_range`` (``None``: no shift)."""
    x = x.astype(jnp.float32)
    x = x if rgb_mean is None else mean_shift(x, rgb_mean, 1, rgb_range=img_range)
    return x / img_range


class MeanShift(nn.Module):
    """Parameter-free module form of ``mean_shift`` (EDSR-PyTorch ``common.MeanShift``; ``requires_grad=False``
    there, so its 24 numbers are not counted in the published parameter counts)."""

    rgb_mean: tuple[float, ...] = DIV2K_RGB_MEAN
    sign: int = -1
    rgb_range: float = 1.0
    rgb_std: tuple[float, ...] | None = None

    def __call__(self, x: jax.Array) -> jax.Array:
        return mean_shift(x, self.rgb_mean, self.sign, rgb_range=self.rgb_range, rgb_std=self.rgb_std)


# --------------------------------------------------------------------------------------------- blocks


_TRACING_STACKED_INIT = [False]  # inside _init_stacked's traces: nested repeated blocks (RCAN's) init unrolled
_SCAN_BLOCKS = {"enabled": True}


def scan_blocks_enabled() -> bool:
    """Whether :func:`repeat_blocks` may run its blocks as a ``lax.scan`` (read at trace time; a model's own
    ``scan_blocks=False`` always unrolls)."""
    return _SCAN_BLOCKS["enabled"]


def set_scan_blocks(value: bool) -> None:
    """Process-wide switch, set by ``jaxgen.xla_setup.prepare_training`` before a train step is traced: XLA:CPU
    runs autodiff's convolution gradients inside a ``while`` body (a scan) outside its convolution library (a
    scanned EDSR-baseline train step at per-device batch 8: 195 s instead of 2.8 s). So on CPU a scan's blocks
    always take ``jaxgen.models.conv_vjp``'s gradients (3.9 s), and where the conv VJP is off for the train step
    (per-device batch >= 4, where it is slower than autodiff's unrolled gradients) the train step unrolls."""
    _SCAN_BLOCKS["enabled"] = bool(value)


def _fold_in_messages(closed: jex.ClosedJaxpr) -> list[Any]:
    """The static data of every top-level ``random_fold_in`` in ``closed`` (Flax's hashed scope paths), in order."""
    consts = dict(zip(closed.jaxpr.constvars, closed.consts))
    return [np.asarray(e.invars[1].val if isinstance(e.invars[1], jex.Literal) else consts[e.invars[1]])
            for e in closed.jaxpr.eqns if e.primitive.name == "random_fold_in"]


def _eval_with_messages(closed: jex.ClosedJaxpr, messages: jax.Array, *args: Any) -> list[Any]:
    """Evaluates ``closed`` on ``args`` with its ``random_fold_in`` messages replaced by ``messages`` (in order)."""
    env: dict[Any, Any] = dict(zip(closed.jaxpr.constvars, closed.consts))
    env.update(zip(closed.jaxpr.invars, args))

    def read(v: Any) -> Any:
        return v.val if isinstance(v, jex.Literal) else env[v]

    k = 0
    for eqn in closed.jaxpr.eqns:
        values = [read(v) for v in eqn.invars]
        if eqn.primitive.name == "random_fold_in":
            values[1], k = messages[k], k + 1
        out = eqn.primitive.bind(*values, **eqn.primitive.get_bind_params(eqn.params))
        env.update(zip(eqn.outvars, out if eqn.primitive.multiple_results else [out]))
    return [read(v) for v in closed.jaxpr.outvars]


def _init_stacked(parent: nn.Module, block: nn.Module, names: Sequence[str], x: jax.Array) -> Any:
    """The parameters ``parent``'s children ``names`` get at init, stacked on a leading axis, as one program.

    Flax draws a parameter with the key ``fold_in(root, hash(scope path, counter))`` (``flax.core.scope``:
    ``Scope.push``, ``make_rng``, ``LazyRng``/``_fold_in_static``, flax 0.12.8): identical blocks differ only in
    those hashed messages. The first two blocks' inits are traced with the key each has as the bound child
    (``LazyRng`` folded with its name: the same values, a test checks bitwise) and their messages read off the
    traces; the other blocks' follow Flax's rule (SHA-1 of the folded data, the block's name in it), used only
    where it reproduces both traces (else every block is traced: RRDBNet x4's init trace 1.1 s -> 0.15 s).
    Block 0's trace is evaluated under ``vmap`` with them -- one random-number kernel per parameter of a block
    instead of one per parameter of every block. Repeated blocks inside the blocks (RCAN's groups of
    RCABs) init unrolled within the traced block: their messages are not literals of its trace."""
    lazy = LazyRng.create(parent.scope.rngs["params"])

    def init(name: str) -> Callable[[Any, jax.Array], Any]:
        return lambda key, h: block.init({"params": LazyRng.create(LazyRng(key, lazy.suffix), name)}, h)["params"]

    def trace(name: str) -> tuple[Any, list[tuple[Any, ...]]]:
        """Block ``name``'s init traced, and the static data Flax folded into its keys, in order."""
        with _recording_fold_ins() as suffixes:
            traced = jax.make_jaxpr(init(name), return_shape=True)(key, jax.ShapeDtypeStruct(x.shape, x.dtype))
        return traced, suffixes

    key = jax.ShapeDtypeStruct(lazy.rng.shape, lazy.rng.dtype)
    _TRACING_STACKED_INIT[0] = True
    try:
        # traced with XLA's convolutions: the trace is evaluated under vmap, and the oneDNN convolutions
        # (conv_vjp's override) have no batching rule; no parameter depends on a convolution's output
        with conv_vjp.overridden(None):
            (first, suffixes), (second, _) = trace(names[0]), trace(names[1])
            traced = [first, second]
            messages = [np.asarray(_fold_in_messages(c), np.uint32) for c, _ in traced]
            # The other blocks' messages from Flax's rule (SHA-1 of the folded data, the block's name at
            # ``len(lazy.suffix)``), where the rule reproduces both traces; else every block is traced.
            derived = [_derived_messages(suffixes, len(lazy.suffix), n) for n in names]
            if all(d is not None and np.array_equal(d, m) for d, m in zip(derived, messages)):
                messages = derived
            else:
                traced += [trace(n)[0] for n in names[2:]]
                messages += [np.asarray(_fold_in_messages(c), np.uint32) for c, _ in traced[2:]]
    finally:
        _TRACING_STACKED_INIT[0] = False
    closed, shapes = traced[0]
    if any(len(m) != len(messages[0]) for m in messages) or any(
            len(c.jaxpr.eqns) != len(closed.jaxpr.eqns) for c, _ in traced):
        raise ValueError(f"repeat_blocks: blocks {list(names)} are not identical at init")
    stacked = jax.vmap(lambda m: _eval_with_messages(closed, m, lazy.rng, x))(jnp.asarray(np.stack(messages)))
    return jax.tree.unflatten(jax.tree.structure(shapes), stacked)


@contextlib.contextmanager
def _recording_fold_ins() -> Iterator[list[tuple[Any, ...]]]:
    """Records the data of every ``flax.core.scope._fold_in_static`` call inside (one ``random_fold_in`` each
    when the data is not empty). Flax's private function: :func:`_init_stacked` uses the record only where it
    reproduces the traced messages."""
    seen: list[tuple[Any, ...]] = []
    original = flax_scope._fold_in_static

    def recording(rng: Any, data: Any) -> Any:
        if data:
            seen.append(tuple(data))
        return original(rng, data)

    flax_scope._fold_in_static = recording
    try:
        yield seen
    finally:
        flax_scope._fold_in_static = original


def _fold_in_hash(data: tuple[Any, ...]) -> int | None:
    """Flax's message for static ``data``: the first 4 bytes (big-endian) of its SHA-1 (``_fold_in_static``)."""
    m = hashlib.sha1()
    for item in data:
        if flax.config.flax_fix_rng_separator:
            m.update(b"\00")
        if isinstance(item, str):
            m.update(item.encode("utf-8"))
        elif isinstance(item, int):
            m.update(item.to_bytes((item.bit_length() + 7) // 8, byteorder="big"))
        else:
            return None  # not a kind Flax folds: no rule to reproduce
    return int.from_bytes(m.digest()[:4], byteorder="big")


def _derived_messages(suffixes: list[tuple[Any, ...]], where: int, name: str) -> np.ndarray | None:
    """The messages of the block named ``name``: ``suffixes`` (block 0's) with ``name`` at ``where``."""
    if not suffixes or any(len(d) <= where for d in suffixes):
        return None
    hashes = [_fold_in_hash(d[:where] + (name,) + d[where + 1:]) for d in suffixes]
    return None if None in hashes else np.asarray(hashes, np.uint32)


def repeat_blocks(parent: nn.Module, make: Callable[..., nn.Module], names: Sequence[str], x: jax.Array,
                  scan: bool = True) -> jax.Array:
    """Apply the identical blocks ``make(name=n)`` for ``n`` in ``names`` in sequence: ``x -> b_n(...b_1(x))``.

    Parameters live where the official names put them (``parent``'s children ``names[i]``, so weight import and
    export are unchanged), or -- in a train state -- stacked under one key ``{prefix}_0..{n-1}``
    (``jaxgen.models.stacking``: initialised so inside ``stacking.stacked_init()``; read whenever the key is
    there). With ``scan`` the blocks run as one ``jax.lax.scan`` over their stacked parameters: XLA compiles one
    block body instead of ``len(names)`` copies (RRDBNet x4: 23 RRDBs), which shortens compiles and shrinks the
    HLO; the arithmetic is the same block for block (a test compares outputs and gradients with the unrolled
    form). At ``init`` the blocks' parameters are drawn as one ``vmap`` over the keys Flax gives each child
    (:func:`_init_stacked`; bitwise the unrolled init's values): RRDBNet x4's 345 kernel draws were 58% of a cold
    first training step (benchmarks/RESULTS.md). ``make`` must accept ``name=`` and ``parent=``; the blocks may
    hold ``params`` only. :func:`set_scan_blocks` (``False``) unrolls every call, whatever ``scan``; unrolled
    blocks with stacked parameters are applied to their slices (a capture of ``intermediates`` then sees none of
    the blocks' own).
    """
    nested_init = parent.is_initializing() and _TRACING_STACKED_INIT[0]  # inside a block _init_stacked traces
    unrolled = not (scan and _SCAN_BLOCKS["enabled"]) or len(names) < 2
    unrolled = unrolled or parent.is_mutable_collection("intermediates")
    key = stacking.stacked_key(names)
    if parent.is_initializing():
        layout = "stacked" if key is not None and stacking.stacked_init_enabled() and not nested_init else "named"
    else:
        layout = "stacked" if key is not None and key in parent.variables.get("params", {}) else "named"
    if layout == "named" and (unrolled or nested_init):
        for n in names:
            x = make(name=n)(x)
        return x
    block = make(name=None, parent=None)  # an unbound copy, applied to each block's slice of ``stacked``
    if parent.is_initializing():
        stacked = _init_stacked(parent, block, names, x)
        if layout == "stacked":
            parent.put_variable("params", key, stacked)
        else:
            for i, n in enumerate(names):
                parent.put_variable("params", n, jax.tree.map(lambda a, i=i: a[i], stacked))
    elif layout == "stacked":
        stacked = parent.variables["params"][key]
    else:
        params = parent.variables["params"]
        stacked = jax.tree.map(lambda *leaves: jnp.stack(leaves), *[params[n] for n in names])
    if unrolled:
        for i in range(len(names)):
            x = block.apply({"params": jax.tree.map(lambda a, i=i: a[i], stacked)}, x)
        return x

    # On CPU the blocks' convolutions take conv_vjp's gradients inside the scan (ordinary convolutions: XLA:CPU runs
    # autodiff's own convolution gradients inside a loop body outside its convolution library, 50x slower; see
    # set_scan_blocks). Forward values are the same; the gradients equal autodiff's up to summation order.
    in_library = conv_vjp.enabled() or jax.default_backend() == "cpu"

    def body(h: jax.Array, p: Any) -> tuple[jax.Array, None]:
        with conv_vjp.use(in_library):
            return block.apply({"params": p}, h), None

    return jax.lax.scan(body, x, stacked)[0]



class ResidualBlockNoBN(nn.Module):
    """``x + res_scale * conv2(act(conv1(x)))``, two 3x3 convs of ``C = x.shape[-1]`` features, no BN.

    BasicSR ``ResidualBlockNoBN`` (``conv1``, ``conv2``; default init ``basicsr_init(0.1)`` as BasicSR's
    ``pytorch_init=False``) = EDSR-PyTorch ``ResBlock`` (``body.0`` -> ``conv1``, ``body.2`` -> ``conv2``; EDSR
    passes ``conv_init=torch_init``). ``act``: ``'relu'`` or ``'prelu'`` (child ``prelu``). ``[B,H,W,C] -> same``.
    """

    res_scale: float = 1.0
    act: str = "relu"
    conv_init: ConvInit = basicsr_init(0.1)
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        c = x.shape[-1]
        kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
        out = conv(c, 3, c, self.conv_init, name="conv1", **kw)(x)
        out = activation(self.act, name="prelu", **kw)(out)
        out = conv(c, 3, c, self.conv_init, name="conv2", **kw)(out)
        return x + out * self.res_scale


class ResidualDenseBlock(nn.Module):
    """ESRGAN residual dense block (BasicSR ``ResidualDenseBlock``): five densely connected 3x3 convs.

    ``x_k = lrelu_0.2(conv_k(cat(x, x_1..x_{k-1})))`` for k=1..4 (``num_grow_ch`` features each), then
    ``x + res_scale * conv5(cat(x, x_1..x_4))`` with ``res_scale = 0.2``. Init ``basicsr_init(0.1)`` (official).
    ``[B,H,W,C] -> same``.
    """

    num_grow_ch: int = 32
    res_scale: float = 0.2
    conv_init: ConvInit = basicsr_init(0.1)
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        c = x.shape[-1]
        kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
        feats = [x]
        for k in range(1, 5):
            inp = jnp.concatenate(feats, axis=-1)
            layer = conv(self.num_grow_ch, 3, inp.shape[-1], self.conv_init, name=f"conv{k}", **kw)
            feats.append(nn.leaky_relu(layer(inp), 0.2))
        inp = jnp.concatenate(feats, axis=-1)
        x5 = conv(c, 3, inp.shape[-1], self.conv_init, name="conv5", **kw)(inp)
        return x5 * self.res_scale + x


class RRDB(nn.Module):
    """Residual-in-residual dense block (ESRGAN; BasicSR ``RRDB``): ``x + 0.2 * rdb3(rdb2(rdb1(x)))``.

    Note the outer residual scales the *whole* chain output (not its difference from ``x``): with every
    ``conv5`` zeroed each RDB is the identity and the RRDB returns ``1.2 * x``, as the official code.
    """

    num_grow_ch: int = 32
    res_scale: float = 0.2
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        out = x
        for k in range(1, 4):
            rdb = ResidualDenseBlock(self.num_grow_ch, dtype=self.dtype, param_dtype=self.param_dtype, name=f"rdb{k}")
            out = rdb(out)
        return out * self.res_scale + x


class ChannelAttention(nn.Module):
    """RCAN channel attention (``CALayer``): ``x * sigmoid(conv_du_2(relu(conv_du_0(avgpool(x)))))``.

    1x1 convs ``C -> C // reduction -> C`` with biases (official ``conv_du.0`` / ``conv_du.2``), global average
    pooling over H, W. PyTorch default init. ``[B,H,W,C] -> same``.
    """

    reduction: int = 16
    conv_init: ConvInit = torch_init
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        c = x.shape[-1]
        if c // self.reduction < 1:
            raise ValueError(f"ChannelAttention: {c} channels with reduction {self.reduction} leaves no features")
        kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
        y = jnp.mean(x, axis=(1, 2), keepdims=True)
        y = nn.relu(conv(c // self.reduction, 1, c, self.conv_init, name="conv_du_0", **kw)(y))
        y = nn.sigmoid(conv(c, 1, c // self.reduction, self.conv_init, name="conv_du_2", **kw)(y))
        return x * y


class RCAB(nn.Module):
    """Residual channel attention block (RCAN): ``x + res_scale * CA(conv(relu(conv(x))))``.

    Official names ``body.0`` (conv) -> ``body_0``, ``body.2`` (conv) -> ``body_2``, ``body.3`` (CALayer) ->
    ``body_3``. RCAN's official RCAB ignores ``res_scale`` (always 1), the default here. ``[B,H,W,C] -> same``.
    """

    reduction: int = 16
    res_scale: float = 1.0
    conv_init: ConvInit = torch_init
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        c = x.shape[-1]
        kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
        res = nn.relu(conv(c, 3, c, self.conv_init, name="body_0", **kw)(x))
        res = conv(c, 3, c, self.conv_init, name="body_2", **kw)(res)
        res = ChannelAttention(self.reduction, self.conv_init, name="body_3", **kw)(res)
        return x + res * self.res_scale


class Upsampler(nn.Module):
    """EDSR-PyTorch ``common.Upsampler`` (no activation, no BN): ``[B,H,W,C] -> [B,H*scale,W*scale,C]``.

    Scale ``2^n``: n x (3x3 conv ``C -> 4C``, ``pixel_shuffle(2)``); scale 3: 3x3 conv ``C -> 9C``,
    ``pixel_shuffle(3)``. Conv of stage ``k`` is ``conv_k`` (official Sequential index ``2k``).
    """

    scale: int
    conv_init: ConvInit = torch_init
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        c = x.shape[-1]
        kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
        for k, r in enumerate(upsampler_stages(self.scale)):
            x = conv(r * r * c, 3, c, self.conv_init, name=f"conv_{k}", **kw)(x)
            x = pixel_shuffle(x, r)
        return x
