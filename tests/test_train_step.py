"""The SR and SR-GAN tasks' pure steps and the optimizers, in process on 1 device, against independent truths:
closed-form schedules, an independently composed generator loss, the discriminator's own objective, jaxprs."""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from jaxgen.config import ConfigError, optim_config
from jaxgen.tasks import SRGANTask, SRTask, base_config, get_task
from jaxgen.tasks.sr_common import PlainPairs, RealESRGANPairs
from jaxgen.train import optim
from tests.param_utils import FAST_COMPILE


def _tiny_config(task: str = "sr", **gan) -> ml_collections.ConfigDict:
    c = base_config(task)
    c.scale = 2
    c.model = ml_collections.ConfigDict(dict(name="edsr", num_blocks=1, num_feat=8, res_scale=1.0))
    c.optim = optim_config(lr=1e-3)
    c.data.patch_size = 8
    if task == "sr_gan":
        c.disc.name = "patchgan"
        c.disc.kwargs = ml_collections.ConfigDict(dict(ndf=8, n_layers=1))
        c.disc.optim = optim_config(lr=1e-2)
        c.losses.gan.update(gan)
    return c


def _batch(rng: np.random.Generator, b: int = 4, p: int = 8, s: int = 2) -> dict[str, jax.Array]:
    """Smooth HR images (bilinear-upsampled 4x4 noise) and their box-downsampled LR: a learnable mapping."""
    coarse = jnp.asarray(rng.random((b, 4, 4, 3), dtype=np.float32))
    hr = jax.image.resize(coarse, (b, p * s, p * s, 3), "bilinear")
    lr = hr.reshape(b, p, s, p, s, 3).mean(axis=(2, 4))
    return {"lr": lr, "hr": hr}


def _task_step(config):
    task = {"sr": SRTask, "sr_gan": SRGANTask}[config.task](config)
    return task, jax.jit(lambda s, b: task.step(s, b, {}), compiler_options=FAST_COMPILE)


def _task_state_step(config):
    task, step = _task_step(config)
    state = jax.jit(task.init, compiler_options=FAST_COMPILE)()  # one program, not an eager op-by-op init
    return task, state, step


def _jit(fn):
    """``jax.jit`` at FAST_COMPILE, for the independent computations the steps are compared with."""
    return jax.jit(fn, compiler_options=FAST_COMPILE)


@pytest.fixture(scope="module")
def sr():
    """The tiny SR task (with an EMA, decay 0.9), its initial state and its jitted step: one compiled program
    serves every SR-step test below (none of them donates or mutates the state)."""
    config = _tiny_config()
    config.ema_decay = 0.9
    return _task_state_step(config)


# --------------------------------------------------------------------------------------------- schedules


def test_multistep_schedule_matches_closed_form():
    cfg = optim_config(lr=1e-4, schedule="multistep", milestones=(10, 20), gamma=0.5)
    sched = optim.make_schedule(cfg, 30)
    assert [float(sched(s)) for s in (0, 9, 10, 19, 20, 29)] == pytest.approx(
        [1e-4, 1e-4, 5e-5, 5e-5, 2.5e-5, 2.5e-5], rel=1e-6)


def test_multistep_milestones_are_absolute_steps_after_a_warmup():
    """Warm-up 5 then halvings at the absolute steps 10 and 20 (not 15 and 25)."""
    cfg = optim_config(lr=1e-4, schedule="multistep", milestones=(10, 20), gamma=0.5, warmup_steps=5)
    sched = optim.make_schedule(cfg, 30)
    expected = {0: 0.0, 1: 2e-5, 4: 8e-5, 5: 1e-4, 9: 1e-4, 10: 5e-5, 15: 5e-5, 19: 5e-5, 20: 2.5e-5, 25: 2.5e-5}
    assert [float(sched(t)) for t in expected] == pytest.approx(list(expected.values()), rel=1e-6, abs=1e-12)


def test_cosine_schedule_with_warmup_closed_form():
    cfg = optim_config(lr=1e-3, schedule="cosine", warmup_steps=10, min_lr=0.0)
    sched = optim.make_schedule(cfg, 110)
    assert float(sched(0)) == 0.0
    assert float(sched(5)) == pytest.approx(5e-4, rel=1e-6)
    assert float(sched(10)) == pytest.approx(1e-3, rel=1e-6)
    # 30 of the 100 decay steps: min + (lr - min)/2 * (1 + cos(pi * 0.3)).
    assert float(sched(40)) == pytest.approx(1e-3 / 2 * (1 + np.cos(np.pi * 0.3)), rel=1e-5)
    assert float(sched(110)) == pytest.approx(0.0, abs=1e-9)


