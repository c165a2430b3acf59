"""Image-to-image translation networks of pix2pix / CycleGAN (Isola et al. 2017; Zhu et al. 2017), after the
official ``junyanz/pytorch-CycleGAN-and-pix2pix`` ``models/networks.py``.

Images are NHWC ``[B,H,W,C]`` in ``[-1, 1]`` (the official ``Normalize(0.5, 0.5)`` range; the generators end
in ``tanh``). With ``unit_range_io=True`` a generator takes and returns ``[0, 1]`` images instead (the same
parameters: ``x -> 2x - 1`` before, ``y -> (y + 1) / 2`` after); the exported inference modules use it.

* :class:`ResnetGenerator` -- ``resnet_9blocks`` / ``resnet_6blocks`` (CycleGAN): reflection-padded 7x7 conv,
  two stride-2 3x3 convs, ``n_blocks`` residual blocks (reflection padding), two stride-2 transposed 3x3
  convs (``output_padding=1``), reflection-padded 7x7 conv, ``tanh``. 11,378,179 parameters for
  ``ngf=64, n_blocks=9`` with instance norm (7,837,699 for 6 blocks). ``H, W`` must be multiples of 4.
* :class:`UnetGenerator` -- ``unet_256`` (``num_downs=8``) / ``unet_128`` (7) (pix2pix): ``num_downs`` 4x4
  stride-2 convs down to 1x1 at ``2**num_downs`` px, mirrored transposed convs, skip concatenation
  ``[x, up(x)]`` at every level, dropout 0.5 after the up-norm of the ``num_downs - 5`` innermost non-bottleneck
  levels. 54,413,955 parameters for ``unet_256`` with batch norm. ``H, W`` must be multiples of ``2**num_downs``.
* :class:`BatchNormPatchGAN` -- ``NLayerDiscriminator`` with ``norm='batch'`` (pix2pix; conditional: 6 input
  channels = ``[input, output]``). The instance-norm PatchGAN of CycleGAN is
  :class:`jaxgen.models.discriminators.PatchGAN` (2,764,737 parameters, official layout).

Norms (``norm=``): ``'instance'`` = ``InstanceNorm2d(affine=False, track_running_stats=False)`` and then the
convs before a norm keep their bias (official ``use_bias = norm is instance``); ``'batch'`` =
:class:`BatchStatNorm` (affine, bias-free convs before it).

Initialisation: official ``init_type='normal', init_gain=0.02``: every conv / transposed-conv kernel
``N(0, 0.02^2)``, biases 0, batch-norm scales ``N(1, 0.02^2)``, shifts 0.

Dropout: active only with ``train=True`` (needs a ``'dropout'`` rng); the exported module is deterministic.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxgen.models import conv_vjp
from jaxgen.models.discriminators import PatchGAN
from jaxgen.models.layers import ConvTranspose, Dropout, normal_init

__all__ = [
    "BatchNormPatchGAN",
    "BatchStatNorm",
    "NORMS",
    "ResnetGenerator",
    "UnetGenerator",
]

Dtype = Any
NORMS = ("instance", "batch")
INIT_STD = 0.02  # official init_gain


class BatchStatNorm(nn.Module):
    """PyTorch ``BatchNorm2d(affine=True)`` in training mode: ``(x - mean) / sqrt(var + eps) * scale + bias`` with
    the mean and biased variance of ``x`` over batch, height and width (float32), per channel.

    No running averages are kept: the pix2pix protocol never reads them (``test.py`` runs the networks in
    training mode unless ``--eval``), so inference also normalises with its own batch's statistics. Inside the
    jitted, data-parallel train step the statistics are those of the *global* batch (XLA reduces across the
    ``data`` mesh axis, as ``SyncBatchNorm``): results do not depend on the device count (the official
    ``nn.DataParallel`` computes them per GPU). ``scale ~ N(1, 0.02^2)``, ``bias = 0`` (official init).
    """

    epsilon: float = 1e-5
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        c = x.shape[-1]
        scale = self.param("scale", lambda k, s, d: 1.0 + normal_init(INIT_STD)(k, s, d), (c,), self.param_dtype)
        bias = self.param("bias", nn.initializers.zeros, (c,), self.param_dtype)
        x32 = x.astype(jnp.float32)
        mean = x32.mean(axis=(0, 1, 2))
        var = jnp.square(x32 - mean).mean(axis=(0, 1, 2))
        y = (x32 - mean) * jax.lax.rsqrt(var + self.epsilon) * scale.astype(jnp.float32) + bias.astype(jnp.float32)
        return y.astype(self.dtype)


def _norm(kind: str, name: str, dtype: Dtype, param_dtype: Dtype) -> nn.Module:
    if kind == "instance":
        return nn.InstanceNorm(epsilon=1e-5, use_scale=False, use_bias=False, use_fast_variance=False,
                               dtype=dtype, param_dtype=param_dtype, name=name)
    return BatchStatNorm(dtype=dtype, param_dtype=param_dtype, name=name)


def _check(module: str, x: jax.Array, num_in_ch: int, norm: str, multiple: int) -> None:
    if norm not in NORMS:
        raise ValueError(f"{module}.norm={norm!r}; expected one of {NORMS}")
    if x.ndim != 4 or x.shape[-1] != num_in_ch:
        raise ValueError(f"{module} expects [B,H,W,{num_in_ch}] images; got shape {tuple(x.shape)}")
    if x.shape[1] % multiple or x.shape[2] % multiple:
        raise ValueError(f"{module} needs height and width divisible by {multiple}; got {x.shape[1]}x{x.shape[2]}")


def _conv(features: int, kernel: int, stride: int, padding: int, use_bias: bool, name: str, dtype: Dtype,
          param_dtype: Dtype) -> nn.Conv:
    return nn.Conv(features, (kernel, kernel), (stride, stride), padding=((padding, padding), (padding, padding)),
                   use_bias=use_bias, kernel_init=normal_init(INIT_STD), bias_init=nn.initializers.zeros,
                   dtype=dtype, param_dtype=param_dtype, name=name,
                   conv_general_dilated=conv_vjp.override_or_lax())  # oneDNN when chosen, else XLA's as it is


def _conv_transpose(features: int, kernel: int, padding: int, output_padding: int, use_bias: bool, name: str,
                    dtype: Dtype, param_dtype: Dtype) -> ConvTranspose:
    """PyTorch ``ConvTranspose2d(in, features, kernel, stride=2, padding, output_padding, bias=use_bias)`` (output
    side ``2h`` for ``kernel = 2 * padding + 2 - output_padding``), the same mapping as
    :func:`jaxgen.models.layers.conv_transpose` plus an optional bias; kernel ``N(0, 0.02^2)``, bias 0."""
    lo = kernel - 1 - padding
    return ConvTranspose(features, (kernel, kernel), strides=(2, 2),
                         padding=((lo, lo + output_padding), (lo, lo + output_padding)), use_bias=use_bias,
                         kernel_init=normal_init(INIT_STD), bias_init=nn.initializers.zeros, dtype=dtype,
                         param_dtype=param_dtype, name=name)  # oneDNN when chosen, else flax's lax call


def _reflect(x: jax.Array, p: int) -> jax.Array:
    """``nn.ReflectionPad2d(p)`` on NHWC."""
    return jnp.pad(x, ((0, 0), (p, p), (p, p), (0, 0)), mode="reflect")


class ResnetGenerator(nn.Module):
    """CycleGAN's ResNet generator (official ``ResnetGenerator``, ``padding_type='reflect'``); see module doc.

    ``[B,H,W,num_in_ch] -> [B,H,W,num_out_ch]`` in ``[-1,1]`` (``[0,1]`` with ``unit_range_io``).
    """

    num_in_ch: int = 3
    num_out_ch: int = 3
    ngf: int = 64
    n_blocks: int = 9
    norm: str = "instance"
    use_dropout: bool = False
    unit_range_io: bool = False
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
        _check("ResnetGenerator", x, self.num_in_ch, self.norm, 4)
        if self.n_blocks < 0 or self.ngf < 1:
            raise ValueError(f"ResnetGenerator: ngf={self.ngf}, n_blocks={self.n_blocks}; expected ngf >= 1, n_blocks >= 0")
        kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
        bias = self.norm == "instance"
        x = x.astype(self.dtype)
        if self.unit_range_io:
            x = 2.0 * x - 1.0
        h = _conv(self.ngf, 7, 1, 0, bias, "conv_in", **kw)(_reflect(x, 3))
        h = nn.relu(_norm(self.norm, "norm_in", **kw)(h))
        for i in range(2):
            h = _conv(self.ngf * 2 ** (i + 1), 3, 2, 1, bias, f"down{i}", **kw)(h)
            h = nn.relu(_norm(self.norm, f"down{i}_norm", **kw)(h))
        dim = self.ngf * 4
        for b in range(self.n_blocks):
            r = _conv(dim, 3, 1, 0, bias, f"block{b}_conv1", **kw)(_reflect(h, 1))
            r = nn.relu(_norm(self.norm, f"block{b}_norm1", **kw)(r))
            if self.use_dropout:
                r = Dropout(0.5, deterministic=not train)(r)
            r = _conv(dim, 3, 1, 0, bias, f"block{b}_conv2", **kw)(_reflect(r, 1))
            h = h + _norm(self.norm, f"block{b}_norm2", **kw)(r)
        for i in range(2):
            features = self.ngf * 2 ** (1 - i)
            h = _conv_transpose(features, 3, 1, 1, bias, f"up{i}", **kw)(h)
            h = nn.relu(_norm(self.norm, f"up{i}_norm", **kw)(h))
        y = jnp.tanh(_conv(self.num_out_ch, 7, 1, 0, True, "conv_out", **kw)(_reflect(h, 3)))
        y = y.astype(jnp.float32)
        return (y + 1.0) / 2.0 if self.unit_range_io else y


class UnetGenerator(nn.Module):
    """pix2pix's U-Net (official ``UnetGenerator`` of nested ``UnetSkipConnectionBlock``s); see module doc.

    Level ``l = 0..num_downs-1`` (0 outermost): down conv to ``inner[l] = ngf * min(2**l, 8)`` channels, preceded
    by LeakyReLU(0.2) except at level 0 and followed by the norm except at levels 0 and ``num_downs-1``; the up
    path mirrors it (ReLU, transposed conv to ``outer[l]``, norm, dropout at ``4 <= l <= num_downs-2``) and
    concatenates ``[x_l, up]``; level 0 ends in a transposed conv with bias and ``tanh``.
    ``[B,H,W,num_in_ch] -> [B,H,W,num_out_ch]`` in ``[-1,1]`` (``[0,1]`` with ``unit_range_io``).
    """

    num_in_ch: int = 3
    num_out_ch: int = 3
    num_downs: int = 8
    ngf: int = 64
    norm: str = "batch"
    use_dropout: bool = True
    unit_range_io: bool = False
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
        if self.num_downs < 5:
            raise ValueError(f"UnetGenerator.num_downs={self.num_downs}; expected >= 5 (unet_128: 7, unet_256: 8)")
        _check("UnetGenerator", x, self.num_in_ch, self.norm, 2**self.num_downs)
        kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
        bias = self.norm == "instance"
        n, ngf = self.num_downs, self.ngf
        inner = [ngf * min(2**lvl, 8) for lvl in range(n)]
        outer = [self.num_out_ch] + inner[:-1]
        x = x.astype(self.dtype)
        if self.unit_range_io:
            x = 2.0 * x - 1.0
        level_inputs, h = [], x
        for lvl in range(n):
            level_inputs.append(h)
            if lvl > 0:
                h = nn.leaky_relu(h, 0.2)
            h = _conv(inner[lvl], 4, 2, 1, bias, f"down{lvl}", **kw)(h)
            if 0 < lvl < n - 1:
                h = _norm(self.norm, f"down{lvl}_norm", **kw)(h)
        for lvl in reversed(range(n)):
            h = nn.relu(h)
            h = _conv_transpose(outer[lvl], 4, 1, 0, lvl == 0 or bias, f"up{lvl}", **kw)(h)
            if lvl == 0:
                break
            h = _norm(self.norm, f"up{lvl}_norm", **kw)(h)
            if self.use_dropout and 4 <= lvl <= n - 2:
                h = Dropout(0.5, deterministic=not train)(h)
            h = jnp.concatenate([level_inputs[lvl], h], axis=-1)
        y = jnp.tanh(h).astype(jnp.float32)
        return (y + 1.0) / 2.0 if self.unit_range_io else y


class BatchNormPatchGAN(nn.Module):
    """pix2pix's 70x70 PatchGAN: official ``NLayerDiscriminator(norm='batch')``.

    4x4 conv ``ndf`` stride 2 (bias) + LeakyReLU(0.2); for ``n = 1..n_layers`` a bias-free 4x4 conv to
    ``ndf * min(2**n, 8)`` (stride 2, the last stride 1) + :class:`BatchStatNorm` + LeakyReLU(0.2); a 4x4
    stride-1 conv to 1 logit (bias). Padding 1 everywhere. ``[B,H,W,num_in_ch] -> [B,H/8-2,W/8-2,1]`` float32
    logits. 2,768,705 parameters for ``num_in_ch=6`` (conditional: ``[input, output]``), ``ndf=64``.
    """

    num_in_ch: int = 6
    ndf: int = 64
    n_layers: int = 3
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        if x.ndim != 4 or x.shape[-1] != self.num_in_ch:
            raise ValueError(f"BatchNormPatchGAN expects [B,H,W,{self.num_in_ch}] inputs; got shape {tuple(x.shape)}")
        if min(x.shape[1:3]) < 3 * 2**self.n_layers:
            raise ValueError(f"BatchNormPatchGAN(n_layers={self.n_layers}) needs inputs of at least "
                             f"{3 * 2**self.n_layers} pixels a side; got {x.shape[1]}x{x.shape[2]}")
        kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
        h = nn.leaky_relu(_conv(self.ndf, 4, 2, 1, True, "conv0", **kw)(x.astype(self.dtype)), 0.2)
        for n in range(1, self.n_layers + 1):
            stride = 2 if n < self.n_layers else 1
            h = _conv(self.ndf * min(2**n, 8), 4, stride, 1, False, f"conv{n}", **kw)(h)
            h = nn.leaky_relu(BatchStatNorm(name=f"norm{n}", **kw)(h), 0.2)
        return _conv(1, 4, 1, 1, True, "conv_out", **kw)(h).astype(jnp.float32)


def count_params(module: nn.Module, shape: tuple[int, ...]) -> int:
    """Number of parameters of ``module`` for an input of ``shape`` (abstract init, nothing computed)."""
    variables = jax.eval_shape(functools.partial(module.init, train=False) if _takes_train(module) else module.init,
                               jax.random.key(0), jax.ShapeDtypeStruct(shape, jnp.float32))
    return sum(math.prod(x.shape) for x in jax.tree.leaves(variables["params"]))


def _takes_train(module: nn.Module) -> bool:
    return isinstance(module, (ResnetGenerator, UnetGenerator))
