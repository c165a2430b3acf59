"""Perceptual, style (Gram) and TV losses: BasicSR's PerceptualLoss re-run in torch (tools/make_vgg_goldens.py)
and closed forms."""

from __future__ import annotations

import functools
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgen.weights import pretrained
from jaxgen.losses import gram_matrix, perceptual_loss, perceptual_terms, tv_loss
from tests.test_vgg import random_vgg_state

GOLDEN = Path(__file__).parent / "goldens" / "vgg" / "perceptual.npz"
LAYERS = {"conv1_2": 0.1, "relu2_2": 0.5, "pool2": 0.2, "conv3_4": 1.0}  # as the golden script
CRITERIA = ("l1", "l2", "fro")


@pytest.fixture(scope="module")
def golden() -> dict[str, np.ndarray]:
    with np.load(GOLDEN) as g:
        return dict(g)


@pytest.fixture(scope="module")
def vgg19_random() -> dict:
    return pretrained.convert_trunk(random_vgg_state("vgg19", 0), "vgg19")


@pytest.fixture(scope="module")
def jax_results(golden, vgg19_random) -> dict:
    """``{criterion: ((percep, style), d(percep + style)/dx)}`` in one jit (params are arguments, not constants)."""

    def all_criteria(x, y, params):
        out = {}
        for c in CRITERIA:
            fn = functools.partial(perceptual_terms, layer_weights=LAYERS, criterion=c, perceptual_weight=1.0,
                                   style_weight=2.0)
            out[c] = (fn(x, y, params), jax.grad(lambda x, fn=fn: sum(fn(x, y, params)))(x))
        return out

    return jax.jit(all_criteria)(golden["x"], golden["y"], vgg19_random)


@pytest.mark.parametrize("criterion", CRITERIA)
def test_perceptual_and_style_match_basicsr(golden, jax_results, criterion: str) -> None:
    """Both terms and d(percep + style)/dx of BasicSR PerceptualLoss(layer_weights, style_weight=2)."""
    (percep, style), grad = jax_results[criterion]
    np.testing.assert_allclose(percep, golden[f"{criterion}/percep"], rtol=2e-5)
    np.testing.assert_allclose(style, golden[f"{criterion}/style"], rtol=2e-5)
    want, grad = golden[f"{criterion}/grad_x"], np.asarray(grad)
    if criterion == "l1":
        # sign(phi(x) - phi(y)) flips between float32 implementations for the odd near-equal feature pair; one
        # flip costs ~6e-5 relative L2 here (measured: 6.9e-5 in total), a wrong weight/reduction/layer O(1)
        assert np.linalg.norm(grad - want) <= 1e-3 * np.linalg.norm(want)
    else:  # measured <= 5e-6 relative to the largest entry
        assert np.abs(grad - want).max() <= 1e-4 * np.abs(want).max()


def test_perceptual_loss_is_the_sum_and_skips_zero_weights(golden, vgg19_random) -> None:
    layers = {"relu1_1": 0.3, "conv1_2": 1.0}
    fn = jax.jit(lambda x, y, p: (perceptual_loss(x, y, p, layer_weights=layers, criterion="l2", style_weight=2.0),
                                  perceptual_terms(x, y, p, layer_weights=layers, criterion="l2", style_weight=2.0),
                                  perceptual_terms(x, y, p, layer_weights=layers, perceptual_weight=0.0)))
    total, (percep, style), (p0, s0) = fn(golden["x"], golden["y"], vgg19_random)
    assert float(percep) > 0 and float(style) > 0
    np.testing.assert_allclose(total, percep + style, rtol=1e-6)
    assert float(p0) == 0.0 and float(s0) == 0.0  # style_weight defaults to 0 as BasicSR
    # wrapped {'params': ...} trees are accepted too
    wrapped = jax.jit(lambda x, y, p: perceptual_loss(x, y, p, layer_weights=layers, criterion="l2",
                                                      style_weight=2.0))(golden["x"], golden["y"],
                                                                         {"params": vgg19_random})
    np.testing.assert_allclose(wrapped, total, rtol=1e-6)


