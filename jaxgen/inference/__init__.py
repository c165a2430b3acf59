"""Running trained networks on images: the one home for inference.

* ``make_apply(module, network)`` (``apply``): the one jitted ``(params, x) -> y`` helper, with jaxgen's measured
  per-network compile options; ``make_sr_fn``: ``lr uint8 -> sr float32`` with it, tiled or whole.
* ``Upscaler`` / ``SRModel`` / ``model_from_module`` (``upscaler``): Real-ESRGAN-style upscaling of whole image
  files (tiles, self-ensemble, alpha, 16-bit, outscale).
* ``upscale_tiled`` / ``tile_windows`` (``tiling``): windowed inference assembled on the host.

``jaxgen.inference.demo`` (a zoo model beside bicubic) is imported on its own: it reads ``jaxgen.weights.zoo``.
A workdir's trained generator: ``jaxgen.tasks.restore_generator`` (the task builds the exported module).
"""

from jaxgen.inference.apply import ApplyFn, make_apply, make_sr_fn
from jaxgen.inference.tiling import tile_windows, upscale_tiled
from jaxgen.inference.upscaler import (
    ALPHA_UPSAMPLERS,
    SRModel,
    Upscaler,
    d4_transforms,
    model_from_module,
    resize_lanczos,
)

__all__ = [
    "ALPHA_UPSAMPLERS",
    "ApplyFn",
    "SRModel",
    "Upscaler",
    "d4_transforms",
    "make_apply",
    "make_sr_fn",
    "model_from_module",
    "resize_lanczos",
    "tile_windows",
    "upscale_tiled",
]
