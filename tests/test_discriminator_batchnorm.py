"""BasicSR's VGG-style discriminator with BatchNorm (``vgg_style``, ``norm='batch'``; issue 17): PyTorch's
training-mode BatchNorm (running statistics with the unbiased variance, in the player's collections), PyTorch
init, the official parameter names, and the number of D calls per step of BasicSR's SRGAN/ESRGAN models."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from jaxgen.config import base_config, optim_config
from jaxgen.models.discriminators import BATCH_STATS_COLLECTION, TorchBatchNorm, VGGStyleDiscriminator, is_stateful
from jaxgen.tasks import get_task
from jaxgen.weights import convert


def test_torch_batchnorm_closed_form():
    x = jax.random.normal(jax.random.key(0), (2, 3, 5, 4)) * 3.0 + 1.5
    bn = TorchBatchNorm()
    v = bn.init(jax.random.key(1), x)
    y, new = bn.apply(v, x, update_stats=True, mutable=[BATCH_STATS_COLLECTION])
    xf = np.asarray(x, np.float64).reshape(-1, 4)
    mean, var_b, var_u = xf.mean(0), xf.var(0), xf.var(0, ddof=1)
    np.testing.assert_allclose(np.asarray(y).reshape(-1, 4), (xf - mean) / np.sqrt(var_b + 1e-5), atol=1e-5)
    stats = new[BATCH_STATS_COLLECTION]
    np.testing.assert_allclose(stats["running_mean"], 0.1 * mean, rtol=1e-5)
    np.testing.assert_allclose(stats["running_var"], 0.9 + 0.1 * var_u, rtol=1e-5)  # unbiased, as PyTorch
    assert int(stats["num_batches_tracked"]) == 1
    # without update_stats: batch statistics, state untouched
    y2 = bn.apply(v, x, update_stats=False)
    np.testing.assert_allclose(y2, y, atol=1e-6)


def test_vgg_style_batch_has_the_official_names_and_pytorch_init():
    d = VGGStyleDiscriminator(num_feat=8, input_size=128, norm="batch")
    v = d.init(jax.random.key(0), jnp.zeros((2, 128, 128, 3)))
    assert set(v) == {"params", BATCH_STATS_COLLECTION}
    sd = convert.flax_to_torch("vgg_style", v["params"], model=d)
    bns = [f"bn{i}_{j}" for i in range(5) for j in (0, 1) if (i, j) != (0, 0)]
    want = {"conv0_0.weight", "conv0_0.bias", "linear1.weight", "linear1.bias", "linear2.weight", "linear2.bias"}
    want |= {f"conv{b[2:]}.weight" for b in bns}
    want |= {f"{b}.{leaf}" for b in bns for leaf in ("weight", "bias", "running_mean", "running_var",
                                                     "num_batches_tracked")}
    assert set(sd) == want
    assert set(v[BATCH_STATS_COLLECTION]) == {"norm" + b[2:] for b in bns}
    k = np.asarray(v["params"]["conv1_0"]["kernel"])  # fan_in = 8 * 9: PyTorch U(+-1/sqrt(fan_in))
    bound = 1 / math.sqrt(8 * 9)
    assert np.abs(k).max() <= bound and np.abs(k).max() > 0.9 * bound
    lin = np.asarray(v["params"]["linear1"]["kernel"])
    assert np.abs(lin).max() <= 1 / math.sqrt(lin.shape[0])
    assert is_stateful("vgg_style", {"norm": "batch"}) and not is_stateful("vgg_style", {"norm": "instance"})


@pytest.mark.parametrize("kind,calls", [("vanilla", 3), ("ragan_basicsr", 5)])
def test_sr_gan_step_updates_running_stats_as_basicsr(kind, calls):
    """BasicSR runs D (train mode) 3x per SRGANModel step (G: fake; D: real, fake) and 5x per ESRGANModel step
    (G: real, fake; D: fake, real, fake): each call moves the running statistics."""
    c = base_config("sr_gan")
    c.scale, c.total_steps, c.batch_size, c.data.patch_size = 4, 2, 2, 32
    c.model = ml_collections.ConfigDict(dict(name="rrdbnet", num_feat=4, num_blocks=1, num_grow_ch=2))
    c.losses = ml_collections.ConfigDict(dict(l1=1.0, gan=dict(weight=0.1, kind=kind)))
    c.disc.kwargs = ml_collections.ConfigDict(dict(num_feat=4, input_size=128, norm="batch"))
    c.disc.optim = optim_config(lr=1e-4)
    task = get_task("sr_gan")(c)
    state = task.init()
    batch = {"lr": jax.random.uniform(jax.random.key(0), (2, 32, 32, 3)),
             "hr": jax.random.uniform(jax.random.key(1), (2, 128, 128, 3))}
    state, metrics = jax.jit(task.step)(state, batch, {})
    stats = state.players["discriminator"].collections[BATCH_STATS_COLLECTION]
    assert int(stats["norm0_1"]["num_batches_tracked"]) == calls
    assert float(jnp.abs(stats["norm0_1"]["running_mean"]).sum()) > 0
    assert np.isfinite(float(metrics["d_loss"]))
