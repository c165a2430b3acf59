"""pix2pix / CycleGAN networks against a PyTorch re-creation of the official ``networks.py`` (goldens from
``tools/translation_goldens.py``): parameter counts of the full-size models, and forward outputs of small ones
(training mode: batch statistics) with the PyTorch weights loaded."""

from __future__ import annotations

import functools
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgen.models.discriminators import PatchGAN
from jaxgen import models
from jaxgen.models.translation import BatchNormPatchGAN, ResnetGenerator, UnetGenerator, count_params
from tests.param_utils import numpy_params

GOLDENS = np.load(Path(__file__).parent / "goldens" / "translation_nets.npz")

# Official counts (the U-Net-256 figure, 54,414,080, is 125 too many: the PyTorch re-creation of the official
# UnetGenerator(norm='batch') has 54,413,955, printed by the official code as "54.414 M").
FULL = [
    ("resnet_9blocks", ResnetGenerator(), (1, 256, 256, 3), 11_378_179),
    ("resnet_6blocks", ResnetGenerator(n_blocks=6), (1, 128, 128, 3), 7_837_699),
    ("unet_256_batch", UnetGenerator(), (1, 256, 256, 3), 54_413_955),
    ("unet_256_instance", UnetGenerator(norm="instance"), (1, 256, 256, 3), 54_409_603),
    ("patchgan_instance_3ch", PatchGAN(), (1, 256, 256, 3), 2_764_737),
    ("patchgan_batch_6ch", BatchNormPatchGAN(), (1, 256, 256, 6), 2_768_705),
]


@pytest.mark.parametrize("name,module,shape,expected", FULL, ids=[f[0] for f in FULL])
def test_parameter_counts_equal_the_official_models(name, module, shape, expected):
    assert int(GOLDENS[f"count/{name}"]) == expected  # the PyTorch re-creation agrees with the constant
    assert count_params(module, shape) == expected


def _params(prefix: str) -> dict:
    tree: dict = {}
    for key in GOLDENS.files:
        if key.startswith(f"{prefix}/params/"):
            node = tree
            *path, leaf = key[len(prefix) + 8 :].split("/")
            for part in path:
                node = node.setdefault(part, {})
            node[leaf] = GOLDENS[key]
    return tree


@functools.lru_cache(maxsize=None)
def _jitted_apply(module, train: bool | None):
    kwargs = {} if train is None else {"train": train}
    return jax.jit(lambda p, x, rngs: module.apply({"params": p}, x, rngs=rngs, **kwargs))


def _apply(module, params, x, rngs=None, train=None):
    """``module.apply`` as one jitted program (op by op, every op compiles apart), one per module and mode."""
    return _jitted_apply(module, train)(params, x, rngs)


def _random_params(module, x, seed: int) -> dict:
    """Weights drawn with numpy on the init's shapes (an init compiles one draw per parameter), for tests whose
    property holds for any weights."""
    return numpy_params(jax.eval_shape(module.init, jax.random.key(0), x)["params"], seed, kernel_gain=2.0,
                        leaves={"scale": (1.0, 0.1)})


SMALL = [
    ("resnet", ResnetGenerator(ngf=4, n_blocks=2)),
    ("unet", UnetGenerator(num_downs=5, ngf=4, use_dropout=False)),
    ("patchgan_bn", BatchNormPatchGAN(ndf=4)),
]


@pytest.mark.parametrize("name,module", SMALL, ids=[s[0] for s in SMALL])
def test_forward_matches_pytorch_official_layout(name, module):
    x = GOLDENS[f"{name}/x"]
    params = _params(name)
    ours = jax.eval_shape(module.init, jax.random.key(0), x)["params"]
    assert jax.tree.structure(ours) == jax.tree.structure(params)  # same parameters, same names, nothing extra
    assert jax.tree.map(jnp.shape, ours) == jax.tree.map(jnp.shape, params)
    y = _apply(module, params, x)
    np.testing.assert_allclose(np.asarray(y), GOLDENS[f"{name}/y"], atol=2e-5, rtol=1e-4)


