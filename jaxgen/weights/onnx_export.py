"""A model's forward pass as an ONNX model via ``jax2onnx`` (optional; run with ``onnxruntime``).

Not a declared extra: ``jax2onnx`` 0.15-0.17 (the releases that work with jax 0.10) pin
``orbax-checkpoint<0.11.37`` while jaxgen needs ``>=0.12``, so pip cannot resolve ``jaxgen[onnx]``; older
``jax2onnx`` (0.12) fails on jax 0.10. It works installed beside jaxgen without its pins:
``pip install --no-deps jax2onnx==0.17.1 onnx onnx-ir onnxruntime sympy mpmath``.

Measured here (jax2onnx 0.17.1, onnxruntime 1.31.1, CPU): EDSR, RCAN, RRDBNet and SRVGGNetCompact export with
symbolic batch/height/width and match ``module.apply`` to ~1e-6; PatchGAN (its output-size check) and MSRResNet
(the bilinear skip, ``jax.image.resize``) need concrete height and width; the VGG-style discriminator has a fixed
input size anyway.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import flax.linen as nn

__all__ = ["export_onnx"]


def export_onnx(
    module: nn.Module,
    params: Any,
    path: str | os.PathLike,
    *,
    input_shape: Sequence[int | str] = ("B", "H", "W", 3),
    opset: int = 23,
) -> None:
    """Write ``x -> module.apply({'params': params}, x)`` to ``path`` as ONNX (params as initializers).

    ``input_shape``: NHWC, strings are symbolic dimensions (``('B', 'H', 'W', 3)``). Float32 in and out.
    ``jax2onnx`` missing -> ``ValueError`` saying how to install it.
    """
    try:
        from jax2onnx import to_onnx
    except ImportError:
        raise ValueError(
            "export_onnx needs jax2onnx: pip install --no-deps jax2onnx==0.17.1 onnx onnx-ir onnxruntime sympy mpmath"
        ) from None
    variables = {"params": params}
    to_onnx(lambda x: module.apply(variables, x), [tuple(input_shape)], model_name=type(module).__name__,
            opset=opset, return_mode="file", output_path=os.fspath(path))
