"""Builds the players and optimizers of a run from its config."""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax.numpy as jnp
import ml_collections
import optax

from jaxgen import models
from jaxgen.train import optim

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16, "float16": jnp.float16}


def compute_dtype(config: ml_collections.ConfigDict) -> Any:
    if config.compute_dtype not in DTYPES:
        raise ValueError(f"config.compute_dtype={config.compute_dtype!r}; expected one of {sorted(DTYPES)}")
    return DTYPES[config.compute_dtype]


def build_generator(config: ml_collections.ConfigDict) -> nn.Module:
    """``models.build(config.model.name, scale=config.scale, dtype=..., **other model keys)``."""
    kwargs = {k: v for k, v in config.model.items() if k != "name"}
    kwargs = {k: (tuple(v) if isinstance(v, list) else v) for k, v in kwargs.items()}
    return models.build(config.model.name, scale=config.scale, dtype=compute_dtype(config), **kwargs)


def build_discriminator(config: ml_collections.ConfigDict) -> nn.Module | None:
    """``None`` when ``config.disc.name`` is empty (PSNR-oriented training)."""
    if not config.disc.name:
        return None
    kwargs = dict(config.disc.kwargs)
    return models.build(config.disc.name, dtype=compute_dtype(config), **kwargs)


def build_optimizers(
    config: ml_collections.ConfigDict,
) -> tuple[optax.GradientTransformation, optax.Schedule, optax.GradientTransformation | None]:
    """``(generator tx, generator lr schedule, discriminator tx or None)``."""
    g_tx = optim.make_optimizer(config.optim, config.total_steps)
    g_schedule = optim.make_schedule(config.optim, config.total_steps)
    d_tx = optim.make_optimizer(config.disc.optim, config.total_steps) if config.disc.name else None
    return g_tx, g_schedule, d_tx
