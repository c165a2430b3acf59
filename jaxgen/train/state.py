"""The train state of any task: named players plus task-owned buffers.

Checkpoint tree (``W/checkpoints/<step>/state``), field by field:

- ``step``: int32 scalar, number of updates applied.
- ``rng``: uint32 ``[2]`` raw key data of the run's base key. Step ``t`` draws its randomness from
  ``fold_in(fold_in(rng, t), stream)`` (:func:`step_key`), one named stream constant per use (``STREAM_*``),
  so a resumed run draws exactly what a straight run draws.
- ``players``: ``{name: Player}``, e.g. ``{'generator': ..., 'discriminator': ...}`` or CycleGAN's four.
  Each :class:`Player` holds ``params``, ``opt_state``, optional non-param ``collections`` (e.g. spectral-norm
  ``u`` vectors, updated through ``apply(..., mutable=...)``) and an optional ``ema`` copy of ``params``.
  A network's repeated blocks (EDSR's, RRDBNet's, RCAN's) keep their parameters stacked under one key
  (``body_0..22``; ``jaxgen.models.stacking``): one leaf per parameter of a block, so the optimizer and the step
  stay small. ``stacking.unstack`` gives the official names (exports and ``restore_player`` do it).
- ``buffers``: task-owned device arrays that live in the checkpoint (image pools, training-pair queues).

Frozen networks (VGG, an AdaIN encoder) are *not* state: they are the step's separate ``consts`` argument.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import struct

# Named randomness streams: ``step_key(state, STREAM_X)``. Tasks may define more (any distinct int).
STREAM_INIT = 0x696E6974  # parameter initialisation (used with step -1)
STREAM_DROPOUT = 1
STREAM_NOISE = 2
STREAM_DEGRADE = 3
STREAM_POOL = 4
STREAM_AUGMENT = 5


@struct.dataclass
class Player:
    """One trained network: ``params``, its Optax ``opt_state``, non-param ``collections`` (``{}`` if none)
    and ``ema`` (an exponential moving average of ``params``; ``None`` when not kept)."""

    params: Any
    opt_state: Any
    collections: Any = struct.field(default_factory=dict)
    ema: Any = None

    @property
    def eval_params(self) -> Any:
        """The params to evaluate/export: the EMA copy when there is one."""
        return self.params if self.ema is None else self.ema


@struct.dataclass
class TrainState:
    step: jax.Array
    rng: jax.Array
    players: dict[str, Player]
    buffers: dict[str, Any] = struct.field(default_factory=dict)


def base_key(seed: int) -> jax.Array:
    """The run's base key (a typed threefry key) for ``seed``."""
    return jax.random.key(seed)


def init_key(seed: int, player: str) -> jax.Array:
    """The initialisation key of ``player`` (independent of every step's keys)."""
    key = jax.random.fold_in(jax.random.fold_in(base_key(seed), -1 & 0x7FFFFFFF), STREAM_INIT)
    return jax.random.fold_in(key, _name_id(player))


def _name_id(name: str) -> int:
    import zlib

    return zlib.crc32(name.encode()) & 0x7FFFFFFF


def step_key(state: TrainState, stream: int) -> jax.Array:
    """``fold_in(fold_in(rng, step), stream)``: the key of ``stream`` at the state's step."""
    key = jax.random.wrap_key_data(state.rng)
    return jax.random.fold_in(jax.random.fold_in(key, state.step), stream)


def new_player(params: Any, tx: optax.GradientTransformation, *, collections: Any = None, ema: bool = False) -> Player:
    """A fresh player (pure): optimizer state of ``tx``; the EMA starts as a copy of ``params``."""
    return Player(
        params=params,
        opt_state=tx.init(params),
        collections={} if collections is None else collections,
        ema=jax.tree.map(jnp.copy, params) if ema else None,
    )


def apply_gradients(
    player: Player, grads: Any, tx: optax.GradientTransformation, *, ema_decay: float = 0.0, collections: Any = None
) -> Player:
    """One optimizer update; the EMA (when kept) follows ``ema = decay * ema + (1 - decay) * params``
    (``optax.incremental_update``), as BasicSR's ``model_ema``; ``collections`` replaces the player's when given."""
    updates, opt_state = tx.update(grads, player.opt_state, player.params)
    params = optax.apply_updates(player.params, updates)
    ema = player.ema
    if ema is not None:
        ema = optax.incremental_update(params, ema, step_size=1.0 - ema_decay)
    return player.replace(
        params=params,
        opt_state=opt_state,
        ema=ema,
        collections=player.collections if collections is None else collections,
    )


def new_state(seed: int, players: dict[str, Player], buffers: dict[str, Any] | None = None) -> TrainState:
    """Step 0 of a run with base key ``seed``."""
    return TrainState(
        step=jnp.zeros((), jnp.int32),
        rng=jax.random.key_data(base_key(seed)),
        players=dict(players),
        buffers={} if buffers is None else dict(buffers),
    )