def test_linear_decay_schedule_closed_form():
    """CycleGAN's policy: constant until decay_start, then linear to min_lr at total_steps."""
    sched = optim.make_schedule(optim_config(lr=2e-4, schedule="linear_decay", decay_start=100), 200)
    for t in (0, 50, 100, 150, 175, 200):
        want = 2e-4 if t <= 100 else 2e-4 * (200 - t) / 100
        assert float(sched(t)) == pytest.approx(want, rel=1e-5, abs=1e-12), t


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


def test_optimizers_by_name_with_kwargs():
    """sgd with momentum from config == optax.sgd itself; any optax optimizer name works."""
    cfg = optim_config(name="sgd", lr=0.1, momentum=0.9)
    assert dict(cfg.kwargs) == {"momentum": 0.9}
    tx, ref = optim.make_optimizer(cfg, 10), optax.sgd(0.1, momentum=0.9)
    params, grads = {"w": jnp.ones(3)}, {"w": jnp.array([1.0, -2.0, 3.0])}
    s, r = tx.init(params), ref.init(params)
    for _ in range(3):
        u, s = tx.update(grads, s, params)
        v, r = ref.update(grads, r, params)
        np.testing.assert_allclose(np.asarray(u["w"]), np.asarray(v["w"]), rtol=1e-7)
    for name in ("adamw", "lion", "rmsprop", "adabelief"):
        optim.make_optimizer(optim_config(name=name), 10)


def test_bad_optimizer_settings_are_clear():
    with pytest.raises(ValueError, match="optim.schedule"):
        optim.make_schedule(optim_config(schedule="linear"), 10)
    with pytest.raises(ValueError, match="optim.name='nope'"):
        optim.make_optimizer(optim_config(name="nope"), 10)
    with pytest.raises(ValueError, match="not an optimizer|learning_rate"):
        optim.make_optimizer(optim_config(name="clip_by_global_norm"), 10)
    with pytest.raises(ValueError, match="weight_decay"):
        optim.make_optimizer(optim_config(weight_decay=1e-4), 10)
    with pytest.raises(ValueError, match="rejected kwargs"):
        optim.make_optimizer(optim_config(name="adam", betaa=0.3), 10)


# --------------------------------------------------------------------------------------------- SR step


def test_step_decreases_l1_on_a_fixed_batch(sr):
    task, state, step = sr
    batch = _batch(np.random.default_rng(0))
    losses = []
    for _ in range(80):
        state, metrics = step(state, batch)
        losses.append(float(metrics["loss"]))
    assert int(state.step) == 80
    assert losses[-1] < 0.5 * losses[0]
    assert float(metrics["loss_l1"]) == pytest.approx(float(metrics["loss"]))
    assert bool(metrics["finite"])


def test_sr_step_equals_an_independent_adam_step_on_the_l1_loss(sr):
    """New params == optax.adam applied to jax.grad of mean|G(lr) - hr| composed here, not by the task."""
    task, state, step = sr
    batch = _batch(np.random.default_rng(5))
    g = task.generator
    p0 = state.players["generator"].params
    grads = _jit(jax.grad(lambda p: jnp.mean(jnp.abs(g.apply({"params": p}, batch["lr"]) - batch["hr"]))))(p0)
    tx = optax.adam(1e-3, b1=0.9, b2=0.999, eps=1e-8)
    want = _jit(lambda p, g: optax.apply_updates(p, tx.update(g, tx.init(p), p)[0]))(p0, grads)
    state, _ = step(state, batch)
    for a, b in zip(jax.tree.leaves(want), jax.tree.leaves(state.players["generator"].params)):
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-5, atol=1e-7)


def test_loss_entries_with_weights_and_kwargs(sr):
    c2 = _tiny_config()
    c2.ema_decay = 0.9  # the state of the sr fixture (the losses hold no state): the same state, no second init
    c2.losses.l1 = 3.0
    c2.losses.charbonnier = ml_collections.ConfigDict({"weight": 0.5, "eps": 0.1})
    (t1, s1, step1), (t2, step2) = sr, _task_step(c2)
    s2 = s1
    batch = _batch(np.random.default_rng(1))
    _, m1 = step1(s1, batch)
    _, m2 = step2(s2, batch)
    assert float(m2["loss_l1"]) == pytest.approx(3.0 * float(m1["loss_l1"]), rel=1e-5)
    sr_img = _jit(t2.generator.apply)({"params": s2.players["generator"].params}, batch["lr"])
    charb = jnp.mean(jnp.sqrt((sr_img - batch["hr"]) ** 2 + 0.1**2))  # eps reaches the loss
    assert float(m2["loss_charbonnier"]) == pytest.approx(0.5 * float(charb), rel=1e-5)
    assert float(m2["loss"]) == pytest.approx(float(m2["loss_l1"]) + float(m2["loss_charbonnier"]), rel=1e-6)


