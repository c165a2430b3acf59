"""The Gatys et al. (CVPR 2016) objective as jcjohnson/neural-style (``neural_style.lua``) defines it.

The optimised variable ``z`` is the image in the Caffe VGG's input space (``to_caffe``: RGB -> BGR, times 255,
minus the BGR pixel mean; jcjohnson multiplies by 256 -- a 0.4% scale difference, kept at 255 here to match
``jaxgen.models.vgg``'s ``'caffe'`` convention), ``[1,H,W,3]`` float32. With ``F_l`` the VGG19 activations
(``jaxgen.models.vgg.VGGFeatures``, ``input_norm='none'`` on ``z``):

* content: ``content_weight * mean((F_l(z) - F_l(content))^2)`` per content layer (``nn.MSECriterion``);
* style: ``style_weight * mean((G_l(z) - T_l)^2)`` per style layer, ``G = F^T F / (C*H*W)``
  (``jaxgen.losses.gram_matrix``; ``GramMatrix`` then ``:div(input:nElement())``) and ``T_l`` the blend
  ``sum_i w_i G_l(style_i)`` with the weights normalised to sum 1 (``-style_blend_weights``);
* TV: ``tv_weight * 0.5 * sum((z[i,j] - z[i,j+1])^2 + (z[i,j] - z[i+1,j])^2)`` over ``i < H-1, j < W-1``
  (:func:`tv_squared`), whose gradient is exactly ``TVLoss:updateGradInput``'s (neural_style.lua computes no
  TV value; this is the function it differentiates).

Defaults (``GatysObjective``): content ``relu4_2``, style ``relu1_1, relu2_1, relu3_1, relu4_1, relu5_1``,
weights 5 / 100 / 1e-3, max pooling -- neural-style's defaults.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxgen.losses import gram_matrix
from jaxgen.models.vgg import CAFFE_BGR_MEAN, VGGFeatures, vgg_layer_names

__all__ = ["GatysObjective", "content_targets", "from_caffe", "gatys_loss", "style_targets", "to_caffe", "tv_squared"]

Params = Mapping[str, Any]


@dataclasses.dataclass(frozen=True)
class GatysObjective:
    """Layers, weights and pooling of the objective (hashable: it is a static argument of the jitted step)."""

    content_layers: tuple[str, ...] = ("relu4_2",)
    style_layers: tuple[str, ...] = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
    content_weight: float = 5.0
    style_weight: float = 100.0
    tv_weight: float = 1e-3
    pooling: str = "max"

    def __post_init__(self) -> None:
        names = vgg_layer_names("vgg19")
        for what, layers in (("content_layers", self.content_layers), ("style_layers", self.style_layers)):
            if isinstance(layers, str) or not layers or any(l not in names for l in layers):
                raise ValueError(f"GatysObjective.{what}={layers!r}: expected VGG19 layer names such as 'relu4_2'")
        for what in ("content_weight", "style_weight", "tv_weight"):
            if getattr(self, what) < 0:
                raise ValueError(f"GatysObjective.{what}={getattr(self, what)}: expected >= 0")
        if self.pooling not in ("max", "avg"):
            raise ValueError(f"GatysObjective.pooling={self.pooling!r}: expected 'max' or 'avg'")

    def vgg(self) -> VGGFeatures:
        taps = tuple(dict.fromkeys(self.content_layers + self.style_layers))
        return VGGFeatures(vgg_type="vgg19", taps=taps, pooling=self.pooling, input_norm="none")


def to_caffe(rgb: Any) -> jax.Array:
    """RGB ``[...,3]`` in ``[0,1]`` -> the Caffe VGG input (BGR, 0-255, minus the BGR pixel mean)."""
    return jnp.asarray(rgb, jnp.float32)[..., ::-1] * 255.0 - jnp.asarray(CAFFE_BGR_MEAN, jnp.float32)


def from_caffe(z: Any) -> jax.Array:
    """Inverse of :func:`to_caffe` (not clipped)."""
    return ((jnp.asarray(z, jnp.float32) + jnp.asarray(CAFFE_BGR_MEAN, jnp.float32)) / 255.0)[..., ::-1]


def tv_squared(z: jax.Array) -> jax.Array:
    """``0.5 * sum(dx^2 + dy^2)`` over the top-left ``(H-1)x(W-1)`` block of ``[B,H,W,C]`` (module docstring)."""
    if z.ndim != 4 or min(z.shape[1], z.shape[2]) < 2:
        raise ValueError(f"tv_squared expects [B,H,W,C] with H, W >= 2; got shape {tuple(z.shape)}")
    base = z[:, :-1, :-1]
    dx = base - z[:, :-1, 1:]
    dy = base - z[:, 1:, :-1]
    return 0.5 * (jnp.sum(jnp.square(dx)) + jnp.sum(jnp.square(dy)))


def _features(objective: GatysObjective, vgg_params: Params, z: jax.Array) -> dict[str, jax.Array]:
    return objective.vgg().apply({"params": vgg_params}, z)


def content_targets(objective: GatysObjective, vgg_params: Params, content: Any) -> dict[str, jax.Array]:
    """``{layer: [1,h,w,C]}`` features of the content image (``[H,W,3]`` RGB in ``[0,1]``)."""
    feats = _features(objective, vgg_params, to_caffe(content)[None])
    return {k: feats[k] for k in objective.content_layers}


def style_targets(objective: GatysObjective, vgg_params: Params, styles: Sequence[Any],
                  blend_weights: Sequence[float] | None = None) -> dict[str, jax.Array]:
    """``{layer: [1,C,C]}`` blended Gram targets of the style images (each ``[h,w,3]`` RGB in ``[0,1]``, any size).

    ``blend_weights`` default equal; normalised to sum 1 (neural-style ``-style_blend_weights``).
    """
    if not styles:
        raise ValueError("style_targets: no style image")
    weights = [1.0] * len(styles) if blend_weights is None else [float(w) for w in blend_weights]
    if len(weights) != len(styles):
        raise ValueError(f"{len(styles)} style images but {len(weights)} blend weights")
    if any(w < 0 for w in weights) or sum(weights) <= 0:
        raise ValueError(f"style blend weights must be >= 0 with a positive sum; got {weights}")
    total = sum(weights)
    out: dict[str, jax.Array] = {}
    for style, w in zip(styles, weights):
        feats = _features(objective, vgg_params, to_caffe(style)[None])
        for k in objective.style_layers:
            g = gram_matrix(feats[k]) * (w / total)
            out[k] = g if k not in out else out[k] + g
    return out


def gatys_loss(objective: GatysObjective, z: jax.Array, targets: Mapping[str, Any],
               vgg_params: Params) -> tuple[jax.Array, dict[str, jax.Array]]:
    """``(total, {'content', 'style', 'tv'})`` of ``z`` ``[1,H,W,3]`` (Caffe space); ``targets`` =
    ``{'content': content_targets(...), 'style': style_targets(...)}``."""
    feats = _features(objective, vgg_params, z)
    content = sum(jnp.mean(jnp.square(feats[k] - targets["content"][k])) for k in objective.content_layers)
    style = sum(jnp.mean(jnp.square(gram_matrix(feats[k]) - targets["style"][k])) for k in objective.style_layers)
    parts = {
        "content": objective.content_weight * content,
        "style": objective.style_weight * style,
        "tv": objective.tv_weight * tv_squared(z),
    }
    return parts["content"] + parts["style"] + parts["tv"], parts


def random_init(shape: tuple[int, int], seed: int) -> np.ndarray:
    """neural-style ``-init random``: ``randn * 0.001`` in the Caffe space, ``[1,H,W,3]`` float32."""
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((1, *shape, 3)) * 1e-3).astype(np.float32)