def test_batch_norm_uses_the_whole_batch_and_instance_norm_each_image():
    x = GOLDENS["unet/x"]
    unet = UnetGenerator(num_downs=5, ngf=4, use_dropout=False)
    params = _params("unet")
    together = _apply(unet, params, x)
    alone = _apply(unet, params, x[:1])
    assert not np.allclose(together[:1], alone, atol=1e-3)  # batch statistics couple the images
    resnet = ResnetGenerator(ngf=4, n_blocks=2)
    rp = jax.jit(resnet.init)(jax.random.key(0), x)["params"]  # the official N(0, 0.02) law; one program
    np.testing.assert_allclose(_apply(resnet, rp, x)[:1], _apply(resnet, rp, x[:1]), atol=1e-6)


def test_unit_range_io_is_the_same_network_on_zero_one_images():
    x01 = np.random.default_rng(1).uniform(0, 1, (2, 32, 32, 3)).astype(np.float32)
    for module in (ResnetGenerator(ngf=4, n_blocks=1), UnetGenerator(num_downs=5, ngf=4)):
        params = _random_params(module, x01, 2)
        signed = _apply(module, params, 2 * x01 - 1)
        unit = _apply(module.clone(unit_range_io=True), params, x01)
        np.testing.assert_allclose(unit, (signed + 1) / 2, atol=1e-6)
        assert float(unit.min()) >= 0 and float(unit.max()) <= 1


def test_dropout_only_in_training_mode():
    x = GOLDENS["unet/x"]
    unet = UnetGenerator(num_downs=6, ngf=2)  # levels 4 = one dropout level
    x = np.tile(x, (1, 2, 2, 1))  # 64 px for 6 downs
    params = _random_params(unet, x, 0)
    a = _apply(unet, params, x, train=True, rngs={"dropout": jax.random.key(1)})
    b = _apply(unet, params, x, train=True, rngs={"dropout": jax.random.key(2)})
    c = _apply(unet, params, x, train=True, rngs={"dropout": jax.random.key(1)})
    assert not np.allclose(a, b) and np.array_equal(a, c)
    np.testing.assert_array_equal(_apply(unet, params, x), _apply(unet, params, x))


def test_init_is_the_official_normal_0_02():
    # the init itself is under test: one jitted program (op by op, each draw compiles apart)
    params = jax.jit(UnetGenerator(num_downs=5, ngf=16).init)(jax.random.key(0), jnp.zeros((1, 32, 32, 3)))["params"]
    kernel = np.asarray(params["down3"]["kernel"])
    assert abs(kernel.std() - 0.02) < 0.001 and abs(kernel.mean()) < 0.001
    scale = np.asarray(params["up3_norm"]["scale"])
    assert abs(scale.mean() - 1.0) < 0.01 and 0.01 < scale.std() < 0.03
    assert not np.any(params["up0"]["bias"])


@pytest.mark.parametrize(
    "module,shape,message",
    [
        (ResnetGenerator(), (1, 30, 32, 3), "divisible by 4"),
        (UnetGenerator(num_downs=5), (1, 48, 48, 3), "divisible by 32"),
        (UnetGenerator(num_downs=4), (1, 32, 32, 3), "num_downs=4"),
        (ResnetGenerator(norm="group"), (1, 32, 32, 3), "norm='group'"),
        (BatchNormPatchGAN(), (1, 32, 32, 3), r"\[B,H,W,6\]"),
    ],
)
def test_bad_inputs_are_one_line_value_errors(module, shape, message):
    with pytest.raises(ValueError, match=message):
        jax.eval_shape(module.init, jax.random.key(0), jax.ShapeDtypeStruct(shape, jnp.float32))


def test_translation_nets_are_in_the_one_model_registry():
    assert isinstance(models.build("resnet", n_blocks=6), ResnetGenerator)
    assert isinstance(models.build("unet", num_downs=7), UnetGenerator)
    assert isinstance(models.build("patchgan_bn"), BatchNormPatchGAN)
    assert models.MODELS["patchgan"] is PatchGAN  # CycleGAN's instance-norm discriminator: one entry, not two
    with pytest.raises(ValueError, match="unknown model 'resnett'"):
        models.build("resnett")
    with pytest.raises(TypeError, match=r"unknown kwargs \['nblocks'\]"):
        models.build("resnet", nblocks=6)
