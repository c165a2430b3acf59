"""Style and translation objectives against independent truths: the closed forms and official defaults that a
mutation sweep (issue 17, item 4) showed no test pinned down.

- AdaIN ``calc_mean_std``: ``std = sqrt(unbiased var + eps)``, ``eps = 1e-5`` (naoto0804/pytorch-AdaIN
  ``function.py``), on features whose variance is zero or comparable to eps, where the placement of eps shows;
- Gatys defaults = jcjohnson/neural-style ``neural_style.lua``'s (``-content_layers relu4_2``, ``-style_layers
  relu1_1,relu2_1,relu3_1,relu4_1,relu5_1``, ``-content_weight 5``, ``-style_weight 100``, ``-tv_weight 1e-3``);
- Gatys and fast-style totals = ``content_w * content + style_w * style (+ tv_w * tv)`` with the raw terms
  computed here by hand from the VGG features (numpy Gram matrices and MSEs), weights all different;
- CycleGAN with ``lambda_A != lambda_B``: every generator term in closed form (constant networks);
- the step key: two consecutive steps draw different dropout masks, the same step redrawn gives the same one.
"""

from __future__ import annotations

from pathlib import Path

import flax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgen.config import load_config
from jaxgen.models.vgg import VGGFeatures
from jaxgen.style import adain, calc_mean_std
from jaxgen.style.objective import GatysObjective, gatys_loss
from jaxgen.tasks import get_task
from jaxgen.train.state import STREAM_DROPOUT, STREAM_POOL, step_key
from tests.param_utils import numpy_params

REPO = Path(__file__).resolve().parents[1]


def _task(spec: str, *overrides: tuple[str, str]):
    config = load_config(str(REPO / "configs" / spec), list(overrides))
    return get_task(config.task)(config)


def _gram(f: np.ndarray) -> np.ndarray:
    """``F^T F / (C H W)`` per image, in float64, from ``[B,H,W,C]``."""
    b, h, w, c = f.shape
    x = f.astype(np.float64).reshape(b, h * w, c)
    return np.einsum("bnc,bnd->bcd", x, x) / (c * h * w)


# ------------------------------------------------------------------------------------------ AdaIN eps


def test_calc_mean_std_adds_eps_to_the_variance_inside_the_sqrt():
    # channel 0 constant (variance 0), channel 1 with unbiased variance exactly 1e-5 (values +-a, n = 4)
    a = np.sqrt(1e-5 * 3 / 4)
    feat = np.zeros((1, 2, 2, 2), np.float32)
    feat[..., 0] = 0.7
    feat[0, :, :, 1] = [[a, -a], [a, -a]]
    mean, std = calc_mean_std(jnp.asarray(feat))
    np.testing.assert_allclose(np.asarray(mean).ravel(), [0.7, 0.0], atol=1e-7)
    # official: sqrt(var + 1e-5) -> sqrt(1e-5) = 3.162e-3 and sqrt(2e-5) = 4.472e-3 (eps outside: 1e-5, 3.172e-3)
    np.testing.assert_allclose(np.asarray(std).ravel(), [np.sqrt(1e-5), np.sqrt(2e-5)], rtol=1e-4)


def test_adain_of_a_flat_content_feature_is_the_style_mean():
    """A constant content channel normalises to 0 (``(c - mean) / sqrt(0 + eps)``), so AdaIN gives the style mean."""
    content = jnp.full((1, 4, 4, 1), 3.0)
    style = jnp.asarray(np.arange(16, dtype=np.float32).reshape(1, 4, 4, 1))
    np.testing.assert_allclose(np.asarray(adain(content, style)), 7.5, rtol=1e-6)


# ------------------------------------------------------------------------------------------ Gatys


def test_gatys_defaults_are_neural_style_lua_defaults():
    o = GatysObjective()
    assert o.content_layers == ("relu4_2",)
    assert o.style_layers == ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
    assert (o.content_weight, o.style_weight, o.tv_weight) == (5.0, 100.0, 1e-3)
    assert o.pooling == "max"


