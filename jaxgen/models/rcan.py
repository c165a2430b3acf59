"""RCAN (Zhang et al., "Image Super-Resolution Using Very Deep Residual Channel Attention Networks", ECCV 2018).

Reference: github.com/yulunzhang/RCAN (``RCAN_TrainCode/code/model/rcan.py``, EDSR-PyTorch framework).
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxgen.models import layers as blocks

Dtype = Any


class ResidualGroup(nn.Module):
    """RCAN residual group: ``x + conv(RCAB_n(...RCAB_1(x)))`` (official ``body.0..n-1`` RCABs, ``body.n`` conv).

    ``[B,H,W,C] -> same``.
    """

    num_blocks: int = 20
    reduction: int = 16
    res_scale: float = 1.0
    scan_blocks: bool = True
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        c = x.shape[-1]
        kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
        res = blocks.repeat_blocks(self, lambda **k: blocks.RCAB(self.reduction, self.res_scale, **kw, **k),
                                   [f"body_{i}" for i in range(self.num_blocks)], x, self.scan_blocks)
        return blocks.conv(c, 3, c, name=f"body_{self.num_blocks}", **kw)(res) + x


class RCAN(nn.Module):
    """RCAN: mean shift, ``head`` conv, ``num_groups`` residual groups of ``num_blocks`` RCABs + conv (long
    skip), EDSR pixel-shuffle ``tail``.

    ``[B,h,w,num_in_ch]`` in ``[0,1]`` -> ``[B,h*scale,w*scale,num_out_ch]`` float32. Paper: 10 groups x 20
    RCABs, 64 features, channel-attention reduction 16 (15,592,355 parameters at x4). Scale 3 or a power of 2
    (2, 4, 8). PyTorch default init. Mean shift and ``img_range`` exactly as ``EDSR`` (official RCAN models use
    ``rgb_range=255``: ``img_range=255`` runs them unchanged on ``[0,1]`` images).

    Official -> flax names: ``head.0`` -> ``head_0``; ``body.g.body.b.body.{0,2}`` -> ``body_g/body_b/body_{0,2}``
    (RCAB convs); ``body.g.body.b.body.3.conv_du.{0,2}`` -> ``body_g/body_b/body_3/conv_du_{0,2}``;
    ``body.g.body.{num_blocks}`` -> ``body_g/body_{num_blocks}``; ``body.{num_groups}`` -> ``body_{num_groups}``;
    ``tail.0.{2k}`` -> ``tail_0/conv_k``; ``tail.1`` -> ``tail_1``.
    """

    scale: int
    num_in_ch: int = 3
    num_out_ch: int = 3
    num_feat: int = 64
    num_groups: int = 10
    num_blocks: int = 20
    reduction: int = 16
    res_scale: float = 1.0
    scan_blocks: bool = True
    rgb_mean: tuple[float, ...] | None = blocks.DIV2K_RGB_MEAN
    img_range: float = 1.0
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    def __post_init__(self) -> None:
        blocks.check_scale("RCAN", self.scale, "3 or a power of 2 (2, 4, 8, ...)", blocks.is_upsampler_scale)
        super().__post_init__()

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        blocks.check_input(x, self.num_in_ch, "RCAN")
        kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
        f = self.num_feat
        x = blocks.sub_mean(x, self.rgb_mean, self.img_range).astype(self.dtype)
        x = blocks.conv(f, 3, self.num_in_ch, name="head_0", **kw)(x)
        res = blocks.repeat_blocks(
            self, lambda **k: ResidualGroup(self.num_blocks, self.reduction, self.res_scale, self.scan_blocks, **kw, **k),
            [f"body_{g}" for g in range(self.num_groups)], x, self.scan_blocks)
        res = blocks.conv(f, 3, f, name=f"body_{self.num_groups}", **kw)(res) + x
        out = blocks.Upsampler(self.scale, name="tail_0", **kw)(res)
        out = blocks.conv(self.num_out_ch, 3, f, name="tail_1", **kw)(out)
        return blocks.add_mean(out, self.rgb_mean, self.img_range)
