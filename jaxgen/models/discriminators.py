"""Image discriminators (Flax Linen) returning float32 logits, for the adversarial losses of ``jaxgen.losses``.

Input: NHWC ``[B,H,W,num_in_ch]`` images. There is no input normalisation inside: jaxgen's train step
feeds images in ``[0, 1]``; ``[-1, 1]`` (pix2pix's range) works the same. ``dtype`` is the compute dtype,
``param_dtype`` the parameter dtype; logits are float32.

State: ``PatchGAN``, ``MultiScalePatchGAN`` and ``VGGStyleDiscriminator`` are stateless
(``module.apply({'params': p}, x)``). ``UNetDiscriminatorSN`` keeps its spectral-norm power-iteration vectors
in the ``'spectral'`` collection (``SPECTRAL_COLLECTION``): train with ``apply({'params': p, 'spectral': s}, x,
update_stats=True, mutable=['spectral'])`` (one power iteration per call, as PyTorch's ``spectral_norm`` in
training mode) and keep the returned collection; ``STATEFUL`` names the discriminators that have one.
``VGGStyleDiscriminator(norm='batch')`` (BasicSR's network) keeps its BatchNorm running statistics in the
``'batch_stats'`` collection (``BATCH_STATS_COLLECTION``) and is called the same way (``update_stats=True``:
this call's batch updates them); :func:`is_stateful` says whether a configured discriminator has state.
"""

from __future__ import annotations

import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxgen.models import conv_vjp
from jaxgen.models.layers import normal_init, torch_init, upsample_bilinear

SPECTRAL_COLLECTION = "spectral"
BATCH_STATS_COLLECTION = "batch_stats"
__all__ = ["BATCH_STATS_COLLECTION", "DISCRIMINATORS", "MultiScalePatchGAN", "PatchGAN", "SPECTRAL_COLLECTION",
           "STATEFUL", "TorchBatchNorm", "UNetDiscriminatorSN", "VGGStyleDiscriminator", "is_stateful",
           "patchgan_output_size"]

_NORMS = ("instance", "none")
_VGG_STYLE_NORMS = ("instance", "none", "batch")


def _check_input(x: jax.Array, num_in_ch: int, name: str) -> None:
    if x.ndim != 4 or x.shape[-1] != num_in_ch:
        raise ValueError(f"{name} expects [B,H,W,{num_in_ch}] images; got shape {x.shape}")


def _check_norm(norm: str, name: str, norms: tuple[str, ...] = _NORMS) -> None:
    if norm not in norms:
        raise ValueError(f"{name}.norm={norm!r}; expected one of {norms}")


