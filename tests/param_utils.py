"""Helpers shared by the model tests."""

from __future__ import annotations

from typing import Any, Mapping

import flax
import jax
import jax.numpy as jnp
import numpy as np

# Compile options for test programs whose checks have tolerances: LLVM -O0 roughly halves XLA:CPU compile time.
# Not for bitwise comparisons with eager or default-compiled code: -O0 contracts no multiply-adds, so the last
# bit can differ (a jitted init at -O0 draws other parameters than the eager init).
FAST_COMPILE = {"xla_backend_optimization_level": 0}
# XLA:CPU's default code generation (LLVM -O3, the MLIR fusion emitters), for the programs whose checks are about
# what a user's run computes bit for bit or against the official code's float32 spread: the suite compiles the
# rest at -O0 with the classic emitters (tests/conftest.py), whose results differ in the last bits (no fused
# multiply-adds) and, across program layouts, from each other.
USER_CODEGEN = {"xla_backend_optimization_level": 3, "xla_cpu_use_fusion_emitters": True}
# -O0 with the fusion emitters: one program comparing two layouts of the same computation bit for bit (the
# classic emitters round a vmapped draw and the same draw unbatched differently; the fusion emitters do not).
FAST_COMPILE_BITWISE = {**USER_CODEGEN, "xla_backend_optimization_level": 0}


def zero_params(params, *path: str):
    """A copy of ``params`` (``{'params': ...}``) with every leaf of the module at ``path`` zeroed."""
    p = flax.core.unfreeze(params)
    node = p["params"]
    for name in path:
        node = node[name]
    for leaf in list(node):
        node[leaf] = jnp.zeros_like(node[leaf])
    return p


def numpy_params(abstract: Any, seed: int, scale: float = 0.1, kernel_gain: float = 1.0,
                 leaves: Mapping[str, tuple[float, float]] | None = None) -> Any:
    """Values for ``abstract`` (a tree of ``jax.ShapeDtypeStruct``: ``jax.eval_shape`` of a model's init) drawn
    with numpy's ``default_rng(seed)`` in leaf order, for tests whose assertion does not depend on the init:
    compiling a model's init program costs ~0.2-0.3 s of CPU per parameter array (threefry). Leaves named
    ``kernel`` ``~ N(0, kernel_gain / fan_in)`` (fan-in = every axis but the last); a leaf named in ``leaves``
    ``base + s * N(0, 1)`` for its ``(base, s)`` (``s == 0``: the constant, no draw); any other ``scale * N(0, 1)``.
    float32."""
    rng, leaves = np.random.default_rng(seed), leaves or {}

    def draw(path, leaf):
        name = path[-1].key
        if name == "kernel":
            return (rng.standard_normal(leaf.shape) * np.sqrt(kernel_gain) / np.sqrt(np.prod(leaf.shape[:-1]))
                    ).astype(np.float32)
        base, s = leaves.get(name, (0.0, scale))
        if s == 0:
            return np.full(leaf.shape, base, np.float32)
        return (base + s * rng.standard_normal(leaf.shape)).astype(np.float32)

    return jax.tree_util.tree_map_with_path(draw, abstract)
