"""Image discriminators (Flax Linen) returning float32 logits, for the adversarial losses of ``jaxgen.losses``.

Input: NHWC ``[B,H,W,num_in_ch]`` images. There is no input normalisation inside: jaxgen's train step
feeds images in ``[0, 1]``; ``[-1, 1]`` (pix2pix's range) works the same. Every module is stateless
(``__call__(x)`` only, no BatchNorm statistics), so ``module.apply({'params': p}, x)`` is all a train
step needs. ``dtype`` is the compute dtype, ``param_dtype`` the parameter dtype; logits are float32.
"""

from __future__ import annotations

import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxgen.models.layers import normal_init

__all__ = ["DISCRIMINATORS", "PatchGAN", "VGGStyleDiscriminator", "patchgan_output_size"]

_NORMS = ("instance", "none")


def _check_input(x: jax.Array, num_in_ch: int, name: str) -> None:
    if x.ndim != 4 or x.shape[-1] != num_in_ch:
        raise ValueError(f"{name} expects [B,H,W,{num_in_ch}] images; got shape {x.shape}")


def _check_norm(norm: str, name: str) -> None:
    if norm not in _NORMS:
        raise ValueError(f"{name}.norm={norm!r}; expected one of {_NORMS}")


def patchgan_output_size(size: int, n_layers: int = 3) -> int:
    """Logit-map side for an input side ``size``: ``size // 2**n_layers - 2`` (4x4 convs, padding 1)."""
    for _ in range(n_layers):
        size = (size + 2 - 4) // 2 + 1  # stride-2 conv
    return size - 2  # two stride-1 convs


class PatchGAN(nn.Module):
    """pix2pix/CycleGAN ``NLayerDiscriminator`` (Isola et al. 2017): a map of patch logits.

    ``[B,H,W,C] -> [B, H//2**n_layers - 2, W//2**n_layers - 2, 1]`` (``[B,30,30,1]`` for 256x256 with the
    defaults; each logit sees a 70x70 patch). Layers: 4x4 conv ``ndf`` stride 2 + LeakyReLU(0.2); then for
    ``n = 1..n_layers`` a 4x4 conv with ``ndf * min(2**n, 8)`` features (stride 2, the last one stride 1)
    + norm + LeakyReLU(0.2); then a 4x4 stride-1 conv to 1 channel. All convs pad 1 pixel of zeros and have
    a bias (the official ``use_bias`` is true with InstanceNorm). ``norm='instance'`` is CycleGAN's default
    ``InstanceNorm2d`` (no affine, eps 1e-5, statistics per image and channel); ``norm='none'`` drops it
    (official ``none`` also drops the conv biases; we keep them). Weights are N(0, 0.02), biases 0, as
    pix2pix's ``init_type='normal'``. 2,764,737 parameters for 3 channels, ``ndf=64``, ``n_layers=3``.
    """

    num_in_ch: int = 3
    ndf: int = 64
    n_layers: int = 3
    norm: str = "instance"
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        _check_input(x, self.num_in_ch, "PatchGAN")
        _check_norm(self.norm, "PatchGAN")
        if self.n_layers < 1:
            raise ValueError(f"PatchGAN.n_layers={self.n_layers}; expected >= 1")
        out_hw = [patchgan_output_size(s, self.n_layers) for s in x.shape[1:3]]
        if min(out_hw) < 1:
            raise ValueError(
                f"PatchGAN(n_layers={self.n_layers}) needs inputs of at least {3 * 2**self.n_layers} pixels a "
                f"side; got {x.shape[1]}x{x.shape[2]}"
            )
        conv = functools.partial(
            nn.Conv,
            kernel_size=(4, 4),
            padding=((1, 1), (1, 1)),
            kernel_init=normal_init(0.02),  # flat draw: same N(0, 0.02^2), compiles in ms on CPU
            dtype=self.dtype,
            param_dtype=self.param_dtype,
        )
        x = x.astype(self.dtype)
        x = nn.leaky_relu(conv(self.ndf, strides=(2, 2), name="conv0")(x), 0.2)
        for n in range(1, self.n_layers + 1):
            stride = 2 if n < self.n_layers else 1
            x = conv(self.ndf * min(2**n, 8), strides=(stride, stride), name=f"conv{n}")(x)
            if self.norm == "instance":
                x = nn.InstanceNorm(
                    epsilon=1e-5,
                    use_scale=False,
                    use_bias=False,
                    use_fast_variance=False,  # two-pass variance, as PyTorch
                    dtype=self.dtype,
                    param_dtype=self.param_dtype,
                )(x)
            x = nn.leaky_relu(x, 0.2)
        x = conv(1, strides=(1, 1), name="conv_out")(x)
        return x.astype(jnp.float32)


