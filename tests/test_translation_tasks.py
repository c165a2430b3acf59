"""CycleGAN and pix2pix tasks: losses against hand computation, the official update order (which nets are frozen,
which tensors detached), the schedule, aligned pairs, and the data iterators' exact resume."""

from __future__ import annotations

from pathlib import Path

import flax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgen import losses as losses_lib
from jaxgen.config import load_config
from jaxgen.tasks import get_task
from jaxgen.train.state import STREAM_DROPOUT, step_key
from tests.param_utils import numpy_params

REPO = Path(__file__).resolve().parents[1]
CYCLEGAN, PIX2PIX = str(REPO / "configs" / "cyclegan.py"), str(REPO / "configs" / "pix2pix.py")
# tools/parity/trainer_cyclegan.py's task (batch 2, pool 3, ngf 4, 1 block, ndf 4, 2 layers, lambda_B 5, constant lr):
# its train step is the same program as the cyclegan parity golden's, compiled once per test session (XLA cache).
PARITY_CYCLEGAN = (("batch_size", "2"), ("pool_size", "3"), ("model.ngf", "4"), ("model.n_blocks", "1"),
                   ("disc.ndf", "4"), ("disc.n_layers", "2"), ("losses.lambda_B", "5"), ("optim.schedule", "constant"))


def _task(spec: str, *overrides: tuple[str, str]):
    config = load_config(spec, list(overrides))
    return get_task(config.task)(config)


def _constant_output(params, value: float, layer: str = "conv_out"):
    """Params whose last conv has a zero kernel and bias ``value``: the net outputs ``value`` (D) or
    ``tanh(value)`` (G) everywhere, whatever the input."""
    p = flax.core.unfreeze(jax.tree.map(np.asarray, params))
    p[layer]["kernel"] = np.zeros_like(p[layer]["kernel"])
    p[layer]["bias"] = np.full_like(p[layer]["bias"], value)
    return p


@pytest.fixture(scope="module")
def cyclegan():
    return _task(f"{CYCLEGAN}:tiny")


def test_cyclegan_generator_losses_by_hand(cyclegan):
    """Constant nets: G_A -> tanh(a), G_B -> tanh(b), D_A -> c, D_B -> d; every term is then a closed form."""
    state = jax.eval_shape(cyclegan.init)
    # the outputs are constant whatever the other weights: those are drawn with numpy on the init's shapes (an
    # init compiles one draw per parameter), and the losses run as jitted programs (not op by op)
    init = {n: numpy_params(state.players[n].params, seed) for seed, n in enumerate(("G_A", "G_B", "D_A", "D_B"))}
    a, b, c, d = 0.3, -0.5, 0.2, 0.9
    g = {"G_A": _constant_output(init["G_A"], a), "G_B": _constant_output(init["G_B"], b)}
    dp = {"D_A": _constant_output(init["D_A"], c), "D_B": _constant_output(init["D_B"], d)}
    rng = np.random.default_rng(0)
    real_A = jnp.asarray(rng.uniform(-1, 1, (2, 32, 32, 3)), jnp.float32)
    real_B = jnp.asarray(rng.uniform(-1, 1, (2, 32, 32, 3)), jnp.float32)
    total, (parts, fake_A, fake_B) = jax.jit(cyclegan.generator_losses)(g, dp, real_A, real_B, jax.random.key(0))
    ta, tb = np.tanh(a), np.tanh(b)
    A, B = np.asarray(real_A, np.float64), np.asarray(real_B, np.float64)
    expected = {
        "G_A": (c - 1) ** 2,  # LSGAN, target 1: D_A judges fake_B
        "G_B": (d - 1) ** 2,
        "cycle_A": 10 * np.abs(tb - A).mean(),  # rec_A = G_B(fake_B) = tanh(b)
        "cycle_B": 10 * np.abs(ta - B).mean(),  # rec_B = G_A(fake_A) = tanh(a)
        "idt_A": 0.5 * 10 * np.abs(ta - B).mean(),  # G_A(real_B) vs real_B, lambda_identity * lambda_B
        "idt_B": 0.5 * 10 * np.abs(tb - A).mean(),
    }
    assert set(parts) == set(expected)
    for k, v in expected.items():
        assert float(parts[k]) == pytest.approx(v, rel=1e-5), k
    assert float(total) == pytest.approx(sum(expected.values()), rel=1e-5)
    np.testing.assert_allclose(fake_B, np.full(fake_B.shape, ta), rtol=1e-6)
    np.testing.assert_allclose(fake_A, np.full(fake_A.shape, tb), rtol=1e-6)
    # Discriminator loss: 0.5 * (mse(D(real), 1) + mse(D(fake), 0)).
    d_loss = jax.jit(cyclegan.discriminator_loss)(dp["D_A"], real_B, fake_B)
    assert float(d_loss) == pytest.approx(0.5 * ((c - 1) ** 2 + c**2), rel=1e-5)
    assert state.buffers["fake_A_pool"]["images"].shape == (12, 32, 32, 3)


