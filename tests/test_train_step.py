"""Update step, optimizers and the two-player shape, in process on 1 device."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from jaxgen import models
from jaxgen.config import base_config, optim_config
from jaxgen.train import optim, setup
from jaxgen.train.state import init_state
from jaxgen.train.step import make_train_step


def _tiny_config(**disc) -> ml_collections.ConfigDict:
    c = base_config()
    c.scale = 2
    c.model = ml_collections.ConfigDict(dict(name="edsr", num_blocks=1, num_feat=8, res_scale=1.0))
    c.optim = optim_config(lr=1e-3)
    if disc:
        c.disc.update(disc)
    return c


def _batch(rng: np.random.Generator, b: int = 4, p: int = 8, s: int = 2) -> dict[str, jax.Array]:
    """Smooth HR images (bilinear-upsampled 4x4 noise) and their box-downsampled LR: a learnable mapping."""
    coarse = jnp.asarray(rng.random((b, 4, 4, 3), dtype=np.float32))
    hr = jax.image.resize(coarse, (b, p * s, p * s, 3), "bilinear")
    lr = hr.reshape(b, p, s, p, s, 3).mean(axis=(2, 4))
    return {"lr": lr, "hr": hr}


def _state_and_step(config):
    g = setup.build_generator(config)
    d = setup.build_discriminator(config)
    g_tx, sched, d_tx = setup.build_optimizers(config)
    state = init_state(config.seed, g, g_tx, (1, 8, 8, 3), (1, 16, 16, 3), discriminator=d, d_tx=d_tx,
                       use_ema=config.ema_decay > 0)
    step = jax.jit(make_train_step(config, g, g_tx, discriminator=d, d_tx=d_tx, g_schedule=sched))
    return state, step


def test_multistep_schedule_matches_closed_form():
    cfg = optim_config(lr=1e-4, schedule="multistep", milestones=(10, 20), gamma=0.5)
    sched = optim.make_schedule(cfg, 30)
    assert [float(sched(s)) for s in (0, 9, 10, 19, 20, 29)] == pytest.approx(
        [1e-4, 1e-4, 5e-5, 5e-5, 2.5e-5, 2.5e-5], rel=1e-6)


def test_cosine_schedule_with_warmup_closed_form():
    cfg = optim_config(lr=1e-3, schedule="cosine", warmup_steps=10, min_lr=0.0)
    sched = optim.make_schedule(cfg, 110)
    assert float(sched(0)) == 0.0
    assert float(sched(5)) == pytest.approx(5e-4, rel=1e-6)
    assert float(sched(10)) == pytest.approx(1e-3, rel=1e-6)
    # Halfway through the 100 decay steps: lr/2 * (1 + cos(pi/2)) = lr/2.
    assert float(sched(60)) == pytest.approx(5e-4, rel=1e-5)
    assert float(sched(110)) == pytest.approx(0.0, abs=1e-9)


def test_warmup_then_constant():
    sched = optim.make_schedule(optim_config(lr=2e-4, warmup_steps=4), 100)
    assert [float(sched(s)) for s in (0, 2, 4, 50)] == pytest.approx([0.0, 1e-4, 2e-4, 2e-4], rel=1e-6)


def test_grad_clip_scales_gradients_before_adam():
    """First Adam step: update = -lr * g / (|g| + eps) elementwise; a large eps exposes the clipped g."""
    cfg = optim_config(lr=1.0, grad_clip=1.0, eps=100.0)
    tx = optim.make_optimizer(cfg, 10)
    params = {"w": jnp.zeros(2)}
    grads = {"w": jnp.array([30.0, 40.0])}  # global norm 50 -> clipped to [0.6, 0.8]
    updates, _ = tx.update(grads, tx.init(params), params)
    np.testing.assert_allclose(np.asarray(updates["w"]), [-0.6 / 100.6, -0.8 / 100.8], rtol=1e-5)
    cfg.grad_clip = 0.0
    tx = optim.make_optimizer(cfg, 10)
    updates, _ = tx.update(grads, tx.init(params), params)
    np.testing.assert_allclose(np.asarray(updates["w"]), [-30 / 130, -40 / 140], rtol=1e-5)


def test_bad_optimizer_names_are_clear():
    with pytest.raises(ValueError, match="optim.schedule"):
        optim.make_schedule(optim_config(schedule="linear"), 10)
    with pytest.raises(ValueError, match="optim.name"):
        optim.make_optimizer(optim_config(name="sgd"), 10)
    with pytest.raises(ValueError, match="weight_decay"):
        optim.make_optimizer(optim_config(weight_decay=1e-4), 10)


def test_step_decreases_l1_on_a_fixed_batch():
    config = _tiny_config()
    state, step = _state_and_step(config)
    batch = _batch(np.random.default_rng(0))
    losses = []
    for _ in range(80):
        state, metrics = step(state, batch)
        losses.append(float(metrics["loss"]))
    assert int(state.step) == 80
    assert losses[-1] < 0.5 * losses[0]
    # The logged loss is the configured pixel loss of the pre-update params.
    assert float(metrics["loss_l1"]) == pytest.approx(float(metrics["loss"]))
    assert bool(metrics["finite"])


def test_loss_weights_scale_the_total():
    c1, c2 = _tiny_config(), _tiny_config()
    c2.losses.l1 = 3.0
    c2.losses.mse = 0.5
    (s1, step1), (s2, step2) = _state_and_step(c1), _state_and_step(c2)
    batch = _batch(np.random.default_rng(1))
    _, m1 = step1(s1, batch)
    _, m2 = step2(s2, batch)
    assert float(m2["loss_l1"]) == pytest.approx(3.0 * float(m1["loss_l1"]), rel=1e-5)
    assert float(m2["loss"]) == pytest.approx(float(m2["loss_l1"]) + float(m2["loss_mse"]), rel=1e-6)


def test_unknown_loss_name_is_an_error():
    config = _tiny_config()
    with config.unlocked():
        config.losses.l3 = 1.0
    g = setup.build_generator(config)
    with pytest.raises(ValueError, match="l3"):
        make_train_step(config, g, optax.adam(1e-3))


def test_ema_follows_closed_form():
    config = _tiny_config()
    config.ema_decay = 0.9
    state, step = _state_and_step(config)
    p0 = jax.tree.map(np.asarray, state.params)
    state, _ = step(state, _batch(np.random.default_rng(2)))
    expected = jax.tree.map(lambda a, b: 0.9 * a + 0.1 * np.asarray(b), p0, state.params)
    for e, got in zip(jax.tree.leaves(expected), jax.tree.leaves(state.ema_params)):
        np.testing.assert_allclose(np.asarray(got), e, rtol=1e-6, atol=1e-7)
    assert state.eval_params is state.ema_params


@pytest.mark.parametrize("kind", ["nonsaturating", "ragan"])
def test_two_player_adversarial_step(kind):
    """Generator + PatchGAN discriminator: both players update, the adversarial term enters the G loss."""
    config = _tiny_config(name="patchgan", gan_kind=kind, weight=0.1)
    with config.unlocked():
        config.disc.kwargs = ml_collections.ConfigDict(dict(ndf=8, n_layers=1))
    state, step = _state_and_step(config)
    d0 = jax.tree.map(np.asarray, state.d_params)
    g0 = jax.tree.map(np.asarray, state.params)
    state, metrics = step(state, _batch(np.random.default_rng(3)))
    for name in ("loss_adv", "d_loss", "d_real_logit", "d_fake_logit"):
        assert np.isfinite(float(metrics[name])), name
    assert float(metrics["loss"]) == pytest.approx(float(metrics["loss_l1"]) + float(metrics["loss_adv"]), rel=1e-6)
    changed = lambda a, b: any(not np.array_equal(x, np.asarray(y)) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))  # noqa: E731
    assert changed(d0, state.d_params) and changed(g0, state.params)


def test_bf16_compute_keeps_f32_params_and_close_loss():
    c32, c16 = _tiny_config(), _tiny_config()
    c16.compute_dtype = "bfloat16"
    (s32, st32), (s16, st16) = _state_and_step(c32), _state_and_step(c16)
    batch = _batch(np.random.default_rng(4))
    s16, m16 = st16(s16, batch)
    _, m32 = st32(s32, batch)
    assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(s16.params))
    assert float(m16["loss"]) == pytest.approx(float(m32["loss"]), rel=2e-2)


def test_models_build_from_config_keys():
    config = _tiny_config()
    g = setup.build_generator(config)
    assert isinstance(g, type(models.build("edsr", scale=2)))
    with pytest.raises(ValueError, match="compute_dtype"):
        bad = _tiny_config()
        bad.compute_dtype = "float8"
        setup.build_generator(bad)