class TorchBatchNorm(nn.Module):
    """PyTorch ``nn.BatchNorm2d(affine=True)`` in training mode (``momentum=0.1``, ``eps=1e-5``), NHWC.

    The output always uses this batch's statistics (biased variance), as BasicSR's discriminators in training
    (they are never run in eval mode). With ``update_stats`` the running statistics in the ``'batch_stats'``
    collection follow PyTorch: ``running_mean = 0.9 running_mean + 0.1 mean``, ``running_var = 0.9 running_var
    + 0.1 var * n / (n - 1)`` (the *unbiased* variance; Flax's ``BatchNorm`` keeps the biased one) and
    ``num_batches_tracked += 1``, so they export to the official state dict unchanged. Params ``scale``/``bias``
    (torch ``weight``/``bias``), init 1/0 as PyTorch.
    """

    momentum: float = 0.1
    epsilon: float = 1e-5
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, update_stats: bool = False) -> jax.Array:
        c = x.shape[-1]
        scale = self.param("scale", nn.initializers.ones, (c,), self.param_dtype)
        bias = self.param("bias", nn.initializers.zeros, (c,), self.param_dtype)
        ra_mean = self.variable(BATCH_STATS_COLLECTION, "running_mean", lambda: jnp.zeros((c,), jnp.float32))
        ra_var = self.variable(BATCH_STATS_COLLECTION, "running_var", lambda: jnp.ones((c,), jnp.float32))
        count = self.variable(BATCH_STATS_COLLECTION, "num_batches_tracked", lambda: jnp.zeros((), jnp.int32))
        xf = x.astype(jnp.float32)
        mean = jnp.mean(xf, axis=(0, 1, 2))
        var = jnp.mean(jnp.square(xf - mean), axis=(0, 1, 2))  # two-pass, biased: the normalisation's
        y = (xf - mean) * jax.lax.rsqrt(var + self.epsilon) * scale.astype(jnp.float32) + bias.astype(jnp.float32)
        if update_stats and not self.is_initializing():
            n = x.shape[0] * x.shape[1] * x.shape[2]
            m = self.momentum
            ra_mean.value = (1.0 - m) * ra_mean.value + m * jax.lax.stop_gradient(mean)
            ra_var.value = (1.0 - m) * ra_var.value + m * jax.lax.stop_gradient(var) * (n / max(n - 1, 1))
            count.value = count.value + 1
        return y.astype(self.dtype)


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
            conv_general_dilated=conv_vjp.override_or_lax(),  # oneDNN when chosen, else XLA's as it is
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

    Norms: ``norm='batch'`` is BasicSR's network (``basicsr/archs/discriminator_arch.py`` at 8d56e3a): affine
    BatchNorm after every conv but the first (:class:`TorchBatchNorm`: batch statistics in every call, running
    statistics in the ``'batch_stats'`` collection, updated when called with ``update_stats=True``),
    bias-free convs, and PyTorch's default initialisation (``U(+-1/sqrt(fan_in))`` for convs and linears).
    The stateless variants (Flax's default LeCun-normal init): ``norm='none'`` (default) drops the norm and
    gives those convs a bias; ``norm='instance'`` uses an affine InstanceNorm (eps 1e-5), bias-free convs
    (the official parameter layout; per-image statistics = BatchNorm with batch size 1). Features are
    flattened in HWC order (PyTorch: CHW), which only matters when porting ``linear1`` weights.
    """

    num_in_ch: int = 3
    num_feat: int = 64
    input_size: int = 128
    norm: str = "none"
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, update_stats: bool = False) -> jax.Array:
        _check_input(x, self.num_in_ch, "VGGStyleDiscriminator")
        _check_norm(self.norm, "VGGStyleDiscriminator", _VGG_STYLE_NORMS)
        if self.input_size not in (128, 256):
            raise ValueError(f"VGGStyleDiscriminator.input_size={self.input_size}; expected 128 or 256")
        if x.shape[1:3] != (self.input_size, self.input_size):
            raise ValueError(
                f"VGGStyleDiscriminator(input_size={self.input_size}) expects {self.input_size}x{self.input_size} "
                f"images; got {x.shape[1]}x{x.shape[2]}"
            )
        normed = self.norm != "none"
        torch_like = self.norm == "batch"
        kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
        conv_fn = conv_vjp.override_or_lax()  # oneDNN when chosen, else XLA's as it is

        def inits(fan_in: int) -> dict[str, Any]:
            if not torch_like:
                return {}
            k_init, b_init = torch_init(fan_in)
            return dict(kernel_init=k_init, bias_init=b_init)

        def block(h: jax.Array, features: int, kernel: int, stride: int, name: str) -> jax.Array:
            h = nn.Conv(features, (kernel, kernel), (stride, stride), padding=((1, 1), (1, 1)),
                        use_bias=not normed, name=name, conv_general_dilated=conv_fn,
                        **inits(h.shape[-1] * kernel * kernel), **kw)(h)
            if self.norm == "instance":
                h = nn.InstanceNorm(epsilon=1e-5, use_fast_variance=False, name=f"norm{name[4:]}", **kw)(h)
            elif self.norm == "batch":
                h = TorchBatchNorm(name=f"norm{name[4:]}", **kw)(h, update_stats)
            return nn.leaky_relu(h, 0.2)

        x = x.astype(self.dtype)
        h = nn.leaky_relu(nn.Conv(self.num_feat, (3, 3), padding=((1, 1), (1, 1)), name="conv0_0",
                                  conv_general_dilated=conv_fn, **inits(x.shape[-1] * 9), **kw)(x), 0.2)
        h = block(h, self.num_feat, 4, 2, "conv0_1")
        mults = (2, 4, 8, 8) + ((8,) if self.input_size == 256 else ())
        for i, m in enumerate(mults, start=1):
            h = block(h, self.num_feat * m, 3, 1, f"conv{i}_0")
            h = block(h, self.num_feat * m, 4, 2, f"conv{i}_1")
        h = h.reshape(h.shape[0], -1)  # [B, 4*4*8*num_feat]
        h = nn.leaky_relu(nn.Dense(100, name="linear1", **inits(h.shape[-1]), **kw)(h), 0.2)
        return nn.Dense(1, name="linear2", **inits(100), **kw)(h).astype(jnp.float32)


class MultiScalePatchGAN(nn.Module):
    """pix2pixHD's ``MultiscaleDiscriminator`` (Wang et al. 2018): ``num_d`` PatchGANs on the input downsampled
    0, 1, ..., ``num_d - 1`` times by ``AvgPool2d(3, stride=2, padding=1, count_include_pad=False)``.

    ``[B,H,W,C] ->`` a tuple of ``num_d`` logit maps (finest first), each as :class:`PatchGAN` of its input;
    ``jaxgen.losses.gan_d_loss``/``gan_g_loss`` sum the losses over the scales (pix2pixHD ``GANLoss``). The
    scales have independent weights (``scale0`` .. ``scale{num_d-1}``). pix2pixHD's optional intermediate
    features (its feature-matching loss) are not returned.
    """

    num_in_ch: int = 3
    ndf: int = 64
    n_layers: int = 3
    num_d: int = 3
    norm: str = "instance"
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> tuple[jax.Array, ...]:
        _check_input(x, self.num_in_ch, "MultiScalePatchGAN")
        if self.num_d < 1:
            raise ValueError(f"MultiScalePatchGAN.num_d={self.num_d}; expected >= 1")
        outs = []
        for i in range(self.num_d):
            outs.append(PatchGAN(self.num_in_ch, self.ndf, self.n_layers, self.norm, self.dtype, self.param_dtype,
                                 name=f"scale{i}")(x))
            if i + 1 < self.num_d:
                x = _avg_pool_3x3_s2(x)
        return tuple(outs)


def _avg_pool_3x3_s2(x: jax.Array) -> jax.Array:
    """``AvgPool2d(3, stride=2, padding=1, count_include_pad=False)``."""
    pad = ((0, 0), (1, 1), (1, 1), (0, 0))
    window, strides = (1, 3, 3, 1), (1, 2, 2, 1)
    total = jax.lax.reduce_window(jnp.pad(x, pad), 0.0, jax.lax.add, window, strides, "VALID")
    count = jax.lax.reduce_window(jnp.pad(jnp.ones_like(x[:1, :, :, :1]), pad), 0.0, jax.lax.add, window, strides,
                                  "VALID")
    return total / count


class UNetDiscriminatorSN(nn.Module):
    """Real-ESRGAN's U-Net discriminator with spectral normalisation (``UNetDiscriminatorSN``, BasicSR
    ``basicsr/archs/discriminator_arch.py``; Wang et al. 2021): per-pixel logits ``[B,H,W,1]`` for ``[B,H,W,C]``
    with ``H, W`` divisible by 8.

    ``conv0`` 3x3 (bias) -> three 4x4 stride-2 convs (``2, 4, 8 x num_feat``) -> three x2 bilinear
    upsamplings (``align_corners=False``) each followed by a 3x3 conv (``4, 2, 1 x num_feat``) with skip
    connections (added after the activation) from the encoder -> two 3x3 convs -> ``conv9`` 3x3 to 1 channel
    (bias). Every conv but ``conv0`` and ``conv9`` is bias-free and spectrally normalised
    (``flax.linen.SpectralNorm``: one power iteration per training call, ``u`` in the ``'spectral'`` collection,
    the weight divided by ``u^T W v`` with ``u, v`` not differentiated -- PyTorch's ``spectral_norm``); LeakyReLU
    0.2 after every conv but the last. ``update_stats=False`` (evaluation) still runs one iteration from the
    stored ``u`` without storing it (PyTorch's eval mode reuses the stored ``u, v``; the discriminator is only used
    in training). Initialisation: PyTorch's ``Conv2d`` default.
    """

    num_in_ch: int = 3
    num_feat: int = 64
    skip_connection: bool = True
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, update_stats: bool = False) -> jax.Array:
        _check_input(x, self.num_in_ch, "UNetDiscriminatorSN")
        if x.shape[1] % 8 or x.shape[2] % 8:
            raise ValueError(f"UNetDiscriminatorSN needs H and W divisible by 8; got {x.shape[1]}x{x.shape[2]}")
        nf, kw = self.num_feat, dict(dtype=self.dtype, param_dtype=self.param_dtype)
        conv_fn = conv_vjp.override_or_lax()  # oneDNN when chosen, else XLA's as it is

        def sn_conv(h, features, kernel, stride, name):
            k_init, _ = torch_init(h.shape[-1] * kernel * kernel)
            layer = nn.Conv(features, (kernel, kernel), (stride, stride), padding=((1, 1), (1, 1)), use_bias=False,
                            kernel_init=k_init, name=name, conv_general_dilated=conv_fn, **kw)
            sn = nn.SpectralNorm(layer, collection_name=SPECTRAL_COLLECTION, name=f"{name}_sn", **kw)
            return nn.leaky_relu(sn(h, update_stats=update_stats), 0.2)

        def plain_conv(h, features, name):
            k_init, b_init = torch_init(h.shape[-1] * 9)
            return nn.Conv(features, (3, 3), padding=((1, 1), (1, 1)), kernel_init=k_init, bias_init=b_init, name=name,
                           conv_general_dilated=conv_fn, **kw)(h)

        x = x.astype(self.dtype)
        x0 = nn.leaky_relu(plain_conv(x, nf, "conv0"), 0.2)
        x1 = sn_conv(x0, nf * 2, 4, 2, "conv1")
        x2 = sn_conv(x1, nf * 4, 4, 2, "conv2")
        x3 = sn_conv(x2, nf * 8, 4, 2, "conv3")
        x4 = sn_conv(upsample_bilinear(x3, 2), nf * 4, 3, 1, "conv4")
        if self.skip_connection:
            x4 = x4 + x2
        x5 = sn_conv(upsample_bilinear(x4, 2), nf * 2, 3, 1, "conv5")
        if self.skip_connection:
            x5 = x5 + x1
        x6 = sn_conv(upsample_bilinear(x5, 2), nf, 3, 1, "conv6")
        if self.skip_connection:
            x6 = x6 + x0
        out = sn_conv(x6, nf, 3, 1, "conv7")
        out = sn_conv(out, nf, 3, 1, "conv8")
        return plain_conv(out, 1, "conv9").astype(jnp.float32)


DISCRIMINATORS: dict[str, type[nn.Module]] = {
    "patchgan": PatchGAN,
    "multiscale_patchgan": MultiScalePatchGAN,
    "vgg_style": VGGStyleDiscriminator,
    "unet_sn": UNetDiscriminatorSN,
}
STATEFUL: frozenset[str] = frozenset({"unet_sn"})  # discriminators with a 'spectral' collection


def is_stateful(name: str, kwargs: Any = None) -> bool:
    """Whether the discriminator ``name`` built with ``kwargs`` keeps state in collections (spectral-norm
    vectors, or BatchNorm running statistics of ``vgg_style`` with ``norm='batch'``)."""
    return name in STATEFUL or (name == "vgg_style" and (kwargs or {}).get("norm") == "batch")
