"""Real-CUGAN (bilibili AI Lab, 2022): a cascade of two U-Nets with squeeze-excitation blocks, x2 / x3 / x4.

Reference: github.com/bilibili/ailab ``Real-CUGAN/upcunet_v3.py`` (commit 3e37c6c8f4eb6b9cbb9b6f094905e4b7dd5b348a:
``SEBlock``, ``UNetConv``, ``UNet1``, ``UNet1x3``, ``UNet2``, ``UpCunet2x``, ``UpCunet3x``, ``UpCunet4x`` and their
``forward(..., tile_mode=0)``); the ncnn port github.com/nihui/realcugan-ncnn-vulkan (commit
395302c5c70f1bff604c974e92e0a87e45c9f9ee, ``src/main.cpp``, ``src/realcugan.cpp``, ``src/realcugan_preproc.comp``)
runs the same graphs. The U-Net pieces are also waifu2x's CUNet (:mod:`jaxgen.models.waifu2x`).

Every convolution is unpadded ("valid"), so the network shrinks its input; the official code pads first:

* reflect padding (``F.pad(..., 'reflect')``; ncnn's preprocessing shader mirrors the same way) of
  ``p = 18 / 14 / 19`` pixels (x2 / x3 / x4) on every side, plus extra bottom / right pixels so that the side
  divides by 2 (x2, x4) or 4 (x3);
* the raw graph (:meth:`UpCunet.valid`) maps that padded ``[B, h + 2p + e, w + 2p + e, 3]`` to an output whose
  top-left ``[h*s, w*s]`` is kept;
* x4 adds ``F.interpolate(x, scale_factor=4, mode='nearest')`` of the (unpadded) input at the end;
* ``pro`` models (``weights_pro``, marked by a ``"pro"`` key in the official ``.pth``): the input is
  ``x * 0.7 + 0.15`` and the output is mapped back with ``(y - 0.15) / 0.7`` (``RealWaifuUpScaler.np2tensor``
  and the ``pro`` branch of ``forward``).

So ``UpCunet(scale)(x)`` maps ``[B,h,w,3]`` in ``[0,1]`` to ``[B,h*s,w*s,3]`` (not clamped; the caller clamps) for
any ``h, w`` >= 1. The squeeze-excitation means are taken over the whole padded feature map, as the official
``tile_mode=0`` and an untiled ncnn run; tiled runs (``jaxgen upscale --tile``) take them per tile, which the
official ``tile_mode > 0`` / ncnn ``-x`` syncgap options avoid (not implemented here).

Parameter names are the official PyTorch ones with ``/`` for ``.`` and ``conv_{i}`` for the ``nn.Sequential``
indices: ``unet1/conv1/conv_0`` <-> ``unet1.conv1.conv.0``, ``unet2/conv3/seblock/conv1`` <->
``unet2.conv3.seblock.conv1``, ``unet1/conv_bottom`` (a ConvTranspose2d) <-> ``unet1.conv_bottom``, ``conv_final``
(x4). Transposed convolutions keep the ``[k, k, out, in]`` kernel of :func:`jaxgen.models.layers.conv_transpose`,
so the PyTorch weight ``[in, out, k, k]`` maps with the same ``transpose(2, 3, 1, 0)`` as a convolution.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxgen.models import conv_vjp
from jaxgen.models import layers as blocks

__all__ = ["SEBlock", "UNet1", "UNet2", "UNetConv", "UpCunet", "cascade_pad", "valid_conv"]

Dtype = Any

# scale -> (prepadding on every side, the padded side must divide by this)  (upcunet_v3.py forward, tile_mode=0)
REALCUGAN_PADDING = {2: (18, 2), 3: (14, 4), 4: (19, 2)}
PRO_SCALE, PRO_SHIFT = 0.7, 0.15


def valid_conv(features: int, kernel: int, in_features: int, *, stride: int = 1, name: str,
               dtype: Dtype = jnp.float32, param_dtype: Dtype = jnp.float32) -> nn.Conv:
    """PyTorch ``Conv2d(in, features, kernel, stride, 0)`` (no padding), PyTorch default init."""
    kernel_init, bias_init = blocks.torch_init(in_features * kernel * kernel)
    return nn.Conv(features, (kernel, kernel), strides=(stride, stride), padding="VALID", kernel_init=kernel_init,
                   bias_init=bias_init, dtype=dtype, param_dtype=param_dtype,
                   conv_general_dilated=conv_vjp.flax_conv_fn(), name=name)


def _deconv(features: int, kernel: int, stride: int, padding: int, *, name: str, dtype: Dtype,
            param_dtype: Dtype) -> blocks.ConvTranspose:
    """PyTorch ``ConvTranspose2d(in, features, kernel, stride, padding)``: side ``(h - 1) * stride - 2 * padding +
    kernel``."""
    return blocks.conv_transpose(features, kernel, stride, padding, blocks.torch_init, output_padding=0,
                                 dtype=dtype, param_dtype=param_dtype, name=name)


def _lrelu(x: jax.Array) -> jax.Array:
    return nn.leaky_relu(x, 0.1)


def _crop(x: jax.Array, n: int) -> jax.Array:
    """``F.pad(x, (-n, -n, -n, -n))``: drop ``n`` pixels on every side."""
    return x[:, n:-n, n:-n, :] if n else x


class SEBlock(nn.Module):
    """Squeeze-excitation: ``x * sigmoid(conv2(relu(conv1(mean_hw(x)))))``, 1x1 convs with bias, reduction 8.
    The mean is taken in float32 (the official code does so for half inputs)."""

    channels: int
    reduction: int = 8
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    def setup(self) -> None:
        kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
        self.conv1 = valid_conv(self.channels // self.reduction, 1, self.channels, name="conv1", **kw)
        self.conv2 = valid_conv(self.channels, 1, self.channels // self.reduction, name="conv2", **kw)

    def __call__(self, x: jax.Array) -> jax.Array:
        m = jnp.mean(x.astype(jnp.float32), axis=(1, 2), keepdims=True).astype(x.dtype)
        s = nn.sigmoid(self.conv2(nn.relu(self.conv1(m))))
        return x * s


class UNetConv(nn.Module):
    """Two valid 3x3 convs with LeakyReLU(0.1) (``conv.0``, ``conv.2``), then an optional :class:`SEBlock`."""

    mid: int
    out: int
    in_features: int
    se: bool
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    def setup(self) -> None:
        kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
        self.conv_0 = valid_conv(self.mid, 3, self.in_features, name="conv_0", **kw)
        self.conv_2 = valid_conv(self.out, 3, self.mid, name="conv_2", **kw)
        self.seblock = SEBlock(self.out, name="seblock", **kw) if self.se else None

    def __call__(self, x: jax.Array) -> jax.Array:
        z = _lrelu(self.conv_2(_lrelu(self.conv_0(x))))
        return z if self.seblock is None else self.seblock(z)


class UNet1(nn.Module):
    """The first U-Net (one down/up level). ``bottom``: ``'deconv2'`` (``ConvTranspose2d(64, out, 4, 2, 3)``:
    side ``2n - 4``), ``'deconv3'`` (``UNet1x3``: ``ConvTranspose2d(64, out, 5, 3, 2)``, side ``3n - 2``) or
    ``'conv'`` (a valid 3x3 conv: waifu2x CUNet x1)."""

    in_channels: int
    out_channels: int
    bottom: str
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    def setup(self) -> None:
        kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
        self.conv1 = UNetConv(32, 64, self.in_channels, se=False, name="conv1", **kw)
        self.conv1_down = valid_conv(64, 2, 64, stride=2, name="conv1_down", **kw)
        self.conv2 = UNetConv(128, 64, 64, se=True, name="conv2", **kw)
        self.conv2_up = _deconv(64, 2, 2, 0, name="conv2_up", **kw)
        self.conv3 = valid_conv(64, 3, 64, name="conv3", **kw)
        if self.bottom == "deconv2":
            self.conv_bottom = _deconv(self.out_channels, 4, 2, 3, name="conv_bottom", **kw)
        elif self.bottom == "deconv3":
            self.conv_bottom = _deconv(self.out_channels, 5, 3, 2, name="conv_bottom", **kw)
        elif self.bottom == "conv":
            self.conv_bottom = valid_conv(self.out_channels, 3, 64, name="conv_bottom", **kw)
        else:
            raise ValueError(f"UNet1 bottom={self.bottom!r}; expected 'deconv2', 'deconv3' or 'conv'")

    def __call__(self, x: jax.Array) -> jax.Array:
        x1 = self.conv1(x)
        x2 = _lrelu(self.conv1_down(x1))
        x2 = _lrelu(self.conv2_up(self.conv2(x2)))
        x3 = _lrelu(self.conv3(_crop(x1, 4) + x2))
        return self.conv_bottom(x3)


class UNet2(nn.Module):
    """The second U-Net (two down/up levels, squeeze-excitation in ``conv2``, ``conv3``, ``conv4``); ``alpha``
    scales ``conv4``'s output (the official denoise-strength knob, 1 = as trained)."""

    in_channels: int
    out_channels: int
    alpha: float = 1.0
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    def setup(self) -> None:
        kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
        self.conv1 = UNetConv(32, 64, self.in_channels, se=False, name="conv1", **kw)
        self.conv1_down = valid_conv(64, 2, 64, stride=2, name="conv1_down", **kw)
        self.conv2 = UNetConv(64, 128, 64, se=True, name="conv2", **kw)
        self.conv2_down = valid_conv(128, 2, 128, stride=2, name="conv2_down", **kw)
        self.conv3 = UNetConv(256, 128, 128, se=True, name="conv3", **kw)
        self.conv3_up = _deconv(128, 2, 2, 0, name="conv3_up", **kw)
        self.conv4 = UNetConv(64, 64, 128, se=True, name="conv4", **kw)
        self.conv4_up = _deconv(64, 2, 2, 0, name="conv4_up", **kw)
        self.conv5 = valid_conv(64, 3, 64, name="conv5", **kw)
        self.conv_bottom = valid_conv(self.out_channels, 3, 64, name="conv_bottom", **kw)

    def __call__(self, x: jax.Array) -> jax.Array:
        x1 = self.conv1(x)
        x2 = self.conv2(_lrelu(self.conv1_down(x1)))
        x3 = self.conv3(_lrelu(self.conv2_down(x2)))
        x3 = _lrelu(self.conv3_up(x3))
        x4 = self.conv4(_crop(x2, 4) + x3)
        if self.alpha != 1.0:
            x4 = x4 * self.alpha
        x4 = _lrelu(self.conv4_up(x4))
        x5 = _lrelu(self.conv5(_crop(x1, 16) + x4))
        return self.conv_bottom(x5)


