"""The case tables of ``benchmarks/conv_backends.py`` (the measurements behind ``xla_setup``'s per-network
convolution choices) stay runnable: each train case's config loads with its overrides, and each forward case's
network builds and traces on its input size (abstractly: nothing is computed). A typo in a case -- an unknown
config key, a model kwarg, an input size the network cannot take -- otherwise shows only when someone measures."""

from __future__ import annotations

import importlib.util
import sys

import jax
import jax.numpy as jnp
import pytest

from benchmarks import conv_backends
from jaxgen import models
from jaxgen.config import load_config


@pytest.mark.parametrize("name", sorted(conv_backends.TRAIN_CASES))
def test_train_case_configs_load(name):
    spec, overrides = conv_backends.TRAIN_CASES[name]
    config = load_config(str(conv_backends.ROOT / spec), overrides)
    for key, value in overrides:
        node = config
        for part in key.split("."):
            node = node[part]
        assert str(node) == value or node == type(node)(value), (name, key, node)


@pytest.mark.parametrize("name", sorted(conv_backends.FORWARD_CASES))
def test_forward_case_networks_trace(name):
    net, kwargs, side = conv_backends.FORWARD_CASES[name]
    model = models.build(net, **kwargs)
    x = jax.ShapeDtypeStruct((1, side, side, 3), jnp.float32)
    variables = jax.eval_shape(model.init, jax.random.key(0), x)
    out = jax.eval_shape(model.apply, variables, x)
    out = jax.tree.leaves(out)[0]
    assert out.shape[0] == 1 and out.shape[1] >= side, (name, out.shape)  # SR nets enlarge; the rest keep the size


def _compare_torch():
    """``benchmarks/compare_torch.py`` as a module (it imports ``cpuinfo`` from its own folder, as its workers do)."""
    folder = conv_backends.ROOT / "benchmarks"
    sys.path.insert(0, str(folder))
    try:
        spec = importlib.util.spec_from_file_location("compare_torch_cases", folder / "compare_torch.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(folder))
    return module


def test_compare_torch_iteration_cases_load_their_configs():
    """Every whole-iteration case of ``compare_torch.py`` (the official PyTorch steps' peers) names a config that
    loads with the case's batch, in the task its torch twin runs (a wrong ITERATION_CONFIGS entry would time
    another recipe against the official one)."""
    ct = _compare_torch()
    tasks = {"cyclegan": "cyclegan", "pix2pix": "pix2pix", "fast_style": "fast_style", "adain": "adain",
             "esrgan": "sr_gan", "srgan": "sr_gan", "realesrgan": "real_sr_gan"}
    nets = {case[1] for case in ct.CASES.values() if case[1] in ct.ITERATION_BATCH_KEYS}
    assert nets == set(ct.ITERATION_BATCH_KEYS) == set(tasks)
    for name, (kind, net, scale, batch, side) in ct.CASES.items():
        if net not in ct.ITERATION_BATCH_KEYS:
            continue
        config = ct.iteration_config(net, batch)
        assert config.task == tasks[net] and config.batch_size == batch, name
        if net == "srgan":  # BasicSR's recipe, as torch_models.SRGAN: MSRResNet, BatchNorm D, vanilla GAN, EMA
            assert (config.model.act, config.disc.kwargs.norm, config.losses.gan.kind) == ("lrelu", "batch", "vanilla")
            assert config.ema_decay == 0.999 and config.scale == scale == 4
        if net == "realesrgan":  # the degradation bypassed as tools/parity's: no pool, one group
            assert (config.degradation.queue_size, config.degradation.groups) == (0, 1)
