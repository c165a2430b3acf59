"""Flax TransformerNet (Johnson et al. 2016, fast neural style) for the benchmarks only.

jaxgen has no style networks yet; this is the pytorch/examples ``fast_neural_style`` layout (reflection-padded
convs, affine instance norm with eps 1e-5, nearest x2 upsample before the decoder convs), 1,679,235 parameters,
``[B,H,W,3] -> [B,H,W,3]`` (H, W divisible by 4). Convs go through ``jaxgen.models.conv_vjp`` when it is enabled,
exactly as ``jaxgen.models.layers.conv``.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxgen.models import conv_vjp
from jaxgen.models.layers import upsample_nearest


class ConvLayer(nn.Module):
    features: int
    kernel: int
    stride: int = 1

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        p = self.kernel // 2
        x = jnp.pad(x, ((0, 0), (p, p), (p, p), (0, 0)), mode="reflect")
        return nn.Conv(self.features, (self.kernel, self.kernel), (self.stride, self.stride), padding="VALID",
                       conv_general_dilated=conv_vjp.conv_general_dilated if conv_vjp.enabled() else None)(x)


def instance_norm(name: str) -> nn.Module:
    return nn.InstanceNorm(epsilon=1e-5, name=name)


class StyleResidualBlock(nn.Module):
    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        c = x.shape[-1]
        y = nn.relu(instance_norm("in1")(ConvLayer(c, 3, name="conv1")(x)))
        return instance_norm("in2")(ConvLayer(c, 3, name="conv2")(y)) + x


class TransformerNet(nn.Module):
    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        y = nn.relu(instance_norm("in1")(ConvLayer(32, 9, name="conv1")(x)))
        y = nn.relu(instance_norm("in2")(ConvLayer(64, 3, 2, name="conv2")(y)))
        y = nn.relu(instance_norm("in3")(ConvLayer(128, 3, 2, name="conv3")(y)))
        for i in range(5):
            y = StyleResidualBlock(name=f"res{i}")(y)
        y = nn.relu(instance_norm("in4")(ConvLayer(64, 3, name="deconv1")(upsample_nearest(y, 2))))
        y = nn.relu(instance_norm("in5")(ConvLayer(32, 3, name="deconv2")(upsample_nearest(y, 2))))
        return ConvLayer(3, 9, name="deconv3")(y)
