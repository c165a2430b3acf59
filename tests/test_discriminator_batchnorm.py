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

from jaxgen.config import optim_config
from jaxgen.tasks import base_config
from jaxgen.models.discriminators import BATCH_STATS_COLLECTION, TorchBatchNorm, VGGStyleDiscriminator, is_stateful
from jaxgen.tasks import get_task
from jaxgen.weights import convert
from tests.param_utils import FAST_COMPILE


def test_torch_batchnorm_closed_form():
    x = jnp.asarray((np.random.default_rng(0).standard_normal((2, 3, 5, 4)) * 3.0 + 1.5).astype(np.float32))
    bn = TorchBatchNorm()
    v = jax.jit(bn.init)(jax.random.key(1), x)
    y, new = jax.jit(lambda v, x: bn.apply(v, x, update_stats=True, mutable=[BATCH_STATS_COLLECTION]))(v, x)
    xf = np.asarray(x, np.float64).reshape(-1, 4)
    mean, var_b, var_u = xf.mean(0), xf.var(0), xf.var(0, ddof=1)
    np.testing.assert_allclose(np.asarray(y).reshape(-1, 4), (xf - mean) / np.sqrt(var_b + 1e-5), atol=1e-5)
    stats = new[BATCH_STATS_COLLECTION]
    np.testing.assert_allclose(stats["running_mean"], 0.1 * mean, rtol=1e-5)
    np.testing.assert_allclose(stats["running_var"], 0.9 + 0.1 * var_u, rtol=1e-5)  # unbiased, as PyTorch
    assert int(stats["num_batches_tracked"]) == 1
    # without update_stats: batch statistics, state untouched
    y2 = jax.jit(lambda v, x: bn.apply(v, x, update_stats=False))(v, x)
    np.testing.assert_allclose(y2, y, atol=1e-6)


def test_vgg_style_batch_has_the_official_names_and_pytorch_init(sr_gan_state):
    """On the D of the SR-GAN state below (``VGGStyleDiscriminator.init`` inside the task's init: no program of its
    own to compile)."""
    d = _sr_gan_task("vanilla").discriminator
    assert d == VGGStyleDiscriminator(num_feat=4, input_size=128, norm="batch")
    player = sr_gan_state.players["discriminator"]
    v = {"params": player.params, **player.collections}
    assert set(v) == {"params", BATCH_STATS_COLLECTION}
    sd = convert.flax_to_torch("vgg_style", v["params"], model=d)
    bns = [f"bn{i}_{j}" for i in range(5) for j in (0, 1) if (i, j) != (0, 0)]
    want = {"conv0_0.weight", "conv0_0.bias", "linear1.weight", "linear1.bias", "linear2.weight", "linear2.bias"}
    want |= {f"conv{b[2:]}.weight" for b in bns}
    want |= {f"{b}.{leaf}" for b in bns for leaf in ("weight", "bias", "running_mean", "running_var",
                                                     "num_batches_tracked")}
    assert set(sd) == want
    assert set(v[BATCH_STATS_COLLECTION]) == {"norm" + b[2:] for b in bns}
    k = np.asarray(v["params"]["conv1_0"]["kernel"])  # fan_in = 4 * 9: PyTorch U(+-1/sqrt(fan_in))
    assert k.shape == (3, 3, 4, 8)
    bound = 1 / math.sqrt(4 * 9)
    assert np.abs(k).max() <= bound and np.abs(k).max() > 0.9 * bound
    lin = np.asarray(v["params"]["linear1"]["kernel"])
    assert np.abs(lin).max() <= 1 / math.sqrt(lin.shape[0])
    assert is_stateful("vgg_style", {"norm": "batch"}) and not is_stateful("vgg_style", {"norm": "instance"})


