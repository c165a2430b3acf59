"""The one jitted-apply helper (``make_apply``) and whole-image super-resolution with it (``make_sr_fn``; used by
validation, eval, upscale, demo, stylize, translate)."""

from __future__ import annotations

from typing import Any, Callable

import flax.linen as nn
import jax
import numpy as np

from jaxgen import image, xla_setup
from jaxgen.inference import tiling
from jaxgen.models import onednn_conv

__all__ = ["ApplyFn", "make_apply", "make_sr_fn"]

ApplyFn = Callable[[Any, jax.Array], jax.Array]


def make_apply(model: nn.Module, network: str | None = None) -> ApplyFn:
    """``jit((params, x [1,h,w,C] float32 in [0,1]) -> [1,h*s,w*s,C])``; compiles once per input shape, so make
    it once per run and reuse it across evaluations. ``network`` (the model's registry name) selects jaxgen's
    measured per-network compile options (``xla_setup.inference_compiler_options`` for the process's convolution
    backend, so call it after ``onednn_conv.configure``; none when ``None``)."""
    options = (xla_setup.inference_compiler_options(network, conv_backend=onednn_conv.current_backend())
               if network else {})
    return jax.jit(lambda params, x: model.apply({"params": params}, x), compiler_options=options or None)


def make_sr_fn(
    apply: ApplyFn, params: Any, scale: int, *, tile: int = 0, overlap: int = 16
) -> Callable[[np.ndarray], np.ndarray]:
    """``lr uint8 [h,w,C] -> sr float32 [h*s,w*s,C]`` (not clipped); tiled when ``tile > 0`` (see
    :func:`jaxgen.inference.tiling.upscale_tiled`: equal to the untiled output when ``overlap`` covers the receptive field)."""

    def batch_fn(x: np.ndarray) -> np.ndarray:
        return np.asarray(apply(params, x))

    def sr_fn(lr_u8: np.ndarray) -> np.ndarray:
        lr = image.to_float(lr_u8)
        if tile:
            return tiling.upscale_tiled(batch_fn, lr, scale, tile=tile, overlap=overlap)
        return batch_fn(lr[None])[0]

    return sr_fn
