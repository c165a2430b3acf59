"""The train state of a two-player (generator + optional discriminator) model.

Checkpoint tree (``W/checkpoints/<step>/state``), field by field:

- ``step``: int32 scalar, number of updates applied.
- ``rng``: uint32 ``[2]`` raw key data of the run's base key; step ``t`` uses ``fold_in(rng, t)``.
- ``params``: generator params (the Flax ``{'params': ...}`` collection's content).
- ``opt_state``: generator Optax state.
- ``ema_params``: exponential moving average of ``params`` (``None`` when ``ema_decay == 0``).
- ``d_params`` / ``d_opt_state``: discriminator params and Optax state (``None`` without a discriminator).
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from flax import struct


@struct.dataclass
class TrainState:
    step: jax.Array
    rng: jax.Array
    params: Any
    opt_state: Any
    ema_params: Any
    d_params: Any
    d_opt_state: Any

    @property
    def eval_params(self) -> Any:
        """The generator params to evaluate/export: the EMA copy when there is one."""
        return self.params if self.ema_params is None else self.ema_params


def init_state(
    seed: int,
    generator: nn.Module,
    g_tx: optax.GradientTransformation,
    lr_shape: tuple[int, ...],
    hr_shape: tuple[int, ...],
    *,
    discriminator: nn.Module | None = None,
    d_tx: optax.GradientTransformation | None = None,
    use_ema: bool = False,
) -> TrainState:
    """Fresh state; pure, so it can run under ``jax.jit`` / ``jax.eval_shape``.

    ``lr_shape``/``hr_shape`` are example batch shapes ``[B,h,w,C]`` / ``[B,h*s,w*s,C]`` (only used to trace).
    """
    base = jax.random.key(seed)
    g_key, d_key = jax.random.split(jax.random.fold_in(base, -1 & 0x7FFFFFFF))
    params = generator.init(g_key, jnp.zeros(lr_shape, jnp.float32))["params"]
    d_params = d_opt_state = None
    if discriminator is not None:
        d_params = discriminator.init(d_key, jnp.zeros(hr_shape, jnp.float32))["params"]
        d_opt_state = d_tx.init(d_params)
    return TrainState(
        step=jnp.zeros((), jnp.int32),
        rng=jax.random.key_data(base),
        params=params,
        opt_state=g_tx.init(params),
        ema_params=jax.tree.map(jnp.copy, params) if use_ema else None,
        d_params=d_params,
        d_opt_state=d_opt_state,
    )
