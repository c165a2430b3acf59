"""The adversarial-SR ablation (``experiments/sr_ablation.py``) compares what it says it compares: its three arms
share everything but the loss weights (steps, seed, data, optimisers, networks, starting weights), the full arm's
weights are ESRGAN's (BasicSR ``train_ESRGAN_x4.yml``: pixel 1e-2, perceptual 1.0 on VGG19 conv5_4, GAN 5e-3,
relativistic; the same as ``configs/esrgan.py``), and the perceptual-only arm is that objective with the GAN weight
0. The old study gave its GAN model more steps than its baseline: the step counts are checked here."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from jaxgen.config import load_config
from jaxgen.tasks.sr_common import perceptual_settings

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def ablation():
    spec = importlib.util.spec_from_file_location("sr_ablation", REPO / "experiments" / "sr_ablation.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _weights(c):
    percep = perceptual_settings(c.losses)
    return float(c.losses.l1), (0.0 if percep is None else float(percep["weight"])), float(c.losses.gan.weight)


@pytest.mark.parametrize("seed", [0, 2])
def test_arms_differ_only_in_loss_weights(ablation, seed):
    configs = {arm: ablation.arm_config("/data", arm, 150, seed, "/w/pretrain") for arm in ablation.ARMS}
    dicts = {arm: c.to_dict() for arm, c in configs.items()}
    losses = {arm: d.pop("losses") for arm, d in dicts.items()}
    first = dicts["l1"]
    for arm, d in dicts.items():
        assert d == first, arm  # steps, seed, init_from, data, optimisers, discriminator: all the same
    assert first["total_steps"] == 150 and first["seed"] == seed and first["init_from"] == "/w/pretrain"
    assert {arm: _weights(c) for arm, c in configs.items()} == {
        "l1": (1.0, 0.0, 0.0), "l1_percep": (0.01, 1.0, 0.0), "esrgan": (0.01, 1.0, 0.005)}
    # (b) is (c) without the adversarial term: same perceptual settings and GAN kind
    assert losses["l1_percep"]["perceptual"] == losses["esrgan"]["perceptual"]
    assert dict(losses["l1_percep"]["gan"], weight=0.005) == losses["esrgan"]["gan"]


def test_full_arm_is_the_esrgan_objective(ablation):
    mine = ablation.arm_config("/data", "esrgan", 150, 0, "/w").losses
    official = load_config(str(REPO / "configs" / "esrgan.py")).losses
    assert perceptual_settings(mine) == perceptual_settings(official)
    assert perceptual_settings(mine)["layer_weights"] == {"conv5_4": 1.0}
    assert float(mine.l1) == float(official.l1) == 0.01
    assert mine.gan.to_dict() == official.gan.to_dict()
    assert mine.gan.kind == "ragan_basicsr" and mine.gan.weight == 5e-3


def test_pretrain_shared_by_the_arms_differs_across_seeds_only(ablation):
    a, b = (ablation.pretrain_config("/data", 600, s).to_dict() for s in (0, 1))
    assert (a.pop("seed"), b.pop("seed")) == (0, 1)
    assert a == b and a["total_steps"] == 600 and a["losses"] == {"l1": 1.0}
