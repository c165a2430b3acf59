"""Spectral normalisation (flax.linen.SpectralNorm as the U-Net discriminator uses it): power iteration converges to
the top singular value of a known matrix; one iteration per training call with PyTorch's update rule; the U-Net SN
discriminator keeps its u vectors in the 'spectral' collection."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxgen.models.discriminators import SPECTRAL_COLLECTION, UNetDiscriminatorSN
from tests.param_utils import numpy_params


class _SNDense(nn.Module):
    @nn.compact
    def __call__(self, x, update_stats):
        return nn.SpectralNorm(nn.Dense(3, use_bias=False), collection_name=SPECTRAL_COLLECTION)(
            x, update_stats=update_stats)


def _known_matrix() -> np.ndarray:
    """A 5x3 kernel with singular values 4, 1.5, 0.5 (U, V random orthogonal)."""
    rng = np.random.default_rng(0)
    u, _ = np.linalg.qr(rng.standard_normal((5, 5)))
    v, _ = np.linalg.qr(rng.standard_normal((3, 3)))
    return (u[:, :3] * np.array([4.0, 1.5, 0.5])) @ v.T


def test_power_iteration_converges_to_the_top_singular_value():
    w = _known_matrix().astype(np.float32)
    model = _SNDense()
    variables = model.init(jax.random.key(0), jnp.ones((1, 5)), update_stats=False)
    params = {"Dense_0": {"kernel": jnp.asarray(w)}} if "Dense_0" in variables["params"] else None
    params = jax.tree.map(lambda _: jnp.asarray(w), variables["params"]) if params is None else params
    stats = variables[SPECTRAL_COLLECTION]
    apply = jax.jit(lambda s, x: model.apply({"params": params, SPECTRAL_COLLECTION: s}, x, update_stats=True,
                                             mutable=[SPECTRAL_COLLECTION]))
    x = jnp.eye(5)
    sigmas = []
    for _ in range(30):
        y, new = apply(stats, x)
        stats = new[SPECTRAL_COLLECTION]
        sigmas.append(float(jax.tree.leaves({k: v for k, v in jax.tree_util.tree_flatten_with_path(stats)[0]
                                             if "sigma" in jax.tree_util.keystr(k)})[0]))
    # ratio of the top two singular values is 4/1.5: the error shrinks ~ (1.5/4)^(2k)
    assert abs(sigmas[-1] - 4.0) < 1e-4 and abs(sigmas[0] - 4.0) > abs(sigmas[3] - 4.0)
    # the normalised weight has spectral norm 1: y = x W / sigma with x = I
    np.testing.assert_allclose(np.linalg.svd(np.asarray(y), compute_uv=False)[0], 1.0, atol=1e-4)


def test_one_iteration_per_call_is_pytorchs_update():
    """v = normalize(W^T u), u' = normalize(W v), sigma = u'^T W v (torch.nn.utils.spectral_norm, W = [out, in])."""
    w = _known_matrix().astype(np.float32)
    model = _SNDense()
    variables = model.init(jax.random.key(1), jnp.ones((1, 5)), update_stats=False)
    params = jax.tree.map(lambda _: jnp.asarray(w), variables["params"])
    stats = variables[SPECTRAL_COLLECTION]
    (u_key, u0), = [(k, v) for k, v in jax.tree_util.tree_flatten_with_path(stats)[0] if "/u" in jax.tree_util.keystr(k)]
    _, new = model.apply({"params": params, SPECTRAL_COLLECTION: stats}, jnp.ones((1, 5)), update_stats=True,
                         mutable=[SPECTRAL_COLLECTION])
    wt = w.T  # torch layout [out, in]
    u = np.asarray(u0).reshape(-1)
    v = wt.T @ u
    v /= np.linalg.norm(v)
    u1 = wt @ v
    u1 /= np.linalg.norm(u1)
    got = [v for k, v in jax.tree_util.tree_flatten_with_path(new)[0] if "/u" in jax.tree_util.keystr(k)][0]
    np.testing.assert_allclose(np.asarray(got).reshape(-1), u1, rtol=1e-5, atol=1e-6)
    sig = [v for k, v in jax.tree_util.tree_flatten_with_path(new)[0] if "sigma" in jax.tree_util.keystr(k)][0]
    np.testing.assert_allclose(float(sig), u1 @ wt @ v, rtol=1e-5)


def test_unet_sn_discriminator_shapes_state_and_gradients():
    d = UNetDiscriminatorSN(num_feat=4)
    x = jnp.asarray(np.random.default_rng(2).random((2, 32, 24, 3), np.float32))
    # the variables' structure from init; values drawn with numpy as flax's init draws them (kernels ~ fan-in
    # normal, u ~ N(0, 1), sigma = 1), which skips compiling the init program (~0.3 s of CPU per threefry draw)
    shapes = jax.eval_shape(d.init, jax.random.key(0), x)
    variables = numpy_params(shapes, seed=3, leaves={"sigma": (1.0, 0.0), "u": (0.0, 1.0)})
    assert set(variables) == {"params", SPECTRAL_COLLECTION}
    assert len(variables[SPECTRAL_COLLECTION]) == 8  # conv1..conv8 are normalised; conv0 and conv9 are not
    assert "bias" not in variables["params"]["conv1"] and "bias" in variables["params"]["conv9"]

    def loss(p, s, x):
        y, new = d.apply({"params": p, SPECTRAL_COLLECTION: s}, x, update_stats=True, mutable=[SPECTRAL_COLLECTION])
        return jnp.mean(y**2), (y, new)

    @jax.jit  # one program: the training step's value and gradient, and the forward without update_stats
    def step_and_eval(p, s, x):
        return jax.value_and_grad(loss, has_aux=True)(p, s, x), d.apply({"params": p, SPECTRAL_COLLECTION: s}, x)

    ((value, (y, new)), g), y2 = step_and_eval(variables["params"], variables[SPECTRAL_COLLECTION], x)
    assert y.shape == (2, 32, 24, 1) and y.dtype == jnp.float32 and np.isfinite(float(value))
    assert all(np.abs(np.asarray(leaf)).max() > 0 for leaf in jax.tree.leaves(g))
    old_u = {jax.tree_util.keystr(k): v for k, v in jax.tree_util.tree_flatten_with_path(variables[SPECTRAL_COLLECTION])[0]}
    new_u = {jax.tree_util.keystr(k): v for k, v in jax.tree_util.tree_flatten_with_path(new[SPECTRAL_COLLECTION])[0]}
    assert all(not np.array_equal(old_u[k], new_u[k]) for k in old_u if "/u" in k)  # one iteration each
    # without update_stats the collection is read, not written; output still per pixel
    assert y2.shape == (2, 32, 24, 1)