def test_unknown_loss_name_and_negative_sizes_are_config_errors():
    config = _tiny_config()
    config.losses.l3 = 1.0
    with pytest.raises(ConfigError, match="config.losses.l3"):
        SRTask(config)
    config = _tiny_config()
    config.model.num_blocks = -1
    with pytest.raises(ConfigError, match="config.model.num_blocks=-1"):
        SRTask(config)
    config = _tiny_config()
    config.compute_dtype = "float8"
    with pytest.raises(ValueError, match="compute_dtype"):
        SRTask(config)


def test_ema_follows_closed_form(sr):
    task, state, step = sr  # ema_decay 0.9
    p0 = jax.tree.map(np.asarray, state.players["generator"].params)
    state, _ = step(state, _batch(np.random.default_rng(2)))
    g = state.players["generator"]
    expected = jax.tree.map(lambda a, b: 0.9 * a + 0.1 * np.asarray(b), p0, g.params)
    for e, got in zip(jax.tree.leaves(expected), jax.tree.leaves(g.ema)):
        np.testing.assert_allclose(np.asarray(got), e, rtol=1e-6, atol=1e-7)
    assert g.eval_params is g.ema


def test_bf16_compute_shows_in_the_jaxpr_and_keeps_f32_params(sr):
    c16 = _tiny_config()
    c16.ema_decay = 0.9  # the sr fixture's state structure: its state serves both steps (no second init)
    c16.compute_dtype = "bfloat16"
    batch = _batch(np.random.default_rng(4))
    (t32, s32, step32), (t16, step16) = sr, _task_step(c16)
    init16 = jax.eval_shape(t16.init)  # the bf16 task's own init keeps float32 params
    assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(init16.players["generator"].params))
    s16 = s32
    texts = {name: str(jax.make_jaxpr(lambda s, b: task.step(s, b, {}))(state, batch))
             for name, task, state in (("f32", t32, s32), ("bf16", t16, s16))}
    conv = re.compile(r"(\w+)\[[^\]]*\] = conv_general_dilated")
    assert set(conv.findall(texts["f32"])) == {"f32"}
    assert "bf16" in set(conv.findall(texts["bf16"]))  # the generator's convolutions run in bfloat16
    new16, m16 = step16(s16, batch)
    assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(new16.players["generator"].params))
    _, m32 = step32(s32, batch)
    assert float(m16["loss"]) == pytest.approx(float(m32["loss"]), rel=2e-2)


# --------------------------------------------------------------------------------------------- SR-GAN step


