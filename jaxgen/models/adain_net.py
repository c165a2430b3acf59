"""AdaIN style transfer networks (Huang & Belongie, ICCV 2017), as naoto0804/pytorch-AdaIN ``net.py``.

* :class:`AdaINEncoder` -- VGG19 up to ``relu4_1`` with *reflection* padding 1 before every 3x3 conv and 2x2
  max pooling with ``ceil_mode=True`` (the official ``vgg``), returning the taps ``relu1_1, relu2_1, relu3_1,
  relu4_1``. Its conv params are named like ``jaxgen.models.vgg`` (``features_N``, torchvision indices), so the
  Caffe VGG19 of ``jaxgen.weights.pretrained.load_vgg('vgg19', 'caffe')`` serves it with ``input_conv=False`` (Caffe
  input normalisation of ``[0,1]`` RGB). ``input_conv=True`` is the official ``vgg_normalised.pth`` layout,
  whose first layer is a learned 1x1 conv (``input_conv``) applied to ``[0,1]`` RGB (arch ``adain_vgg`` in
  ``jaxgen.weights.convert``).
* :class:`AdaINDecoder` -- the mirrored decoder: reflection-padded 3x3 convs + ReLU, nearest x2 upsampling,
  ``512 -> 256 -> (x2) 256, 256, 256 -> 128 -> (x2) 128 -> 64 -> (x2) 64 -> 3`` (no final activation).
  Flax names ``layers_{i}`` = the official ``nn.Sequential`` index ``i`` (``decoder.pth`` keys ``{i}.weight``;
  arch ``adain_decoder``). ``features`` shrinks it for tests (official ``(256, 128, 64)``).
* :class:`AdaINStylizer` -- inference: ``decoder(alpha * adain(f(c), f(s)) + (1 - alpha) * f(c))``.

NHWC, float32. Init: PyTorch defaults (``U(+-1/sqrt(fan_in))``).
"""

from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxgen.models import conv_vjp
from jaxgen.models.adain_ops import adain
from jaxgen.models.layers import check_input, torch_init, upsample_nearest
from jaxgen.models.vgg import normalize_input, vgg_layer_names

__all__ = ["ADAIN_DECODER_CONVS", "ADAIN_TAPS", "AdaINDecoder", "AdaINEncoder", "AdaINStylizer", "ceil_max_pool"]

ADAIN_TAPS: tuple[str, ...] = ("relu1_1", "relu2_1", "relu3_1", "relu4_1")
# Official decoder Sequential indices of the convs (and whether an upsample precedes the conv's padding).
ADAIN_DECODER_CONVS: tuple[int, ...] = (1, 5, 8, 11, 14, 18, 21, 25, 28)
Dtype = Any


def ceil_max_pool(x: jax.Array) -> jax.Array:
    """``MaxPool2d(2, 2, ceil_mode=True)``: odd sides keep their last row/column as a 1-wide window."""
    ph, pw = x.shape[1] % 2, x.shape[2] % 2
    if ph or pw:
        x = jnp.pad(x, ((0, 0), (0, ph), (0, pw), (0, 0)), constant_values=-jnp.inf)
    return nn.max_pool(x, (2, 2), strides=(2, 2), padding="VALID")


def _reflect_conv(x: jax.Array, features: int, kernel: int, name: str, dtype: Dtype, param_dtype: Dtype) -> jax.Array:
    p = kernel // 2
    if p:
        x = jnp.pad(x, ((0, 0), (p, p), (p, p), (0, 0)), mode="reflect")
    k_init, b_init = torch_init(x.shape[-1] * kernel * kernel)
    return nn.Conv(features, (kernel, kernel), padding="VALID", kernel_init=k_init, bias_init=b_init, dtype=dtype,
                   param_dtype=param_dtype, name=name,
                   conv_general_dilated=conv_vjp.override_or_lax())(x)  # oneDNN when chosen, else XLA's as it is


class AdaINEncoder(nn.Module):
    """``[B,H,W,3]`` RGB in ``[0,1]`` -> ``{tap: [B,h,w,C]}`` for ``taps`` (subset of ``ADAIN_TAPS``, or any VGG19
    ``relu`` name up to ``relu4_1``)."""

    taps: Sequence[str] = ADAIN_TAPS
    input_conv: bool = False
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> dict[str, jax.Array]:
        check_input(x, 3, "AdaINEncoder")
        names = vgg_layer_names("vgg19")
        bad = [t for t in self.taps if t not in names or names.index(t) > names.index("relu4_1")]
        if bad or not self.taps:
            raise ValueError(f"AdaINEncoder taps {list(self.taps)}: expected VGG19 layers up to relu4_1")
        last = max(names.index(t) for t in self.taps)
        kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
        x = x.astype(jnp.float32)
        if self.input_conv:
            x = _reflect_conv(x, 3, 1, "input_conv", **kw)
        else:
            x = normalize_input(x, "caffe")
        channels = {1: 64, 2: 128, 3: 256, 4: 512}
        out = {}
        for idx, name in enumerate(names[: last + 1]):
            if name.startswith("conv"):
                x = _reflect_conv(x, channels[int(name[4])], 3, f"features_{idx}", **kw)
            elif name.startswith("relu"):
                x = nn.relu(x)
            else:
                x = ceil_max_pool(x)
            if name in self.taps:
                out[name] = x.astype(jnp.float32)
        return out


class AdaINDecoder(nn.Module):
    """``[B,h,w,in_features]`` features -> ``[B,8h,8w,3]`` image (module docstring)."""

    features: tuple[int, int, int] = (256, 128, 64)
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, t: jax.Array) -> jax.Array:
        if t.ndim != 4:
            raise ValueError(f"AdaINDecoder expects [B,h,w,C] features; got shape {tuple(t.shape)}")
        f0, f1, f2 = self.features
        plan = ((1, f0, False), (5, f0, True), (8, f0, False), (11, f0, False), (14, f1, False), (18, f1, True),
                (21, f2, False), (25, f2, True), (28, 3, False))
        kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
        x = t.astype(self.dtype)
        for idx, feat, upsample_first in plan:
            if upsample_first:
                x = upsample_nearest(x, 2)
            x = _reflect_conv(x, feat, 3, f"layers_{idx}", **kw)
            if idx != 28:
                x = nn.relu(x)
        return x.astype(jnp.float32)


class AdaINStylizer(nn.Module):
    """``(content [B,H,W,3], style [B|1,h,w,3], alpha)`` RGB in ``[0,1]`` -> stylised ``[B,8*ceil(H/8),...,3]``.
    Params ``{'encoder': ..., 'decoder': ...}``."""

    decoder_features: tuple[int, int, int] = (256, 128, 64)
    input_conv: bool = False

    @nn.compact
    def __call__(self, content: jax.Array, style: jax.Array, alpha: float = 1.0) -> jax.Array:
        encoder = AdaINEncoder(taps=("relu4_1",), input_conv=self.input_conv, name="encoder")
        c = encoder(content)["relu4_1"]
        s = encoder(style)["relu4_1"]
        t = alpha * adain(c, s) + (1.0 - alpha) * c
        return AdaINDecoder(features=self.decoder_features, name="decoder")(t)
