"""The stacked parameter layout of repeated blocks: one array per parameter for a whole run of identical blocks.

Official weight names keep every block apart (RRDBNet x4: ``body_0`` ... ``body_22``, 702 parameter arrays).
That is the layout of weight files, exports and inference. A *train state* keeps the parameters of the blocks
``layers.repeat_blocks`` runs (``{prefix}_0`` ... ``{prefix}_{n-1}``) stacked instead, under one key
``{prefix}_0..{n-1}`` whose leaves have a leading axis of ``n``: the train step then has one optimizer update,
one gradient-norm term and one scan operand per parameter of a block, not per parameter of every block. XLA
compiles every per-leaf operation as its own kernel, so this is what makes RRDBNet x4's train step small
(3,594 -> 492 fusions, its XLA:CPU compile 15.8 -> 2.7 s; ``benchmarks/compile_time.py``). The arithmetic is the
same: a model applies either layout (``repeat_blocks`` reads the stacked key when it is there), and the values
are those of the named layout, bit for bit (``tests/test_stacking.py``).

* :func:`stacked_init`: inside it, ``Module.init`` puts repeated blocks' parameters in the stacked layout.
* :func:`unstack`: any tree (params, an Optax state, a whole train state) back to the official names.
* :func:`stack_like`: a named-layout tree into the layout of a template (what a train state's ``init`` gives):
  weights loaded by name for ``init_from``, and checkpoints written before the stacked layout.

Only the outermost repeated blocks are stacked: blocks repeated inside a repeated block (RCAN's RCABs inside its
residual groups) keep their names inside the stacked group, each leaf with the group axis first.
"""

from __future__ import annotations

import contextlib
import re
from typing import Any, Iterator, Sequence

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["parse_stacked_key", "stack_like", "stacked_init", "stacked_init_enabled", "stacked_key", "unstack"]

_STACKED = re.compile(r"^(.+)_0\.\.(\d+)$")
_INIT = {"stacked": False}


def stacked_key(names: Sequence[str]) -> str | None:
    """``'body_0..22'`` for ``['body_0', ..., 'body_22']``; ``None`` when ``names`` are not ``{prefix}_0`` ...
    ``{prefix}_{n-1}`` with ``n >= 2`` (such blocks keep their names in every layout)."""
    if len(names) < 2:
        return None
    prefix = names[0][:-2] if names[0].endswith("_0") else None
    if prefix is None or list(names) != [f"{prefix}_{i}" for i in range(len(names))]:
        return None
    return f"{prefix}_0..{len(names) - 1}"


def parse_stacked_key(key: Any) -> tuple[str, int] | None:
    """``('body', 23)`` for ``'body_0..22'``; ``None`` for any other key."""
    m = _STACKED.match(key) if isinstance(key, str) else None
    return (m.group(1), int(m.group(2)) + 1) if m else None


def stacked_init_enabled() -> bool:
    """Whether ``layers.repeat_blocks`` initialises in the stacked layout (read at trace time)."""
    return _INIT["stacked"]


@contextlib.contextmanager
def stacked_init(value: bool = True) -> Iterator[None]:
    """Context manager: models *initialised* (traced) inside put repeated blocks' parameters in the stacked
    layout. The values are the named init's, bit for bit."""
    previous = _INIT["stacked"]
    _INIT["stacked"] = bool(value)
    try:
        yield
    finally:
        _INIT["stacked"] = previous


def _is_dict(x: Any) -> bool:
    return isinstance(x, dict)


def _take(leaf: Any, i: int) -> Any:
    if isinstance(leaf, jax.ShapeDtypeStruct):
        return jax.ShapeDtypeStruct(leaf.shape[1:], leaf.dtype, sharding=leaf.sharding)
    return leaf[i]


def _stack(*leaves: Any) -> Any:
    if all(isinstance(a, np.ndarray) for a in leaves):
        return np.stack(leaves)
    return jnp.stack(leaves)


def unstack(tree: Any) -> Any:
    """``tree`` with every stacked group ``{prefix}_0..{n-1}`` (in any dict, at any depth, also inside Optax
    states and train-state dataclasses) replaced by its ``n`` named blocks. Array leaves are sliced (numpy stays
    numpy), ``jax.ShapeDtypeStruct`` leaves lose the leading axis and keep their sharding. A tree without stacked
    groups comes back equal."""
    return jax.tree.map(lambda x: _unstack_dict(x) if _is_dict(x) else x, tree, is_leaf=_is_dict)


def _unstack_dict(d: dict) -> dict:
    out = {}
    for key, value in d.items():
        parsed = parse_stacked_key(key)
        if parsed is None:
            out[key] = unstack(value)
            continue
        prefix, n = parsed
        for i in range(n):
            out[f"{prefix}_{i}"] = unstack(jax.tree.map(lambda a, i=i: _take(a, i), value))
    return out


def stack_like(tree: Any, like: Any) -> Any:
    """``tree`` (named layout, or already in ``like``'s) in the layout of ``like``: where ``like`` has a stacked
    group ``{prefix}_0..{n-1}`` and ``tree`` has the blocks ``{prefix}_i``, they are stacked on a new leading
    axis. ``like`` only gives the layout (its leaves may be ``jax.ShapeDtypeStruct``); the values are ``tree``'s.
    Raises ``ValueError`` naming the first key ``tree`` lacks."""
    return jax.tree.map(lambda l, t: _stack_dict(t, l) if _is_dict(l) else t, like, tree, is_leaf=_is_dict)


def _stack_dict(d: Any, like: dict) -> dict:
    if not _is_dict(d):
        raise ValueError(f"stack_like: expected a dict with keys {sorted(like)[:4]}..., got {type(d).__name__}")
    out, used = {}, set()
    for key, layout in like.items():
        if key in d:
            out[key] = stack_like(d[key], layout)
            used.add(key)
            continue
        parsed = parse_stacked_key(key)
        if parsed is None:
            raise ValueError(f"stack_like: no {key!r} in the tree (has {sorted(d)[:6]}...)")
        prefix, n = parsed
        names = [f"{prefix}_{i}" for i in range(n)]
        missing = [k for k in names if k not in d]
        if missing:
            raise ValueError(f"stack_like: no {missing[0]!r} in the tree for the stacked group {key!r}")
        out[key] = stack_like(jax.tree.map(_stack, *[d[k] for k in names]), layout)
        used.update(names)
    extra = [k for k in d if k not in used]
    if extra:
        raise ValueError(f"stack_like: {extra[0]!r} is not in the target layout")
    return out
