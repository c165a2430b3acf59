"""VGG16/VGG19 feature extractors (Simonyan & Zisserman 2015) with named taps, for perceptual/style losses and LPIPS.

Layout of torchvision's ``models.vgg16/vgg19().features`` (no batch norm): 3x3 convs (padding 1) each followed by
a ReLU, and a 2x2 stride-2 pool after each block. The layer names are BasicSR's (``basicsr/archs/vgg_arch.py``
``NAMES``): ``conv{b}_{i}`` is the conv output *before* its ReLU, ``relu{b}_{i}`` the output after it,
``pool{b}`` the pooled output. The position of a name in ``vgg_layer_names(vgg_type)`` is its index in
torchvision's ``features`` Sequential, and the conv at index ``N`` is the Flax submodule ``features_N``::

    torchvision  features.N.weight [O,I,3,3]  <->  params['features_N']['kernel'] [3,3,I,O]  (w.transpose(2,3,1,0))
    torchvision  features.N.bias   [O]        <->  params['features_N']['bias']   [O]

so the same parameter tree holds torchvision weights and the Caffe/Keras VGG weights (see ``jaxgen.weights.pretrained``).

Input ``[B,H,W,3]`` RGB in ``[0,1]`` (``[-1,1]`` with ``range_norm=True``), then the weight source's convention
(``input_norm``):

* ``'torchvision'`` -- ``(x - [0.485,0.456,0.406]) / [0.229,0.224,0.225]`` (ImageNet mean/std; torchvision and
  BasicSR ``VGGFeatureExtractor(use_input_norm=True)``);
* ``'caffe'`` -- RGB -> BGR, times 255, minus the BGR pixel mean ``[103.939,116.779,123.68]`` (the original Caffe
  VGG release, Keras ``preprocess_input(mode='caffe')``);
* ``'none'`` -- the input as it is.

Only the layers up to the deepest requested tap are built and run, so a params tree holding the whole network
also serves a shallower extractor (unused params are ignored).
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxgen.models import conv_vjp

__all__ = [
    "CAFFE_BGR_MEAN",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "INPUT_NORMS",
    "VGG_BLOCKS",
    "VGGFeatures",
    "conv_layer_indices",
    "kaiming_normal_fan_out",
    "normalize_input",
    "vgg_layer_names",
]

Dtype = Any

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
CAFFE_BGR_MEAN: tuple[float, float, float] = (103.939, 116.779, 123.68)  # B, G, R pixel mean on the 0-255 scale
INPUT_NORMS: tuple[str, ...] = ("torchvision", "caffe", "none")
POOLINGS: tuple[str, ...] = ("max", "avg")

# Output channels of each block's convs (torchvision ``cfgs`` 'D' and 'E').
VGG_BLOCKS: dict[str, tuple[tuple[int, ...], ...]] = {
    "vgg16": ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512)),
    "vgg19": ((64, 64), (128, 128), (256,) * 4, (512,) * 4, (512,) * 4),
}


def kaiming_normal_fan_out(key: jax.Array, shape: Sequence[int], dtype: Any = jnp.float32) -> jax.Array:
    """torchvision VGG's conv init, ``kaiming_normal_(mode='fan_out', nonlinearity='relu')``: ``N(0, 2 / fan_out)``
    with ``fan_out = kh * kw * out`` -- the values of ``nn.initializers.variance_scaling(2.0, 'fan_out', 'normal')``
    bit for bit, drawn as one flat vector (XLA:CPU compiles the partitionable threefry of a 4-D shape about 3x
    slower than of the same number of values in 1-D; ``layers.normal_init`` does the same)."""
    variance = jnp.array(2.0 / (math.prod(shape[:-2]) * shape[-1]), dtype=dtype)
    return (jax.random.normal(key, (math.prod(shape),), dtype) * jnp.sqrt(variance)).reshape(shape)


def vgg_layer_names(vgg_type: str) -> tuple[str, ...]:
    """``('conv1_1', 'relu1_1', 'conv1_2', ..., 'pool5')``: index ``i`` = torchvision ``features[i]``."""
    if vgg_type not in VGG_BLOCKS:
        raise ValueError(f"vgg_type={vgg_type!r}; expected one of {tuple(VGG_BLOCKS)}")
    names: list[str] = []
    for b, block in enumerate(VGG_BLOCKS[vgg_type], start=1):
        for i in range(1, len(block) + 1):
            names += [f"conv{b}_{i}", f"relu{b}_{i}"]
        names.append(f"pool{b}")
    return tuple(names)


def conv_layer_indices(vgg_type: str) -> tuple[int, ...]:
    """torchvision ``features`` indices of the convs, in order (VGG16: 0, 2, 5, 7, 10, ...)."""
    return tuple(i for i, n in enumerate(vgg_layer_names(vgg_type)) if n.startswith("conv"))


def normalize_input(x: jax.Array, input_norm: str, range_norm: bool = False) -> jax.Array:
    """RGB ``[...,3]`` in ``[0,1]`` (``[-1,1]`` if ``range_norm``) -> the network's input (module docstring)."""
    if input_norm not in INPUT_NORMS:
        raise ValueError(f"input_norm={input_norm!r}; expected one of {INPUT_NORMS}")
    if range_norm:
        x = (x + 1.0) / 2.0
    if input_norm == "torchvision":
        x = (x - jnp.asarray(IMAGENET_MEAN, x.dtype)) / jnp.asarray(IMAGENET_STD, x.dtype)
    elif input_norm == "caffe":
        x = x[..., ::-1] * 255.0 - jnp.asarray(CAFFE_BGR_MEAN, x.dtype)
    return x


