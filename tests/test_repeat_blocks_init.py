"""``layers.repeat_blocks`` at ``init``: the scanned form draws its blocks' parameters as one ``vmap`` over the
keys Flax gives each child; the values must be bitwise the unrolled init's (jitted, as the trainers run it, and
eagerly), with either kind of key, for nested children and for repeated blocks inside repeated blocks (RCAN's
groups), and the init program must not grow with the number of blocks.

The values are checked on a small network built from the library's own layers and initializers (normal and
uniform draws, zero biases, a parameter drawn before and one after the blocks): ``repeat_blocks`` does not know
which blocks it repeats, and compiling an init costs ~0.1 s per random draw here. ``tests/test_repeat_blocks.py``
checks the real networks (RRDBNet, EDSR, RCAN) keep their parameter names and compute the same outputs and
gradients either way."""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgen import models
from jaxgen.models import layers
from tests.param_utils import USER_CODEGEN

X = jnp.zeros((1, 6, 6, 3))
C = 4


class _Inner(nn.Module):
    """A nested child (scope path ``body_i/inner/conv``): a normal-drawn kernel, zero bias (BasicSR init)."""

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        return layers.conv(C, 3, C, layers.basicsr_init(0.1), name="conv")(x)


class _Block(nn.Module):
    """A nested child, then a 1x1 conv with uniform-drawn kernel and bias (PyTorch's default); with ``inner``
    > 0, that many repeated blocks inside this one (RCAN's groups of RCABs)."""

    inner: int = 0
    scan: bool = True

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        y = nn.relu(_Inner(name="inner")(x))
        if self.inner:
            y = layers.repeat_blocks(self, lambda **k: _Block(**k), [f"sub_{i}" for i in range(self.inner)], y,
                                     self.scan)
        return x + layers.conv(C, 1, C, name="proj")(y)


class _Net(nn.Module):
    names: Sequence[str]
    scan: bool
    inner: int = 0

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        x = layers.conv(C, 3, 3, name="head")(x)  # drawn before the blocks
        x = layers.repeat_blocks(self, lambda **k: _Block(self.inner, self.scan, **k), self.names, x, self.scan)
        return layers.conv(3, 3, C, name="tail")(x)  # and after them


def _net(n: int, scan: bool, inner: int = 0) -> _Net:
    return _Net(tuple(f"body_{i}" for i in range(n)), scan, inner)


def _jit(fn):
    """``jax.jit`` with XLA's default codegen, as a user's run compiles init: the bitwise equalities of this file
    are about those programs (the suite's -O0 classic emitters round the two layouts' draws differently)."""
    return jax.jit(fn, compiler_options=USER_CODEGEN)


def _assert_trees_equal(a, b):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for (path, u), v in zip(jax.tree_util.tree_leaves_with_path(a), jax.tree.leaves(b)):
        np.testing.assert_array_equal(np.asarray(v), np.asarray(u), err_msg=jax.tree_util.keystr(path))


@pytest.mark.parametrize("how", ["jit", "eager", "jit_raw_key"])
def test_scan_init_is_bitwise_the_unrolled_init(how):
    key = jax.random.PRNGKey(3) if how == "jit_raw_key" else jax.random.key(3)  # raw: an old-style uint32 key
    init = (lambda m: m.init) if how == "eager" else (lambda m: _jit(m.init))
    _assert_trees_equal(init(_net(3, False))(key, X), init(_net(3, True))(key, X))


def test_scan_init_of_repeated_blocks_inside_repeated_blocks_is_the_unrolled_init():
    unrolled, scanned = _jit(_net(2, False, inner=2).init), _jit(_net(2, True, inner=2).init)
    p = scanned(jax.random.key(5), X)
    assert set(p["params"]["body_1"]) == {"inner", "sub_0", "sub_1", "proj"}
    _assert_trees_equal(unrolled(jax.random.key(5), X), p)


def test_scan_init_draws_each_block_and_returns_their_forward():
    params = jax.jit(_net(3, True).init)(jax.random.key(3), X)
    p = params["params"]
    for a, b in [("body_0", "body_1"), ("body_1", "body_2")]:  # messages not shared between blocks
        assert not np.array_equal(p[a]["inner"]["conv"]["kernel"], p[b]["inner"]["conv"]["kernel"])
        assert not np.array_equal(p[a]["proj"]["bias"], p[b]["proj"]["bias"])
    x = X + jnp.arange(X.size, dtype=jnp.float32).reshape(X.shape) / X.size
    y, _ = _net(3, True).init_with_output(jax.random.key(3), x)
    np.testing.assert_allclose(np.asarray(y), np.asarray(_net(3, False).apply(params, x)), rtol=1e-5, atol=1e-6)


def test_scan_init_program_does_not_grow_with_the_number_of_blocks():
    def fold_ins(n: int, scan: bool) -> int:
        m = models.build("rrdbnet", scale=4, num_feat=8, num_blocks=n, num_grow_ch=4, scan_blocks=scan)
        return str(jax.make_jaxpr(m.init)(jax.random.key(0), jnp.zeros((1, 8, 8, 3)))).count("random_fold_in")

    assert fold_ins(12, True) == fold_ins(3, True)  # one batched fold-in per parameter of a block
    assert fold_ins(12, False) == fold_ins(3, False) + 9 * 30  # 30 parameters a block, one fold-in each


@pytest.mark.parametrize("rule", ["flax", "broken"])
def test_two_blocks_are_traced_and_the_others_messages_follow_flax_rule(monkeypatch, rule):
    """Blocks after the second get their messages from Flax's rule (SHA-1 of the folded data with the block's
    name), checked against the first two traces; where the rule does not reproduce them (``broken``: a wrong
    hash) every block is traced. Either way the values are the unrolled init's, bit for bit."""
    traces = []
    original = layers._fold_in_messages
    monkeypatch.setattr(layers, "_fold_in_messages", lambda c: traces.append(1) or original(c))
    if rule == "broken":
        monkeypatch.setattr(layers, "_fold_in_hash", lambda data: 7)
    for inner in (0, 2):  # and with repeated blocks inside the blocks (their fold-ins carry the outer name too)
        traces.clear()
        scanned = _jit(_net(3, True, inner=inner).init)(jax.random.key(4), X)
        assert len(traces) == (2 if rule == "flax" else 3), inner
        _assert_trees_equal(_jit(_net(3, False, inner=inner).init)(jax.random.key(4), X), scanned)
