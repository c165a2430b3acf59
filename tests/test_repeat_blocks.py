"""``layers.repeat_blocks``: identical blocks as one ``lax.scan`` must be the unrolled network, parameter names,
outputs and gradients alike (the scan only changes how XLA compiles the trunk)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgen import models
from tests.param_utils import numpy_params

CASES = {
    "rrdbnet": dict(scale=4, num_feat=8, num_blocks=3, num_grow_ch=4),
    "edsr": dict(scale=2, num_feat=8, num_blocks=3),
    "rcan": dict(scale=2, num_feat=16, num_groups=2, num_blocks=3, reduction=4),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_scan_equals_unrolled(name):
    x = jax.random.uniform(jax.random.key(0), (2, 8, 8, 3))
    unrolled = models.build(name, scan_blocks=False, **CASES[name])
    scanned = models.build(name, scan_blocks=True, **CASES[name])
    # Same names and shapes from either form (weight import and export unchanged). The scanned init's values are
    # bitwise the unrolled init's: tests/test_repeat_blocks_init.py. Here every block gets its own numpy draw, so
    # a scan that reused one block's params, or misordered them, would differ.
    abstract = jax.eval_shape(unrolled.init, jax.random.key(1), x)
    assert jax.eval_shape(scanned.init, jax.random.key(1), x) == abstract
    params = numpy_params(abstract, seed=1, scale=0.05)

    def output_and_grad(module, p):
        def loss(q):
            y = module.apply(q, x)
            return jnp.mean(y**2), y

        g, y = jax.grad(loss, has_aux=True)(p)
        return y, g

    # one program for both forms (compiling each apply and grad separately, or op by op, costs more)
    (y1, g1), (y2, g2) = jax.jit(lambda p: (output_and_grad(unrolled, p), output_and_grad(scanned, p)))(params)
    np.testing.assert_allclose(np.asarray(y2), np.asarray(y1), rtol=1e-5, atol=1e-6)
    for (path, a), b in zip(jax.tree_util.tree_leaves_with_path(g1), jax.tree.leaves(g2)):
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=2e-4, atol=1e-7, err_msg=jax.tree_util.keystr(path))


def test_scan_compiles_one_block():
    """The scanned trunk's HLO holds one block body: its convolutions do not grow with the number of blocks."""
    x = jnp.zeros((1, 8, 8, 3))

    def hlo_len(n, scan):
        m = models.build("rrdbnet", scale=4, num_feat=8, num_blocks=n, num_grow_ch=4, scan_blocks=scan)
        p = jax.eval_shape(m.init, jax.random.key(0), x)
        return jax.jit(m.apply).lower(p, x).as_text().count("stablehlo.convolution")

    # 5 convs per dense block, 3 dense blocks per RRDB; 6 trunk convs.
    assert hlo_len(12, True) == hlo_len(3, True) == 15 + 6
    assert hlo_len(12, False) == 12 * 15 + 6
