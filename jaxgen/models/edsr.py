"""EDSR (Lim et al., "Enhanced Deep Residual Networks for Single Image Super-Resolution", CVPR-W 2017).

Reference: github.com/sanghyun-son/EDSR-PyTorch (``src/model/edsr.py``, ``src/model/common.py``).
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxgen.models import layers as blocks

Dtype = Any


class EDSR(nn.Module):
    """EDSR: mean shift, ``head`` conv, ``num_blocks`` ResBlocks + conv (global skip), pixel-shuffle ``tail``.

    ``[B,h,w,num_in_ch]`` in ``[0,1]`` -> ``[B,h*scale,w*scale,num_out_ch]`` float32. Defaults are
    EDSR-baseline (16 blocks, 64 features, ``res_scale=1``; 1,369,859 / 1,554,499 / 1,517,571 parameters for
    x2/x3/x4); full EDSR is ``num_blocks=32, num_feat=256, res_scale=0.1`` (40,729,603 for x2, 43,089,923 for x4).
    Scale 3 or a power of 2 (2, 4, 8). PyTorch default init, as the official code.

    The DIV2K mean (``rgb_mean``; ``None`` disables the shift, e.g. for Y input) is subtracted from the
    input and added to the output as constants, in float32. ``img_range`` multiplies the mean-shifted input
    and divides the output (BasicSR's ``img_range``): 1 is official ``--rgb_range 1``; 255 runs official
    ``rgb_range=255`` weights unchanged on ``[0,1]`` images.

    Official -> flax names: ``head.0`` -> ``head_0``; ``body.i.body.0`` / ``body.i.body.2`` -> ``body_i/conv1`` /
    ``body_i/conv2``; ``body.{num_blocks}`` -> ``body_{num_blocks}``; ``tail.0.{2k}`` -> ``tail_0/conv_k``;
    ``tail.1`` -> ``tail_1``. ``weight`` (OIHW) -> ``kernel`` (HWIO), ``bias`` -> ``bias``.
    """

    scale: int
    num_in_ch: int = 3
    num_out_ch: int = 3
    num_feat: int = 64
    num_blocks: int = 16
    res_scale: float = 1.0
    scan_blocks: bool = True
    rgb_mean: tuple[float, ...] | None = blocks.DIV2K_RGB_MEAN
    img_range: float = 1.0
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    def __post_init__(self) -> None:
        blocks.check_scale("EDSR", self.scale, "3 or a power of 2 (2, 4, 8, ...)", blocks.is_upsampler_scale)
        super().__post_init__()

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        blocks.check_input(x, self.num_in_ch, "EDSR")
        kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
        f = self.num_feat
        x = blocks.sub_mean(x, self.rgb_mean, self.img_range).astype(self.dtype)
        x = blocks.conv(f, 3, self.num_in_ch, name="head_0", **kw)(x)
        res = blocks.repeat_blocks(
            self, lambda **k: blocks.ResidualBlockNoBN(self.res_scale, "relu", blocks.torch_init, **kw, **k),
            [f"body_{i}" for i in range(self.num_blocks)], x, self.scan_blocks)
        res = blocks.conv(f, 3, f, name=f"body_{self.num_blocks}", **kw)(res) + x
        out = blocks.Upsampler(self.scale, name="tail_0", **kw)(res)
        out = blocks.conv(self.num_out_ch, 3, f, name="tail_1", **kw)(out)
        return blocks.add_mean(out, self.rgb_mean, self.img_range)

