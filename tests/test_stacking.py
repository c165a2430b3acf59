"""The stacked parameter layout of a train state (``jaxgen.models.stacking``): the same network as the official
names, bit for bit, at init, in the forward pass and in the gradients (scanned and unrolled); conversions both
ways on whole train states (Optax moments, ``ShapeDtypeStruct`` targets with their shardings); checkpoints of
either layout restore into a train state, and readers for inference get the official names."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxgen import models
from jaxgen.models import layers, stacking
from jaxgen.train import checkpoint
from jaxgen.train.state import new_player, new_state
from jaxgen.weights import convert
from tests.param_utils import FAST_COMPILE_BITWISE, numpy_params

CASES = {
    "rrdbnet": dict(scale=4, num_feat=8, num_blocks=2, num_grow_ch=4),
    "edsr": dict(scale=2, num_feat=8, num_blocks=3),
    "rcan": dict(scale=2, num_feat=8, num_groups=2, num_blocks=2, reduction=4),
}
X = jax.random.uniform(jax.random.key(0), (2, 8, 8, 3))


def _assert_trees_equal(a, b):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for (path, u), v in zip(jax.tree_util.tree_leaves_with_path(a), jax.tree.leaves(b)):
        np.testing.assert_array_equal(np.asarray(v), np.asarray(u), err_msg=jax.tree_util.keystr(path))


def test_keys():
    assert stacking.stacked_key([f"body_{i}" for i in range(23)]) == "body_0..22"
    assert stacking.parse_stacked_key("body_0..22") == ("body", 23)
    assert stacking.parse_stacked_key("conv_0..1") == ("conv", 2)
    # not a run of {prefix}_0 .. {prefix}_{n-1}: such blocks keep their names
    for names in (["body_0"], ["body_1", "body_2"], ["body_0", "body_2"], ["a", "b"], ["x_0", "y_1"]):
        assert stacking.stacked_key(names) is None, names
    for key in ("body_0", "body_1..3", "body_0..", "body", 3):
        assert stacking.parse_stacked_key(key) is None, key


@pytest.mark.parametrize("name", sorted(CASES))
def test_stacked_init_is_the_named_init_and_applies_the_same(name):
    """``stacked_init`` draws the named init's values (RCAN: the groups stacked, their RCABs named inside), and
    ``apply`` of either layout gives the same output and gradients, bit for bit, scanned and unrolled."""
    model = models.build(name, **CASES[name])

    def both_inits(key):  # one program (and the trainers jit their init too)
        named = model.init(key, X)["params"]
        with stacking.stacked_init():
            return named, model.init(key, X)["params"]

    # LLVM -O0 halves the compile; both layouts are in the one program, so it compares like with like
    named, stacked = jax.jit(both_inits, compiler_options=FAST_COMPILE_BITWISE)(jax.random.key(5))
    groups = sorted(k for k in stacked if stacking.parse_stacked_key(k))
    n = CASES[name]["num_groups" if name == "rcan" else "num_blocks"]
    assert groups == [f"body_0..{n - 1}"]
    assert not any(k.startswith("body_") and ".." not in k and int(k[5:]) < n for k in stacked)
    if name == "rcan":  # inner repeated blocks stay named inside the stacked groups
        assert {f"body_{i}" for i in range(CASES[name]["num_blocks"])} <= set(stacked[groups[0]])
    _assert_trees_equal(named, stacking.unstack(stacked))
    _assert_trees_equal(stacked, stacking.stack_like(named, stacked))

    # distinct values in every block: a misordered or reused block would show
    named = numpy_params(jax.eval_shape(lambda: named), seed=1, scale=0.05)
    stacked = stacking.stack_like(named, stacked)

    def out_and_grad(p, scan):
        layers.set_scan_blocks(scan)  # read while tracing
        try:
            return jax.value_and_grad(lambda q: jnp.mean(model.apply({"params": q}, X) ** 2))(p)
        finally:
            layers.set_scan_blocks(True)

    runs = jax.jit(lambda a, b: [(out_and_grad(a, s), out_and_grad(b, s)) for s in (True, False)],
                   compiler_options=FAST_COMPILE_BITWISE)(named, stacked)
    for (y1, g1), (y2, g2) in runs:
        np.testing.assert_array_equal(np.asarray(y2), np.asarray(y1))
        _assert_trees_equal(g1, stacking.unstack(g2))


def test_conversions_of_a_whole_train_state_and_of_targets():
    model = models.build("edsr", **CASES["edsr"])
    with stacking.stacked_init():
        params = jax.jit(model.init)(jax.random.key(0), X)["params"]
    tx = optax.adam(1e-3)
    state = new_state(0, {"generator": new_player(params, tx, ema=True)})
    # give the Adam moments distinct values so that a slice of the wrong block would show
    state = state.replace(players={"generator": state.players["generator"].replace(
        opt_state=jax.tree.map(lambda a: a + jnp.arange(a.size, dtype=a.dtype).reshape(a.shape) if a.ndim else a,
                               state.players["generator"].opt_state))})
    named = stacking.unstack(state)
    mu_named, mu = named.players["generator"].opt_state[0].mu, state.players["generator"].opt_state[0].mu
    assert "body_0..2" in mu and "body_2" in mu_named and "body_0..2" not in mu_named
    for i in (0, 2):
        np.testing.assert_array_equal(mu_named[f"body_{i}"]["conv2"]["kernel"], mu["body_0..2"]["conv2"]["kernel"][i])
    assert named.players["generator"].ema.keys() == mu_named.keys()
    _assert_trees_equal(state, stacking.stack_like(named, state))
    _assert_trees_equal(named, stacking.unstack(named))  # nothing stacked: unchanged

    # abstract targets (what a restore reads into) lose the block axis and keep their sharding
    sharding = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    abstract = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=sharding), state)
    un = stacking.unstack(abstract).players["generator"].params["body_2"]["conv1"]["kernel"]
    assert (un.shape, un.sharding) == ((3, 3, 8, 8), sharding)

    with pytest.raises(ValueError, match="'body_1'"):
        stacking.stack_like({k: v for k, v in stacking.unstack(params).items() if k != "body_1"}, params)
    with pytest.raises(ValueError, match="'extra'"):
        stacking.stack_like(dict(stacking.unstack(params), extra=np.zeros(1)), params)


def test_weight_export_takes_either_layout():
    model = models.build("edsr", **CASES["edsr"])
    named = numpy_params(jax.eval_shape(model.init, jax.random.key(0), X)["params"], seed=2, scale=0.05)
    with stacking.stacked_init():
        stacked = stacking.stack_like(named, jax.eval_shape(model.init, jax.random.key(0), X)["params"])
    a = convert.flax_to_torch("edsr", named, model=model)
    b = convert.flax_to_torch("edsr", stacked, model=model)
    assert a.keys() == b.keys() and "body.2.body.0.weight" in a
    for k in a:
        np.testing.assert_array_equal(b[k], a[k], err_msg=k)


def test_checkpoints_of_either_layout_restore_into_a_stacked_state(tmp_path):
    model = models.build("edsr", **CASES["edsr"])
    named = numpy_params(jax.eval_shape(model.init, jax.random.key(0), X)["params"], seed=3, scale=0.05)
    named = jax.tree.map(jnp.asarray, named)
    with stacking.stacked_init():
        layout = jax.eval_shape(model.init, jax.random.key(0), X)["params"]
    tx = optax.adam(1e-3)
    stacked_state = new_state(0, {"generator": new_player(stacking.stack_like(named, layout), tx)})
    named_state = new_state(0, {"generator": new_player(named, tx)})
    repl = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    abstract = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=repl), stacked_state)
    for name, state in (("named", named_state), ("stacked", stacked_state)):
        manager = checkpoint.open_manager(tmp_path / name)
        checkpoint.save(manager, 1, state, data_state={}, meta={})
        manager.wait_until_finished()
        restored, _, _ = checkpoint.restore(manager, 1, abstract)
        _assert_trees_equal(stacked_state, restored)
        # inference readers get the official names from either
        got = checkpoint.restore_player(tmp_path / name, 1, "generator")["params"]
        _assert_trees_equal(named, got)
