"""ESPCN (Shi et al., "Real-Time Single Image and Video Super-Resolution Using an Efficient Sub-Pixel
Convolutional Neural Network", CVPR 2016). No official code was released."""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxgen.models import layers as blocks

Dtype = Any


class ESPCN(nn.Module):
    """ESPCN: ``conv5x5 64 -> tanh -> conv3x3 32 -> tanh -> conv3x3 C*r^2 -> pixel_shuffle(r)`` in LR space.

    ``[B,h,w,num_in_ch]`` in ``[0,1]`` -> ``[B,h*scale,w*scale,num_out_ch]`` float32 (no output activation).
    Paper config ``kernel_sizes=(5,3,3)``, ``filters=(64,32)``, tanh; the paper works on Y
    (``num_in_ch=num_out_ch=1``), the default here is RGB. PyTorch default init (no official code).
    Parameters ``conv1``, ``conv2``, ``conv3``. Any integer ``scale >= 1``.
    """

    scale: int
    num_in_ch: int = 3
    num_out_ch: int = 3
    kernel_sizes: tuple[int, int, int] = (5, 3, 3)
    filters: tuple[int, int] = (64, 32)
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    def __post_init__(self) -> None:
        blocks.check_scale("ESPCN", self.scale, "any integer >= 1", blocks.is_positive)
        if len(self.kernel_sizes) != 3 or len(self.filters) != 2:
            raise ValueError(f"ESPCN needs 3 kernel_sizes and 2 filters; got {self.kernel_sizes}, {self.filters}")
        super().__post_init__()

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        blocks.check_input(x, self.num_in_ch, "ESPCN")
        kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
        (k1, k2, k3), (f1, f2), r = self.kernel_sizes, self.filters, self.scale
        h = x.astype(self.dtype)
        h = jnp.tanh(blocks.conv(f1, k1, self.num_in_ch, name="conv1", **kw)(h))
        h = jnp.tanh(blocks.conv(f2, k2, f1, name="conv2", **kw)(h))
        h = blocks.conv(self.num_out_ch * r * r, k3, f2, name="conv3", **kw)(h)
        return blocks.pixel_shuffle(h, r).astype(jnp.float32)
