"""waifu2x networks (nagadomi): ``upconv_7`` (x2) and the cascaded U-Net ``cunet`` (x1 denoise, x2).

References: the author's PyTorch port github.com/nagadomi/nunif ``waifu2x/models/upconv_7.py`` (``UpConv7``) and
``waifu2x/models/cunet.py`` (``UNet1``, ``UNet2``, ``CUNet``, ``UpCUNet``), commit
42437232134efb0a9a8a7deaecd9c4200e703b28; the ncnn program github.com/nihui/waifu2x-ncnn-vulkan (commit
64914665c45893135c9e50c1c296170a121b9f77, ``src/main.cpp``, ``src/waifu2x.cpp``, ``src/waifu2x_preproc.comp``),
whose models are the ones jaxgen's zoo reads.

All convolutions are unpadded, so the programs pad the input first; jaxgen follows waifu2x-ncnn-vulkan:

* replicate padding (``copy_make_border(..., BORDER_REPLICATE)``, the preprocessing shader's ``clamp``) of
  ``7`` pixels (upconv_7), ``18`` (cunet x2) or ``28`` (cunet x1) on every side, plus bottom / right pixels so
  that the padded side divides by 2 (x2) or 4 (cunet x1);
* the output's top-left ``[h*s, w*s]`` is kept.

So each module maps ``[B,h,w,3]`` in ``[0,1]`` to ``[B,h*s,w*s,3]`` (not clamped; the caller clamps; nunif
clamps too) for any ``h, w >= 1``; :meth:`valid` is the bare graph. The ncnn graphs have no clamp between the two
U-Nets (nunif's ``no_clip=True``, the setting its trainer uses), and neither has jaxgen. CUNet's
squeeze-excitation means are per input (per tile when tiled), as in both programs.

Parameter names are nunif's: ``net_{2k}`` <-> ``net.{2k}`` (UpConv7, ``net.12`` the ``ConvTranspose2d(256,
3, 4, 2, 3)``), and for CUNet the names of :mod:`jaxgen.models.realcugan` (``unet1/conv1/conv_0`` <->
``unet1.conv1.conv.0``; the U-Nets are the same code).
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxgen.models import layers as blocks
from jaxgen.models.realcugan import UNet1, UNet2, cascade_pad, valid_conv

__all__ = ["CUNet", "UpConv7"]

Dtype = Any

UPCONV7_PAD = 7
CUNET_PADDING = {1: (28, 4), 2: (18, 2)}  # scale -> (prepadding, multiple)  (waifu2x-ncnn-vulkan main.cpp)


class UpConv7(nn.Module):
    """waifu2x ``upconv_7``: six valid 3x3 convs (16, 32, 64, 128, 128, 256 channels, LeakyReLU 0.1), then
    ``ConvTranspose2d(256, 3, 4, 2, 3)``; a padded side ``n`` gives ``2n - 28``. ``scale`` is always 2."""

    scale: int = 2
    num_in_ch: int = 3
    num_out_ch: int = 3
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    def __post_init__(self) -> None:
        blocks.check_scale("UpConv7 (waifu2x)", self.scale, "2", lambda s: s == 2)
        super().__post_init__()

    def setup(self) -> None:
        kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
        chans = (self.num_in_ch, 16, 32, 64, 128, 128, 256)
        self.convs = [valid_conv(c_out, 3, c_in, name=f"net_{2 * i}", **kw)
                      for i, (c_in, c_out) in enumerate(zip(chans[:-1], chans[1:]))]
        self.deconv = blocks.conv_transpose(self.num_out_ch, 4, 2, 3, blocks.torch_init, output_padding=0,
                                            name="net_12", **kw)

    def valid(self, x: jax.Array) -> jax.Array:
        x = x.astype(self.dtype)
        for conv in self.convs:
            x = nn.leaky_relu(conv(x), 0.1)
        return self.deconv(x).astype(jnp.float32)

    def __call__(self, x: jax.Array) -> jax.Array:
        blocks.check_input(x, self.num_in_ch, "UpConv7")
        _, h, w, _ = x.shape
        y = self.valid(cascade_pad(x.astype(jnp.float32), UPCONV7_PAD, 2, "edge"))
        return y[:, : 2 * h, : 2 * w, :]


class CUNet(nn.Module):
    """waifu2x ``cunet``: ``scale=2`` is nunif's ``UpCUNet`` (UNet1 ending in ``ConvTranspose2d(64, 3, 4, 2, 3)``),
    ``scale=1`` its ``CUNet`` (UNet1 ending in a valid 3x3 conv); output ``unet2(z1) + crop20(z1)``."""

    scale: int = 2
    num_in_ch: int = 3
    num_out_ch: int = 3
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    def __post_init__(self) -> None:
        blocks.check_scale("CUNet (waifu2x)", self.scale, "1 or 2", lambda s: s in CUNET_PADDING)
        if self.num_in_ch != self.num_out_ch:
            raise ValueError(f"CUNet needs num_in_ch == num_out_ch; got {self.num_in_ch}, {self.num_out_ch}")
        super().__post_init__()

    def setup(self) -> None:
        kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
        bottom = "deconv2" if self.scale == 2 else "conv"
        self.unet1 = UNet1(self.num_in_ch, self.num_out_ch, bottom, name="unet1", **kw)
        self.unet2 = UNet2(self.num_in_ch, self.num_out_ch, name="unet2", **kw)

    def valid(self, x: jax.Array) -> jax.Array:
        z1 = self.unet1(x.astype(self.dtype))
        return (self.unet2(z1) + z1[:, 20:-20, 20:-20, :]).astype(jnp.float32)

    def __call__(self, x: jax.Array) -> jax.Array:
        blocks.check_input(x, self.num_in_ch, "CUNet")
        _, h, w, _ = x.shape
        pad, multiple = CUNET_PADDING[self.scale]
        y = self.valid(cascade_pad(x.astype(jnp.float32), pad, multiple, "edge"))
        return y[:, : h * self.scale, : w * self.scale, :]

