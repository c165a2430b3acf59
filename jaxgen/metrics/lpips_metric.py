"""LPIPS v0.1 (Zhang et al., "The Unreasonable Effectiveness of Deep Features as a Perceptual Metric", CVPR 2018).

The same computation as the ``lpips`` package's ``LPIPS(net=..., version='0.1').forward(a, b, normalize=True)``:

1. inputs ``[0,1]`` -> ``[-1,1]`` (``2x - 1``), then the scaling layer ``(x - shift) / scale`` with
   ``shift = [-.030, -.088, -.188]``, ``scale = [.458, .448, .450]``;
2. trunk features at 5 taps: VGG16 ``relu1_2, relu2_2, relu3_3, relu4_3, relu5_3`` or AlexNet ``relu1..relu5``
   (torchvision layouts, ImageNet weights);
3. each feature unit-normalised over channels, ``f / (sqrt(sum_c f^2) + 1e-10)``;
4. squared difference, a learned 1x1 conv to one channel (no bias; the v0.1 heads), spatial mean;
5. sum over the 5 layers -> one distance per image.

The square root in step 3 has a zero-safe gradient (0 where all channels are 0), so the loss never returns
NaN gradients there; the forward values are unchanged.

Params tree (``load_lpips_params``): ``{'net': {'features_N': {'kernel', 'bias'}}, 'lin': {'lin0': [C0], ...}}``.
"""

from __future__ import annotations

import functools
import os
from typing import Any, Mapping

import jax
import jax.numpy as jnp

from jaxgen.weights import pretrained
from jaxgen.models.alexnet import AlexNetFeatures
from jaxgen.models.vgg import VGGFeatures

__all__ = [
    "LPIPS_NETS",
    "LPIPS_SCALE",
    "LPIPS_SHIFT",
    "LPIPS_TAPS",
    "default_lpips_params",
    "load_lpips_params",
    "lpips",
    "lpips_fn",
    "lpips_per_layer",
]

LPIPS_SHIFT: tuple[float, float, float] = (-0.030, -0.088, -0.188)
LPIPS_SCALE: tuple[float, float, float] = (0.458, 0.448, 0.450)
LPIPS_TAPS: dict[str, tuple[str, ...]] = {
    "vgg": ("relu1_2", "relu2_2", "relu3_3", "relu4_3", "relu5_3"),
    "alex": ("relu1", "relu2", "relu3", "relu4", "relu5"),
}
LPIPS_NETS: tuple[str, ...] = tuple(LPIPS_TAPS)
_MIN_SIDE = {"vgg": 16, "alex": 31}
EPS = 1e-10

Params = Mapping[str, Any]


def load_lpips_params(net: str = "vgg", *, trunk_path: str | os.PathLike | None = None,
                      heads_path: str | os.PathLike | None = None, allow_download: bool = False) -> dict[str, Any]:
    """The LPIPS v0.1 params of ``net`` ('vgg' | 'alex') as numpy arrays (``jaxgen.weights.pretrained`` resolution)."""
    _check_net(net)
    if net == "vgg":
        trunk = pretrained.load_vgg("vgg16", "torchvision", path=trunk_path, allow_download=allow_download).params
    else:
        trunk = pretrained.load_alexnet(path=trunk_path, allow_download=allow_download)
    return {"net": trunk, "lin": pretrained.load_lpips_heads(net, path=heads_path, allow_download=allow_download)}


@functools.lru_cache(maxsize=None)
def default_lpips_params(net: str = "vgg") -> dict[str, Any]:
    """``load_lpips_params(net)`` as device arrays, loaded once per process (do not mutate)."""
    return jax.tree_util.tree_map(jnp.asarray, load_lpips_params(net))


def _check_net(net: str) -> None:
    if net not in LPIPS_TAPS:
        raise ValueError(f"LPIPS net={net!r}; expected one of {LPIPS_NETS}")


