"""Image-quality metrics, batched ``[B,H,W,C] -> [B]``, pure JAX, jittable: the one home for them.

* ``psnr``, ``ssim`` (``psnr_ssim``): full-reference fidelity, SR-paper protocol (Y channel, border crop);
  ``psnr_ssim_any_size``: both, one compiled program for images of many sizes (benchmark evaluation).
* ``lpips`` / ``lpips_fn`` / ``load_lpips_params`` / ``default_lpips_params`` (``lpips_metric``): LPIPS v0.1
  with the pretrained VGG16 / AlexNet trunks and heads.
* ``temporal_flicker`` / ``frame_change`` (``temporal``): video flicker, output change over input change.

A new metric gets its own module here and is re-exported below.
"""

from jaxgen.metrics.lpips_metric import (
    LPIPS_NETS,
    default_lpips_params,
    load_lpips_params,
    lpips,
    lpips_fn,
    lpips_per_layer,
)
from jaxgen.metrics.psnr_ssim import SSIM_SIGMA, SSIM_WINDOW, psnr, psnr_ssim_any_size, ssim
from jaxgen.metrics.temporal import frame_change, temporal_flicker

__all__ = [
    "LPIPS_NETS",
    "SSIM_SIGMA",
    "SSIM_WINDOW",
    "default_lpips_params",
    "frame_change",
    "load_lpips_params",
    "lpips",
    "lpips_fn",
    "lpips_per_layer",
    "psnr",
    "psnr_ssim_any_size",
    "ssim",
    "temporal_flicker",
]