def check_taps(taps: Sequence[str], names: Sequence[str], model: str) -> None:
    """``ValueError`` unless ``taps`` is a non-empty sequence of names from ``names``."""
    if isinstance(taps, str) or len(taps) == 0:
        raise ValueError(f"{model} taps must be a non-empty sequence of layer names (e.g. ('relu1_1',)); got {taps!r}")
    unknown = [t for t in taps if t not in names]
    if unknown:
        raise ValueError(f"{model} has no layer(s) {unknown}; valid names: {', '.join(names)}")


class VGGFeatures(nn.Module):
    """VGG16/VGG19 ``features`` returning the requested taps.

    ``__call__(x)``: ``x`` ``[B,H,W,3]`` float RGB in ``[0,1]`` (see ``range_norm``) -> ``{tap: [B,h,w,C]}``
    float32 for every name in ``taps`` (``vgg_layer_names``); layers past the deepest tap are not run.

    Attributes: ``vgg_type`` ``'vgg16'`` | ``'vgg19'``; ``taps``; ``pooling`` ``'max'`` (as trained) or
    ``'avg'`` (Gatys et al.'s choice for synthesis), 2x2 stride 2, floor (PyTorch ``MaxPool2d(2, 2)``);
    ``input_norm`` ``'torchvision'`` | ``'caffe'`` | ``'none'`` (module docstring) -- it must match the
    weights' source; ``range_norm``: the input is in ``[-1,1]`` (BasicSR ``range_norm``); ``precision``: of the
    convolutions (``jax.lax.Precision.HIGHEST`` for full float32 on accelerators). Initialisation (random
    weights only): torchvision's ``kaiming_normal_(mode='fan_out', nonlinearity='relu')``, bias 0.
    """

    vgg_type: str = "vgg19"
    taps: Sequence[str] = ("relu5_4",)
    pooling: str = "max"
    input_norm: str = "torchvision"
    range_norm: bool = False
    precision: Any = None
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    def __post_init__(self) -> None:
        names = vgg_layer_names(self.vgg_type)
        check_taps(self.taps, names, f"VGGFeatures({self.vgg_type})")
        if self.pooling not in POOLINGS:
            raise ValueError(f"VGGFeatures pooling={self.pooling!r}; expected one of {POOLINGS}")
        if self.input_norm not in INPUT_NORMS:
            raise ValueError(f"VGGFeatures input_norm={self.input_norm!r}; expected one of {INPUT_NORMS}")
        super().__post_init__()

    @nn.compact
    def __call__(self, x: jax.Array) -> dict[str, jax.Array]:
        if x.ndim != 4 or x.shape[-1] != 3:
            raise ValueError(f"VGGFeatures expects [B,H,W,3] RGB images; got shape {tuple(x.shape)}")
        in_shape = x.shape
        names = vgg_layer_names(self.vgg_type)
        last = max(names.index(t) for t in self.taps)
        channels = [c for block in VGG_BLOCKS[self.vgg_type] for c in block]
        pool = nn.max_pool if self.pooling == "max" else nn.avg_pool
        x = normalize_input(jnp.asarray(x, jnp.float32), self.input_norm, self.range_norm).astype(self.dtype)
        out: dict[str, jax.Array] = {}
        n_conv = 0
        for idx, name in enumerate(names[: last + 1]):
            if name.startswith("conv"):
                x = nn.Conv(
                    channels[n_conv],
                    (3, 3),
                    padding=((1, 1), (1, 1)),
                    precision=self.precision,
                    kernel_init=kaiming_normal_fan_out,
                    bias_init=nn.initializers.zeros,
                    dtype=self.dtype,
                    param_dtype=self.param_dtype,
                    name=f"features_{idx}",
                    conv_general_dilated=conv_vjp.flax_conv_fn(),
                )(x)
                n_conv += 1
            elif name.startswith("relu"):
                x = nn.relu(x)
            else:
                if min(x.shape[1], x.shape[2]) < 2:
                    raise ValueError(f"VGGFeatures: input {tuple(in_shape)} is too small to reach {names[last]} "
                                     f"({name} gets {x.shape[1]}x{x.shape[2]})")
                x = pool(x, (2, 2), strides=(2, 2), padding="VALID")
            if name in self.taps:
                out[name] = x.astype(jnp.float32)
        return out