def _changed(a, b) -> bool:
    return any(not np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


GAN_WEIGHT = 0.3


def _gan_config(kind: str) -> ml_collections.ConfigDict:
    """The tiny SR-GAN (adversarial weight GAN_WEIGHT); the nonsaturating one trains D with SGD(lr 1.0), as
    ``test_discriminator_update_equals_an_independent_sgd_step`` needs (the others keep Adam)."""
    config = _tiny_config("sr_gan", weight=GAN_WEIGHT, kind=kind)
    if kind == "nonsaturating":
        config.disc.optim = optim_config(name="sgd", lr=1.0)
    return config


@pytest.fixture(scope="module", params=["nonsaturating", "lsgan", "ragan"])
def gan(request):
    """``(kind, task, state, step)`` of the tiny SR-GAN of ``_gan_config``: one compiled step per kind serves the
    discriminator-gap, the generator-gradient and (nonsaturating) the discriminator-update test of that kind."""
    return (request.param, *_task_state_step(_gan_config(request.param)))


def test_discriminator_step_widens_the_real_fake_gap(gan):
    """After one D update, D(real) - D(fake) on the step's own HR and SR grows (a swap of real and fake in the
    discriminator loss makes it shrink)."""
    kind, task, state, step = gan
    batch = _batch(np.random.default_rng(3))
    d = task.discriminator
    sr = _jit(task.generator.apply)({"params": state.players["generator"].params}, batch["lr"])

    @_jit
    def gap_fn(d_params):
        return jnp.mean(d.apply({"params": d_params}, batch["hr"])) - jnp.mean(d.apply({"params": d_params}, sr))

    def gap(d_params):
        return float(gap_fn(d_params))

    before = gap(state.players["discriminator"].params)
    new, metrics = step(state, batch)
    after = gap(new.players["discriminator"].params)
    assert after > before + 1e-4, (before, after)
    assert _changed(state.players["generator"].params, new.players["generator"].params)
    for name in ("loss_gan", "d_loss", "d_real_logit", "d_fake_logit"):
        assert np.isfinite(float(metrics[name])), name
    assert float(metrics["loss"]) == pytest.approx(float(metrics["loss_l1"]) + float(metrics["loss_gan"]), rel=1e-6)


def _independent_g_loss(kind: str, fake: jax.Array, real: jax.Array) -> jax.Array:
    """The generator's adversarial terms written out from the papers (not through jaxgen.losses)."""
    if kind == "nonsaturating":  # -log sigmoid(D(G(z)))
        return jnp.mean(jax.nn.softplus(-fake))
    if kind == "lsgan":  # (D(G(z)) - 1)^2 (Mao et al.)
        return jnp.mean((fake - 1.0) ** 2)
    # ESRGAN / BasicSR: 0.5 * (BCE(real - mean fake, 0) + BCE(fake - mean real, 1)), real detached.
    return 0.5 * (jnp.mean(jax.nn.softplus(real - jnp.mean(fake))) + jnp.mean(jax.nn.softplus(-(fake - jnp.mean(real)))))


def test_generator_gradient_equals_an_independently_composed_loss(gan):
    """G's update == Adam on jax.grad(l1(G(lr), hr) + w * adversarial(D(G(lr)))); an adversarial term computed
    on HR instead of SR (no gradient to G) or a wrong sign fails."""
    kind, task, state, step = gan
    w = GAN_WEIGHT
    batch = _batch(np.random.default_rng(6))
    g, d = task.generator, task.discriminator
    p0, dp = state.players["generator"].params, state.players["discriminator"].params

    def loss(p):
        real = jax.lax.stop_gradient(d.apply({"params": dp}, batch["hr"]))
        sr = g.apply({"params": p}, batch["lr"])
        return jnp.mean(jnp.abs(sr - batch["hr"])) + w * _independent_g_loss(kind, d.apply({"params": dp}, sr), real)

    grads = _jit(jax.grad(loss))(p0)
    tx = optax.adam(1e-3, b1=0.9, b2=0.999, eps=1e-8)
    want = _jit(lambda p, g: optax.apply_updates(p, tx.update(g, tx.init(p), p)[0]))(p0, grads)
    new, _ = step(state, batch)
    for a, b in zip(jax.tree.leaves(want), jax.tree.leaves(new.players["generator"].params)):
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("gan", ["nonsaturating"], indirect=True)
def test_discriminator_update_equals_an_independent_sgd_step(gan):
    """D's update == SGD(lr 1.0) on jax.grad of BCE(D(hr), 1) + BCE(D(sr), 0), sr from the pre-update G (SGD,
    not Adam: PatchGAN's normalised layers have zero-gradient biases whose Adam update is the sign of noise)."""
    kind, task, state, step = gan
    assert task.config.disc.optim.name == "sgd" and task.config.disc.optim.lr == 1.0
    batch = _batch(np.random.default_rng(7))
    d = task.discriminator
    sr = _jit(task.generator.apply)({"params": state.players["generator"].params}, batch["lr"])
    dp = state.players["discriminator"].params

    def loss(q):
        return (jnp.mean(jax.nn.softplus(-d.apply({"params": q}, batch["hr"])))
                + jnp.mean(jax.nn.softplus(d.apply({"params": q}, sr))))

    grads = _jit(jax.grad(loss))(dp)
    want = jax.tree.map(lambda p, g: p - g, dp, grads)
    new, _ = step(state, batch)
    for a, b in zip(jax.tree.leaves(want), jax.tree.leaves(new.players["discriminator"].params)):
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-4, atol=1e-6)


def test_sr_gan_needs_a_gan_entry_and_a_known_kind():
    config = _tiny_config("sr_gan", kind="nope")
    with pytest.raises(ConfigError, match="losses.gan.kind"):
        SRGANTask(config)


def test_real_sr_tasks_are_the_sr_tasks_with_a_degradation_section():
    for plain_name, real_name, cls in (("sr", "real_sr", SRTask), ("sr_gan", "real_sr_gan", SRGANTask)):
        plain, real = base_config(plain_name), base_config(real_name)
        assert set(real) - set(plain) == {"degradation"} and set(plain) <= set(real)
        real.degradation.queue_size = 0  # the default pool (180) is not a multiple of the default batch (16)
        real_task, plain_task = get_task(real_name)(real), get_task(plain_name)(plain)
        assert type(real_task) is type(plain_task) is cls
        assert isinstance(real_task.pairs, RealESRGANPairs) and isinstance(plain_task.pairs, PlainPairs)
        plain.degradation = real.degradation  # the section, not the registry name, picks the pairs
        assert isinstance(cls(plain).pairs, RealESRGANPairs)
