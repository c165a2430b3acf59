"""SRVGGNetCompact (Wang et al., "Real-ESRGAN", ICCV-W 2021; the compact realesr-*v3 models).

Reference: github.com/xinntao/Real-ESRGAN ``realesrgan/archs/srvgg_arch.py`` (``SRVGGNetCompact``).
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxgen.models import layers as blocks

Dtype = Any

_ACTS = {"prelu": "prelu", "relu": "relu", "leakyrelu": "lrelu"}


class SRVGGNetCompact(nn.Module):
    """SRVGGNetCompact: ``num_conv + 1`` 3x3 convs with activations in LR space, a conv to
    ``num_out_ch * scale^2`` channels, ``pixel_shuffle(scale)``, plus the nearest-upsampled input.

    ``[B,h,w,num_in_ch]`` in ``[0,1]`` -> ``[B,h*scale,w*scale,num_out_ch]`` float32 (the nearest skip is added
    in float32; ``num_in_ch == num_out_ch``). Defaults: 64 features, ``num_conv=16``, per-channel PReLU
    (``realesr-animevideov3``); ``realesr-general-x4v3`` uses ``num_conv=32``. ``act``: ``'prelu'``,
    ``'relu'`` or ``'leakyrelu'`` (slope 0.1), as official. Any integer ``scale >= 1``. PyTorch default init.

    Names mirror the official ``body`` ModuleList indices: ``body_0`` conv, ``body_1`` act, ``body_{2i}`` conv,
    ``body_{2i+1}`` act (a PReLU ``weight`` when ``act='prelu'``), ``body_{2 num_conv + 2}`` last conv.
    """

    scale: int
    num_in_ch: int = 3
    num_out_ch: int = 3
    num_feat: int = 64
    num_conv: int = 16
    act: str = "prelu"
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    def __post_init__(self) -> None:
        blocks.check_scale("SRVGGNetCompact", self.scale, "any integer >= 1", blocks.is_positive)
        if self.act not in _ACTS:
            raise ValueError(f"SRVGGNetCompact act={self.act!r}; expected one of {tuple(_ACTS)}")
        if self.num_in_ch != self.num_out_ch:
            raise ValueError(
                f"SRVGGNetCompact's skip needs num_in_ch == num_out_ch; got {self.num_in_ch}, {self.num_out_ch}"
            )
        super().__post_init__()

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        blocks.check_input(x, self.num_in_ch, "SRVGGNetCompact")
        kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
        f, r = self.num_feat, self.scale
        x = x.astype(jnp.float32)
        out = x.astype(self.dtype)
        for i in range(self.num_conv + 1):
            out = blocks.conv(f, 3, out.shape[-1], name=f"body_{2 * i}", **kw)(out)
            out = blocks.activation(_ACTS[self.act], name=f"body_{2 * i + 1}", **kw)(out)
        out = blocks.conv(self.num_out_ch * r * r, 3, f, name=f"body_{2 * self.num_conv + 2}", **kw)(out)
        return blocks.pixel_shuffle(out, r).astype(jnp.float32) + blocks.upsample_nearest(x, r)