def test_target_gets_no_gradient(golden, vgg19_random) -> None:
    loss = functools.partial(perceptual_loss, layer_weights={"relu1_1": 1.0}, style_weight=1.0)
    g = jax.jit(jax.grad(loss, argnums=1))(golden["x"], golden["y"], vgg19_random)
    assert not np.any(np.asarray(g))


def test_real_caffe_vgg19_gatys_layers(golden) -> None:
    """The Caffe VGG19 weights with convention='caffe' (BGR, 0-255, mean subtracted) on Set5 crops, at the Caffe
    network's own scale (the golden's; the per-layer rescale is tested in test_perceptual_scale.py)."""
    try:
        vgg = pretrained.load_vgg("vgg19", "caffe")
    except pretrained.WeightsNotFoundError as e:
        pytest.skip(str(e))
    layers = {"relu1_1": 1.0, "relu2_1": 1.0, "relu3_1": 1.0, "relu4_1": 1.0, "conv4_2": 1.0}
    fn = functools.partial(perceptual_terms, layer_weights=layers, criterion="l2", style_weight=1e3,
                           convention=vgg.convention, caffe_rescale=False)
    percep, style = jax.jit(fn)(golden["caffe/a"], golden["caffe/b"], vgg.params)
    np.testing.assert_allclose(percep, golden["caffe/percep"], rtol=2e-5)
    np.testing.assert_allclose(style, golden["caffe/style"], rtol=2e-5)


def test_gram_matrix_closed_form() -> None:
    f = np.random.RandomState(0).standard_normal((2, 3, 5, 4)).astype(np.float32)
    want = np.stack([fi.reshape(-1, 4).T @ fi.reshape(-1, 4) for fi in f]) / (4 * 3 * 5)
    np.testing.assert_allclose(gram_matrix(f), want, rtol=1e-5, atol=1e-6)


def test_tv_loss_is_basicsr_weighted_tv() -> None:
    tv = jax.jit(tv_loss, static_argnames="reduction")  # one program per call form, not one per eager op
    rng = np.random.RandomState(0)
    x = rng.uniform(0, 1, (2, 5, 7, 3)).astype(np.float32)
    dy, dx = np.abs(x[:, 1:] - x[:, :-1]), np.abs(x[:, :, 1:] - x[:, :, :-1])
    np.testing.assert_allclose(tv(x), dy.mean() + dx.mean(), rtol=1e-6)
    np.testing.assert_allclose(tv(x, reduction="sum"), dy.sum() + dx.sum(), rtol=1e-6)
    w = rng.uniform(0, 1, (2, 5, 7, 1)).astype(np.float32)
    wy, wx = np.broadcast_to(w[:, :-1], dy.shape), np.broadcast_to(w[:, :, :-1], dx.shape)
    want = (wy * dy).sum() / wy.sum() + (wx * dx).sum() / wx.sum()
    np.testing.assert_allclose(tv(x, weight=w), want, rtol=1e-5)
    ramp = np.broadcast_to(np.arange(7, dtype=np.float32)[:, None], (1, 4, 7, 1))  # horizontal ramp: TV = 1 exactly
    np.testing.assert_allclose(tv(ramp), 1.0, rtol=1e-6)


def test_bad_arguments_raise_value_errors(vgg19_random) -> None:
    x = jnp.zeros((1, 16, 16, 3))
    with pytest.raises(ValueError, match="criterion"):
        perceptual_loss(x, x, vgg19_random, criterion="l3")
    with pytest.raises(ValueError, match="unknown vgg19 layer"):
        perceptual_loss(x, x, vgg19_random, layer_weights={"conv6_1": 1.0})
    with pytest.raises(ValueError, match="unknown vgg16 layer"):
        perceptual_loss(x, x, vgg19_random, layer_weights={"conv3_4": 1.0}, vgg_type="vgg16")
    with pytest.raises(ValueError, match="shapes differ"):
        perceptual_loss(x, jnp.zeros((1, 16, 8, 3)), vgg19_random)
    with pytest.raises(ValueError, match="convention"):
        perceptual_loss(x, x, vgg19_random, convention="keras")
    with pytest.raises(ValueError, match="H, W >= 2"):
        tv_loss(jnp.zeros((1, 1, 5, 3)))
    with pytest.raises(ValueError, match="reduction"):
        tv_loss(x, reduction="none")
