"""FSRCNN (Dong, Loy, Tang, "Accelerating the Super-Resolution Convolutional Neural Network", ECCV 2016).

Reference: the authors' Caffe/MATLAB release; parameter names follow the widely used PyTorch port
github.com/yjn870/FSRCNN-pytorch (``first_part``, ``mid_part``, ``last_part``).
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxgen.models import layers as blocks

Dtype = Any


class FSRCNN(nn.Module):
    """FSRCNN(d, s, m): LR-space convs, then a 9x9 stride-``scale`` deconvolution.

    ``conv5x5 d -> PReLU`` (feature extraction), ``conv1x1 s -> PReLU`` (shrinking), ``m x (conv3x3 s ->
    PReLU)`` (mapping), ``conv1x1 d -> PReLU`` (expanding), then PyTorch ``ConvTranspose2d(d, C, 9,
    stride=scale, padding=4, output_padding=scale-1)``: ``[B,h,w,num_in_ch]`` -> ``[B,h*scale,w*scale,num_out_ch]``
    float32. PReLU per channel (init 0.25). Paper defaults d=56, s=12, m=4 (FSRCNN-s: 32, 5, 1); the paper
    works on Y, the default here is RGB. Init as the paper: He normal for PReLU (``a=0.25``) on convs,
    ``N(0, 0.001^2)`` deconv, zero biases. Kernel-only counts (Y): FSRCNN 12,464, FSRCNN-s 3,937.

    Names (PyTorch ``Sequential`` index ``i`` -> ``_i``): ``first_part_0`` (conv), ``first_part_1`` (PReLU),
    ``mid_part_{0,2,..}`` (convs), ``mid_part_{1,3,..}`` (PReLUs), ``last_part`` (deconv, kernel
    ``[9,9,C,d]``: PyTorch weight ``w[d,C,kh,kw]`` is ``kernel.transpose(3,2,0,1)``). Any integer ``scale >= 1``.
    """

    scale: int
    num_in_ch: int = 3
    num_out_ch: int = 3
    d: int = 56
    s: int = 12
    m: int = 4
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    def __post_init__(self) -> None:
        blocks.check_scale("FSRCNN", self.scale, "any integer >= 1", blocks.is_positive)
        super().__post_init__()

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        blocks.check_input(x, self.num_in_ch, "FSRCNN")
        kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
        init = blocks.he_init(0.25)
        h = x.astype(self.dtype)
        h = blocks.conv(self.d, 5, self.num_in_ch, init, name="first_part_0", **kw)(h)
        h = blocks.PReLU(name="first_part_1", **kw)(h)
        layers = [(self.s, 1, self.d)] + [(self.s, 3, self.s)] * self.m + [(self.d, 1, self.s)]
        for i, (feat, k, fan) in enumerate(layers):
            h = blocks.conv(feat, k, fan, init, name=f"mid_part_{2 * i}", **kw)(h)
            h = blocks.PReLU(name=f"mid_part_{2 * i + 1}", **kw)(h)
        h = blocks.conv_transpose(
            self.num_out_ch, 9, self.scale, 4, blocks.gaussian_init(1e-3), name="last_part", **kw
        )(h)
        return h.astype(jnp.float32)
