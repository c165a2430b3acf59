"""VDSR (Kim, Lee, Lee, "Accurate Image Super-Resolution Using Very Deep Convolutional Networks", CVPR 2016).

Reference: the authors' MatConvNet release (cv.snu.ac.kr/research/VDSR); parameter names follow the common
PyTorch port github.com/twtygqyy/pytorch-vdsr (``input``, ``residual_layer.N.conv``, ``output``).
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxgen.models import layers as blocks

Dtype = Any


class VDSR(nn.Module):
    """VDSR: bicubic pre-upsampling, ``num_layers`` 3x3 convs (ReLU between), global residual on the input.

    ``[B,h,w,num_in_ch]`` in ``[0,1]`` -> ``[B,h*scale,w*scale,num_out_ch]`` float32: ``y = bicubic(x) +
    net(bicubic(x))`` with MATLAB bicubic (``jaxgen.image.imresize``) computed and added in float32.
    ``upsample_input=False`` takes an already-upsampled input and keeps its size. Paper: 20 layers, 64
    features, Y channel (``num_in_ch=num_out_ch=1``; RGB by default here, so the residual needs
    ``num_in_ch == num_out_ch``). Init: He normal (fan-in), zero biases. ``use_bias=False`` matches the
    twtygqyy port; the published "665K" parameters is the kernel count of the Y model (664,704).
    Names (twtygqyy port -> flax): ``input`` -> ``input``, ``residual_layer.i.conv`` -> ``residual_layer_i``
    (i < num_layers - 2), ``output`` -> ``output``. Any integer ``scale >= 1``.
    """

    scale: int
    num_in_ch: int = 3
    num_out_ch: int = 3
    num_feat: int = 64
    num_layers: int = 20
    use_bias: bool = True
    upsample_input: bool = True
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    def __post_init__(self) -> None:
        blocks.check_scale("VDSR", self.scale, "any integer >= 1", blocks.is_positive)
        if self.num_layers < 2:
            raise ValueError(f"VDSR needs num_layers >= 2; got {self.num_layers}")
        if self.num_in_ch != self.num_out_ch:
            raise ValueError(
                f"VDSR's global residual needs num_in_ch == num_out_ch; got {self.num_in_ch}, {self.num_out_ch}"
            )
        super().__post_init__()

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        blocks.check_input(x, self.num_in_ch, "VDSR")
        x = x.astype(jnp.float32)
        if self.upsample_input:
            x = blocks.bicubic_upsample(x, self.scale)
        kw = dict(use_bias=self.use_bias, dtype=self.dtype, param_dtype=self.param_dtype)
        init, f = blocks.he_init(0.0), self.num_feat
        h = nn.relu(blocks.conv(f, 3, self.num_in_ch, init, name="input", **kw)(x.astype(self.dtype)))
        for i in range(self.num_layers - 2):
            h = nn.relu(blocks.conv(f, 3, f, init, name=f"residual_layer_{i}", **kw)(h))
        h = blocks.conv(self.num_out_ch, 3, f, init, name="output", **kw)(h)
        return h.astype(jnp.float32) + x