def test_identity_loss_off_drops_its_terms():
    task = _task(f"{CYCLEGAN}:tiny", ("losses.lambda_identity", "0"))
    init = jax.eval_shape(task.init)  # only which terms come out is asserted: shapes, no compile
    g = {k: init.players[k].params for k in ("G_A", "G_B")}
    dp = {k: init.players[k].params for k in ("D_A", "D_B")}
    x = jax.ShapeDtypeStruct((1, 32, 32, 3), jnp.float32)
    _, (parts, _, _) = jax.eval_shape(task.generator_losses, g, dp, x, x, jax.random.key(0))
    assert set(parts) == {"G_A", "G_B", "cycle_A", "cycle_B"}


def test_cyclegan_step_order_frozen_d_and_pools_of_pre_update_fakes():
    cyclegan = _task(f"{CYCLEGAN}:tiny", *PARITY_CYCLEGAN)
    state = jax.jit(cyclegan.init)()  # as the training loop (op by op, every init op compiles apart)
    rng = np.random.default_rng(1)
    batch = {k: jnp.asarray(rng.uniform(0, 1, (2, 32, 32, 3)), jnp.float32) for k in "AB"}
    new, metrics = jax.jit(cyclegan.step)(state, batch, {})
    # The pools received the fakes of the generators *before* their update (official: forward, then G step, then
    # D step on the stored self.fake_B), in batch order while not full.
    fake_B = jax.jit(cyclegan.generator.apply)({"params": state.players["G_A"].params}, batch["A"] * 2 - 1)
    np.testing.assert_allclose(new.buffers["fake_B_pool"]["images"][:2], fake_B, atol=1e-5)
    assert int(new.buffers["fake_B_pool"]["count"]) == 2 and int(new.buffers["fake_A_pool"]["count"]) == 2
    # G's adversarial terms used the discriminators before their update.
    d_a = jax.jit(cyclegan._d)  # one program for the reals and the fakes below
    pre = float(losses_lib.gan_g_loss(d_a(state.players["D_A"].params, fake_B), kind="lsgan"))
    assert float(metrics["loss_G_A"]) == pytest.approx(pre, rel=1e-5)
    # D_A: real B vs the pool's answer (= the fresh fakes while filling), halved.
    expected_d = 0.5 * float(losses_lib.gan_d_loss(d_a(state.players["D_A"].params, batch["B"] * 2 - 1),
                                                   d_a(state.players["D_A"].params, fake_B), kind="lsgan"))
    assert float(metrics["D_A"]) == pytest.approx(expected_d, rel=1e-5)
    for name in ("G_A", "G_B", "D_A", "D_B"):  # every player took one Adam step
        assert int(new.players[name].opt_state[0].count) == 1
    assert bool(metrics["finite"]) and int(new.step) == 1


