"""The SR-GAN step's discriminator penalties against closed forms computed here with jax.grad on the right images:
R1 (Mescheder et al. 2018: ``gamma/2 E||grad_x D(x)||^2`` on the REAL images) and WGAN-GP (Gulrajani et al. 2017,
BasicSR ``gradient_penalty_loss``: ``E(||grad_x D(x)||_2 - 1)^2`` on ``a real + (1 - a) fake``, ``a ~ U[0,1]`` per
image). Each test also shows the same formula on the wrong images gives a clearly different D loss."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jaxgen.config import optim_config
from jaxgen.tasks import SRGANTask, base_config
from jaxgen.train.state import STREAM_NOISE, step_key


def _setup(**gan):
    c = base_config("sr_gan")
    c.scale = 2
    c.model = ml_collections.ConfigDict(dict(name="edsr", num_blocks=1, num_feat=8, res_scale=1.0))
    c.optim = optim_config(lr=1e-3)
    c.data.patch_size = 8
    c.disc.name = "patchgan"
    c.disc.kwargs = ml_collections.ConfigDict(dict(ndf=8, n_layers=1))
    c.losses.gan.update(dict(weight=0.1, kind="nonsaturating", **gan))
    task = SRGANTask(c)
    state = jax.jit(task.init)()  # one program (op by op, every init op compiles apart); the same for both tests
    rng = np.random.default_rng(3)
    hr = jnp.asarray(rng.random((4, 16, 16, 3), np.float32))
    lr = hr.reshape(4, 8, 2, 8, 2, 3).mean(axis=(2, 4))
    batch = {"lr": lr, "hr": hr}
    _, metrics = jax.jit(lambda s, b: task.step(s, b, {}))(state, batch)
    d, dp = task.discriminator, state.players["discriminator"].params

    @jax.jit
    def reference(gp, lr, hr):  # the step's (pre-update) SR and the plain BCE D loss on it, one program
        sr = task.generator.apply({"params": gp}, lr)
        bce = (jnp.mean(jax.nn.softplus(-d.apply({"params": dp}, hr)))
               + jnp.mean(jax.nn.softplus(d.apply({"params": dp}, sr))))
        return sr, bce

    sr, bce = reference(state.players["generator"].params, lr, hr)

    def critic_sum(x):
        return jnp.sum(d.apply({"params": dp}, x))

    @jax.jit
    def grads(x):  # per-image input gradients of sum D
        return jax.grad(critic_sum)(x).reshape(x.shape[0], -1)

    return task, state, batch, metrics, hr, sr, grads, float(bce)


def test_r1_penalty_is_on_the_real_images():
    gamma = 10.0
    _, _, _, metrics, hr, sr, grads, bce = _setup(r1_gamma=gamma)
    r1_real = 0.5 * gamma * float(jnp.mean(jnp.sum(grads(hr) ** 2, axis=1)))
    r1_fake = 0.5 * gamma * float(jnp.mean(jnp.sum(grads(sr) ** 2, axis=1)))
    assert abs(r1_real - r1_fake) > 0.05 * r1_real  # the test tells reals from fakes
    np.testing.assert_allclose(float(metrics["d_r1"]), r1_real, rtol=1e-4)
    np.testing.assert_allclose(float(metrics["d_loss"]), bce + r1_real, rtol=1e-5)
    assert "d_gp" not in metrics


def test_gradient_penalty_is_on_per_image_interpolates_of_real_and_fake():
    w = 10.0
    _, state, _, metrics, hr, sr, grads, bce = _setup(gp_weight=w)
    a = jax.random.uniform(step_key(state, STREAM_NOISE), (4, 1, 1, 1), jnp.float32)  # the step's GP stream
    assert float(jnp.max(a) - jnp.min(a)) > 0.05  # per image

    def gp(x):
        return w * float(jnp.mean((jnp.linalg.norm(grads(x), axis=1) - 1.0) ** 2))

    want = gp(a * hr + (1 - a) * sr)
    for wrong in (gp(hr), gp(sr), gp(0.5 * hr + 0.5 * sr)):
        assert abs(wrong - want) > 1e-3 * want  # reals only, fakes only, a fixed mix: all differ
    np.testing.assert_allclose(float(metrics["d_gp"]), want, rtol=1e-4)
    np.testing.assert_allclose(float(metrics["d_loss"]), bce + want, rtol=1e-5)
    assert "d_r1" not in metrics