def cascade_pad(x: jax.Array, pad: int, multiple: int, mode: str) -> jax.Array:
    """Pad ``[B,h,w,C]`` by ``pad`` on every side plus bottom / right until ``h`` and ``w`` divide by
    ``multiple`` (``mode``: ``'reflect'`` = PyTorch/ncnn mirror without repeating the edge, ``'edge'`` = replicate).
    """
    _, h, w, _ = x.shape
    eh, ew = -h % multiple, -w % multiple
    return jnp.pad(x, ((0, 0), (pad, pad + eh), (pad, pad + ew), (0, 0)), mode=mode)


class UpCunet(nn.Module):
    """Real-CUGAN ``UpCunet{2,3,4}x`` with the official input padding, crop and ``pro`` mapping (module
    docstring): ``[B,h,w,3]`` in ``[0,1]`` -> ``[B,h*scale,w*scale,3]``.

    ``scale``: 2, 3 or 4; ``pro``: the ``weights_pro`` models' input / output mapping; ``alpha``: UNet2's
    denoise strength (official default 1). :meth:`valid` is the bare graph (what the ncnn ``.param`` holds).
    """

    scale: int
    pro: bool = False
    alpha: float = 1.0
    num_in_ch: int = 3
    num_out_ch: int = 3
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    def __post_init__(self) -> None:
        blocks.check_scale("UpCunet (Real-CUGAN)", self.scale, "2, 3 or 4", lambda s: s in REALCUGAN_PADDING)
        if self.num_in_ch != self.num_out_ch:
            raise ValueError(f"UpCunet needs num_in_ch == num_out_ch; got {self.num_in_ch}, {self.num_out_ch}")
        super().__post_init__()

    def setup(self) -> None:
        kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
        c = self.num_in_ch
        if self.scale == 4:
            self.unet1 = UNet1(c, 64, "deconv2", name="unet1", **kw)
            self.unet2 = UNet2(64, 64, self.alpha, name="unet2", **kw)
            self.conv_final = valid_conv(4 * self.num_out_ch, 3, 64, name="conv_final", **kw)
        else:
            self.unet1 = UNet1(c, self.num_out_ch, "deconv2" if self.scale == 2 else "deconv3", name="unet1", **kw)
            self.unet2 = UNet2(c, self.num_out_ch, self.alpha, name="unet2", **kw)

    def valid(self, x: jax.Array) -> jax.Array:
        """The unpadded graph on an already padded input (for x4 without the final nearest skip)."""
        x = x.astype(self.dtype)
        z1 = self.unet1(x)
        z = self.unet2(z1) + _crop(z1, 20)
        if self.scale == 4:
            z = blocks.pixel_shuffle(_crop(self.conv_final(z), 1), 2)
        return z.astype(jnp.float32)

    def __call__(self, x: jax.Array) -> jax.Array:
        blocks.check_input(x, self.num_in_ch, "UpCunet")
        x = x.astype(jnp.float32)
        if self.pro:
            x = x * PRO_SCALE + PRO_SHIFT
        _, h, w, _ = x.shape
        pad, multiple = REALCUGAN_PADDING[self.scale]
        y = self.valid(cascade_pad(x, pad, multiple, "reflect"))[:, : h * self.scale, : w * self.scale, :]
        if self.scale == 4:
            y = y + blocks.upsample_nearest(x, 4)
        if self.pro:
            y = (y - PRO_SHIFT) / PRO_SCALE
        return y
