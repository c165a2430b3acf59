"""The case tables of ``benchmarks/conv_backends.py`` (the measurements behind ``xla_setup``'s per-network
convolution choices) stay runnable: each train case's config loads with its overrides, and each forward case's
network builds and traces on its input size (abstractly: nothing is computed). A typo in a case -- an unknown
config key, a model kwarg, an input size the network cannot take -- otherwise shows only when someone measures."""

from __future__ import annotations

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