def _sr_gan_task(kind: str):
    """A tiny SR-GAN (the generator is irrelevant here: a 4-channel ESPCN) with BasicSR's batch-norm D."""
    c = base_config("sr_gan")
    c.scale, c.total_steps, c.batch_size, c.data.patch_size = 4, 2, 2, 32
    c.model = ml_collections.ConfigDict(dict(name="espcn", filters=(4, 4)))
    c.losses = ml_collections.ConfigDict(dict(l1=1.0, gan=dict(weight=0.1, kind=kind)))
    c.disc.kwargs = ml_collections.ConfigDict(dict(num_feat=4, input_size=128, norm="batch"))
    c.disc.optim = optim_config(lr=1e-4)
    return get_task("sr_gan")(c)


@pytest.fixture(scope="module")
def sr_gan_state():
    """The initial state (the same for every GAN kind), built once by one jitted init."""
    return jax.jit(_sr_gan_task("vanilla").init, compiler_options=FAST_COMPILE)()


@pytest.mark.parametrize("kind,calls", [("vanilla", 3), ("ragan_basicsr", 5)])
def test_sr_gan_step_updates_running_stats_as_basicsr(kind, calls, sr_gan_state):
    """BasicSR runs D (train mode) 3x per SRGANModel step (G: fake; D: real, fake) and 5x per ESRGANModel step
    (G: real, fake; D: fake, real, fake): each call moves the running statistics."""
    task = _sr_gan_task(kind)
    rng = np.random.default_rng(0)  # numpy: no threefry program to compile
    batch = {"lr": rng.random((2, 32, 32, 3), np.float32), "hr": rng.random((2, 128, 128, 3), np.float32)}
    before = sr_gan_state.players["discriminator"].collections[BATCH_STATS_COLLECTION]
    assert int(before["norm0_1"]["num_batches_tracked"]) == 0
    state, metrics = jax.jit(task.step, compiler_options=FAST_COMPILE)(sr_gan_state, batch, {})
    stats = state.players["discriminator"].collections[BATCH_STATS_COLLECTION]
    assert int(stats["norm0_1"]["num_batches_tracked"]) == calls
    assert float(jnp.abs(stats["norm0_1"]["running_mean"]).sum()) > 0
    assert np.isfinite(float(metrics["d_loss"]))


ROOT = __import__("pathlib").Path(__file__).resolve().parent.parent


def test_srgan_basicsr_config_is_train_msrgan_x4_yml():
    """configs/srgan.py:basicsr against BasicSR options/train/SRResNet_SRGAN/train_MSRGAN_x4.yml (8d56e3a)."""
    from jaxgen.config import load_config

    c = load_config(str(ROOT / "configs" / "srgan.py") + ":basicsr")
    assert (c.task, c.scale, c.model.name, c.model.act, c.model.num_feat, c.model.num_blocks) == \
        ("sr_gan", 4, "srresnet", "lrelu", 64, 16)
    assert c.losses.l1 == 1e-2 and c.losses.gan.weight == 5e-3 and c.losses.gan.kind == "vanilla"
    p = c.losses.perceptual
    assert dict(p.layer_weights) == {"conv5_4": 1.0} and p.weight == 1.0 and p.criterion == "l1"
    assert (c.disc.name, c.disc.kwargs.norm, c.disc.kwargs.num_feat, c.disc.kwargs.input_size) == \
        ("vgg_style", "batch", 64, 128)
    for o in (c.optim, c.disc.optim):
        assert (o.lr, o.kwargs.b1, o.kwargs.b2, o.schedule, tuple(o.milestones), o.gamma) == \
            (1e-4, 0.9, 0.99, "multistep", (50_000, 100_000, 200_000, 300_000), 0.5)
    assert (c.total_steps, c.batch_size, c.data.patch_size * c.scale, c.ema_decay) == (400_000, 16, 128, 0.999)
    esr = load_config(str(ROOT / "configs" / "esrgan.py") + ":basicsr")
    assert esr.disc.kwargs.norm == "batch" and esr.losses.gan.kind == "ragan_basicsr"
    assert load_config(str(ROOT / "configs" / "esrgan.py")).disc.kwargs.norm == "instance"  # the paper variant