def test_pix2pix_discriminator_first_then_generator_against_updated_d():
    # The U-Net with one dropout block (num_downs 6, 64 px), so the replayed forward below must also draw the step's
    # dropout mask; the same task and batch shape as test_objective_defaults' dropout test (one compiled step).
    task = _task(f"{PIX2PIX}:tiny", ("model.num_downs", "6"), ("data.crop_size", "64"), ("data.load_size", "68"))
    state = jax.jit(task.init)()  # as the training loop (op by op, every init op compiles apart)
    rng = np.random.default_rng(2)
    a = jnp.asarray(rng.uniform(0, 1, (2, 64, 64, 3)), jnp.float32)
    batch = {"A": a, "B": 1 - a}
    new, metrics = jax.jit(task.step)(state, batch, {})
    x, y = a * 2 - 1, (1 - a) * 2 - 1
    key = step_key(state, STREAM_DROPOUT)
    fake = jax.jit(lambda p, x, k: task.generator.apply({"params": p}, x, train=True, rngs={"dropout": k}))(
        state.players["G"].params, x, key)
    d = jax.jit(task._d)  # one program for every call below
    d_old, d_new = state.players["D"].params, new.players["D"].params
    expected_d = 0.5 * losses_lib.gan_d_loss(d(d_old, x, y), d(d_old, x, fake), kind="vanilla")
    assert float(metrics["D"]) == pytest.approx(float(expected_d), rel=1e-5)
    # The generator's GAN term is judged by the D *after* its update (official optimize_parameters order), on the
    # same forward (same dropout mask and batch statistics).
    gan_new = float(losses_lib.gan_g_loss(d(d_new, x, fake), kind="vanilla"))
    gan_old = float(losses_lib.gan_g_loss(d(d_old, x, fake), kind="vanilla"))
    assert float(metrics["loss_G_GAN"]) == pytest.approx(gan_new, rel=1e-5)
    assert abs(gan_new - gan_old) > 1e-4
    assert float(metrics["loss_G_L1"]) == pytest.approx(100 * float(jnp.abs(fake - y).mean()), rel=1e-5)


def test_multiscale_discriminator_trains_in_pix2pix_and_cyclegan():
    """``disc.name = 'multiscale_patchgan'`` (pix2pixHD's, a tuple of logit maps) in both translation steps: the
    losses sum over the scales and the logit metrics average the scales' means (the steps cast one map to float32:
    a tuple crashed them with an AttributeError)."""
    msd = (("disc.name", "multiscale_patchgan"), ("disc.num_d", "2"))
    pix = _task(f"{PIX2PIX}:tiny", *msd, ("disc.n_layers", "2"))  # its second scale sees 16 px
    state = jax.jit(pix.init)()
    assert set(state.players["D"].params) == {"scale0", "scale1"}
    rng = np.random.default_rng(3)
    a = jnp.asarray(rng.uniform(0, 1, (2, 32, 32, 3)), jnp.float32)
    new, metrics = jax.jit(pix.step)(state, {"A": a, "B": 1 - a}, {})
    x, y = a * 2 - 1, (1 - a) * 2 - 1
    d = jax.jit(pix._d)
    real = d(state.players["D"].params, x, y)
    assert isinstance(real, tuple) and len(real) == 2 and real[1].shape[1] < real[0].shape[1]
    assert all(r.dtype == jnp.float32 for r in real)
    assert float(metrics["d_real_logit"]) == pytest.approx(float((real[0].mean() + real[1].mean()) / 2), rel=1e-5)
    assert bool(metrics["finite"]) and int(new.players["D"].opt_state[0].count) == 1

    cyc = _task(f"{CYCLEGAN}:tiny", *PARITY_CYCLEGAN[:6], *msd)
    state = jax.jit(cyc.init)()
    batch = {k: jnp.asarray(rng.uniform(0, 1, (2, 32, 32, 3)), jnp.float32) for k in "AB"}
    new, metrics = jax.jit(cyc.step)(state, batch, {})
    d_a = jax.jit(cyc._d)
    fake_B = jax.jit(cyc.generator.apply)({"params": state.players["G_A"].params}, batch["A"] * 2 - 1)
    logits = d_a(state.players["D_A"].params, fake_B)
    by_scale = [float(losses_lib.gan_g_loss(z, kind="lsgan")) for z in logits]
    assert float(metrics["loss_G_A"]) == pytest.approx(sum(by_scale), rel=1e-5)
    assert bool(metrics["finite"])