def test_gatys_total_is_the_weighted_sum_of_hand_computed_terms():
    obj = GatysObjective(content_layers=("relu2_2",), style_layers=("relu1_1", "relu2_1"), content_weight=3.0,
                         style_weight=70.0, tv_weight=0.02)
    vgg = obj.vgg()
    # random VGG weights drawn with numpy (an init compiles one draw per parameter); the forward and the loss
    # jitted (op by op, every op compiles apart)
    params = numpy_params(jax.eval_shape(vgg.init, jax.random.key(0), jnp.zeros((1, 16, 16, 3)))["params"], 0,
                          kernel_gain=2.0)
    rng = np.random.default_rng(0)
    z, c, s = (jnp.asarray(rng.normal(0, 40, (1, 16, 16, 3)), jnp.float32) for _ in range(3))
    features = jax.jit(lambda p, x: vgg.apply({"params": p}, x))
    fc, fs, fz = (features(params, x) for x in (c, s, z))
    targets = {"content": {"relu2_2": fc["relu2_2"]},
               "style": {k: jnp.asarray(_gram(np.asarray(fs[k])), jnp.float32) for k in obj.style_layers}}
    total, parts = jax.jit(lambda z, t, p: gatys_loss(obj, z, t, p))(z, targets, params)
    content = np.mean((np.asarray(fz["relu2_2"], np.float64) - np.asarray(fc["relu2_2"], np.float64)) ** 2)
    style = sum(np.mean((_gram(np.asarray(fz[k])) - _gram(np.asarray(fs[k]))) ** 2) for k in obj.style_layers)
    zz = np.asarray(z, np.float64)[0]
    tv = 0.5 * (np.sum((zz[:-1, :-1] - zz[:-1, 1:]) ** 2) + np.sum((zz[:-1, :-1] - zz[1:, :-1]) ** 2))
    assert float(parts["content"]) == pytest.approx(3.0 * content, rel=1e-4)
    assert float(parts["style"]) == pytest.approx(70.0 * style, rel=1e-4)
    assert float(parts["tv"]) == pytest.approx(0.02 * tv, rel=1e-4)
    assert float(total) == pytest.approx(3.0 * content + 70.0 * style + 0.02 * tv, rel=1e-4)


# ------------------------------------------------------------------------------------------ fast style


def test_fast_style_losses_are_the_weighted_hand_computed_terms():
    task = _task("fast_style.py:tiny", ("losses.content", "2e5"), ("losses.style", "3e9"), ("losses.tv", "1e-5"))
    vgg = VGGFeatures(vgg_type="vgg16", taps=task.taps, input_norm="torchvision")
    # random VGG weights drawn with numpy (an init compiles one draw per parameter); forwards and losses jitted
    params = numpy_params(jax.eval_shape(vgg.init, jax.random.key(1), jnp.zeros((1, 32, 32, 3)))["params"], 1,
                          kernel_gain=2.0)
    rng = np.random.default_rng(1)
    x, y, style = (jnp.asarray(rng.uniform(0, 1, (2, 32, 32, 3)), jnp.float32) for _ in range(3))
    features = jax.jit(lambda p, x: vgg.apply({"params": p}, x))
    fs = features(params, style[:1])
    consts = {"vgg": params, "style_grams": {k: jnp.asarray(_gram(np.asarray(fs[k])), jnp.float32)
                                              for k in task.config.style_layers}}
    parts = jax.jit(task.losses)(y, x, consts)
    fy, fx = features(params, y), features(params, x)
    # pytorch/examples: content at relu2_2; style at relu1_2, relu2_2, relu3_3, relu4_3 against the style's Gram
    content = np.mean((np.asarray(fy["relu2_2"], np.float64) - np.asarray(fx["relu2_2"], np.float64)) ** 2)
    style = sum(np.mean((_gram(np.asarray(fy[k])) - _gram(np.asarray(fs[k]))) ** 2)
                for k in ("relu1_2", "relu2_2", "relu3_3", "relu4_3"))
    yy = np.asarray(y, np.float64) * 255
    tv = 0.5 * (np.sum((yy[:, :-1, :-1] - yy[:, :-1, 1:]) ** 2) + np.sum((yy[:, :-1, :-1] - yy[:, 1:, :-1]) ** 2))
    assert task.config.content_layer == "relu2_2"
    assert float(parts["content"]) == pytest.approx(2e5 * content, rel=1e-4)
    assert float(parts["style"]) == pytest.approx(3e9 * style, rel=1e-4)
    assert float(parts["tv"]) == pytest.approx(1e-5 * tv, rel=1e-4)


def test_fast_style_defaults_are_pytorch_examples_defaults():
    c = load_config(str(REPO / "configs" / "fast_style.py"))
    assert (c.losses.content, c.losses.style) == (1e5, 1e10)
    assert c.optim.lr == 1e-3 and c.batch_size == 4 and c.data.image_size == 256
    assert c.content_layer == "relu2_2" and tuple(c.style_layers) == ("relu1_2", "relu2_2", "relu3_3", "relu4_3")


# ------------------------------------------------------------------------------------------ CycleGAN lambdas


def _constant_output(params, value: float):
    p = flax.core.unfreeze(params)
    p["conv_out"]["kernel"] = np.zeros_like(p["conv_out"]["kernel"])
    p["conv_out"]["bias"] = np.full_like(p["conv_out"]["bias"], value)
    return p