def _check_images(a: jax.Array, b: jax.Array, net: str) -> None:
    if a.shape != b.shape:
        raise ValueError(f"lpips: image shapes differ: {tuple(a.shape)} vs {tuple(b.shape)}")
    if a.ndim != 4 or a.shape[-1] != 3:
        raise ValueError(f"lpips expects [B,H,W,3] RGB images in [0,1]; got shape {tuple(a.shape)}")
    if min(a.shape[1], a.shape[2]) < _MIN_SIDE[net]:
        raise ValueError(f"lpips(net={net!r}) needs images of at least {_MIN_SIDE[net]}x{_MIN_SIDE[net]}; "
                         f"got {a.shape[1]}x{a.shape[2]}")


def _safe_norm(f: jax.Array) -> jax.Array:
    """``sqrt(sum_c f^2)`` over the last axis, keepdims, with gradient 0 (not NaN) where it is 0."""
    s = jnp.sum(jnp.square(f), axis=-1, keepdims=True)
    pos = s > 0
    return jnp.where(pos, jnp.sqrt(jnp.where(pos, s, 1.0)), 0.0)


@functools.partial(jax.jit, static_argnames=("net", "precision"))
def lpips_per_layer(params: Params, a: jax.Array, b: jax.Array, *, net: str = "vgg",
                    precision: Any = jax.lax.Precision.HIGHEST) -> jax.Array:
    """Per-layer LPIPS terms ``[B,5]`` (their sum over the last axis is ``lpips_fn``); see ``lpips_fn``."""
    _check_net(net)
    a, b = jnp.asarray(a, jnp.float32), jnp.asarray(b, jnp.float32)
    _check_images(a, b, net)
    taps = LPIPS_TAPS[net]
    if net == "vgg":
        trunk = VGGFeatures("vgg16", taps=taps, input_norm="none", precision=precision)
    else:
        trunk = AlexNetFeatures(taps=taps, input_norm="none", precision=precision)
    x = jnp.concatenate([a, b], axis=0) * 2.0 - 1.0
    x = (x - jnp.asarray(LPIPS_SHIFT, jnp.float32)) / jnp.asarray(LPIPS_SCALE, jnp.float32)
    feats = trunk.apply({"params": params["net"]}, x)
    n = a.shape[0]
    terms = []
    for k, tap in enumerate(taps):
        f = feats[tap]
        f = f / (_safe_norm(f) + EPS)
        d = jnp.square(f[:n] - f[n:])
        w = jnp.asarray(params["lin"][f"lin{k}"], jnp.float32)
        terms.append(jnp.mean(jnp.einsum("bhwc,c->bhw", d, w, precision=precision), axis=(1, 2)))
    return jnp.stack(terms, axis=-1)


def lpips_fn(params: Params, a: jax.Array, b: jax.Array, *, net: str = "vgg",
             precision: Any = jax.lax.Precision.HIGHEST) -> jax.Array:
    """LPIPS v0.1 distance, pure and differentiable: ``a``, ``b`` ``[B,H,W,3]`` RGB in ``[0,1]`` -> ``[B]`` float32.

    ``params``: ``load_lpips_params(net)`` (or ``default_lpips_params``); ``net`` 'vgg' (VGG16, needs H, W >= 16)
    or 'alex' (AlexNet, H, W >= 31). ``precision`` of the convolutions (HIGHEST: full float32 on accelerators;
    ``None`` is faster as a training loss there). Jitted (``net``, ``precision`` static).
    """
    return jnp.sum(lpips_per_layer(params, a, b, net=net, precision=precision), axis=-1)


def lpips(a: jax.Array, b: jax.Array, *, net: str = "vgg") -> jax.Array:
    """LPIPS v0.1 metric with the default pretrained weights (loaded once): ``[B,H,W,3]`` in ``[0,1]`` -> ``[B]``.

    Equal to ``lpips.LPIPS(net=net)(a, b, normalize=True)`` of the ``lpips`` package (NCHW there). Raises
    ``jaxgen.weights.pretrained.WeightsNotFoundError`` when the weight packages are not installed.
    """
    _check_net(net)
    return lpips_fn(default_lpips_params(net), a, b, net=net)
