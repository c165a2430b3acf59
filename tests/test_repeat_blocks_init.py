"""``layers.repeat_blocks`` at ``init``: the scanned form draws its blocks' parameters as one ``vmap`` over the
keys Flax gives each child; the values must be bitwise the unrolled init's (jitted, as the trainers run it, and
eagerly), with either kind of key, and the init program must not grow with the number of blocks."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgen import models

X = jnp.zeros((1, 8, 8, 3))


def _rrdb(n: int, scan: bool):
    return models.build("rrdbnet", scale=4, num_feat=8, num_blocks=n, num_grow_ch=4, scan_blocks=scan)


def _assert_trees_equal(a, b):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for (path, u), v in zip(jax.tree_util.tree_leaves_with_path(a), jax.tree.leaves(b)):
        np.testing.assert_array_equal(np.asarray(v), np.asarray(u), err_msg=jax.tree_util.keystr(path))


def test_scan_init_is_bitwise_the_unrolled_init():
    key = jax.random.key(3)
    _assert_trees_equal(jax.jit(_rrdb(2, False).init)(key, X), jax.jit(_rrdb(2, True).init)(key, X))
    _assert_trees_equal(_rrdb(2, False).init(key, X), _rrdb(2, True).init(key, X))
    raw = jax.random.PRNGKey(3)  # an old-style uint32 key
    _assert_trees_equal(jax.jit(_rrdb(2, False).init)(raw, X), jax.jit(_rrdb(2, True).init)(raw, X))


@pytest.mark.parametrize("name, kw", [("edsr", dict(scale=2, num_feat=8, num_blocks=2)),
                                      ("rcan", dict(scale=2, num_feat=16, num_groups=2, num_blocks=2, reduction=4))])
def test_scan_init_of_edsr_and_nested_rcan_groups_is_the_unrolled_init(name, kw):
    unrolled, scanned = (models.build(name, scan_blocks=s, **kw) for s in (False, True))
    _assert_trees_equal(jax.jit(unrolled.init)(jax.random.key(5), X), jax.jit(scanned.init)(jax.random.key(5), X))


def test_scan_init_draws_each_block_and_returns_their_forward():
    params = jax.jit(_rrdb(3, True).init)(jax.random.key(3), X)
    p = params["params"]
    for a, b in [("body_0", "body_1"), ("body_1", "body_2")]:  # messages not shared between blocks
        assert not np.array_equal(p[a]["rdb1"]["conv1"]["kernel"], p[b]["rdb1"]["conv1"]["kernel"])
    y, _ = _rrdb(3, True).init_with_output(jax.random.key(3), X + 0.5)
    np.testing.assert_allclose(np.asarray(y), np.asarray(_rrdb(3, False).apply(params, X + 0.5)), rtol=1e-5,
                               atol=1e-6)


def test_scan_init_program_does_not_grow_with_the_number_of_blocks():
    def fold_ins(n: int, scan: bool) -> int:
        return str(jax.make_jaxpr(_rrdb(n, scan).init)(jax.random.key(0), X)).count("random_fold_in")

    assert fold_ins(12, True) == fold_ins(3, True)  # one batched fold-in per parameter of a block
    assert fold_ins(12, False) == fold_ins(3, False) + 9 * 30  # 30 parameters a block, one fold-in each
