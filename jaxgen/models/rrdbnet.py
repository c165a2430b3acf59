"""RRDBNet, the ESRGAN / Real-ESRGAN generator (Wang et al., "ESRGAN: Enhanced Super-Resolution Generative
Adversarial Networks", ECCV-W 2018; "Real-ESRGAN", ICCV-W 2021).

Reference: BasicSR ``basicsr/archs/rrdbnet_arch.py`` (``RRDBNet``), github.com/XPixelGroup/BasicSR.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxgen.models import layers as blocks

Dtype = Any


class RRDBNet(nn.Module):
    """RRDBNet: ``conv_first``, ``num_blocks`` RRDBs + ``conv_body`` (global skip), two (nearest x2 -> conv ->
    LeakyReLU(0.2)) stages, ``conv_last(lrelu(conv_hr(.)))``.

    ``[B,h,w,num_in_ch]`` in ``[0,1]`` -> ``[B,h*scale,w*scale,num_out_ch]`` float32. The trunk always
    upsamples x4; ``scale=2`` / ``scale=1`` first ``pixel_unshuffle`` the input by 2 / 4 (``conv_first`` sees
    ``4 * num_in_ch`` / ``16 * num_in_ch`` channels; h, w must divide by 2 / 4), as Real-ESRGAN. Scales 1, 2, 4.
    Defaults: 23 RRDBs, 64 features, growth 32, residual scaling 0.2: 16,697,987 parameters at x4.
    Init as official: dense-block convs ``basicsr_init(0.1)``, trunk convs PyTorch default.
    ``scan_blocks``: run the RRDBs as one ``lax.scan`` (``layers.repeat_blocks``; same parameters and
    arithmetic, a fraction of the compile time).

    Names equal BasicSR's: ``conv_first``; ``body.i.rdb{1,2,3}.conv{1..5}`` -> ``body_i/rdb{1,2,3}/conv{1..5}``;
    ``conv_body``, ``conv_up1``, ``conv_up2``, ``conv_hr``, ``conv_last``.
    """

    scale: int
    num_in_ch: int = 3
    num_out_ch: int = 3
    num_feat: int = 64
    num_blocks: int = 23
    num_grow_ch: int = 32
    scan_blocks: bool = True
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    def __post_init__(self) -> None:
        blocks.check_scale("RRDBNet", self.scale, "1, 2 or 4", lambda s: s in (1, 2, 4))
        super().__post_init__()

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        blocks.check_input(x, self.num_in_ch, "RRDBNet")
        kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
        f = self.num_feat
        feat = x.astype(self.dtype)
        if self.scale < 4:
            feat = blocks.pixel_unshuffle(feat, 4 // self.scale)
        feat = blocks.conv(f, 3, feat.shape[-1], name="conv_first", **kw)(feat)
        body = blocks.repeat_blocks(self, lambda **k: blocks.RRDB(self.num_grow_ch, **kw, **k),
                                    [f"body_{i}" for i in range(self.num_blocks)], feat, self.scan_blocks)
        feat = feat + blocks.conv(f, 3, f, name="conv_body", **kw)(body)
        for k in (1, 2):
            feat = blocks.upsample_nearest(feat, 2)
            feat = nn.leaky_relu(blocks.conv(f, 3, f, name=f"conv_up{k}", **kw)(feat), 0.2)
        out = nn.leaky_relu(blocks.conv(f, 3, f, name="conv_hr", **kw)(feat), 0.2)
        out = blocks.conv(self.num_out_ch, 3, f, name="conv_last", **kw)(out)
        return out.astype(jnp.float32)