class VGGStyleDiscriminator(nn.Module):
    """ESRGAN's VGG-style discriminator (Wang et al. 2018; BasicSR ``VGGStyleDiscriminator``): one logit per image.

    ``[B,S,S,C] -> [B,1]`` for ``S = input_size`` (128 or 256, checked). Five (six for 256) stages of a 3x3
    stride-1 conv and a 4x4 stride-2 conv (``num_feat * (1, 2, 4, 8, 8[, 8])`` features, padding 1),
    each followed by norm + LeakyReLU(0.2) (the very first conv has no norm), then Dense(100) +
    LeakyReLU(0.2) + Dense(1) on the flattened ``4x4x8*num_feat`` features.

    Deviation: the official network has BatchNorm (affine) after every conv but the first; jaxgen's
    discriminators are stateless, so ``norm='none'`` (default) drops it and gives those convs a bias,
    and ``norm='instance'`` uses an affine InstanceNorm (eps 1e-5) in its place, with bias-free convs --
    the official parameter layout and count (BatchNorm running statistics are not parameters). Features
    are flattened in HWC order (PyTorch: CHW), which only matters when porting ``linear1`` weights.
    Initialisation is Flax's default (LeCun normal), not PyTorch's.
    """

    num_in_ch: int = 3
    num_feat: int = 64
    input_size: int = 128
    norm: str = "none"
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        _check_input(x, self.num_in_ch, "VGGStyleDiscriminator")
        _check_norm(self.norm, "VGGStyleDiscriminator")
        if self.input_size not in (128, 256):
            raise ValueError(f"VGGStyleDiscriminator.input_size={self.input_size}; expected 128 or 256")
        if x.shape[1:3] != (self.input_size, self.input_size):
            raise ValueError(
                f"VGGStyleDiscriminator(input_size={self.input_size}) expects {self.input_size}x{self.input_size} "
                f"images; got {x.shape[1]}x{x.shape[2]}"
            )
        normed = self.norm == "instance"
        kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)

        def block(h: jax.Array, features: int, kernel: int, stride: int, name: str) -> jax.Array:
            h = nn.Conv(features, (kernel, kernel), (stride, stride), padding=((1, 1), (1, 1)),
                        use_bias=not normed, name=name, **kw)(h)
            if normed:
                h = nn.InstanceNorm(epsilon=1e-5, use_fast_variance=False, name=f"norm{name[4:]}", **kw)(h)
            return nn.leaky_relu(h, 0.2)

        x = x.astype(self.dtype)
        h = nn.leaky_relu(nn.Conv(self.num_feat, (3, 3), padding=((1, 1), (1, 1)), name="conv0_0", **kw)(x), 0.2)
        h = block(h, self.num_feat, 4, 2, "conv0_1")
        mults = (2, 4, 8, 8) + ((8,) if self.input_size == 256 else ())
        for i, m in enumerate(mults, start=1):
            h = block(h, self.num_feat * m, 3, 1, f"conv{i}_0")
            h = block(h, self.num_feat * m, 4, 2, f"conv{i}_1")
        h = h.reshape(h.shape[0], -1)  # [B, 4*4*8*num_feat]
        h = nn.leaky_relu(nn.Dense(100, name="linear1", **kw)(h), 0.2)
        return nn.Dense(1, name="linear2", **kw)(h).astype(jnp.float32)


DISCRIMINATORS: dict[str, type[nn.Module]] = {
    "patchgan": PatchGAN,
    "vgg_style": VGGStyleDiscriminator,
}
