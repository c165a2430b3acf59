"""Johnson et al. (ECCV 2016) feed-forward style transfer network, as pytorch/examples ``fast_neural_style``
(``neural_style/transformer_net.py``: ``TransformerNet``, ``ConvLayer``, ``ResidualBlock``, ``UpsampleConvLayer``).

Layout (NHWC; every conv has reflection padding ``k // 2`` and a bias; ``IN`` = affine ``InstanceNorm2d``, eps
1e-5, biased variance, no running statistics)::

    conv1 9x9 32 s1 + in1 + ReLU -> conv2 3x3 64 s2 + in2 + ReLU -> conv3 3x3 128 s2 + in3 + ReLU
    -> res1..res5 (conv 3x3 + IN + ReLU + conv 3x3 + IN, plus the input)
    -> deconv1: nearest x2, conv 3x3 64 + in4 + ReLU -> deconv2: nearest x2, conv 3x3 32 + in5 + ReLU
    -> deconv3: conv 9x9 3 (no norm, no activation)

Flax names mirror the PyTorch keys (``conv1.conv2d.weight`` <-> ``conv1/conv2d/kernel``, ``in1.weight`` <->
``in1/scale``; ``jaxgen.weights.convert`` arch ``transformer_net``). The official network works on pixel values in
``[0,255]``; this module takes ``[B,H,W,3]`` float in ``[0,1]``, multiplies by ``pixel_scale`` (255) and divides
the output by it, so the official weights apply unchanged. The output is not clamped (the official ``stylize``
clamps to [0,255] when saving). Sides divisible by 4 keep their size (others come back rounded up to
``4 * ceil(side / 4)``). Init: PyTorch defaults (convs ``U(+-1/sqrt(fan_in))``, IN scale 1, bias 0).
``channels``/``num_res_blocks`` shrink it for tests (32 and 5 as published).
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxgen.models import conv_vjp
from jaxgen.models.layers import check_input, torch_init, upsample_nearest

__all__ = ["ReflectConv", "TransformerNet", "instance_norm"]

Dtype = Any


def instance_norm(name: str, dtype: Dtype, param_dtype: Dtype) -> nn.InstanceNorm:
    """``InstanceNorm2d(C, affine=True)``: eps 1e-5, two-pass (biased) variance, ``scale``/``bias`` params."""
    return nn.InstanceNorm(epsilon=1e-5, use_fast_variance=False, dtype=dtype, param_dtype=param_dtype, name=name)


class ReflectConv(nn.Module):
    """pytorch/examples ``ConvLayer`` / ``UpsampleConvLayer``: optional nearest ``upsample``, reflection padding
    ``k // 2``, conv (child ``conv2d``) with stride ``stride``."""

    features: int
    kernel_size: int
    stride: int = 1
    upsample: int = 1
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        if self.upsample > 1:
            x = upsample_nearest(x, self.upsample)
        p = self.kernel_size // 2
        x = jnp.pad(x, ((0, 0), (p, p), (p, p), (0, 0)), mode="reflect")
        kernel_init, bias_init = torch_init(x.shape[-1] * self.kernel_size**2)
        return nn.Conv(self.features, (self.kernel_size, self.kernel_size), strides=(self.stride, self.stride),
                       padding="VALID", kernel_init=kernel_init, bias_init=bias_init, dtype=self.dtype,
                       param_dtype=self.param_dtype, name="conv2d",
                       conv_general_dilated=conv_vjp.flax_conv_fn())(x)


class _ResidualBlock(nn.Module):
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
        c = x.shape[-1]
        out = nn.relu(instance_norm("in1", **kw)(ReflectConv(c, 3, name="conv1", **kw)(x)))
        out = instance_norm("in2", **kw)(ReflectConv(c, 3, name="conv2", **kw)(out))
        return out + x


class TransformerNet(nn.Module):
    """``[B,H,W,3]`` float RGB in ``[0,1]`` -> ``[B,H,W,3]`` (H, W multiples of 4; see the module docstring)."""

    channels: int = 32
    num_res_blocks: int = 5
    pixel_scale: float = 255.0
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        check_input(x, 3, "TransformerNet")
        if self.channels < 1 or self.num_res_blocks < 0:
            raise ValueError(f"TransformerNet channels={self.channels}, num_res_blocks={self.num_res_blocks}: "
                             "expected channels >= 1, blocks >= 0")
        kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
        c = self.channels
        y = x.astype(self.dtype) * self.pixel_scale
        y = nn.relu(instance_norm("in1", **kw)(ReflectConv(c, 9, name="conv1", **kw)(y)))
        y = nn.relu(instance_norm("in2", **kw)(ReflectConv(2 * c, 3, 2, name="conv2", **kw)(y)))
        y = nn.relu(instance_norm("in3", **kw)(ReflectConv(4 * c, 3, 2, name="conv3", **kw)(y)))
        for i in range(1, self.num_res_blocks + 1):
            y = _ResidualBlock(name=f"res{i}", **kw)(y)
        y = nn.relu(instance_norm("in4", **kw)(ReflectConv(2 * c, 3, upsample=2, name="deconv1", **kw)(y)))
        y = nn.relu(instance_norm("in5", **kw)(ReflectConv(c, 3, upsample=2, name="deconv2", **kw)(y)))
        y = ReflectConv(3, 9, name="deconv3", **kw)(y)
        return (y / self.pixel_scale).astype(jnp.float32)
