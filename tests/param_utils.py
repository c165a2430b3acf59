"""Helpers shared by the model tests."""

from __future__ import annotations

import flax
import jax.numpy as jnp


def zero_params(params, *path: str):
    """A copy of ``params`` (``{'params': ...}``) with every leaf of the module at ``path`` zeroed."""
    p = flax.core.unfreeze(params)
    node = p["params"]
    for name in path:
        node = node[name]
    for leaf in list(node):
        node[leaf] = jnp.zeros_like(node[leaf])
    return p