def test_cyclegan_lambda_A_and_lambda_B_weight_their_own_terms():
    """lambda_A = 10, lambda_B = 3, lambda_identity = 0.25: official ``backward_G`` -- cycle_A * lambda_A,
    cycle_B * lambda_B, idt_A (G_A(B) vs B) * lambda_B * lambda_idt, idt_B (G_B(A) vs A) * lambda_A * lambda_idt."""
    task = _task("cyclegan.py:tiny", ("losses.lambda_A", "10"), ("losses.lambda_B", "3"),
                 ("losses.lambda_identity", "0.25"))
    # the outputs are constant whatever the other weights: those are drawn with numpy on the init's shapes (an
    # init compiles one draw per parameter), and the losses run as one jitted program (not op by op)
    players = jax.eval_shape(task.init).players
    init = {n: numpy_params(players[n].params, seed) for seed, n in enumerate(("G_A", "G_B", "D_A", "D_B"))}
    a, b, c, d = 0.4, -0.2, 0.3, 0.6
    g = {"G_A": _constant_output(init["G_A"], a), "G_B": _constant_output(init["G_B"], b)}
    dp = {"D_A": _constant_output(init["D_A"], c), "D_B": _constant_output(init["D_B"], d)}
    rng = np.random.default_rng(2)
    real_A, real_B = (jnp.asarray(rng.uniform(-1, 1, (2, 32, 32, 3)), jnp.float32) for _ in range(2))
    total, (parts, _, _) = jax.jit(task.generator_losses)(g, dp, real_A, real_B, jax.random.key(0))
    ta, tb = np.tanh(a), np.tanh(b)
    A, B = np.asarray(real_A, np.float64), np.asarray(real_B, np.float64)
    expected = {"G_A": (c - 1) ** 2, "G_B": (d - 1) ** 2,
                "cycle_A": 10 * np.abs(tb - A).mean(), "cycle_B": 3 * np.abs(ta - B).mean(),
                "idt_A": 0.25 * 3 * np.abs(ta - B).mean(), "idt_B": 0.25 * 10 * np.abs(tb - A).mean()}
    for k, v in expected.items():
        assert float(parts[k]) == pytest.approx(v, rel=1e-5), k
    assert float(total) == pytest.approx(sum(expected.values()), rel=1e-5)


# ------------------------------------------------------------------------------------------ step keys


@pytest.fixture(scope="module")
def pix2pix_dropout():
    """pix2pix with num_downs 6: one ngf*8 block with dropout (official UnetGenerator: num_downs - 5 of them; tiny
    has 5); the same task as tests/test_translation_tasks.py's pix2pix order test (its step compiled once per
    session, XLA cache). Its state from one jitted init, as the training loop (op by op, every init op compiles
    apart)."""
    task = _task("pix2pix.py:tiny", ("model.num_downs", "6"), ("data.crop_size", "64"), ("data.load_size", "68"))
    return task, jax.jit(task.init)()


def test_step_keys_differ_between_steps_and_streams_and_repeat_for_the_same_step(pix2pix_dropout):
    task, state = pix2pix_dropout
    s0 = jax.eval_shape(task.init)
    assert s0.rng.shape == state.rng.shape
    data = lambda st, stream: np.asarray(jax.random.key_data(step_key(st, stream)))  # noqa: E731
    one = state.replace(step=state.step + 1)
    assert not np.array_equal(data(state, STREAM_DROPOUT), data(one, STREAM_DROPOUT))
    assert not np.array_equal(data(state, STREAM_DROPOUT), data(state, STREAM_POOL))
    np.testing.assert_array_equal(data(one, STREAM_DROPOUT), data(state.replace(step=jnp.asarray(1, jnp.int32)),
                                                                  STREAM_DROPOUT))


def test_consecutive_pix2pix_steps_draw_different_dropout_masks_and_a_replayed_step_the_same(pix2pix_dropout):
    """Same params and batch; only the step counter differs. The U-Net's dropout (official ``use_dropout``) must
    draw a new mask at step 1 (a step key that ignores the step would give equal losses), and re-running step 0
    from the same state (what a resume does) must give bitwise the same result."""
    task, state = pix2pix_dropout
    assert task.config.model.use_dropout
    rng = np.random.default_rng(3)
    batch = {k: jnp.asarray(rng.uniform(0, 1, (2, 64, 64, 3)), jnp.float32) for k in "AB"}
    step = jax.jit(task.step)
    _, m0 = step(state, batch, {})
    _, m0_again = step(state, batch, {})
    _, m1 = step(state.replace(step=state.step + 1), batch, {})
    assert float(m0["loss_G_L1"]) == float(m0_again["loss_G_L1"])
    assert float(m0["loss_G_L1"]) != pytest.approx(float(m1["loss_G_L1"]), rel=1e-6)
