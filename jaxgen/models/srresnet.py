"""SRResNet / MSRResNet (Ledig et al., "Photo-Realistic Single Image Super-Resolution Using a Generative
Adversarial Network", CVPR 2017; modified as in Wang et al., ESRGAN, ECCV-W 2018).

Reference: BasicSR ``basicsr/archs/srresnet_arch.py`` (``MSRResNet``), github.com/XPixelGroup/BasicSR.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxgen.models import layers as blocks

Dtype = Any

_ACTS = ("lrelu", "prelu")


class MSRResNet(nn.Module):
    """MSRResNet: SRResNet without BatchNorm, with a bilinear global skip (BasicSR ``MSRResNet``).

    ``feat = act(conv_first(x))``; ``num_blocks`` x ``ResidualBlockNoBN`` (conv-ReLU-conv, no BN, no long
    skip); per upsampling stage ``act(pixel_shuffle(upconv_k(.)))``; ``conv_last(act(conv_hr(.)))``; plus
    ``upsample_bilinear(x, scale)`` (PyTorch ``align_corners=False``, added in float32).
    ``[B,h,w,num_in_ch]`` in ``[0,1]`` -> ``[B,h*scale,w*scale,num_out_ch]`` float32; ``num_in_ch == num_out_ch``.
    Defaults: 64 features, 16 blocks, LeakyReLU(0.1): 1,517,571 parameters at x4. Scale 2 or 3 (one
    ``upconv1`` to ``s^2 * num_feat`` + shuffle ``s``), 4 (``upconv1``, ``upconv2``, shuffle 2 each) or 8
    (three stages, an extension of BasicSR's {2, 3, 4}). Init: every conv ``basicsr_init(0.1)``, as official.

    ``act='prelu'`` is the SRGAN choice: per-channel PReLU (init 0.25) replaces every activation, also the
    ReLU inside the residual blocks (children ``act_first``, ``act_up{k}``, ``act_hr``, ``body_i/prelu``). The
    rest stays MSRResNet (no BN, 3x3 first/last convs, ``conv_hr``, bilinear skip) -- not Ledig's exact SRResNet.

    Names equal BasicSR's: ``conv_first``, ``body.i.conv{1,2}`` -> ``body_i/conv{1,2}``, ``upconv{k}``,
    ``conv_hr``, ``conv_last``.
    """

    scale: int
    num_in_ch: int = 3
    num_out_ch: int = 3
    num_feat: int = 64
    num_blocks: int = 16
    act: str = "lrelu"
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    def __post_init__(self) -> None:
        blocks.check_scale("MSRResNet", self.scale, "2, 3, 4 or 8", lambda s: s in (2, 3, 4, 8))
        if self.act not in _ACTS:
            raise ValueError(f"MSRResNet act={self.act!r}; expected one of {_ACTS}")
        if self.num_in_ch != self.num_out_ch:
            raise ValueError(
                f"MSRResNet's bilinear skip needs num_in_ch == num_out_ch; got {self.num_in_ch}, {self.num_out_ch}"
            )
        super().__post_init__()

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        blocks.check_input(x, self.num_in_ch, "MSRResNet")
        kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
        init, f = blocks.basicsr_init(0.1), self.num_feat
        trunk_act = "lrelu" if self.act == "lrelu" else "prelu"
        block_act = "relu" if self.act == "lrelu" else "prelu"

        x = x.astype(jnp.float32)
        feat = blocks.conv(f, 3, self.num_in_ch, init, name="conv_first", **kw)(x.astype(self.dtype))
        out = blocks.activation(trunk_act, name="act_first", **kw)(feat)
        for i in range(self.num_blocks):
            out = blocks.ResidualBlockNoBN(1.0, block_act, init, name=f"body_{i}", **kw)(out)
        for k, r in enumerate(blocks.upsampler_stages(self.scale), start=1):
            out = blocks.pixel_shuffle(blocks.conv(f * r * r, 3, f, init, name=f"upconv{k}", **kw)(out), r)
            out = blocks.activation(trunk_act, name=f"act_up{k}", **kw)(out)
        out = blocks.activation(trunk_act, name="act_hr", **kw)(blocks.conv(f, 3, f, init, name="conv_hr", **kw)(out))
        out = blocks.conv(self.num_out_ch, 3, f, init, name="conv_last", **kw)(out)
        return out.astype(jnp.float32) + blocks.upsample_bilinear(x, self.scale)
