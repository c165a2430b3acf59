"""SRCNN (Dong et al., "Image Super-Resolution Using Deep Convolutional Networks", ECCV 2014 / TPAMI 2016).

Reference: the authors' Caffe/MATLAB release (mmlab.ie.cuhk.edu.hk/projects/SRCNN.html); no official PyTorch.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxgen.models import layers as blocks

Dtype = Any


class SRCNN(nn.Module):
    """SRCNN: bicubic pre-upsampling, then ``conv f1 -> ReLU -> conv f2 -> ReLU -> conv f3``.

    ``[B,h,w,num_in_ch]`` in ``[0,1]`` -> ``[B,h*scale,w*scale,num_out_ch]`` float32. The LR input is upsampled
    inside with MATLAB bicubic (``jaxgen.image.imresize``, as the paper's pipeline); ``upsample_input=False``
    takes an already-upsampled ``[B,H,W,C]`` input and keeps its size. ``kernel_sizes=(9,1,5)`` (default, the
    ECCV network) or ``(9,5,5)`` / ``(9,3,5)`` (TPAMI's better variants), ``filters=(64,32)``.

    Differences from the paper, stated: SAME zero padding keeps the output the size of the (upsampled) input,
    where the paper's valid convs shrink it by ``f1+f2+f3-3`` pixels; ``num_in_ch=num_out_ch=3`` (RGB) by
    default for jaxgen's uniform pipeline, the paper works on Y only (``num_in_ch=num_out_ch=1``).
    Init as the paper: ``N(0, 0.001^2)`` kernels, zero biases. Kernel-only counts (the paper's, for Y):
    9-1-5: 8,032, 9-3-5: 24,416, 9-5-5: 57,184. Parameters: ``conv1``, ``conv2``, ``conv3``. Any integer
    ``scale >= 1``.
    """

    scale: int
    num_in_ch: int = 3
    num_out_ch: int = 3
    kernel_sizes: tuple[int, int, int] = (9, 1, 5)
    filters: tuple[int, int] = (64, 32)
    upsample_input: bool = True
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    def __post_init__(self) -> None:
        blocks.check_scale("SRCNN", self.scale, "any integer >= 1", blocks.is_positive)
        if len(self.kernel_sizes) != 3 or len(self.filters) != 2:
            raise ValueError(f"SRCNN needs 3 kernel_sizes and 2 filters; got {self.kernel_sizes}, {self.filters}")
        super().__post_init__()

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        blocks.check_input(x, self.num_in_ch, "SRCNN")
        x = x.astype(jnp.float32)
        if self.upsample_input:
            x = blocks.bicubic_upsample(x, self.scale)
        kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
        init = blocks.gaussian_init(1e-3)
        (k1, k2, k3), (f1, f2) = self.kernel_sizes, self.filters
        h = x.astype(self.dtype)
        h = nn.relu(blocks.conv(f1, k1, self.num_in_ch, init, name="conv1", **kw)(h))
        h = nn.relu(blocks.conv(f2, k2, f1, init, name="conv2", **kw)(h))
        h = blocks.conv(self.num_out_ch, k3, f2, init, name="conv3", **kw)(h)
        return h.astype(jnp.float32)
