"""AlexNet features in torchvision's layout (Krizhevsky 2014 "one weird trick" variant), the LPIPS 'alex' trunk.

torchvision ``models.alexnet().features``::

    0 conv1 Conv2d(3, 64, 11, stride 4, padding 2)    1 relu1   2 pool1 MaxPool2d(3, 2)
    3 conv2 Conv2d(64, 192, 5, padding 2)             4 relu2   5 pool2 MaxPool2d(3, 2)
    6 conv3 Conv2d(192, 384, 3, padding 1)            7 relu3
    8 conv4 Conv2d(384, 256, 3, padding 1)            9 relu4
    10 conv5 Conv2d(256, 256, 3, padding 1)          11 relu5  12 pool5 MaxPool2d(3, 2)

The conv at index ``N`` is the Flax submodule ``features_N`` (``features.N.weight`` ``[O,I,k,k]`` ->
``kernel`` ``[k,k,I,O]``), the same convention as ``jaxgen.models.vgg``. Pools are floor-mode, no padding.
"""

from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxgen.models.layers import torch_init
from jaxgen.models.vgg import INPUT_NORMS, check_taps, normalize_input

__all__ = ["ALEXNET_LAYERS", "AlexNetFeatures", "alexnet_layer_names"]

Dtype = Any

# name -> ("conv", out_channels, kernel, stride, padding) | ("relu",) | ("pool",), in torchvision order.
ALEXNET_LAYERS: tuple[tuple[str, tuple[Any, ...]], ...] = (
    ("conv1", ("conv", 64, 11, 4, 2)),
    ("relu1", ("relu",)),
    ("pool1", ("pool",)),
    ("conv2", ("conv", 192, 5, 1, 2)),
    ("relu2", ("relu",)),
    ("pool2", ("pool",)),
    ("conv3", ("conv", 384, 3, 1, 1)),
    ("relu3", ("relu",)),
    ("conv4", ("conv", 256, 3, 1, 1)),
    ("relu4", ("relu",)),
    ("conv5", ("conv", 256, 3, 1, 1)),
    ("relu5", ("relu",)),
    ("pool5", ("pool",)),
)


def alexnet_layer_names() -> tuple[str, ...]:
    """``('conv1', 'relu1', 'pool1', ..., 'pool5')``: index ``i`` = torchvision ``features[i]``."""
    return tuple(name for name, _ in ALEXNET_LAYERS)


class AlexNetFeatures(nn.Module):
    """torchvision AlexNet ``features`` returning the requested taps.

    ``__call__(x)``: ``x`` ``[B,H,W,3]`` float -> ``{tap: [B,h,w,C]}`` float32 (layers past the deepest tap are not
    run). ``input_norm`` as ``VGGFeatures`` (default ``'none'``: LPIPS applies its own scaling layer first).
    Needs ``H, W >= 31`` to reach ``relu2`` and beyond (torchvision would fail too). PyTorch default init.
    """

    taps: Sequence[str] = ("relu1", "relu2", "relu3", "relu4", "relu5")
    input_norm: str = "none"
    precision: Any = None
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    def __post_init__(self) -> None:
        check_taps(self.taps, alexnet_layer_names(), "AlexNetFeatures")
        if self.input_norm not in INPUT_NORMS:
            raise ValueError(f"AlexNetFeatures input_norm={self.input_norm!r}; expected one of {INPUT_NORMS}")
        super().__post_init__()

    @nn.compact
    def __call__(self, x: jax.Array) -> dict[str, jax.Array]:
        if x.ndim != 4 or x.shape[-1] != 3:
            raise ValueError(f"AlexNetFeatures expects [B,H,W,3] RGB images; got shape {tuple(x.shape)}")
        in_shape = x.shape
        names = alexnet_layer_names()
        last = max(names.index(t) for t in self.taps)
        x = normalize_input(jnp.asarray(x, jnp.float32), self.input_norm).astype(self.dtype)
        out: dict[str, jax.Array] = {}
        for idx, (name, spec) in enumerate(ALEXNET_LAYERS[: last + 1]):
            if spec[0] == "conv":
                _, features, k, stride, pad = spec
                kernel_init, bias_init = torch_init(x.shape[-1] * k * k)
                x = nn.Conv(
                    features,
                    (k, k),
                    strides=(stride, stride),
                    padding=((pad, pad), (pad, pad)),
                    precision=self.precision,
                    kernel_init=kernel_init,
                    bias_init=bias_init,
                    dtype=self.dtype,
                    param_dtype=self.param_dtype,
                    name=f"features_{idx}",
                )(x)
            elif spec[0] == "relu":
                x = nn.relu(x)
            else:
                if min(x.shape[1], x.shape[2]) < 3:
                    raise ValueError(f"AlexNetFeatures: input {tuple(in_shape)} is too small to reach {names[last]} "
                                     f"({name} gets {x.shape[1]}x{x.shape[2]}; needs H, W >= 31)")
                x = nn.max_pool(x, (3, 3), strides=(2, 2), padding="VALID")
            if name in self.taps:
                out[name] = x.astype(jnp.float32)
        return out
