"""Real-ESRGAN's degradation model on device (``jax.jit``-able, per-step keys): blur kernels (``kernels``),
reflect-padded filtering (``filtering``), PyTorch-exact resizing on dynamic sizes (``resize``), Gaussian/Poisson
noise (``noise``), a JPEG codec model (``jpeg``), unsharp masking (``usm``), and the second-order pipeline with
its training-pair pool (``pipeline``). Official reference: Real-ESRGAN v0.3.0 / BasicSR 1.4.2."""

from jaxgen.degradations.filtering import filter2d, filter2d_valid
from jaxgen.degradations.jpeg import jpeg_compress, quant_tables
from jaxgen.degradations.kernels import KernelSpec, sample_kernel, sample_kernel_params
from jaxgen.degradations.noise import add_gaussian_noise, add_poisson_noise
from jaxgen.degradations.pipeline import (
    DegradationConfig,
    default_degradation_config,
    degrade,
    paired_random_crop,
    pool_init,
    pool_update,
)
from jaxgen.degradations.resize import resize_matrix, resize_valid
from jaxgen.degradations.usm import usm_sharp

__all__ = [
    "DegradationConfig",
    "KernelSpec",
    "add_gaussian_noise",
    "add_poisson_noise",
    "default_degradation_config",
    "degrade",
    "filter2d",
    "filter2d_valid",
    "jpeg_compress",
    "paired_random_crop",
    "pool_init",
    "pool_update",
    "quant_tables",
    "resize_matrix",
    "resize_valid",
    "sample_kernel",
    "sample_kernel_params",
    "usm_sharp",
]
