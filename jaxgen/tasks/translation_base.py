"""What the two translation tasks (``cyclegan``, ``pix2pix``) share: building their networks from config sections,
``[0,1] <-> [-1,1]``, the evaluation against a known truth, grids, and the exported inference modules.

Evaluation (host side, ``evaluate``): the ``data.num_eval`` evaluation images (held-out photos, or
``data.val_dir_a`` / ``val_dir_b``) at ``crop_size``, translated one at a time (batch 1, as the official
``test.py``; dropout off). Where the truth is known (``data.synthetic``: B = transform(A), or pix2pix pairs) the
scalars are ``val_mae_AtoB`` = mean ``|G(A) - B|`` over pixels and channels in ``[0, 1]`` and the identity
baseline ``val_mae_identity_AtoB`` = mean ``|A - B|`` (what doing nothing scores); CycleGAN adds the ``BtoA``
pair. Otherwise only grids.
"""

from __future__ import annotations

from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jaxgen.config import ConfigError
from jaxgen.image import grid, to_uint8
from jaxgen.inference.apply import make_apply
from jaxgen.models import build as build_translation_model
from jaxgen.tasks.common import compute_dtype, section_kwargs


def build_section_model(config: ml_collections.ConfigDict, where: str, **extra: Any) -> nn.Module:
    """``build_translation_model(config.<where>.name, **keys, **extra, dtype=compute dtype)``; mistakes are
    one-line ``ConfigError``s naming ``config.<where>``."""
    section = config[where]
    try:
        return build_translation_model(section.name, **section_kwargs(section, where), **extra, dtype=compute_dtype(config))
    except (TypeError, ValueError) as e:
        raise ConfigError(f"config.{where}: {e}") from None


def check_model(module: nn.Module, config: ml_collections.ConfigDict, where: str, channels: int) -> None:
    """Builds ``module`` abstractly on one ``crop_size`` image so a bad size/kwarg is a ``ConfigError`` up front."""
    s = int(config.data.crop_size)
    try:
        jax.eval_shape(module.init, jax.random.key(0), jax.ShapeDtypeStruct((1, s, s, channels), jnp.float32))
    except (TypeError, ValueError) as e:
        raise ConfigError(f"config.{where}: {e}") from None


def to_signed(x: jax.Array) -> jax.Array:
    """``[0,1] -> [-1,1]`` (the official ``Normalize((0.5,)*3, (0.5,)*3)``)."""
    return x * 2.0 - 1.0


def make_translate_fn(module: nn.Module) -> Callable[[Any, np.ndarray], np.ndarray]:
    """``(params, uint8 [h,w,3]) -> float32 [h,w,3] in [0,1]`` with the ``unit_range_io`` module jitted once."""
    apply = make_apply(module)

    def translate(params: Any, img: np.ndarray) -> np.ndarray:
        return np.asarray(apply(params, (img.astype(np.float32) / 255.0)[None]))[0]

    return translate


def mae(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference of two images in [0, 1] (uint8 inputs are divided by 255)."""
    a = a.astype(np.float64) / 255.0 if a.dtype == np.uint8 else a.astype(np.float64)
    b = b.astype(np.float64) / 255.0 if b.dtype == np.uint8 else b.astype(np.float64)
    return float(np.mean(np.abs(a - b)))


def export_generator(generator: nn.Module) -> nn.Module:
    """The inference form of a generator: the same params, ``[B,H,W,3]`` float32 in [0,1] -> same shape in [0,1]
    (deterministic: dropout off; a batch-norm generator normalises with the input batch's statistics)."""
    return generator.clone(unit_range_io=True, dtype=jnp.float32)


def size_multiple(generator: nn.Module) -> int:
    """The factor H and W must be multiples of: 4 (ResNet) or ``2**num_downs`` (U-Net)."""
    return 2 ** int(generator.num_downs) if hasattr(generator, "num_downs") else 4