def test_linear_decay_schedule_and_adam_betas():
    """Official lr_policy 'linear' (n_epochs=100 constant, n_epochs_decay=100 to zero), per step here."""
    task = _task(CYCLEGAN, ("optim.kwargs.b2", "0.999"))
    E = 1334
    T = 200 * E
    assert task.config.total_steps == T and task.config.optim.decay_start == 100 * E
    assert (task.config.optim.kwargs.b1, task.config.optim.kwargs.b2, task.config.optim.lr) == (0.5, 0.999, 2e-4)
    lr = lambda t: float(task.schedule(t))  # noqa: E731
    assert lr(0) == pytest.approx(2e-4) and lr(100 * E - 1) == pytest.approx(2e-4)
    for t in (100 * E, 150 * E, 175 * E + 17, T - 1):
        assert lr(t) == pytest.approx(2e-4 * (1 - (t - 100 * E) / (100 * E)), rel=1e-5, abs=1e-10)  # float32 schedule
    assert lr(T) == pytest.approx(0.0, abs=1e-10)
    # The official per-epoch factor 1 - max(0, e + 1 - 100) / 101 (epoch e = 1..200, stepped at each epoch start)
    # stays within two epochs' decrement of the per-step line at every epoch's middle.
    for e in range(1, 201):
        official = 2e-4 * (1 - max(0, e + 1 - 100) / 101)
        assert abs(lr((e - 1) * E + E // 2) - official) <= 2e-4 * 2 / 100
    p2p = _task(PIX2PIX)
    assert p2p.config.total_steps == 200 * 400 and p2p.config.optim.decay_start == 100 * 400
    assert p2p.config.losses.lambda_L1 == 100.0 and p2p.config.losses.gan_kind == "vanilla"


def test_paired_batches_are_aligned_and_resume_exactly():
    from jaxgen.data.paired import make_paired_iterator

    task = _task(f"{PIX2PIX}:tiny")
    it = make_paired_iterator(task.config.data, global_batch_size=4, seed=0, process_index=0, process_count=1)
    batches = [next(it) for _ in range(3)]
    for bt in batches:
        assert bt["A"].shape == (4, 32, 32, 3) and bt["A"].dtype == np.float32
        # Same resize, crop and flip on both sides: B is the negative of A (bicubic commutes with 255 - x up to
        # the rounding of each resize).
        assert np.abs(bt["B"] - (1 - bt["A"])).max() <= 1.01 / 255
    again = make_paired_iterator(task.config.data, global_batch_size=4, seed=0, process_index=0, process_count=1)
    again.set_state(it.get_state() | {"next_batch": 1})
    for expected in batches[1:]:
        got = next(again)
        assert all(np.array_equal(got[k], expected[k]) for k in "AB")


def test_unpaired_domains_are_independent_streams_and_resume_exactly(cyclegan):
    from jaxgen.data.unpaired import domain_records, make_unpaired_iterator

    a, b = domain_records(cyclegan.config.data)
    assert not set(a.names) & set(b.names) and len(a) + len(b) >= 2  # synthetic domains never share a photo
    it = make_unpaired_iterator(cyclegan.config.data, global_batch_size=4, seed=0, process_index=0, process_count=1)
    batches = [next(it) for _ in range(3)]
    again = make_unpaired_iterator(cyclegan.config.data, global_batch_size=4, seed=0, process_index=0, process_count=1)
    again.set_state(it.get_state() | {"next_batch": 2})
    got = next(again)
    assert all(np.array_equal(got[k], batches[2][k]) for k in "AB")
    other = make_unpaired_iterator(cyclegan.config.data, global_batch_size=4, seed=1, process_index=0, process_count=1)
    assert not np.array_equal(next(other)["A"], batches[0]["A"])


@pytest.mark.parametrize("key,value,message", [
    ("data.crop_size", "30", "multiple of 4"),
    ("losses.gan_kind", "lsgann", "gan_kind='lsgann'"),
    ("data.synthetic", "blur", "synthetic='blur'"),
    ("model.n_blockz", "2", "unknown kwargs"),
    ("pool_size", "-1", "pool_size=-1"),
])
def test_config_mistakes_are_one_line_errors(key, value, message):
    with pytest.raises(ValueError, match=message) as e:
        _task(f"{CYCLEGAN}:tiny", (key, value))
    assert "\n" not in str(e.value)
